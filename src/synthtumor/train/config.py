"""The configuration of a training run: :class:`TrainConfig`, what defines a run (``IDENTITY``)
and the checks that a run folder or checkpoint belongs to this configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from synthtumor.choices import CACHES, MODES
from synthtumor.errors import InputError
from synthtumor.files import read_json
from synthtumor.synthesis import SynthesisConfig
from synthtumor.train import checkpoint as ckpt
from synthtumor.train import defaults
from synthtumor.train.models import MODEL_NAMES, check_roi

REPLACED = (ckpt.LAST, ckpt.PREV, ckpt.BEST, "log.csv")  # what --overwrite deletes
# Fields that define a run: a RUN_DIR holding another combination is refused without --overwrite.
IDENTITY = ("data", "real_data", "mode", "real_fraction", "model", "feature_size", "roi",
            "spacing", "batch_size", "lr", "weight_decay", "warmup", "synth_prob", "seed",
            "margin_mm", "synthesis")


@dataclass
class TrainConfig:
    """Everything a training run needs. Sizes: ``roi`` in voxels, ``spacing``/``margin_mm`` in mm.

    Attributes:
        data: datalist JSON (its ``training`` list); healthy livers (0/1) in synthetic and mixed
            mode, real tumors (0/1/2) in real mode.
        out: run folder (checkpoints, config.json, log.csv, disk cache).
        mode: synthetic (tumors pasted on the fly), real (labels as they are) or mixed.
        real_data: mixed mode: datalist of real-tumor cases (default: the tumor cases of
            ``data``, by label content).
        real_fraction: mixed mode: probability that a sample is a real-tumor case.
        model: ``unet`` or ``swin_unetr``; ``feature_size``: Swin UNETR width.
        roi: training patch (voxels); also the sliding window of validation.
        spacing: isotropic training grid (mm).
        batch_size: patches per step and process.
        steps: total optimizer steps (a resumed run continues to this number).
        lr, weight_decay: AdamW; ``warmup``: linear warm-up steps before the cosine decay.
        synth_prob: probability that a healthy patch gets synthetic tumors.
        synthesis: how those tumors are made (None: the run's stored config when resuming,
            else the reference method); ``synthesis_profile``: the profile file it came from,
            ``{"path", "content"}``, kept with the run for provenance.
        val_data: datalist whose ``validation`` list (else ``training`` list) is validated.
        val_every: validate every K steps (0: only at the end), when ``val_data`` is given.
        save_every: write ``last.pt`` every N steps (and at the end).
        workers: DataLoader worker processes (0: load in the training process).
        cache: where the resampled, liver-cropped cases live: memory, disk (``out/cache``), none.
        seed: seed of model init (same on all ranks) and augmentation (seed + rank).
        margin_mm: margin kept around the liver when cropping the cached volume.
        device: auto (CUDA if present), cpu or cuda.
        resume: continue from ``out/last.pt`` (or ``resume_from``).
        overwrite: start afresh in a RUN_DIR that holds another run.
        allow_config_change: resume a checkpoint trained with other ``IDENTITY`` settings.
        log_every: plain-text log line every N steps (when stderr is not a terminal).
        dump_rank_weights: every rank saves its weights to ``out/rank{r}.pt`` at the end (tests).
        progress: rich progress bar (None: when stderr is a terminal).
    """

    data: Path
    out: Path
    mode: str = "synthetic"
    real_data: Path | None = None
    real_fraction: float = defaults.REAL_FRACTION
    model: str = "unet"
    feature_size: int = defaults.FEATURE_SIZE
    roi: tuple[int, int, int] = defaults.ROI
    spacing: float = defaults.SPACING_MM
    batch_size: int = defaults.BATCH_SIZE
    steps: int = defaults.STEPS
    lr: float = defaults.LR
    weight_decay: float = 1e-5
    warmup: int = defaults.WARMUP
    synth_prob: float = defaults.SYNTH_PROB
    synthesis: SynthesisConfig | None = None
    synthesis_profile: dict[str, Any] | None = None
    val_data: Path | None = None
    val_every: int = 0
    save_every: int = defaults.SAVE_EVERY
    workers: int = defaults.WORKERS
    cache: str = defaults.CACHE
    seed: int = defaults.SEED
    margin_mm: float = 32.0
    device: str = "auto"
    resume: bool = False
    resume_from: Path | None = None
    overwrite: bool = False
    allow_config_change: bool = False
    log_every: int = 10
    dump_rank_weights: bool = False
    progress: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy (paths absolute strings, tuples lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Path):
                v = str(v.absolute())
            elif isinstance(v, SynthesisConfig):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    def identity(self) -> dict[str, Any]:
        d = self.to_dict()
        d["synthesis"] = d["synthesis"] or SynthesisConfig().to_dict()  # None: the reference
        return {k: d[k] for k in IDENTITY}

    def validate(self) -> None:
        """ValueError naming the flag when an argument is out of range."""
        checks: list[tuple[bool, str]] = [
            (self.mode in MODES, f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}"),
            (self.model in MODEL_NAMES,
             f"--model must be one of {', '.join(MODEL_NAMES)}, got {self.model!r}"),
            (self.cache in CACHES, f"--cache must be one of {', '.join(CACHES)}"),
            (self.steps >= 1, f"--steps must be at least 1, got {self.steps}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.warmup >= 0, f"--warmup must be non-negative, got {self.warmup}"),
            (0 <= self.real_fraction <= 1, "--real-fraction must be in [0, 1]"),
            (0 <= self.synth_prob <= 1, "--synth-prob must be in [0, 1]"),
            (self.spacing > 0, f"--spacing must be positive (mm), got {self.spacing}"),
            (self.save_every >= 1, "--save-every must be at least 1"),
            (self.val_every >= 0, "--val-every must be non-negative"),
            (self.workers >= 0, "--workers must be non-negative"),
            (self.seed >= 0, "--seed must be non-negative"),
            (len(self.roi) == 3, "--roi takes three sizes (voxels)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        check_roi(self.model, tuple(self.roi))


@dataclass
class RunResult:
    """What a run did (on rank 0; other ranks fill what they know).

    Attributes:
        out: run folder; step: steps done; start_step: where this call began (0 if fresh).
        last: path of last.pt; best: path of best.pt or None; best_metric: its Dice.
        losses: (step, loss) of every step of this call; validations: (step, tumor, liver).
    """

    out: Path
    step: int
    start_step: int
    last: Path
    best: Path | None = None
    best_metric: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    validations: list[tuple[int, float, float]] = field(default_factory=list)


def check_out_dir(config: TrainConfig) -> None:
    """Refuse an output folder that cannot be written or holds another run (nothing written)."""
    out = Path(config.out)
    p = out.absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise InputError(out, f"cannot be created: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(out, f"cannot be created or written: {p} is not writable")
    if config.resume or config.overwrite or not out.is_dir():
        return
    old = read_json(out / "config.json")
    if old is None and not (out / ckpt.LAST).exists():
        return
    if old is not None:
        mine = config.identity()
        differ = [k for k in IDENTITY if old.get(k) != mine.get(k)]
        if not differ and not (out / ckpt.LAST).exists() and not (out / ckpt.PREV).exists():
            return  # the same run, stopped before its first checkpoint: start it again
        if differ:
            raise InputError(out, f"holds a run with another configuration (differs in: "
                             f"{', '.join(differ)}); pass --overwrite to replace it, or use "
                             "another RUN_DIR")
    raise InputError(out, "already holds a run; pass --resume to continue it or --overwrite "
                     "to start over")


def check_same_config(state: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint with other run-defining settings (``IDENTITY``: roi,
    spacing, lr, data, ...) than this call, naming each difference."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return  # written before checkpoints carried their configuration
    mine = config.identity()
    differ = [f"{k} {_shown(saved[k])} -> {_shown(mine[k])}" for k in IDENTITY
              if k in saved and saved[k] != mine[k]]
    if differ:
        raise InputError(path, f"was trained with other settings than this run asks for "
                         f"({'; '.join(differ)}); pass the same options, or "
                         "--allow-config-change to continue with the new ones")


def _shown(value: Any) -> str:
    if isinstance(value, dict):  # the synthesis config: too long for a one-line message
        return "(another configuration)"
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return str(value)

