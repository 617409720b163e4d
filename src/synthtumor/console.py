"""What every ``synthtumor`` command shares: the consoles and the bad-input convention."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from synthtumor.errors import InputError

console = Console()
err_console = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input: one line ``error: <path>: <problem>`` on stderr, exit status 2.

    ``InputError`` names the file; ``ValueError`` covers argument values the library refuses.
    """
    try:
        yield
    except (InputError, ValueError) as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
