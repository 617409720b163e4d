"""Compiled per-voxel kernels (numba) for tumors with a drawn appearance (``paint_look``).

They repeat the float32 arithmetic of the NumPy reference operation by operation
(``shape.evaluate_shape`` + ``margin.displace_surface``, ``effects.soft_edge`` /
``effects.soft_edge_ball`` + confinement, ``placement.bounding_box``), so a seed gives identical
labels and HU equal to within rounding either way (``tests/test_appearance.py``); the soft
edge's exp and tanh are the inline ones of ``kernels_edge.py`` (agreeing with NumPy's to about
1e-7). The shared building blocks (shape terms, box dilation, paint) are those of
``kernels.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit_options import OPTIONS, any_layout
from .kernels import grow_box, r2_at, texture_planes, z_slopes
from .kernels_edge import ball_weight, flat_weight


@njit(**OPTIONS)
def shape_rho(terms: tuple[np.ndarray, ...], r2: np.ndarray, rho: np.ndarray) -> None:
    """r2 = |q / a|^2 (``kernels.shape_pass``'s) and rho = sqrt(r2) on the whole box;
    terms: its 9 line and table arguments."""
    nx, ny, nz = rho.shape
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                s = r2_at(terms, i, j, k)
                r2[i, j, k] = s
                rho[i, j, k] = np.sqrt(s)


@any_layout(1)
@njit(**OPTIONS)
def shape_region(  # noqa: PLR0913
    grads: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...], label: np.ndarray,
    margin: tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...],
                  tuple[np.ndarray, ...], np.ndarray],
    rho: np.ndarray, r2: np.ndarray, distance: np.ndarray, bounds: np.ndarray,
) -> int:
    """The labelled tumor on the whole box: returns its voxel count, writes its bounds (x0,
    x1, y0, y1, z0, z1, box coordinates; x0 = -1 if it is empty) and, on every voxel, the
    signed surface distance (mm) minus the margin's displacement into ``distance``
    (``crop_region`` then cuts the tumor's part out, nothing is evaluated twice).

    rho, r2 (``shape_rho``): the whole box's; grads: ``kernels.neighbours``. margin:
    (field, lattice, look_x, look_y, look_z, constants): the move as a field (mm, clipped and
    scaled: ``margin.margin_displacement``), or if that is empty (0, 0, 0) from the unit-std
    ``lattice`` (``margin.margin_noise``) interpolated as ``texture.interpolate_linear``
    (look_*: ``kernels_texture.lattice_lookup``), clipped to +-constants[0], scaled by
    constants[1]; both empty: a smooth margin. inside = distance
    <= 0 with a margin, r2 <= 1 without (as the reference).
    """
    (xh, xl, xf), (yh, yl, yf), (_, _, zf) = grads
    field, lattice, look_x, look_y, look_z, constants = margin
    nz = rho.shape[2]  # whole rows: loops index from 0, vectorise
    zero, one, tiny = np.float32(0.0), np.float32(1.0), np.float32(1e-6)
    mode = 1 if field.shape[0] == rho.shape[0] else (2 if lattice.shape[0] > 0 else 0)
    count, clip, amplitude = 0, constants[0], constants[1]
    planes = np.empty((lattice.shape[0], rho.shape[1], nz), np.float32)
    if mode == 2:
        texture_planes(lattice, look_y[0], look_y[1], look_z[0], look_z[1], planes)
    bounds[:] = np.array([rho.shape[0], -1, rho.shape[1], -1, nz, -1], np.int64)
    for i in range(rho.shape[0]):
        fx, xu, xd = xf[i], xh[i], xl[i]
        for j in range(rho.shape[1]):
            fy, yu, yd = yf[j], yh[j], yl[j]
            drow = distance[i, j]  # computed in place, row by row
            z_slopes(rho[i, j], zf, np.uint64(0), np.uint64(nz), drow)
            for k in range(nz):
                drow[k] *= drow[k]
            for k in range(nz):
                d = (rho[xu, j, k] - rho[xd, j, k]) * fx
                g = zero + d * d
                d = (rho[i, yu, k] - rho[i, yd, k]) * fy
                g += d * d
                g += drow[k]
                drow[k] = (rho[i, j, k] - one) / max(np.sqrt(g), tiny)
            if mode == 1:
                for k in range(nz):
                    drow[k] -= field[i, j, k]
            elif mode == 2:
                c = look_x[0][i]
                _displace_row(drow, planes[c, j], planes[c + 1, j], look_x[1][i], clip,
                              amplitude)
            hits, first, last = _row_hits(r2[i, j], drow, label[i, j], mode)
            if hits:
                count += hits
                grow_box(bounds, i, j, first, last)
    if count == 0:
        bounds[0] = -1
    return count


@any_layout(2)
@njit(**OPTIONS)
def crop_region(  # noqa: PLR0913
    r2_box: np.ndarray, distance_box: np.ndarray, label: np.ndarray, region: np.ndarray,
    by_distance: bool, r2: np.ndarray, distance: np.ndarray, inside: np.ndarray,
) -> None:
    """Part ``region`` (x0, x1, y0, y1, z0, z1) of the whole box's r2 and distance
    (``shape_rho``, ``shape_region``) into arrays of the region's shape, and the tumor mask
    there: distance <= 0 (``by_distance``: a margin) or r2 <= 1, in the liver (label > 0)."""
    z0, z1 = region[4], region[5]
    zero, one = np.float32(0.0), np.float32(1.0)
    for i in range(region[0], region[1]):
        for j in range(region[2], region[3]):
            p, q = i - region[0], j - region[2]
            # row views and one plain loop per array and test: these vectorise
            r2_row, d_row = r2_box[i, j, z0:z1], distance_box[i, j, z0:z1]
            liver = label[i, j, z0:z1]
            r2_out, d_out, mask = r2[p, q], distance[p, q], inside[p, q]
            for k in range(z1 - z0):
                r2_out[k] = r2_row[k]
            for k in range(z1 - z0):
                d_out[k] = d_row[k]
            if by_distance:
                for k in range(z1 - z0):
                    mask[k] = (d_row[k] <= zero) & (liver[k] > 0)
            else:
                for k in range(z1 - z0):
                    mask[k] = (r2_row[k] <= one) & (liver[k] > 0)


@njit(**OPTIONS)
def _displace_row(drow: np.ndarray, low: np.ndarray, high: np.ndarray, fraction: np.float32,
                  clip: np.float32, amplitude: np.float32) -> None:
    """drow -= clip(low + (high - low) fraction, -clip, clip) amplitude: the margin's move of
    one row, from its two lattice planes (``shape_region``)."""
    for k in range(drow.shape[0]):
        m = low[k] + (high[k] - low[k]) * fraction
        m = min(max(m, -clip), clip)
        drow[k] -= m * amplitude


@njit(**OPTIONS)
def _row_hits(srow: np.ndarray, drow: np.ndarray, label: np.ndarray,
              mode: int) -> tuple[int, int, int]:
    """Tumor voxels of one row (``shape_region``'s test): their count, first and last index."""
    hits, first, last = 0, -1, -1
    for k in range(srow.shape[0]):
        if mode == 0:
            hit = srow[k] <= np.float32(1.0) and label[k] > 0
        else:
            hit = drow[k] <= np.float32(0.0) and label[k] > 0
        if hit:
            hits += 1
            last = k
            if first < 0:
                first = k
    return hits, first, last


@njit(**OPTIONS)
def edge_weight(
    distance: np.ndarray, reach_mask: np.ndarray, edge: np.ndarray, force: np.ndarray,
    weight: np.ndarray,
) -> None:
    """The soft edge in [0, 1] from the signed distance (mm), 0 where ``reach_mask`` is 0
    (the confinement); edge: ``painting._edge_constants`` (kind 0 flat ``soft_edge``, 1 ball
    ``soft_edge_ball``); force: (3,) voxel whose weight is at least 0.5, or (-1, -1, -1).
    The weight is computed only between each row's first and last reach voxel (a third of
    the reach box's voxels lie outside them, for mix tumors), there on every voxel and then
    selected (no branch per voxel: the loops vectorise, as in ``kernels.change_pass``)."""
    nx, ny, nz = distance.shape
    flat, inv_sigma, radius, floor_r = edge[0] == 0, edge[1], edge[2], edge[3]
    curvature, r_max, cdf_floor, cdf_scale = edge[4], edge[5], edge[6], edge[7]
    zero, three = np.float32(0.0), np.float32(3.0)
    for i in range(nx):
        for j in range(ny):
            k0, k1 = _mask_extent(reach_mask[i, j])
            row = weight[i, j]
            for k in range(k0):
                row[k] = zero
            for k in range(k1, np.uint64(nz)):
                row[k] = zero
            if flat:
                for k in range(k0, k1):
                    t = distance[i, j, k] * inv_sigma
                    w = flat_weight(min(max(t, -three), three), cdf_floor, cdf_scale)
                    row[k] = w if (t < three) & (reach_mask[i, j, k] != 0) else zero
            else:
                for k in range(k0, k1):
                    r = max(distance[i, j, k] + radius, floor_r)
                    w = ball_weight(min(r, r_max), radius, inv_sigma, curvature)
                    row[k] = w if (r <= r_max) & (reach_mask[i, j, k] != 0) else zero
    i, j, k = force[0], force[1], force[2]
    if i >= 0 and reach_mask[i, j, k] != 0:  # a tumor that would vanish keeps its centre
        weight[i, j, k] = max(weight[i, j, k], np.float32(0.5))


@njit(**OPTIONS)
def _mask_extent(row: np.ndarray) -> tuple[np.uint64, np.uint64]:
    """The first and one past the last non-zero index of a uint8 row (0, 0 if none),
    unsigned so that loops over them vectorise without gathers (``kernels.change_pass``)."""
    n = row.shape[0]
    last = n
    while last > 0 and row[last - 1] == 0:
        last -= 1
    first = 0
    while first < last and row[first] == 0:
        first += 1
    return np.uint64(first), np.uint64(last)


@any_layout(3)
@njit(**OPTIONS)
def texture_moments(delta: np.ndarray, weight: np.ndarray, inside: np.ndarray,
                    host: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Sums over the tumor's voxels that ``attenuation.texture_constants`` needs, float64:
    count, w, w^2, h, h^2, h w, d, d^2, h d, w d, w n (w: weight, h: host HU, d: delta, n:
    the unit-std texture field; arrays of one shape, ``host`` may be any layout)."""
    out = np.zeros(11)
    nx, ny, nz = delta.shape
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if not inside[i, j, k]:
                    continue
                w, h = np.float64(weight[i, j, k]), np.float64(host[i, j, k])
                d, n = np.float64(delta[i, j, k]), np.float64(field[i, j, k])
                out[0] += 1.0
                out[1] += w
                out[2] += w * w
                out[3] += h
                out[4] += h * h
                out[5] += h * w
                out[6] += d
                out[7] += d * d
                out[8] += h * d
                out[9] += w * d
                out[10] += w * n
    return out


@any_layout(3)
@njit(**OPTIONS)
def compose(delta: np.ndarray, weight: np.ndarray, field: np.ndarray, label: np.ndarray,
            constants: np.ndarray) -> None:
    """delta = (b + k (delta - b) + (A n + s) w) in the liver (label > 0), 0 elsewhere, with
    b = -c w; constants: float32 (c, k, A, s) of ``attenuation.texture_constants``."""
    c, scale, amplitude, shift = constants[0], constants[1], constants[2], constants[3]
    nx, ny, nz = delta.shape
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                w = weight[i, j, k]
                base = w * -c
                d = base + scale * (delta[i, j, k] - base)
                d += (amplitude * field[i, j, k] + shift) * w
                delta[i, j, k] = d if label[i, j, k] > 0 else np.float32(0.0)


@njit(**OPTIONS)
def accumulate_scale(  # noqa: PLR0913
    total: np.ndarray, lattice: np.ndarray, look_x: tuple[np.ndarray, np.ndarray],
    look_y: tuple[np.ndarray, np.ndarray], look_z: tuple[np.ndarray, np.ndarray],
    scale: np.float32, offset: np.float32, interpolate: bool, first: bool,
) -> None:
    """total (=, or += unless ``first``) scale x f + offset, with f the scale's noise: the
    ``lattice`` interpolated as ``texture.interpolate_linear`` (look_*:
    ``kernels_texture.lattice_lookup``) or, without ``interpolate``, its first cells."""
    nx, ny, nz = total.shape
    planes = np.empty((lattice.shape[0] if interpolate else 0, ny, nz), np.float32)
    if interpolate:
        texture_planes(lattice, look_y[0], look_y[1], look_z[0], look_z[1], planes)
    row = np.empty(nz, np.float32)
    for i in range(nx):
        for j in range(ny):
            if interpolate:
                a, fa = look_x[0][i], look_x[1][i]
                low, high = planes[a, j], planes[a + 1, j]
                for k in range(nz):
                    row[k] = low[k] + (high[k] - low[k]) * fa
            else:
                cells = lattice[i, j]
                for k in range(nz):
                    row[k] = cells[k]
            out = total[i, j]
            if first:
                for k in range(nz):
                    out[k] = row[k] * scale + offset
            else:
                for k in range(nz):
                    out[k] += row[k] * scale + offset


@njit(**OPTIONS)
def scale_moments(  # noqa: PLR0913
    shape: tuple[int, int, int], lattice: np.ndarray, look_x: tuple[np.ndarray, np.ndarray],
    look_y: tuple[np.ndarray, np.ndarray], look_z: tuple[np.ndarray, np.ndarray],
    interpolate: bool, stride: int,
) -> tuple[float, float]:
    """Mean and std (float64 sums) of ``accumulate_scale``'s f over every ``stride``-th voxel
    per axis of ``shape``: the voxels ``heterogeneity._standardise`` samples, each
    interpolated where it is (trilinear, as ``texture.interpolate_linear``) rather than a
    subsampled field built first."""
    nx, ny, nz = shape
    total, squares, count = 0.0, 0.0, 0
    for i in range(0, nx, stride):
        for j in range(0, ny, stride):
            for k in range(0, nz, stride):
                if interpolate:
                    a, b, c = look_x[0][i], look_y[0][j], look_z[0][k]
                    fa, fb, fc = look_x[1][i], look_y[1][j], look_z[1][k]
                    v = np.float32(0.0)
                    for da in range(2):
                        wa = fa if da else np.float32(1.0) - fa
                        for db in range(2):
                            wb = fb if db else np.float32(1.0) - fb
                            low = lattice[a + da, b + db, c]
                            high = lattice[a + da, b + db, c + 1]
                            v += wa * wb * (low + (high - low) * fc)
                else:
                    v = lattice[i, j, k]
                x = np.float64(v)
                total += x
                squares += x * x
                count += 1
    mean = total / max(count, 1)
    return mean, np.sqrt(max(squares / max(count, 1) - mean * mean, 0.0))
