"""The tumor appearance model as data: what each tumor draws besides its size class.

An ``Appearance`` holds distributions, one per property, and a table of attenuation classes; a
tumor draws one ``Look`` from it. Every distribution is a ``Spread``: knots of its inverse
cumulative distribution at equal probability steps (two knots: uniform between them; the knots
of fitted quantiles: the fitted distribution), so fitted and hand-written models are the same
kind of data and no property has a code branch of its own.

Properties (units in the names): ``std_hu`` the HU standard deviation inside the tumor (what
``realism`` measures, host liver texture included), or with ``std_beyond_liver`` what the
tumor adds to the host liver's own std there, in quadrature (the scan's noise is the host's);
``corr_mm`` the correlation length of the finest texture scale; ``edge_mm`` the width
(Gaussian sigma) of the tumor's edge, sharp (0.3) to infiltrative (3+); ``irregularity`` the
surface displacement as a fraction of the radius; ``lobe_scale`` the displacement's
correlation length as a fraction of the radius (small: rough, large: lobulated). Intensity
comes from the attenuation class and the scan's phase (``phase.contrast_in_scan``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Spread:
    """A 1-D distribution as the knots of its inverse CDF at equal probability steps.

    knots: non-decreasing values at cumulative probabilities 0, 1/(n-1), ..., 1; a value is
    drawn by linear interpolation at u ~ U(0, 1). One knot: a constant.
    """

    knots: tuple[float, ...]

    def __post_init__(self) -> None:
        k = np.asarray(self.knots, dtype=float)
        if k.ndim != 1 or k.size < 1 or not np.isfinite(k).all() or np.any(np.diff(k) < 0):
            raise ValueError(f"a spread needs finite non-decreasing knots, got {self.knots!r}")

    @classmethod
    def of(cls, *knots: float) -> Spread:
        return cls(tuple(float(v) for v in knots))

    @classmethod
    def fitted(cls, values: np.ndarray, n_knots: int = 9) -> Spread:
        """The empirical quantiles of ``values`` at ``n_knots`` equal steps (5 %-95 % ends:
        the extremes of a small sample are too noisy to be the support)."""
        q = np.linspace(5.0, 95.0, n_knots)
        return cls(tuple(round(float(v), 4) for v in np.percentile(values, q)))

    def draw(self, rng: np.random.Generator) -> float:
        if len(self.knots) == 1:
            return self.knots[0]
        return self.at(float(rng.random()))

    def at(self, u: float) -> float:
        """The value at cumulative probability u in [0, 1]: ``np.interp(u, np.linspace(0, 1,
        n), knots)`` with its arithmetic, in plain floats (a draw is made ~8 times per tumor,
        and the NumPy calls cost more than the tumor's other Python)."""
        knots = self.knots
        last = len(knots) - 1
        if u >= 1.0:
            return knots[last]
        step = 1.0 / last  # as linspace: position j is j * step, the last one exactly 1
        j = min(int(u / step), last - 1)
        while j > 0 and j * step > u:  # the division may round up across a knot
            j -= 1
        while j < last - 1 and (j + 1) * step <= u:
            j += 1
        upper = 1.0 if j + 1 == last else (j + 1) * step
        slope = (knots[j + 1] - knots[j]) / (upper - j * step)
        return slope * (u - j * step) + knots[j]

    def bounds(self) -> tuple[float, float]:
        return self.knots[0], self.knots[-1]


@dataclass(frozen=True)
class AttenuationClass:
    """One attenuation class of tumors.

    unenhanced_contrast_hu: liver minus tumor HU without contrast medium (positive: darker).
    enhancement_ratio: the tumor's enhancement as a fraction of the liver's (0: does not
        enhance, 1: enhances like liver, > 1: more). Contrast in a scan whose liver enhanced
        by E HU is unenhanced_contrast + (1 - ratio) E (``phase.contrast_in_scan``).
    rim_ratio: a bright rim of this fraction of the liver enhancement (0: no rim).
    """

    name: str
    probability: float
    unenhanced_contrast_hu: Spread
    enhancement_ratio: Spread
    rim_ratio: Spread = field(default_factory=lambda: Spread.of(0.0))


@dataclass(frozen=True)
class Look:
    """One tumor's drawn appearance (see the module docstring for units)."""

    attenuation: str
    contrast_hu: float  # liver minus tumor in this scan, before texture
    std_hu: float
    corr_mm: float
    edge_mm: float
    irregularity: float
    lobe_scale: float
    rim_hu: float
    std_beyond_liver: bool = False  # std_hu is added to the host's std in quadrature


@dataclass(frozen=True)
class Appearance:
    """Per-tumor appearance distributions and attenuation classes.

    scales: octaves of the texture (correlation lengths corr, 2 corr, ...), each ``coarse_weight``
    times the amplitude of the finer one. satellite_*: around a tumor of at least
    ``satellite_min_radius_mm`` (geometric mean semi-axis), with ``satellite_probability``, a
    number of small nodules (radius ``satellite_radius_mm``) ``satellite_distance`` radii from
    its centre, looking like their parent. enhancement_hu: None (phase-aware): the liver
    enhancement is estimated from each scan's liver HU; a number: every scan is treated as
    having this liver enhancement (the contrasts of the phase a profile was fitted on, in any
    scan). std_beyond_liver: ``std_hu`` is the tumor's heterogeneity beyond the host liver's own
    HU std at the tumor, in quadrature (tumor std = sqrt(host std^2 + std_hu^2)), so that the
    same profile gives tumors as much noisier than their liver in a smooth scan as in a noisy
    one; False: ``std_hu`` is the tumor's std itself.
    """

    classes: tuple[AttenuationClass, ...]
    std_hu: Spread = field(default_factory=lambda: Spread.of(12.0, 30.0))
    corr_mm: Spread = field(default_factory=lambda: Spread.of(0.5, 2.0))
    edge_mm: Spread = field(default_factory=lambda: Spread.of(0.3, 2.0))
    irregularity: Spread = field(default_factory=lambda: Spread.of(0.0, 0.15))
    lobe_scale: Spread = field(default_factory=lambda: Spread.of(0.3, 0.6))
    scales: int = 2
    coarse_weight: float = 0.5
    satellite_probability: float = 0.0
    satellite_count: tuple[int, int] = (1, 4)
    satellite_radius_mm: Spread = field(default_factory=lambda: Spread.of(2.0, 5.0))
    satellite_distance: Spread = field(default_factory=lambda: Spread.of(1.1, 1.5))
    satellite_min_radius_mm: float = 15.0
    enhancement_hu: float | None = None
    std_beyond_liver: bool = False

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("an appearance needs at least one attenuation class")
        probs = [c.probability for c in self.classes]
        if min(probs) < 0 or sum(probs) <= 0:
            raise ValueError(f"attenuation class probabilities must be >= 0, not all 0: {probs}")
        checks = {"std_hu": (self.std_hu, 0.0, 300.0), "corr_mm": (self.corr_mm, 0.0, 50.0),
                  "edge_mm": (self.edge_mm, 0.05, 20.0),
                  "irregularity": (self.irregularity, 0.0, 0.6),
                  "lobe_scale": (self.lobe_scale, 0.05, 2.0)}
        for name, (spread, lo, hi) in checks.items():
            a, b = spread.bounds()
            if a < lo or b > hi:
                raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], got {spread.knots}")
        if not 1 <= self.scales <= 4:
            raise ValueError(f"scales must be 1-4, got {self.scales}")
        if not 0.0 <= self.satellite_probability <= 1.0:
            raise ValueError("satellite_probability must be in [0, 1]")

    def class_probabilities(self) -> dict[str, float]:
        total = sum(c.probability for c in self.classes)
        return {c.name: c.probability / total for c in self.classes}

    def draw_look(self, rng: np.random.Generator, liver_enhancement_hu: float) -> Look:
        """One tumor's look in a scan whose liver enhanced by ``liver_enhancement_hu`` HU
        (replaced by ``enhancement_hu`` when that is set)."""
        if self.enhancement_hu is not None:
            liver_enhancement_hu = self.enhancement_hu
        probs = np.array([c.probability for c in self.classes], dtype=float)
        cls = self.classes[int(rng.choice(len(self.classes), p=probs / probs.sum()))]
        c0 = cls.unenhanced_contrast_hu.draw(rng)
        ratio = cls.enhancement_ratio.draw(rng)
        rim = cls.rim_ratio.draw(rng) * liver_enhancement_hu
        return Look(
            attenuation=cls.name,
            contrast_hu=c0 + (1.0 - ratio) * liver_enhancement_hu,
            std_hu=self.std_hu.draw(rng),
            corr_mm=self.corr_mm.draw(rng),
            edge_mm=self.edge_mm.draw(rng),
            irregularity=self.irregularity.draw(rng),
            lobe_scale=self.lobe_scale.draw(rng),
            rim_hu=rim,
            std_beyond_liver=self.std_beyond_liver,
        )


def with_class_probabilities(appearance: Appearance, probs: Mapping[str, float]) -> Appearance:
    """The same appearance with other class probabilities (classes not named: 0)."""
    from dataclasses import replace

    unknown = set(probs) - {c.name for c in appearance.classes}
    if unknown:
        raise ValueError(f"unknown attenuation class(es) {sorted(unknown)}")
    classes = tuple(replace(c, probability=float(probs.get(c.name, 0.0)))
                    for c in appearance.classes)
    return replace(appearance, classes=classes)
