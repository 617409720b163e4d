"""Which torch device a command runs on (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import torch

from synthtumor.choices import DEVICES


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this process's local GPU) when present, else CPU.

    Raises:
        ValueError: an unknown choice, or ``cuda`` without a CUDA device.
    """
    if choice not in DEVICES:
        raise ValueError(f"--device must be auto, cpu or cuda, got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())
