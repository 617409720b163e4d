"""Download and unpack the public CT sets the method trains on, resumably and verified.

Only the standard library is used (``urllib.request``, ``tarfile``, ``zipfile``). A download goes
to ``<archive>.part`` and is renamed to ``<archive>`` only once its size (and sha256, when known)
checks out, so a half-finished file never carries the final name. An interrupted download is
resumed with an HTTP ``Range`` request on the next run. Extraction goes to a hidden temporary
folder renamed to ``<dest>/<name>/`` at the end, with a marker file recording what it came from,
so a later run skips work that is already complete.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.client import HTTPException
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit
from urllib.request import Request, urlopen

from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json, write_json_atomic

# Progress callback: (phase, bytes done, bytes total or None). Phases: "verify" (hashing a
# partial download before resuming it), "download", "extract" (archive bytes consumed).
ProgressFn = Callable[[str, int, int | None], None]
WarnFn = Callable[[str], None]

CHUNK_BYTES = 1 << 20  # 1 MiB reads: few syscalls, smooth progress
NOMINAL_SIZE_TOLERANCE = 0.02  # registry sizes are rounded ("1.53 GB"): only warn beyond 2 %
EXTRACTED_MARKER = ".synthtumor-extracted.json"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# raised by tarfile's "data" extraction filter (Python >= 3.11.4)
_filter_error: type[Exception] | None = getattr(tarfile, "FilterError", None)


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


# --------------------------------------------------------------------------------------------
# registry


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


# --------------------------------------------------------------------------------------------
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
        src = Path(archive)
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

    final = dest / ds.archive
    if extract and _marker_matches(marker, None, ds.sha256):
        # already unpacked from a verified archive: no network needed
        return DownloadResult(
            ds, final, out_dir, int(marker["size_bytes"]), str(marker["sha256"]), False, 0, ()
        )

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

    extracted = None
    if extract:
        extracted = extract_archive(final, out_dir, progress=progress, info=_info(ds, digest))
    return DownloadResult(
        ds, final, extracted, size, digest, downloaded, resumed_from, tuple(warnings)
    )


def _info(ds: Dataset, digest: str) -> dict[str, Any]:
    return {"dataset": ds.name, "archive": ds.archive, "url": ds.url, "sha256": digest}


def _marker_matches(marker: dict[str, Any] | None, size: int | None, sha256: str | None) -> bool:
    if marker is None or "sha256" not in marker or "size_bytes" not in marker:
        return False
    if size is not None and marker["size_bytes"] != size:
        return False
    return sha256 is None or marker["sha256"] == sha256


# --------------------------------------------------------------------------------------------
# downloading


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


# --------------------------------------------------------------------------------------------
# extracting


def extract_archive(
    archive: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Unpack a tar (optionally gz/bz2/xz compressed) or zip archive into ``out_dir``, safely.

    The archive type is detected from its content, not its name. Members go into a hidden
    temporary sibling folder that is renamed to ``out_dir`` only when everything was
    extracted; a marker file (``.synthtumor-extracted.json``: size, sha256, member count and
    ``info``) is written inside it first. An ``out_dir`` left by an earlier run of this
    function (it holds the marker) is replaced; any other existing ``out_dir`` is refused.

    Refused, with nothing left behind: members with absolute paths, ``..`` components, or
    links pointing outside the folder; device files and FIFOs.

    Args:
        archive: the archive file.
        out_dir: destination folder (must not exist, or be an earlier extraction).
        progress: called as ``progress("extract", archive_bytes_read, archive_bytes)``.
        info: extra fields for the marker file (e.g. dataset name, URL, sha256).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        InputError: not an archive, corrupt/truncated archive, unsafe member, existing foreign
            ``out_dir``, unwritable destination.
    """
    src = Path(archive)
    out = Path(out_dir)
    if out.exists() and not (out / EXTRACTED_MARKER).is_file():
        raise InputError(
            out, "already exists and was not made by this command; move it away or choose another"
        )
    make_folder(out.parent)
    _remove_stale_temporaries(out)
    size = src.stat().st_size
    tmp = out.with_name(f".{out.name}.extracting-{secrets.token_hex(4)}")
    try:
        tmp.mkdir()
    except OSError as err:
        raise InputError(out.parent, f"cannot be written: {err.strerror or err}") from None
    try:
        if zipfile.is_zipfile(src):
            count = _extract_zip(src, tmp, size, progress)
        else:
            count = _extract_tar(src, tmp, size, progress)
        marker = dict(info or {})
        if "sha256" not in marker:
            marker["sha256"] = _hash_file(src, None)
        marker.update({"archive_path": str(src.resolve()), "size_bytes": size, "members": count})
        write_json_atomic(tmp / EXTRACTED_MARKER, marker)
        old = None
        if out.exists():  # an earlier extraction (has our marker): swap, then delete
            old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, InputError):
            raise
        if isinstance(err, OSError) and err.errno is not None:
            # a file-system failure (disk full, permissions), not a damaged archive
            raise InputError(out, f"cannot extract {src.name}: {err.strerror or err}") from None
        if _filter_error is not None and isinstance(err, _filter_error):
            raise InputError(src, f"has an unsafe member, refused ({_brief(err)})") from None
        # gzip/bz2/lzma/zlib signal damage with OSError (errno None), EOFError or own types
        if isinstance(err, (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error,
                            lzma.LZMAError, ValueError)):
            raise InputError(src, f"is truncated or corrupt ({_brief(err)})") from None
        raise
    return out


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary folders a killed earlier extraction into ``out`` left behind."""
    for pattern in (f".{out.name}.extracting-*", f".{out.name}.old-*"):
        for stale in out.parent.glob(pattern):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


def _unsafe_name(name: str) -> str | None:
    """Why an archive member path would escape the extraction folder, or None if safe."""
    if not name:
        return "has an empty name"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("\\"):
        return "has an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "has '..' in its path (path traversal)"
    return None


def _extract_tar(src: Path, dest: Path, size: int, progress: ProgressFn | None) -> int:
    count = 0
    with src.open("rb") as raw:
        try:
            tar = tarfile.open(fileobj=raw, mode="r:*")
        except tarfile.ReadError:
            raise InputError(src, "is not a tar or zip archive") from None
        with tar:
            # one pass, member by member: a 17 GB tar.gz is decompressed only once
            for member in tar:
                problem = _unsafe_name(member.name)
                if problem is None and (member.issym() or member.islnk()):
                    target = member.linkname
                    if member.issym():
                        target = str(PurePosixPath(member.name).parent / target)
                    if _unsafe_name(target) is not None or _escapes(target):
                        problem = f"is a link pointing outside the folder ({member.linkname})"
                if problem is None and (member.ischr() or member.isblk() or member.isfifo()):
                    problem = "is a device file or FIFO"
                if problem is not None:
                    raise InputError(src, f"member {member.name!r} {problem}; refused")
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, dest, filter="data")  # also drops setuid bits etc.
                else:  # pragma: no cover - Python < 3.11.4: our own checks above suffice
                    tar.extract(member, dest)
                count += 1
                if progress is not None:
                    progress("extract", raw.tell(), size)
    return count


def _escapes(relative: str) -> bool:
    """Does a relative path climb above its root once normalised?"""
    depth = 0
    for part in PurePosixPath(relative).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part != ".":
            depth += 1
    return False


def _extract_zip(src: Path, dest: Path, size: int, progress: ProgressFn | None) -> int:
    with zipfile.ZipFile(src) as zf:
        members = zf.infolist()
        for m in members:  # the central directory lists everything: check all first
            problem = _unsafe_name(m.filename)
            if problem is None and stat.S_ISLNK(m.external_attr >> 16):
                problem = "is a symbolic link"
            if problem is not None:
                raise InputError(src, f"member {m.filename!r} {problem}; refused")
        done = 0
        for m in members:
            zf.extract(m, dest)
            done += m.compress_size
            if progress is not None:
                progress("extract", min(done, size), size)
    return len(members)


# --------------------------------------------------------------------------------------------
# small helpers


def _brief(err: object) -> str:
    text = " ".join(str(err).split())
    return text[:200] if text else type(err).__name__
