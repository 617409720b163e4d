"""Small file helpers shared by the commands: folders, atomic text/JSON writes, tolerant reads,
and output folders built aside and moved into place whole."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and parents); InputError, one line, if that fails or it is read-only."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(folder, f"cannot be created: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK):
        raise InputError(folder, "is not writable")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` atomically (temporary sibling + rename); InputError on failure, leaving
    no temporary file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise InputError(path, f"cannot be written: {err.strerror or err}") from None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_output_folder(out: Path, overwrite: bool,
                        inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """InputError unless ``out`` is absent, an empty folder, or a folder ``overwrite`` allows
    replacing: one that holds none of the command's ``inputs`` (see ``check_not_inputs``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "exists and is not empty; pass --overwrite to replace it")
        check_not_inputs(out, inputs)


def check_not_inputs(out: Path, inputs: Iterable[str | os.PathLike[str] | None],
                     deleting: Iterable[Path] | None = None) -> None:
    """Refuse to replace ``out`` when that would delete or write into an input of the command.

    ``out`` may not be an input, hold one (at any depth) or lie inside an input folder (e.g. a
    DICOM series). With ``deleting`` only those paths are removed (not all of ``out``): then
    only an input that is one of them, or lies inside one, is refused. Symlinks are resolved.
    Every command with ``--overwrite`` calls this before it deletes anything.
    """
    out = Path(out)
    target = out.resolve()
    doomed = None if deleting is None else [Path(p).resolve() for p in deleting]
    for given in inputs:
        if given is None:
            continue
        path = Path(given).resolve()
        if doomed is not None:
            hit = any(path == d or d in path.parents for d in doomed)
        else:
            hit = path == target or target in path.parents
        if hit:
            raise InputError(out, f"holds the input {given}; --overwrite would delete it: "
                             "write to another folder")
        if doomed is None and path.is_dir() and path in target.parents:
            raise InputError(out, f"lies inside the input folder {given}; --overwrite would "
                             "write into it: write to another folder")


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Build a folder under a hidden temporary name beside ``out``; yield that path.

    When the block ends without error the folder is renamed to ``out`` (replacing an existing
    one, which is put back if the swap fails); on any error it is deleted, so a failure never
    leaves a partial output and never loses the previous one.
    """
    out = Path(out)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    except OSError as err:
        raise InputError(out, f"cannot be created: {err.strerror or err}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; outputs are meant to be shared
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.rmdir(old)
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json_file(path: Path, what: str) -> Any:
    """The parsed JSON in ``path``; InputError naming it when it is missing or not JSON
    (``what`` names the expected content, e.g. "datalist")."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(path, "does not exist") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"is not a readable JSON {what} ({err})") from None


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: empty for None, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
