"""The drawn anatomy of one phantom in mm, and the liver's signed distance field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthtumor.phantom.body import _Body
from synthtumor.phantom.geometry import _ellipse_sdf, _Ellipsoid, _linear_matrix, _smin
from synthtumor.phantom.noise import _Noise
from synthtumor.phantom.tubes import _Tubes

_LATTICE_MM = 4.0  # grid-independent lattice for the liver volume fit and fast sdf look-ups


@dataclass
class _Anatomy:
    body: _Body
    hu: dict[str, float]
    noise_std: float
    vertebra_period: float
    vertebra_phase: float
    aorta: tuple[float, float, float]  # x, y, radius
    ivc: tuple[float, float, float, float]  # x, y, semi x, semi y
    liver_parts: list[_Ellipsoid]
    liver_blend: float
    liver_warp: _Noise
    liver_texture: _Noise
    gallbladder: _Ellipsoid
    kidneys: list[_Ellipsoid]
    sinuses: list[_Ellipsoid]
    spleen: _Ellipsoid
    spleen_hilum: _Ellipsoid
    stomach: _Ellipsoid
    stomach_gas_y: float
    pancreas: _Tubes
    colon: _Tubes
    colon_texture: _Noise
    small_bowel: list[_Tubes]
    bowel_content_hu: list[float]
    ribs: _Tubes
    psoas: list[tuple[float, float]]  # (x, y) per side
    domes: tuple[tuple[float, float, float], tuple[float, float, float]]  # (x, y, z) R / L
    dome_radius: float  # radius of curvature of the hemidiaphragms, mm
    heart: _Ellipsoid
    liver_offset: float = 0.0  # mm added to the ellipsoid union to hit the drawn volume
    lattice_lo: np.ndarray = None  # type: ignore[assignment]  # world mm of lattice_sdf[0,0,0]
    lattice_sdf: np.ndarray = None  # type: ignore[assignment]  # liver_sdf on a 4 mm lattice
    portal_trunk: _Tubes = None  # type: ignore[assignment]
    portal: _Tubes = None  # type: ignore[assignment]
    hepatic: _Tubes = None  # type: ignore[assignment]

    def carve_sdf(self, x, y, z) -> np.ndarray:
        """Distance to structures the liver must leave room for (IVC, aorta, spine, right
        kidney, gallbladder), with margins; negative inside them."""
        ax, ay, ar = self.aorta
        d = np.sqrt((x - ax) ** 2 + (y - ay) ** 2) - (ar + 3.0)
        ix, iy, isx, isy = self.ivc
        d = np.minimum(d, np.sqrt(((x - ix) / isx) ** 2 + ((y - iy) / isy) ** 2) * isx - isx - 1.0)
        # spine with its processes and the paraspinal gutters: the right lobe wraps round
        # the back only lateral to them
        d = np.minimum(d, _ellipse_sdf(x - (-3.0), y - (self.body.y_vb - 25.0), 41.0, 46.0))
        d = np.minimum(d, self.kidneys[0].sdf(x, y, z) - 4.0)
        d = np.minimum(d, self.gallbladder.sdf(x, y, z))
        d = np.minimum(d, self.spleen.sdf(x, y, z) - 2.0)
        return d

    def liver_shape_sdf(self, x, y, z, warp: np.ndarray | None = None) -> np.ndarray:
        """Free liver shape: smooth union of ellipsoids warped by low-frequency noise (mm).
        ``warp`` may pass ``liver_warp`` already evaluated at the points."""
        parts = self.liver_parts
        d = parts[0].sdf(x, y, z)
        for e in parts[1:]:
            d = _smin(d, e.sdf(x, y, z), self.liver_blend)
        if warp is None:
            warp = self.liver_warp.at(x, y, z)
        return d + warp - self.liver_offset

    def dome_z(self, x, y) -> np.ndarray:
        """Height (mm) of the diaphragm: upper envelope of two paraboloid hemidomes."""
        k = 0.5 / self.dome_radius
        (xr, yr, zr), (xl, yl, zl) = self.domes
        return np.maximum(
            zr - k * ((x - xr) ** 2 + (y - yr) ** 2), zl - k * ((x - xl) ** 2 + (y - yl) ** 2)
        )

    def liver_clip_sdf(self, x, y, z) -> np.ndarray:
        """Room left to the liver by the abdominal wall, the diaphragm and neighbouring
        organs (mm, negative where the liver may be)."""
        d = np.maximum(self.body.cavity_sdf(x, y, z) + 1.0, -self.carve_sdf(x, y, z))
        return np.maximum(d, z - self.dome_z(x, y) + 4.0)

    def liver_sdf(self, x, y, z, warp: np.ndarray | None = None) -> np.ndarray:
        """Signed distance (mm, negative inside) of the liver: free shape cut by the
        abdominal wall and neighbouring organs."""
        return np.maximum(self.liver_shape_sdf(x, y, z, warp), self.liver_clip_sdf(x, y, z))

    def liver_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        pad = 14.0 + max(self.liver_offset, 0.0)
        lo = np.min([e.bounds(pad)[0] for e in self.liver_parts], axis=0)
        hi = np.max([e.bounds(pad)[1] for e in self.liver_parts], axis=0)
        return lo, hi

    def fit_liver_volume(self, litres: float) -> None:
        """Choose ``liver_offset`` so the liver holds ``litres``, counted on a fixed
        ``_LATTICE_MM`` lattice (independent of the output grid, so every spacing gets the
        same shape), and keep the liver sdf on that lattice for fast look-ups."""
        self.liver_offset = 0.0
        lo, hi = self.liver_bounds()
        lo, hi = lo - 12.0, hi + 12.0  # room for a positive offset
        h = _LATTICE_MM
        ax = [np.arange(lo[k], hi[k], h) for k in range(3)]
        x, y, z = ax[0][:, None, None], ax[1][None, :, None], ax[2][None, None, :]
        free = self.liver_shape_sdf(x, y, z)
        clip = self.liver_clip_sdf(x, y, z)
        target = litres * 1e6 / h**3  # lattice points
        t_lo, t_hi = -12.0, 12.0  # beyond this the shape would bloat or shrivel
        for _ in range(22):  # bisection: volume grows monotonically with the offset
            t = 0.5 * (t_lo + t_hi)
            n = np.count_nonzero(np.maximum(free - t, clip) < 0)
            t_lo, t_hi = (t, t_hi) if n < target else (t_lo, t)
        self.liver_offset = 0.5 * (t_lo + t_hi)
        self.lattice_lo = np.array([a[0] for a in ax])
        self.lattice_sdf = np.maximum(free - self.liver_offset, clip).astype(np.float32)

    def liver_sdf_coarse(self, x, y, z) -> np.ndarray:
        """``liver_sdf`` at points (same-shape arrays), trilinear from the lattice: fast,
        within about a millimetre except at creases."""
        x, y, z = np.broadcast_arrays(np.asarray(x), np.asarray(y), np.asarray(z))
        c = np.stack([x.ravel(), y.ravel(), z.ravel()]) - self.lattice_lo[:, None]
        v = ndimage.map_coordinates(self.lattice_sdf, c / _LATTICE_MM, order=1, mode="nearest")
        return v.reshape(x.shape)

    def liver_sdf_coarse_grid(self, xs, ys, zs) -> np.ndarray:
        """``liver_sdf_coarse`` on the tensor grid of 1-D world coordinates (float32)."""
        m = [
            _linear_matrix(np.ravel(c), self.lattice_lo[k], _LATTICE_MM, self.lattice_sdf.shape[k])
            for k, c in enumerate((xs, ys, zs))
        ]
        t = np.tensordot(self.lattice_sdf, m[2], axes=([2], [1]))  # (gx, gy, nz)
        t = np.tensordot(t, m[1], axes=([1], [1]))  # (gx, nz, ny)
        t = np.tensordot(m[0], t, axes=([1], [0]))  # (nx, nz, ny)
        return t.transpose(0, 2, 1)

    def liver_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Tight world bounds (mm) of the liver, from the lattice, with a safety margin."""
        idx = np.nonzero(self.lattice_sdf < _LATTICE_MM)
        lo = self.lattice_lo + np.array([i.min() for i in idx]) * _LATTICE_MM - _LATTICE_MM
        hi = self.lattice_lo + np.array([i.max() for i in idx]) * _LATTICE_MM + _LATTICE_MM
        return lo, hi
