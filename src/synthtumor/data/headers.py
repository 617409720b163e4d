"""Image grids from file headers alone (no voxel data read), and the check that a case's image
and label share one grid.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from synthtumor.conventions import LPS_TO_RAS
from synthtumor.data.cases import Case
from synthtumor.errors import InputError

# Image and label grids agree when every grid corner maps to the same world point within
# this fraction of the smallest voxel spacing (absorbs float32 rounding in headers).
GRID_TOLERANCE_VOXELS = 0.1


def read_header(path: str | os.PathLike[str]) -> tuple[tuple[int, int, int], np.ndarray]:
    """Grid of an image file from its header only (no voxel data is read).

    Args:
        path: NIfTI, NRRD or MetaImage file.

    Returns:
        (shape (x, y, z) in voxels, 4x4 voxel -> RAS mm affine).

    Raises:
        InputError: missing file, unreadable header, not 3D.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "does not exist" if not p.is_symlink() else "is a broken link")
    lower = p.name.lower()
    try:
        if lower.endswith((".nii.gz", ".nii")):
            img: Any = nib.load(str(p))  # nibabel types load() loosely
            shape, affine = tuple(int(n) for n in img.shape), np.asarray(img.affine, float)
        else:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(p))
            reader.ReadImageInformation()
            shape = tuple(int(n) for n in reader.GetSize())
            affine = _itk_affine(reader)
    except Exception as err:  # nibabel, gzip and ITK raise many types for damaged files
        text = " ".join(str(err).split())[:200] or type(err).__name__
        raise InputError(p, f"header cannot be read ({text})") from None
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise InputError(p, f"has shape {shape}; a 3D volume is needed")
    return (shape[0], shape[1], shape[2]), affine


def _itk_affine(reader: sitk.ImageFileReader) -> np.ndarray:
    """RAS affine from ITK header fields (ITK stores LPS: negate x and y)."""
    dim = reader.GetDimension()
    if dim < 3:
        raise ValueError(f"{dim}D image")
    direction = np.asarray(reader.GetDirection(), float).reshape(dim, dim)[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(reader.GetSpacing()[:3], float)[None, :]
    lps[:3, 3] = reader.GetOrigin()[:3]
    return LPS_TO_RAS @ lps


def check_pair(case: Case) -> None:
    """Check that a pair's image and label share one grid, from their headers.

    Raises:
        InputError: missing file, unreadable header, or shape/affine mismatch (naming both
            files; the affines agree when all grid corners lie within 0.1 voxel).
    """
    shape_i, aff_i = read_header(case.image)
    shape_l, aff_l = read_header(case.label)
    if shape_i != shape_l:
        raise InputError(
            case.label, f"shape {shape_l} differs from its image {case.image} {shape_i}"
        )
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape_i])), float)
    gap = np.max(np.linalg.norm((corners @ (aff_i - aff_l)[:3, :3].T) + (aff_i - aff_l)[:3, 3],
                                axis=1))
    tolerance = GRID_TOLERANCE_VOXELS * float(np.min(np.linalg.norm(aff_i[:3, :3], axis=0)))
    if gap > tolerance:
        raise InputError(
            case.label,
            f"affine differs from its image {case.image} (grid corners up to {gap:.3g} mm "
            "apart); resample one onto the other",
        )
