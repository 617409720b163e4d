"""Evaluation outputs: metrics.csv, the detection bar chart, per-case slices, report.html."""

from __future__ import annotations

import base64
import csv
import html
import io
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.conventions import TUMOR
from synthtumor.evaluate.lesions import SIZE_BINS, label_lesions
from synthtumor.files import csv_cell, write_text_atomic
from synthtumor.preview import WINDOW_HU, to_ras

CSV_COLUMNS = ("case", "image", "label", "liver_dice", "tumor_dice", "tumor_nsd",
               "tumor_voxels_true", "tumor_voxels_pred", "lesions", "lesions_found_overlap",
               "lesions_found_iou", "false_positives", "inference_s", "metrics_s", "note")


def write_metrics_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """One row per case, columns ``CSV_COLUMNS``; empty cells where metrics were skipped."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in CSV_COLUMNS])
    write_text_atomic(path, buf.getvalue())


def save_png(fig: Any, path: Path | None = None) -> bytes:
    """PNG bytes of a matplotlib figure; also written atomically to ``path`` if given."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return data


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def detection_figure(path: Path, bins: dict[str, dict[str, Any]], title: str = "") -> bytes:
    """Bar chart of lesion sensitivity (%) per size bin, both criteria; returns the PNG bytes."""
    plt = _pyplot()
    names = [name for name, _, _ in SIZE_BINS]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for offset, key, label in ((-0.2, "sensitivity_overlap", "any overlap"),
                               (0.2, "sensitivity_iou", "IoU ≥ 0.5")):
        values = [100 * (bins[n][key] or 0.0) for n in names]
        bars = ax.bar(x + offset, values, width=0.4, label=label)
        for b, n in zip(bars, names):
            found = bins[n]["found_overlap" if "overlap" in key else "found_iou"]
            ax.annotate(f"{found}/{bins[n]['lesions']}", (b.get_x() + b.get_width() / 2,
                        b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{n} mm" for n in names])
    ax.set_xlabel("equivalent lesion radius")
    ax.set_ylabel("sensitivity (%)")
    ax.set_ylim(0, 110)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "Lesion detection by size", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def _slice_index(truth: np.ndarray | None, pred: np.ndarray) -> int:
    """Axial index (RAS z) through the largest real lesion, else the largest predicted one,
    else the liver's middle, else the volume's middle."""
    for mask in ([] if truth is None else [truth == TUMOR]) + [pred == TUMOR, pred > 0] + (
            [] if truth is None else [truth > 0]):
        if mask.any():
            lab, n = label_lesions(mask)
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            z = np.nonzero(lab == int(np.argmax(sizes)))[2]
            return int(np.round(z.mean()))
    return pred.shape[2] // 2


def case_slice_png(ct: np.ndarray, pred: np.ndarray, truth: np.ndarray | None,
                   affine: np.ndarray, title: str) -> bytes:
    """PNG of one axial slice through the largest lesion: CT in [-100, 250] HU, truth outlined
    (tumor green, liver cyan) and prediction outlined (tumor red, liver yellow, dashed).

    Arrays (x, y, z) on one grid with ``affine``; shown in radiological convention (patient
    right on the left, anterior up) with the true aspect ratio.
    """
    plt = _pyplot()
    ct_r, spacing = to_ras(ct, affine)
    pred_r = to_ras(pred, affine)[0]
    truth_r = None if truth is None else to_ras(truth, affine)[0]
    k = _slice_index(truth_r, pred_r)
    fig, ax = plt.subplots(figsize=(4.2, 4.2 * ct_r.shape[1] * spacing[1]
                                    / max(ct_r.shape[0] * spacing[0], 1e-6) + 0.4))
    # image and outlines share one data frame (mm from the first voxel's edge); the x limits
    # are then reversed so that patient right (high RAS x) is on the left
    extent = (0, ct_r.shape[0] * spacing[0], 0, ct_r.shape[1] * spacing[1])
    ax.imshow(ct_r[:, :, k].T, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1],
              origin="lower", extent=extent, interpolation="nearest")
    xs = (np.arange(ct_r.shape[0]) + 0.5) * spacing[0]
    ys = (np.arange(ct_r.shape[1]) + 0.5) * spacing[1]
    layers = [(pred_r, "yellow", "red", "dashed")]
    if truth_r is not None:
        layers.insert(0, (truth_r, "cyan", "lime", "solid"))
    for lab, liver_colour, tumor_colour, style in layers:
        sl = lab[:, :, k]
        for mask, colour, width in ((sl > 0, liver_colour, 0.8), (sl == TUMOR, tumor_colour, 1.4)):
            if mask.any() and not mask.all():
                ax.contour(xs, ys, mask.T.astype(float), levels=[0.5], colors=colour,
                           linewidths=width, linestyles=style)
    ax.set_xlim(extent[1], extent[0])
    ax.set_axis_off()
    ax.set_title(f"{title}  (axial slice {k})", fontsize=8)
    fig.tight_layout()
    return save_png(fig)


def _cell(v: Any, percent: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{100 * v:.1f} %" if percent else f"{v:.3f}"
    return html.escape(str(v))


def write_report_html(path: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                      images: dict[str, bytes], detection_png: bytes) -> None:
    """Self-contained HTML: summary table, detection chart and one slice per case, all PNGs
    embedded as base64."""
    def img(data: bytes, alt: str) -> str:
        return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
                f'{base64.b64encode(data).decode()}">')

    mean = summary.get("mean", {})
    det = summary.get("detection", {})
    lines = [
        ("cases (with label)", f"{summary['cases']} ({summary['cases_with_label']})"),
        ("tumor Dice, mean", _cell(mean.get("tumor_dice"))),
        ("tumor Dice, global", _cell(summary.get("global_tumor_dice"))),
        (f"tumor NSD @ {summary['nsd_tolerance_mm']:g} mm, mean", _cell(mean.get("tumor_nsd"))),
        ("liver Dice, mean", _cell(mean.get("liver_dice"))),
        ("false-positive lesions per case", _cell(det.get("false_positives_per_case"))),
    ]
    for name, b in det.get("bins", {}).items():
        lines.append((f"sensitivity {name} mm: any overlap / IoU ≥ 0.5",
                      f"{_cell(b['sensitivity_overlap'], True)} ({b['found_overlap']}/"
                      f"{b['lesions']}) / {_cell(b['sensitivity_iou'], True)} "
                      f"({b['found_iou']}/{b['lesions']})"))
    timing = summary.get("timing_s", {})
    lines.append(("time: inference / metrics (s)",
                  f"{timing.get('inference', 0):.2f} / {timing.get('metrics', 0):.2f}"))
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in lines)
    case_head = "".join(f"<th>{c}</th>" for c in ("case", "liver Dice", "tumor Dice",
                                                  "tumor NSD", "lesions", "found (any/IoU)",
                                                  "FP", "note"))
    case_rows = "\n".join(
        "<tr>" + "".join(f"<td>{v}</td>" for v in (
            html.escape(r["case"]), _cell(r.get("liver_dice")), _cell(r.get("tumor_dice")),
            _cell(r.get("tumor_nsd")), _cell(r.get("lesions")),
            "–" if r.get("lesions") is None else
            f"{r['lesions_found_overlap']}/{r['lesions_found_iou']}",
            _cell(r.get("false_positives")), html.escape(r.get("note") or ""))) + "</tr>"
        for r in rows)
    figures = "\n".join(f"<figure>{img(data, case)}<figcaption>{html.escape(case)}</figcaption>"
                        "</figure>" for case, data in images.items())
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>synthtumor evaluation</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }}
figure {{ display: inline-block; margin: 0.4em; }} figcaption {{ font-size: 0.8em; }}
</style></head><body>
<h1>Tumor segmentation: evaluation</h1>
<p>checkpoint <code>{html.escape(str(summary['checkpoint']))}</code>, data
<code>{html.escape(str(summary['data']))}</code> ({html.escape(summary['key'])}),
post-processing {'on' if summary['postprocess'] else 'off'}.</p>
<table>{table}</table>
{img(detection_png, 'detection by size')}
<h2>Cases</h2>
<table><tr>{case_head}</tr>
{case_rows}</table>
<p>Outlines: truth tumor green, truth liver cyan (solid); prediction tumor red, prediction liver
yellow (dashed). CT window [{WINDOW_HU[0]:g}, {WINDOW_HU[1]:g}] HU, radiological view.</p>
{figures}
</body></html>
"""
    write_text_atomic(path, doc)
