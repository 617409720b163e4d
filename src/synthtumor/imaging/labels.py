"""Reading masks and label maps onto a reference grid, with the checks that make them labels.

Arrays are in (x, y, z) order; every bad-input failure raises ``InputError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthtumor.conventions import check_labels
from synthtumor.errors import InputError
from synthtumor.imaging.io import PathLike, read_image
from synthtumor.imaging.resample import resample_nearest
from synthtumor.imaging.volume import Volume

_MAX_LISTED_LABELS = 10


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

