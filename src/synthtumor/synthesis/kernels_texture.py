"""The texture lattice of one tumor (``texture.texture_lattice``) with compiled kernels (numba).

Same random draws, in the same order, as the NumPy version; the Gaussian smoothing, the
lattice-to-lattice interpolation and the element-wise steps run compiled and fused, which
matters because a tumor's lattice is small and the NumPy version is mostly per-call overhead
(about thirty NumPy/SciPy calls per tumor). The smoothing accumulates in float64 and stores
float32 between axes, as ``scipy.ndimage.gaussian_filter`` does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from .jit_options import OPTIONS
from .kernels import texture_planes
from .texture import (
    _LATTICE_SMOOTH,
    _THRESHOLD,
    _TRUNCATE,
    BANK_HALF_RANGE_IN_STD,
    TextureParams,
    _lattice_positions,
    _lattice_size,
)
from .workspace import Workspace


@lru_cache(maxsize=64)
def gaussian_weights(sigma: float) -> np.ndarray:
    """Normalised Gaussian taps (float64, length 2 r + 1, r = int(3 sigma + 0.5)), as
    ``scipy.ndimage.gaussian_filter`` builds them with ``truncate=3``. Cached: do not modify."""
    radius = int(_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi: np.ndarray = np.exp(-0.5 / (sigma * sigma) * x.astype(np.float64) ** 2)
    weights: np.ndarray = phi / phi.sum()
    return weights


@lru_cache(maxsize=64)
def _unit(sigma: float) -> np.float32:
    """The std of unit white noise smoothed by ``sigma`` cells: the rescaling to unit variance
    of ``texture._smoothed_unit_noise`` (same formula)."""
    radius = int(_TRUNCATE * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    return np.float32(np.sqrt(np.sum(k**2)) ** 3)


@njit(**OPTIONS)
def _smooth_outer(src: np.ndarray, dst: np.ndarray, weights: np.ndarray) -> None:
    """Periodic ("wrap") correlation with symmetric ``weights`` along axis 0 of (n, m)."""
    n, m = src.shape
    r = (weights.shape[0] - 1) // 2
    acc = np.empty(m, np.float64)
    for i in range(n):
        for k in range(m):
            acc[k] = src[i, k] * weights[r]
        for t in range(1, r + 1):
            up, down = (i + t) % n, (i - t) % n
            w = weights[r + t]
            for k in range(m):
                acc[k] += (np.float64(src[up, k]) + np.float64(src[down, k])) * w
        for k in range(m):
            dst[i, k] = acc[k]


@njit(**OPTIONS)
def _rotate(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[j, k, i] = src[i, j, k]: the next axis first (exact copies)."""
    n0, n1, n2 = src.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                dst[j, k, i] = src[i, j, k]


_ROTATE_BELOW = 40  # last-axis length under which the rotated passes are faster (measured)


@njit(**OPTIONS)
def _smooth_last_two(out: np.ndarray, tmp: np.ndarray, weights: np.ndarray) -> None:
    """Axes 1 and 2 of ``gaussian_wrap`` along rows: axis 1 from ``tmp`` (the axis-0 result)
    into ``out``, then axis 2 within ``out``."""
    n0, n1, n2 = out.shape
    for i in range(n0):
        _smooth_outer(tmp[i], out[i], weights)
    r = (weights.shape[0] - 1) // 2
    line = np.empty(n2 + 2 * r, np.float32)  # one row, extended periodically by r each side
    acc = np.empty(n2, np.float64)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                line[k + r] = out[i, j, k]
            for k in range(r):  # the periodic ends (a modulo per voxel costs more than the sums)
                line[k] = out[i, j, (k - r) % n2]
                line[n2 + r + k] = out[i, j, k % n2]
            for k in range(n2):
                acc[k] = line[k + r] * weights[r]
            for t in range(1, r + 1):
                w = weights[r + t]
                ahead, behind = line[r + t:], line[r - t:]
                for k in range(n2):
                    acc[k] += (np.float64(ahead[k]) + np.float64(behind[k])) * w
            for k in range(n2):
                out[i, j, k] = acc[k]


@njit(**OPTIONS)
def _rotated_pass(tmp: np.ndarray, out: np.ndarray, shape: tuple[int, int, int],
                  weights: np.ndarray) -> None:
    """Rotate ``tmp`` (flat, holding ``shape``) into ``out`` with its next axis first, then
    smooth that axis back into ``tmp`` (flat, now holding the rotated shape)."""
    a, b, c = shape
    _rotate(tmp.reshape(a, b, c), out.reshape(b, c, a))
    _smooth_outer(out.reshape(b, c * a), tmp.reshape(b, c * a), weights)


@njit(**OPTIONS)
def _smooth_last_two_rotated(out: np.ndarray, tmp: np.ndarray, weights: np.ndarray) -> None:
    """``_smooth_last_two`` with each axis rotated to the front and smoothed as axis 0: the
    sums then run along whole planes, which vectorise where the rows are short; every output
    is the same sum in the same order."""
    n0, n1, n2 = out.shape
    flat_out, flat_tmp = out.reshape(-1), tmp.reshape(-1)
    _rotated_pass(flat_tmp, flat_out, (n0, n1, n2), weights)  # axis 1: tmp is (n1, n2, n0)
    _rotated_pass(flat_tmp, flat_out, (n1, n2, n0), weights)  # axis 2: tmp is (n2, n0, n1)
    _rotate(flat_tmp.reshape(n2, n0, n1), out)


@njit(**OPTIONS)
def gaussian_wrap(src: np.ndarray, weights: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
    """Separable periodic Gaussian smoothing of a C-contiguous (n0, n1, n2) float32 array into
    ``out`` (``tmp``: scratch of its shape); float32 stored between axes, axes in order. Short
    rows (a tumor's small lattice) take the rotated passes: a 14³ lattice 1.6-1.9x faster."""
    n0, n1, n2 = src.shape
    _smooth_outer(src.reshape(n0, n1 * n2), tmp.reshape(n0, n1 * n2), weights)
    if n2 < _ROTATE_BELOW:
        _smooth_last_two_rotated(out, tmp, weights)
    else:
        _smooth_last_two(out, tmp, weights)


@njit(**OPTIONS)
def _a_field(  # noqa: PLR0913
    smooth: np.ndarray, unit: np.float32, gain: float, offset: float, low: float, high: float
) -> None:
    """a = clip(smooth / unit * gain + offset, low, high), in place (float32, NumPy's order)."""
    flat = smooth.reshape(-1)
    for p in range(flat.shape[0]):
        v = flat[p] / unit
        v *= gain
        v += offset
        flat[p] = min(max(v, low), high)


@njit(**OPTIONS)
def _outer_interp(planes: np.ndarray, idx0: np.ndarray, w0: np.ndarray, out: np.ndarray) -> None:
    """out[i] = planes[a] + (planes[a + 1] - planes[a]) * w0[i], a = idx0[i]: the last pass of
    ``texture.interpolate_linear``."""
    for i in range(out.shape[0]):
        a, fa = idx0[i], w0[i]
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                out[i, j, k] = planes[a, j, k] + (planes[a + 1, j, k] - planes[a, j, k]) * fa


@njit(**OPTIONS)
def _spread(a: np.ndarray, inv_cells: float, out: np.ndarray) -> None:
    """The binomial standard deviation of each b cell: sqrt((1 - a) a / cells)."""
    src, dst = a.reshape(-1), out.reshape(-1)
    one = np.float32(1.0)
    for p in range(src.shape[0]):
        v = (one - src[p]) * src[p]
        dst[p] = np.sqrt(v * inv_cells)


@njit(**OPTIONS)
def _draw_cells(spread: np.ndarray, noise: np.ndarray, a: np.ndarray) -> None:
    """spread = spread * noise + a, in place."""
    s, z, m = spread.reshape(-1), noise.reshape(-1), a.reshape(-1)
    for p in range(s.shape[0]):
        s[p] = s[p] * z[p] + m[p]


@njit(**OPTIONS)
def _normalise(b: np.ndarray, threshold: np.float32, u0: float) -> None:
    """b = clip(b * u0 / mean(b[b > threshold]), 0, 1), in place (mean(b) if none is above)."""
    flat = b.reshape(-1)
    total, count, everything = 0.0, 0, 0.0
    for p in range(flat.shape[0]):
        v = flat[p]
        everything += v
        if v > threshold:
            total += v
            count += 1
    mean = total / count if count else everything / flat.shape[0]
    gain = np.float32(u0 / mean)
    zero, one = np.float32(0.0), np.float32(1.0)
    for p in range(flat.shape[0]):
        flat[p] = min(max(flat[p] * gain, zero), one)


@njit(**OPTIONS)
def _a_to_spread(  # noqa: PLR0913
    noise: np.ndarray, weights: np.ndarray, field: np.ndarray, unit: np.float32,
    constants: np.ndarray,
    look: tuple[np.ndarray, ...], planes: np.ndarray, a_b: np.ndarray, spread: np.ndarray,
    tmp: np.ndarray,
) -> None:
    """Steps 1 and the first half of 2 on the lattices, between the two random draws: smooth
    the noise into ``field`` (a), rescale and clip it, interpolate it onto the b lattice
    (``a_b``) and write each b cell's binomial standard deviation into ``spread``.
    constants: float32 (gain, offset, low, high, 1 / cells)."""
    gaussian_wrap(noise, weights, field, tmp)
    _a_field(field, unit, constants[0], constants[1], constants[2], constants[3])
    texture_planes(field, look[2], look[3], look[4], look[5], planes)
    _outer_interp(planes, look[0], look[1], a_b)
    _spread(a_b, constants[4], spread)


@njit(**OPTIONS)
def _cells_to_b(  # noqa: PLR0913
    spread: np.ndarray, noise: np.ndarray, a_b: np.ndarray, weights: np.ndarray, b: np.ndarray,
    tmp: np.ndarray, threshold: np.float32, u0: float,
) -> None:
    """The rest of step 2, then 3 and 4: draw the cells, smooth, normalise and clip into b."""
    _draw_cells(spread, noise, a_b)
    gaussian_wrap(spread, weights, b, tmp)
    _normalise(b, threshold, u0)


def lattice_lookup(
    positions: list[np.ndarray], shape: tuple[int, ...]
) -> list[tuple[np.ndarray, ...]]:
    """Per axis: lower lattice index and float32 fraction, as ``interpolate_linear``."""
    out: list[tuple[np.ndarray, ...]] = []
    for axis, pos in enumerate(positions):
        i0 = np.minimum(np.floor(pos).astype(np.int64), shape[axis] - 2)
        out.append((i0, (pos - i0).astype(np.float32)))
    return out


@lru_cache(maxsize=4096)
def _axis_lookup(n: int, scale: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``lattice_lookup`` of one axis at positions ``arange(n) * scale`` on a lattice of
    ``size`` cells. Tumor boxes repeat their sizes, so this is cached: do not modify."""
    (pair,) = lattice_lookup([np.arange(n) * scale], (size,))
    return pair[0], pair[1]


def voxel_lookup(
    shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
    params: TextureParams, lattice_shape: tuple[int, ...],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``lattice_lookup`` of the box's voxel centres on the texture lattice (the positions
    ``texture_lattice`` returns), from a cache. Do not modify the arrays."""
    step_b = params.sigma_b_mm / _LATTICE_SMOOTH
    return [_axis_lookup(n, s / step_b, m) for n, s, m in zip(shape, spacing_mm, lattice_shape)]


def texture_lattice(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    params: TextureParams,
    rng: np.random.Generator,
    ws: Workspace,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``texture.texture_lattice`` with compiled steps: same inputs, draws and outputs."""
    step_b = params.sigma_b_mm / _LATTICE_SMOOTH
    return (lattice_values(shape, spacing_mm, params, rng, ws),
            [_lattice_positions(n, s, step_b) for n, s in zip(shape, spacing_mm)])


def lattice_values(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    params: TextureParams,
    rng: np.random.Generator,
    ws: Workspace,
) -> np.ndarray:
    """The lattice of ``texture_lattice`` alone (float32, a view of ``ws``'s "b" buffer): the
    painting looks its voxels up through ``voxel_lookup``."""
    step_b = params.sigma_b_mm / _LATTICE_SMOOTH
    step_a = max(params.sigma_a_mm / _LATTICE_SMOOTH, step_b)
    a_shape = tuple(_lattice_size(n, s, step_a) for n, s in zip(shape, spacing_mm))
    noise = rng.standard_normal(a_shape, dtype=np.float32, out=ws.get("noise", a_shape))
    weights = gaussian_weights(params.sigma_a_mm / step_a)
    a = ws.get("noise_smooth", a_shape)
    kappa = BANK_HALF_RANGE_IN_STD[params.sigma_a_mm]
    constants = np.array([params.scale / (2.0 * kappa), params.base + 0.5 * params.scale,
                          params.base, params.base + params.scale, 1.0 / step_b**3], np.float32)
    b_shape = tuple(_lattice_size(n, s, step_b) for n, s in zip(shape, spacing_mm))
    look = [_axis_lookup(m, step_b / step_a, n) for m, n in zip(b_shape, a_shape)]
    a_b, spread = ws.get("k_b_of_a", b_shape), ws.get("b_spread", b_shape)
    _a_to_spread(noise, weights, a, _unit(params.sigma_a_mm / step_a), constants,
                 (look[0][0], look[0][1], look[1][0], look[1][1], look[2][0], look[2][1]),
                 ws.get("k_b_of_a_planes", (a_shape[0], *b_shape[1:])), a_b, spread,
                 ws.get("k_lattice_tmp", a_shape))
    b = ws.get("b", b_shape)
    _cells_to_b(spread, rng.standard_normal(b_shape, dtype=np.float32,
                                            out=ws.get("noise", b_shape)),
                a_b, gaussian_weights(_LATTICE_SMOOTH), b, ws.get("k_lattice_tmp", b_shape),
                np.float32(_THRESHOLD), params.u0)
    return b
