"""Tumor margins: irregular or lobulated surfaces, from a noise-displaced surface distance.

The distorted ellipsoid of ``shape`` gives a signed distance d (mm, negative inside). Moving its
surface outwards by a smooth random amount D(x) = irregularity * radius * n(x), with n a
unit-std field of correlation length lobe_scale * radius (``heterogeneity.smooth_noise``),
gives the new distance d - D: small lobe scales make a rough margin, large ones lobes.
Sphericity falls as the irregularity grows (``realism.fit`` calibrates one to the other).
"""

from __future__ import annotations

import numpy as np

from .heterogeneity import smooth_noise
from .workspace import Workspace

#: How far (in std of the displacement) the surface may move: the tumor box must allow it.
REACH_STD = 2.5


def margin_reach_mm(irregularity: float, radius_mm: float) -> float:
    """The largest outward move of the surface (mm) to allow for in the tumor's box."""
    return REACH_STD * irregularity * radius_mm


def margin_displacement(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    radius_mm: float,
    irregularity: float,
    lobe_scale: float,
    rng: np.random.Generator,
    ws: Workspace | None = None,
) -> np.ndarray:
    """The outward move of the surface (mm) on a box of ``shape`` voxels: irregularity x
    radius x a unit-std field of correlation length lobe_scale x radius, clipped to
    +-``REACH_STD`` std so that the surface never leaves the box sized with
    ``margin_reach_mm``. float32, a workspace buffer ("margin"-prefixed) valid until reused.
    """
    ws = ws or Workspace()
    noise = smooth_noise(shape, spacing_mm, max(lobe_scale * radius_mm, 0.3), rng, ws,
                         "margin")
    np.clip(noise, -REACH_STD, REACH_STD, out=noise)
    noise *= np.float32(irregularity * radius_mm)
    return noise


def displace_surface(
    distance_mm: np.ndarray,
    spacing_mm: tuple[float, float, float],
    radius_mm: float,
    irregularity: float,
    lobe_scale: float,
    rng: np.random.Generator,
    ws: Workspace | None = None,
) -> np.ndarray:
    """Subtract the random displacement (``margin_displacement``) from ``distance_mm`` in
    place and return it.

    distance_mm: (nx, ny, nz) float32 signed distance to the surface in mm. irregularity 0
    changes nothing and draws nothing.
    """
    if irregularity <= 0:
        return distance_mm
    distance_mm -= margin_displacement(distance_mm.shape, spacing_mm, radius_mm, irregularity,
                                       lobe_scale, rng, ws)
    return distance_mm
