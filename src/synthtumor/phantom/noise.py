"""Smooth random fields anchored in world mm (shape warps, textures, tortuosity)."""

from __future__ import annotations

import math

import numpy as np


class _Noise:
    """Smooth random field: cubic B-spline through random coefficients on a fixed mm lattice.

    The lattice is anchored in world mm (not on the voxel grid), so the field is identical at
    any spacing. ``amp`` is the approximate standard deviation of the field.
    """

    # integral of the squared cubic B-spline: variance factor per dimension
    _VAR1D = 151.0 / 315.0

    def __init__(self, rng: np.random.Generator, lo, hi, step: float, amp: float) -> None:
        self.step = float(step)
        self.lo = np.asarray(lo, dtype=float) - 2.0 * step
        n = np.ceil((np.asarray(hi, dtype=float) - self.lo) / step).astype(int) + 3
        scale = amp / math.sqrt(self._VAR1D**3)
        self.coef = (rng.standard_normal(tuple(n)) * scale).astype(np.float32)

    @staticmethod
    def _weights(u: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (m, 4) and cubic B-spline weights (m, 4) at lattice coordinates u."""
        u = np.clip(u, 1.0, n - 3.0)  # outside the lattice: hold the edge value
        i = np.floor(u).astype(np.int64)
        t = (u - i)[:, None]
        w = (
            np.concatenate(
                [
                    (1 - t) ** 3,
                    3 * t**3 - 6 * t**2 + 4,
                    -3 * t**3 + 3 * t**2 + 3 * t + 1,
                    t**3,
                ],
                axis=1,
            )
            / 6.0
        )
        idx = i[:, None] + np.arange(-1, 3)[None, :]
        return np.clip(idx, 0, n - 1), w

    def _matrix(self, coords: np.ndarray, axis: int) -> np.ndarray:
        n = self.coef.shape[axis]
        idx, w = self._weights((coords.astype(np.float64) - self.lo[axis]) / self.step, n)
        m = np.zeros((coords.size, n), dtype=np.float32)
        rows = np.repeat(np.arange(coords.size), 4)
        np.add.at(m, (rows, idx.ravel()), w.ravel().astype(np.float32))
        return m

    def on_grid(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Field on the tensor grid of 1-D world coordinates -> float32 (len x, len y, len z)."""
        wx = self._matrix(np.ravel(xs), 0)
        wy = self._matrix(np.ravel(ys), 1)
        wz = self._matrix(np.ravel(zs), 2)
        t = np.tensordot(self.coef, wz, axes=([2], [1]))  # (gx, gy, nz)
        t = np.tensordot(t, wy, axes=([1], [1]))  # (gx, nz, ny)
        t = np.tensordot(wx, t, axes=([1], [0]))  # (nx, nz, ny)
        return np.ascontiguousarray(t.transpose(0, 2, 1))

    def at(self, x, y, z) -> np.ndarray:
        """Field at points given as broadcastable arrays (uses the grid path for boxes)."""
        x, y, z = np.asarray(x), np.asarray(y), np.asarray(z)
        if x.ndim == 3 and x.shape[1:] == (1, 1) and y.shape[::2] == (1, 1):
            return self.on_grid(x, y, z)
        p = np.broadcast_arrays(x, y, z)
        shape = p[0].shape
        ix, wx = self._weights((p[0].ravel() - self.lo[0]) / self.step, self.coef.shape[0])
        iy, wy = self._weights((p[1].ravel() - self.lo[1]) / self.step, self.coef.shape[1])
        iz, wz = self._weights((p[2].ravel() - self.lo[2]) / self.step, self.coef.shape[2])
        c = self.coef[ix[:, :, None, None], iy[:, None, :, None], iz[:, None, None, :]]
        w = wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]
        return (c * w).sum(axis=(1, 2, 3)).reshape(shape)
