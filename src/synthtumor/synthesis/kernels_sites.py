"""Compiled placement (numba): the candidate centres of one liver slice, as
``placement.LiverSites`` draws them.

The NumPy path copies the slice out of the liver box (a z-slice of an (x, y, z) array: one
byte per cache line), then erodes it with shifted ANDs of whole rows and columns and lists
the survivors, about a dozen passes over the slice per tumor. Here one pass gathers the
slice and the erosion and the listing run on that contiguous copy; the result is the same
list of indices.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit_options import OPTIONS, any_layout


@njit(**OPTIONS)
def _erode_rows(src: np.ndarray, half: int, out: np.ndarray) -> None:
    """out[i] = AND of src[i - half .. i + half] (clipped to the plane): the erosion along
    axis 0 of a (n0, n1) uint8 0/1 array, whole rows at a time."""
    n0 = src.shape[0]
    for i in range(n0):
        row = out[i]
        row[:] = src[i]
        for other in range(max(0, i - half), min(n0, i + half + 1)):
            source = src[other]
            for j in range(row.shape[0]):
                row[j] &= source[j]


@njit(**OPTIONS)
def _erode_columns(src: np.ndarray, half: int, out: np.ndarray) -> None:
    """out[:, j] = AND of src[:, j - half .. j + half] (clipped): the erosion along axis 1."""
    n1 = src.shape[1]
    for i in range(src.shape[0]):
        row, source = out[i], src[i]
        row[:] = source
        for d in range(1, half + 1):
            for j in range(n1 - d):
                row[j] &= source[j + d]
            for j in range(d, n1):
                row[j] &= source[j - d]


@njit(**OPTIONS)
def _flat_hits(mask: np.ndarray) -> np.ndarray:
    """The C-order flat indices of the non-zero values of a 2-D array (``np.flatnonzero``)."""
    flat = mask.reshape(-1)
    count = 0
    for p in range(flat.shape[0]):
        count += flat[p] != 0
    out = np.empty(count, np.int64)
    n = 0
    for p in range(flat.shape[0]):
        if flat[p] != 0:
            out[n] = p
            n += 1
    return out


@any_layout(0)
@njit(**OPTIONS)
def slice_candidates(plane: np.ndarray, half0: int, half1: int) -> np.ndarray:
    """Flat indices (C order over ``plane``'s (n0, n1), int64) of the voxels of the liver
    slice ``plane`` (non-zero = liver, any layout) that survive the erosion with a (2 half0 + 1)
    x (2 half1 + 1) square whose window is clipped at the border (``placement._erode_square``),
    or of every liver voxel if none survives (``LiverSites._slice_candidates``)."""
    n0, n1 = plane.shape
    liver = np.empty((n0, n1), np.uint8)
    for i in range(n0):
        for j in range(n1):
            liver[i, j] = plane[i, j] != 0
    rows = np.empty((n0, n1), np.uint8)
    _erode_rows(liver, half0, rows)
    eroded = np.empty((n0, n1), np.uint8)
    _erode_columns(rows, half1, eroded)
    hits = _flat_hits(eroded)
    return hits if hits.shape[0] else _flat_hits(liver)
