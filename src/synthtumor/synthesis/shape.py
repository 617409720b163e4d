"""Tumor shape: a solid ellipsoid distorted by a smooth random displacement, in a tumor-sized box.

The reference rasterises an ellipsoid in a box of 4x its semi-axes and warps it three times with
random elastic deformations (3 control points per axis, one plane at a time: xy, yz, xz, nearest
neighbour). We evaluate the same shape analytically instead: a voxel is tumor when the point it
came from, ``q = p - u(p)``, lies in the ellipsoid. ``u`` is the sum of the three planar
displacements, each interpolated from a 3x3 grid of control values spanning the reference's box
(centre +/- 2 semi-axes). Summing is the first-order composition of the three warps; it needs no
resampling, is exact on any grid (anisotropic included) and gives the signed distance to the
surface that the soft edge needs, all with broadcast arithmetic on 2-D tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workspace import Workspace

#: The displaced axis pairs, in the reference's order (xy, yz, xz).
PLANES: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (0, 2))
_PLANE_AXES = np.array(PLANES)

@dataclass(frozen=True)
class Distortion:
    """Control displacements (mm) of the three planar warps, shape (3 planes, 2 axes, 3, 3)."""

    control_mm: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, sigma_mm: float) -> Distortion:
        return cls(rng.normal(0.0, sigma_mm, size=(3, 2, 3, 3)))

    def reach_mm(self) -> np.ndarray:
        """Largest |displacement| (mm) along each axis over the control grid's span, shape (3,).

        Evaluated on a fine grid of the interpolated planar tables (not the loose bound of
        overshoot x max control value), so tumor boxes stay tight.
        """
        # all six tables in two stacked matmuls (each matrix multiplied as on its own)
        peaks = np.abs(_REACH_BASIS @ self.control_mm @ _REACH_BASIS.T).max(axis=(2, 3))
        reach = np.zeros(3)
        for plane, axes in enumerate(PLANES):
            for k, axis in enumerate(axes):
                reach[axis] += peaks[plane, k]
        return reach


def _basis(t: np.ndarray) -> np.ndarray:
    """Quadratic interpolation weights for control points at t = -1, 0, 1; shape (len(t), 3)."""
    t = np.minimum(np.maximum(t, -1.0), 1.0)  # np.clip, without its per-call overhead
    out = np.empty((len(t), 3))
    out[:, 0] = 0.5 * t * (t - 1.0)
    out[:, 1] = 1.0 - t * t
    out[:, 2] = 0.5 * t * (t + 1.0)
    return out


_REACH_BASIS = _basis(np.linspace(-1.0, 1.0, 17))  # the fine grid of Distortion.reach_mm


@dataclass(frozen=True)
class ShapeField:
    """A tumor evaluated on a box of voxels (arrays of the box's shape).

    inside: bool, the distorted ellipsoid (before clipping to the liver).
    distance_mm: float32, approximate signed distance to the surface (negative inside).
    norm_radius_sq: float32, (|q / semi_axes|)^2: 0 at the centre, 1 on the surface.
    With a workspace these are views of its buffers, valid until the next evaluation.
    """

    inside: np.ndarray
    distance_mm: np.ndarray
    norm_radius_sq: np.ndarray


def plane_tables(
    axes_mm: tuple[np.ndarray, ...],
    semi_axes_mm: np.ndarray,
    distortion: Distortion,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The separable pieces of the shape as compact arrays (float32): per array axis the line
    (x / a), 1-D; per plane (i, j) of ``PLANES`` its two displacement tables (u_i / a_i,
    u_j / a_j) stacked, shape (2, n_i, n_j). Inputs as ``evaluate_shape``."""
    a = np.asarray(semi_axes_mm, dtype=np.float64)
    lengths = [len(x) for x in axes_mm]
    # the three axes in one array: x / a per axis, and its half for the bases (x / 2a: halving
    # is exact, so the same values as dividing by 2a)
    scaled = np.concatenate(axes_mm) / np.repeat(a, lengths)
    joint = _basis(scaled * 0.5)
    flat = scaled.astype(np.float32)
    ends = [0, lengths[0], lengths[0] + lengths[1], sum(lengths)]
    basis = [joint[ends[i]:ends[i + 1]] for i in range(3)]
    lines = [flat[ends[i]:ends[i + 1]] for i in range(3)]
    divisors = a[_PLANE_AXES][:, :, None, None]
    planes = []
    for plane, (i, j) in enumerate(PLANES):
        stack = contract(basis[i], distortion.control_mm[plane], basis[j])  # both tables
        stack /= divisors[plane]
        planes.append(stack.astype(np.float32))
    return lines, planes


def contract(left: np.ndarray, control: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ control @ right.T`` for (n_l, 3) and (n_r, 3) bases and stacked (m, 3, 3)
    controls, shape (m, n_l, n_r), summed over k = 0, 1, 2 in that order, each product
    rounded: the compiled twin (``kernels_shape.shape_tables``) gives the same bits, which a
    matrix product would not promise (its BLAS may sum in another order or fuse the adds).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> left, control, right = rng.random((4, 3)), rng.random((2, 3, 3)), rng.random((5, 3))
    >>> bool(np.allclose(contract(left, control, right), left @ control @ right.T))
    True
    """
    inner = left[None, :, 0, None] * control[:, None, 0, :]  # (m, n_l, 3): left @ control
    inner += left[None, :, 1, None] * control[:, None, 1, :]
    inner += left[None, :, 2, None] * control[:, None, 2, :]
    out: np.ndarray = inner[:, :, 0, None] * right[None, None, :, 0]
    out += inner[:, :, 1, None] * right[None, None, :, 1]
    out += inner[:, :, 2, None] * right[None, None, :, 2]
    return out


def shape_terms(
    axes_mm: tuple[np.ndarray, ...],
    semi_axes_mm: np.ndarray,
    distortion: Distortion,
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """The separable pieces of the shape on a box: w_axis = line - first - second (float32).

    Per array axis: ``line``, (x / a) as a 1-D array broadcast along that axis, and the two
    planar displacement tables (u / a) of the planes holding the axis, in ``PLANES`` order,
    broadcast as 3-D arrays with ones on the axis they do not span. Inputs as ``evaluate_shape``.
    """
    flat_lines, planes = plane_tables(axes_mm, semi_axes_mm, distortion)
    lines, tables = [], []
    for axis in range(3):
        pair = []
        for plane, (i, j) in enumerate(PLANES):
            if axis in (i, j):
                bshape = [1, 1, 1]
                bshape[i], bshape[j] = planes[plane].shape[1:]
                pair.append(planes[plane][(i, j).index(axis)].reshape(bshape))
        line = [1, 1, 1]
        line[axis] = -1
        lines.append(flat_lines[axis].reshape(line))
        tables.append((pair[0], pair[1]))
    return lines, tables


def evaluate_shape(
    axes_mm: tuple[np.ndarray, ...],
    semi_axes_mm: np.ndarray,
    distortion: Distortion,
    ws: Workspace | None = None,
) -> ShapeField:
    """Evaluate the distorted ellipsoid on a box.

    axes_mm: per array axis, the voxel-centre coordinates of the box relative to the tumor centre
        (mm), 1-D arrays of lengths (nx, ny, nz), evenly spaced.
    semi_axes_mm: (3,) semi-axes of the undistorted ellipsoid.
    ws: scratch buffers to write into (default: fresh arrays).
    Returns fields of shape (nx, ny, nz).
    """
    ws = ws or Workspace()
    shape = tuple(len(x) for x in axes_mm)
    r2 = ws.get("r2", shape)
    w = ws.get("scratch1", shape)
    for axis, (line, (first, second)) in enumerate(zip(*shape_terms(axes_mm, semi_axes_mm,
                                                                     distortion))):
        # w = (x - u) / a along this axis: a 1-D term minus two planar tables; the first two are
        # combined in 2-D, so only one full-size operation builds w.
        np.subtract(line - first, second, out=w)
        if axis == 0:
            np.multiply(w, w, out=r2)
        else:
            w *= w
            r2 += w
    # Signed distance ~ (rho - 1) / |grad rho|: exact for a ball, first order elsewhere. The
    # gradient is taken numerically on the box, so it includes the warp's stretching.
    rho = ws.get("scratch2", shape)
    np.sqrt(r2, out=rho)
    grad_sq = ws.get("distance", shape)
    grad_sq.fill(0.0)
    diff = w  # free again: reuse as scratch
    for axis, x in enumerate(axes_mm):
        n = len(x)
        if n < 2:
            continue
        # central differences inside, one-sided at the two faces (as np.gradient)
        lo, hi, mid = ([slice(None)] * 3 for _ in range(3))
        lo[axis], hi[axis], mid[axis] = slice(0, n - 2), slice(2, n), slice(1, n - 1)
        inv = np.float32(1.0 / float(x[1] - x[0]))
        if n > 2:
            np.subtract(rho[tuple(hi)], rho[tuple(lo)], out=diff[tuple(mid)])
            diff[tuple(mid)] *= inv * np.float32(0.5)
        for face, (i_a, i_b) in ((0, (1, 0)), (n - 1, (n - 1, n - 2))):
            dst: list[slice | int] = [slice(None)] * 3
            src_a: list[slice | int] = [slice(None)] * 3
            src_b: list[slice | int] = [slice(None)] * 3
            dst[axis], src_a[axis], src_b[axis] = face, i_a, i_b
            np.subtract(rho[tuple(src_a)], rho[tuple(src_b)], out=diff[tuple(dst)])
            diff[tuple(dst)] *= inv
        diff *= diff
        grad_sq += diff
    np.sqrt(grad_sq, out=grad_sq)
    np.maximum(grad_sq, np.float32(1e-6), out=grad_sq)
    distance = grad_sq
    rho -= np.float32(1.0)
    np.divide(rho, grad_sq, out=distance)
    inside = ws.get("inside", shape, np.bool_)
    np.less_equal(r2, np.float32(1.0), out=inside)
    return ShapeField(inside=inside, distance_mm=distance, norm_radius_sq=r2)
