"""What every ``synthtumor`` command shares: the consoles, tables and the bad-input convention."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from synthtumor.errors import InputError

console = Console()
err_console = Console(stderr=True)


def print_table(table: Table) -> None:
    """Print a results table on stdout: fitted to the terminal, or, into a pipe or a log file
    (a cluster job's output), at its full width with each row on one line, so that no cell is
    cut short or folded."""
    if console.is_terminal:
        console.print(table)
        return
    width = Measurement.get(console, console.options.update(width=10_000), table).maximum
    Console(file=console.file, width=max(width, console.width), color_system=None).print(table)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl+C, so staged outputs are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Handle SIGTERM and SIGHUP like SIGINT while the block runs (main thread only; a SIGHUP
    ignored by ``nohup`` stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None or signal.getsignal(sig) == signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, _stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input: one line ``error: <path>: <problem>`` on stderr, exit status 2.

    ``InputError`` names the file; ``ValueError`` covers argument values the library refuses.
    SIGTERM/SIGHUP stop the command like Ctrl+C (temporary outputs removed): one line, exit
    status 128 + the signal number.
    """
    try:
        with _stop_on_signals():
            yield
    except (InputError, ValueError) as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except Stopped as stop:
        name = signal.Signals(stop.signum).name
        err_console.print(f"[bold red]stopped:[/] {name}; temporary outputs removed",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(128 + stop.signum) from None
