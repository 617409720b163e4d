"""The shape's separable tables of one tumor (``shape.plane_tables``), compiled (numba).

A tumor's lines and displacement tables are small (a few thousand values), so in NumPy they
are mostly per-call overhead: about thirty calls, 0.1 ms per tumor box, twice per tumor of
most sizes (its probe, then its box). Here they are one call, with the same float64
operations in the same order (``shape.contract``), rounded to float32 as NumPy rounds them:
the same bits (``tests/test_shape_terms.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit_options import OPTIONS


@njit(**OPTIONS)
def _axis_terms(x: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """One axis's line x / a (float32) and its quadratic basis at t = x / 2a clipped to
    [-1, 1] ((n, 3) float64), as ``shape.plane_tables`` and ``shape._basis`` compute them."""
    n = x.shape[0]
    line = np.empty(n, np.float32)
    basis = np.empty((n, 3))
    for p in range(n):
        scaled = x[p] / a
        line[p] = np.float32(scaled)
        t = min(max(scaled * 0.5, -1.0), 1.0)
        basis[p, 0] = 0.5 * t * (t - 1.0)
        basis[p, 1] = 1.0 - t * t
        basis[p, 2] = 0.5 * t * (t + 1.0)
    return line, basis


@njit(**OPTIONS)
def _table_pair(left: np.ndarray, control: np.ndarray, right: np.ndarray, a_left: float,
                a_right: float) -> np.ndarray:
    """The plane's two tables (2, n_l, n_r) float32: ``shape.contract`` of the bases with the
    plane's (2, 3, 3) control values, divided by the semi-axis of each table's axis."""
    n_left, n_right = left.shape[0], right.shape[0]
    out = np.empty((2, n_left, n_right), np.float32)
    inner = np.empty(3)
    for table in range(2):
        divisor = a_left if table == 0 else a_right
        for p in range(n_left):
            for m in range(3):
                s = left[p, 0] * control[table, 0, m]
                s += left[p, 1] * control[table, 1, m]
                s += left[p, 2] * control[table, 2, m]
                inner[m] = s
            for q in range(n_right):
                v = inner[0] * right[q, 0]
                v += inner[1] * right[q, 1]
                v += inner[2] * right[q, 2]
                out[table, p, q] = np.float32(v / divisor)
    return out


@njit(**OPTIONS)
def shape_tables(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, semi_axes_mm: np.ndarray, control: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The 9 line and table arrays the kernels take (``painting._shape_kernel_terms``: lx,
    the xy and xz tables of x, ly, the xy and yz tables of y, lz, the yz and xz tables of z)
    from the box's axes (mm from the centre, float64) and the distortion's (3, 2, 3, 3)
    control values (mm)."""
    a = semi_axes_mm
    lx, bx = _axis_terms(x, a[0])
    ly, by = _axis_terms(y, a[1])
    lz, bz = _axis_terms(z, a[2])
    xy = _table_pair(bx, control[0], by, a[0], a[1])
    yz = _table_pair(by, control[1], bz, a[1], a[2])
    xz = _table_pair(bx, control[2], bz, a[0], a[2])
    return lx, xy[0], xz[0], ly, xy[1], yz[0], lz, yz[1], xz[1]
