"""The ``synthtumor`` command line: parse, call the package, report. Logic lives elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from synthtumor.choices import Device
from synthtumor.cli_help import reflow_help
from synthtumor.console import console, err_console, print_table, user_errors
from synthtumor.synthesis import SynthesisResult
from synthtumor.synthesis_options import (
    CountOpt,
    ProfileOpt,
    RealisticOpt,
    TumorProbsOpt,
    TypeOpt,
    build_config,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Synthetic liver tumors for label-free tumor segmentation in CT.",
)


def _print_version(value: bool) -> None:
    if value:
        from synthtumor import __version__

        console.print(f"synthtumor {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Synthetic liver tumors for label-free tumor segmentation in CT."""


@contextmanager
def _steps() -> Iterator[Callable[[str], None]]:
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("reading inputs")
        yield lambda msg: progress.update(task, description=msg)


def _report(result: SynthesisResult, out: Path) -> None:
    table = Table(title=f"{len(result.tumors)} {result.tumor_type} tumor(s)", title_justify="left")
    columns = ("#", "class", "centre (mm, RAS)", "semi-axes (mm)", "volume (ml)", "ΔHU", "effects")
    for col in columns:
        table.add_column(col, justify="left" if col in ("class", "effects") else "right")
    for t in result.tumors:
        table.add_row(
            str(t.index), t.size_class, ", ".join(f"{v:.0f}" for v in t.centre_mm),
            " × ".join(f"{v:.1f}" for v in t.semi_axes_mm), f"{t.volume_ml:.2f}",
            f"{t.mean_hu_change:+.0f}", ", ".join(t.effects) or "-",
        )
    print_table(table)
    for note in result.params.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {note}", highlight=False)
    console.print(f"wrote [bold]{out}[/]: ct.nii.gz, label.nii.gz, tumors.json, preview.png")


SeedOpt = Annotated[int, typer.Option("--seed", "-s", help="Random seed: same seed, same tumors.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")]


@app.command()
def synthesize(
    ct: Annotated[Path, typer.Argument(help="CT in HU: NIfTI, NRRD, MHA/MHD or DICOM folder.")],
    liver: Annotated[Path, typer.Argument(help="Liver mask (any grid; resampled in world space).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    tumor_type: TypeOpt = None,
    seed: SeedOpt = 0,
    liver_label: Annotated[
        int | None, typer.Option("--liver-label", help="Liver id in a multi-label map.")
    ] = None,
    tumor_label: Annotated[
        int | None, typer.Option("--tumor-label", help="With --liver-label: tumor id in the "
                                 "map; kept as real tumor (label 2), no synthetic tumor over it.")
    ] = None,
    ignore_label: Annotated[
        list[int] | None, typer.Option("--ignore-label", help="With --liver-label: an id lying "
                                       "inside the liver that is not tumor (e.g. vessels); "
                                       "left as background. Repeatable.")
    ] = None,
    vessels: Annotated[
        str | None,
        typer.Option(
            "--vessels",
            help="Keep tumors off vessels: 'auto' (bright vessels found in the liver), 'none', "
            "or a vessel mask file. Default: 'auto' with --realistic, else 'none' (reference).",
        ),
    ] = None,
    realistic: RealisticOpt = False,
    count: CountOpt = None,
    overwrite: OverwriteOpt = False,
    profile: ProfileOpt = None,
    tumor_probs: TumorProbsOpt = None,
) -> None:
    """Paste synthetic tumors into the liver of one CT.

    Writes OUT/ct.nii.gz, OUT/label.nii.gz (0 background, 1 liver, 2 tumor), OUT/tumors.json
    and OUT/preview.png.
    """
    from dataclasses import replace

    from synthtumor.files import check_output_folder
    from synthtumor.imaging import read_mask
    from synthtumor.workflow import load_case, run_synthesis

    with user_errors(), _steps() as step:
        vessel_file = vessels if vessels not in (None, "auto", "none") else None
        check_output_folder(out, overwrite, [ct, liver, vessel_file, profile])
        config = build_config(tumor_type=tumor_type, tumor_probs=tumor_probs, count=count,
                              realistic=realistic, profile=profile)
        ct_vol, liver_vol, real_tumor = load_case(ct, liver, liver_label,
                                                  tumor_label=tumor_label,
                                                  ignore_labels=tuple(ignore_label or ()))
        vessels = vessels or ("auto" if realistic else "none")
        vessel_mask = None
        if vessels == "auto":
            config = replace(config, avoid_vessels=True)
        elif vessels == "none":
            config = replace(config, avoid_vessels=False)
        else:
            vessel_mask = read_mask(vessels, ct_vol).array.astype(bool)
        result = run_synthesis(
            ct_vol, liver_vol, out, seed=seed, config=config, vessels=vessel_mask,
            overwrite=overwrite, step=step, real_tumor=real_tumor,
            source={"ct": str(ct), "liver": str(liver), "liver_label": liver_label,
                    "tumor_label": tumor_label, "ignore_labels": ignore_label or [],
                    "vessels": vessels, **({"profile": str(profile)} if profile else {})},
        )
    _report(result, out)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
    quick: Annotated[bool, typer.Option("--quick", help="Tiny run (< 2 min): every stage, "
                                        "little learning.")] = False,
    synthesis_only: Annotated[bool, typer.Option(
        "--synthesis-only", help="Only paste tumors into one phantom (seconds).")] = False,
    tumor_type: TypeOpt = None,
    seed: SeedOpt = 0,
    realistic: RealisticOpt = False,
    count: CountOpt = None,
    tumor_probs: TumorProbsOpt = None,
    profile: ProfileOpt = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the "
                                              "preset's).")] = None,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")]
    = Device.auto,
    workers: Annotated[int, typer.Option(min=0, help="Data-loading worker processes.")] = 1,
    threads: Annotated[int, typer.Option(min=1, help="torch threads for training and "
                                         "evaluation: part of the result, like the seed.")] = 2,
    open_report: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")]
    = False,
    overwrite: Annotated[bool, typer.Option("--overwrite/--keep")] = True,
) -> None:
    """The label-free pipeline on CT phantoms, no data needed: train a small U-Net on healthy
    phantoms with synthetic tumors, evaluate it on phantoms with held-out tumors, write a report.

    About 6 minutes on 2 CPU cores (--quick: under 2). --type/--realistic/--count shape the
    synthesis example; with --synthesis-only that example is all it does. An existing OUT is
    replaced only if it holds a previous demo's outputs and nothing else.
    """
    from synthtumor.imaging import Volume
    from synthtumor.phantom import make_phantom
    from synthtumor.workflow import run_synthesis

    with user_errors():  # the full demo's example is "mix" unless asked otherwise
        mix = None if synthesis_only or tumor_probs or profile else "mix"
        example = build_config(tumor_type=tumor_type or mix, tumor_probs=tumor_probs,
                               count=count, realistic=realistic, profile=profile)
    if synthesis_only:
        from synthtumor.demo import SYNTHESIS_ENTRIES, check_replaceable

        with user_errors(), _steps() as step:
            if overwrite:
                check_replaceable(out, SYNTHESIS_ENTRIES)
            step("building the CT phantom")
            phantom = make_phantom(seed)
            ct_vol = Volume(phantom.ct, phantom.affine, "phantom")
            liver_vol = Volume(phantom.liver, phantom.affine, "phantom")
            result = run_synthesis(
                ct_vol, liver_vol, out, seed=seed,
                config=example,
                vessels=phantom.vessels.astype(bool) if realistic else None,
                overwrite=overwrite, step=step, source={"phantom_seed": seed},
            )
        _report(result, out)
        return

    from synthtumor.demo import run_demo

    with user_errors():
        res = run_demo(
            out, quick=quick, seed=seed, steps=steps, device=device.value, workers=workers,
            threads=threads, overwrite=overwrite, example=example,
            step=lambda msg: err_console.print(f"[bold]demo:[/] {msg}", highlight=False),
            progress=None,
        )
    _demo_report(res)
    if open_report:
        import webbrowser

        webbrowser.open(res.report.resolve().as_uri())


def _demo_report(res: Any) -> None:
    from synthtumor.evaluate.run import format_summary

    table = Table(title="label-free demo: held-out phantom tumors", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in format_summary(res.summary):
        table.add_row(name, value)
    print_table(table)
    spent = ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items())
    console.print(f"time: {spent}")
    console.print(f"synthesis example: [bold]{res.example / 'preview.png'}[/]")
    console.print(f"report: [bold]{res.report}[/]")


def _mount_subcommands() -> None:
    # Each package owns its commands; heavy imports stay inside the commands (fast --help).
    from synthtumor.benchmark.cli import register as register_benchmark
    from synthtumor.bundle.cli import register as register_bundle
    from synthtumor.data.cli import data_app
    from synthtumor.evaluate.cli import register as register_evaluate
    from synthtumor.nnunet.cli import register as register_nnunet
    from synthtumor.realism.cli import register as register_realism
    from synthtumor.train.cli import register as register_train
    from synthtumor.turing.cli import register as register_turing

    register_train(app)
    register_evaluate(app)
    register_realism(app)
    register_turing(app)
    register_benchmark(app)
    app.add_typer(data_app, name="data", help="Public CT datasets: download, liver labels, "
                  "datalists and folds.")
    export_app = typer.Typer(no_args_is_help=True)
    register_nnunet(export_app)
    register_bundle(export_app)
    app.add_typer(export_app, name="export", help="Export for other tools: an nnU-Net v2 raw "
                  "dataset, a MONAI bundle.")
    reflow_help(app)


_mount_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="synthtumor")


if __name__ == "__main__":  # pragma: no cover
    main()
