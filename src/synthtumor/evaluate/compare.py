"""Two evaluation runs side by side: the paper's table as Markdown and grouped bars."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError
from synthtumor.evaluate.lesions import SIZE_BINS
from synthtumor.files import make_folder, write_text_atomic


def read_summary(run: Path) -> dict[str, Any]:
    """``summary.json`` of an evaluation folder (or the file itself).

    Raises:
        InputError: missing, unreadable, or not a ``synthtumor evaluate`` summary.
    """
    path = Path(run)
    if not path.is_file():
        path = path / "summary.json"
    if not path.is_file():
        raise InputError(path, "does not exist: not a `synthtumor evaluate` output folder")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(path, f"is not readable JSON ({err})") from None
    if not isinstance(data, dict) or not {"mean", "detection"} <= data.keys():
        raise InputError(path, "is not a `synthtumor evaluate` summary.json")
    return data


def comparison_rows(summaries: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any], bool]]:
    """(metric, one value per run, is_percent) rows of the comparison table.

    Fractions are returned as fractions (None where unavailable); ``is_percent`` says they are
    shown as percentages. Sensitivities come with their counts as (fraction, found, lesions).
    """
    rows: list[tuple[str, list[Any], bool]] = [
        ("Tumor DSC (mean)", [s["mean"].get("tumor_dice") for s in summaries], True),
        ("Tumor DSC (global)", [s.get("global_tumor_dice") for s in summaries], True),
        (f"Tumor NSD @ {summaries[0].get('nsd_tolerance_mm', 2.0):g} mm",
         [s["mean"].get("tumor_nsd") for s in summaries], True),
        ("Liver DSC", [s["mean"].get("liver_dice") for s in summaries], True),
    ]
    for crit, label in (("overlap", "any overlap"), ("iou", "IoU ≥ 0.5")):
        for name, _, _ in SIZE_BINS:
            values = []
            for s in summaries:
                b = s["detection"]["bins"].get(name, {})
                values.append((b.get(f"sensitivity_{crit}"), b.get(f"found_{crit}"),
                               b.get("lesions")))
            rows.append((f"Sensitivity {name} mm ({label})", values, True))
    rows.append(("False-positive lesions / case",
                 [s["detection"].get("false_positives_per_case") for s in summaries], False))
    return rows


def _text(value: Any, percent: bool) -> str:
    if isinstance(value, tuple):
        frac, found, n = value
        return "–" if frac is None else f"{100 * frac:.1f} % ({found}/{n})"
    if value is None:
        return "–"
    return f"{100 * value:.1f} %" if percent else f"{value:.2f}"


def comparison_markdown(summaries: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """The side-by-side table as Markdown (one column per run)."""
    lines = ["| metric | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for metric, values, percent in comparison_rows(summaries):
        lines.append(f"| {metric} | " + " | ".join(_text(v, percent) for v in values) + " |")
    sources = [f"- {n}: `{s.get('checkpoint', '?')}` on `{s.get('data', '?')}` "
               f"({s.get('cases_with_label', '?')} case(s) with labels, post-processing "
               f"{'on' if s.get('postprocess') else 'off'})" for n, s in zip(names, summaries)]
    return "\n".join(["# Evaluation comparison", "", *lines, "", *sources]) + "\n"


def comparison_figure(path: Path, summaries: Sequence[dict[str, Any]],
                      names: Sequence[str]) -> None:
    """Grouped bars (percent metrics) of the runs, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from synthtumor.evaluate.report import save_png

    rows = [(m, v) for m, v, pct in comparison_rows(summaries) if pct]
    # two short lines per tick so neighbouring labels never overlap
    labels = [m.replace("Sensitivity ", "Sens. ").replace(" (any overlap)", "\n(any)")
              .replace(" (IoU ≥ 0.5)", "\n(IoU≥0.5)").replace("Tumor DSC (", "Tumor DSC\n(")
              .replace(" @ ", "\n@ ") for m, _ in rows]
    x = np.arange(len(rows))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows)), 4))
    for i, name in enumerate(names):
        vals = []
        for _, values in rows:
            v = values[i][0] if isinstance(values[i], tuple) else values[i]
            vals.append(0.0 if v is None else 100 * v)
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width=width, label=name)
    fps = ", ".join(f"{n} {_text(s['detection'].get('false_positives_per_case'), False)}"
                    for n, s in zip(names, summaries))
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.set_title(f"Evaluation comparison (false-positive lesions / case: {fps})", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def compare_runs(a: Path, b: Path, out: Path, names: Sequence[str] = ("A", "B")) -> Path:
    """Write ``comparison.md`` and ``comparison.png`` for two evaluation folders into ``out``.

    Returns:
        Path of comparison.md.

    Raises:
        InputError: a folder without a readable summary.json, or an unwritable ``out``.
        ValueError: ``names`` is not two names.
    """
    if len(names) != 2:
        raise ValueError(f"--names takes two names, got {len(names)}")
    summaries = [read_summary(Path(a)), read_summary(Path(b))]
    out = Path(out)
    make_folder(out)
    md = out / "comparison.md"
    write_text_atomic(md, comparison_markdown(summaries, names))
    comparison_figure(out / "comparison.png", summaries, names)
    return md
