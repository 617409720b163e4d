"""Multi-scale tumor heterogeneity: a zero-mean, unit-std random field with a set correlation
length, to be scaled to the HU standard deviation a tumor should show.

Each scale is Gaussian-smoothed white noise (uniform draws where the smoothing spans a lattice
cell or more: the smoothed sum is close to Gaussian): smoothing std ``s`` mm gives a field whose
correlation at lag h mm is exp(-h^2 / (4 s^2)). Scales at or below half a voxel are per-voxel
white noise; coarser ones are drawn on a lattice of s / 2 mm, never finer than the voxels
(smoothed there by s / step cells, 2 at most, as ``texture`` does), and interpolated with
``texture.interpolate_linear`` unless the lattice is the voxel grid itself: a coarse scale
costs one interpolation pass over the voxels.
"""

from __future__ import annotations

import math

import numpy as np

from .texture import _TRUNCATE, interpolate_linear
from .workspace import Workspace

_LATTICE_SMOOTH = 2.0  # smoothing std in lattice cells
_WHITE_BELOW = 0.5  # smoothing std (in voxels) under which a scale is plain white noise
_STATS_SUBSAMPLE_ABOVE = 50_000  # voxels: above, the mean and std come from every 2nd voxel
# From this smoothing (lattice cells) on, the lattice draws uniform noise, a third of the cost
# of normal draws: a weighted sum of uniforms has excess kurtosis -1.2 x (sum w^4 / (sum w^2)^2)
# per axis, cubed: -0.08 at 1 cell, -0.02 at 1.5, -0.01 at 2 (normal draws: 0, a Gaussian field),
# far below what a tumor's few thousand correlated voxels can show. Every smoothed lattice is
# standardised after, so the uniform's own mean and scale do not matter.
_UNIFORM_FROM_CELLS = 1.0


def noise_lattice(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    sigma_mm: float,
    rng: np.random.Generator,
    ws: Workspace,
    name: str,
) -> tuple[np.ndarray, list[np.ndarray] | None, float]:
    """The noise of ``smooth_noise`` before interpolation and standardisation: the smoothed
    lattice (float32, a ``name``-prefixed workspace buffer), the voxels' positions on it per
    axis (lattice cells; None where voxel (i, j, k) is cell (i, j, k)) and the smoothing in
    cells (0: white noise of exactly ``shape``, already unit-std). A smoothed lattice is not
    standardised: its mean and std are whatever its draws give (uniform ones from
    ``_UNIFORM_FROM_CELLS`` cells on), so callers standardise it."""
    if sigma_mm <= _WHITE_BELOW * min(spacing_mm):
        out = ws.get(f"{name}_white", shape)
        rng.standard_normal(shape, dtype=np.float32, out=out)
        return out, None, 0.0
    # never finer than the voxels: a fine scale is smoothed by fewer lattice cells instead
    step = max(sigma_mm / _LATTICE_SMOOTH, min(spacing_mm))
    grid = all(s == step for s in spacing_mm)  # the lattice is the voxel grid: no interpolation
    # a lattice to interpolate needs a cell past the last voxel; the voxel grid does not
    lattice = shape if grid else tuple(int(np.floor((n - 1) * s / step)) + 2
                                       for n, s in zip(shape, spacing_mm))
    noise = ws.get(f"{name}_noise", lattice)
    cells = sigma_mm / step
    if cells >= _UNIFORM_FROM_CELLS:
        rng.random(lattice, dtype=np.float32, out=noise)
        noise -= np.float32(0.5)  # centred: standardising then cancels no large mean
    else:
        rng.standard_normal(lattice, dtype=np.float32, out=noise)
    smooth = ws.get(f"{name}_smooth", lattice)
    _gaussian_wrap(noise, cells, smooth, ws, name)
    if grid:
        return smooth, None, cells
    return smooth, [np.arange(n) * (s / step) for n, s in zip(shape, spacing_mm)], cells


def smooth_noise(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    sigma_mm: float,
    rng: np.random.Generator,
    ws: Workspace,
    name: str,
) -> np.ndarray:
    """Zero-mean unit-std noise smoothed by a Gaussian of ``sigma_mm`` (float32, ``shape``).

    The result is a workspace buffer (``name``-prefixed), valid until that name is reused.
    """
    lattice, positions, cells = noise_lattice(shape, spacing_mm, sigma_mm, rng, ws, name)
    if positions is None:
        field = lattice[: shape[0], : shape[1], : shape[2]]
        if cells == 0.0:
            return field
    else:
        field = interpolate_linear(lattice, positions, ws, name)
    _standardise(field)
    return field


def interpolated_variance(cells: float, positions: list[np.ndarray]) -> float:
    """The mean variance of a unit-variance lattice smoothed by ``cells`` once interpolated
    linearly at ``positions``: per axis that falls between cells, (2 + rho) / 3 with rho the
    correlation of neighbouring cells (the mean of (1-t)^2 + t^2 + 2 t (1-t) rho over t)."""
    rho = correlation_at_lag(cells, 1.0)
    factor = 1.0
    for pos in positions:
        if np.any(pos != np.round(pos)):
            factor *= (2.0 + rho) / 3.0
    return factor


def _gaussian_wrap(
    noise: np.ndarray, sigma_cells: float, out: np.ndarray, ws: Workspace, name: str
) -> None:
    """Gaussian smoothing (std ``sigma_cells``, truncated at 3 std, periodic borders) of
    ``noise`` into ``out``: scipy's filter (the reference), or the compiled
    ``kernels_texture.gaussian_wrap`` with the same kernel on the compiled backend."""
    from .painting import compiled_backend

    if not compiled_backend():
        from scipy import ndimage as ndi  # here: the compiled path never loads it (0.1-0.2 s)

        ndi.gaussian_filter(noise, sigma_cells, output=out, truncate=_TRUNCATE, mode="wrap")
        return
    from .kernels_texture import gaussian_weights, gaussian_wrap

    gaussian_wrap(noise, gaussian_weights(sigma_cells), out, ws.get(f"{name}_tmp", noise.shape))


def _standardise(field: np.ndarray) -> None:
    """Shift and scale ``field`` in place to mean 0 and std 1 (a constant field becomes 0)."""
    sub = field[::2, ::2, ::2] if field.size > _STATS_SUBSAMPLE_ABOVE else field
    mean, std = float(sub.mean()), float(sub.std())
    field -= np.float32(mean)
    field *= np.float32(1.0 / std if std > 0 else 0.0)


def heterogeneity_field(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    corr_mm: float,
    scales: int,
    coarse_weight: float,
    rng: np.random.Generator,
    ws: Workspace | None = None,
) -> np.ndarray:
    """Sum of ``scales`` octaves of smooth noise (smoothing ``corr_mm``, 2 ``corr_mm``, ...,
    each ``coarse_weight`` times the amplitude of the finer one), rescaled to unit std.

    Returns float32 of ``shape``, a workspace buffer ("het_total") valid until reused.
    """
    ws = ws or Workspace()
    from .painting import compiled_backend

    if compiled_backend():
        return _field_compiled(shape, spacing_mm, corr_mm, scales, coarse_weight, rng, ws)
    total = ws.get("het_total", shape)
    total.fill(0.0)
    weight = 1.0
    norm = 0.0
    for k in range(scales):
        part = smooth_noise(shape, spacing_mm, corr_mm * 2.0**k, rng, ws, f"het{k}")
        if weight != 1.0:
            part *= np.float32(weight)
        total += part
        norm += weight**2
        weight *= coarse_weight
    total *= np.float32(1.0 / np.sqrt(norm))
    return total


def _field_compiled(
    shape: tuple[int, int, int], spacing_mm: tuple[float, float, float], corr_mm: float,
    scales: int, coarse_weight: float, rng: np.random.Generator, ws: Workspace,
) -> np.ndarray:
    """``heterogeneity_field`` with one compiled pass per scale
    (``kernels_look.accumulate_scale``: interpolation, standardisation, weight and sum at
    once); the same draws, and the standardisation's mean and std from the same voxels."""
    from .kernels_look import accumulate_scale, scale_moments
    from .kernels_texture import lattice_lookup

    total = ws.get("het_total", shape)
    norm = sum(coarse_weight ** (2 * k) for k in range(scales))
    weight = 1.0 / np.sqrt(norm)
    no_lookup = (np.zeros(0, np.int64), np.zeros(0, np.float32))
    stride = 2 if math.prod(shape) > _STATS_SUBSAMPLE_ABOVE else 1
    for k in range(scales):
        lattice, positions, cells = noise_lattice(shape, spacing_mm, corr_mm * 2.0**k, rng, ws,
                                                  f"het{k}")
        lookups: list[tuple[np.ndarray, np.ndarray]] = [no_lookup] * 3
        if positions is not None:
            lookups = [(t[0], t[1]) for t in lattice_lookup(positions, lattice.shape)]
        scale, offset = 1.0, 0.0
        if cells > 0.0:  # standardised as _standardise does, on its voxels (white noise is not)
            mean, std = scale_moments(shape, lattice, lookups[0], lookups[1], lookups[2],
                                      positions is not None, stride)
            scale = 1.0 / std if std > 0 else 0.0
            offset = -mean * scale
        accumulate_scale(total, lattice, lookups[0], lookups[1], lookups[2],
                         np.float32(scale * weight), np.float32(offset * weight),
                         positions is not None, k == 0)
        weight *= coarse_weight
    return total


def correlation_at_lag(corr_mm: float, lag_mm: float) -> float:
    """Correlation of one smooth-noise scale at ``lag_mm`` (its smoothing std ``corr_mm``)."""
    if corr_mm <= 0:
        return 0.0
    return float(np.exp(-(lag_mm**2) / (4.0 * corr_mm**2)))
