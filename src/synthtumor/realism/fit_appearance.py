"""Fit the appearance model (``synthesis.appearance``) to annotated real tumors.

Per real tumor, from its ``stats`` record:
- std_hu: the HU std inside it, as is (synthesis reproduces the drawn std, host included);
  with ``beyond_liver``: what the tumor adds to its liver shell's HU std in quadrature
  (``std_above_liver_hu``; negative: 0), used with ``std_beyond_liver``, so that a tumor is as
  much noisier than the host liver it goes into as the real one was than its own, whatever
  the two scans' noise;
- corr_mm: from its GLCM contrast and std. Neighbours h mm apart differ by 2 std^2 (1 - rho(h))
  on average; the GLCM adds the quantisation (1/6 level^2), so the mean correlation over the 13
  GLCM directions is rho = 1 - (glcm - 1/6) level^2 / (2 std^2), and the smoothing std s of one
  noise scale (rho(h) = exp(-h^2 / 4 s^2)) is solved from it; one scale;
- edge_mm: its edge sharpness is the mean gradient over the voxel layers either side of the
  boundary: noise (white noise of std s gives ~1.13 s HU/mm with central differences; counted
  on the tumor side only, half the layer voxels, because the host liver the tumors go into is
  typically smoother than a tumor) and the step (contrast C blurred by sigma gives
  C phi(0.5 / sigma') / sigma' half a voxel from the surface, sigma'^2 = sigma^2 + 0.5^2 for
  the voxel grid): solved for sigma (no evidence, left out: noise explains it all, or iso);
  with ``beyond_liver``, the boundary's RMS gradient beyond the liver shell's
  (``edge_above_liver_hu_per_mm``, the scan's noise removed) is the step's gradient itself;
- irregularity: the margin displacement whose simulated sphericity, at the tumor's size, is
  the tumor's (``calibrate_sphericity``: the margin model alone on a 1 mm grid, fixed seed);
- attenuation class: iso when |contrast| <= 15 HU, hyper below -15, hypo above 15; the class
  probabilities are their shares. Per class the contrast is moved to the unenhanced phase with
  the liver HU around the tumor (mean HU + contrast) and the class's generic enhancement ratio
  (``phase``), so the same profile follows the phase of the scan it is used on.
Each property's distribution is the fitted quantiles (``Spread.fitted``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthtumor.synthesis.appearance import Appearance, AttenuationClass, Spread
from synthtumor.synthesis.generic import GENERIC_APPEARANCE, GENERIC_CLASSES
from synthtumor.synthesis.margin import displace_surface, margin_reach_mm
from synthtumor.synthesis.phase import liver_enhancement_hu
from synthtumor.synthesis.shape import Distortion, evaluate_shape

from .sets import StatsSet
from .stats import GLCM_LEVELS, GLCM_WINDOW_HU, surface_area_mm2

ISO_HU = 15.0
_LEVEL_HU = (GLCM_WINDOW_HU[1] - GLCM_WINDOW_HU[0]) / GLCM_LEVELS
_LAGS = np.array([1.0] * 3 + [math.sqrt(2.0)] * 6 + [math.sqrt(3.0)] * 4)  # GLCM directions
_IRREGULARITY_GRID = np.array([0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
_NOISE_GRADIENT = 1.13  # mean |central-difference gradient| of white noise, per HU of std


def _corr_from_glcm(std_hu: float, glcm_contrast: float) -> float:
    """Smoothing std (mm) of one noise scale giving this GLCM contrast at this std (1 mm grid)."""
    if not (std_hu > 0 and math.isfinite(glcm_contrast)):
        return math.nan
    rho = 1.0 - (glcm_contrast - 1.0 / 6.0) * _LEVEL_HU**2 / (2.0 * std_hu**2)
    if rho <= 0.02:
        return 0.3  # as good as white
    rho = min(rho, 0.98)
    grid = np.linspace(0.3, 8.0, 400)
    mean_rho = np.exp(-(_LAGS[None, :] ** 2) / (4.0 * grid[:, None] ** 2)).mean(axis=1)
    return float(np.interp(rho, mean_rho, grid))


def _edge_from_gradient(contrast_hu: float, std_hu: float, edge_hu_per_mm: float,
                        beyond_hu_per_mm: float = math.nan) -> float:
    """Edge sigma (mm) whose blurred step plus white noise gives this edge sharpness, or whose
    blurred step alone gives ``beyond_hu_per_mm`` (the gradient beyond the liver's) if finite."""
    if math.isfinite(beyond_hu_per_mm):
        step_sq = math.copysign(beyond_hu_per_mm**2, beyond_hu_per_mm)
    elif all(math.isfinite(v) for v in (std_hu, edge_hu_per_mm)):
        step_sq = edge_hu_per_mm**2 - 0.5 * (_NOISE_GRADIENT * std_hu) ** 2
    else:
        return math.nan
    if not math.isfinite(contrast_hu):
        return math.nan
    c = abs(contrast_hu)
    grid = np.linspace(0.5, 4.0, 300)  # sigma' (grid blur included); decreasing in sigma'
    profile = c * np.exp(-0.5 * (0.5 / grid) ** 2) / (math.sqrt(2 * math.pi) * grid)
    if step_sq <= 0 or c < ISO_HU or math.sqrt(step_sq) < profile[-1]:
        return math.nan  # noise explains the gradient, or no step to see: no evidence
    sigma_eff = float(np.interp(math.sqrt(step_sq), profile[::-1], grid[::-1]))
    return float(np.clip(math.sqrt(max(sigma_eff**2 - 0.25, 0.0)), 0.2, 8.0))


def _sphericity(inside: np.ndarray) -> float:
    volume = float(np.count_nonzero(inside))
    area = surface_area_mm2(inside, (1.0, 1.0, 1.0))
    return math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area if area > 0 else math.nan


def calibrate_sphericity(radius_mm: float, elastic_sigma_mm: float, lobe: Spread,
                         draws: int = 4, seed: int = 0) -> np.ndarray:
    """Mean sphericity of the margin model per ``_IRREGULARITY_GRID`` value, for tumors of this
    base radius and elastic distortion, on a 1 mm grid (the measuring grid)."""
    rng = np.random.default_rng(seed)
    out = []
    for a in _IRREGULARITY_GRID:
        values = []
        for _ in range(draws):
            semi = rng.uniform(0.75, 1.25, size=3) * radius_mm
            distortion = Distortion.draw(rng, elastic_sigma_mm)
            half = np.ceil(semi.max() + distortion.reach_mm().max()
                           + margin_reach_mm(a, 1.25 * radius_mm) + 2.0)
            axes = tuple(np.arange(-half, half + 1.0) for _ in range(3))
            shape = evaluate_shape(axes, semi, distortion)
            radius = float(np.prod(semi) ** (1 / 3))
            d = displace_surface(shape.distance_mm.copy(), (1.0, 1.0, 1.0), radius, float(a),
                                 lobe.draw(rng), rng)
            values.append(_sphericity(d <= 0))
        out.append(float(np.nanmean(values)))
    return np.array(out)


def _irregularities(real: StatsSet, class_radii: dict[str, tuple[float, float]],
                    lobe: Spread) -> np.ndarray:
    """Per real tumor: the irregularity whose simulated sphericity at its size matches."""
    radii = {name: r for name, (r, _) in class_radii.items()}
    curves = {name: calibrate_sphericity(r, s, lobe) for name, (r, s) in class_radii.items()}
    out = []
    for t in real.tumors:
        sph, r = float(t.get("sphericity", math.nan)), float(t.get("radius_mm", math.nan))
        if not (math.isfinite(sph) and math.isfinite(r)):
            continue
        name = min(radii, key=lambda n: abs(math.log(radii[n]) - math.log(max(r, 0.1))))
        curve = curves[name]  # decreasing in irregularity (up to noise): interpolate reversed
        order = np.argsort(curve)
        out.append(float(np.interp(sph, curve[order], _IRREGULARITY_GRID[order])))
    return np.array(out)


def _fit_classes(real: StatsSet) -> tuple[tuple[AttenuationClass, ...], dict[str, Any]]:
    generic = {c.name: c for c in GENERIC_CLASSES}
    groups: dict[str, list[float]] = {"hypo": [], "iso": [], "hyper": []}
    for t in real.tumors:
        c, mean = float(t.get("contrast_hu", math.nan)), float(t.get("mean_hu", math.nan))
        if not (math.isfinite(c) and math.isfinite(mean)):
            continue
        name = "iso" if abs(c) <= ISO_HU else "hyper" if c < -ISO_HU else "hypo"
        ratio = float(np.mean(generic[name].enhancement_ratio.bounds()))
        groups[name].append(c - (1.0 - ratio) * liver_enhancement_hu(mean + c))
    total = sum(len(v) for v in groups.values())
    if total == 0:
        return GENERIC_CLASSES, {"tumors": 0}
    classes = []
    for name, c0 in groups.items():
        if not c0:
            continue
        ratio = float(np.mean(generic[name].enhancement_ratio.bounds()))
        spread = Spread.fitted(np.array(c0)) if len(c0) >= 3 else Spread.of(min(c0), max(c0))
        classes.append(AttenuationClass(name, len(c0) / total, spread, Spread.of(ratio)))
    summary = {name: len(v) for name, v in groups.items()}
    return tuple(classes), summary


def fit_appearance(real: StatsSet, class_radii: dict[str, tuple[float, float]],
                   beyond_liver: bool = False) -> tuple[Appearance, dict[str, Any]]:
    """The appearance of the real set's tumors (see the module docstring).

    class_radii: size class -> (base radius mm, elastic sigma mm) of the fitted size classes,
    for the sphericity calibration. beyond_liver: fit heterogeneity and edges relative to the
    real liver around each tumor (ValueError if the stats lack those measures, as files of
    earlier versions do). Returns the appearance and a summary of the fit.
    """
    std = real.values("std_hu")
    if std.size < 2:
        raise ValueError(f"set {real.name!r} has too few measured tumors to fit an appearance")
    beyond = real.values("std_above_liver_hu")
    if beyond_liver and beyond.size < 2:
        raise ValueError(f"set {real.name!r} has no heterogeneity beyond the liver measured "
                         "(stats of an earlier version?): measure the real tumors again")
    rows = [(float(t.get("std_hu", math.nan)), float(t.get("glcm_contrast", math.nan)),
             float(t.get("contrast_hu", math.nan)), float(t.get("edge_hu_per_mm", math.nan)),
             float(t.get("edge_above_liver_hu_per_mm", math.nan)) if beyond_liver else math.nan)
            for t in real.tumors]
    corr = np.array([_corr_from_glcm(s, g) for s, g, _, _, _ in rows])
    edge = np.array([_edge_from_gradient(c, s, e, b) for s, _, c, e, b in rows])
    corr, edge = corr[np.isfinite(corr)], edge[np.isfinite(edge)]
    lobe = GENERIC_APPEARANCE.lobe_scale
    irregular = _irregularities(real, class_radii, lobe)
    classes, class_summary = _fit_classes(real)
    liver_hu = real.values("mean_hu") + real.values("contrast_hu") if len(
        real.values("mean_hu")) == len(real.values("contrast_hu")) else np.array([])
    appearance = Appearance(
        classes=classes,
        std_hu=Spread.fitted(np.clip(beyond, 0.0, None) if beyond_liver else std),
        std_beyond_liver=beyond_liver,
        corr_mm=Spread.fitted(corr) if corr.size >= 2 else GENERIC_APPEARANCE.corr_mm,
        edge_mm=Spread.fitted(edge) if edge.size >= 2 else GENERIC_APPEARANCE.edge_mm,
        irregularity=(Spread.fitted(np.clip(irregular, 0.0, 0.6)) if irregular.size >= 2
                      else GENERIC_APPEARANCE.irregularity),
        lobe_scale=lobe,
        scales=1,
        coarse_weight=0.0,
    )
    summary = {
        "std_hu_median": round(float(np.median(std)), 2),
        "std_beyond_liver_hu_median": round(float(np.median(beyond)), 2) if beyond.size
        else None,
        "corr_mm_median": round(float(np.median(corr)), 3) if corr.size else None,
        "edge_mm_median": round(float(np.median(edge)), 3) if edge.size else None,
        "irregularity_median": round(float(np.median(irregular)), 3) if irregular.size
        else None,
        "attenuation_tumors": class_summary,
        # set appearance.enhancement_hu to this to keep the fitted phase's contrasts anywhere
        "liver_enhancement_hu": round(liver_enhancement_hu(float(np.median(liver_hu))), 1)
        if liver_hu.size else None,
    }
    return appearance, summary
