"""Two-sample comparison of per-tumor statistics: real vs synthetic, one statistic at a time."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from .sets import StatsSet
from .stats import STATISTICS

QUANTILES = (5, 25, 50, 75, 95)


def summary(values: np.ndarray) -> dict[str, float]:
    """n, median and the 5/25/75/95 % quantiles of finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0, "median": math.nan, **{f"q{q:02d}": math.nan for q in QUANTILES
                                                if q != 50}}
    qs = np.percentile(v, QUANTILES)
    out: dict[str, float] = {"n": int(v.size)}
    for q, value in zip(QUANTILES, qs):
        out["median" if q == 50 else f"q{q:02d}"] = float(value)
    return out


def distance(real: np.ndarray, synthetic: np.ndarray, log: bool = False) -> dict[str, float]:
    """How far apart two samples of one statistic are.

    wasserstein: the 1-Wasserstein (earth mover's) distance after standardising both samples
    with the real one's mean and std (log10 first when ``log``): in real standard deviations,
    0 for identical distributions. ks, ks_p: the two-sample Kolmogorov-Smirnov statistic (0..1,
    scale-free) and its p-value. NaN when a side has fewer than 2 values.
    """
    a = np.asarray(real, dtype=np.float64)
    b = np.asarray(synthetic, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if log:
        a, b = np.log10(a[a > 0]), np.log10(b[b > 0])
    if a.size < 2 or b.size < 2:
        return {"wasserstein": math.nan, "ks": math.nan, "ks_p": math.nan}
    scale = float(a.std()) or float(np.concatenate([a, b]).std()) or 1.0
    centre = float(a.mean())
    w = sps.wasserstein_distance((a - centre) / scale, (b - centre) / scale)
    ks = sps.ks_2samp(a, b)
    return {"wasserstein": float(w), "ks": float(ks.statistic), "ks_p": float(ks.pvalue)}


def compare(real: StatsSet, synthetic: list[StatsSet]) -> dict[str, Any]:
    """Per statistic: the real set's summary, and each synthetic set's summary and distance
    to it. Returns {"real": name, "synthetic": [names], "statistics": {key: {...}}}."""
    out: dict[str, Any] = {"real": real.name, "synthetic": [s.name for s in synthetic],
                           "n_tumors": {s.name: len(s.tumors) for s in [real, *synthetic]},
                           "statistics": {}}
    for stat in STATISTICS:
        a = real.values(stat.key)
        entry: dict[str, Any] = {"label": stat.label, "unit": stat.unit, "log": stat.log,
                                 real.name: summary(a)}
        for s in synthetic:
            b = s.values(stat.key)
            entry[s.name] = summary(b) | distance(a, b, stat.log)
        out["statistics"][stat.key] = entry
    return out
