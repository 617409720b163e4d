"""Command line of ``synthtumor benchmark``: ``register(app)`` adds the ``benchmark`` group."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from synthtumor.console import err_console, user_errors
from synthtumor.train.cli import Device

benchmark_app = typer.Typer(add_completion=False, no_args_is_help=True,
                            help="Measure the method: label-free vs real-tumor training.")


def _ids(values: list[int] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(values) if values else default


@benchmark_app.command()
def efficacy(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (resumed when it "
                                      "holds this benchmark).")],
    preset: Annotated[str, typer.Option(help="Preset name (cpu, paper) or a .toml file.")]
    = "cpu",
    arms: Annotated[list[str] | None, typer.Option(
        "--arms", help="Arms to run, comma-separated or repeated: synthetic, phantom, "
        "synthetic+phantom, real, mixed (default: the preset's).")] = None,
    healthy: Annotated[Path | None, typer.Option(help="Datalist of healthy CTs with liver "
                                                 "labels (synthetic, synthetic+phantom, "
                                                 "mixed).")] = None,
    real: Annotated[Path | None, typer.Option(help="Datalist of real-tumor CTs (real, mixed); "
                                              "with folds: a `data datalist` folder with "
                                              "fold_K.json.")] = None,
    test: Annotated[Path | None, typer.Option(help="Datalist of held-out real-tumor cases "
                                              "(its 'validation' list, else 'training').")]
    = None,
    healthy_liver_id: Annotated[list[int] | None, typer.Option(
        help="Liver label id(s) of --healthy (default 1; TotalSegmentator 5, BTCV 6).")] = None,
    real_liver_id: Annotated[list[int] | None, typer.Option(help="Liver id(s) of --real "
                                                            "(default 1).")] = None,
    real_tumor_id: Annotated[list[int] | None, typer.Option(help="Tumor id(s) of --real "
                                                            "(default 2).")] = None,
    test_liver_id: Annotated[list[int] | None, typer.Option(help="Liver id(s) of --test "
                                                            "(default 1).")] = None,
    test_tumor_id: Annotated[list[int] | None, typer.Option(help="Tumor id(s) of --test "
                                                            "(default 2).")] = None,
    profile: Annotated[Path | None, typer.Option(help="Synthesis profile JSON for every "
                                                 "synthetic arm (`synthtumor train "
                                                 "--profile`).")] = None,
    realistic: Annotated[bool, typer.Option("--realistic", help="Realistic synthesis for "
                                            "every synthetic arm.")] = False,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")] = Device.auto,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate the preset against the "
                                          "datalists and print the plan; train nothing.")]
    = False,
) -> None:
    """Train every arm with the same budget, network, patch, grid, seed and augmentation;
    evaluate each on the same held-out real tumors; write one table and figure. A killed run
    is resumed by the same command (finished arms are not re-run)."""
    from synthtumor.benchmark.cases import LabelIds
    from synthtumor.benchmark.efficacy import EfficacyConfig, run_efficacy
    from synthtumor.benchmark.efficacy import dry_run as plan_only
    from synthtumor.benchmark.preset import load_preset, select_arms

    with user_errors():
        p = load_preset(preset)
        config = EfficacyConfig(
            preset=p, out=out, arms=select_arms(p, arms), healthy=healthy, real=real,
            test=test, healthy_ids=LabelIds(_ids(healthy_liver_id, (1,)), ()),
            real_ids=LabelIds(_ids(real_liver_id, (1,)), _ids(real_tumor_id, (2,))),
            test_ids=LabelIds(_ids(test_liver_id, (1,)), _ids(test_tumor_id, (2,))),
            profile=profile, realistic=realistic, device=device.value,
        )
        if dry_run:
            typer.echo(plan_only(config))
            return
        t0 = time.perf_counter()
        result = run_efficacy(config, say=lambda m: err_console.print(m, highlight=False,
                                                                      markup=False))
    typer.echo((Path(out) / "efficacy.md").read_text())
    typer.echo(f"{len(result['rows'])} row(s) in {time.perf_counter() - t0:.0f} s; wrote "
               f"{out}/efficacy.md, .csv, .json, .png")


def register(app: typer.Typer) -> None:
    """Add the ``benchmark`` command group to ``app``."""
    app.add_typer(benchmark_app, name="benchmark", help="Measure the method: label-free vs "
                  "real-tumor training on held-out real tumors.")
