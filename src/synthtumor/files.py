"""Small file helpers shared by the commands: folders, atomic text/JSON writes, tolerant reads."""

from __future__ import annotations

import json
import os
import secrets
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
