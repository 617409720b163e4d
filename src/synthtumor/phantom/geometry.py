"""Voxel grid and analytic shapes of the phantom, all in world mm.

Functions take broadcastable x, y, z arrays so the same code serves voxel boxes
((n,1,1), (1,n,1), (1,1,n)) and point lists ((m,), (m,), (m,)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


class _Grid:
    """Voxel grid: shape, spacing (mm) and world coordinates of voxel centres per axis."""

    def __init__(self, spacing: np.ndarray, fov_mm: np.ndarray) -> None:
        self.spacing = spacing
        self.shape = tuple(max(1, int(round(f / s))) for f, s in zip(fov_mm, spacing, strict=True))
        n = np.asarray(self.shape, dtype=np.float64)
        self.origin = -(n - 1.0) / 2.0 * spacing  # volume centred on world 0
        self.axes = [
            (self.origin[k] + np.arange(self.shape[k]) * spacing[k]).astype(np.float32)
            for k in range(3)
        ]

    @property
    def affine(self) -> np.ndarray:
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def full(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable world coordinates of the whole grid."""
        ax = self.axes
        return ax[0][:, None, None], ax[1][None, :, None], ax[2][None, None, :]

    def box(
        self, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
        """Index slices and broadcastable world coordinates of voxels inside [lo, hi] mm."""
        i0 = np.floor((np.asarray(lo) - self.origin) / self.spacing).astype(int)
        i1 = np.ceil((np.asarray(hi) - self.origin) / self.spacing).astype(int) + 1
        i0 = np.clip(i0, 0, self.shape)
        i1 = np.clip(i1, 0, self.shape)
        if np.any(i1 <= i0):
            return None
        sl = (slice(i0[0], i1[0]), slice(i0[1], i1[1]), slice(i0[2], i1[2]))
        ax = self.axes
        return (
            sl,
            ax[0][sl[0], None, None],
            ax[1][None, sl[1], None],
            ax[2][None, None, sl[2]],
        )

    def index_of(self, pts: np.ndarray) -> np.ndarray:
        """Nearest voxel index (int) of world points (m, 3)."""
        return np.rint((pts - self.origin) / self.spacing).astype(np.int64)


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix (local -> world) from angles in degrees about x, then y, then z."""
    a, b, c = np.radians([rx, ry, rz])
    rot_x = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rot_y = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rot_z = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def _float3(v: Iterable[float]) -> tuple[float, float, float]:
    """Three numbers (any sequence or array) as a tuple of Python floats."""
    a, b, c = (float(x) for x in v)
    return (a, b, c)


@dataclass(frozen=True)
class _Ellipsoid:
    """Rotated ellipsoid: centre (mm), semi-axes (mm) and local -> world rotation."""

    c: tuple[float, float, float]
    semi: tuple[float, float, float]
    rot: tuple[tuple[float, float, float], ...]

    @staticmethod
    def make(c, semi, angles=(0.0, 0.0, 0.0)) -> _Ellipsoid:
        r = _rotation(*angles)
        return _Ellipsoid(
            _float3(c),
            _float3(semi),
            tuple(_float3(row) for row in r),
        )

    def sdf(self, x, y, z) -> np.ndarray:
        """Approximate signed distance (mm, negative inside); exact to first order at the
        surface, which is all that thresholds and blending need."""
        d = (x - self.c[0], y - self.c[1], z - self.c[2])
        r = self.rot
        k2 = 0.0
        g2 = 0.0
        for i in range(3):
            # local coordinate q_i = column i of R dotted with d (R^T d); skip zero terms
            q = 0.0
            for j in range(3):
                if abs(r[j][i]) > 1e-9:
                    q = q + r[j][i] * d[j]
            a = self.semi[i]
            k2 = k2 + (q / a) ** 2
            g2 = g2 + (q / (a * a)) ** 2
        k = np.sqrt(k2)
        # f/|grad f| for f = |q/a| - 1; the epsilons give the limit -min(semi) at the centre
        eps = 1e-3
        return (k - 1.0) * (k + eps) / (np.sqrt(g2) + eps / min(self.semi))

    def bounds(self, pad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        r = max(self.semi) + pad
        c = np.asarray(self.c)
        return c - r, c + r

    def shifted(self, local_offset) -> np.ndarray:
        """World point at ``local_offset`` (mm, in the ellipsoid frame) from the centre."""
        return np.asarray(self.c) + np.asarray(self.rot) @ np.asarray(local_offset, dtype=float)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth minimum (polynomial) of two distance fields, blend width k mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _ellipse_sdf(dx, dy, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipse (infinite along z)."""
    k = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
    g = np.sqrt((dx / ax**2) ** 2 + (dy / ay**2) ** 2)
    eps = 1e-3
    return (k - 1.0) * (k + eps) / (g + eps / min(ax, ay))


def _linear_matrix(coords: np.ndarray, lo: float, step: float, n: int) -> np.ndarray:
    """(len(coords), n) float32 weights of linear interpolation on the lattice lo + i*step."""
    u = np.clip((coords.astype(np.float64) - lo) / step, 0.0, n - 1.0)
    i = np.minimum(np.floor(u).astype(np.int64), max(n - 2, 0))
    t = u - i
    m = np.zeros((coords.size, n), dtype=np.float32)
    rows = np.arange(coords.size)
    m[rows, i] = 1.0 - t
    m[rows, np.minimum(i + 1, n - 1)] += t
    return m
