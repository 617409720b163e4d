"""Visual Turing test: build a blinded reader study, serve it locally, report the answers.

``build_study`` (turing.build), ``create_app`` (turing.app, FastAPI) and ``study_report``
(turing.report) are importable from here; they load lazily, because the main CLI imports this
package at start-up and FastAPI is an optional dependency.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"build_study": "build", "create_app": "app", "study_report": "report"}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
