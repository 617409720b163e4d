"""Tumor size classes as data: one table, no code branch per type.

Numbers from Hu et al., "Label-Free Liver Tumor Segmentation" (CVPR 2023) and its public code: a
base radius r per class, semi-axes drawn uniformly in [0.75 r, 1.25 r], a tumor count range and the
standard deviation of the elastic distortion. The reference works on a 1 mm grid, so its voxel
sizes are millimetres here; everything is converted with the image spacing at synthesis time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SizeClass:
    """One size class of tumors.

    radius_mm: base radius r; each semi-axis is drawn in [0.75 r, 1.25 r] mm.
    count: inclusive range of how many tumors of this class one sample gets.
    elastic_sigma_mm: range of the elastic displacement std (mm, = reference voxels at 1 mm).
    integer_sigma: the reference draws an integer sigma in the range (uniform real otherwise).
    """

    name: str
    radius_mm: float
    count: tuple[int, int]
    elastic_sigma_mm: tuple[float, float]
    integer_sigma: bool

    def draw_count(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.count[0], self.count[1], endpoint=True))

    def draw_semi_axes_mm(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.75 * self.radius_mm, 1.25 * self.radius_mm, size=3)

    def draw_elastic_sigma_mm(self, rng: np.random.Generator) -> float:
        lo, hi = self.elastic_sigma_mm
        if self.integer_sigma:
            return float(rng.integers(int(lo), int(hi), endpoint=True))
        return float(rng.uniform(lo, hi))


TINY = SizeClass("tiny", 4.0, (3, 10), (0.5, 1.0), integer_sigma=False)
SMALL = SizeClass("small", 8.0, (3, 10), (1, 2), integer_sigma=True)
MEDIUM = SizeClass("medium", 16.0, (2, 5), (3, 6), integer_sigma=True)
LARGE = SizeClass("large", 32.0, (1, 3), (5, 10), integer_sigma=True)

#: The five tumor types of the method: each is a list of size classes drawn together.
#: "mix" has more small tumors (5-10) than the "small" type (3-10), as in the reference.
PROFILES: Mapping[str, tuple[SizeClass, ...]] = {
    "tiny": (TINY,),
    "small": (SMALL,),
    "medium": (MEDIUM,),
    "large": (LARGE,),
    "mix": (TINY, SizeClass("small", 8.0, (5, 10), (1, 2), integer_sigma=True), MEDIUM, LARGE),
}

#: Probability of each type when none is requested (reference default: uniform).
DEFAULT_TYPE_PROBS: Mapping[str, float] = {name: 0.2 for name in PROFILES}

TUMOR_TYPES: tuple[str, ...] = tuple(PROFILES)


def normalise_type_probs(probs: Mapping[str, float]) -> dict[str, float]:
    """Check type names and make the probabilities sum to one."""
    unknown = set(probs) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown tumor type(s) {sorted(unknown)}; choose from {list(PROFILES)}")
    total = float(sum(probs.values()))
    if total <= 0 or any(p < 0 for p in probs.values()):
        raise ValueError(f"tumor type probabilities must be >= 0 and not all 0, got {dict(probs)}")
    return {name: float(p) / total for name, p in probs.items()}


def draw_type(rng: np.random.Generator, probs: Mapping[str, float]) -> str:
    """Pick a tumor type with the given (normalised) probabilities."""
    names = list(probs)
    return names[int(rng.choice(len(names), p=[probs[n] for n in names]))]
