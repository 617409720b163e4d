"""Shared last steps of image reading: SimpleITK image -> (x, y, z) array and RAS affine, the
checks every decoded volume passes, and SimpleITK error text cut to one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from synthtumor.conventions import LPS_TO_RAS
from synthtumor.errors import InputError
from synthtumor.imaging.volume import Volume


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


def _sitk_brief(err: BaseException) -> str:
    # SimpleITK messages span lines and start with C++ source locations; keep the reason
    text = " ".join(str(err).split())
    marker = "ERROR:"
    if marker in text:
        text = text[text.rindex(marker) + len(marker):].strip()
    return text[:200]
