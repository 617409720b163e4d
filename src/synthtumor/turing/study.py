"""A reader-study folder: its manifest, its case ids, a reader's case order, reader names.

Layout of a study folder (written by ``build_study``)::

    study.json            manifest: format tag, seed, view grid, case ids (sorted; random hex)
    key.json              the answer key and provenance; read by ``report`` only, never served
    slices/<id>/<k>.png   slice k of case <id>, 8-bit grey, identical layout for every case
    answers.sqlite        readers' answers (created by ``serve``)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthtumor.errors import InputError
from synthtumor.files import read_json
from synthtumor.turing.render import View

FORMAT = "synthtumor-turing-study"
FORMAT_VERSION = 1
MANIFEST = "study.json"
KEY = "key.json"
SLICES = "slices"
DATABASE = "answers.sqlite"
ANSWERS = ("real", "synthetic", "unsure")
MAX_NAME = 40
_CASE_ID = re.compile(r"^[0-9a-f]{16}$")
# letters and digits of any script, space, and a few punctuation marks found in names
_NAME_OK = re.compile(r"^[\w .'\-]+$")


@dataclass(frozen=True)
class Study:
    """A loaded study: its folder, seed, slice grid and case ids (sorted, so not by class)."""

    folder: Path
    seed: int
    view: View
    case_ids: tuple[str, ...]

    def slice_path(self, case_id: str, k: int) -> Path:
        """PNG of slice ``k`` of ``case_id``; callers must have validated both."""
        return self.folder / SLICES / case_id / f"{k:03d}.png"


def is_case_id(text: str) -> bool:
    """Whether ``text`` has the form of a case id (16 lowercase hex digits)."""
    return bool(_CASE_ID.match(text))


def load_study(folder: str | Path) -> Study:
    """Read and check a study folder's manifest.

    Raises:
        InputError: one line, if the folder is missing or is not a study built by
            ``synthtumor turing build`` (no or wrong ``study.json``, missing slices).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder" if folder.exists() else "does not exist")
    data = read_json(folder / MANIFEST)
    if data is None or data.get("format") != FORMAT:
        raise InputError(folder, f"is not a reader study (no valid {MANIFEST}); build one with "
                         "`synthtumor turing build`")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(folder / MANIFEST, f"has study format version "
                         f"{data.get('format_version')!r}; this synthtumor reads {FORMAT_VERSION}")
    try:
        v = data["view"]
        view = View(float(v["fov_mm"]), int(v["pixels"]), int(v["slices"]),
                    float(v["slice_mm"]), (float(v["window_hu"][0]), float(v["window_hu"][1])))
        ids = tuple(str(c) for c in data["cases"])
        seed = int(data["seed"])
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise InputError(folder / MANIFEST, f"is damaged ({err!r})") from None
    if not ids or not all(is_case_id(c) for c in ids) or len(set(ids)) != len(ids):
        raise InputError(folder / MANIFEST, "lists no cases or malformed case ids")
    study = Study(folder, seed, view, ids)
    missing = [c for c in ids if not study.slice_path(c, view.slices - 1).is_file()]
    if missing:
        raise InputError(folder / SLICES, f"lacks the slices of {len(missing)} case(s), e.g. "
                         f"{missing[0]}")
    return study


def clean_reader_name(name: object) -> str:
    """A reader name, normalised (NFC, trimmed, inner whitespace collapsed to one space).

    Raises:
        ValueError: not a string, empty, longer than ``MAX_NAME`` characters, holding
            characters other than letters, digits, space and ``. ' - _``, or no letter/digit.
    """
    if not isinstance(name, str):
        raise ValueError("the reader name must be text")
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if not text:
        raise ValueError("the reader name is empty")
    if len(text) > MAX_NAME:
        raise ValueError(f"the reader name is longer than {MAX_NAME} characters")
    if not _NAME_OK.match(text):
        raise ValueError("the reader name may hold only letters, digits, spaces and . ' - _")
    if not any(ch.isalnum() for ch in text):  # "." or ".." would also break URLs
        raise ValueError("the reader name needs a letter or a digit")
    return text


def reader_order(study: Study, reader: str) -> list[str]:
    """The case order shown to ``reader``: a permutation seeded by the study seed and the name.

    Deterministic, so a reader who comes back sees the same order; different per reader, so
    order effects average out over readers.
    """
    digest = hashlib.sha256(reader.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    rng = np.random.default_rng([study.seed, *words])
    return [study.case_ids[i] for i in rng.permutation(len(study.case_ids))]
