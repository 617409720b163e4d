"""Command line of ``synthtumor.nnunet``: ``register(export_app)`` adds ``export nnunet``.

Importable without nnU-Net: nnunetv2 and the export machinery load inside the command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from synthtumor.synthesis_options import (
    CountLongOpt,
    ProfileOpt,
    RealisticOpt,
    TumorProbsOpt,
    TypeOpt,
    build_config,
)

if TYPE_CHECKING:
    from synthtumor.nnunet.export import ExportSettings
    from synthtumor.synthesis import SynthesisConfig

_HELP = "\n\n".join((
    "Write an nnU-Net v2 raw dataset of healthy livers with synthetic tumors.",
    "Writes OUT/DatasetXXX_NAME/imagesTr/{case}_0000.nii.gz, labelsTr/{case}.nii.gz (0 "
    "background, 1 liver, 2 tumor), synthtumor/{case}.json (seed and tumor records) and "
    "dataset.json. HEALTHY is a datalist whose 'training' items are CTs with 0/1 liver labels "
    "(`synthtumor data datalist` writes healthy.json). --variants N synthetic copies per case; "
    "0 copies the healthy cases unchanged, for on-the-fly training.",
    "Note: pre-generated tumors trained worse than on-the-fly synthesis in the paper (43.5 vs "
    "52.9 % tumor DSC, Hu et al. CVPR 2023). Recommended: export with --variants 0, register the "
    "trainer once with --install-trainer, then `nnUNetv2_train ID 3d_fullres FOLD -tr "
    "nnUNetTrainerSynthTumor`.",
    "Scaling out: seeds depend only on (--seed, case, variant). --workers N uses N processes; "
    "--shard i/n (0 <= i < n) does every n-th output case, e.g. one shard per SLURM array task, "
    "without overlap; a re-run skips finished cases; --merge then checks that all are there and "
    "writes dataset.json (an unsharded run writes it itself).",
    "Synthesis options (--type, --tumor-probs, --count, --realistic, --profile) shape the "
    "exported tumors; with --variants 0 they are stored in dataset.json and "
    "nnUNetTrainerSynthTumor synthesizes with them on the fly.",
))


def register(export_app: typer.Typer) -> None:
    """Add ``nnunet`` to the ``synthtumor export`` sub-app."""
    export_app.command("nnunet", help=_HELP)(nnunet)


def nnunet(
    healthy: Annotated[Path | None, typer.Argument(
        help="Datalist JSON of healthy cases (items with image and 0/1 liver label).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="nnU-Net raw folder (default: $nnUNet_raw).")] = None,
    dataset_id: Annotated[int | None, typer.Option(
        "--dataset-id", help="nnU-Net dataset id, 1..999.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name, e.g. LiverSynth.")
                    ] = None,
    variants: Annotated[int | None, typer.Option(
        "--variants", "-n", min=0, help="Synthetic variants per case (0: healthy copies).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Base seed.")] = 0,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Processes.")] = 1,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="Do only shard i of n, written i/n (e.g. $SLURM_ARRAY_TASK_ID/8).")
    ] = None,
    merge: Annotated[bool, typer.Option(
        "--merge", help="Check that every case is finished and write dataset.json.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing dataset folder.")] = False,
    realistic: RealisticOpt = False,
    tumor_type: TypeOpt = None,
    tumor_probs: TumorProbsOpt = None,
    count: CountLongOpt = None,
    profile: ProfileOpt = None,
    install_trainer: Annotated[bool, typer.Option(
        "--install-trainer", help="Register nnUNetTrainerSynthTumor with nnU-Net and exit.")
    ] = False,
    uninstall_trainer: Annotated[bool, typer.Option(
        "--uninstall-trainer", help="Remove that registration and exit.")] = False,
    trainer_dir: Annotated[Path | None, typer.Option(
        "--trainer-dir", help="Write the trainer shim here instead of into nnU-Net's package; "
        "then set nnUNet_extTrainer to this folder.")] = None,
    widen_clip: Annotated[Path | None, typer.Option(
        "--widen-clip", help="Widen the CT clip range in this nnU-Net plans file (after "
        "nnUNetv2_plan_experiment, before nnUNetv2_preprocess) so dark tumors are not clipped; "
        "then exit.")] = None,
) -> None:
    from synthtumor.console import console, user_errors

    with user_errors():
        if widen_clip is not None:
            from synthtumor.nnunet.clip import widen_plans_clip

            old, new = widen_plans_clip(widen_clip)
            console.print(f"{widen_clip}: CT clip {old[0]:.1f}..{old[1]:.1f} HU -> "
                          f"{new[0]:.1f}..{new[1]:.1f} HU", highlight=False, soft_wrap=True)
            return
        if install_trainer or uninstall_trainer:
            _trainer_shim(install_trainer, uninstall_trainer, trainer_dir)
            return
        synthesis = build_config(tumor_type=tumor_type, tumor_probs=tumor_probs, count=count,
                                 realistic=realistic, profile=profile)
        settings, shard_spec = _settings(healthy, out, dataset_id, name, variants, seed,
                                         realistic, shard, synthesis)
        from synthtumor.nnunet.export import PAPER_NOTE, run_export
        from synthtumor.nnunet.export import merge as merge_dataset

        if merge:
            if shard_spec is not None:
                raise ValueError("--merge runs once after all shards; drop --shard")
            path = merge_dataset(settings)
            console.print(f"wrote [bold]{path}[/]")
            return
        with _bar() as progress:
            summary = run_export(settings, shard=shard_spec, workers=workers,
                                 overwrite=overwrite, progress=progress)
    console.print(f"{settings.folder}: {len(summary.written)} case(s) written, "
                  f"{len(summary.skipped)} already finished, of {summary.total}"
                  + (f" (shard {shard})" if shard else ""))
    if summary.dataset_json is not None:
        console.print(f"wrote [bold]{summary.dataset_json}[/]")
    elif shard_spec is not None:
        console.print("when all shards are done: the same command with --merge instead of "
                      "--shard")
    if settings.variants > 0:
        console.print(f"[yellow]note:[/] {PAPER_NOTE}", highlight=False)


def _settings(
    healthy: Path | None, out: Path | None, dataset_id: int | None, name: str | None,
    variants: int | None, seed: int, realistic: bool, shard: str | None,
    synthesis: SynthesisConfig,
) -> tuple[ExportSettings, tuple[int, int] | None]:
    from synthtumor.nnunet.export import ExportSettings
    from synthtumor.nnunet.shards import parse_shard

    if healthy is None:
        raise ValueError("give the HEALTHY datalist (or --install-trainer)")
    if out is None:
        if not os.environ.get("nnUNet_raw"):
            raise ValueError("give --out RAW_DIR (or set nnUNet_raw)")
        out = Path(os.environ["nnUNet_raw"])
    missing = [flag for flag, v in (("--dataset-id", dataset_id), ("--name", name),
                                    ("--variants", variants)) if v is None]
    if missing or dataset_id is None or name is None or variants is None:  # (narrows types)
        raise ValueError(f"missing {', '.join(missing)}")
    settings = ExportSettings(healthy, out, dataset_id, name, variants, seed, realistic,
                              synthesis)
    return settings, (parse_shard(shard) if shard is not None else None)


def _trainer_shim(install: bool, uninstall: bool, folder: Path | None) -> None:
    from synthtumor.console import console
    from synthtumor.nnunet.install import TRAINER, install_trainer, uninstall_trainer

    if install and uninstall:
        raise ValueError("choose one of --install-trainer and --uninstall-trainer")
    if install:
        path, changed = install_trainer(folder)
        console.print(f"{'wrote' if changed else 'already there:'} {path}")
        console.print(f"train with: nnUNetv2_train ID 3d_fullres FOLD -tr {TRAINER}")
        if folder is not None:
            console.print(f"and first: export nnUNet_extTrainer={folder.absolute()}")
    else:
        path, changed = uninstall_trainer(folder)
        console.print(f"{'removed' if changed else 'not installed:'} {path}")


@contextmanager
def _bar() -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from synthtumor.console import err_console

    with Progress(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), console=err_console, transient=True,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("", total=None)
        yield lambda done, total, name: progress.update(task, completed=done, total=total,
                                                        description=name)
