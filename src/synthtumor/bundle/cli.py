"""Command line of ``synthtumor.bundle``: ``register(export_app)`` adds ``export bundle``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(export_app: typer.Typer) -> None:
    """Add ``bundle`` to the ``synthtumor export`` sub-app."""

    @export_app.command("bundle")
    def bundle(
        checkpoint: Annotated[Path, typer.Option(
            "--checkpoint", "-c", help="best.pt or last.pt written by `synthtumor train`.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
        name: Annotated[str | None, typer.Option(
            "--name", help="Bundle name in metadata and docs (default: OUT's folder name).")
        ] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")
                             ] = False,
    ) -> None:
        """Export a trained checkpoint as a MONAI bundle (configs, weights, docs).

        Run the result with `python -m monai.bundle run --config_file configs/inference.json
        --dataset_dir CT_FOLDER --output_dir PRED_FOLDER` from inside the bundle folder.
        """
        from rich.progress import Progress, SpinnerColumn, TextColumn

        from synthtumor.bundle.export import export_bundle
        from synthtumor.console import console, err_console, user_errors

        with user_errors(), Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=err_console,
            transient=True, disable=not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("starting")
            written = export_bundle(checkpoint, out, name, overwrite,
                                    step=lambda msg: progress.update(task, description=msg))
        console.print(f"wrote MONAI bundle [bold]{written}[/]: configs/metadata.json, "
                      "configs/inference.json, configs/train.json, models/model.pt, "
                      "docs/README.md, LICENSE", highlight=False)
