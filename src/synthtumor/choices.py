"""The fixed choices of the command-line options, written once.

``StrEnum`` types for typer, and plain tuples of their values for the library's checks, so a
new choice is added in one place. Imports nothing heavy (the CLI starts without torch).
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """Training data: synthetic tumors in healthy livers, real tumors, or both."""

    synthetic = "synthetic"
    real = "real"
    mixed = "mixed"


class Cache(StrEnum):
    """Where the deterministic part of training preprocessing is cached."""

    memory = "memory"
    disk = "disk"
    none = "none"


class ModelName(StrEnum):
    """Segmentation network."""

    unet = "unet"
    swin_unetr = "swin_unetr"


class Device(StrEnum):
    """``auto``: CUDA when present, else CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


MODES: tuple[str, ...] = tuple(m.value for m in Mode)
CACHES: tuple[str, ...] = tuple(c.value for c in Cache)
MODEL_NAMES: tuple[str, ...] = tuple(n.value for n in ModelName)
DEVICES: tuple[str, ...] = tuple(d.value for d in Device)
