"""Body outline with its subcutaneous fat, abdominal wall muscle and cavity."""

from __future__ import annotations

import math

import numpy as np


class _Body:
    """Body outline and its fat / muscle layers: elliptical cross-sections (flatter at the
    back), slightly wider cranially, with a low-order random wobble of the outline."""

    def __init__(self, rng: np.random.Generator) -> None:
        # the default 300 x 220 mm field of view is tight around this body, like a clinical
        # reconstruction field; a larger body would not fit, a smaller one cramps the liver
        self.a = rng.uniform(138.0, 145.0)  # lateral semi-axis, mm
        self.b_ant = rng.uniform(98.0, 104.0)
        self.b_post = self.b_ant * rng.uniform(0.86, 0.92)
        self.taper = rng.uniform(0.0, 0.04)  # relative widening per 100 mm cranially
        self.harm = rng.normal(0.0, 0.01, (3, 2))  # outline wobble (harmonics 2..4)
        self.fat = (rng.uniform(8.0, 16.0), rng.uniform(10.0, 20.0), rng.uniform(8.0, 14.0))
        self.muscle = (rng.uniform(8.0, 12.0), rng.uniform(9.0, 13.0), rng.uniform(8.0, 11.0))
        self.y_vb = -self.b_post + rng.uniform(72.0, 80.0)  # vertebral body centre, mm

    def _rho_xy(self, x, y, inset: tuple[float, float, float]) -> np.ndarray:
        """Normalised in-plane radius (1 on the layer surface at z = 0) of the outline inset
        by (lateral, anterior, posterior) mm."""
        a = self.a - inset[0]
        b = np.where(y >= 0, self.b_ant - inset[1], self.b_post - inset[2])
        u = (x / a) ** 2 + (y / b) ** 2
        th = np.arctan2(y, x)
        f = 1.0
        for k in range(3):
            f = f + self.harm[k, 0] * np.cos((k + 2) * th) + self.harm[k, 1] * np.sin((k + 2) * th)
        return np.sqrt(u) / f

    def _scale(self, z) -> np.ndarray:
        """Cranio-caudal widening factor of the outline."""
        return 1.0 + self.taper * z / 100.0

    def _inset(self, layer: str) -> tuple[float, float, float]:
        f, m = self.fat, self.muscle
        return {
            "skin": (0.0, 0.0, 0.0),
            "muscle": self.fat,
            "cavity": (f[0] + m[0], f[1] + m[1], f[2] + m[2]),
            "ribs": (f[0] + 0.45 * m[0], f[1] + 0.45 * m[1], f[2] + 0.45 * m[2]),
        }[layer]

    def layer_rho(self, x, y, z, layer: str) -> np.ndarray:
        """Normalised radius of a layer ("skin", "muscle", "cavity", "ribs"): < 1 inside."""
        return self._rho_xy(x, y, self._inset(layer)) / self._scale(z)

    def layer_mask(self, x, y, z, layer: str) -> np.ndarray:
        """Inside a layer, for grid-broadcast coordinates: one 3-D comparison of an (x, y)
        map against the z scale, cheaper than ``layer_rho(...) < 1``."""
        return self._rho_xy(x, y, self._inset(layer)) < self._scale(z)

    def cavity_sdf(self, x, y, z) -> np.ndarray:
        """Radial distance (mm, negative inside) to the inner surface of the abdominal wall."""
        rho = self.layer_rho(x, y, z, "cavity")
        r = np.sqrt(x * x + y * y)
        return r * (1.0 - 1.0 / np.maximum(rho, 1e-6))

    def layer_point(self, theta: float, z: float, layer: str) -> np.ndarray:
        """World point on a layer at in-plane angle theta (rad, from +x towards +y)."""
        c, s = math.cos(theta), math.sin(theta)
        rho = float(self.layer_rho(np.array(c), np.array(s), np.array(z), layer))
        return np.array([c / rho, s / rho, z])
