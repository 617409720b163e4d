"""Fetching one archive over HTTP(S): resumable, size- and sha256-checked, atomic rename."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from synthtumor.data.download.registry import NOMINAL_SIZE_TOLERANCE, Dataset, ProgressFn, WarnFn
from synthtumor.errors import InputError
from synthtumor.files import read_json, write_json_atomic

CHUNK_BYTES = 1 << 20  # 1 MiB reads: few syscalls, smooth progress


def _verified_path(final: Path) -> Path:
    return final.with_name(final.name + ".verified.json")


def _fetch(
    ds: Dataset, final: Path, timeout: float, progress: ProgressFn | None, note: WarnFn
) -> tuple[int, str, int]:
    """Download ``ds.url`` to ``final`` via ``final.part``; returns (size, sha256, resumed)."""
    part = final.with_name(final.name + ".part")
    meta_path = final.with_name(final.name + ".part.json")
    meta = read_json(meta_path) or {}
    if part.exists() and meta.get("url") not in (None, ds.url):
        part.unlink()  # a partial file of another URL cannot be continued
    offset = part.stat().st_size if part.is_file() else 0

    hasher = hashlib.sha256()
    if offset:
        _hash_into(part, hasher, progress)  # resume: the kept bytes count towards the digest

    response = _open(ds.url, offset, meta, timeout)
    with response:
        status = response.status
        if offset and status == 206:
            start, total = _content_range(response.headers.get("Content-Range"), ds.url)
            if start != offset:
                raise InputError(ds.url, f"server resumed at byte {start}, not at {offset}")
            if total is not None and meta.get("total") not in (None, total):
                # the remote file changed size since the partial download: start over
                response.close()
                part.unlink()
                meta_path.unlink(missing_ok=True)
                return _fetch(ds, final, timeout, progress, note)
        else:
            if status != 200:
                raise InputError(ds.url, f"server answered HTTP {status}; expected 200")
            # no Range support (or a fresh start): begin again from the first byte
            offset, hasher = 0, hashlib.sha256()
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if "text/html" in (response.headers.get("Content-Type") or "").lower():
            raise InputError(
                ds.url,
                "served a web page, not an archive (link expired or behind a login?); "
                "download the archive by hand and pass it with --archive PATH",
            )
        if total is not None:
            _check_nominal(ds, total, note)
            _check_free_space(final.parent, total - offset)
        write_json_atomic(
            meta_path,
            {
                "url": ds.url,
                "total": total,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            },
        )
        resumed_from = offset
        done = _stream(response, part, offset, total, hasher, progress, ds.url)

    if total is not None and done < total:
        # the server closed early: keep the bytes, the next run asks for the rest
        raise InputError(
            ds.url,
            f"download interrupted at {done} of {total} bytes (connection closed early); run "
            "the same command again to resume",
        )
    if total is not None and done != total:
        part.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        raise InputError(
            ds.url,
            f"size mismatch: got {done} bytes, server announced {total}; the partial file was "
            "deleted",
        )
    digest = hasher.hexdigest()
    _check_digest(ds.url, ds.sha256, digest, delete=(part, meta_path))
    os.replace(part, final)
    meta_path.unlink(missing_ok=True)
    write_json_atomic(_verified_path(final), {"url": ds.url, "size_bytes": done, "sha256": digest})
    return done, digest, resumed_from


def _open(url: str, offset: int, meta: dict[str, Any], timeout: float) -> Any:
    """Send the GET (a Range request when resuming); network failures become InputError."""
    headers = {"User-Agent": "synthtumor-data/1", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        # If-Range: a changed file on the server comes back whole (200) instead of spliced
        etag = meta.get("etag")
        validator = etag if etag and not etag.startswith("W/") else meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        return urlopen(Request(_direct_link(url), headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and offset:
            # our partial file is not shorter than the remote one: start again from zero
            return _open(url, 0, {}, timeout)
        raise InputError(url, f"server answered HTTP {err.code} {err.reason}") from None
    except (OSError, HTTPException) as err:  # URLError and timeouts are OSErrors
        reason = err.reason if isinstance(err, URLError) else err
        raise InputError(
            None,
            f"cannot reach {urlsplit(url).netloc}: {_brief(reason)} (offline?) — download the "
            "archive by hand and pass it with --archive PATH",
        ) from None


def _direct_link(url: str) -> str:
    """Dropbox share links serve a preview page unless asked for the file itself (dl=1)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if (host == "dropbox.com" or host.endswith(".dropbox.com")) and "dl=" not in parts.query:
        query = f"{parts.query}&dl=1" if parts.query else "dl=1"
        return parts._replace(query=query).geturl()
    return url


def _content_range(value: str | None, url: str) -> tuple[int, int | None]:
    """Parse ``bytes START-END/TOTAL`` (TOTAL may be ``*``)."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if match is None:
        raise InputError(url, f"server sent an unusable Content-Range {value!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _stream(
    response: BinaryIO,
    part: Path,
    offset: int,
    total: int | None,
    hasher: Any,
    progress: ProgressFn | None,
    url: str,
) -> int:
    """Append the response body to ``part`` (truncated first when offset is 0).

    A network failure keeps ``part`` (the next run resumes from it); so does a failed write
    (e.g. a full disk), which is reported against the file instead of the server.
    """
    done = offset
    try:
        fh = part.open("ab" if offset else "wb")
    except OSError as err:
        raise InputError(part, f"cannot be written: {err.strerror or err}") from None
    with fh:
        if progress is not None:
            progress("download", done, total)
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, HTTPException) as err:
                of = f" of {total}" if total is not None else ""
                raise InputError(
                    url,
                    f"download interrupted at {done}{of} bytes ({_brief(err)}); run the same "
                    "command again to resume",
                ) from None
            if not chunk:
                break
            try:
                fh.write(chunk)
            except OSError as err:
                raise InputError(part, f"cannot be written: {err.strerror or err}") from None
            hasher.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress("download", done, total)
    return done


def _check_nominal(ds: Dataset, size: int, note: WarnFn) -> None:
    if ds.nominal_bytes <= 0:
        return
    off = abs(size - ds.nominal_bytes) / ds.nominal_bytes
    if off > NOMINAL_SIZE_TOLERANCE:
        note(
            f"{ds.archive}: size {size / 1e9:.2f} GB differs from the published "
            f"{ds.nominal_bytes / 1e9:.2f} GB by {off:.0%}; check the source"
        )


def _check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise InputError(
            folder, f"needs {needed / 1e9:.2f} GB free for the download, has {free / 1e9:.2f} GB"
        )


def _check_digest(
    where: str | Path, expected: str | None, actual: str, delete: tuple[Path, ...] | None
) -> None:
    if expected is None or expected == actual:
        return
    tail = ""
    if delete:
        for p in delete:
            p.unlink(missing_ok=True)
        tail = "; the downloaded file was deleted"
    raise InputError(where, f"sha256 mismatch: expected {expected}, got {actual}{tail}")


def _hash_file(path: Path, progress: ProgressFn | None) -> str:
    hasher = hashlib.sha256()
    _hash_into(path, hasher, progress)
    return hasher.hexdigest()


def _hash_into(path: Path, hasher: Any, progress: ProgressFn | None) -> None:
    total = path.stat().st_size
    done = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                hasher.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress("verify", done, total)
    except OSError as err:
        raise InputError(path, f"cannot be read: {err.strerror or err}") from None


def _brief(err: object) -> str:
    text = " ".join(str(err).split())
    return text[:200] if text else type(err).__name__
