"""The step-based training loop: data, model, optimizer, AMP, DDP, validation, checkpoints, logs.

Entry point: :func:`train` with a :class:`TrainConfig`. Works as a single process or under
``torchrun`` (one process per GPU, or gloo processes on CPU). The parts live in
``config`` (settings, run identity), ``datasets``, ``setup`` (checks, run folder, model),
``validation`` and ``log``; their public names are importable from here too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthtumor.synthesis import SynthesisConfig, kernels_compiled
from synthtumor.train import checkpoint as ckpt
from synthtumor.train import distributed as dist_utils
from synthtumor.train.config import (
    IDENTITY,
    RunResult,
    TrainConfig,
    check_out_dir,
    check_same_config,
)
from synthtumor.train.datasets import (
    build_train_dataset,
    build_train_loader,
    build_val_loader,
    load_items,
    unwrap,
)
from synthtumor.train.log import LOG_COLUMNS, CsvLog, ProgressBar, say, tensorboard
from synthtumor.train.setup import (
    TrainState,
    build_state,
    check_inputs,
    lr_lambda,
    prepare_run_dir,
    seed_all,
)
from synthtumor.train.transforms import randomizable
from synthtumor.train.validation import evaluate


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


@dataclass
class _Run:
    """What the steps of one call share (``log``, ``writer``: rank 0 only, else None)."""

    config: TrainConfig
    info: dist_utils.DistInfo
    device: torch.device
    out: Path
    desc: dict[str, Any]
    ts: TrainState
    transform_rngs: list[Any]
    loss_fn: Callable[..., torch.Tensor]
    val_loader: Any | None
    log: CsvLog | None
    writer: Any | None
    bar: ProgressBar
    result: RunResult


def _train(config: TrainConfig, info: dist_utils.DistInfo, device: torch.device) -> RunResult:
    out = Path(config.out)
    # --- checks on every rank, before anything is written
    inputs = check_inputs(config, info)
    dist_utils.barrier(info)
    # --- the run folder (rank 0)
    log = prepare_run_dir(config, info, inputs)
    dist_utils.barrier(info)

    dataset = inputs.dataset
    if config.cache == "disk":
        dataset = build_train_dataset(config, inputs.items, info)
    state, start = inputs.state, inputs.start
    ts = build_state(config, info, device, state)

    # --- augmentation: a different stream per rank
    seed_all(config.seed + 1 + info.rank)
    loader = build_train_loader(config, dataset, info, start, inputs.weights)
    transform_rngs = [t.R for t in randomizable(dataset.transform)]
    exact = info.world_size == 1 and config.workers == 0
    if state is not None and exact:
        # single process, no workers: every draw happens here, so the run continues exactly
        ckpt.restore_rng(state["rng"], transform_rngs)

    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    writer = tensorboard(out, info)
    result = RunResult(out, start, start, out / ckpt.LAST,
                       best=out / ckpt.BEST if ts.best is not None else None,
                       best_metric=ts.best)
    say(info, f"training {config.model} ({config.mode}) on {len(inputs.items)} case(s), "
              f"{info.world_size} process(es) on {device}, steps {start + 1}..{config.steps}")
    synthesis = config.synthesis or SynthesisConfig()
    if config.mode != "real" and not kernels_compiled(synthesis.appearance is not None):
        say(info, "first run on this machine: the synthesis kernels compile before the first "
                  "step (20-35 s per loader process, once)")
    run = _Run(config, info, device, out, inputs.desc, ts, transform_rngs, loss_fn,
               inputs.val_loader, log, writer, ProgressBar(info, config, start), result)
    step = _run_steps(run, loader, start)
    if config.dump_rank_weights:
        torch.save(ts.model.state_dict(), out / f"rank{info.rank}.pt")
    dist_utils.barrier(info)
    say(info, f"done: step {step}, checkpoint {out / ckpt.LAST}")
    return result


def _run_steps(run: _Run, loader: Any, start: int) -> int:
    """Steps ``start + 1 .. config.steps``; closes the bar and logs however it ends."""
    config, info = run.config, run.info
    run.ts.net.train()
    step = start
    batches: Iterator[Any] = iter(loader)
    try:
        while step < config.steps:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except Exception as err:
                raise unwrap(err) from None
            loss, lr = _step(run, batch)
            step += 1
            loss_value = _mean_over_ranks(loss.detach(), info)
            rate = config.batch_size * info.world_size / max(time.perf_counter() - t0, 1e-9)
            run.result.losses.append((step, loss_value))
            run.result.step = step
            _after_step(run, step, loss_value, lr, rate)
    finally:
        run.bar.close()
        if run.log is not None:
            run.log.close()
        if run.writer is not None:
            run.writer.close()
    return step


def _step(run: _Run, batch: Any) -> tuple[torch.Tensor, float]:
    """One optimizer step on ``batch``: (its loss on this rank, the LR it used)."""
    ts, device = run.ts, run.device
    x = batch["image"].to(device, non_blocking=True)
    y = batch["label"].to(device, non_blocking=True).long()
    ts.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, enabled=ts.amp):
        loss = run.loss_fn(ts.net(x), y)
    if ts.scaler is not None:
        ts.scaler.scale(loss).backward()
        ts.scaler.step(ts.optimizer)
        ts.scaler.update()
    else:
        loss.backward()
        ts.optimizer.step()
    lr = ts.optimizer.param_groups[0]["lr"]
    ts.scheduler.step()
    return loss, lr


def _after_step(run: _Run, step: int, loss_value: float, lr: float, rate: float) -> None:
    """Validation (rank 0, when due; the other ranks wait), logs, progress and ``last.pt``."""
    config, info = run.config, run.info
    val: tuple[float, float] | None = None
    due_val = run.val_loader is not None and (
        step == config.steps or (config.val_every and step % config.val_every == 0))
    if info.is_main and due_val:
        val = _validate(run, step)
    if run.log is not None:
        run.log.write(step=step, loss=loss_value, lr=lr, samples_per_s=rate,
                      val_tumor_dice=None if val is None else val[0],
                      val_liver_dice=None if val is None else val[1])
    if run.writer is not None:
        run.writer.add_scalar("loss", loss_value, step)
        run.writer.add_scalar("lr", lr, step)
        if val is not None:
            run.writer.add_scalar("val/tumor_dice", val[0], step)
            run.writer.add_scalar("val/liver_dice", val[1], step)
    run.bar.update(step, loss_value, rate, val)
    if info.is_main and (step % config.save_every == 0 or step == config.steps):
        _save(run, step)
    if due_val:
        dist_utils.barrier(info)  # the other ranks wait while rank 0 validates


def _validate(run: _Run, step: int) -> tuple[float, float]:
    """(tumor Dice, liver Dice) at ``step``; a better score is kept as ``best.pt``."""
    val = evaluate(run.ts.model, run.val_loader, tuple(run.config.roi), run.device)
    run.result.validations.append((step, *val))
    score = val[0] if not math.isnan(val[0]) else val[1]
    best = run.ts.best
    if not math.isnan(score) and (best is None or score > best):
        run.ts.best = best = score
        save_best(run.ts.model, run.desc, run.config, step, score, run.out)
        run.result.best, run.result.best_metric = run.out / ckpt.BEST, best
    return val


def _save(run: _Run, step: int) -> None:
    """``last.pt`` (the previous one kept as ``last.prev.pt``): everything to resume."""
    ts = run.ts
    obj = {
        "format": ckpt.FORMAT, "step": step, "model": ts.model.state_dict(),
        "optimizer": ts.optimizer.state_dict(), "scheduler": ts.scheduler.state_dict(),
        "scaler": ts.scaler.state_dict() if ts.scaler is not None else None,
        "rng": ckpt.capture_rng(run.transform_rngs), "config": run.config.to_dict(),
        "model_desc": run.desc, "best": ts.best, "world_size": run.info.world_size,
    }
    ckpt.save_atomic(obj, run.out / ckpt.LAST, keep_previous=True)


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



__all__ = [
    "IDENTITY", "LOG_COLUMNS", "CsvLog", "RunResult", "TrainConfig", "build_train_dataset",
    "build_train_loader", "build_val_loader", "check_out_dir", "check_same_config", "evaluate",
    "load_items", "lr_lambda", "save_best", "train",
]
