"""Compiled per-voxel kernels (numba) for painting one tumor on its box.

The NumPy path of ``synthesize`` makes about forty whole-box passes per tumor (shape, gradient,
edge, dilation, texture interpolation, paint), each reading and writing float32 boxes of up to a
few million voxels. These kernels fuse them into five passes and skip the arithmetic wherever the
result is known to be zero: outside the liver, and beyond the edge's reach, where whole stretches
of each row are skipped using the reach's per-row extents (``kernels_reach.py``). They repeat the
NumPy path's float32 arithmetic operation by operation, so labels are identical and HU agree to
within rounding of the transcendental functions (inline float32 exp and tanh,
``kernels_edge.py``, agreeing with NumPy's to about 1e-7; checked by a parity test on real CT).

Compiled on first use and cached on disk (``cache=True``); single-threaded on purpose: the
training loader's worker processes are the parallelism.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from .jit_options import OPTIONS, any_layout
from .kernels_edge import ball_weight, flat_weight, weight_at
from .kernels_reach import (
    EMPTY,
    dilate_planes,
    dilate_rows_where,
    dilate_y_within,
    widen_rows,
)
from .kernels_reach import box_dilate3 as box_dilate3  # re-exported (its former home)


@njit(inline="always", **OPTIONS)
def r2_at(terms: tuple[np.ndarray, ...], i: int, j: int, k: int) -> np.float32:
    """|q / a|^2 of the distorted ellipsoid at voxel (i, j, k): terms are the 9 line and table
    arrays of ``shape.shape_terms`` (lx, t0a, t0b, ly, t1a, t1b, lz, t2a, t2b; see
    ``shape_pass``), in the NumPy path's float32 operation order. Inlined into every pass that
    evaluates the shape, so it costs what the written-out arithmetic does."""
    lx, t0a, t0b, ly, t1a, t1b, lz, t2a, t2b = terms
    w = (lx[i] - t0a[i, j]) - t0b[i, k]
    s: np.float32 = w * w
    w = (ly[j] - t1a[i, j]) - t1b[j, k]
    s += w * w
    w = (lz[k] - t2a[j, k]) - t2b[i, k]
    s += w * w
    return s


@njit(inline="always", **OPTIONS)
def z_slopes(row: np.ndarray, zf: np.ndarray, k0: np.uint64, k1: np.uint64,
             out: np.ndarray) -> None:
    """out[k] = (row[k + 1] - row[k - 1]) * zf[k] for k in [k0, k1), one-sided at the faces:
    ``np.gradient`` along the last axis as ``neighbours`` gives it (zf: its factors). The
    neighbours are read as k +- 1 on the interior, not through the index arrays: a read
    through an index array is a gather per voxel, which kept the loops from vectorising
    (a quarter of the appearance path's shape pass)."""
    n = np.uint64(row.shape[0])
    one = np.uint64(1)
    lo = max(k0, one)  # the interior is [1, n - 1)
    hi = max(min(k1, n - one), lo) if n > one else lo
    if k0 == 0 and k1 > 0:  # the face k = 0
        out[0] = (row[min(one, n - one)] - row[0]) * zf[0]
    for k in range(lo, hi):
        out[k] = (row[k + one] - row[k - one]) * zf[k]
    for k in range(hi, k1):  # the face k = n - 1
        out[k] = (row[k] - row[k - one]) * zf[k]


@njit(**OPTIONS)
def shape_pass(  # noqa: PLR0913
    lx: np.ndarray, t0a: np.ndarray, t0b: np.ndarray, ly: np.ndarray, t1a: np.ndarray,
    t1b: np.ndarray, lz: np.ndarray, t2a: np.ndarray, t2b: np.ndarray, label: np.ndarray,
    r2: np.ndarray, rho: np.ndarray, inside: np.ndarray, rows: np.ndarray,
) -> int:
    """r2 = |q / a|^2 and rho = sqrt(r2) on the box; inside = (r2 <= 1) & (label > 0).

    l*: (n,) lines; t0a (nx, ny), t0b (nx, nz): the tables of axis 0; t1a (nx, ny),
    t1b (ny, nz): axis 1; t2a (ny, nz), t2b (nx, nz): axis 2 (``shape.shape_terms`` order).
    rows: (2, nx, ny) int64, written: per row the first and one past the last inside k
    (``EMPTY`` and -``EMPTY`` if none). Returns the number of inside voxels.
    """
    nx, ny, nz = r2.shape
    one = np.float32(1.0)
    terms = (lx, t0a, t0b, ly, t1a, t1b, lz, t2a, t2b)
    count = 0
    for i in range(nx):
        for j in range(ny):
            before = count
            for k in range(nz):
                s = r2_at(terms, i, j, k)
                r2[i, j, k] = s
                rho[i, j, k] = np.sqrt(s)
                hit = (s <= one) & (label[i, j, k] > 0)
                inside[i, j, k] = hit
                count += int(hit)
            rows[0, i, j], rows[1, i, j] = EMPTY, -EMPTY
            if count > before:  # the row's extent, scanned from both ends
                first, last = 0, nz - 1
                while not inside[i, j, first]:
                    first += 1
                while not inside[i, j, last]:
                    last -= 1
                rows[0, i, j], rows[1, i, j] = first, last + 1
    return count


@njit(**OPTIONS)
def mask_profiles(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a C-contiguous (nx, ny, nz) uint8 mask: the OR of each x plane's values (nx,) and
    of each (y, z) column's over x (ny, nz), in one pass of vectorised ORs (the NumPy path
    reads the mask twice): non-zero where the mask is, and above 1 where a value is.
    Four planes at a time: the column ORs (a plane's size, in L2) are then read and written
    once per four planes read from memory (one at a time: 12 GB/s here, four: 19 GB/s)."""
    nx = mask.shape[0]
    flat = mask.reshape(nx, -1)
    m = flat.shape[1]
    outer = np.zeros(nx, np.uint8)
    plane = np.zeros(m, np.uint8)
    last = nx - nx % 4
    for i in range(0, last, 4):
        a, b, c, d = flat[i], flat[i + 1], flat[i + 2], flat[i + 3]
        ha = hb = hc = hd = np.uint8(0)
        for p in range(m):
            ha |= a[p]
            hb |= b[p]
            hc |= c[p]
            hd |= d[p]
            plane[p] |= (a[p] | b[p]) | (c[p] | d[p])
        outer[i], outer[i + 1], outer[i + 2], outer[i + 3] = ha, hb, hc, hd
    for i in range(last, nx):
        hit = np.uint8(0)
        for p in range(m):
            v = flat[i, p]
            plane[p] |= v
            hit |= v
        outer[i] = hit
    return outer, plane.reshape(mask.shape[1], mask.shape[2])


@any_layout(1)
@njit(**OPTIONS)
def overlap_count(terms: tuple[np.ndarray, ...], mask: np.ndarray) -> int:
    """Voxels of the box inside the shape (r2 <= 1, before clipping to the liver) where
    ``mask`` (bool, the box's) is set: ``count_nonzero(evaluate_shape(...).inside & mask)``
    with the same float32 r2; terms as ``shape_and_reach``."""
    nx, ny, nz = mask.shape
    one = np.float32(1.0)
    count = 0
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if mask[i, j, k] and r2_at(terms, i, j, k) <= one:
                    count += 1
    return count


@njit(**OPTIONS)
def probe_distance(
    terms: tuple[np.ndarray, ...], grads: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...],
    r2: np.ndarray, distance: np.ndarray,
) -> None:
    """The signed distance (mm) to the tumor surface on a (probe) grid, as
    ``shape.evaluate_shape`` computes it: terms as ``shape_and_reach``, grads: ``neighbours``
    per axis; ``r2`` holds rho, then r2 is not needed and is overwritten."""
    (xh, xl, xf), (yh, yl, yf), (zh, zl, zf) = grads
    nx, ny, nz = r2.shape
    zero, one, tiny = np.float32(0.0), np.float32(1.0), np.float32(1e-6)
    rho = r2
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                rho[i, j, k] = np.sqrt(r2_at(terms, i, j, k))
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                d = (rho[xh[i], j, k] - rho[xl[i], j, k]) * xf[i]
                g = zero + d * d
                d = (rho[i, yh[j], k] - rho[i, yl[j], k]) * yf[j]
                g += d * d
                d = (rho[i, j, zh[k]] - rho[i, j, zl[k]]) * zf[k]
                g += d * d
                distance[i, j, k] = (rho[i, j, k] - one) / max(np.sqrt(g), tiny)


@njit(inline="always", **OPTIONS)
def grow_box(box: np.ndarray, i: int, j: int, first: int, last: int) -> None:
    """Widen ``box`` ((6,) int64, start and stop per axis) to hold voxels ``first`` to
    ``last`` (inclusive) of row (i, j). Start it as (nx, -1, ny, -1, nz, -1): empty."""
    box[0], box[1] = min(box[0], i), max(box[1], i + 1)
    box[2], box[3] = min(box[2], j), max(box[3], j + 1)
    box[4], box[5] = min(box[4], first), max(box[5], last + 1)


@njit(**OPTIONS)
def probe_box(
    terms: tuple[np.ndarray, ...], grads: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...],
    limit: np.float32, r2: np.ndarray, distance: np.ndarray, box: np.ndarray,
) -> bool:
    """``probe_distance``, then the bounding box of the probe points whose distance is at
    most ``limit`` (mm; as ``bounding_box(distance <= limit)``, compared in float32): box (6,)
    int64, written as start and stop per axis. False if no point is that near."""
    probe_distance(terms, grads, r2, distance)
    nx, ny, nz = distance.shape
    box[0], box[1], box[2], box[3], box[4], box[5] = nx, -1, ny, -1, nz, -1
    for i in range(nx):
        for j in range(ny):
            first, last = nz, -1
            for k in range(nz):
                if distance[i, j, k] <= limit:
                    first = min(first, k)
                    last = k
            if last >= 0:
                grow_box(box, i, j, first, last)
    return bool(box[1] >= 0)


@any_layout(1)
@njit(**OPTIONS)
def shape_and_reach(  # noqa: PLR0913
    terms: tuple[np.ndarray, ...], label: np.ndarray, centre: np.ndarray, reach: np.ndarray,
    r2: np.ndarray, rho: np.ndarray, inside: np.ndarray, out: np.ndarray, tmp: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, int, bool]:
    """``shape_pass`` (terms: its 9 line and table arguments), then the edge's reach: the
    labelled tumor dilated by ``reach`` (3,) voxels (as ``box_dilate3``) into ``out``, valid
    only within ``rows`` (it is zero elsewhere, and not written there). A tumor
    with no voxel inside keeps its ``centre`` voxel if that is liver. rows: (2, nx, ny) int64,
    written: per row the start and end of the reach mask's k (both 0 for an empty row), so
    that later passes skip where the change is zero. Returns the reach mask, the inside
    count, and whether the centre was forced."""
    lx, t0a, t0b, ly, t1a, t1b, lz, t2a, t2b = terms
    count = shape_pass(lx, t0a, t0b, ly, t1a, t1b, lz, t2a, t2b, label, r2, rho, inside, rows)
    forced = count == 0
    if forced:
        i, j, k = centre[0], centre[1], centre[2]
        inside[i, j, k] = label[i, j, k] > 0
        count = 1 if inside[i, j, k] else 0
        if count:
            rows[0, i, j], rows[1, i, j] = k, k + 1
    # box_dilate3, skipping rows without tumor and writing the last axis only within rows
    nx, ny, nz = inside.shape
    dilate_rows_where(inside.view(np.uint8), out, reach[2], rows)
    dilate_planes(out.reshape(nx, ny * nz), tmp.reshape(nx, ny * nz), reach[0])
    widen_rows(rows, reach[0], reach[1], reach[2], nz, np.empty_like(rows))
    dilate_y_within(tmp, out, reach[1], rows)
    return out, count, forced


@lru_cache(maxsize=1024)
def neighbours(n: int, step_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the derivative along an axis of n voxels, as ``np.gradient`` and ``evaluate_shape``
    take it: per index the two neighbours (central inside, one-sided at the faces) and the
    float32 factor (1 / 2 step inside, 1 / step at the faces, 0 if n < 2). Cached: do not
    modify."""
    inv = np.float32(1.0 / step_mm)
    hi = np.minimum(np.arange(n) + 1, n - 1)
    lo = np.maximum(np.arange(n) - 1, 0)
    factor = np.full(n, inv * np.float32(0.5), np.float32)
    factor[[0, -1]] = inv
    if n < 2:
        factor[:] = 0.0
    return hi, lo, factor


@njit(**OPTIONS)
def texture_planes(
    lattice: np.ndarray, idx1: np.ndarray, w1: np.ndarray, idx2: np.ndarray, w2: np.ndarray,
    out: np.ndarray,
) -> None:
    """The texture lattice (l0, l1, l2) interpolated onto the box's y and z voxels, (l0, ny,
    nz): the last two of ``texture.interpolate_linear``'s three passes, in its order."""
    l0 = lattice.shape[0]
    ny, nz = out.shape[1], out.shape[2]
    for a in range(l0):
        for j in range(ny):
            b, fb = idx1[j], w1[j]
            for k in range(nz):
                c, fc = idx2[k], w2[k]
                v0 = lattice[a, b, c] + (lattice[a, b, c + 1] - lattice[a, b, c]) * fc
                v1 = lattice[a, b + 1, c] + (lattice[a, b + 1, c + 1] - lattice[a, b + 1, c]) * fc
                out[a, j, k] = v0 + (v1 - v0) * fb


@any_layout(2)
@njit(**OPTIONS)
def change_pass(  # noqa: PLR0913
    rho: np.ndarray, reach_mask: np.ndarray, label: np.ndarray,
    grad_x: tuple[np.ndarray, np.ndarray, np.ndarray],
    grad_y: tuple[np.ndarray, np.ndarray, np.ndarray],
    grad_z: tuple[np.ndarray, np.ndarray, np.ndarray], lattice: np.ndarray,
    look_x: tuple[np.ndarray, ...], look_y: tuple[np.ndarray, ...],
    look_z: tuple[np.ndarray, ...], planes: np.ndarray, edge: np.ndarray, force: np.ndarray,
    rows: np.ndarray, full: bool, distance: np.ndarray, delta: np.ndarray,
) -> None:
    """The HU change of one tumor on its box: soft edge x confinement x texture x -drop, in
    the liver (``painting._change_numpy`` without the optional effects).

    rho: sqrt(r2) from ``shape_pass``; reach_mask: uint8, the labelled tumor dilated by the
    edge's reach (change 0 elsewhere); label: the box's labels (change 0 outside the liver);
    grad_*: ``neighbours`` of each axis; lattice: the texture lattice, look_*: per axis each
    voxel's lower lattice index and float32 fraction; planes: scratch for ``texture_planes``;
    edge: float32 (kind, inv_sigma, radius, floor_r, curvature, r_max, cdf_floor, cdf_scale,
    scale): kind 0 = flat profile (``effects.soft_edge``), 1 = ball (``effects.soft_edge_ball``);
    scale: the change at weight 1 (-drop, HU). force: (3,) voxel whose weight is at least 0.5
    (a tumor that would vanish), or (-1, -1, -1). rows: (2, nx, ny) the reach mask's k extent
    per row (``shape_and_reach``): the change is zero outside it, so only there is anything
    computed. full: also write ``distance`` on every voxel and zeros into ``delta`` outside
    ``rows`` (for the optional effects, which read both on the whole box); else both are
    written only within ``rows``.
    Writes ``distance`` (signed, mm) and ``delta`` (HU).
    """
    nx, ny, nz = rho.shape
    texture_planes(lattice, look_y[0], look_y[1], look_z[0], look_z[1], planes)
    idx0, w0 = look_x
    xh, xl, xf = grad_x
    yh, yl, yf = grad_y
    zf = grad_z[2]  # the z neighbours are k +- 1 (z_slopes)
    flat, inv_sigma, radius, floor_r = edge[0] == 0, edge[1], edge[2], edge[3]
    curvature, r_max, cdf_floor, cdf_scale, scale = edge[4], edge[5], edge[6], edge[7], edge[8]
    zero, one, three, tiny = np.float32(0.0), np.float32(1.0), np.float32(3.0), np.float32(1e-6)
    dz = np.empty(nz, np.float32)
    for i in range(nx):
        a, fa, fx, xu, xd = idx0[i], w0[i], xf[i], xh[i], xl[i]
        for j in range(ny):
            fy, yu, yd = yf[j], yh[j], yl[j]
            # unsigned k: no negative-index wraparound, so the loops below vectorise without
            # gathers (signed k from an array measured 1.7x slower than whole rows)
            k0, k1 = np.uint64(rows[0, i, j]), np.uint64(rows[1, i, j])
            if full:
                d0, d1 = np.uint64(0), np.uint64(nz)
                for k in range(k0):
                    delta[i, j, k] = zero
                for k in range(k1, d1):
                    delta[i, j, k] = zero
            else:
                d0, d1 = k0, k1
            # the distance on the row's extent, branch-free so that the compiler vectorises it
            # (plain indexing: a row view per row costs more than the arithmetic on short rows)
            z_slopes(rho[i, j], zf, d0, d1, dz)
            for k in range(d0, d1):
                d = (rho[xu, j, k] - rho[xd, j, k]) * fx
                g = zero + d * d
                d = (rho[i, yu, k] - rho[i, yd, k]) * fy
                g += d * d
                g += dz[k] * dz[k]
                distance[i, j, k] = (rho[i, j, k] - one) / max(np.sqrt(g), tiny)
            # the weight on every voxel of the extent and a select, no branches: vectorised
            # (branching per voxel on the profile's range took 1.5x as long; one loop per
            # profile, as a branch on the profile inside the loop took 2.5x as long). The
            # tests combine with & : a short-circuit `and` is such a branch, and kept these
            # loops scalar
            if flat:
                for k in range(k0, k1):
                    t = distance[i, j, k] * inv_sigma
                    w = flat_weight(min(max(t, -three), three), cdf_floor, cdf_scale)
                    keep = (t < three) & (reach_mask[i, j, k] != 0) & (label[i, j, k] != 0)
                    texture = planes[a, j, k] + (planes[a + 1, j, k] - planes[a, j, k]) * fa
                    delta[i, j, k] = (w * texture) * scale if keep else zero
            else:
                for k in range(k0, k1):
                    r = max(distance[i, j, k] + radius, floor_r)
                    w = ball_weight(min(r, r_max), radius, inv_sigma, curvature)
                    keep = (r <= r_max) & (reach_mask[i, j, k] != 0) & (label[i, j, k] != 0)
                    texture = planes[a, j, k] + (planes[a + 1, j, k] - planes[a, j, k]) * fa
                    delta[i, j, k] = (w * texture) * scale if keep else zero
    _force_weight(distance, reach_mask, label, planes, look_x, edge, force, rows, delta)


@njit(**OPTIONS)
def _force_weight(  # noqa: PLR0913
    distance: np.ndarray, reach_mask: np.ndarray, label: np.ndarray, planes: np.ndarray,
    look_x: tuple[np.ndarray, ...], edge: np.ndarray, force: np.ndarray, rows: np.ndarray,
    delta: np.ndarray,
) -> None:
    """``change_pass``'s forced voxel (a tumor that would vanish keeps its centre): there,
    where the change can be non-zero, the weight is at least 0.5."""
    i, j, k = force[0], force[1], force[2]
    if i < 0 or not rows[0, i, j] <= k < rows[1, i, j]:
        return
    w, reached = weight_at(distance[i, j, k], edge)
    if reached and reach_mask[i, j, k] != 0 and label[i, j, k] != 0:
        a, fa = look_x[0][i], look_x[1][i]
        texture = planes[a, j, k] + (planes[a + 1, j, k] - planes[a, j, k]) * fa
        delta[i, j, k] = (max(w, np.float32(0.5)) * texture) * edge[8]


@any_layout(0, 1, 3)
@njit(**OPTIONS)
def paint_pass(  # noqa: PLR0913
    target: np.ndarray, original: np.ndarray, shared: np.ndarray, label: np.ndarray,
    delta: np.ndarray, inside: np.ndarray, tumor: np.uint8, rows: np.ndarray,
) -> tuple[float, int, float, float, float]:
    """Paint one tumor's change into ``target`` (the CT under its box) and label it.

    shared: (6,) int, the part of the box (x0, x1, y0, y1, z0, z1; box coordinates) that boxes
    painted earlier overlap, where the stronger change vs ``original`` (the CT there before any
    tumor, an array of that part's shape) wins; elsewhere ``delta`` is added. Voxels of
    ``inside`` get label ``tumor``.
    rows: (2, nx, ny) int64, per row the [start, end) of k to paint; outside it ``delta`` must
    be 0 and ``inside`` False (the voxel would not change), and is not read.
    Returns the sum of the change over inside (float64), the inside voxel count and the sums
    of its x, y and z indices (``synthesize._paint`` in one pass).
    """
    nx, ny = target.shape[0], target.shape[1]
    x0, x1, y0, y1, z0, z1 = shared[0], shared[1], shared[2], shared[3], shared[4], shared[5]
    total = 0.0
    n = 0
    sx = sy = sz = 0.0
    for i in range(nx):
        for j in range(ny):
            rows_shared = x0 <= i < x1 and y0 <= j < y1
            for k in range(np.uint64(rows[0, i, j]), np.uint64(rows[1, i, j])):
                d = delta[i, j, k]
                if rows_shared and z0 <= np.int64(k) < z1:
                    t, o = target[i, j, k], original[i - x0, j - y0, np.int64(k) - z0]
                    if abs(d) > abs(t - o):
                        target[i, j, k] = d + o
                    d = target[i, j, k] - o  # the change this voxel ends up with
                elif d != 0:
                    target[i, j, k] += d
                if inside[i, j, k]:
                    total += d
                    label[i, j, k] = tumor
                    n += 1
                    sx += i
                    sy += j
                    sz += k
    return total, n, sx, sy, sz
