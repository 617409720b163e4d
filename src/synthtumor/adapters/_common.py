"""What the framework adapters share: configuration merge, skip rules, the JSON sample record.

Framework-free (NumPy and the core only), so each adapter imports it without the other's
framework.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from synthtumor.synthesis import SynthesisConfig, SynthesisResult, SynthesisWarning, synthesize

TUMOR = 2
# Seeds for numpy.random.default_rng, below 2**63 so RandomState.randint/torch.randint give int64.
SEED_LIMIT = 2**62
# Label affines loaded by another reader may differ by float rounding, never by a voxel.
AFFINE_ATOL_MM = 1e-2


def merge_config(
    config: SynthesisConfig | None, tumor_probs: Mapping[str, float] | None
) -> SynthesisConfig:
    """``config`` (default: the reference setup) with ``tumor_probs`` taking precedence."""
    config = config if config is not None else SynthesisConfig()
    if tumor_probs is not None:
        # The core draws the type from tumor_probs only when no fixed tumor_type is set.
        config = replace(config, tumor_type=None, tumor_probs=dict(tumor_probs))
    return config


def skip_reason(label: np.ndarray) -> str | None:
    """Why a sample gets no synthetic tumors: it has real ones, or no liver; else None."""
    if np.any(label == TUMOR):
        return "has_tumor"
    if not np.any(label):
        return "empty_liver"
    return None


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
    ``"empty_liver"``, ``"missing_key"``; null when applied), ``seed`` (the numpy
    ``default_rng`` seed that reproduces it with ``synthesize``), ``tumor_type``, ``tumors``
    (``TumorRecord.to_dict()`` each: sizes in mm, volumes in ml, centres in the image's world
    frame) and ``params`` (the sample-level draws).
    """
    applied = result is not None
    body: dict[str, Any] = {
        "applied": applied,
        "reason": None if applied else reason,
        "seed": seed if applied else None,
        "tumor_type": result.tumor_type if applied else None,
        "tumors": [t.to_dict() for t in result.tumors] if applied else [],
        "params": result.params if applied else {},
    }
    return json.dumps(body, default=_json_default)


def load_tumor_records(value: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
    """Decode the record of one sample (a string) or of a collated batch (a list of strings)."""
    if isinstance(value, str):
        return json.loads(value)
    return [json.loads(v) for v in value]
