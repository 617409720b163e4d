"""Errors raised on bad input: one line naming the file and the problem."""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad user input. ``str(err)`` is one line: ``<path>: <problem>``.

    The CLI prints it and exits with status 2; nothing is written.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = " ".join(problem.split())  # always one line
        super().__init__(self.problem if self.path is None else f"{self.path}: {self.problem}")
