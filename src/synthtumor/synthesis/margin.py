"""Tumor margins: irregular or lobulated surfaces, from a noise-displaced surface distance.

The distorted ellipsoid of ``shape`` gives a signed distance d (mm, negative inside). Moving its
surface outwards by a smooth random amount D(x) = irregularity * radius * n(x), with n a
unit-std field of correlation length lobe_scale * radius (``margin_noise``: smoothed noise of
``heterogeneity.noise_lattice``, standardised on its lattice), gives the new distance d - D:
small lobe scales make a rough margin, large ones lobes. Sphericity falls as the irregularity
grows (``realism.fit`` calibrates one to the other).
"""

from __future__ import annotations

import numpy as np

from .heterogeneity import _standardise, interpolated_variance, noise_lattice
from .texture import interpolate_linear
from .workspace import Workspace

#: How far (in std of the displacement) the surface may move: the tumor box must allow it.
REACH_STD = 2.5


def margin_reach_mm(irregularity: float, radius_mm: float) -> float:
    """The largest outward move of the surface (mm) to allow for in the tumor's box."""
    return REACH_STD * irregularity * radius_mm


def margin_noise(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    radius_mm: float,
    lobe_scale: float,
    rng: np.random.Generator,
    ws: Workspace,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """The unit-std margin field n of correlation length lobe_scale x radius, as a field or a
    lattice to interpolate: (field of ``shape``, None) where the lattice is the voxel grid
    (or white noise), else (lattice, per-axis voxel positions on it), standardised on the
    lattice so that its linear interpolation has unit variance on average
    (``heterogeneity.interpolated_variance``): the box is never interpolated in full just to
    be standardised. float32 workspace buffers ("margin"-prefixed), valid until reused."""
    lattice, positions, cells = noise_lattice(shape, spacing_mm,
                                              max(lobe_scale * radius_mm, 0.3), rng, ws, "margin")
    if positions is None:
        field = lattice[: shape[0], : shape[1], : shape[2]]
        if cells > 0.0:
            _standardise(field)
        return field, None
    _standardise(lattice)
    lattice *= np.float32(1.0 / np.sqrt(interpolated_variance(cells, positions)))
    return lattice, positions


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
    radius x the unit-std field of ``margin_noise``, clipped to +-``REACH_STD`` std so that
    the surface never leaves the box sized with ``margin_reach_mm``. float32, a workspace
    buffer ("margin"-prefixed) valid until reused.
    """
    ws = ws or Workspace()
    noise, positions = margin_noise(shape, spacing_mm, radius_mm, lobe_scale, rng, ws)
    if positions is not None:
        noise = interpolate_linear(noise, positions, ws, "margin")
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
