"""The edge's reach of a tumor, compiled (numba): box dilation of its label on the tumor's box,
and the per-row extent of the dilated mask along the last axis.

A tumor's change is zero farther than the edge's reach from its label. The extents let the
per-voxel passes (``kernels.change_pass``, ``kernels.paint_pass``) visit only the part of
each row where the change can be non-zero: about a third of the box for a mix of tumors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit_options import OPTIONS

EMPTY = 1 << 40  # the start of an empty row's extent (its end: -EMPTY)


@njit(**OPTIONS)
def _window_extrema(lo: np.ndarray, hi: np.ndarray, r: int, out_lo: np.ndarray,
                    out_hi: np.ndarray) -> None:
    """out_lo[j] = min(lo[j - r .. j + r]), out_hi[j] = max(hi[..]) along a 1-D row (clipped
    window); shifted views, so that the compiler vectorises each shift."""
    n = lo.shape[0]
    for j in range(n):
        out_lo[j], out_hi[j] = lo[j], hi[j]
    for d in range(1, min(r, n - 1) + 1):
        a, b, c, e = lo[d:], hi[d:], out_lo[: n - d], out_hi[: n - d]
        for m in range(n - d):
            c[m], e[m] = min(c[m], a[m]), max(e[m], b[m])
        a, b, c, e = lo[: n - d], hi[: n - d], out_lo[d:], out_hi[d:]
        for m in range(n - d):
            c[m], e[m] = min(c[m], a[m]), max(e[m], b[m])


@njit(**OPTIONS)
def widen_rows(rows: np.ndarray, rx: int, ry: int, rz: int, nz: int, tmp: np.ndarray) -> None:
    """Per-row k extents (2, nx, ny) of a mask -> those of its box dilation by (rx, ry, rz)
    voxels, in place (``tmp``: scratch of the same shape): the lowest start and highest end
    within the (x, y) window, widened by rz and clipped to [0, nz); empty rows get (0, 0).
    Exact, since a box dilation of a row's set of k is its hull widened by rz."""
    nx, ny = rows.shape[1], rows.shape[2]
    for i in range(nx):
        _window_extrema(rows[0, i], rows[1, i], ry, tmp[0, i], tmp[1, i])
    lo, hi = rows[0], rows[1]
    for i in range(nx):
        for j in range(ny):
            lo[i, j], hi[i, j] = EMPTY, -EMPTY
        for ii in range(max(0, i - rx), min(nx, i + rx + 1)):
            for j in range(ny):
                lo[i, j], hi[i, j] = min(lo[i, j], tmp[0, ii, j]), max(hi[i, j], tmp[1, ii, j])
        for j in range(ny):
            a, b = max(lo[i, j] - rz, 0), min(hi[i, j] + rz, nz)
            empty = a >= b
            lo[i, j], hi[i, j] = (0 if empty else a), (0 if empty else b)


@njit(**OPTIONS)
def dilate_planes(src: np.ndarray, dst: np.ndarray, reach: int) -> None:
    """dst[i] = OR of src[i - reach .. i + reach] along axis 0 (whole contiguous planes)."""
    n, m = src.shape
    for i in range(n):
        lo, hi = max(0, i - reach), min(n, i + reach + 1)
        for k in range(m):
            dst[i, k] = src[lo, k]
        for s in range(lo + 1, hi):
            for k in range(m):
                dst[i, k] |= src[s, k]


@njit(**OPTIONS)
def _dilate_row(a: np.ndarray, b: np.ndarray, reach: int) -> None:
    """b = a dilated by ``reach`` along a 1-D row: shifted ORs."""
    n = a.shape[0]
    for k in range(n):
        b[k] = a[k]
    for d in range(1, min(reach, n - 1) + 1):
        # views shifted by d, so that both sides use the loop index itself: the
        # compiler vectorises that, not an offset index
        ahead, behind = a[d:], b[: n - d]
        for k in range(n - d):
            behind[k] |= ahead[k]
        ahead, behind = a[: n - d], b[d:]
        for k in range(n - d):
            behind[k] |= ahead[k]


@njit(**OPTIONS)
def _dilate_rows(src: np.ndarray, dst: np.ndarray, reach: int) -> None:
    """The same along the last axis of a (rows, n) array, row by row."""
    for row in range(src.shape[0]):
        _dilate_row(src[row], dst[row], reach)


@njit(**OPTIONS)
def dilate_rows_where(src: np.ndarray, dst: np.ndarray, reach: int, rows: np.ndarray) -> None:
    """``_dilate_rows`` on (nx, ny, nz), writing zeros for the rows that ``rows`` (2, nx, ny:
    start, end of the set k) marks empty."""
    nx, ny, nz = src.shape
    for i in range(nx):
        for j in range(ny):
            if rows[0, i, j] < rows[1, i, j]:
                _dilate_row(src[i, j], dst[i, j], reach)
            else:
                for k in range(nz):
                    dst[i, j, k] = 0


@njit(**OPTIONS)
def dilate_y_within(src: np.ndarray, dst: np.ndarray, reach: int, rows: np.ndarray) -> None:
    """dst[i, j, k] = OR of src[i, j - reach .. j + reach, k], only for k in [rows[0, i, j],
    rows[1, i, j]) (dst is not written elsewhere)."""
    nx, ny = src.shape[0], src.shape[1]
    for i in range(nx):
        for j in range(ny):
            # unsigned k: no negative-index wraparound, so the loops vectorise
            k0, k1 = np.uint64(rows[0, i, j]), np.uint64(rows[1, i, j])
            lo = max(0, j - reach)
            for k in range(k0, k1):
                dst[i, j, k] = src[i, lo, k]
            for jj in range(lo + 1, min(ny, j + reach + 1)):
                for k in range(k0, k1):
                    dst[i, j, k] |= src[i, jj, k]


@njit(**OPTIONS)
def box_dilate3(
    mask: np.ndarray, rx: int, ry: int, rz: int, out: np.ndarray, tmp: np.ndarray
) -> np.ndarray:
    """Box dilation of a C-contiguous (nx, ny, nz) uint8 mask by (rx, ry, rz) voxels into
    ``out``, returned (``tmp``: scratch of the same shape); as ``morphology.box_dilate``.
    Each axis is a loop of whole-row ORs, which the compiler vectorises."""
    nx, ny, nz = mask.shape
    _dilate_rows(mask.reshape(nx * ny, nz), out.reshape(nx * ny, nz), rz)
    dilate_planes(out.reshape(nx, ny * nz), tmp.reshape(nx, ny * nz), rx)
    for i in range(nx):  # axis 1 is the outer axis of each x plane
        dilate_planes(tmp[i], out[i], ry)
    return out
