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
_SLIDE_MAX = 120  # reach (voxels) up to which a uint8 window count cannot overflow


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
    """dst[i] = OR of src[i - reach .. i + reach] along axis 0 (whole contiguous planes), as
    0/1. A window count slides along axis 0 (one add and one subtract per voxel, however far
    the reach); beyond ``_SLIDE_MAX`` the count could overflow uint8: ORs of every plane."""
    n, m = src.shape
    if reach > _SLIDE_MAX:
        for i in range(n):
            lo, hi = max(0, i - reach), min(n, i + reach + 1)
            for k in range(m):
                dst[i, k] = src[lo, k] != 0
            for t in range(lo + 1, hi):
                for k in range(m):
                    dst[i, k] |= src[t, k] != 0
        return
    count = np.zeros(m, np.uint8)
    for t in range(min(reach, n - 1) + 1):
        for k in range(m):
            count[k] += src[t, k] != 0
    for i in range(n):
        for k in range(m):
            dst[i, k] = count[k] > 0
        if i + reach + 1 < n:
            for k in range(m):
                count[k] += src[i + reach + 1, k] != 0
        if i - reach >= 0:
            for k in range(m):
                count[k] -= src[i - reach, k] != 0


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
    """``_dilate_rows`` on (nx, ny, nz), given ``rows`` (2, nx, ny: start and end of each
    row's set k): zeros for an empty row; for a row whose set is one run (most rows of a
    tumor), that run widened by ``reach``, written at once; else shifted ORs."""
    nx, ny, nz = src.shape
    for i in range(nx):
        for j in range(ny):
            first, end = rows[0, i, j], rows[1, i, j]
            if first >= end:
                for k in range(nz):
                    dst[i, j, k] = 0
                continue
            run = np.uint8(1)
            for k in range(np.uint64(first), np.uint64(end)):  # unsigned: vectorised
                run &= src[i, j, k] != 0
            if run:
                a, b = max(first - reach, 0), min(end + reach, nz)
                for k in range(nz):
                    dst[i, j, k] = (k >= a) & (k < b)
            else:
                _dilate_row(src[i, j], dst[i, j], reach)


@njit(**OPTIONS)
def dilate_y_within(src: np.ndarray, dst: np.ndarray, reach: int, rows: np.ndarray) -> None:
    """dst[i, j, k] = OR of the 0/1 src[i, j - reach .. j + reach, k], only for k in
    [rows[0, i, j], rows[1, i, j]) (dst is not written elsewhere). A window count slides
    along j, as in ``dilate_planes``."""
    nx, ny, nz = src.shape
    if reach > _SLIDE_MAX:
        wide = np.empty((ny, nz), np.uint8)
        for i in range(nx):
            dilate_planes(src[i], wide, reach)
            for j in range(ny):
                for k in range(np.uint64(rows[0, i, j]), np.uint64(rows[1, i, j])):
                    dst[i, j, k] = wide[j, k]
        return
    count = np.zeros(nz, np.uint8)
    for i in range(nx):
        count[:] = 0
        for t in range(min(reach, ny - 1) + 1):
            for k in range(nz):
                count[k] += src[i, t, k]
        for j in range(ny):
            # unsigned k: no negative-index wraparound, so the loop vectorises
            for k in range(np.uint64(rows[0, i, j]), np.uint64(rows[1, i, j])):
                dst[i, j, k] = count[k] > 0
            if j + reach + 1 < ny:
                for k in range(nz):
                    count[k] += src[i, j + reach + 1, k]
            if j - reach >= 0:
                for k in range(nz):
                    count[k] -= src[i, j - reach, k]


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
