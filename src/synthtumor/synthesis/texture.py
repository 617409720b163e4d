"""Tumor texture: a smooth random field T in [0, 1] that makes tumor HU non-uniform.

Same statistics as the reference's texture bank, made per tumor inside its own box:

1. a = smoothed U(0, 1) noise (std sigma_a mm), rescaled to [base, base + scale];
2. b = 1 where a > U(0, 1), per 1 mm voxel;
3. b smoothed (std sigma_b mm);
4. T = clip(b * u0 / mean(b[b > 0.12]), 0, 1).

The reference builds ten 420x300x320 banks at start-up (3.2 GB, minutes). Every field here is smooth
at the scale of sigma_b >= 4 mm, so we draw it on a lattice of sigma / 2 mm and interpolate:
- a: unit-variance smoothed white noise on the lattice; the reference min/max rescaling becomes
  a = base + scale * (1/2 + F / (2 kappa)), with kappa the bank's half-range in noise std (table
  below, measured by ``benchmarks/texture_calibration.py``);
- b: a lattice cell of n 1-mm voxels holds Binomial(n, a) / n ones, drawn with its normal
  approximation, then smoothed: the same mean and variance as smoothing the 1-mm Bernoulli field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .workspace import Workspace

#: (max - min) / (2 std) of the reference's smoothed-noise bank, per sigma_a (mm).
BANK_HALF_RANGE_IN_STD: dict[int, float] = {3: 6.34, 6: 6.09, 9: 6.13, 12: 6.11, 15: 6.65}
SIGMA_A_MM: tuple[int, ...] = tuple(BANK_HALF_RANGE_IN_STD)
SIGMA_B_MM: tuple[int, ...] = (4, 7)
_THRESHOLD = 0.12  # b values that count towards the u0 normalisation
_LATTICE_SMOOTH = 2.0  # smoothing std on a lattice of sigma / 2 mm, in lattice cells
_TRUNCATE = 3.0


@dataclass(frozen=True)
class TextureParams:
    """One sample's texture parameters (the reference picks one bank entry per sample)."""

    sigma_a_mm: int
    sigma_b_mm: int
    scale: float
    base: float
    u0: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> TextureParams:
        # rng.choice(options) draws exactly rng.integers(len(options)) (the same stream; a
        # test checks it), at six times the cost of that call
        return cls(
            sigma_a_mm=SIGMA_A_MM[int(rng.integers(len(SIGMA_A_MM)))],
            sigma_b_mm=SIGMA_B_MM[int(rng.integers(len(SIGMA_B_MM)))],
            scale=float(rng.uniform(0.19, 0.21)),
            base=float(rng.uniform(0.04, 0.06)),
            u0=float(rng.uniform(0.5, 0.55)),
        )


def _lattice_positions(n_vox: int, spacing_mm: float, step_mm: float) -> np.ndarray:
    """Fractional lattice coordinates of the voxel centres 0..n_vox-1 along one axis."""
    return np.arange(n_vox) * (spacing_mm / step_mm)


def _lattice_size(n_vox: int, spacing_mm: float, step_mm: float) -> int:
    return math.floor((n_vox - 1) * spacing_mm / step_mm) + 2  # as int(np.floor(...)), cheaper


def interpolate_linear(
    lattice: np.ndarray, positions: list[np.ndarray], ws: Workspace | None = None,
    name: str = "lattice",
) -> np.ndarray:
    """Separable trilinear interpolation of ``lattice`` at per-axis fractional positions.

    positions[i] are 1-D lattice coordinates for axis i; the result has shape
    (len(positions[0]), len(positions[1]), len(positions[2])). One axis at a time, last axis
    first: the full-size pass then gathers whole contiguous planes along axis 0, which is cheap.
    With ``ws`` every pass writes into its buffers (``name``-prefixed), and the result is a view
    of one of them, valid until they are reused.
    """
    ws = ws or Workspace()
    out = lattice
    for axis in (2, 1, 0):
        pos = positions[axis]
        i0 = np.minimum(np.floor(pos).astype(np.intp), out.shape[axis] - 2)
        shape = [1, 1, 1]
        shape[axis] = -1
        w = (pos - i0).astype(np.float32).reshape(shape)
        full = list(out.shape)
        full[axis] = len(pos)
        lo = np.take(out, i0, axis=axis, out=ws.get(f"{name}{axis}_lo", tuple(full)))
        hi = np.take(out, i0 + 1, axis=axis, out=ws.get(f"{name}{axis}_hi", tuple(full)))
        hi -= lo
        hi *= w
        lo += hi
        out = lo
    return out


def _smoothed_unit_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_cells: float, ws: Workspace
) -> np.ndarray:
    """White normal noise smoothed on the lattice and scaled back to unit variance."""
    from scipy import ndimage as ndi  # here: the compiled path never loads it (0.1-0.2 s)

    noise = rng.standard_normal(shape, dtype=np.float32, out=ws.get("noise", shape))
    smooth = ws.get("noise_smooth", shape)
    ndi.gaussian_filter(noise, sigma_cells, output=smooth, truncate=_TRUNCATE, mode="wrap")
    radius = int(_TRUNCATE * sigma_cells + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_cells) ** 2)
    k /= k.sum()
    smooth /= np.float32(np.sqrt(np.sum(k**2)) ** 3)
    return smooth


def texture_field(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    params: TextureParams,
    rng: np.random.Generator,
    ws: Workspace | None = None,
) -> np.ndarray:
    """Texture T in [0, 1] (float32) on a box of ``shape`` voxels with ``spacing_mm``.

    With ``ws`` the result is a view of one of its buffers ("voxels0_lo"), valid until reused.
    No margin around the box: smoothing wraps around (mode "wrap"), which keeps the field's
    variance exact up to the faces; the opposite faces' correlation never shows, because a tumor
    box ends 3 edge sigmas past the tumor, where the texture is multiplied by zero.
    """
    ws = ws or Workspace()
    lattice, positions = texture_lattice(shape, spacing_mm, params, rng, ws)
    return interpolate_linear(lattice, positions, ws, "voxels")


def texture_lattice(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    params: TextureParams,
    rng: np.random.Generator,
    ws: Workspace,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The texture on its lattice (float32, a view of ``ws``'s "b" buffer) and the fractional
    lattice coordinates of the box's voxel centres per axis: ``texture_field`` without the
    final interpolation onto the voxels (same random draws)."""
    from scipy import ndimage as ndi  # here: the compiled path never loads it (0.1-0.2 s)

    step_b = params.sigma_b_mm / _LATTICE_SMOOTH
    step_a = max(params.sigma_a_mm / _LATTICE_SMOOTH, step_b)

    # a on its own (coarser) lattice, then onto the b lattice. sigma_a below two b-lattice
    # cells is drawn on the b lattice itself (then step_a == step_b).
    a_shape = tuple(_lattice_size(n, s, step_a) for n, s in zip(shape, spacing_mm))
    a = _smoothed_unit_noise(rng, a_shape, params.sigma_a_mm / step_a, ws)
    kappa = BANK_HALF_RANGE_IN_STD[params.sigma_a_mm]
    a *= np.float32(params.scale / (2.0 * kappa))
    a += np.float32(params.base + 0.5 * params.scale)
    np.clip(a, params.base, params.base + params.scale, out=a)
    b_shape = tuple(_lattice_size(n, s, step_b) for n, s in zip(shape, spacing_mm))
    a = interpolate_linear(a, [np.arange(m) * (step_b / step_a) for m in b_shape], ws, "b_of_a")

    # Fraction of 1-mm voxels with a > U(0, 1) in each cell (binomial, normal approximation),
    # then smoothed.
    spread = ws.get("b_spread", b_shape)
    np.subtract(np.float32(1.0), a, out=spread)
    spread *= a
    spread *= np.float32(1.0 / step_b**3)
    np.sqrt(spread, out=spread)
    spread *= rng.standard_normal(b_shape, dtype=np.float32, out=ws.get("noise", b_shape))
    spread += a
    b = ws.get("b", b_shape)
    ndi.gaussian_filter(spread, _LATTICE_SMOOTH, output=b, truncate=_TRUNCATE, mode="wrap")
    above = b > _THRESHOLD
    n_above = int(np.count_nonzero(above))
    mean = float(np.sum(b, where=above)) / n_above if n_above else float(b.mean())
    b *= np.float32(params.u0 / mean)
    np.clip(b, 0.0, 1.0, out=b)
    return b, [_lattice_positions(n, s, step_b) for n, s in zip(shape, spacing_mm)]
