"""Nearest-neighbour resampling of a volume onto another grid, through world (RAS mm) space."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from synthtumor.imaging.volume import Volume

# Grids closer than this (mm, element-wise on the affine) are treated as identical.
SAME_GRID_ATOL_MM = 1e-3

# An off-axis matrix term is ignored when it moves a source coordinate by less than this many
# voxels across the whole reference grid, so the fast separable path gives the same answer.
_OFF_AXIS_TOL_VOXELS = 1e-3


def same_grid(
    affine_a: np.ndarray,
    shape_a: Sequence[int],
    affine_b: np.ndarray,
    shape_b: Sequence[int],
) -> bool:
    """True if two grids have equal shapes and affines equal within 1e-3 mm."""
    return tuple(int(s) for s in shape_a) == tuple(int(s) for s in shape_b) and bool(
        np.allclose(affine_a, affine_b, rtol=0.0, atol=SAME_GRID_ATOL_MM)
    )


def resample_nearest(
    volume: Volume,
    reference_affine: np.ndarray,
    reference_shape: Sequence[int],
) -> np.ndarray:
    """Sample ``volume`` at the voxel centres of a reference grid (nearest neighbour).

    For each reference voxel index o = (i, j, k): world = reference_affine @ o (RAS mm), and
    the source index is round(inv(volume.affine) @ world), rounding halves up. Reference
    voxels that fall outside the source array get 0. Orientation differences (flipped or
    permuted axes, different origins and spacings) are handled, since the mapping goes
    through world coordinates.

    Args:
        volume: source image, array in (x, y, z) order.
        reference_affine: 4x4 voxel-index -> RAS mm matrix of the target grid.
        reference_shape: target shape (x, y, z) in voxels.

    Returns:
        Array of ``reference_shape`` with the source dtype. When the grids are the same
        (see ``same_grid``) the source array itself is returned, not a copy.
    """
    ref_affine = np.asarray(reference_affine, dtype=np.float64)
    shape = tuple(int(s) for s in reference_shape)
    if len(shape) != 3 or ref_affine.shape != (4, 4):
        raise ValueError("reference must be a 3D shape and a 4x4 affine")
    src = volume.array
    if same_grid(volume.affine, src.shape, ref_affine, shape):
        return src
    # reference voxel index -> source voxel index; affine, so index math only
    mapping = np.linalg.inv(volume.affine) @ ref_affine
    columns = _axis_columns(mapping[:3, :3], shape)
    if columns is not None:
        return _resample_separable(src, mapping, shape, columns)
    return _resample_general(src, mapping, shape)


def _axis_columns(matrix: np.ndarray, shape: tuple[int, int, int]) -> list[int] | None:
    """For an axis-aligned mapping, the reference axis feeding each source axis; else None.

    Axis-aligned means every source axis depends on exactly one reference axis (a scaled,
    possibly flipped permutation), the usual case between scanner and NIfTI orientations.
    """
    extent = np.maximum(np.asarray(shape, dtype=np.float64) - 1.0, 1.0)
    significant = np.abs(matrix) * extent[None, :] >= _OFF_AXIS_TOL_VOXELS
    columns: list[int] = []
    for row in significant:
        hits = np.flatnonzero(row)
        if hits.size != 1:
            return None
        columns.append(int(hits[0]))
    return columns if len(set(columns)) == 3 else None


def _resample_separable(
    src: np.ndarray,
    mapping: np.ndarray,
    shape: tuple[int, int, int],
    columns: list[int],
) -> np.ndarray:
    """Axis-aligned case: one 1D index table per axis, then a single gather."""
    indices: list[np.ndarray] = []
    outside: list[np.ndarray] = []
    for axis, col in enumerate(columns):
        coord = mapping[axis, col] * np.arange(shape[col]) + mapping[axis, 3]
        idx = np.floor(coord + 0.5).astype(np.intp)
        out_of_range = (idx < 0) | (idx >= src.shape[axis])
        indices.append(np.where(out_of_range, 0, idx))
        outside.append(out_of_range)
    if src.size == 0:
        return np.zeros(shape, dtype=src.dtype)
    # gathered axis `a` runs along reference axis columns[a]; reorder to reference order
    gathered = src[np.ix_(*indices)]
    out = np.ascontiguousarray(gathered.transpose(np.argsort(columns)))
    for axis, col in enumerate(columns):
        if outside[axis].any():
            sel: list[slice | np.ndarray] = [slice(None)] * 3
            sel[col] = outside[axis]
            out[tuple(sel)] = 0
    return out


def _resample_general(
    src: np.ndarray, mapping: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """Oblique case, with scipy.

    scipy maps output index o to input index ``mapping @ o`` (no half-voxel shift), which is
    what we need. ``mode='grid-constant'`` is required: with ``'constant'`` scipy returns
    cval for any coordinate outside [0, n-1], e.g. -0.4, whose nearest voxel is 0.
    """
    work = src.view(np.uint8) if src.dtype == np.bool_ else src
    out: np.ndarray = ndimage.affine_transform(
        work, mapping, output_shape=shape, order=0, mode="grid-constant", cval=0
    )
    return out.view(np.bool_) if src.dtype == np.bool_ else out


def resample_to_spacing(
    volume: Volume, spacing_mm: float | Sequence[float], *, order: int = 1
) -> Volume:
    """Resample a volume to a new voxel size over the same field of view (same axes order).

    The outer voxel faces stay where they were: the new shape is round(extent / spacing) per
    axis and the affine is rescaled to match exactly. ``order`` 1 (linear) suits CT in HU,
    0 (nearest) suits label maps. Returns a new Volume (float32 for order > 0).
    """
    target = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    old_spacing = np.asarray(volume.spacing)
    old_shape = np.asarray(volume.shape)
    new_shape = np.maximum(np.round(old_shape * old_spacing / target), 1).astype(int)
    step = old_shape / new_shape  # new voxel size in old voxels, exact for this shape
    array = volume.array if order == 0 else volume.array.astype(np.float32, copy=False)
    out = ndimage.zoom(array, new_shape / old_shape, order=order, mode="nearest", grid_mode=True)
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] * step
    # voxel 0's centre sits half a new voxel inside the old grid's first face
    affine[:3, 3] = volume.affine[:3, :3] @ (0.5 * step - 0.5) + volume.affine[:3, 3]
    return Volume(out, affine, volume.path)
