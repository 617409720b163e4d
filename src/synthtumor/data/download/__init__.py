"""Download and unpack the public CT sets the method trains on, resumably and verified.

Only the standard library is used (``urllib.request``, ``tarfile``, ``zipfile``). A download goes
to ``<archive>.part`` and is renamed to ``<archive>`` only once its size (and sha256, when known)
checks out, so a half-finished file never carries the final name. An interrupted download is
resumed with an HTTP ``Range`` request on the next run. Extraction goes to a hidden temporary
folder renamed to ``<dest>/<name>/`` at the end, with a marker file recording what it came from,
so a later run skips work that is already complete.

The parts: ``registry`` (the datasets), ``fetch`` (HTTP, checks), ``archive`` (unpacking).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from synthtumor.data.download.archive import EXTRACTED_MARKER, extract_archive
from synthtumor.data.download.fetch import (
    CHUNK_BYTES,
    _check_digest,
    _check_nominal,
    _fetch,
    _hash_file,
    _verified_path,
)
from synthtumor.data.download.fetch import (
    _direct_link as _direct_link,  # re-exported for the tests of the link rewrite
)
from synthtumor.data.download.registry import (
    DATASETS,
    NOMINAL_SIZE_TOLERANCE,
    Dataset,
    DownloadResult,
    ProgressFn,
    WarnFn,
    dataset_names,
    normalise_sha256,
    resolve_dataset,
)
from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json

__all__ = [
    "CHUNK_BYTES", "DATASETS", "EXTRACTED_MARKER", "NOMINAL_SIZE_TOLERANCE", "Dataset",
    "DownloadResult", "ProgressFn", "WarnFn", "dataset_names", "download", "extract_archive",
    "normalise_sha256", "resolve_dataset",
]


# the whole job


def download(
    name_or_url: str,
    dest_dir: str | os.PathLike[str],
    *,
    url: str | None = None,
    sha256: str | None = None,
    extract: bool = True,
    archive: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    progress: ProgressFn | None = None,
    warn: WarnFn | None = None,
) -> DownloadResult:
    """Fetch (or take), verify and unpack one dataset archive into ``dest_dir``.

    Steps, each skipped when a previous run already completed it:
    1. download ``<dest>/<archive>`` through ``<archive>.part`` (resumed with ``Range``);
    2. verify its size against the server's Content-Length and its sha256 when given;
    3. extract it into ``<dest>/<name>/`` (tar, tar.gz/bz2/xz or zip), refusing members that
       would land outside that folder.

    Args:
        name_or_url: registry name (``btcv``, ``pancreas-ct``, ``chaos``, ``lits``) or a URL.
        dest_dir: folder receiving the archive and the extraction folder (created if needed).
        url: mirror URL for a registry dataset.
        sha256: expected hex digest of the archive (overrides the registry's).
        extract: unpack after downloading.
        archive: an already-downloaded archive to verify and extract instead of downloading
            (it is read in place, never moved or deleted).
        timeout: seconds to wait for the connection and for each read.
        progress: called as ``progress(phase, done_bytes, total_bytes_or_None)``.
        warn: called with each non-fatal warning as it arises (also returned).

    Returns:
        DownloadResult describing the archive and extraction folder.

    Raises:
        InputError: unreachable server (one line suggesting ``--archive``), HTTP error, size or
            checksum mismatch (the partial file is deleted), interrupted transfer (the partial
            file is kept for resuming), unsafe or corrupt archive, unwritable destination.
        ValueError: malformed URL or sha256.
    """
    ds = resolve_dataset(name_or_url, url=url, sha256=sha256)
    dest = Path(dest_dir)
    make_folder(dest)
    warnings: list[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    out_dir = dest / ds.name
    marker = read_json(out_dir / EXTRACTED_MARKER)

    if archive is not None:
        return _take_archive(ds, Path(archive), out_dir, marker, extract, progress, note,
                             warnings)

    final = dest / ds.archive
    if extract and marker is not None and _marker_matches(marker, None, ds.sha256):
        # already unpacked from a verified archive: no network needed
        return DownloadResult(
            ds, final, out_dir, int(marker["size_bytes"]), str(marker["sha256"]), False, 0, ()
        )

    size, digest, downloaded, resumed_from = _verified_or_fetched(ds, final, timeout,
                                                                  progress, note)

    extracted = None
    if extract:
        extracted = extract_archive(final, out_dir, progress=progress, info=_info(ds, digest))
    return DownloadResult(
        ds, final, extracted, size, digest, downloaded, resumed_from, tuple(warnings)
    )


def _take_archive(
    ds: Dataset, src: Path, out_dir: Path, marker: dict[str, Any] | None, extract: bool,
    progress: ProgressFn | None, note: WarnFn, warnings: list[str],
) -> DownloadResult:
    """Verify and unpack an archive the user already has (``--archive``), read in place."""
    if not src.is_file():
        raise InputError(src, "does not exist" if not src.exists() else "is not a file")
    size, digest = src.stat().st_size, _hash_file(src, progress)
    _check_digest(src, ds.sha256, digest, delete=None)
    _check_nominal(ds, size, note)
    extracted = None
    if extract:
        if _marker_matches(marker, size, digest):
            extracted = out_dir
        else:
            extracted = extract_archive(src, out_dir, progress=progress, info=_info(ds, digest))
    return DownloadResult(ds, src, extracted, size, digest, False, 0, tuple(warnings))


def _verified_or_fetched(
    ds: Dataset, final: Path, timeout: float, progress: ProgressFn | None, note: WarnFn,
) -> tuple[int, str, bool, int]:
    """``final`` as verified by an earlier run, else downloaded now: size (bytes), sha256,
    whether it was downloaded, and the byte offset a download resumed from."""
    record = read_json(_verified_path(final))
    if (
        final.is_file()
        and record is not None
        and record.get("size_bytes") == final.stat().st_size
        and (ds.sha256 is None or record.get("sha256") == ds.sha256)
    ):
        size, digest = int(record["size_bytes"]), str(record["sha256"])
        downloaded, resumed_from = False, 0
    else:
        size, digest, resumed_from = _fetch(ds, final, timeout, progress, note)
        downloaded = True
    return size, digest, downloaded, resumed_from


def _info(ds: Dataset, digest: str) -> dict[str, Any]:
    return {"dataset": ds.name, "archive": ds.archive, "url": ds.url, "sha256": digest}


def _marker_matches(marker: dict[str, Any] | None, size: int | None, sha256: str | None) -> bool:
    if marker is None or "sha256" not in marker or "size_bytes" not in marker:
        return False
    if size is not None and marker["size_bytes"] != size:
        return False
    return sha256 is None or marker["sha256"] == sha256
