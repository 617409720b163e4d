"""What the framework adapters share: the one array-level synthesis step and its record.

:func:`synthesize_step` is what the MONAI, TorchIO and nnU-Net transforms (and through the
MONAI one, the training loader) call on arrays they own: the skip rule, the check that the
image is in HU, seeding, synthesis in place with its warnings collected, and the JSON record.
Framework-free (NumPy and the core only), so each adapter imports it without the others'
frameworks.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.conventions import TUMOR
from synthtumor.synthesis import SynthesisConfig, SynthesisResult, SynthesisWarning, synthesize

# Seeds for numpy.random.default_rng, below 2**63 so RandomState.randint/torch.randint give int64.
SEED_LIMIT = 2**62
# Label affines loaded by another reader may differ by float rounding, never by a voxel.
AFFINE_ATOL_MM = 1e-2
# HU check: a liver in CT spans tens of HU (image noise alone is ~10 HU std) around a median of
# about -50..200 HU (fatty to contrast-enhanced); after scaling to [0, 1] or z-scoring, 98 % of
# it lies within a few units of 0. Judged only on livers large enough for stable percentiles.
_NOT_HU_HALF_SPAN = 10.0
_HU_MEDIAN_RANGE = (-300.0, 400.0)
_HU_CHECK_MIN_VOXELS = 1000
_HU_CHECK_SAMPLE = 200_000
# Skip reasons that are not real tumors: warned once per process (per DataLoader worker).
_WARN_ONCE = {"empty_liver", "unexpected_labels"}
_warned: set[tuple[int, str]] = set()


def merge_config(
    config: SynthesisConfig | None,
    tumor_probs: Mapping[str, float] | None,
    profile: Any = None,
) -> SynthesisConfig:
    """``config`` (default: the reference setup), then ``profile`` (a profile JSON path or a
    ``SynthesisProfile``: size classes, type probabilities, drop), then ``tumor_probs``."""
    config = config if config is not None else SynthesisConfig()
    if profile is not None:
        from synthtumor.realism.fit import apply_profile, read_profile

        loaded = read_profile(profile) if isinstance(profile, str | Path) else profile
        config = apply_profile(config, loaded)
    if tumor_probs is not None:
        # The core draws the type from tumor_probs only when no fixed tumor_type is set.
        config = replace(config, tumor_type=None, tumor_probs=dict(tumor_probs))
    return config


def skip_reason(
    label: np.ndarray, liver_label: int | None = None, tumor_label: int | None = TUMOR
) -> str | None:
    """Why a sample gets no synthetic tumors, else None.

    ``liver_label`` None: a 0/1/2 map (any single non-zero id but ``tumor_label`` is liver).
    Reasons: ``"has_tumor"`` (holds ``tumor_label``), ``"empty_liver"`` (no liver voxel),
    ``"unexpected_labels"`` (several organ ids: a multi-organ map given without
    ``liver_label``). ``liver_label`` given: liver is that id, other ids are other organs.
    """
    if tumor_label is not None and np.any(label == tumor_label):
        if liver_label is None and _organ_ids(label, tumor_label):
            return "unexpected_labels"
        return "has_tumor"
    if liver_label is not None:
        return None if np.any(label == liver_label) else "empty_liver"
    if not np.any(label):
        return "empty_liver"
    return "unexpected_labels" if _organ_ids(label, tumor_label) else None


def _organ_ids(label: np.ndarray, tumor_label: int | None) -> list[float]:
    """The non-zero ids other than ``tumor_label`` if there are several (a multi-organ map
    read as 0/1/2), else []. One id, e.g. a 0/255 mask, is the liver."""
    lo, hi = label.min(), label.max()
    if lo >= 0 and hi <= 2:
        return []  # ids 0, 1, 2 only: a 0/1/2 map
    ids = [v for v in np.unique(label).tolist() if v != 0 and v != tumor_label]
    return ids if len(ids) > 1 else []


def default_tumor_label(liver_label: int | None, tumor_label: int | None) -> int | None:
    """The real-tumor id an adapter skips: ``tumor_label`` if given, else 2 for 0/1/2 maps
    and none for organ maps (``liver_label`` given)."""
    if tumor_label is not None:
        return tumor_label
    return TUMOR if liver_label is None else None


def liver_mask(label: np.ndarray, liver_label: int | None = None,
               tumor_label: int | None = TUMOR) -> np.ndarray:
    """A new uint8 0/1 liver mask: ``label == liver_label``, or (0/1/2 maps) non-zero voxels
    that are not ``tumor_label``."""
    if liver_label is not None:
        return np.equal(label, liver_label).view(np.uint8)
    liver = np.not_equal(label, 0)
    if tumor_label is not None:
        liver &= label != tumor_label
    return liver.view(np.uint8)


def check_hu(ct: np.ndarray, liver: np.ndarray, where: str) -> None:
    """ValueError when the liver's values cannot be HU (scaled to [0, 1], z-scored, stored
    without the rescale intercept): tumors are drawn in HU, so the transform must come before
    any intensity scaling. Livers under 1000 voxels (slivers in a patch) are not judged."""
    values = ct[liver.view(bool)]
    if values.size < _HU_CHECK_MIN_VOXELS:
        return
    values = values[:: max(1, values.size // _HU_CHECK_SAMPLE)]
    lo, med, hi = (float(v) for v in np.percentile(values, [1, 50, 99]))
    flat = -_NOT_HU_HALF_SPAN <= lo and hi <= _NOT_HU_HALF_SPAN
    if flat or not _HU_MEDIAN_RANGE[0] <= med <= _HU_MEDIAN_RANGE[1]:
        raise ValueError(
            f"{where}: the image is not in HU (liver voxels: median {med:.3g}, 1-99 % "
            f"{lo:.3g}..{hi:.3g}; a liver in CT has a median of -50..200 HU and spans tens of "
            "HU); put the tumor synthesis before any intensity scaling (ScaleIntensityRanged, "
            "NormalizeIntensity, RescaleIntensity, ZNormalization)"
        )


@dataclass
class Step:
    """What :func:`synthesize_step` did to one sample: ``result`` (None when skipped, then
    ``reason`` says why) and the numpy seed that reproduces it."""

    result: SynthesisResult | None
    reason: str | None
    seed: int | None

    @property
    def record(self) -> str:
        """The sample's JSON record, see :func:`record_json`."""
        return record_json(self.result, self.seed, self.reason)


def synthesize_step(
    ct: np.ndarray,
    label: np.ndarray,
    seed: int | np.random.Generator,
    config: SynthesisConfig,
    *,
    affine: np.ndarray | None = None,
    spacing: Any = None,
    geometry: Callable[[], tuple[np.ndarray | None, Any]] | None = None,
    liver_label: int | None = None,
    tumor_label: int | None = TUMOR,
    where: str = "tumor synthesis",
    vessels: np.ndarray | None = None,
) -> Step:
    """The one array-level synthesis step of every adapter.

    ct: (x, y, z) float32 HU array the caller owns: tumors are written into it in place.
    label: (x, y, z) label map (0/1/2, or organ ids with ``liver_label``); not modified.
    affine / spacing: as for ``synthesize``; or ``geometry()`` returns them, called only when
    the sample is not skipped (its errors are then not raised for skipped samples).
    seed: a numpy ``default_rng`` seed (recorded) or a Generator (seed recorded as None).
    vessels: the vessels to avoid (bool, the grid of ``ct``; e.g. found once per case), for
    configs with ``avoid_vessels``; None: found in ``ct`` on every call.
    Skips (``result`` None) per :func:`skip_reason`; skips other than real tumors warn once per
    process. Raises ValueError (naming ``where``) when the image is not in HU. Otherwise the
    result's ``ct`` is ``ct`` itself, its ``label`` a new 0/1/2 map, and the core's warnings
    are in ``result.params["warnings"]`` instead of the log.
    """
    reason = skip_reason(label, liver_label, tumor_label)
    if reason is not None:
        _warn_once(reason, label, liver_label, where)
        return Step(None, reason, None)
    if geometry is not None:
        affine, spacing = geometry()
    liver = liver_mask(label, liver_label, tumor_label)
    check_hu(ct, liver, where)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    result = synthesize_quietly(ct, liver, rng, config, affine=affine, spacing=spacing,
                                inplace=True, vessels=vessels)
    return Step(result, None, None if isinstance(seed, np.random.Generator) else int(seed))


def _warn_once(reason: str, label: np.ndarray, liver_label: int | None, where: str) -> None:
    key = (os.getpid(), reason)
    if reason not in _WARN_ONCE or key in _warned:
        return
    _warned.add(key)
    if reason == "unexpected_labels":
        ids = [v for v in np.unique(label).tolist() if v != 0][:8]
        message = (f"{where}: a label map with several organ ids {ids} got no tumors; pass "
                   "liver_label= (and tumor_label=) for multi-organ maps, e.g. liver_label=5 "
                   "for TotalSegmentator")
    else:
        liver = "non-zero" if liver_label is None else f"id {liver_label}"
        message = (f"{where}: a sample without liver voxels ({liver}) got no tumors; normal for "
                   "patches outside the liver, else check liver_label=")
    warnings.warn(message + " (warned once per process)",
                  SynthesisWarning, stacklevel=3)


def synthesize_quietly(*args: Any, **kwargs: Any) -> SynthesisResult:
    """``synthesize`` for data loaders: its warnings (e.g. a patch holding only a sliver of
    liver, so tumors are clipped) go into ``result.params["warnings"]`` and on into the sample
    record, instead of flooding the training log once per sample."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SynthesisWarning)
        result = synthesize(*args, **kwargs)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, SynthesisWarning)})
    for w in caught:  # anything else is not ours to silence
        if not issubclass(w.category, SynthesisWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if notes:
        result.params["warnings"] = notes
    return result


def _json_default(value: Any) -> Any:
    """Make numpy scalars and arrays JSON-serialisable (used by ``json.dumps``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def record_json(
    result: SynthesisResult | None, seed: int | None, reason: str | None = None
) -> str:
    """The JSON record of one sample.

    Keys: ``applied`` (bool), ``reason`` (why it was skipped: ``"not_drawn"``, ``"has_tumor"``,
    ``"empty_liver"``, ``"unexpected_labels"``, ``"missing_key"``; null when applied),
    ``seed`` (the numpy ``default_rng`` seed that reproduces it with ``synthesize``),
    ``tumor_type``, ``tumors`` (``TumorRecord.to_dict()`` each: sizes in mm, volumes in ml,
    centres in the image's world frame) and ``params`` (the sample-level draws).
    """
    applied = result is not None
    body: dict[str, Any] = {
        "applied": applied,
        "reason": None if applied else reason,
        "seed": seed if applied else None,
        "tumor_type": result.tumor_type if result is not None else None,
        "tumors": [t.to_dict() for t in result.tumors] if result is not None else [],
        "params": result.params if result is not None else {},
    }
    return json.dumps(body, default=_json_default)


def load_tumor_records(value: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
    """Decode the record of one sample (a string) or of a collated batch (a list of strings)."""
    if isinstance(value, str):
        return json.loads(value)
    return [json.loads(v) for v in value]
