"""The data of a training run: datalist items, the cached training dataset, the endless
per-rank training loader and the validation loader.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from synthtumor.data.datalist import label_has_tumor, load_datalist
from synthtumor.errors import InputError
from synthtumor.train import distributed as dist_utils
from synthtumor.train.config import TrainConfig
from synthtumor.train.transforms import (
    find_input_error,
    needs_vessels,
    train_transform,
    val_transform,
)


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


def unwrap(err: Exception) -> Exception:
    """The InputError behind a MONAI/DataLoader wrapper exception, else ``err`` itself."""
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
            vessels = needs_vessels(synth, config.synthesis)
            key = json.dumps([config.spacing, list(config.roi), config.margin_mm]
                             + (["vessels"] if vessels else []))
            folder = Path(config.out) / "cache" / hashlib.sha1(key.encode()).hexdigest()[:12]
            if info.is_main:
                folder.mkdir(parents=True, exist_ok=True)
            ds = PersistentDataset(items, transform, cache_dir=folder)
            if info.is_main:  # fill the cache here, where a bad label raises a clear error
                for item in items:
                    ds._cachecheck(item)
            dist_utils.barrier(info)
            return ds
        precheck_labels(items)  # no cache: check the labels once, up front
        return Dataset(items, transform)
    except InputError:
        raise
    except Exception as err:
        raise unwrap(err) from None


def precheck_labels(items: list[dict[str, Any]]) -> None:
    """Read every label once and check its ids (InputError naming the file)."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from synthtumor.train.transforms import CheckLabelsd

    check = Compose([LoadImaged("label", image_only=True), EnsureChannelFirstd("label"),
                     CheckLabelsd("label")])
    for item in items:
        try:
            check(dict(item))
        except Exception as err:
            raise unwrap(err) from None


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
        raise unwrap(err) from None
    return DataLoader(ds, batch_size=1, num_workers=0)

