"""``synthtumor train``: the command line of the training loop.

``register(app)`` adds the ``train`` command to a typer app; ``python -m synthtumor.train``
runs it alone (that is what ``torchrun`` launches, one process per GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthtumor.choices import Cache, Device, Mode, ModelName
from synthtumor.console import user_errors
from synthtumor.synthesis_options import (
    CountLongOpt,
    ProfileOpt,
    RealisticOpt,
    TumorProbsOpt,
    TypeOpt,
    build_config,
    options_given,
    profile_source,
)
from synthtumor.train import defaults

# the longer option declarations, kept out of the signature of `train`
_DEFAULT_CACHE = Cache(defaults.CACHE)
ModeOpt = Annotated[Mode, typer.Option(help="synthetic: tumors pasted on the fly into healthy "
                                       "livers; real: labels as they are; mixed: both.")]
RealDataOpt = Annotated[Path | None, typer.Option(help="Mixed mode: datalist of real-tumor "
                                                  "cases (default: tumor cases of --data).")]
ValDataOpt = Annotated[Path | None, typer.Option(help="Datalist to validate on (its "
                                                 "'validation' list, else 'training').")]
AllowConfigChangeOpt = Annotated[bool, typer.Option(
    "--allow-config-change", help="Resume even when --roi, --spacing, --lr, --data... "
    "differ from the checkpoint's run.")]


def train(
    data: Annotated[Path, typer.Option("--data", help="Datalist JSON (its 'training' list): "
                                       "healthy livers (synthetic/mixed) or real tumors (real).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, logs.")],
    mode: ModeOpt = Mode.synthetic,
    real_data: RealDataOpt = None,
    real_fraction: Annotated[float, typer.Option(help="Mixed mode: share of real-tumor "
                                                 "samples.")] = defaults.REAL_FRACTION,
    model: Annotated[ModelName, typer.Option(help="Network.")] = ModelName.unet,
    feature_size: Annotated[int, typer.Option(help="Swin UNETR feature size.")]
    = defaults.FEATURE_SIZE,
    roi: Annotated[tuple[int, int, int], typer.Option(help="Patch size (voxels).")]
    = defaults.ROI,
    spacing: Annotated[float, typer.Option(help="Training grid spacing (mm, isotropic).")]
    = defaults.SPACING_MM,
    batch_size: Annotated[int, typer.Option(help="Patches per step and process.")]
    = defaults.BATCH_SIZE,
    steps: Annotated[int, typer.Option(help="Total optimizer steps.")] = defaults.STEPS,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = defaults.LR,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps before cosine decay.")]
    = defaults.WARMUP,
    synth_prob: Annotated[float, typer.Option(help="Probability of synthetic tumors per "
                                              "healthy patch.")] = defaults.SYNTH_PROB,
    tumor_type: TypeOpt = None,
    tumor_probs: TumorProbsOpt = None,
    count: CountLongOpt = None,
    realistic: RealisticOpt = False,
    profile: ProfileOpt = None,
    val_data: ValDataOpt = None,
    val_every: Annotated[int, typer.Option(help="Validate every K steps (0: at the end).")]
    = 0,
    save_every: Annotated[int, typer.Option(help="Write last.pt every N steps.")]
    = defaults.SAVE_EVERY,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = defaults.WORKERS,
    cache: Annotated[Cache, typer.Option(help="Cache of resampled cases.")] = _DEFAULT_CACHE,
    seed: Annotated[int, typer.Option(help="Random seed.")] = defaults.SEED,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN_DIR/last.pt.")]
    = False,
    resume_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint.")]
    = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run already in "
                                            "RUN_DIR.")] = False,
    allow_config_change: AllowConfigChangeOpt = False,
    device: Annotated[Device, typer.Option(help="auto: CUDA when present.")] = Device.auto,
    log_every: Annotated[int, typer.Option(help="Plain log line every N steps.")] = 10,
    dump_rank_weights: Annotated[bool, typer.Option("--dump-rank-weights", hidden=True)]
    = False,
) -> None:
    """Train a liver/tumor segmentation network (U-Net or Swin UNETR), single process or under
    torchrun (python -m torch.distributed.run --nproc_per_node N -m synthtumor.train ...).

    The synthesis options (--type, --tumor-probs, --count, --realistic, --profile) are stored
    with the run (the profile's content too); --resume without them keeps the stored ones."""
    from synthtumor.train.loop import TrainConfig
    from synthtumor.train.loop import train as run_training

    synthesis = profile_content = None
    if options_given(tumor_type, tumor_probs, count, realistic, profile):
        with user_errors():
            synthesis = build_config(tumor_type=tumor_type, tumor_probs=tumor_probs,
                                     count=count, realistic=realistic, profile=profile)
            profile_content = profile_source(profile)
    config = TrainConfig(
        data=data, out=out, mode=mode.value, real_data=real_data, real_fraction=real_fraction,
        model=model.value, feature_size=feature_size, roi=roi, spacing=spacing,
        batch_size=batch_size, steps=steps, lr=lr, warmup=warmup, synth_prob=synth_prob,
        synthesis=synthesis, synthesis_profile=profile_content,
        val_data=val_data, val_every=val_every, save_every=save_every, workers=workers,
        cache=cache.value, seed=seed, resume=resume, resume_from=resume_from,
        overwrite=overwrite, allow_config_change=allow_config_change, device=device.value,
        log_every=log_every,
        dump_rank_weights=dump_rank_weights,
    )
    with user_errors():
        result = run_training(config)
    if result.best_metric is not None:
        typer.echo(f"best validation Dice {result.best_metric:.4f}: {result.best}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train)


def main() -> None:  # pragma: no cover - entry point of `python -m synthtumor.train`
    app = typer.Typer(add_completion=False)
    register(app)
    app()
