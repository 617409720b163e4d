"""Command line of ``synthtumor.nnunet``: ``register(export_app)`` adds ``export nnunet``."""

from __future__ import annotations

import typer


def register(export_app: typer.Typer) -> None:
    """Add ``nnunet`` to the ``synthtumor export`` sub-app."""
