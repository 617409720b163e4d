"""torchrun / DDP helpers: process group set-up, rank queries, sharded infinite samplers.

Launched by ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the training joins a
process group (NCCL on CUDA, gloo on CPU); otherwise it runs as a single process (rank 0 of 1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from synthtumor.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def init(device_choice: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if launched by torchrun; pick the device."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) < 2:
        return DistInfo(), resolve_device(device_choice)
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                    int(os.environ["LOCAL_RANK"]))
    device = resolve_device(device_choice, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(minutes=30),  # rank 0 may cache a large dataset alone
            device_id=device if device.type == "cuda" else None,
        )
    # CPU: share the cores between the processes instead of oversubscribing them.
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // _local_world()))
    return info, device


def _local_world() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class InfiniteSampler(Sampler[int]):
    """Endless stream of indices: pass after pass of a sharded, shuffled ``DistributedSampler``
    (``set_epoch`` per pass), or of a weighted draw when ``weights`` is given.

    ``start`` skips that many indices of this rank's stream, so a resumed run continues exactly
    where the checkpointed one stopped (``start = step * batch_size``).
    """

    def __init__(
        self, size: int, info: DistInfo, seed: int, start: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        self.size, self.info, self.seed, self.start = size, info, seed, start
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self._base: DistributedSampler[int] = DistributedSampler(
            range(size),  # type: ignore[arg-type]  # a sized range is all the sampler reads
            num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
        )

    def _pass(self, epoch: int) -> Iterator[int]:
        if self.weights is None:
            self._base.set_epoch(epoch)
            yield from self._base
            return
        # Weighted (mixed mode): each rank draws its own with-replacement sample per pass.
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + epoch) * 4099 + self.info.rank)
        n = max(1, -(-self.size // self.info.world_size))
        yield from torch.multinomial(self.weights, n, replacement=True, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        skip, epoch = self.start, 0
        while True:
            for idx in self._pass(epoch):
                if skip:
                    skip -= 1
                    continue
                yield idx
            epoch += 1
