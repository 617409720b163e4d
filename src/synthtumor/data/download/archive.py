"""Unpacking an archive (tar, tar.gz/bz2/xz, zip) safely into a folder, atomically."""

from __future__ import annotations

import lzma
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from synthtumor.data.download.fetch import _brief, _hash_file
from synthtumor.data.download.registry import ProgressFn
from synthtumor.errors import InputError
from synthtumor.files import make_folder, write_json_atomic

EXTRACTED_MARKER = ".synthtumor-extracted.json"
# raised by tarfile's "data" extraction filter (Python >= 3.11.4)
_filter_error: type[Exception] | None = getattr(tarfile, "FilterError", None)



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
