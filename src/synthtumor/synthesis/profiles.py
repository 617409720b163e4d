"""Tumor size classes as data: one table, no code branch per type.

Numbers from Hu et al., "Label-Free Liver Tumor Segmentation" (CVPR 2023) and its public code: a
base radius r per class, semi-axes drawn uniformly in [0.75 r, 1.25 r], a tumor count range and the
standard deviation of the elastic distortion. The reference works on a 1 mm grid, so its voxel
sizes are millimetres here; everything is converted with the image spacing at synthesis time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .appearance import Appearance, AttenuationClass, Spread


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


# --------------------------------------------------------------------------------------------
# profiles as data: a size-class table, type probabilities and an intensity-drop range, e.g.
# fitted to real tumors by ``synthtumor realism --fit`` (the JSON file is read at the edge)

PROFILE_FORMAT = "synthtumor-profile/2"
PROFILE_FORMATS = ("synthtumor-profile/1", PROFILE_FORMAT)  # read both; write the newest
_MAX_RADIUS_MM = 200.0
_MAX_COUNT = 500
_MAX_HU = 1000.0


@dataclass(frozen=True)
class SynthesisProfile:
    """A synthesis profile: which size classes each type draws, and how often each type comes.

    table: type -> size classes, the built-in table where the profile names no classes.
    type_probs: probability of each type (types the profile does not name: 0).
    drop_hu: range of the intensity drop d (HU), or None to keep the configured one.
    appearance: the per-tumor appearance model (format 2), or None (reference intensity).
    """

    table: Mapping[str, tuple[SizeClass, ...]]
    type_probs: Mapping[str, float]
    drop_hu: tuple[float, float] | None = None
    appearance: Appearance | None = None


def _number_pair(value: object, what: str, lo: float, hi: float,
                 integer: bool = False) -> tuple[float, float]:
    pair = value if isinstance(value, list | tuple) else ()
    ok = (len(pair) == 2
          and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair))
    if ok:
        a, b = (float(v) for v in pair)
        ok = bool(np.isfinite([a, b]).all()) and lo <= a <= b <= hi
        ok = ok and (not integer or (a.is_integer() and b.is_integer()))
    if not ok:
        kind = "integers" if integer else "numbers"
        raise ValueError(f"{what} must be two {kind} [low, high] with {lo:g} <= low <= high <= "
                         f"{hi:g}, got {value!r}")
    return a, b


def _size_class(data: object, where: str) -> SizeClass:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, got {data!r}")
    missing = {"name", "radius_mm", "count"} - data.keys()
    if missing:
        raise ValueError(f"{where} lacks {sorted(missing)}")
    radius = data["radius_mm"]
    if (not isinstance(radius, int | float) or isinstance(radius, bool)
            or not 0 < float(radius) <= _MAX_RADIUS_MM):
        raise ValueError(f"{where}.radius_mm must be a number in (0, {_MAX_RADIUS_MM:g}], "
                         f"got {radius!r}")
    lo, hi = _number_pair(data["count"], f"{where}.count", 0, _MAX_COUNT, integer=True)
    if hi < 1:
        raise ValueError(f"{where}.count must allow at least one tumor, got {data['count']!r}")
    integer_sigma = data.get("integer_sigma", False)
    if not isinstance(integer_sigma, bool):
        raise ValueError(f"{where}.integer_sigma must be true or false")
    sigma = _number_pair(data.get("elastic_sigma_mm", [0.5, 1.0]), f"{where}.elastic_sigma_mm",
                         0.0, 50.0, integer=integer_sigma)
    return SizeClass(str(data["name"]), float(radius), (int(lo), int(hi)), sigma, integer_sigma)


def profile_from_dict(data: object) -> SynthesisProfile:
    """Validate a profile (the parsed JSON) and build it; ValueError (one line) if it is bad.

    Format: {"format": "synthtumor-profile/1" or "/2", "types": {TYPE: {"probability": p, "classes":
    [{"name", "radius_mm", "count": [lo, hi], "elastic_sigma_mm": [lo, hi], "integer_sigma"},
    ...]}, ...}, "drop_hu": [lo, hi] (optional), "appearance": {...} (format 2, optional: see
    ``appearance_from_dict``)}; TYPE one of the built-in types.
    """
    if not isinstance(data, dict) or data.get("format") not in PROFILE_FORMATS:
        raise ValueError(f"not a synthesis profile (needs \"format\": \"{PROFILE_FORMAT}\")")
    types = data.get("types")
    if not isinstance(types, dict) or not types:
        raise ValueError("'types' must be a non-empty object of tumor types")
    unknown = set(types) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown tumor type(s) {sorted(unknown)}; choose from {list(PROFILES)}")
    table = dict(PROFILES)
    probs = {name: 0.0 for name in PROFILES}
    for name, entry in types.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("classes"), list) \
                or not entry["classes"]:
            raise ValueError(f"types.{name} needs a non-empty 'classes' list")
        p = entry.get("probability", 0.0)
        if not isinstance(p, int | float) or isinstance(p, bool) or not 0 <= float(p) <= 1e6:
            raise ValueError(f"types.{name}.probability must be a number >= 0, got {p!r}")
        probs[name] = float(p)
        table[name] = tuple(_size_class(c, f"types.{name}.classes[{i}]")
                            for i, c in enumerate(entry["classes"]))
    if sum(probs.values()) <= 0:
        raise ValueError("all type probabilities are 0")
    drop = data.get("drop_hu")
    drop_hu = None if drop is None else _number_pair(drop, "drop_hu", -_MAX_HU, _MAX_HU)
    look = data.get("appearance")
    if look is not None and data["format"] != PROFILE_FORMAT:
        raise ValueError(f"'appearance' needs \"format\": \"{PROFILE_FORMAT}\"")
    appearance = None if look is None else appearance_from_dict(look)
    return SynthesisProfile(table, normalise_type_probs(probs), drop_hu, appearance)


def profile_to_dict(profile: SynthesisProfile, **extra: object) -> dict[str, object]:
    """The JSON form of a profile (types with probability > 0 or non-default classes);
    ``extra`` keys (e.g. where it was fitted from) are added after the format."""
    types = {
        name: {"probability": round(float(profile.type_probs.get(name, 0.0)), 6),
               "classes": [{"name": c.name, "radius_mm": c.radius_mm, "count": list(c.count),
                            "elastic_sigma_mm": list(c.elastic_sigma_mm),
                            "integer_sigma": c.integer_sigma} for c in classes]}
        for name, classes in profile.table.items()
        if profile.type_probs.get(name, 0.0) > 0 or classes != PROFILES[name]
    }
    out: dict[str, object] = {"format": PROFILE_FORMAT, **extra, "types": types}
    if profile.drop_hu is not None:
        out["drop_hu"] = [float(v) for v in profile.drop_hu]
    if profile.appearance is not None:
        out["appearance"] = appearance_to_dict(profile.appearance)
    return out


_SPREADS = ("std_hu", "corr_mm", "edge_mm", "irregularity", "lobe_scale")
_CLASS_SPREADS = ("unenhanced_contrast_hu", "enhancement_ratio", "rim_ratio")
_SATELLITE_KEYS = {"probability": "satellite_probability", "count": "satellite_count",
                   "radius_mm": "satellite_radius_mm", "distance": "satellite_distance",
                   "min_radius_mm": "satellite_min_radius_mm"}


def appearance_to_dict(appearance: Appearance) -> dict[str, object]:
    """The JSON form of an appearance: spreads as knot lists (see ``appearance.Spread``)."""
    out: dict[str, object] = {k: list(getattr(appearance, k).knots) for k in _SPREADS}
    out |= {"scales": appearance.scales, "coarse_weight": appearance.coarse_weight,
            "enhancement_hu": appearance.enhancement_hu,
            "std_beyond_liver": appearance.std_beyond_liver}
    out["classes"] = [{"name": c.name, "probability": round(c.probability, 6),
                       **{k: list(getattr(c, k).knots) for k in _CLASS_SPREADS}}
                      for c in appearance.classes]
    sat = {k: getattr(appearance, attr) for k, attr in _SATELLITE_KEYS.items()}
    out["satellites"] = {k: list(v.knots) if isinstance(v, Spread)
                         else list(v) if isinstance(v, tuple) else v for k, v in sat.items()}
    return out


def appearance_from_dict(data: object) -> Appearance:
    """Build an appearance from its JSON form (already validated at the file edge, e.g. by
    ``realism.schema``); ValueError for what the model itself refuses."""
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ValueError("appearance must be an object with a 'classes' list")
    try:
        classes = tuple(
            AttenuationClass(str(c["name"]), float(c["probability"]),
                             *(Spread.of(*c.get(k, [0.0])) for k in _CLASS_SPREADS))
            for c in data["classes"])
        kwargs: dict[str, Any] = {k: Spread.of(*data[k]) for k in _SPREADS if k in data}
        for k in ("scales", "coarse_weight", "enhancement_hu", "std_beyond_liver"):
            if k in data:
                kwargs[k] = data[k]
        for k, attr in _SATELLITE_KEYS.items():
            v = (data.get("satellites") or {}).get(k)
            if v is not None:
                kwargs[attr] = (Spread.of(*v) if k in ("radius_mm", "distance")
                                else tuple(int(x) for x in v) if k == "count" else float(v))
        return Appearance(classes=classes, **kwargs)
    except (KeyError, TypeError) as err:
        raise ValueError(f"appearance: malformed entry ({err})") from None
