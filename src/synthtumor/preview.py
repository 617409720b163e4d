"""Preview pictures: three orthogonal slices through a tumor, CT window, tumor outlined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, safe in workers and CI
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from synthtumor.conventions import TUMOR, orientation, spacing_of  # noqa: E402

WINDOW_HU = (-100.0, 250.0)
_MARGIN_MM = 25.0


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder/flip array axes to RAS+ order; returns the array and its spacing (mm) per axis."""
    ornt = orientation(affine)
    ras = nib.orientations.apply_orientation(array, ornt)
    spacing = np.empty(3)
    spacing[ornt[:, 0]] = spacing_of(affine)
    return ras, spacing


def _ras_index(
    ijk: tuple[int, int, int], shape: tuple[int, ...], affine: np.ndarray
) -> tuple[int, int, int]:
    """Where voxel ``ijk`` of the input array lands in the RAS-reordered array of ``to_ras``."""
    ornt = orientation(affine)
    out = [0, 0, 0]
    for axis, (target, flip) in enumerate(ornt.astype(int)):
        out[target] = shape[axis] - 1 - ijk[axis] if flip < 0 else ijk[axis]
    return out[0], out[1], out[2]


def save_preview(
    path: str | Path,
    ct: np.ndarray,
    label: np.ndarray,
    affine: np.ndarray,
    centre_voxel: tuple[int, int, int] | None = None,
    title: str = "",
) -> None:
    """Write a PNG with axial, coronal and sagittal slices through ``centre_voxel``.

    ct: HU (x, y, z); label: 0/1/2 on the same grid; affine: voxel -> RAS mm, used to show the
    slices in radiological convention (patient right on the left, anterior up, head up) with
    true aspect ratios. The liver is outlined thinly, tumors in a bold contour.
    centre_voxel: voxel indices in the input array; default: the label's tumor centroid.
    """
    if centre_voxel is None:
        idx = np.argwhere(label == TUMOR)
        if idx.size == 0:
            idx = np.argwhere(label > 0)
        mid = np.round(idx.mean(axis=0)) if idx.size else np.asarray(ct.shape) // 2
        centre_voxel = (int(mid[0]), int(mid[1]), int(mid[2]))
    ct_r, spacing = to_ras(ct, affine)
    lab_r, _ = to_ras(label, affine)
    cx, cy, cz = _ras_index(centre_voxel, ct.shape, affine)

    # Show the liver with a margin, not the whole field of view: tumors are a few mm.
    liver_idx = np.argwhere(lab_r > 0)
    lo = np.maximum(liver_idx.min(axis=0) - np.ceil(_MARGIN_MM / spacing), 0).astype(int)
    hi = np.minimum(liver_idx.max(axis=0) + np.ceil(_MARGIN_MM / spacing) + 1, ct_r.shape)
    crop = [slice(int(a), int(b)) for a, b in zip(lo, hi)]
    # name, 2-D slice (rows = screen vertical after transposing), row mm, column mm
    views: list[tuple[str, tuple[Any, ...], float, float]] = [
        ("axial", np.s_[crop[0], crop[1], cz], spacing[1], spacing[0]),
        ("coronal", np.s_[crop[0], cy, crop[2]], spacing[2], spacing[0]),
        ("sagittal", np.s_[cx, crop[1], crop[2]], spacing[2], spacing[1]),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5), facecolor="black")
    for col, (name, sl, row_mm, col_mm) in enumerate(views):
        img = ct_r[sl].T[::-1]  # rows: the slice's last axis, flipped so anterior/head is up
        lab = lab_r[sl].T[::-1]
        if name != "sagittal":
            img, lab = img[:, ::-1], lab[:, ::-1]  # radiological: patient right on the left
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1],
                      aspect=row_mm / col_mm, interpolation="nearest")
            if row == 1 and (lab > 0).any():
                ax.contour(lab > 0, levels=[0.5], colors="#3fa7ff", linewidths=0.6)
            if row == 1 and (lab == TUMOR).any():
                ax.contour(lab == TUMOR, levels=[0.5], colors="#ff3030", linewidths=1.2)
            ax.axis("off")
        axes[0, col].set_title(name, color="white", fontsize=10)
    fig.suptitle(
        (title + "   " if title else "")
        + f"window [{WINDOW_HU[0]:g}, {WINDOW_HU[1]:g}] HU · red: tumor · blue: liver",
        color="white", fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, facecolor="black")
    plt.close(fig)
