"""The appearance model on real CT: iso tumors, phase awareness, heterogeneity, margins."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import DICOM_DIR, DICOM_ORGANS, TS_LIVER, Case

from synthtumor.imaging import read_ct, read_mask, resample_to_spacing
from synthtumor.realism.stats import tumor_statistics
from synthtumor.synthesis import SynthesisConfig, synthesize
from synthtumor.synthesis.appearance import Appearance, AttenuationClass, Spread
from synthtumor.synthesis.generic import GENERIC_APPEARANCE
from synthtumor.synthesis.phase import (
    NON_CONTRAST_LIVER_HU,
    PORTAL_VENOUS_LIVER_HU,
    PUBLISHED_CONTRAST_HU,
    liver_median_hu,
)

HYPO = AttenuationClass("hypo", 1.0, Spread.of(15.0, 45.0), Spread.of(0.2, 0.6))
ISO = AttenuationClass("iso", 1.0, Spread.of(-6.0, 8.0), Spread.of(0.9, 1.1))


@pytest.fixture(scope="module")
def dicom_1mm() -> Case:
    """The contrast-enhanced DICOM series (liver ~93 HU) on a 1 mm grid, like training."""
    ct = read_ct(DICOM_DIR)
    liver = read_mask(DICOM_ORGANS, ct, label=TS_LIVER)
    ct1 = resample_to_spacing(ct, 1.0, order=1)
    liver1 = resample_to_spacing(liver, 1.0, order=0)
    return Case(ct1.array.astype(np.float32), (liver1.array > 0).astype(np.uint8), ct1.affine)


def _measure(case: Case, config: SynthesisConfig, seeds: range) -> dict[str, np.ndarray]:
    tumors = []
    for seed in seeds:
        result = synthesize(case.ct, case.liver, np.random.default_rng(seed), config,
                            affine=case.affine)
        tumors += tumor_statistics(result.ct, result.label, case.affine).tumors
    return {k: np.array([t[k] for t in tumors], dtype=float)
            for k in ("contrast_hu", "std_hu", "sphericity")}


def test_iso_tumors_measure_within_15_hu(totalseg_1mm: Case, dicom_1mm: Case) -> None:
    """An appearance that asks for iso tumors only: >= 90 % of them measure |contrast| <= 15
    HU, in the non-contrast and in the contrast-enhanced case."""
    config = SynthesisConfig(tumor_type="small", count=4,
                             appearance=replace(GENERIC_APPEARANCE, classes=(ISO,)))
    for case in (totalseg_1mm, dicom_1mm):
        contrast = _measure(case, config, range(6))["contrast_hu"]
        contrast = contrast[np.isfinite(contrast)]
        assert contrast.size >= 15
        assert np.mean(np.abs(contrast) <= 15.0) >= 0.9, np.round(contrast, 1)


def test_same_profile_gives_each_phase_its_published_contrast(
    totalseg_1mm: Case, dicom_1mm: Case
) -> None:
    """One hypo appearance; the non-contrast liver (~46 HU) and the portal-venous one (~93 HU)
    are told apart by their HU, and the measured contrasts fall in each phase's range."""
    config = SynthesisConfig(tumor_type="small", count=4,
                             appearance=replace(GENERIC_APPEARANCE, classes=(HYPO,)))
    medians = {}
    for phase, case in (("non-contrast", totalseg_1mm), ("portal venous", dicom_1mm)):
        liver_hu = liver_median_hu(case.ct, case.liver)
        expected = NON_CONTRAST_LIVER_HU if phase == "non-contrast" else (80.0, 130.0)
        assert expected[0] <= liver_hu <= expected[1], (phase, liver_hu)
        contrast = _measure(case, config, range(6))["contrast_hu"]
        contrast = contrast[np.isfinite(contrast)]
        lo, hi = PUBLISHED_CONTRAST_HU[phase]
        assert np.mean((contrast >= lo) & (contrast <= hi)) >= 0.85, (phase, contrast)
        medians[phase] = float(np.median(contrast))
    assert medians["portal venous"] > medians["non-contrast"] + 10.0, medians
    assert PORTAL_VENOUS_LIVER_HU[0] > NON_CONTRAST_LIVER_HU[1]


def test_heterogeneity_and_margin_are_what_was_drawn(totalseg_1mm: Case) -> None:
    """The HU std inside the tumor is the drawn one (host texture included); an irregular
    margin lowers the sphericity of the same tumors."""
    smooth = Appearance(classes=(HYPO,), std_hu=Spread.of(25.0), corr_mm=Spread.of(0.5),
                        edge_mm=Spread.of(0.5), irregularity=Spread.of(0.0))
    rough = replace(smooth, irregularity=Spread.of(0.25), lobe_scale=Spread.of(0.4))
    base = SynthesisConfig(tumor_type="medium", count=2)
    a = _measure(totalseg_1mm, replace(base, appearance=smooth), range(4))
    b = _measure(totalseg_1mm, replace(base, appearance=rough), range(4))
    assert np.median(a["std_hu"]) == pytest.approx(25.0, abs=3.0)
    assert np.median(b["sphericity"]) < np.median(a["sphericity"]) - 0.05
