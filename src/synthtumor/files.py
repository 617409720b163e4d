"""Small file helpers shared by the commands: folders, atomic text/JSON writes, tolerant reads,
and output folders built aside and moved into place whole."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24]
_IN_PLACE = "synthtumor"  # name of the staging folder inside an empty output folder


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and parents); InputError, one line, if that fails or it is read-only."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(folder, f"cannot be created: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK):
        raise InputError(folder, "is not writable")


@contextmanager
def replaced_atomically(path: Path, name: str | None = None,
                        suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` (``staging_path`` of ``name``, default
    ``path``'s name, ending in ``suffix``) to write; when the block ends without error it
    replaces ``path`` in one rename. On any error, or a signal, the temporary file is removed
    and ``path`` is untouched; an OSError becomes an InputError naming ``path``."""
    path = Path(path)
    tmp = staging_path(path.parent, path.name if name is None else name, suffix)
    try:
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as err:
            raise InputError(path, f"cannot be written: {err.strerror or err}") from None
    except BaseException:
        with suppress(OSError):  # absent, or its folder is not one: nothing to remove
            tmp.unlink()  # ours: the name holds this host, process and a token
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` atomically (``replaced_atomically``); InputError on failure, leaving no
    temporary file."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)


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
    if out.is_dir() and not _is_empty_folder(out):
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


def staging_prefix(name: str) -> str:
    """Prefix of a temporary file or folder standing in for ``name`` while it is written:
    ``.{name}.{host}-{pid}.``. The host and process make a leftover recognisable as stale
    (see ``remove_stale``) once that process is gone."""
    return f".{name}.{_HOST}-{os.getpid()}."


def remove_stale(folder: Path, name: str | None) -> list[Path]:
    """Delete leftovers of ``staging_prefix(name)`` in ``folder`` written by a process of this
    host that no longer runs (killed mid-write); returns what was removed. ``name`` None:
    leftovers standing in for any name.

    Only entries of exactly that form (``.{name}.{host}-{pid}.{random}.tmp|.old``, optionally
    followed by a file ending) are touched: never another program's files, nor those of a run
    still going, nor those of another host sharing the folder.
    """
    stem = ".+" if name is None else re.escape(name)
    pattern = re.compile(rf"^\.{stem}\.(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)\."
                         r"[A-Za-z0-9_]+\.(tmp|old)(\.[A-Za-z0-9.]+)?$")
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _is_empty_folder(out: Path) -> bool:
    remove_stale(out, _IN_PLACE)
    return not any(out.iterdir())


def staging_path(folder: Path, name: str, suffix: str = ".tmp") -> Path:
    """A fresh path in ``folder`` standing in for ``name`` while it is written:
    ``staging_prefix(name)`` + a random token + ``suffix``.

    Callers create it *inside* the ``try`` that removes it: a name chosen first is known to the
    cleanup however early a signal lands (``tempfile.mkdtemp`` would only name its folder after
    creating it). The host, process and token make a clash with anything but a stale leftover
    of this very process id impossible."""
    return Path(folder) / f"{staging_prefix(name)}{secrets.token_hex(4)}{suffix}"


@contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT, SIGTERM and SIGHUP until the block ends.

    For the few renames that swap an output into place: stopped half-way they would leave the
    previous output under a temporary name. A signal that arrives meanwhile is recorded and
    raised again, to its usual handler, when the block ends. Python-level handlers (not a
    signal mask, which only covers the calling thread: any other thread would take the
    signal); outside the main thread, where no Python handler runs, a no-op. An ignored signal
    stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None or signal.getsignal(sig) in (signal.SIG_IGN, None):
            continue
        previous[sig] = signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Build a folder under a hidden temporary name; yield that path.

    When the block ends without error the folder becomes ``out`` whole: renamed to ``out``
    (replacing an existing one, which is put back if the swap fails). An existing *empty*
    ``out`` is kept and filled in place instead (it may be a mount point or the current folder,
    which cannot be renamed): the staged entries are moved into it. On any error, or a signal,
    the staged folder is deleted, so a failure never leaves a partial output and never loses
    the previous one. Stale staging folders of killed runs for the same ``out`` are removed.
    """
    out = Path(out)
    target = Path(os.path.abspath(out))  # "." -> the current folder's own path
    in_place = target.is_dir() and _is_empty_folder(target)
    home, name = (target, _IN_PLACE) if in_place else (target.parent, target.name)
    tmp = staging_path(home, name)
    try:
        try:
            home.mkdir(parents=True, exist_ok=True)
            remove_stale(home, name)
            tmp.mkdir(mode=0o700)  # private while partial
        except OSError as err:
            raise InputError(out, f"cannot be created: {err.strerror or err}") from None
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with signals_held():
        if in_place:
            _move_entries(tmp, target)
        else:
            _swap_into_place(out, tmp, target, home, name)


def _move_entries(tmp: Path, target: Path) -> None:
    """Move ``tmp``'s entries into the empty folder ``target``; on failure ``target`` is left
    empty again and ``tmp`` is removed."""
    moved: list[Path] = []
    try:
        for entry in sorted(tmp.iterdir()):
            os.rename(entry, target / entry.name)
            moved.append(target / entry.name)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for entry in moved:  # ours, moved in before the failure
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        raise


def _swap_into_place(out: Path, tmp: Path, target: Path, home: Path, name: str) -> None:
    """Rename ``tmp`` to ``target``, replacing an existing ``target`` (put back if the swap
    fails); ``tmp`` is removed on failure."""
    try:
        os.chmod(tmp, 0o755)  # outputs are meant to be shared
        if not target.exists():
            tmp.rename(target)
            return
        old = staging_path(home, name, ".old")
        try:
            target.rename(old)
        except OSError as err:  # a mount point or the current folder: cannot be moved
            raise InputError(out, f"cannot be replaced ({err.strerror or err}); empty it "
                             "first (it is then written in place) or write elsewhere") from None
        try:
            tmp.rename(target)
        except OSError:
            old.rename(target)
            raise
        shutil.rmtree(old, ignore_errors=True)
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
