"""The synthesizer core: NumPy/SciPy (+ numba kernels), no file I/O, no framework imports."""

from .effects import EffectParams
from .painting import kernels_compiled
from .profiles import DEFAULT_TYPE_PROBS, PROFILES, TUMOR_TYPES, SizeClass
from .synthesize import (
    SynthesisConfig,
    SynthesisResult,
    SynthesisWarning,
    TumorRecord,
    case_vessels,
    synthesize,
    voxel_geometry,
)

__all__ = [
    "DEFAULT_TYPE_PROBS",
    "PROFILES",
    "TUMOR_TYPES",
    "EffectParams",
    "SizeClass",
    "SynthesisConfig",
    "SynthesisResult",
    "SynthesisWarning",
    "TumorRecord",
    "case_vessels",
    "kernels_compiled",
    "synthesize",
    "voxel_geometry",
]
