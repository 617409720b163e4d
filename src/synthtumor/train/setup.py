"""Setting up a training run: the checks before anything is written, the run folder, and the
model with its optimizer, LR schedule and AMP scaler (fresh or restored from a checkpoint).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthtumor.files import check_not_inputs, write_text_atomic
from synthtumor.train import checkpoint as ckpt
from synthtumor.train import distributed as dist_utils
from synthtumor.train.config import REPLACED, TrainConfig, check_out_dir, check_same_config
from synthtumor.train.datasets import (
    build_train_dataset,
    build_val_loader,
    load_items,
    precheck_labels,
)
from synthtumor.train.log import CsvLog
from synthtumor.train.models import build_model, describe
from synthtumor.train.synthesis import adopt_synthesis


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor after ``s`` scheduler steps: linear warm-up to 1, then cosine to 0 at ``total``."""

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        span = max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - warmup) / span)))

    return factor


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's global and torch's generators (third-party code draws from them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code draws from it
    torch.manual_seed(seed)



@dataclass
class RunInputs:
    """What the checks found, on every rank, before anything was written.

    Attributes:
        items, weights: training items and mixed-mode sampling weights (see ``load_items``).
        state: the checkpoint resumed from, or None; ``start``: its step (0 if fresh).
        desc: the model's description (stored with checkpoints).
        dataset: the training dataset, or None with the disk cache (built once the run
            folder exists); ``val_loader``: rank 0's validation loader, or None.
    """

    items: list[dict[str, Any]]
    weights: list[float] | None
    state: dict[str, Any] | None
    start: int
    desc: dict[str, Any]
    dataset: Any
    val_loader: Any | None


def check_inputs(config: TrainConfig, info: dist_utils.DistInfo) -> RunInputs:
    """All checks on this rank before anything is written (datalists, run folder, checkpoint,
    labels); also loads the checkpoint to resume from.

    Raises:
        InputError: bad datalists, labels, run folder or checkpoint.
        ValueError: the checkpoint is already at ``config.steps``.
    """
    out = Path(config.out)
    items, weights = load_items(config)
    check_out_dir(config)
    if config.overwrite and not (config.resume or config.resume_from is not None):
        check_not_inputs(out, [config.data, config.real_data, config.val_data,
                               *(it[k] for it in items for k in ("image", "label"))],
                         deleting=[out / name for name in REPLACED])
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
    dataset = None
    if config.cache == "disk":
        precheck_labels(items)
    else:
        dataset = build_train_dataset(config, items, info)
    val_loader = build_val_loader(config) if info.is_main else None
    return RunInputs(items, weights, state, start, desc, dataset, val_loader)


def prepare_run_dir(config: TrainConfig, info: dist_utils.DistInfo,
                    inputs: RunInputs) -> CsvLog | None:
    """Rank 0: create the run folder, clear stale writes (and, with --overwrite, the old run),
    write ``config.json`` and open ``log.csv``. Other ranks: None."""
    if not info.is_main:
        return None
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.remove_stale_writes(out)  # e.g. a .last.pt.*.tmp of a killed run (up to 35 MB)
    if config.overwrite and inputs.state is None:
        for name in REPLACED:
            (out / name).unlink(missing_ok=True)
    cfg = {**config.to_dict(), "world_size": info.world_size, "model_desc": inputs.desc}
    write_text_atomic(out / "config.json", json.dumps(cfg, indent=2) + "\n")
    return CsvLog(out / "log.csv", keep_until=inputs.start if inputs.state else None)


@dataclass
class TrainState:
    """The model (``net``: its DDP wrapper, or the model itself), optimizer, LR scheduler, AMP
    scaler (None without CUDA) and the best validation score so far (None: none yet)."""

    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    amp: bool
    best: float | None


def build_state(config: TrainConfig, info: dist_utils.DistInfo, device: torch.device,
                state: dict[str, Any] | None) -> TrainState:
    """The model and its optimizer, fresh or restored from ``state``; the same seed on every
    rank, so that all start from identical weights."""
    seed_all(config.seed)
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
    return TrainState(model, net, optimizer, scheduler, scaler, amp, best)
