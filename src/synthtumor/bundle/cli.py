"""Command line of ``synthtumor.bundle``: ``register(export_app)`` adds ``export bundle``."""

from __future__ import annotations

import typer


def register(export_app: typer.Typer) -> None:
    """Add ``bundle`` to the ``synthtumor export`` sub-app."""
