"""Reading CT images and masks (NIfTI, NRRD, MetaImage, DICOM series) and writing NIfTI.

Every array is returned in (x, y, z) = (i, j, k) index order with a 4x4 affine mapping voxel
indices to world RAS+ mm, whatever the file format. Every bad-input failure raises
``InputError`` with a one-line message naming the file. DICOM series reading is in
``imaging.dicom``, masks and label maps in ``imaging.labels`` (re-exported here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.openers import ImageOpener

from synthtumor.errors import InputError
from synthtumor.files import replaced_atomically
from synthtumor.imaging.decode import _finish, _from_sitk, _sitk_brief
from synthtumor.imaging.dicom import _is_dicom_file, _read_dicom_series
from synthtumor.imaging.volume import Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# reading


def read_image(path: PathLike, *, series_uid: str | None = None) -> Volume:
    """Read a 3D image from a file or a DICOM series folder.

    Accepted: NIfTI (.nii, .nii.gz) via nibabel; NRRD (.nrrd, .nhdr) and MetaImage (.mha,
    .mhd) via SimpleITK; a folder holding one DICOM series (non-DICOM files in it are
    ignored) via SimpleITK/GDCM, with the rescale slope/intercept applied (CT in HU).

    Values keep their stored dtype (integer labels stay integer); data that the file scales
    (NIfTI scl_slope/scl_inter, DICOM rescale giving non-integer values) comes back float32.
    A singleton 4th dimension is dropped.

    Args:
        path: image file or DICOM folder.
        series_uid: for a folder holding several DICOM series, the SeriesInstanceUID to read.

    Returns:
        Volume with array in (x, y, z) order and a voxel -> RAS mm affine.

    Raises:
        InputError: missing path, unsupported type, corrupt/truncated file, not 3D, no or
            several DICOM series.
    """
    p = Path(path)
    if p.is_dir():
        return _read_dicom_series(p, series_uid)
    if not p.exists():
        raise InputError(p, "does not exist")
    if series_uid is not None:
        raise InputError(p, "series_uid applies only to a DICOM series folder")
    name = p.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return _read_nifti(p)
    if name.endswith(ITK_SUFFIXES):
        return _read_itk_file(p)
    if name.endswith((".dcm", ".ima")) or _is_dicom_file(p):
        raise InputError(p, "is a single DICOM file; pass the folder holding the whole series")
    raise InputError(
        p,
        f"unsupported file type {p.suffix!r}; expected .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd "
        "or a DICOM series folder",
    )


def looks_like_hu(array: np.ndarray) -> bool:
    """Heuristic: could these CT values be Hounsfield units?

    Any CT field of view holds air (about -1000 HU, inside bowel, lungs or around the body) or
    at least fat (about -100 HU). Raw stored scanner values are unsigned (typically 0..4095),
    with air near 0 and bone well above 1500, and become HU only after the rescale
    slope/intercept. So an image with no voxel below -200 but a maximum above 1500 is taken as
    raw scanner values, not HU. An image that fails neither test (e.g. a tight crop with no
    air and no bone) is accepted.

    Args:
        array: CT values, any shape, finite.

    Returns:
        False for the raw-scanner-value pattern, True otherwise (including empty arrays).
    """
    if array.size == 0:
        return True
    return not (float(np.min(array)) >= -200.0 and float(np.max(array)) > 1500.0)


def read_ct(path: PathLike, *, series_uid: str | None = None) -> Volume:
    """Read a CT image as float32 Hounsfield units and check it.

    Args:
        path: image file or DICOM series folder (see ``read_image``).
        series_uid: SeriesInstanceUID to pick in a folder holding several series.

    Returns:
        Volume with a float32 (x, y, z) array in HU.

    Raises:
        InputError: any ``read_image`` problem, NaN/inf voxels, or values that do not look
            like HU (see ``looks_like_hu``).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from synthtumor.imaging import write_nifti
    >>> hu = np.full((8, 6, 4), -1000, dtype=np.int16); hu[2:6, 1:5, 1:3] = 60
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "ct.nii.gz"
    ...     write_nifti(path, hu, np.diag([-0.75, -0.75, 2.5, 1.0]), kind="ct")
    ...     vol = read_ct(path)
    >>> vol.array.dtype, vol.shape, vol.spacing, vol.axis_codes()
    (dtype('float32'), (8, 6, 4), (0.75, 0.75, 2.5), ('L', 'P', 'S'))
    >>> float(vol.array.max())
    60.0
    """
    vol = read_image(path, series_uid=series_uid)
    arr = vol.array
    if arr.dtype.kind == "f":
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise InputError(vol.path, f"contains {n_bad} NaN/inf voxels")
    elif arr.dtype.kind not in "iub":
        raise InputError(vol.path, f"has {arr.dtype} voxels; a CT needs real numbers")
    if not looks_like_hu(arr):
        lo, hi = float(np.min(arr)), float(np.max(arr))
        raise InputError(
            vol.path,
            f"values {lo:g}..{hi:g} do not look like Hounsfield units (no air below -200 HU); "
            "apply the rescale slope/intercept",
        )
    return Volume(arr.astype(np.float32, copy=False), vol.affine, vol.path,
                  stored_dtype=arr.dtype)


def ct_values_to_store(values: np.ndarray, source: Volume) -> np.ndarray:
    """CT values (HU) computed from ``source``, in the type to write them back.

    Integer HU in, integer HU out: when ``source`` holds whole numbers the values are rounded
    into the file's own integer type if it holds their range, else into the smallest wider
    signed type that does (never wrapping: 40000 HU in an int32 CT stays 40000). Other values
    stay float32.
    """
    if not np.array_equal(source.array, np.rint(source.array)):
        return np.asarray(values, dtype=np.float32)
    rounded: np.ndarray = np.rint(values)
    lo, hi = (float(rounded.min()), float(rounded.max())) if rounded.size else (0.0, 0.0)
    stored = source.stored_dtype
    candidates = [stored] if stored is not None and stored.kind in "iu" else []
    for dtype in candidates + [np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64)]:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return rounded.astype(dtype)
    return np.asarray(values, dtype=np.float32)



# --------------------------------------------------------------------------------------------
# writing


def write_nifti(
    path: PathLike,
    array: np.ndarray,
    affine: np.ndarray,
    *,
    kind: Literal["ct", "label"],
) -> None:
    """Write a 3D array as NIfTI-1, atomically.

    Data types: ``kind='label'`` is written uint8 (values must be integers in 0..255).
    ``kind='ct'`` is written int16 when the array has an integer dtype whose values fit int16
    (lossless, half the size), else in its own integer type (never wrapped, never float), and
    float32 for real values; no scl_slope scaling is used.

    The qform and sform are both set to ``affine`` with code 1 (scanner), units mm, so 3D
    Slicer, ITK-SNAP and nibabel place the image identically. The file is written to a hidden
    temporary file in the same folder and renamed over ``path``, so a failed write leaves
    neither a partial output nor a temporary file. The parent folder must already exist.

    Args:
        path: output file, ending in .nii.gz (compressed) or .nii.
        array: values in (x, y, z) order.
        affine: 4x4 voxel index -> RAS mm matrix.
        kind: 'ct' or 'label'.

    Raises:
        InputError: bad output name, or the folder/file cannot be written.
        ValueError: array or affine unusable (not 3D, label values out of range, complex...).
    """
    p = Path(path)
    suffix = next((s for s in NIFTI_SUFFIXES if p.name.lower().endswith(s)), None)
    if suffix is None:
        raise InputError(p, "output file name must end with .nii.gz or .nii")
    data = _nifti_data(np.asarray(array), kind)
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError("affine must be a finite 4x4 matrix")

    img = nib.Nifti1Image(data, aff)
    header = img.header
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units("mm", "sec")
    if kind == "label":
        header.set_intent("label")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)

    # the temporary name keeps the .nii/.nii.gz ending: nibabel picks compression from it
    with replaced_atomically(p, p.name[: -len(suffix)], f".tmp{suffix}") as tmp:
        try:
            # O_EXCL: never clobber another file; mode 0o666 lets the umask decide access
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as err:
            raise InputError(p, f"cannot write into folder {p.parent}: {err.strerror}") from err
        nib.save(img, str(tmp))


# --------------------------------------------------------------------------------------------
# helpers: reading


def _check_nifti_spacing(p: Path) -> None:
    """Refuse a NIfTI whose geometry comes from pixdim (no sform) with a zero or non-finite
    voxel size: nibabel would silently take 1 mm. Read from the raw header, before nibabel
    'fixes' it."""
    try:
        with ImageOpener(str(p)) as fh:
            size = int.from_bytes(fh.read(4), "little")
            fh.seek(0)
            header_class = nib.Nifti2Header if size in (540, 0x1C020000) else nib.Nifti1Header
            header = header_class.from_fileobj(fh, check=False)
        sform, zooms = int(header["sform_code"]), np.asarray(header["pixdim"][1:4], float)
    except Exception:  # unreadable: the full read below names the damage
        return
    if sform == 0 and not (np.all(np.isfinite(zooms)) and np.all(zooms != 0)):
        raise InputError(p, f"has voxel size {zooms.tolist()} mm in its header (pixdim) and no "
                         "sform: zero or non-finite spacing; fix the header")


def _read_nifti(p: Path) -> Volume:
    _check_nifti_spacing(p)
    try:
        # mmap=False: read everything now, so truncation shows up here and no file stays mapped
        img: Any = nib.load(str(p), mmap=False)  # a Nifti1/2Image (nibabel types it loosely)
        stored = np.dtype(img.get_data_dtype())
        # nibabel only decompresses (and discovers truncation) when the data is read
        arr = np.asanyarray(img.dataobj)
        affine = np.array(img.affine, dtype=np.float64)
    except PermissionError as err:
        raise InputError(p, "cannot be read (permission denied)") from err
    except Exception as err:  # nibabel/gzip/zlib raise many types for damaged files
        raise InputError(p, f"is truncated or corrupt ({_brief(err)})") from err
    if arr.dtype != stored and arr.dtype.kind == "f":
        arr = arr.astype(np.float32)  # scl_slope/scl_inter were applied: CT-like float data
    return _finish(arr, affine, p)


def _read_itk_file(p: Path) -> Volume:
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as err:
        raise InputError(p, f"is truncated or corrupt ({_sitk_brief(err)})") from err
    arr, affine = _from_sitk(img, p)
    return _finish(arr, affine, p)



def _brief(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}"[:200] if first else type(err).__name__



# --------------------------------------------------------------------------------------------
# helpers: writing


def _nifti_data(arr: np.ndarray, kind: str) -> np.ndarray:
    if arr.ndim != 3:
        raise ValueError(f"expected a 3D (x, y, z) array, got shape {arr.shape}")
    if kind == "label":
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"cannot write {arr.dtype} values as labels")
        if arr.size and (
            np.min(arr) < 0 or np.max(arr) > 255 or (arr.dtype.kind == "f"
                                                    and not np.all(arr == np.rint(arr)))
        ):
            raise ValueError("label values must be integers in 0..255 to be written as uint8")
        return arr.astype(np.uint8, copy=False)
    if kind == "ct":
        if arr.dtype.kind in "biu":
            info = np.iinfo(np.int16)
            if arr.size == 0 or (info.min <= np.min(arr) and np.max(arr) <= info.max):
                return arr.astype(np.int16, copy=False)
            if arr.dtype.itemsize > 8 or arr.dtype == np.uint64:
                return arr.astype(np.float64)  # beyond NIfTI's integers: exact to 2**53
            return arr  # int32, uint16, uint32, int64: NIfTI stores them as they are
        if arr.dtype.kind == "f":
            return arr.astype(np.float32, copy=False)
        raise ValueError(f"cannot write {arr.dtype} values as CT")
    raise ValueError(f"kind must be 'ct' or 'label', got {kind!r}")


# Label reading lives in its own module; it needs read_image above, hence the late import.
from synthtumor.imaging.labels import (  # noqa: E402
    read_case_labels,
    read_labels,
    read_mask,
)

__all__ = [
    "ITK_SUFFIXES",
    "NIFTI_SUFFIXES",
    "PathLike",
    "ct_values_to_store",
    "looks_like_hu",
    "read_case_labels",
    "read_ct",
    "read_image",
    "read_labels",
    "read_mask",
    "write_nifti",
]
