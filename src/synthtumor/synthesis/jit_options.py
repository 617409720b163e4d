"""The numba options every compiled kernel of the synthesis uses."""

from __future__ import annotations

from typing import Literal, TypedDict


class JitOptions(TypedDict):
    """Keyword options of ``numba.njit``, typed so that ``njit(**OPTIONS)`` type-checks."""

    cache: bool
    nogil: bool
    error_model: Literal["python", "numpy"]


OPTIONS: JitOptions = {"cache": True, "nogil": True, "error_model": "numpy"}
