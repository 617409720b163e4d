"""Satellite nodules: small tumors scattered around a large one.

Where they go is geometry only (the painting is the parent's look): each satellite sits
``distance`` parent radii from the parent's centre in a uniformly random direction, with a
ball-like radius; a centre outside the liver is redrawn (``_TRIES`` times at most, then
dropped).
"""

from __future__ import annotations

import numpy as np

from .appearance import Appearance

_TRIES = 5


def draw_satellites(
    rng: np.random.Generator,
    appearance: Appearance,
    parent_centre: np.ndarray,
    parent_radius_mm: float,
    spacing_mm: tuple[float, float, float],
    liver: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(centre voxel indices, semi-axes mm) of the satellites of one parent tumor.

    liver: (x, y, z) mask, non-zero = liver; parent_centre: (3,) voxel indices in its grid;
    parent_radius_mm: its geometric mean semi-axis. Returns [] (and draws nothing) unless the
    parent is at least ``satellite_min_radius_mm`` and the satellite coin comes up.
    """
    if (appearance.satellite_probability <= 0
            or parent_radius_mm < appearance.satellite_min_radius_mm):
        return []
    if rng.random() >= appearance.satellite_probability:
        return []
    lo, hi = appearance.satellite_count
    out = []
    for _ in range(int(rng.integers(lo, hi, endpoint=True))):
        radius = appearance.satellite_radius_mm.draw(rng)
        semi_axes = radius * rng.uniform(0.85, 1.15, size=3)
        for _ in range(_TRIES):
            direction = rng.standard_normal(3)
            direction /= max(float(np.linalg.norm(direction)), 1e-9)
            reach_mm = appearance.satellite_distance.draw(rng) * parent_radius_mm
            centre = np.round(parent_centre + direction * reach_mm / np.asarray(spacing_mm))
            centre = centre.astype(np.intp)
            if np.all(centre >= 0) and np.all(centre < liver.shape) and liver[tuple(centre)]:
                out.append((centre, semi_axes))
                break
    return out
