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

#: The displaced axis pairs, in the reference's order (xy, yz, xz).
PLANES: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (0, 2))

@dataclass(frozen=True)
class Distortion:
    """Control displacements (mm) of the three planar warps, shape (3 planes, 2 axes, 3, 3)."""

    control_mm: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, sigma_mm: float) -> Distortion:
        return cls(rng.normal(0.0, sigma_mm, size=(3, 2, 3, 3)))

    def reach_mm(self, semi_axes_mm: np.ndarray) -> np.ndarray:
        """Largest |displacement| (mm) along each axis over the control grid's span, shape (3,).

        Evaluated on a fine grid of the interpolated planar tables (not the loose bound of
        overshoot x max control value), so tumor boxes stay tight.
        """
        del semi_axes_mm  # the tables live in normalised coordinates: the span is [-1, 1]
        basis = _basis(np.linspace(-1.0, 1.0, 17))
        reach = np.zeros(3)
        for plane, axes in enumerate(PLANES):
            for k, axis in enumerate(axes):
                table = basis @ self.control_mm[plane, k] @ basis.T
                reach[axis] += np.abs(table).max()
        return reach


def _basis(t: np.ndarray) -> np.ndarray:
    """Quadratic interpolation weights for control points at t = -1, 0, 1; shape (len(t), 3)."""
    t = np.clip(t, -1.0, 1.0)
    return np.stack([0.5 * t * (t - 1.0), 1.0 - t * t, 0.5 * t * (t + 1.0)], axis=1)


@dataclass(frozen=True)
class ShapeField:
    """A tumor evaluated on a box of voxels.

    inside: bool, the distorted ellipsoid (before clipping to the liver).
    distance_mm: float32, approximate signed distance to the surface (negative inside).
    """

    inside: np.ndarray
    distance_mm: np.ndarray
    norm_radius_sq: np.ndarray  # (|q / semi_axes|)^2: 0 at the centre, 1 on the surface


def evaluate_shape(
    axes_mm: tuple[np.ndarray, np.ndarray, np.ndarray],
    semi_axes_mm: np.ndarray,
    distortion: Distortion,
) -> ShapeField:
    """Evaluate the distorted ellipsoid on a box.

    axes_mm: per array axis, the voxel-centre coordinates of the box relative to the tumor centre
        (mm), 1-D arrays of lengths (nx, ny, nz).
    semi_axes_mm: (3,) semi-axes of the undistorted ellipsoid.
    Returns fields of shape (nx, ny, nz).
    """
    a = np.asarray(semi_axes_mm, dtype=np.float64)
    basis = [_basis(x / (2.0 * a[i])) for i, x in enumerate(axes_mm)]
    # w_i = (x_i - u_i) / a_i, built from broadcast 1-D and 2-D terms.
    w = []
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = -1
        w_axis = (axes_mm[axis] / a[axis]).astype(np.float32).reshape(shape)
        for plane, (p0, p1) in enumerate(PLANES):
            if axis not in (p0, p1):
                continue
            k = (p0, p1).index(axis)
            table = basis[p0] @ distortion.control_mm[plane, k] @ basis[p1].T  # (n_p0, n_p1)
            table = (table / a[axis]).astype(np.float32)
            bshape = [1, 1, 1]
            bshape[p0], bshape[p1] = table.shape
            w_axis = w_axis - table.reshape(bshape)
        w.append(w_axis)
    r2 = w[0] * w[0]
    r2 += w[1] * w[1]
    r2 += w[2] * w[2]
    # Signed distance ~ (rho - 1) / |grad rho|: exact for a ball, first order elsewhere. The
    # gradient is taken numerically on the box, so it includes the warp's stretching.
    rho = np.sqrt(r2)
    grad_sq = np.zeros_like(rho)
    diff = np.empty_like(rho)
    for axis, x in enumerate(axes_mm):
        n = len(x)
        if n < 2:
            continue
        # central differences inside, one-sided at the two faces (as np.gradient, but fewer
        # temporaries: this runs on every voxel of every tumor box)
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        mid = [slice(None)] * 3
        lo[axis], hi[axis], mid[axis] = slice(0, n - 2), slice(2, n), slice(1, n - 1)
        if n > 2:
            np.subtract(rho[tuple(hi)], rho[tuple(lo)], out=diff[tuple(mid)])
            diff[tuple(mid)] *= np.float32(0.5)
        for face, (a_idx, b_idx) in ((0, (1, 0)), (n - 1, (n - 1, n - 2))):
            dst = [slice(None)] * 3
            src_a = [slice(None)] * 3
            src_b = [slice(None)] * 3
            dst[axis], src_a[axis], src_b[axis] = face, a_idx, b_idx
            np.subtract(rho[tuple(src_a)], rho[tuple(src_b)], out=diff[tuple(dst)])
        diff *= np.float32(1.0 / float(x[1] - x[0]))
        diff *= diff
        grad_sq += diff
    np.sqrt(grad_sq, out=grad_sq)
    np.maximum(grad_sq, np.float32(1e-6), out=grad_sq)
    distance = rho - np.float32(1.0)
    distance /= grad_sq
    return ShapeField(inside=r2 <= 1.0, distance_mm=distance, norm_radius_sq=r2)
