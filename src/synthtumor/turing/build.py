"""Build a blinded reader study: real-tumor and synthetic-tumor cases, rendered alike.

Real cases: CT + label (0 background, 1 liver, 2 tumor); each of the ``lesions_per_real``
largest tumors (further apart than ``min_distance_mm``) becomes one study case. Synthetic
cases: a healthy CT + liver label (0/1), tumors pasted by ``synthesize`` with
``SynthesisConfig.realistic()`` (or the given config), ``synthetic_per_case`` independent
draws per CT; its largest tumor is the one shown. Every case is rendered on the same grid
(``render.View``), written with the same PNG encoder, named by a random id from
``secrets``, and written in a random order. The answer key goes to ``key.json`` only.
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor import __version__
from synthtumor.data.datalist import Case, load_all_cases
from synthtumor.errors import InputError
from synthtumor.files import check_output_folder, staged_folder
from synthtumor.imaging import read_case_labels, read_ct
from synthtumor.synthesis import SynthesisConfig, case_vessels, synthesize
from synthtumor.turing.png import encode_gray_png
from synthtumor.turing.render import Lesion, View, find_lesions, render_stack
from synthtumor.turing.study import DATABASE, FORMAT, FORMAT_VERSION, KEY, MANIFEST, SLICES
from synthtumor.workflow import load_healthy_case

ProgressFn = Callable[[str, int, int], None]
_SYNTH_TRIES = 5  # draws per synthetic case before giving up on a visible tumor


@dataclass(frozen=True)
class BuildResult:
    """What ``build_study`` wrote: the folder, the number of real and synthetic cases, notes."""

    folder: Path
    real: int
    synthetic: int
    warnings: tuple[str, ...]


@dataclass
class _Pending:
    truth: str
    stack: np.ndarray  # uint8 (slices, pixels, pixels)
    record: dict[str, Any]


def _lesion_record(lesion: Lesion) -> dict[str, Any]:
    return {"centre_mm": list(lesion.centre_mm), "volume_ml": lesion.volume_ml,
            "voxels": lesion.voxels}


def _real_cases(
    cases: list[Case], view: View, per_case: int, min_ml: float, min_distance_mm: float,
    tick: Callable[[str], None],
) -> list[_Pending]:
    out = []
    for case in cases:
        tick(f"real {case.case_id}")
        ct = read_ct(case.image)
        labels = read_case_labels(case.label, ct).array
        lesions = find_lesions(labels, ct.affine, min_volume_ml=min_ml, max_count=per_case,
                               min_distance_mm=min_distance_mm)
        if not lesions:
            raise InputError(case.label, f"has no tumor (label 2) of at least {min_ml:g} ml; "
                             "every case of the real list needs one")
        for lesion in lesions:
            out.append(_Pending("real", render_stack(ct.array, ct.affine, lesion.centre_mm, view),
                                {"image": str(case.image), "label": str(case.label),
                                 "lesion": _lesion_record(lesion)}))
    return out


def _synthetic_cases(
    cases: list[Case], view: View, per_case: int, seed: int, min_ml: float,
    tick: Callable[[str], None], notes: list[str], config: SynthesisConfig,
) -> list[_Pending]:
    out = []
    for i, case in enumerate(cases):
        ct, liver = load_healthy_case(case.image, case.label)
        vessels = case_vessels(ct.array, liver, config, affine=ct.affine)  # once per case
        for k in range(per_case):
            tick(f"synthetic {case.case_id} #{k + 1}")
            for attempt in range(_SYNTH_TRIES):
                draw_seed = [seed, i, k, attempt]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result = synthesize(ct.array, liver, np.random.default_rng(draw_seed),
                                        config, affine=ct.affine, vessels=vessels)
                lesions = find_lesions(result.label, ct.affine, min_volume_ml=min_ml)
                if lesions:
                    break
            else:
                raise InputError(case.label, f"no synthetic tumor of at least {min_ml:g} ml fits "
                                 f"this liver in {_SYNTH_TRIES} draws")
            notes.extend(f"{case.case_id}: {w.message}" for w in caught)
            out.append(_Pending(
                "synthetic", render_stack(result.ct, ct.affine, lesions[0].centre_mm, view),
                {"image": str(case.image), "label": str(case.label),
                 "lesion": _lesion_record(lesions[0]), "rng_seed": draw_seed,
                 "tumor_type": result.tumor_type,
                 "tumors": [t.to_dict() for t in result.tumors]},
            ))
    return out


def build_study(
    real: str | Path,
    healthy: str | Path,
    out: str | Path,
    *,
    synthetic_per_case: int = 1,
    lesions_per_real: int = 1,
    seed: int = 0,
    view: View | None = None,
    min_lesion_ml: float = 0.1,
    min_distance_mm: float = 30.0,
    overwrite: bool = False,
    discard_answers: bool = False,
    progress: ProgressFn | None = None,
    config: SynthesisConfig | None = None,
) -> BuildResult:
    """Build a reader study folder ``out`` from two MONAI-style datalists.

    Args:
        real: datalist of real-tumor cases (labels 0/1/2, each with a tumor).
        healthy: datalist of healthy cases (labels 0/1).
        out: the study folder; built under a temporary name beside it and renamed at the end,
            so a failure leaves nothing behind. A non-empty ``out`` needs ``overwrite``; one
            holding readers' answers also ``discard_answers``; one holding an input is refused.
        synthetic_per_case: synthetic cases drawn from each healthy CT (independent seeds).
        lesions_per_real: at most this many study cases (different lesions) per real CT.
        seed: seeds the synthesis draws and every reader's case order (>= 0).
        view: the slice grid (field of view mm, pixels, slices, slice distance mm, HU window).
        min_lesion_ml: smallest lesion shown (ml), real or synthetic.
        min_distance_mm: two cases from one real CT are centred at least this far apart.
        progress: called with (message, done, total) before each CT or draw.
        config: how the synthetic tumors are made (default ``SynthesisConfig.realistic()``).

    Raises:
        InputError: bad datalists or images, a real case without tumor (named), a healthy case
            with tumor, an unusable output folder.
    """
    view = view or View()
    out = Path(out)
    if synthetic_per_case < 1 or lesions_per_real < 1:
        raise ValueError("synthetic_per_case and lesions_per_real must be >= 1")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    check_output_folder(out, overwrite)
    real_cases = load_all_cases(real)
    healthy_cases = load_all_cases(healthy)
    check_output_folder(out, overwrite, [real, healthy, *_case_files(real_cases),
                                         *_case_files(healthy_cases)])
    answers = [p for p in (out / DATABASE, out / f"{DATABASE}-wal") if p.is_file()]
    if answers and not discard_answers:
        raise InputError(out, f"holds readers' answers ({answers[0].name}); pass "
                         "--discard-answers to replace the study and lose them, or build into "
                         "another folder")
    total = len(real_cases) + len(healthy_cases) * synthetic_per_case
    done = [0]

    def tick(msg: str) -> None:
        if progress:
            progress(msg, done[0], total)
        done[0] += 1

    notes: list[str] = []
    pending = _real_cases(real_cases, view, lesions_per_real, min_lesion_ml, min_distance_mm,
                          tick)
    pending += _synthetic_cases(healthy_cases, view, synthetic_per_case, seed, min_lesion_ml,
                                tick, notes, config or SynthesisConfig.realistic())
    if progress:
        progress("writing slices", total, total)
    _write_study(out, pending, view, seed)
    n_real = sum(p.truth == "real" for p in pending)
    return BuildResult(out, n_real, len(pending) - n_real, tuple(dict.fromkeys(notes)))


def _case_files(cases: list[Case]) -> list[Path]:
    return [p for c in cases for p in (c.image, c.label) if p is not None]


def _write_study(out: Path, pending: list[_Pending], view: View, seed: int) -> None:
    ids: list[str] = []
    while len(ids) < len(pending):  # 64 random bits each; a collision is just drawn again
        token = secrets.token_hex(8)
        if token not in ids:
            ids.append(token)
    with staged_folder(out) as tmp:
        # random write order too: file creation order says nothing about the class
        for idx in secrets.SystemRandom().sample(range(len(pending)), len(pending)):
            folder = tmp / SLICES / ids[idx]
            folder.mkdir(parents=True)
            for k, image in enumerate(pending[idx].stack):
                (folder / f"{k:03d}.png").write_bytes(encode_gray_png(image))
        cases = {ids[i]: {"truth": p.truth, **p.record} for i, p in enumerate(pending)}
        key = {"format": FORMAT, "cases": dict(sorted(cases.items()))}
        (tmp / KEY).write_text(json.dumps(key, indent=2) + "\n")
        os.chmod(tmp / KEY, 0o600)  # the key is for whoever runs the study, not other users
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "synthtumor_version": __version__, "seed": seed,
                    "view": {**asdict(view), "window_hu": list(view.window_hu)},
                    "cases": sorted(ids)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
