"""A synthesis profile estimated from annotated real tumors, and profile files.

Each real tumor goes to the built-in size class nearest its equivalent radius on a log scale
(tiny 4, small 8, medium 16, large 32 mm: boundaries 5.7, 11.3, 22.6 mm). Then per class:
radius_mm = the median equivalent radius of its real tumors; count = the range, over the real
cases, of how many tumors of that class a case has; the elastic distortion stays the
built-in class's. Type probabilities: a case with tumors of one class counts for that type, a
case with several classes for "mix". drop_hu: the real contrast's 10-90 % range divided by
``CONTRAST_PER_DROP``, because a synthetic tumor's measured contrast is only a fraction of the
drop d (texture and soft edge). Format 2 adds the appearance (``fit_appearance``):
heterogeneity, edge width, margin irregularity and the attenuation classes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.errors import InputError
from synthtumor.files import read_json_file, write_json_atomic
from synthtumor.synthesis import SynthesisConfig
from synthtumor.synthesis.profiles import (
    PROFILES,
    SizeClass,
    SynthesisProfile,
    normalise_type_probs,
    profile_from_dict,
    profile_to_dict,
)

from .fit_appearance import fit_appearance
from .schema import check_profile
from .sets import StatsSet

#: Measured contrast (``stats.tumor_statistics``) per HU of drop d: median over 53 tumors of 12
#: reference samples (drop fixed at 100 HU) in totalseg_ct at 1 mm: 34.8 HU, so 0.35 (by
#: equivalent radius: 0.30 under 4 mm, 0.32 at 4-8, 0.39 at 8-16, 0.49 above 16 mm).
CONTRAST_PER_DROP = 0.35
CLASS_NAMES = ("tiny", "small", "medium", "large")
_BASE = {name: PROFILES[name][0] for name in CLASS_NAMES}


def size_class_of(radius_mm: float) -> str:
    """The built-in size class nearest ``radius_mm`` (equivalent radius) on a log scale."""
    radii = np.array([_BASE[n].radius_mm for n in CLASS_NAMES])
    return CLASS_NAMES[int(np.argmin(np.abs(np.log(radii) - math.log(max(radius_mm, 1e-3)))))]


def fit_profile(real: StatsSet, contrast_per_drop: float = CONTRAST_PER_DROP, *,
                fixed_phase: bool = False, beyond_liver: bool = False
                ) -> tuple[SynthesisProfile, dict[str, Any]]:
    """Estimate a profile from the real set's tumors (see the module docstring).

    fixed_phase: pin the appearance's liver enhancement to the real scans' (their contrasts
    in any scan) instead of following each scan's phase. beyond_liver: fit heterogeneity and
    edges relative to the real liver around each tumor (``fit_appearance``).

    Returns the profile and a summary of the fit (per class: tumors, median radius, count
    range; the cases' types; the real contrast range in HU).
    """
    if not real.tumors:
        raise ValueError(f"set {real.name!r} has no tumors to fit a profile to")
    cases = sorted({str(t["case"]) for t in real.tumors})
    per_case: dict[str, Counter[str]] = {c: Counter() for c in cases}
    radii: dict[str, list[float]] = {n: [] for n in CLASS_NAMES}
    for t in real.tumors:
        name = size_class_of(float(t["radius_mm"]))
        radii[name].append(float(t["radius_mm"]))
        per_case[str(t["case"])][name] += 1

    fitted: dict[str, SizeClass] = {}
    for name in CLASS_NAMES:
        if not radii[name]:
            continue
        counts = [per_case[c][name] for c in cases]
        base = _BASE[name]
        fitted[name] = SizeClass(name, round(float(np.median(radii[name])), 2),
                                 (min(counts), max(counts)), base.elastic_sigma_mm,
                                 base.integer_sigma)
    case_types = Counter(
        next(iter(per_case[c])) if len(per_case[c]) == 1 else "mix" for c in cases
    )
    table: dict[str, tuple[SizeClass, ...]] = dict(PROFILES)
    for name, cls in fitted.items():
        # a single-class type: only cases holding that class say how many it has
        counts = [per_case[c][name] for c in cases if per_case[c][name]]
        table[name] = (SizeClass(name, cls.radius_mm, (min(counts), max(counts)),
                                 cls.elastic_sigma_mm, cls.integer_sigma),)
    table["mix"] = tuple(fitted.values())
    probs = normalise_type_probs({n: float(case_types.get(n, 0)) for n in PROFILES})

    contrast = real.values("contrast_hu")
    drop = None
    if contrast.size:
        lo, hi = np.percentile(contrast, [10, 90]) / contrast_per_drop
        drop = (round(float(lo), 1), round(float(hi), 1))
    summary: dict[str, Any] = {
        "cases": len(cases), "tumors": len(real.tumors), "case_types": dict(case_types),
        "classes": {n: {"tumors": len(radii[n]), "radius_mm": c.radius_mm,
                        "count": list(c.count)} for n, c in fitted.items()},
        "contrast_hu_p10_p90": None if not contrast.size
        else [round(float(v), 1) for v in np.percentile(contrast, [10, 90])],
        "contrast_per_drop": contrast_per_drop,
    }
    summary["cautions"] = fit_cautions(summary)
    appearance = None
    if len(real.values("std_hu")) >= 2:
        radii_sigma = {n: (c.radius_mm, float(np.mean(c.elastic_sigma_mm)))
                       for n, c in fitted.items()}
        appearance, summary["appearance"] = fit_appearance(real, radii_sigma, beyond_liver)
        enhancement = summary["appearance"]["liver_enhancement_hu"]
        if fixed_phase and enhancement is not None:
            appearance = replace(appearance, enhancement_hu=float(enhancement))
    return SynthesisProfile(table, probs, drop, appearance), summary


#: fewer cases than this: the fitted counts and type probabilities are those cases' own
FEW_CASES = 5


def fit_cautions(summary: dict[str, Any]) -> list[str]:
    """What a user should know before training on a profile of this fit (``fit_profile``'s
    summary): a profile fitted to few cases repeats their tumor counts and mixture in every
    sample, and draws no tumor of a size class none of their lesions had."""
    notes = []
    if summary["cases"] < FEW_CASES:
        notes.append(f"fitted to {summary['cases']} case(s): every sample repeats their tumor "
                     "counts per size class; for training, the generic --realistic preset did "
                     "better than a one-case fit in the efficacy benchmark (README)")
    missing = [n for n in CLASS_NAMES if n not in summary["classes"]]
    if missing:
        notes.append(f"no real tumor of class {', '.join(missing)}: this profile draws none")
    return notes


def write_profile(path: Path, profile: SynthesisProfile, source: dict[str, Any]) -> None:
    """Write a profile JSON atomically (``source``: what it was fitted from)."""
    write_json_atomic(path, profile_to_dict(profile, source=source))


def read_profile(path: str | Path) -> SynthesisProfile:
    """Read and validate a profile JSON; InputError naming the file on any problem."""
    p = Path(path)
    data = read_json_file(p, "profile")
    try:
        check_profile(data)
        return profile_from_dict(data)
    except ValueError as err:
        raise InputError(p, f"bad profile: {err}") from None


def apply_profile(config: SynthesisConfig, profile: SynthesisProfile) -> SynthesisConfig:
    """``config`` drawing its size classes, type probabilities and (if given) drop and
    appearance from ``profile``; every other setting (effects, ``tumor_type``, ``count``) is
    kept."""
    return replace(config, profiles=dict(profile.table), tumor_probs=dict(profile.type_probs),
                   drop_hu=profile.drop_hu or config.drop_hu,
                   appearance=profile.appearance or config.appearance)
