"""``synthtumor data …``: download the public sets, convert labels, write datalists.

Mounted by the main CLI with ``app.add_typer(data_app, name="data")``. Each command parses,
calls ``synthtumor.data`` and reports; bad input prints one ``error:`` line on stderr and exits
with status 2.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from synthtumor.console import console, err_console, print_table, user_errors
from synthtumor.data.datalist import build_datalist
from synthtumor.data.download import DATASETS, DownloadResult, dataset_names, resolve_dataset
from synthtumor.data.download import download as download_dataset
from synthtumor.data.labels import PRESETS, REPORT_NAME, convert_labels, make_rule
from synthtumor.errors import InputError

data_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Prepare datasets: download the public CT sets, convert their labels to liver masks, "
    "write datalists (healthy list, k folds).",
)

Preset = Enum("Preset", {name: name for name in PRESETS}, type=str)  # type: ignore[misc]


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _progress(*columns: object) -> Progress:
    # progress bars only on a terminal: logs and captured output stay clean
    return Progress(*columns, console=err_console, transient=True,  # type: ignore[arg-type]
                    disable=not sys.stderr.isatty())


# --------------------------------------------------------------------------------------------
# download


def _list_datasets() -> None:
    table = Table(title="datasets", title_justify="left")
    for col in ("name", "archive", "size", "sha256", "labels preset", "url"):
        # a URL is never cut: folded over lines in a narrow terminal, one line elsewhere
        table.add_column(col, justify="right" if col == "size" else "left",
                         overflow="fold" if col in ("url", "sha256") else "ellipsis")
    for d in DATASETS:
        table.add_row(d.name, d.archive, f"{d.nominal_bytes / 1e9:.2f} GB", d.sha256 or "-",
                      d.liver_preset or "-", d.url)
    print_table(table)


@data_app.command()
def download(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Datasets ({', '.join(dataset_names())}), 'all', or an archive URL. "
            "None: list the datasets.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for archives and extracted datasets."),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Mirror URL (one dataset only).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Expected sha256 of the archive (one dataset).")
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option("--archive", help="Use this already-downloaded archive (one dataset)."),
    ] = None,
    extract: Annotated[
        bool, typer.Option("--extract/--no-extract", help="Unpack into OUT/<name>/.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Network timeout in seconds.")
    ] = 30.0,
) -> None:
    """Download, verify and unpack public CT sets into OUT/<name>/.

    Partial downloads resume; without NAMES the datasets are listed."""
    if not names:
        _list_datasets()
        return
    with user_errors():
        if out is None:
            raise InputError(None, "pass --out DIR (where archives and datasets go)")
        targets = list(dataset_names()) if [n.lower() for n in names] == ["all"] else names
        if len(targets) > 1 and (url or sha256 or archive):
            raise InputError(None, "--url, --sha256 and --archive apply to a single dataset")
        for target in targets:
            res = _download_one(target, out, url, sha256, archive, extract, timeout)
            how = "downloaded" if res.downloaded else "already present"
            if res.resumed_from:
                how = f"resumed from {res.resumed_from / 1e6:.1f} MB"
            console.print(
                f"[bold]{res.dataset.name}[/]: {res.archive} ({res.size_bytes / 1e6:.1f} MB, "
                f"{how}), sha256 {res.sha256}",
                highlight=False,
            )
            if res.extracted is not None:
                console.print(f"  extracted to [bold]{res.extracted}[/]", highlight=False)


def _download_one(
    target: str, out: Path, url: str | None, sha256: str | None, archive: Path | None,
    extract: bool, timeout: float,
) -> DownloadResult:
    with _progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        label = resolve_dataset(target, url=url).name
        task = bar.add_task(label, total=None)

        def show(phase: str, done: int, total: int | None) -> None:
            bar.update(task, description=f"{label}: {phase}", completed=done, total=total)

        return download_dataset(
            target, out, url=url, sha256=sha256, extract=extract, archive=archive,
            timeout=timeout, progress=show, warn=_warn,
        )


# --------------------------------------------------------------------------------------------
# labels


@data_app.command()
def labels(
    src_dir: Annotated[Path, typer.Argument(help="Folder of label maps.", show_default=False)],
    out_dir: Annotated[Path, typer.Argument(help="Output folder for the liver masks.")],
    preset: Annotated[
        Preset | None,
        typer.Option(
            "--preset", "-p",
            help="Label convention: btcv/pancreas-ct (liver 6), chaos (any non-zero), "
            "lits/msd (1 liver, 2 tumor), totalseg (5).",
        ),
    ] = None,
    liver_label: Annotated[
        int | None, typer.Option("--liver-label", help="Liver id (overrides the preset's).")
    ] = None,
    keep_tumor: Annotated[
        bool,
        typer.Option("--keep-tumor", help="Keep tumor cases as 0/1/2 (real-tumor training) "
                     "instead of skipping them."),
    ] = False,
    pattern: Annotated[
        str, typer.Option("--pattern", help="Glob of label files in SRC_DIR ('**/…' recurses).")
    ] = "*.nii.gz",
) -> None:
    """Convert label maps to 0/1 liver masks in OUT_DIR.

    Writes uint8 NIfTI files with the same names on the same grid, lists skipped files (has
    tumor, no liver, unexpected labels, unreadable) and writes OUT_DIR/labels_report.json.
    Exit status 2 if nothing was converted."""
    with user_errors():
        rule = make_rule(preset.value if preset else None, liver_label=liver_label,
                         keep_tumor=keep_tumor)
        with _progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as bar:
            task = bar.add_task("labels", total=None)

            def show(done: int, total: int, name: str) -> None:
                bar.update(task, description=name or "done", completed=done, total=total)

            report = convert_labels(src_dir, out_dir, rule,
                                    preset=preset.value if preset else None,
                                    pattern=pattern, progress=show)

    table = Table(title_justify="left", title=f"{src_dir} → {out_dir}")
    for col in ("file", "result", "liver voxels", "tumor voxels", "detail"):
        table.add_column(col, justify="right" if "voxels" in col else "left")
    for o in report.outcomes:
        if o.status == "converted":
            table.add_row(o.file, "[green]converted[/]", str(o.liver_voxels),
                          str(o.tumor_voxels), "")
        else:
            # the table row already names the file: show just the problem
            problem = (o.detail or "").removeprefix(f"{Path(report.source) / o.file}: ")
            table.add_row(o.file, f"[yellow]skipped: {o.reason}[/]", "", "", problem)
    print_table(table)
    console.print(
        f"converted {len(report.converted)}, skipped {len(report.skipped)}; report: "
        f"{Path(out_dir) / REPORT_NAME}",
        highlight=False,
    )
    if not report.converted:
        err_console.print("[bold red]error:[/] no label file was converted", highlight=False)
        raise typer.Exit(2)


# --------------------------------------------------------------------------------------------
# datalist


@data_app.command()
def datalist(
    images: Annotated[Path, typer.Option("--images", help="Folder of CT images.")],
    labels_dir: Annotated[
        Path, typer.Option("--labels", help="Folder of 0/1/2 label maps (same case ids).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for the JSON files.")],
    validation_fraction: Annotated[
        float, typer.Option("--validation-fraction", help="Share of cases for validation.")
    ] = 0.2,
    folds: Annotated[
        int, typer.Option("--folds", help="Folds of the tumor cases (0: none).")
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed for splits.")] = 0,
    healthy_only: Annotated[
        bool, typer.Option("--healthy-only", help="Only tumor-free cases in datalist.json.")
    ] = False,
) -> None:
    """Pair images with labels and write datalists, a healthy list and k folds.

    Writes OUT/datalist.json (training/validation), OUT/healthy.json (tumor-free cases) and
    OUT/fold_k.json (k-fold splits of the tumor cases). Files pair by case id:
    img0001/label0001, volume-7/segmentation-7, case_0000 (nnU-Net)/case, case_ct/case_label,
    or identical names."""
    with user_errors():
        with _progress(
            TextColumn("reading labels {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("", total=None)

            def show(done: int, total: int, name: str) -> None:
                bar.update(task, description=name, completed=done, total=total)

            result = build_datalist(
                images, labels_dir, out, validation_fraction=validation_fraction, folds=folds,
                seed=seed, healthy_only=healthy_only, progress=show,
            )
    for note in result.warnings:
        _warn(note)
    console.print(
        f"{len(result.cases)} cases: {len(result.healthy)} tumor-free, {len(result.tumor)} "
        f"with tumor; datalist: {len(result.training)} training, {len(result.validation)} "
        f"validation; {len(result.folds)} folds",
        highlight=False,
    )
    console.print("wrote " + ", ".join(str(p) for p in result.written), highlight=False)


# --------------------------------------------------------------------------------------------
# phantoms


@data_app.command()
def phantoms(
    n: Annotated[int, typer.Option("--n", help="Number of phantoms.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (images/, labels/, "
                                      "datalist.json).")],
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the whole set.")] = 0,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Processes.")] = 1,
    spacing: Annotated[float | None, typer.Option(
        "--spacing", help="Isotropic voxel size (mm); default: random, in-plane 0.7-1.0 mm, "
        "slices 1-5 mm.")] = None,
    phase: Annotated[list[str] | None, typer.Option(
        "--phase", help="Contrast phase(s) to draw from: non-contrast, arterial, portal "
        "(repeat; default all three).")] = None,
    noise: Annotated[tuple[float, float] | None, typer.Option(
        "--noise", help="Range of the noise std (HU); default 6 25.")] = None,
    sharpness: Annotated[tuple[float, float] | None, typer.Option(
        "--psf", help="Range of the scanner blur sigma (mm): small = sharp kernel; default "
        "0.45 1.1.")] = None,
) -> None:
    """Write N healthy CT phantoms (NIfTI CT + liver mask + datalist) with random anatomy,
    contrast phase, noise, sharpness and spacing. Same seed: byte-identical files; a killed
    run resumes."""
    from synthtumor.data.phantoms import ranges_from_options, summary_line, write_phantom_set

    with user_errors():
        if spacing is not None and not spacing > 0:
            raise InputError(None, f"--spacing must be positive (mm), got {spacing}")
        ranges = ranges_from_options(spacing, phase, noise, sharpness)
        with _progress(TextColumn("phantoms"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn()) as bar:
            task = bar.add_task("phantoms", total=n)
            result = write_phantom_set(out, n, seed=seed, workers=workers, ranges=ranges,
                                       progress=lambda d, t: bar.update(task, completed=d))
    console.print(summary_line(result), highlight=False)
    console.print(f"wrote {result.datalist} in {result.seconds:.1f} s"
                  + (f" ({result.reused} case(s) kept from an earlier run)" if result.reused
                     else ""), highlight=False)
