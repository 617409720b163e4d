"""The step-based training loop: data, model, optimizer, AMP, DDP, validation, checkpoints, logs.

Entry point: :func:`train` with a :class:`TrainConfig`. Works as a single process or under
``torchrun`` (one process per GPU, or gloo processes on CPU).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from synthtumor.choices import CACHES, MODES
from synthtumor.conventions import BACKGROUND, LIVER, TUMOR
from synthtumor.data.datalist import label_has_tumor, load_datalist
from synthtumor.errors import InputError
from synthtumor.files import check_not_inputs, csv_cell, read_json, write_text_atomic
from synthtumor.synthesis import SynthesisConfig
from synthtumor.train import checkpoint as ckpt
from synthtumor.train import distributed as dist_utils
from synthtumor.train.models import MODEL_NAMES, build_model, check_roi, describe
from synthtumor.train.synthesis import adopt_synthesis
from synthtumor.train.transforms import (
    find_input_error,
    randomizable,
    train_transform,
    val_transform,
)

_REPLACED = (ckpt.LAST, ckpt.PREV, ckpt.BEST, "log.csv")  # what --overwrite deletes
LOG_COLUMNS = ("step", "loss", "lr", "samples_per_s", "val_tumor_dice", "val_liver_dice")
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
    real_fraction: float = 0.5
    model: str = "unet"
    feature_size: int = 48
    roi: tuple[int, int, int] = (96, 96, 96)
    spacing: float = 1.0
    batch_size: int = 2
    steps: int = 1000
    lr: float = 4e-4
    weight_decay: float = 1e-5
    warmup: int = 50
    synth_prob: float = 0.9
    synthesis: SynthesisConfig | None = None
    synthesis_profile: dict[str, Any] | None = None
    val_data: Path | None = None
    val_every: int = 0
    save_every: int = 100
    workers: int = 2
    cache: str = "memory"
    seed: int = 0
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


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor after ``s`` scheduler steps: linear warm-up to 1, then cosine to 0 at ``total``."""

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        span = max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - warmup) / span)))

    return factor


# --------------------------------------------------------------------------------------------
# inputs and the run folder


def load_items(config: TrainConfig) -> tuple[list[dict[str, Any]], list[float] | None]:
    """Training items ``{"image", "label", "kind"}`` and mixed-mode sampling weights.

    Raises:
        InputError: from ``load_datalist`` (missing files, grid mismatch, empty list) or a
            tumor case listed for synthetic mode.
    """
    cases = load_datalist(config.data, "training")
    if config.mode == "real":
        return [_item(c, "real") for c in cases], None
    if config.mode == "synthetic":
        for c in cases:
            if c.has_tumor:
                raise InputError(c.label, f"is a tumor case in {config.data}; synthetic mode "
                                 "needs healthy livers (use --mode real or mixed)")
        return [_item(c, "healthy") for c in cases], None
    if config.real_data is not None:
        healthy, real = cases, load_datalist(config.real_data, "training")
    else:  # split one datalist by what its labels hold
        flags = [c.has_tumor if c.has_tumor is not None else label_has_tumor(c.label)
                 for c in cases]
        healthy = [c for c, t in zip(cases, flags) if not t]
        real = [c for c, t in zip(cases, flags) if t]
    if not healthy or not real:
        raise InputError(config.data, "mixed mode needs healthy and real-tumor cases, found "
                         f"{len(healthy)} healthy and {len(real)} with tumors (see --real-data)")
    items = [_item(c, "healthy") for c in healthy] + [_item(c, "real") for c in real]
    f = config.real_fraction
    weights = [(1 - f) / len(healthy)] * len(healthy) + [f / len(real)] * len(real)
    return items, weights


def _item(case: Any, kind: str) -> dict[str, Any]:
    return {"image": str(case.image), "label": str(case.label), "kind": kind}


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


class CsvLog:
    """``log.csv`` appended one flushed line per step (rank 0 only)."""

    def __init__(self, path: Path, keep_until: int | None) -> None:
        """Fresh file, or (resume) keep only rows with step <= ``keep_until``: rows written
        after the checkpoint by a killed run are dropped so steps are not listed twice."""
        self.path = path
        rows: list[str] = []
        if keep_until is not None and path.is_file():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        if int(row["step"]) <= keep_until:
                            rows.append(",".join(row.get(c) or "" for c in LOG_COLUMNS))
                    except (KeyError, ValueError):
                        continue
        write_text_atomic(path, "\n".join([",".join(LOG_COLUMNS), *rows]) + "\n")
        self._f = path.open("a", newline="")

    def write(self, **values: Any) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [csv_cell(values.get(c)) for c in LOG_COLUMNS])
        self._f.write(buf.getvalue())  # one write per line: a kill leaves whole lines
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# --------------------------------------------------------------------------------------------
# data


def _unwrap(err: Exception) -> Exception:
    found = find_input_error(err)
    return found if found is not None else err


def build_train_dataset(
    config: TrainConfig, items: list[dict[str, Any]], info: dist_utils.DistInfo
) -> Any:
    """The training dataset with the cached deterministic part (memory, disk or none).

    Raises:
        InputError: a label with unexpected ids (found while caching), unreadable images.
    """
    from monai.data import CacheDataset, Dataset, PersistentDataset

    synth = None if config.mode == "real" else config.synth_prob
    transform = train_transform(config.spacing, config.roi, synth, config.margin_mm,
                                synthesis=config.synthesis)
    try:
        if config.cache == "memory":
            return CacheDataset(items, transform, num_workers=max(1, config.workers),
                                progress=False, copy_cache=False)
        if config.cache == "disk":
            key = json.dumps([config.spacing, list(config.roi), config.margin_mm])
            folder = Path(config.out) / "cache" / hashlib.sha1(key.encode()).hexdigest()[:12]
            if info.is_main:
                folder.mkdir(parents=True, exist_ok=True)
            ds = PersistentDataset(items, transform, cache_dir=folder)
            if info.is_main:  # fill the cache here, where a bad label raises a clear error
                for item in items:
                    ds._cachecheck(item)
            dist_utils.barrier(info)
            return ds
        _precheck_labels(items)  # no cache: check the labels once, up front
        return Dataset(items, transform)
    except InputError:
        raise
    except Exception as err:
        raise _unwrap(err) from None


def _precheck_labels(items: list[dict[str, Any]]) -> None:
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from synthtumor.train.transforms import CheckLabelsd

    check = Compose([LoadImaged("label", image_only=True), EnsureChannelFirstd("label"),
                     CheckLabelsd("label")])
    for item in items:
        try:
            check(dict(item))
        except Exception as err:
            raise _unwrap(err) from None


def build_train_loader(
    config: TrainConfig, dataset: Any, info: dist_utils.DistInfo, start_step: int,
    weights: list[float] | None,
) -> Any:
    """Endless DataLoader of training batches for this rank, starting after ``start_step``
    steps. Augmentation streams are seeded by (seed, rank, start_step)."""
    from monai.data import DataLoader

    sampler = dist_utils.InfiniteSampler(len(dataset), info, config.seed,
                                         start=start_step * config.batch_size, weights=weights)
    g = torch.Generator().manual_seed(
        (config.seed * 7919 + info.rank) * 1_000_003 + start_step)
    return DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
        generator=g, pin_memory=torch.cuda.is_available(),
        persistent_workers=config.workers > 0, drop_last=False,
        prefetch_factor=4 if config.workers > 0 else None,
    )


def build_val_loader(config: TrainConfig) -> Any | None:
    if config.val_data is None:
        return None
    from monai.data import CacheDataset, DataLoader

    try:
        cases = load_datalist(config.val_data, "validation")
    except InputError as err:
        if "validation" not in str(err):
            raise
        cases = load_datalist(config.val_data, "training")
    items = [_item(c, "real") for c in cases]
    try:
        ds = CacheDataset(items, val_transform(config.spacing, config.margin_mm),
                          num_workers=1, progress=False)
    except Exception as err:
        raise _unwrap(err) from None
    return DataLoader(ds, batch_size=1, num_workers=0)


# --------------------------------------------------------------------------------------------
# validation


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, roi: Sequence[int],
             device: torch.device) -> tuple[float, float]:
    """Mean (tumor Dice, liver Dice) over the validation cases; liver = label >= 1.

    Tumor Dice is NaN when no validation label holds tumor voxels.
    """
    from monai.inferers import sliding_window_inference
    from monai.metrics import DiceMetric

    metric = DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=True,
                        get_not_nans=True)
    was_training = model.training
    model.eval()
    for batch in loader:
        image = batch["image"].to(device)
        label = batch["label"].to(device).long()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            # one tensor: MONAI's union also covers models that return tuples or dicts
            logits = cast(torch.Tensor, sliding_window_inference(image, roi, 2, model, overlap=0.5))
        pred = logits.argmax(1, keepdim=True)
        metric(_channels(pred), _channels(label))
    scores, counted = (t.float().cpu() for t in metric.aggregate())  # (liver, tumor)
    scores[counted == 0] = float("nan")  # MONAI reports 0 for a class absent from every label
    model.train(was_training)
    return float(scores[1]), float(scores[0])


def _channels(lab: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) 0/1/2 -> (B, 3, ...) [background, liver incl. tumor, tumor]."""
    return torch.cat([lab == BACKGROUND, lab >= LIVER, lab == TUMOR], dim=1).float()


# --------------------------------------------------------------------------------------------
# the loop


def _say(info: dist_utils.DistInfo, message: str) -> None:
    if info.is_main:
        print(message, file=sys.stderr, flush=True)


def _tensorboard(out: Path, info: dist_utils.DistInfo) -> Any | None:
    if not info.is_main:
        return None
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        _say(info, "tensorboard is not installed: logging to log.csv only")
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code draws from it
    torch.manual_seed(seed)


def train(config: TrainConfig) -> RunResult:
    """Train a liver/tumor segmentation network; see :class:`TrainConfig`.

    Writes (rank 0): ``config.json``, ``log.csv``, ``last.pt`` (+ ``last.prev.pt``),
    ``best.pt`` when validating. Under torchrun each process calls this function.

    Raises:
        InputError: bad datalists, labels, run folder or checkpoint (nothing written or lost).
        ValueError: an argument out of range.
    """
    config.validate()
    info, device = dist_utils.init(config.device)
    try:
        return _train(config, info, device)
    finally:
        dist_utils.cleanup()


def _train(config: TrainConfig, info: dist_utils.DistInfo, device: torch.device) -> RunResult:
    out = Path(config.out)
    # --- checks on every rank, before anything is written
    items, weights = load_items(config)
    check_out_dir(config)
    if config.overwrite and not (config.resume or config.resume_from is not None):
        check_not_inputs(out, [config.data, config.real_data, config.val_data,
                               *(it[k] for it in items for k in ("image", "label"))],
                         deleting=[out / name for name in _REPLACED])
    desc = describe(config.model, config.feature_size)
    state: dict[str, Any] | None = None
    if config.resume or config.resume_from is not None:
        path = Path(config.resume_from) if config.resume_from else out / ckpt.LAST
        state = ckpt.load_checkpoint(path)
        ckpt.check_model(state, desc, path)
        adopt_synthesis(config, state.get("config"), path)  # before comparing configs
        if not config.allow_config_change:
            check_same_config(state, config, path)
    adopt_synthesis(config, None)  # not resuming (or nothing stored): the reference
    start = int(state["step"]) if state else 0
    if start >= config.steps:
        raise ValueError(f"the checkpoint is at step {start}; pass --steps above it to continue")
    # the data too (labels are read here), so bad input leaves no run folder behind; the disk
    # cache lives in the run folder, so with it the labels are checked on their own first
    if config.cache == "disk":
        _precheck_labels(items)
    else:
        dataset = build_train_dataset(config, items, info)
    val_loader = build_val_loader(config) if info.is_main else None
    dist_utils.barrier(info)

    # --- the run folder (rank 0)
    log = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_writes(out)  # e.g. a .last.pt.*.tmp of a killed run (up to 35 MB)
        if config.overwrite and state is None:
            for name in _REPLACED:
                (out / name).unlink(missing_ok=True)
        cfg = {**config.to_dict(), "world_size": info.world_size, "model_desc": desc}
        write_text_atomic(out / "config.json", json.dumps(cfg, indent=2) + "\n")
        log = CsvLog(out / "log.csv", keep_until=start if state else None)
    dist_utils.barrier(info)

    if config.cache == "disk":
        dataset = build_train_dataset(config, items, info)

    # --- model: same seed on every rank so that all start from identical weights
    _seed_all(config.seed)
    model = build_model(config.model, config.feature_size).to(device)
    amp = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lr_lambda(config.warmup, config.steps))
    scaler = torch.amp.GradScaler("cuda") if amp else None
    best = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        best = state.get("best")
    net: torch.nn.Module = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    # --- augmentation: a different stream per rank
    _seed_all(config.seed + 1 + info.rank)
    loader = build_train_loader(config, dataset, info, start, weights)
    transform_rngs = [t.R for t in randomizable(dataset.transform)]
    exact = info.world_size == 1 and config.workers == 0
    if state is not None and exact:
        # single process, no workers: every draw happens here, so the run continues exactly
        ckpt.restore_rng(state["rng"], transform_rngs)

    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    writer = _tensorboard(out, info)
    result = RunResult(out, start, start, out / ckpt.LAST,
                       best=out / ckpt.BEST if best is not None else None, best_metric=best)
    _say(info, f"training {config.model} ({config.mode}) on {len(items)} case(s), "
               f"{info.world_size} process(es) on {device}, steps {start + 1}..{config.steps}")

    def save(step: int) -> None:
        obj = {
            "format": ckpt.FORMAT, "step": step, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": ckpt.capture_rng(transform_rngs), "config": config.to_dict(),
            "model_desc": desc, "best": best, "world_size": info.world_size,
        }
        ckpt.save_atomic(obj, out / ckpt.LAST, keep_previous=True)

    bar = _ProgressBar(info, config, start)
    net.train()
    step = start
    batches: Iterator[Any] = iter(loader)
    try:
        while step < config.steps:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except Exception as err:
                raise _unwrap(err) from None
            x = batch["image"].to(device, non_blocking=True)
            y = batch["label"].to(device, non_blocking=True).long()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=amp):
                loss = loss_fn(net(x), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            loss_value = _mean_over_ranks(loss.detach(), info)
            rate = config.batch_size * info.world_size / max(time.perf_counter() - t0, 1e-9)
            result.losses.append((step, loss_value))
            result.step = step

            val: tuple[float, float] | None = None
            due_val = val_loader is not None and (
                step == config.steps or (config.val_every and step % config.val_every == 0))
            if info.is_main and due_val:
                val = evaluate(model, val_loader, tuple(config.roi), device)
                result.validations.append((step, *val))
                score = val[0] if not math.isnan(val[0]) else val[1]
                if not math.isnan(score) and (best is None or score > best):
                    best = score
                    save_best(model, desc, config, step, score, out)
                    result.best, result.best_metric = out / ckpt.BEST, best
            if log is not None:
                log.write(step=step, loss=loss_value, lr=lr, samples_per_s=rate,
                          val_tumor_dice=None if val is None else val[0],
                          val_liver_dice=None if val is None else val[1])
            if writer is not None:
                writer.add_scalar("loss", loss_value, step)
                writer.add_scalar("lr", lr, step)
                if val is not None:
                    writer.add_scalar("val/tumor_dice", val[0], step)
                    writer.add_scalar("val/liver_dice", val[1], step)
            bar.update(step, loss_value, rate, val)
            if info.is_main and (step % config.save_every == 0 or step == config.steps):
                save(step)
            if due_val:
                dist_utils.barrier(info)  # the other ranks wait while rank 0 validates
    finally:
        bar.close()
        if log is not None:
            log.close()
        if writer is not None:
            writer.close()
    if config.dump_rank_weights:
        torch.save(model.state_dict(), out / f"rank{info.rank}.pt")
    dist_utils.barrier(info)
    _say(info, f"done: step {step}, checkpoint {out / ckpt.LAST}")
    return result


def save_best(model: torch.nn.Module, desc: dict[str, Any], config: TrainConfig, step: int,
              score: float, out: Path) -> None:
    """``best.pt``: weights and metadata only (not resumable)."""
    ckpt.save_atomic({"format": ckpt.FORMAT + "-weights", "step": step,
                      "model": model.state_dict(), "model_desc": desc,
                      "config": config.to_dict(), "best": score}, out / ckpt.BEST)


def _mean_over_ranks(loss: torch.Tensor, info: dist_utils.DistInfo) -> float:
    if info.distributed:
        import torch.distributed as dist

        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= info.world_size
    return float(loss.item())


class _ProgressBar:
    """Rich bar on a terminal (rank 0), else a plain line every ``log_every`` steps."""

    def __init__(self, info: dist_utils.DistInfo, config: TrainConfig, start: int) -> None:
        self.info, self.config = info, config
        show = config.progress if config.progress is not None else sys.stderr.isatty()
        self.progress = None
        if info.is_main and show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=config.steps, completed=start,
                                               stats="")

    def update(self, step: int, loss: float, rate: float,
               val: tuple[float, float] | None) -> None:
        if not self.info.is_main:
            return
        stats = f"loss {loss:.4f}  {rate:.2f} samples/s"
        if val is not None:
            stats += f"  val tumor {val[0]:.3f} liver {val[1]:.3f}"
        if self.progress is not None:
            self.progress.update(self.task, completed=step, stats=stats)
            if val is not None:
                self.progress.console.print(f"step {step}: {stats}")
        elif val is not None or step % max(1, self.config.log_every) == 0 or \
                step == self.config.steps:
            _say(self.info, f"step {step}/{self.config.steps}  {stats}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


__all__ = ["RunResult", "TrainConfig", "evaluate", "train"]
