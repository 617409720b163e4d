"""Help text of the command line at the terminal's width.

Typer's Rich help keeps the single line breaks of a docstring, so a wide terminal still shows
the ~90-column lines of the source. ``reflow_help(app)`` gives every command whose help is its
docstring that docstring with each paragraph on one line; Rich then wraps it at the width of
the terminal (or ``COLUMNS``). Paragraphs marked ``\\b`` and bullet lists keep their lines.
"""

from __future__ import annotations

import inspect

import typer


def reflow(text: str) -> str:
    """``text`` with single line breaks inside paragraphs replaced by spaces."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        keep = para.startswith("\b") or any(ln.lstrip().startswith(("- ", "* ")) for ln in lines)
        out.append(para if keep else " ".join(ln.strip() for ln in lines))
    return "\n\n".join(out)


def reflow_help(app: typer.Typer) -> None:
    """Set the reflowed docstring as the help of every command of ``app`` and its groups that
    has no explicit help (in place)."""
    for info in app.registered_commands:
        if info.help is None and info.callback is not None:
            doc = inspect.getdoc(info.callback)
            if doc:
                info.help = reflow(doc)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)
