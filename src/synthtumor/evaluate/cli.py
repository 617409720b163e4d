"""Command line of ``synthtumor.evaluate``: ``register(app)`` adds its commands to a typer app.

Heavy libraries (torch, MONAI, matplotlib) are imported inside the commands: the main CLI
imports this module at start-up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from synthtumor.choices import Device, ModelName
from synthtumor.console import console, print_table, user_errors


def evaluate(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="best.pt or last.pt of a "
                                             "`synthtumor train` run.")],
    data: Annotated[Path, typer.Option("--data", help="Datalist JSON: images with 0/1/2 labels "
                                       "(any grid); items without a label get inference only.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    key: Annotated[str, typer.Option(help="Datalist list to evaluate (falls back to "
                                     "'training').")] = "validation",
    overlap: Annotated[float, typer.Option(help="Sliding-window overlap in [0, 1).")] = 0.75,
    postprocess: Annotated[bool, typer.Option("--postprocess/--no-postprocess", help="Reference "
                                              "post-processing: largest liver component, tumors "
                                              "near it.")] = True,
    tumor_margin_mm: Annotated[float, typer.Option(help="Post-processing: keep tumor voxels "
                                                   "within this distance (mm) of the liver.")]
    = 30.0,
    save_predictions: Annotated[bool, typer.Option(
        "--save-predictions/--no-save-predictions",
        help="Write predictions/<case>.nii.gz (uint8 0/1/2 on the CT grid).")] = True,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")] = Device.auto,
    model: Annotated[ModelName | None, typer.Option(help="Expected architecture (default: the "
                                                    "checkpoint's).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")]
    = False,
) -> None:
    """Evaluate a checkpoint on real tumors: Dice, NSD, lesion detection by size, report."""
    from rich.table import Table

    from synthtumor.evaluate.run import EvalConfig, format_summary
    from synthtumor.evaluate.run import evaluate as run_evaluation

    config = EvalConfig(
        checkpoint=checkpoint, data=data, out=out, key=key, overlap=overlap,
        postprocess=postprocess, tumor_margin_mm=tumor_margin_mm,
        save_predictions=save_predictions, device=device.value, overwrite=overwrite,
        model=model.value if model else None,
    )
    with user_errors():
        result = run_evaluation(config, progress=sys.stderr.isatty())
    table = Table(title=f"evaluation of {checkpoint.name}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in format_summary(result.summary):
        table.add_row(label, value)
    print_table(table)
    for note in result.summary["notes"]:
        console.print(f"note: {note}", highlight=False)
    t = result.summary["timing_s"]
    console.print(f"time: inference {t['inference']:.2f} s, metrics {t['metrics']:.2f} s",
                  highlight=False)
    console.print(f"wrote {out}: metrics.csv, summary.json, detection_by_size.png, report.html"
                  + (", predictions/" if save_predictions else ""), highlight=False)


def compare(
    run_a: Annotated[Path, typer.Argument(help="First evaluation folder.")],
    run_b: Annotated[Path, typer.Argument(help="Second evaluation folder.")],
    names: Annotated[tuple[str, str], typer.Option(help="Column names of the two runs.")]
    = ("A", "B"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for comparison.md and "
                                      "comparison.png.")] = Path("comparison"),
) -> None:
    """Two evaluation runs side by side (Markdown table and grouped bars)."""
    from synthtumor.evaluate.compare import compare_runs

    with user_errors():
        md = compare_runs(run_a, run_b, out, names=names)
    console.print(md.read_text(), highlight=False, markup=False)
    console.print(f"wrote {md} and {md.with_name('comparison.png')}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` and ``compare`` commands to ``app``."""
    app.command("evaluate")(evaluate)
    app.command("compare")(compare)
