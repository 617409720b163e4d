"""Tubes: polylines with a radius per vertex (vessels, bowel, ribs), rasterised by the
distance of voxel centres to each segment."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthtumor.phantom.geometry import _Grid


@dataclass
class _Tubes:
    """Segments a->b with radii ra->rb, all mm. Arrays of shape (m, 3) and (m,)."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray

    @staticmethod
    def from_polyline(points: np.ndarray, radii: np.ndarray) -> _Tubes:
        p = np.asarray(points, dtype=float)
        r = np.asarray(radii, dtype=float)
        return _Tubes(p[:-1], p[1:], r[:-1], r[1:])

    @staticmethod
    def concat(parts: list[_Tubes]) -> _Tubes:
        if not parts:
            z3, z1 = np.zeros((0, 3)), np.zeros(0)
            return _Tubes(z3, z3, z1, z1)
        return _Tubes(
            np.concatenate([t.a for t in parts]),
            np.concatenate([t.b for t in parts]),
            np.concatenate([t.ra for t in parts]),
            np.concatenate([t.rb for t in parts]),
        )

    def rasterise(self, grid: _Grid, out: np.ndarray, inset: float = 0.0) -> None:
        """OR into bool ``out`` every voxel whose centre is within (radius - inset) mm."""
        for a, b, ra, rb in zip(self.a, self.b, self.ra - inset, self.rb - inset, strict=True):
            if max(ra, rb) <= 0:
                continue
            rmax = max(ra, rb)
            box = grid.box(np.minimum(a, b) - rmax, np.maximum(a, b) + rmax)
            if box is None:
                continue
            sl, x, y, z = box
            # python floats keep the float32 box arithmetic in float32
            dx, dy, dz = (float(v) for v in b - a)
            ra, rb = float(ra), float(rb)
            dd = dx * dx + dy * dy + dz * dz
            px, py, pz = x - float(a[0]), y - float(a[1]), z - float(a[2])
            if dd > 1e-9:
                t = np.clip((px * dx + py * dy + pz * dz) / dd, 0.0, 1.0)
            else:
                t = np.zeros(np.broadcast_shapes(px.shape, py.shape, pz.shape), np.float32)
            ex, ey, ez = px - t * dx, py - t * dy, pz - t * dz
            r = np.maximum(ra + t * (rb - ra), 0.0)
            out[sl] |= ex * ex + ey * ey + ez * ez <= r * r

    def centreline(self, grid: _Grid, out: np.ndarray) -> None:
        """Mark a face-connected (6-connected) chain of voxels along every segment, so a
        tube thinner than a voxel still rasterises as one connected piece."""
        step = 0.3 * float(grid.spacing.min())
        for a, b in zip(self.a, self.b, strict=True):
            n = max(2, int(math.ceil(float(np.linalg.norm(b - a)) / step)) + 1)
            pts = a[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None, :]
            idx = grid.index_of(pts)
            # staircase between consecutive voxels: change one axis at a time
            s1 = idx[:-1].copy()
            s1[:, 0] = idx[1:, 0]
            s2 = s1.copy()
            s2[:, 1] = idx[1:, 1]
            allidx = np.concatenate([idx, s1, s2])
            ok = np.all((allidx >= 0) & (allidx < np.asarray(grid.shape)), axis=1)
            allidx = allidx[ok]
            out[allidx[:, 0], allidx[:, 1], allidx[:, 2]] = True
