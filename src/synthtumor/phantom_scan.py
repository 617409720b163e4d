"""Acquisition settings of a phantom CT: contrast phase, image noise and reconstruction sharpness.

``make_phantom(..., scan=Scan(...))`` renders the same anatomy as it would look in another
contrast phase, at another dose (noise) and with another reconstruction kernel (sharpness).
``draw_scan`` draws these settings from :class:`ScanRanges`, which is what the phantom training
sets (``synthtumor data phantoms``) randomize so that a network trained on phantoms meets more
than one scanner protocol.

Typical attenuation values per phase (abdominal CT at 120 kVp; textbook ranges, e.g. Bae,
Radiology 2010, "Intravenous contrast medium administration and scan timing at CT"):
unenhanced liver 50-65 HU with vessels darker than the parenchyma; late arterial liver
65-80 HU, aorta 250-350 HU, renal cortex far brighter than the medulla; portal venous liver
95-115 HU with portal and hepatic veins 60-85 HU above it (the phantom's nominal phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthtumor.errors import InputError

PHASES = ("non-contrast", "arterial", "portal")

#: Nominal scanner blur (Gaussian sigma, mm) of the phantom: a standard soft-tissue kernel.
NOMINAL_PSF_MM = 0.75

# (low, high) HU per tissue and phase; tissues not listed keep their portal-phase value
# (fat, muscle, bone, air, bowel content do not enhance noticeably).
_PHASE_HU: dict[str, dict[str, tuple[float, float]]] = {
    "non-contrast": {
        "liver": (50.0, 65.0), "portal_vein": (35.0, 45.0), "hepatic_vein": (33.0, 43.0),
        "aorta": (35.0, 50.0), "ivc": (35.0, 45.0), "kidney_cortex": (28.0, 38.0),
        "kidney_medulla": (25.0, 33.0), "spleen": (42.0, 52.0), "pancreas": (38.0, 48.0),
        "heart": (38.0, 48.0),
    },
    "arterial": {
        "liver": (65.0, 80.0), "portal_vein": (110.0, 160.0), "hepatic_vein": (50.0, 70.0),
        "aorta": (250.0, 350.0), "ivc": (60.0, 90.0), "kidney_cortex": (180.0, 250.0),
        "kidney_medulla": (70.0, 100.0), "spleen": (90.0, 130.0), "pancreas": (100.0, 130.0),
        "heart": (200.0, 300.0),
    },
}


@dataclass(frozen=True)
class Scan:
    """How one phantom is acquired.

    Attributes:
        phase: ``non-contrast``, ``arterial`` or ``portal`` (the nominal phantom).
        noise_std_hu: standard deviation of the image noise (HU); None: the phantom's own
            per-seed draw (10-14 HU).
        psf_mm: Gaussian sigma of the scanner blur (mm): small = sharp kernel (and finer
            noise grain), large = soft kernel.
    """

    phase: str = "portal"
    noise_std_hu: float | None = None
    psf_mm: float = NOMINAL_PSF_MM

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise InputError(None, f"phase must be one of {', '.join(PHASES)}, got "
                             f"{self.phase!r}")
        if self.noise_std_hu is not None and not self.noise_std_hu >= 0:
            raise InputError(None, f"noise std must be >= 0 HU, got {self.noise_std_hu}")
        if not self.psf_mm > 0:
            raise InputError(None, f"scanner blur must be > 0 mm, got {self.psf_mm}")

    def to_dict(self) -> dict[str, object]:
        return {"phase": self.phase, "noise_std_hu": self.noise_std_hu, "psf_mm": self.psf_mm}


def phase_hu(hu: dict[str, float], phase: str, rng: np.random.Generator) -> dict[str, float]:
    """A copy of the portal-phase tissue HU table ``hu`` as it looks in ``phase``.

    Every tissue that enhances gets a value drawn uniformly from its range for that phase;
    the portal phase returns ``hu`` unchanged (no draw). Liver texture and vessel geometry are
    untouched, so one anatomy can be rendered in all three phases.
    """
    if phase == "portal":
        return dict(hu)
    out = dict(hu)
    for tissue, (lo, hi) in _PHASE_HU[phase].items():
        out[tissue] = float(rng.uniform(lo, hi))
    return out


@dataclass(frozen=True)
class ScanRanges:
    """What ``draw_scan`` randomizes; a range with equal ends (or one phase) fixes it.

    Attributes:
        phases: phases drawn with equal probability.
        noise_std_hu: (low, high) of the noise std (HU), uniform.
        psf_mm: (low, high) of the scanner blur sigma (mm), uniform: 0.45 is a sharp
            (bone-like) kernel, 1.1 a smooth one.
        inplane_mm: (low, high) of the in-plane pixel size (mm), uniform, same for x and y.
        slice_mm: (low, high) of the slice spacing (mm), uniform.
    """

    phases: tuple[str, ...] = PHASES
    noise_std_hu: tuple[float, float] = (6.0, 25.0)
    psf_mm: tuple[float, float] = (0.45, 1.1)
    inplane_mm: tuple[float, float] = (0.7, 1.0)
    slice_mm: tuple[float, float] = (1.0, 5.0)

    def __post_init__(self) -> None:
        if not self.phases or any(p not in PHASES for p in self.phases):
            raise InputError(None, f"phases must be among {', '.join(PHASES)}, got "
                             f"{', '.join(self.phases) or 'none'}")
        for name in ("noise_std_hu", "psf_mm", "inplane_mm", "slice_mm"):
            lo, hi = getattr(self, name)
            smallest = 0.0 if name == "noise_std_hu" else 1e-3
            if not smallest <= lo <= hi:
                raise InputError(None, f"{name} range must satisfy {smallest:g} <= low <= "
                                 f"high, got ({lo}, {hi})")

    def fixed_spacing(self, mm: float) -> ScanRanges:
        """The same ranges with an isotropic spacing of ``mm``."""
        return ScanRanges(self.phases, self.noise_std_hu, self.psf_mm, (mm, mm), (mm, mm))

    def to_dict(self) -> dict[str, object]:
        return {"phases": list(self.phases), "noise_std_hu": list(self.noise_std_hu),
                "psf_mm": list(self.psf_mm), "inplane_mm": list(self.inplane_mm),
                "slice_mm": list(self.slice_mm)}


def draw_scan(rng: np.random.Generator, ranges: ScanRanges
              ) -> tuple[Scan, tuple[float, float, float]]:
    """One acquisition and its voxel spacing (mm, x y z) drawn from ``ranges``.

    Always makes the same five draws in the same order, so fixing one setting does not change
    the others drawn from the same generator.
    """
    phase = ranges.phases[int(rng.integers(len(ranges.phases)))]
    noise = float(rng.uniform(*ranges.noise_std_hu))
    psf = float(rng.uniform(*ranges.psf_mm))
    inplane = round(float(rng.uniform(*ranges.inplane_mm)), 3)
    slice_mm = round(float(rng.uniform(*ranges.slice_mm)), 3)
    return Scan(phase, noise, psf), (inplane, inplane, slice_mm)
