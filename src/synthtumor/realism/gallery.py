"""A gallery of tumor crops: real and synthetic tumors side by side, same window, same scale.

Each measured tumor keeps two small crops (axial and coronal, through its centroid, ``CROP_MM``
wide, with its mask) under the key ``_crop`` of its record (not written to JSON). The gallery
picks tumors of the same size quantiles from every set, one row per set, and draws them in
radiological orientation (patient's right on the left, anterior / superior up) in one HU
window, with an extent in mm so every panel has the same scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthtumor.conventions import TUMOR, spacing_of
from synthtumor.files import replaced_atomically

if TYPE_CHECKING:
    from .sets import StatsSet

CROP_MM = 48.0
WINDOW_HU = (-100.0, 250.0)  # the GLCM window: liver and tumors, fat black, vessels white
QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.85, 0.97)


def _ras_cube(array: np.ndarray, affine: np.ndarray, centre: np.ndarray, half: np.ndarray,
              fill: float) -> np.ndarray:
    """A box of ``array`` around ``centre`` (voxel indices) of +-``half`` voxels, padded with
    ``fill`` outside the array, reoriented so that its axes point R, A, S."""
    import nibabel as nib

    lo = centre - half
    out = np.full(tuple(2 * half + 1), fill, dtype=np.float32)
    src = tuple(slice(max(0, a), min(n, b + 1)) for a, b, n in zip(lo, centre + half,
                                                                    array.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
    out[dst] = array[src]
    ornt = nib.orientations.io_orientation(affine)
    return nib.orientations.apply_orientation(out, ornt)


def add_crops(ct: np.ndarray, label: np.ndarray, affine: np.ndarray,
              tumors: list[dict[str, Any]]) -> None:
    """Store each tumor's axial and coronal crop (HU, mask, pixel size mm) under ``_crop``.

    ct, label: (x, y, z) on the grid of ``affine``; tumors: records with ``centroid_mm``.
    """
    affine = np.asarray(affine, dtype=float)
    inverse = np.linalg.inv(affine)
    spacing = np.array(spacing_of(affine))
    half = np.ceil(CROP_MM / 2.0 / spacing).astype(int)
    ornt = np.abs(np.linalg.inv(affine[:3, :3]) @ np.eye(3)).argmax(axis=0)
    for t in tumors:
        centre = np.round(inverse[:3, :3] @ np.asarray(t["centroid_mm"]) + inverse[:3, 3])
        centre = centre.astype(int)
        hu = _ras_cube(ct, affine, centre, half, WINDOW_HU[0])
        mask = _ras_cube((label == TUMOR).astype(np.float32), affine, centre, half, 0.0)
        c = [n // 2 for n in hu.shape]
        # radiological: rows anterior (axial) / superior (coronal) first, patient's right left
        axial = (hu[::-1, ::-1, c[2]].T, mask[::-1, ::-1, c[2]].T)
        coronal = (hu[::-1, c[1], ::-1].T, mask[::-1, c[1], ::-1].T)
        pixel = tuple(float(spacing[ornt[a]]) for a in range(3))
        t["_crop"] = {"axial": axial, "coronal": coronal, "pixel_mm": pixel}


def _pick(stats_set: StatsSet) -> list[dict[str, Any]]:
    tumors = [t for t in stats_set.tumors if "_crop" in t and np.isfinite(t["radius_mm"])]
    if not tumors:
        return []
    radii = np.array([t["radius_mm"] for t in tumors])
    order = np.argsort(radii)
    picks: list[dict[str, Any]] = []
    for q in QUANTILES:
        i = int(order[min(len(order) - 1, int(round(q * (len(order) - 1))))])
        if not picks or picks[-1] is not tumors[i]:
            picks.append(tumors[i])
    return picks


def has_crops(stats_set: StatsSet) -> bool:
    return any("_crop" in t for t in stats_set.tumors)


def draw_gallery(sets: list[StatsSet], path: Path) -> None:
    """Write a PNG (atomically): one row per set, for each picked tumor an axial and a coronal
    crop with its outline; sets without crops (read from stats JSON) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(s, _pick(s)) for s in sets if has_crops(s)]
    cols = 2 * len(QUANTILES)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.45 * cols, 1.9 * len(rows)),
                             dpi=110, squeeze=False)
    for r, (stats_set, picks) in enumerate(rows):
        for k in range(len(QUANTILES)):
            for j, view in enumerate(("axial", "coronal")):
                ax = axes[r, 2 * k + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if k >= len(picks):
                    ax.axis("off")
                    continue
                crop = picks[k]["_crop"]
                image, mask = crop[view]
                px, py = crop["pixel_mm"][0], crop["pixel_mm"][1 if view == "axial" else 2]
                w, h = image.shape[1] * px / 2, image.shape[0] * py / 2
                ax.imshow(image, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1],
                          extent=(-w, w, -h, h), interpolation="nearest")
                if mask.any():
                    xs = np.linspace(-w + px / 2, w - px / 2, image.shape[1])
                    ys = np.linspace(h - py / 2, -h + py / 2, image.shape[0])
                    ax.contour(xs, ys, mask, levels=[0.5], colors="tab:orange",
                               linewidths=0.5)
                ax.set_xlim(-CROP_MM / 2, CROP_MM / 2)
                ax.set_ylim(-CROP_MM / 2, CROP_MM / 2)
                if j == 0:
                    ax.set_title(f"r {picks[k]['radius_mm']:.1f} mm", fontsize=7)
                if r == 0:
                    ax.set_xlabel(view, fontsize=6)
                    ax.xaxis.set_label_position("top")
        axes[r, 0].set_ylabel(f"{stats_set.name}\n(n={len(stats_set.tumors)})", fontsize=7)
    fig.suptitle(f"tumor crops: {CROP_MM:.0f} mm, HU window [{WINDOW_HU[0]:.0f}, "
                 f"{WINDOW_HU[1]:.0f}], radiological orientation; columns: size quantiles",
                 fontsize=8)
    fig.tight_layout()
    try:
        with replaced_atomically(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
