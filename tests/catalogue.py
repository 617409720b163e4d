"""The catalogue of bad inputs, docs/bad-inputs.md, generated from the tests.

Every command run by a test that ends with exit status 2 (the bad-input status) is recorded:
through ``CliRunner.invoke`` automatically (see ``conftest.py``), through a real process with
:func:`record_process`. Each row holds the input (the test's docstring or name), the command,
the error line, the exit code and what the command left on disk (files that appeared under the
test's temporary folder). The test then checks its rows against the committed file, so a changed
message fails until the file is regenerated:

    SYNTHTUMOR_UPDATE_CATALOGUE=1 pytest tests/...      # rewrite the rows of the tests run

Paths are written relative to placeholders (``TMP`` the test's folder, ``DATA`` the shared data)
so rows are the same on every machine.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad-inputs.md"
DATA = ROOT.parent / "shared" / "data"
UPDATE = os.environ.get("SYNTHTUMOR_UPDATE_CATALOGUE") == "1"
HEADER = (
    "# Bad inputs: what each command says and leaves behind\n\n"
    "Generated from the tests (tests/catalogue.py): every command a test runs that ends with "
    "the bad-input exit status 2 is one row. Do not edit by hand; regenerate with "
    "`SYNTHTUMOR_UPDATE_CATALOGUE=1 pytest tests/<file>.py`. `TMP` is the test's temporary "
    "folder, `BASE` the session's temporary root (shared fixtures), `DATA` the shared test "
    "data.\n\n"
    "| case | input | command | message | exit | left on disk |\n"
    "|---|---|---|---|---|---|\n"
)
_ROW = re.compile(r"^\| `(?P<key>[^`]+)` \|")
_MAX_LEFT = 6


@dataclass(frozen=True)
class Row:
    key: str
    input: str
    command: str
    message: str
    exit_code: int
    left: str

    def markdown(self) -> str:
        cells = [f"`{self.key}`", self.input, f"`{self.command}`", self.message,
                 str(self.exit_code), self.left]
        return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def normalise(text: str, tmp: Path | None, base: Path | None = None) -> str:
    """Machine-independent text: the test's temporary folder, the session's temporary root
    (module fixtures) and the data folder replaced by placeholders."""
    text = str(text)
    for folder, name in ((tmp, "TMP"), (base, "BASE")):
        if folder is not None:
            for form in {str(folder), str(folder.resolve())}:
                text = text.replace(form, name)
    for form in {str(DATA), str(DATA.resolve())}:
        text = text.replace(form, "DATA")
    text = text.replace(str(ROOT), "REPO")
    # tmp_path_factory numbers shared folders in the order fixtures are first used, which
    # depends on the tests selected and the worker: BASE/healthy0 and BASE/healthy1 are one
    text = re.sub(r"\bBASE/([A-Za-z_]+?)\d+\b", r"BASE/\1N", text)
    # ports the tests draw at random (local servers) change on every run
    return re.sub(r"\b(127\.0\.0\.1|localhost):\d+", r"\1:PORT", text)


def error_line(output: str) -> str:
    """The line a user reads: ``error: ...``, else click's usage error, else the last line."""
    lines = [line.strip(" │╭╮╰╯─") for line in output.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith("error:"):
            return line
    for line in lines:
        if "Invalid value" in line or "Missing option" in line or line.startswith("Error"):
            return line
    return lines[-1] if lines else ""


def files_under(folder: Path | None) -> set[str]:
    if folder is None or not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def left_behind(before: set[str], folder: Path | None) -> str:
    """What appeared under ``folder`` since ``before`` (the command's leftovers)."""
    new = sorted(files_under(folder) - before)
    if not new:
        return "nothing"
    shown = ", ".join(new[:_MAX_LEFT])
    return shown + (f", ... ({len(new)} entries)" if len(new) > _MAX_LEFT else "")


def read_doc() -> dict[str, str]:
    """Committed rows by case key."""
    if not DOC.is_file():
        return {}
    rows = {}
    for line in DOC.read_text().splitlines():
        m = _ROW.match(line)
        if m:
            rows[m.group("key")] = line
    return rows


def write_doc(rows: dict[str, str]) -> None:
    DOC.write_text(HEADER + "".join(rows[k] + "\n" for k in sorted(rows)))


class Recorder:
    """The rows one test produces; ``check`` compares them with the committed file."""

    def __init__(self, nodeid: str, description: str, tmp: Path | None,
                 base: Path | None = None) -> None:
        # without the "@group" that `--dist loadgroup` appends to grouped tests' node ids
        # (after any parameter id's "]", so an "@" inside one is kept)
        self.nodeid = re.sub(r"@[^\]@]+$", "", nodeid.split("tests/", 1)[-1])
        self.description = description
        self.tmp = tmp
        self.base = base
        self.rows: list[Row] = []

    def add(self, args: list[str], output: str, exit_code: int, before: set[str]) -> None:
        key = f"{self.nodeid}#{len(self.rows) + 1}"
        command = "synthtumor " + " ".join(normalise(a, self.tmp, self.base) for a in args)
        self.rows.append(Row(key, self.description, command,
                             normalise(error_line(output), self.tmp, self.base), exit_code,
                             normalise(left_behind(before, self.tmp), self.tmp, self.base)))

    def check(self) -> list[str]:
        """Rows that differ from docs/bad-inputs.md (rewritten instead when UPDATE)."""
        if UPDATE:  # pytest-xdist workers rewrite the file in turn, not over each other
            with open(DOC.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                return self._check()
        return self._check()

    def _check(self) -> list[str]:
        committed = read_doc()
        mine = {r.key: r.markdown() for r in self.rows}
        stale = [k for k in committed if k.rsplit("#", 1)[0] == self.nodeid and k not in mine]
        differ = [k for k, line in mine.items() if committed.get(k) != line] + stale
        if differ and UPDATE:
            for k in stale:
                committed.pop(k)
            committed.update(mine)
            write_doc(committed)
            return []
        return differ


_CURRENT: list[Recorder] = []


def record_process(args: list[str], stderr: str, returncode: int, before: set[str]) -> None:
    """Record a command run as a real process (``args`` after the program name)."""
    if returncode == 2 and _CURRENT:
        _CURRENT[-1].add([str(a) for a in args], stderr, returncode, before)


def snapshot() -> set[str]:
    """Files under the current test's temporary folder (call before a real process)."""
    return files_under(_CURRENT[-1].tmp) if _CURRENT else set()
