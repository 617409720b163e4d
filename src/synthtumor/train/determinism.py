"""Same seed, same network on the CPU: a fixed intra-op thread count.

Measured cause of run-to-run differences on the CPU: torch splits the reductions of a
convolution (and its gradients) over its intra-op threads, so a different thread count sums
in another order. After 4 optimizer steps of a 32^3 U-Net the weights of a 1-thread and a
2-thread run already differ by up to 2e-2 (AdamW turns tiny gradient differences into full
steps); after hundreds of steps the demo's Dice and lesion counts move in the last digits.
The default thread count follows the machine (its cores, ``OMP_NUM_THREADS``), not the seed.
Timing is not a cause: with a fixed worker count, batches arrive in sampler order and each
worker's augmentation stream is seeded, so a loaded machine gives the same weights (checked).

Still part of the result: the worker count (each worker has its own augmentation stream) and
the CPU's instruction set (oneDNN picks different kernels on AVX2 and AVX-512 machines).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op torch threads and deterministic algorithms
    (warnings, not errors, where an op has none); the previous settings come back after."""
    import torch

    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    strict = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(strict, warn_only=warn_only)
