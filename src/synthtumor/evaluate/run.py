"""Evaluate a training checkpoint on real-tumor cases: predictions, metrics, summary, report.

Entry point: :func:`evaluate` with an :class:`EvalConfig`. Everything is written into a
temporary folder beside ``out`` and renamed into place at the end, so a failure never leaves a
partial output folder.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor import __version__
from synthtumor.conventions import TUMOR
from synthtumor.data.datalist import Case, load_datalist, read_header, strip_image_suffix
from synthtumor.device import resolve_device
from synthtumor.errors import InputError
from synthtumor.evaluate import metrics as m
from synthtumor.evaluate.lesions import Detection, detect_lesions, sensitivity_by_size
from synthtumor.evaluate.postprocess import TUMOR_MARGIN_MM, postprocess
from synthtumor.evaluate.report import (
    case_slice_png,
    detection_figure,
    write_metrics_csv,
    write_report_html,
)
from synthtumor.files import check_output_folder, staged_folder, write_json_atomic
from synthtumor.imaging import Volume, read_case_labels, read_ct, same_grid, write_nifti


@dataclass
class EvalConfig:
    """What to evaluate and how. Distances in mm.

    Attributes:
        checkpoint: ``best.pt`` or ``last.pt`` written by ``synthtumor train``.
        data: datalist JSON; its ``key`` list (else ``training``) is evaluated. Items need an
            ``image``; a ``label`` (0 background, 1 liver, 2 tumor, any grid) enables metrics.
        out: output folder (refused when non-empty unless ``overwrite``).
        key: datalist list to evaluate.
        overlap: sliding-window overlap in [0, 1).
        postprocess: apply the reference post-processing (largest liver component, tumors
            within ``tumor_margin_mm`` of it).
        tumor_margin_mm: reach of the post-processing around the liver (mm).
        save_predictions: write ``predictions/<case>.nii.gz`` (uint8 0/1/2, CT grid).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        overwrite: replace a non-empty ``out``.
        model: expected architecture (``unet``/``swin_unetr``); None: the checkpoint's own.
        nsd_tolerance_mm: NSD tolerance (mm).
    """

    checkpoint: Path
    data: Path
    out: Path
    key: str = "validation"
    overlap: float = 0.75
    postprocess: bool = True
    tumor_margin_mm: float = TUMOR_MARGIN_MM
    save_predictions: bool = True
    device: str = "auto"
    overwrite: bool = False
    model: str | None = None
    nsd_tolerance_mm: float = m.NSD_TOLERANCE_MM

    def validate(self) -> None:
        """ValueError naming the option when a value is out of range."""
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"--overlap must be in [0, 1), got {self.overlap}")
        if not self.tumor_margin_mm >= 0:
            raise ValueError(f"--tumor-margin-mm must be >= 0, got {self.tumor_margin_mm}")
        if not self.nsd_tolerance_mm >= 0:
            raise ValueError(f"NSD tolerance must be >= 0 mm, got {self.nsd_tolerance_mm}")


@dataclass
class EvalResult:
    """What :func:`evaluate` wrote: ``summary`` as in summary.json, one row per case as in
    metrics.csv, and the paths."""

    out: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    @property
    def metrics_csv(self) -> Path:
        return self.out / "metrics.csv"

    @property
    def predictions(self) -> Path:
        return self.out / "predictions"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_cases(data: Path, key: str) -> tuple[list[Case], str, list[str]]:
    """Cases of ``key`` (labels optional), falling back to ``training``; (cases, key, notes)."""
    try:
        return load_datalist(data, key, check=False, label_optional=True), key, []
    except InputError as err:
        if key == "training" or f"has no {key!r} list" not in str(err):
            raise
    cases = load_datalist(data, "training", check=False, label_optional=True)
    return cases, "training", [f"{data} has no {key!r} list: evaluated its 'training' list"]


def case_names(cases: list[Case]) -> list[str]:
    """File-safe, unique case names: the datalist's ``case`` field, else the image file name
    without its extension."""
    names: list[str] = []
    for i, c in enumerate(cases):
        name = c.case_id
        if name == str(i):  # no "case" field: the datalist index says nothing
            name = strip_image_suffix(c.image.name) or c.image.name
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or f"case{i}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def read_truth(case: Case, ct: Volume) -> tuple[np.ndarray, str]:
    """The case's 0/1/2 label on the CT grid and a note if it had to be resampled.

    Raises:
        InputError: unreadable label, values other than 0/1/2, or no overlap with the CT.
    """
    label = read_case_labels(case.label, ct)
    note = ""
    shape, affine = read_header(case.label)
    if not same_grid(affine, shape, ct.affine, ct.shape):
        note = "label on another grid: resampled onto the image in world space"
    return label.array.astype(np.uint8, copy=False), note


def case_metrics(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float],
                 tolerance_mm: float) -> tuple[dict[str, Any], Detection, tuple[int, int, int]]:
    """Per-case metrics of a 0/1/2 prediction against the 0/1/2 truth (same grid).

    Liver = label 1 or 2. Returns (row values, lesion detection, tumor overlap counts).
    """
    p_tumor, t_tumor = pred == TUMOR, truth == TUMOR
    voxel_mm3 = float(np.prod(spacing))
    detection = detect_lesions(p_tumor, t_tumor, voxel_mm3)
    counts = m.overlap_counts(p_tumor, t_tumor)
    row = {
        "liver_dice": m.dice(pred > 0, truth > 0),
        "tumor_dice": m.dice(p_tumor, t_tumor),
        "tumor_nsd": m.normalized_surface_dice(p_tumor, t_tumor, spacing, tolerance_mm),
        "tumor_voxels_true": counts[2], "tumor_voxels_pred": counts[1],
        "lesions": len(detection.lesions),
        "lesions_found_overlap": sum(le.overlap for le in detection.lesions),
        "lesions_found_iou": sum(le.detected_iou for le in detection.lesions),
        "false_positives": detection.false_positives,
    }
    return row, detection, counts


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def evaluate(config: EvalConfig, progress: bool = True) -> EvalResult:
    """Run inference and metrics on every case of the datalist; write the outputs.

    Writes into ``config.out``: ``predictions/<case>.nii.gz`` (unless disabled), metrics.csv,
    summary.json, detection_by_size.png, report.html.

    Raises:
        InputError: missing/corrupt checkpoint or one of another network, a bad datalist,
            unreadable images or labels, a non-empty ``out`` without ``overwrite``.
        ValueError: an option out of range.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from synthtumor.console import err_console
    from synthtumor.evaluate import inference

    config.validate()
    out = Path(config.out)
    cases, key, notes = load_cases(Path(config.data), config.key)
    check_output_folder(out, config.overwrite, [config.checkpoint, config.data,
                                                *(c.image for c in cases),
                                                *(c.label for c in cases)])
    for note in notes:
        _say(f"note: {note}")
    device = resolve_device(config.device)
    loaded = inference.load_model(Path(config.checkpoint), device, config.model)
    predictor = inference.sliding_window_predictor(loaded, config.overlap)
    names = case_names(cases)

    rows: list[dict[str, Any]] = []
    detections: list[Detection] = []
    counts: list[tuple[int, int, int]] = []
    images: dict[str, bytes] = {}
    timing = {"inference": 0.0, "metrics": 0.0, "report": 0.0}
    with staged_folder(out) as tmp:
        if config.save_predictions:
            (tmp / "predictions").mkdir()
        columns = (TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[case]}"), TimeElapsedColumn())
        with Progress(*columns, console=err_console, disable=not progress,
                      transient=False) as bar:
            task = bar.add_task("evaluate", total=len(cases), case="")
            for case, name in zip(cases, names):
                bar.update(task, case=name)
                row = _evaluate_case(case, name, config, loaded, predictor, tmp, timing,
                                     detections, counts, images)
                rows.append(row)
                bar.advance(task)
                if not progress:
                    _say(f"{name}: " + ", ".join(
                        f"{k} {row[k]:.3f}" for k in ("liver_dice", "tumor_dice", "tumor_nsd")
                        if row.get(k) is not None) + (f" ({row['note']})" if row["note"] else ""))
        t0 = time.perf_counter()
        summary = _summary(config, loaded, key, rows, detections, counts, timing, notes)
        write_metrics_csv(tmp / "metrics.csv", rows)
        png = detection_figure(tmp / "detection_by_size.png", summary["detection"]["bins"])
        timing["report"] += time.perf_counter() - t0
        summary["timing_s"] = {k: round(v, 3) for k, v in timing.items()}
        write_json_atomic(tmp / "summary.json", summary)
        write_report_html(tmp / "report.html", summary, rows, images, png)
    return EvalResult(out, summary, rows)


def _evaluate_case(case: Case, name: str, config: EvalConfig, loaded: Any, predictor: Any,
                   tmp: Path, timing: dict[str, float], detections: list[Detection],
                   counts: list[tuple[int, int, int]], images: dict[str, bytes]
                   ) -> dict[str, Any]:
    from synthtumor.evaluate import inference

    ct = read_ct(case.image)
    truth, note = (None, "no label: metrics skipped") if case.label is None else \
        read_truth(case, ct)
    t0 = time.perf_counter()
    image, grid_affine = inference.to_training_grid(ct, loaded.spacing)
    probs = inference.predict_probabilities(image, predictor)
    pred = inference.to_original_grid(probs, grid_affine, ct.affine, ct.shape)
    del probs
    if config.postprocess:
        pred = postprocess(pred, ct.spacing, config.tumor_margin_mm)
    t_inf = time.perf_counter() - t0
    timing["inference"] += t_inf
    if config.save_predictions:
        write_nifti(tmp / "predictions" / f"{name}.nii.gz", pred, ct.affine, kind="label")
    row: dict[str, Any] = {"case": name, "image": str(case.image),
                           "label": "" if case.label is None else str(case.label),
                           "inference_s": t_inf, "note": note}
    if truth is not None:
        t1 = time.perf_counter()
        values, detection, c = case_metrics(pred, truth, ct.spacing, config.nsd_tolerance_mm)
        row["metrics_s"] = time.perf_counter() - t1
        timing["metrics"] += row["metrics_s"]
        row.update(values)
        detections.append(detection)
        counts.append(c)
    t2 = time.perf_counter()
    images[name] = case_slice_png(ct.array, pred, truth, ct.affine, name)
    timing["report"] += time.perf_counter() - t2
    return row


def _summary(config: EvalConfig, loaded: Any, key: str, rows: list[dict[str, Any]],
             detections: list[Detection], counts: list[tuple[int, int, int]],
             timing: dict[str, float], notes: list[str]) -> dict[str, Any]:
    labelled = [r for r in rows if r.get("tumor_dice") is not None]
    skipped = [r["case"] for r in rows if r.get("tumor_dice") is None]
    notes = list(notes)
    if skipped:
        notes.append(f"no label, metrics skipped (inference only): {', '.join(skipped)}")
    notes += [f"{r['case']}: {r['note']}" for r in rows if r["note"] and r["case"] not in skipped]
    fp = [d.false_positives for d in detections]
    return {
        "synthtumor_version": __version__,
        "checkpoint": str(Path(config.checkpoint).absolute()),
        "data": str(Path(config.data).absolute()),
        "key": key,
        "model": loaded.desc,
        "training_step": loaded.step,
        "training_spacing_mm": loaded.spacing,
        "roi": list(loaded.roi),
        "overlap": config.overlap,
        "postprocess": config.postprocess,
        "tumor_margin_mm": config.tumor_margin_mm,
        "nsd_tolerance_mm": config.nsd_tolerance_mm,
        "device": str(loaded.device),
        "cases": len(rows),
        "cases_with_label": len(labelled),
        "mean": {k: _mean([float(r[k]) for r in labelled])
                 for k in ("tumor_dice", "tumor_nsd", "liver_dice")},
        "global_tumor_dice": m.global_dice(counts) if counts else None,
        "detection": {
            "connectivity": 26,
            "bins": sensitivity_by_size(detections),
            "lesions": sum(len(d.lesions) for d in detections),
            "false_positives": int(sum(fp)),
            "false_positives_per_case": float(np.mean(fp)) if fp else None,
        },
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
        "conventions": {
            "empty_masks": "Dice and NSD: both empty 1.0, exactly one empty 0.0",
            "liver": "label 1 or 2",
            "lesions": "26-connected components; radius of the sphere of equal volume",
            "bins_mm": "0-5: r <= 5, 5-10: 5 < r <= 10, >10: r > 10",
            "detected_iou": "IoU >= 0.5 between the real lesion and the union of the "
                            "predicted lesions overlapping it",
            "false_positive": "predicted lesion touching no real tumor voxel",
        },
        "notes": notes,
    }


def format_summary(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of the short summary printed by the CLI."""
    def num(v: Any) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    mean = summary["mean"]
    det = summary["detection"]
    lines = [
        ("cases (with label)", f"{summary['cases']} ({summary['cases_with_label']})"),
        ("tumor Dice mean / global", f"{num(mean['tumor_dice'])} / "
                                     f"{num(summary['global_tumor_dice'])}"),
        (f"tumor NSD @ {summary['nsd_tolerance_mm']:g} mm", num(mean["tumor_nsd"])),
        ("liver Dice", num(mean["liver_dice"])),
    ]
    for name, b in det["bins"].items():
        lines.append((f"found {name} mm (any / IoU≥0.5)",
                      f"{b['found_overlap']}/{b['lesions']} / {b['found_iou']}/{b['lesions']}"))
    lines.append(("false-positive lesions / case", num(det["false_positives_per_case"])))
    t = summary["timing_s"]
    lines.append(("time inference / metrics / report",
                  f"{t['inference']:.2f} s / {t['metrics']:.2f} s / {t['report']:.2f} s"))
    return lines


def summary_json(summary: dict[str, Any]) -> str:
    """The summary as indented JSON text."""
    return json.dumps(summary, indent=2)
