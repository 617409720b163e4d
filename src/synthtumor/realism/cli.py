"""Command line of ``synthtumor.realism``: ``register(app)`` adds its commands to a typer app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
