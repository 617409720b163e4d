"""Reading CT images and masks (NIfTI, NRRD, MetaImage, DICOM series) and writing NIfTI.

Every array is returned in (x, y, z) = (i, j, k) index order with a 4x4 affine mapping voxel
indices to world RAS+ mm, whatever the file format. Every bad-input failure raises
``InputError`` with a one-line message naming the file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.openers import ImageOpener

from synthtumor.conventions import LPS_TO_RAS, check_labels
from synthtumor.errors import InputError
from synthtumor.files import staging_prefix
from synthtumor.imaging.resample import resample_nearest
from synthtumor.imaging.volume import Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


# A DICOM series whose slice positions deviate from uniform by more than this fraction of the
# slice spacing (missing or duplicated slices) is rejected: ITK would silently use a mean
# spacing, misplacing slices in world space.
_MAX_SLICE_DEVIATION = 0.1

_MAX_LISTED_LABELS = 10

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


def read_mask(path: PathLike, reference: Volume, label: int | None = None) -> Volume:
    """Read a binary mask (e.g. the liver) on the grid of ``reference``.

    The segmentation is resampled in world space (nearest neighbour) when its grid differs
    from the reference (shape, or affine beyond 1e-3 mm), so masks stored with other
    orientations or spacings line up.

    Args:
        path: segmentation file (any format ``read_image`` accepts).
        reference: image whose grid the mask must match (usually the CT).
        label: voxel value to select in a multi-label map. If None the file must be binary:
            zero plus one non-zero value (0/1, 0/255, ...).

    Returns:
        Volume with a uint8 0/1 array of ``reference.shape`` (x, y, z) and its affine.

    Raises:
        InputError: read problems, non-integer values, label absent, several labels and no
            ``label``, empty mask, or a mask lying outside the reference in world space.
    """
    vol = read_image(path)
    labels_arr = _integer_labels(vol)
    present = _nonzero_labels(labels_arr)
    if label is not None:
        label = int(label)
        if label == 0:
            raise InputError(vol.path, "label 0 is the background; pass a positive label id")
        if label not in present:
            raise InputError(
                vol.path, f"label {label} not present; labels found: {_format_labels(present)}"
            )
        selected = labels_arr == label
    else:
        if len(present) == 0:
            raise InputError(vol.path, "liver mask is empty")
        if len(present) > 1:
            raise InputError(
                vol.path,
                f"holds labels {_format_labels(present)}; pass --liver-label to choose one",
            )
        selected = labels_arr != 0
    source = Volume(selected.view(np.uint8), vol.affine, vol.path)
    out = resample_nearest(source, reference.affine, reference.shape)
    if not out.any():
        raise InputError(vol.path, f"does not overlap {_name(reference)} in world space")
    return Volume(out, reference.affine.copy(), vol.path)


def read_labels(path: PathLike, reference: Volume) -> Volume:
    """Read an integer label map (e.g. multi-organ) on the grid of ``reference``.

    Resampled like ``read_mask`` but keeping the label values.

    Args:
        path: label map file (any format ``read_image`` accepts).
        reference: image whose grid the labels must match.

    Returns:
        Volume of ``reference.shape`` (x, y, z): uint8 if all labels fit 0..255, else int16 or
        int32.

    Raises:
        InputError: read problems, non-integer values, or labels lying outside the reference
            in world space.
    """
    vol = read_image(path)
    labels_arr = _integer_labels(vol)
    source = Volume(labels_arr, vol.affine, vol.path)
    out = resample_nearest(source, reference.affine, reference.shape)
    if not out.any() and labels_arr.any():
        raise InputError(vol.path, f"does not overlap {_name(reference)} in world space")
    return Volume(out, reference.affine.copy(), vol.path)


def read_case_labels(path: PathLike, reference: Volume) -> Volume:
    """Read a case's label map, 0 background / 1 liver / 2 tumor, on the grid of ``reference``
    (resampled as ``read_labels``).

    Raises:
        InputError: as ``read_labels``, or ids other than 0, 1, 2 (naming them).
    """
    labels = read_labels(path, reference)
    check_labels(labels.array, labels.path)
    return labels


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

    # Temp name keeps the .nii/.nii.gz ending: nibabel picks compression from it.
    stem = p.name[: -len(suffix)]
    tmp = p.with_name(f"{staging_prefix(stem)}{secrets.token_hex(4)}.tmp{suffix}")
    try:
        # O_EXCL: never clobber someone else's file; mode 0o666 lets the umask decide access
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise InputError(p, f"cannot write into folder {p.parent}: {err.strerror}") from err
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, p)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise InputError(p, f"cannot be written: {err.strerror or err}") from err
        raise


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


def _from_sitk(img: sitk.Image, p: Path) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK image -> (array in x, y, z[, t] order, RAS affine)."""
    dim = img.GetDimension()
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            p,
            f"has {img.GetNumberOfComponentsPerPixel()} components per voxel "
            "(vector/RGB image); a scalar image is needed",
        )
    if dim < 3:
        raise InputError(p, f"is {dim}D; a 3D volume is needed")
    # SimpleITK arrays are (..., z, y, x): reversing gives (x, y, z, ...), Fortran-ordered
    # in memory like nibabel's arrays (a view, no second copy)
    arr = sitk.GetArrayFromImage(img).transpose()
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.asarray(img.GetSpacing()[:3], dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[None, :]
    lps[:3, 3] = img.GetOrigin()[:3]
    return arr, LPS_TO_RAS @ lps


def _finish(arr: np.ndarray, affine: np.ndarray, p: Path) -> Volume:
    """Common checks: 3D after dropping singleton trailing dims, sane affine, native bytes."""
    if arr.ndim > 3:
        extra = arr.shape[3:]
        if any(n != 1 for n in extra):
            raise InputError(
                p, f"is {arr.ndim}D with shape {arr.shape}; a single 3D volume is needed"
            )
        arr = arr.reshape(arr.shape[:3])
    if arr.ndim < 3:
        raise InputError(p, f"is {arr.ndim}D with shape {arr.shape}; a 3D volume is needed")
    if arr.size == 0:
        raise InputError(p, f"is empty (shape {arr.shape})")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(p, "has an invalid voxel-to-world matrix (zero or non-finite spacing)")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return Volume(arr, affine, str(p))


def _is_dicom_file(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _brief(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}"[:200] if first else type(err).__name__


def _sitk_brief(err: BaseException) -> str:
    # SimpleITK messages span lines and start with C++ source locations; keep the reason
    text = " ".join(str(err).split())
    marker = "ERROR:"
    if marker in text:
        text = text[text.rindex(marker) + len(marker):].strip()
    return text[:200]


def _name(vol: Volume) -> str:
    return vol.path if vol.path is not None else "the reference image"


# --------------------------------------------------------------------------------------------
# helpers: labels


def _smallest_label_dtype(lo: int, hi: int) -> np.dtype | None:
    for dt in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return None


def _integer_labels(vol: Volume) -> np.ndarray:
    """The label values as the smallest integer dtype holding them; InputError if not labels."""
    arr = vol.array
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            raise InputError(vol.path, "holds NaN/inf values; expected an integer label map")
        frac = arr != np.rint(arr)
        if frac.any():
            example = float(arr[frac].flat[0])
            raise InputError(
                vol.path, f"holds non-integer values (e.g. {example:g}); expected a label map"
            )
    elif arr.dtype.kind not in "iu":
        raise InputError(vol.path, f"holds {arr.dtype} values; expected an integer label map")
    lo, hi = int(np.min(arr)), int(np.max(arr))
    dtype = _smallest_label_dtype(lo, hi)
    if dtype is None:
        raise InputError(vol.path, f"label values {lo}..{hi} are out of the int32 range")
    return arr.astype(dtype, copy=False)


def _nonzero_labels(arr: np.ndarray) -> list[int]:
    """Sorted non-zero values present in an integer array."""
    lo = int(np.min(arr))
    hi = int(np.max(arr))
    if hi - lo <= 1 << 16:
        # counting beats sorting (np.unique) by far on large CT-sized volumes
        flat = arr.ravel()
        counts = np.bincount(flat if lo == 0 else flat.astype(np.int64) - lo)
        values = np.flatnonzero(counts) + lo
    else:
        values = np.unique(arr)
    return [int(v) for v in values if v != 0]


def _format_labels(labels: Sequence[int]) -> str:
    if len(labels) <= _MAX_LISTED_LABELS:
        return "[" + ", ".join(str(v) for v in labels) + "]"
    shown = ", ".join(str(v) for v in labels[:_MAX_LISTED_LABELS])
    return f"[{shown}, ...] ({len(labels)} labels)"


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
