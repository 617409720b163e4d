"""The project's conventions, written once: label ids, geometry from an affine, CT window.

NumPy only (no torch, MONAI or nibabel), so every layer may import it, the synthesis core included.

Label maps hold 0 background, 1 liver, 2 tumor. Images are arrays in (x, y, z) = (i, j, k)
index order with a 4x4 affine mapping homogeneous voxel indices to world RAS+ millimetres
(NIfTI/nibabel convention); ITK/DICOM store LPS world coordinates, turned to RAS by
``LPS_TO_RAS``.
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

from synthtumor.errors import InputError

__all__ = [
    "AIR_HU", "BACKGROUND", "HU_WINDOW", "LABEL_NAMES", "LIVER", "LPS_TO_RAS", "RAS_CODES",
    "RAS_LABELS", "TUMOR", "axis_codes", "check_labels", "cranio_caudal_axis",
    "label_problem", "orientation", "spacing_of",
]

# label ids of a label map
BACKGROUND = 0
LIVER = 1
TUMOR = 2
LABEL_NAMES: dict[int, str] = {BACKGROUND: "background", LIVER: "liver", TUMOR: "tumor"}

# Training/inference CT window (method.md): HU clipped to [-21, 189], then scaled to [0, 1].
HU_WINDOW: tuple[float, float] = (-21.0, 189.0)
AIR_HU = -1024.0  # value of "outside the scan": air

# World frame: +x Right, +y Anterior, +z Superior. RAS_LABELS are MONAI's (low, high) letter
# pairs per world axis, given explicitly so a change of MONAI's default cannot flip the frame.
RAS_CODES: tuple[str, str, str] = ("R", "A", "S")
RAS_LABELS: tuple[tuple[str, str], ...] = (("L", "R"), ("P", "A"), ("I", "S"))
# ITK/DICOM world coordinates are LPS: negate x and y to get RAS (left-multiply the affine).
LPS_TO_RAS: npt.NDArray[np.float64] = np.diag([-1.0, -1.0, 1.0, 1.0])

_MAX_LISTED = 10  # ids named in an error message


# --------------------------------------------------------------------------------------------
# labels


def label_problem(label: npt.ArrayLike, *, max_id: int = TUMOR) -> str | None:
    """What is wrong with a 0/1/2 label map, as one line; None when it is fine.

    Parameters
    ----------
    label : array_like
        Label map of any shape (or just its unique values), integer, boolean or float dtype.
    max_id : int, optional
        Highest id allowed (default 2, tumor; 1 for maps that must be tumor-free).

    Returns
    -------
    str or None
        The problem (no file name; see :func:`check_labels`), or None.

    Examples
    --------
    >>> import numpy as np
    >>> label_problem(np.array([[0, 1], [2, 1]])) is None
    True
    >>> label_problem(np.array([0, 1, 7, 3]))  # doctest: +ELLIPSIS
    'holds unexpected label ids [3, 7] (label maps use 0 background, 1 liver, 2 tumor; ...'
    >>> label_problem(np.array([0.0, 0.5]))
    'holds non-integer values; expected a 0/1/2 label map'
    """
    arr = np.asarray(label)
    if arr.dtype.kind not in "biuf":
        return f"holds {arr.dtype} values; expected a 0/1/2 label map"
    if arr.size == 0:
        return None
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr))):
        return "holds non-integer values; expected a 0/1/2 label map"
    if arr.min() >= 0 and arr.max() <= max_id:
        return None
    bad = np.unique(arr[(arr < 0) | (arr > max_id)])[:_MAX_LISTED]
    return (
        f"holds unexpected label ids {[int(v) for v in bad]} (label maps use 0 background, "
        "1 liver, 2 tumor; an unexpected id usually means a multi-organ map: convert it with "
        "`synthtumor data labels`)"
    )


def check_labels(
    label: npt.ArrayLike, path: str | os.PathLike[str] | None, *, max_id: int = TUMOR
) -> None:
    """Raise :class:`~synthtumor.errors.InputError` naming ``path`` if ``label`` is not 0/1/2.

    Parameters
    ----------
    label : array_like
        Label map (or its unique values).
    path : str, os.PathLike or None
        The file it came from, named in the error.
    max_id : int, optional
        Highest id allowed (default 2).

    Raises
    ------
    InputError
        With the one-line problem of :func:`label_problem`.

    Examples
    --------
    >>> import numpy as np
    >>> check_labels(np.array([0, 1, 2]), "case.nii.gz")
    >>> check_labels(np.array([0, 5]), "case.nii.gz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    synthtumor.errors.InputError: case.nii.gz: holds unexpected label ids [5] ...
    """
    problem = label_problem(label, max_id=max_id)
    if problem is not None:
        raise InputError(path, problem)


# --------------------------------------------------------------------------------------------
# geometry


def spacing_of(affine: npt.ArrayLike) -> tuple[float, float, float]:
    """Voxel size in mm along the array axes (x, y, z): column norms of ``affine[:3, :3]``.

    Examples
    --------
    >>> import numpy as np
    >>> spacing_of(np.diag([-0.8, 0.8, 2.5, 1.0]))
    (0.8, 0.8, 2.5)
    """
    s = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return (float(s[0]), float(s[1]), float(s[2]))


def cranio_caudal_axis(affine: npt.ArrayLike) -> int:
    """Index (0, 1 or 2) of the array axis whose direction is closest to world S (or I).

    Direction cosines are compared (the column divided by its length), so a coarse axis does
    not win by its voxel size alone.

    Examples
    --------
    >>> import numpy as np
    >>> cranio_caudal_axis(np.diag([0.8, 0.8, 5.0, 1.0]))
    2
    >>> sagittal = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]])
    >>> cranio_caudal_axis(sagittal)
    0
    """
    a = np.asarray(affine, dtype=np.float64)
    cosines = np.abs(a[2, :3]) / np.linalg.norm(a[:3, :3], axis=0)
    return int(np.argmax(cosines))


def orientation(affine: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Which world axis each array axis follows, and in which direction.

    Returns a (3, 2) int array: row ``i`` is (world axis 0/1/2 = x/y/z, +1 or -1) for array
    axis ``i`` (nibabel's ``io_orientation`` format for 3D). Oblique axes go to the closest
    world axis: the direction matrix is replaced by its nearest rotation, then the largest
    remaining cosine is assigned first.

    Examples
    --------
    >>> import numpy as np
    >>> orientation(np.diag([-1.0, -1.0, 2.0, 1.0])).tolist()
    [[0, -1], [1, -1], [2, 1]]
    """
    a = np.asarray(affine, dtype=np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(a / np.linalg.norm(a, axis=0))
    cos = np.abs(u @ vt)  # [world, array]
    out = np.zeros((3, 2), dtype=np.int64)
    for _ in range(3):
        world, array = np.unravel_index(int(np.argmax(cos)), cos.shape)
        out[array] = (world, 1 if (u @ vt)[world, array] > 0 else -1)
        cos[world, :] = -1.0
        cos[:, array] = -1.0
    return out


def axis_codes(affine: npt.ArrayLike) -> tuple[str, str, str]:
    """Anatomical direction each array axis points to, e.g. ``('R', 'A', 'S')``.

    Examples
    --------
    >>> import numpy as np
    >>> axis_codes(np.diag([-1.0, -1.0, 1.0, 1.0]))
    ('L', 'P', 'S')
    """
    codes = [RAS_LABELS[int(w)][1 if s > 0 else 0] for w, s in orientation(affine)]
    return (codes[0], codes[1], codes[2])
