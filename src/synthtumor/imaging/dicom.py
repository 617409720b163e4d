"""Reading a DICOM series folder through SimpleITK/GDCM, with the slice-spacing check ITK
lacks, and recognising a lone DICOM file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthtumor.errors import InputError
from synthtumor.imaging.decode import _finish, _from_sitk, _sitk_brief
from synthtumor.imaging.volume import Volume

# A DICOM series whose slice positions deviate from uniform by more than this fraction of the
# slice spacing (missing or duplicated slices) is rejected: ITK would silently use a mean
# spacing, misplacing slices in world space.
_MAX_SLICE_DEVIATION = 0.1


def _read_dicom_series(folder: Path, series_uid: str | None) -> Volume:
    # ITK prints "No Series were found" warnings to stderr itself: our one-line error says it
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError as err:
        raise InputError(folder, f"could not be scanned for DICOM ({_sitk_brief(err)})") from err
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    if not ids:
        raise InputError(
            folder, "is a folder holding no DICOM series (pass a DICOM folder or an image file)"
        )
    if series_uid is None:
        if len(ids) > 1:
            choices = ", ".join(
                f"{_uid_text(uid)} ({len(_series_files(folder, uid))} files)" for uid in ids
            )
            raise InputError(
                folder,
                f"holds {len(ids)} DICOM series; pass a folder with one series or choose one "
                f"with series_uid: {choices}",
            )
        series_uid = ids[0]
    elif series_uid not in ids:
        found = ", ".join(_uid_text(uid) for uid in ids)
        raise InputError(
            folder, f"has no DICOM series {_uid_text(series_uid)}; series found: {found}"
        )

    reader = sitk.ImageSeriesReader()
    # GDCMImageIO applies the rescale slope/intercept, so CT comes out in HU
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(_series_files(folder, series_uid))
    # per-slice headers, for the slice-position check below (no extra file reads)
    reader.SetMetaDataDictionaryArrayUpdate(True)
    try:
        img = reader.Execute()
    except RuntimeError as err:
        raise InputError(folder, f"DICOM series could not be read ({_sitk_brief(err)})") from err
    _check_slice_positions(reader, img, folder)
    arr, affine = _from_sitk(img, folder)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)  # non-integer rescale: float32 is enough
    return _finish(arr, affine, folder)


def _check_slice_positions(
    reader: sitk.ImageSeriesReader, img: sitk.Image, folder: Path
) -> None:
    """Reject missing/duplicate slices: ITK would stack them at one uniform spacing."""
    n = len(reader.GetFileNames())
    positions = []
    for i in range(n):
        if not reader.HasMetaDataKey(i, "0020|0032"):
            return  # no ImagePositionPatient (e.g. secondary capture): nothing to check
        try:
            positions.append([float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")])
        except ValueError:
            return
    if len(positions) < 3:
        return
    normal = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    steps = np.diff(np.asarray(positions) @ normal)
    mean_step = float(np.mean(steps))
    deviation = float(np.max(np.abs(steps - mean_step)))
    if deviation > _MAX_SLICE_DEVIATION * abs(mean_step) or mean_step == 0:
        raise InputError(
            folder,
            f"DICOM slices are unevenly spaced (steps {np.min(steps):.3g}..{np.max(steps):.3g} mm):"
            " missing or duplicate slices?",
        )


def _series_files(folder: Path, uid: str) -> list[str]:
    # GDCM sorts the files along the slice normal
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))


def _uid_text(uid: str) -> str:
    return repr(uid) if uid else "'' (no SeriesInstanceUID)"


def _is_dicom_file(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"

