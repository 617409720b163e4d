"""The registry of public CT sets the method trains on, and what a download returns.

Also resolves a command-line name or URL to a :class:`Dataset`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from synthtumor.errors import InputError

# Progress callback: (phase, bytes done, bytes total or None). Phases: "verify" (hashing a
# partial download before resuming it), "download", "extract" (archive bytes consumed).
ProgressFn = Callable[[str, int, int | None], None]
WarnFn = Callable[[str], None]

NOMINAL_SIZE_TOLERANCE = 0.02  # registry sizes are rounded ("1.53 GB"): only warn beyond 2 %
EXTRACTED_MARKER = ".synthtumor-extracted.json"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
@dataclass(frozen=True)
class Dataset:
    """One downloadable public CT set.

    Attributes:
        name: short id used on the command line and as the extraction folder name.
        title: human-readable name of the collection.
        archive: file name the archive is saved under.
        url: where the archive is fetched from.
        nominal_bytes: approximate archive size in bytes (as published, rounded); a server size
            more than 2 % off only triggers a warning.
        sha256: expected hex digest of the archive, or None when unknown (then only the size
            the server announces is checked).
        liver_preset: the ``synthtumor data labels`` preset for its label maps.
    """

    name: str
    title: str
    archive: str
    url: str
    nominal_bytes: int
    sha256: str | None = None
    liver_preset: str | None = None


# The four sets the reference trains on, with the archive addresses and sizes it publishes.
# Sizes are in decimal units as published; no checksums are published.
DATASETS: tuple[Dataset, ...] = (
    Dataset(
        name="btcv",
        title="Multi-Atlas Labeling Beyond the Cranial Vault (BTCV)",
        archive="01_Multi-Atlas_Labeling.tar.gz",
        url="https://www.dropbox.com/s/jnv74utwh99ikus/01_Multi-Atlas_Labeling.tar.gz",
        nominal_bytes=1_530_000_000,
        liver_preset="btcv",
    ),
    Dataset(
        name="pancreas-ct",
        title="Pancreas-CT (TCIA)",
        archive="02_TCIA_Pancreas-CT.tar.gz",
        url="https://www.dropbox.com/s/5yzdzb7el9r3o9i/02_TCIA_Pancreas-CT.tar.gz",
        nominal_bytes=7_510_000_000,
        liver_preset="pancreas-ct",
    ),
    Dataset(
        name="chaos",
        title="Combined Healthy Abdominal Organ Segmentation (CHAOS)",
        archive="03_CHAOS.tar.gz",
        url="https://www.dropbox.com/s/lzrhirei2t2vuwg/03_CHAOS.tar.gz",
        nominal_bytes=925_300_000,
        liver_preset="chaos",
    ),
    Dataset(
        name="lits",
        title="Liver Tumor Segmentation Challenge (LiTS)",
        archive="04_LiTS.tar.gz",
        url="https://www.dropbox.com/s/2i19kuw7qewzo6q/04_LiTS.tar.gz",
        nominal_bytes=17_420_000_000,
        liver_preset="lits",
    ),
)


@dataclass(frozen=True)
class DownloadResult:
    """What ``download`` did.

    Attributes:
        dataset: the dataset entry used (with any URL/sha256 overrides applied).
        archive: path of the verified archive (the ``--archive`` file when one was given).
        extracted: the extraction folder, or None with ``extract=False``.
        size_bytes: archive size in bytes.
        sha256: hex digest of the archive.
        downloaded: False when nothing was fetched (already complete, or ``--archive``).
        resumed_from: bytes of an earlier partial download that were kept (0: fresh start).
        warnings: non-fatal notes (e.g. a size far from the nominal one).
    """

    dataset: Dataset
    archive: Path
    extracted: Path | None
    size_bytes: int
    sha256: str
    downloaded: bool
    resumed_from: int
    warnings: tuple[str, ...] = ()





def dataset_names() -> tuple[str, ...]:
    """Short names of the registered datasets, in registry order."""
    return tuple(d.name for d in DATASETS)


def resolve_dataset(
    name_or_url: str, *, url: str | None = None, sha256: str | None = None
) -> Dataset:
    """Look up a registered dataset by name, or describe an ad-hoc archive URL.

    Args:
        name_or_url: a registry name (case-insensitive, e.g. ``btcv``) or an http(s) URL whose
            last path component is the archive file name.
        url: mirror URL replacing the registry's address (the saved file name is kept).
        sha256: expected hex digest replacing the registry's (None keeps it).

    Returns:
        The dataset entry with overrides applied.

    Raises:
        InputError: unknown name, or a URL that names no archive file.
        ValueError: malformed URL or sha256.
    """
    key = name_or_url.strip().lower()
    found = next((d for d in DATASETS if key in (d.name, d.archive.lower())), None)
    if found is None:
        if "://" not in name_or_url:
            raise InputError(
                None,
                f"unknown dataset {name_or_url!r}; choose one of {', '.join(dataset_names())} "
                "or pass an http(s) URL",
            )
        found = _adhoc_dataset(name_or_url)
    if url is not None:
        _check_url(url)
        found = replace(found, url=url)
    if sha256 is not None:
        found = replace(found, sha256=normalise_sha256(sha256))
    return found


def normalise_sha256(value: str) -> str:
    """Lower-case a hex sha256 digest; ValueError unless it is 64 hex digits."""
    digest = value.strip().lower()
    if not _SHA256_RE.match(digest):
        raise ValueError(f"--sha256 must be 64 hexadecimal digits, got {value!r}")
    return digest


def _adhoc_dataset(url: str) -> Dataset:
    _check_url(url)
    file_name = unquote(PurePosixPath(urlsplit(url).path).name)
    name = _strip_archive_suffix(file_name)
    if not file_name or name == file_name or not name:
        raise InputError(
            url, "names no archive file (expected a path ending in .tar.gz, .tgz, .tar or .zip)"
        )
    return Dataset(name=name, title=file_name, archive=file_name, url=url, nominal_bytes=0)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")


def _strip_archive_suffix(file_name: str) -> str:
    lower = file_name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return file_name[: -len(suffix)]
    return file_name
