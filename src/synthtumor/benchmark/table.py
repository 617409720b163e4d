"""The efficacy table: one row per arm (network, fold) from its ``synthtumor evaluate`` summary,
written as Markdown, CSV and JSON, with ``synthtumor compare``'s bar figure."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthtumor.evaluate.lesions import SIZE_BINS
from synthtumor.files import csv_cell, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from synthtumor.benchmark.arms import Job
    from synthtumor.benchmark.efficacy import EfficacyConfig

COLUMNS = ("arm", "model", "fold", "steps", "tumor_dice", "tumor_dice_global", "tumor_nsd",
           "liver_dice", *(f"found_{name}" for name, _, _ in SIZE_BINS),
           "false_positives_per_case", "test_cases", "train_s", "eval_s")


def table_row(job: Job, fold: int | None, summary: dict[str, Any],
              times: dict[str, Any]) -> dict[str, Any]:
    """One row: the evaluation's numbers (fractions; detection as "found/lesions")."""
    from synthtumor.benchmark.efficacy import eval_name

    bins = summary["detection"]["bins"]
    row: dict[str, Any] = {
        "arm": job.arm, "model": job.model, "fold": fold,
        "steps": summary.get("training_step"),
        "tumor_dice": summary["mean"].get("tumor_dice"),
        "tumor_dice_global": summary.get("global_tumor_dice"),
        "tumor_nsd": summary["mean"].get("tumor_nsd"),
        "liver_dice": summary["mean"].get("liver_dice"),
        "false_positives_per_case": summary["detection"].get("false_positives_per_case"),
        "test_cases": summary.get("cases_with_label"),
        "train_s": times.get(job.name, {}).get("train_s"),
        "eval_s": times.get(eval_name(job, fold), {}).get("eval_s"),
    }
    for name, _, _ in SIZE_BINS:
        b = bins.get(name, {})
        row[f"found_{name}"] = f"{b.get('found_overlap', 0)}/{b.get('lesions', 0)}"
    return row


def _num(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def table_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """The table as Markdown (metrics as fractions, detection any-overlap counts)."""
    bins = [name for name, _, _ in SIZE_BINS]
    head = ["arm", "network", "fold", "steps", "tumor Dice (mean / global)", "tumor NSD @ 2 mm",
            "liver Dice", *(f"lesions found r {b} mm" for b in bins), "FP lesions / case",
            "train min"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        train = "–" if r["train_s"] is None else f"{r['train_s'] / 60:.1f}"
        cells = [r["arm"], r["model"], "–" if r["fold"] is None else str(r["fold"]),
                 str(r["steps"]), f"{_num(r['tumor_dice'])} / {_num(r['tumor_dice_global'])}",
                 _num(r["tumor_nsd"]), _num(r["liver_dice"]),
                 *(r[f"found_{b}"] for b in bins), _num(r["false_positives_per_case"]), train]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Lesions found: real lesions touched by the prediction / real lesions, by "
              "radius of the equal-volume sphere. Train min: wall time of the training calls "
              "that finished (a resumed run adds its calls)."]
    return "\n".join(lines) + "\n"


def write_table(out: Path, config: EfficacyConfig,
                summaries: list[tuple[Job, int | None, dict[str, Any]]],
                times: dict[str, Any]) -> dict[str, Any]:
    """Write ``efficacy.{md,csv,json,png}`` into ``out``; returns the JSON content."""
    from synthtumor.evaluate.compare import comparison_figure

    rows = [table_row(job, k, s, times) for job, k, s in summaries]
    title = f"Efficacy benchmark, preset {config.preset.name}"
    write_text_atomic(out / "efficacy.md", table_markdown(rows, title))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([csv_cell(r[c]) for c in COLUMNS])
    write_text_atomic(out / "efficacy.csv", buf.getvalue())
    result = {"preset": config.preset.to_dict(), "arms": list(config.arms), "rows": rows,
              "evaluations": {f"{job.arm}-{job.model}" + ("" if k is None else f"-fold{k}"):
                              s.get("checkpoint") for job, k, s in summaries}}
    write_json_atomic(out / "efficacy.json", result)
    names = [f"{job.arm} ({job.model})" + ("" if k is None else f" f{k}")
             for job, k, _ in summaries]
    comparison_figure(out / "efficacy.png", [s for _, _, s in summaries], names)
    return result
