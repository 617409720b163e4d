"""Phase awareness: how much the scan's liver enhanced, from the liver's own HU.

Rule (see docs/realism.md for the sources):
- unenhanced normal liver is ~50-70 HU (fatty liver lower: <= 40 HU is moderate steatosis);
  portal venous phase liver is ~90-130 HU, an enhancement of about 50 HU or more;
- so the liver enhancement of a scan is E = max(0, median liver HU - ``UNENHANCED_LIVER_HU``),
  with 55 HU the typical unenhanced value: 0 for non-contrast CT (~40-65 HU), ~35-75 HU for
  portal venous CT (~90-130 HU);
- a tumor that enhances by a fraction ``ratio`` of the liver's enhancement has, in that scan,
  contrast = unenhanced contrast + (1 - ratio) * E (liver minus tumor, HU): a hypovascular
  tumor (ratio ~0.2-0.6) darkens as the liver brightens, an iso-enhancing one (ratio ~1) keeps
  its unenhanced contrast, a hypervascular one (ratio > 1) turns brighter than the liver.
"""

from __future__ import annotations

import numpy as np

UNENHANCED_LIVER_HU = 55.0
#: Liver HU ranges by phase (non-contrast, portal venous), for reports and tests.
NON_CONTRAST_LIVER_HU = (40.0, 65.0)
PORTAL_VENOUS_LIVER_HU = (90.0, 130.0)
_SAMPLE_STEP = 3  # every 3rd voxel per axis is plenty for a median of >10^4 voxels


def liver_median_hu(ct: np.ndarray, liver: np.ndarray) -> float:
    """Median HU of the liver (``liver`` > 0), on a sub-sampled grid when the liver is big.

    ct, liver: (x, y, z) arrays of one shape (e.g. the liver's bounding box).
    """
    step = _SAMPLE_STEP if liver.size > 200_000 else 1
    sub = (slice(None, None, step),) * 3
    values = ct[sub][liver[sub] > 0]
    if values.size == 0:
        values = ct[liver > 0]
    return float(np.median(values)) if values.size else UNENHANCED_LIVER_HU


def liver_enhancement_hu(liver_hu: float) -> float:
    """The liver's contrast enhancement (HU) estimated from its median HU."""
    return max(0.0, float(liver_hu) - UNENHANCED_LIVER_HU)


def phase_name(liver_hu: float) -> str:
    """'non-contrast', 'portal venous' or 'intermediate' (between the two ranges) or
    'late' (above)."""
    if liver_hu <= NON_CONTRAST_LIVER_HU[1]:
        return "non-contrast"
    if liver_hu < PORTAL_VENOUS_LIVER_HU[0]:
        return "intermediate"
    return "portal venous" if liver_hu <= PORTAL_VENOUS_LIVER_HU[1] else "late"


def contrast_in_scan(unenhanced_contrast_hu: float, ratio: float, liver_hu: float) -> float:
    """Liver minus tumor HU in a scan with this liver HU (the rule of the module docstring)."""
    return unenhanced_contrast_hu + (1.0 - ratio) * liver_enhancement_hu(liver_hu)


#: Liver-minus-tumor HU of hypo-attenuating tumors implied by the published attenuations
#: (docs/realism.md): unenhanced liver 50-70 HU vs solid tumor tissue ~20-45 HU; portal venous
#: liver 90-130 HU vs hypovascular tumors ~40-80 HU.
PUBLISHED_CONTRAST_HU: dict[str, tuple[float, float]] = {
    "non-contrast": (5.0, 50.0),
    "portal venous": (10.0, 90.0),
}
