"""Reusable scratch arrays for tumor boxes.

A tumor box at 1 mm holds up to a few million voxels and every step of the synthesis needs a
temporary of that size. Fresh arrays of that size are page-faulted in on every call, which on
common Linux setups (numpy asks for transparent huge pages) costs more than the arithmetic
itself. So the hot path writes into named buffers that are kept per thread and reused from call
to call; ``release_workspace()`` frees them.

Names and their lifetimes while one tumor is painted: "r2", "distance", "inside" (the shape),
"liver", "edge" (the edge weight, then the HU change) live through the whole tumor;
"scratch1".."scratch4" and "mask" are free again whenever the function that took them returns.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.typing import DTypeLike

_local = threading.local()


class Workspace:
    """Named scratch buffers; ``get`` returns a view of the requested shape (contents undefined)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}
        self._keys: dict[tuple[str, DTypeLike], tuple[str, np.dtype]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: DTypeLike = np.float32) -> np.ndarray:
        # called ~20 times per tumor: the dtype is normalised once per (name, spelling)
        key = self._keys.get((name, dtype))
        if key is None:
            key = self._keys[(name, dtype)] = (name, np.dtype(dtype))
        size = math.prod(shape)
        flat = self._buffers.get(key)
        if flat is None or flat.size < size:
            flat = np.empty(max(size, 1), dtype=dtype)
            self._buffers[key] = flat
        return flat[:size].reshape(shape)

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._buffers.values())


def workspace() -> Workspace:
    """This thread's workspace (each DataLoader worker process has its own)."""
    ws = getattr(_local, "workspace", None)
    if ws is None:
        ws = _local.workspace = Workspace()
    return ws


def release_workspace() -> None:
    """Free this thread's scratch buffers (they are rebuilt on the next call)."""
    _local.workspace = None
