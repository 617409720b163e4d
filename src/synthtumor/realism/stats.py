"""Per-tumor statistics of a labelled CT: size, shape, intensity, edge, texture, depth.

Pure NumPy/SciPy on arrays. Inputs are (x, y, z) arrays: CT in HU and a label map with
0 background, 1 liver, 2 tumor; the 4x4 affine (voxel -> world mm) gives the geometry, so every
statistic is in mm / ml / HU whatever the grid. A tumor is one connected component of label 2
with 26-connectivity (voxels touching by a face, an edge or a corner belong together); the
liver is label 1 or 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from synthtumor.conventions import TUMOR, spacing_of
from synthtumor.evaluate.lesions import label_lesions

CONNECTIVITY = 26
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity
#: The liver shell around a tumor that its contrast is measured against: liver voxels more than
#: 2 mm and at most 6 mm from the tumor. The first 2 mm are skipped: partial volume and soft
#: edges belong to the edge, not to the background liver.
SHELL_MM = (2.0, 6.0)
#: GLCM: HU window and number of grey levels (350 HU / 32 = ~11 HU per level).
GLCM_WINDOW_HU = (-100.0, 250.0)
GLCM_LEVELS = 32
MIN_VOXELS = 8  # smaller components are too few voxels for shape or texture: skipped, counted


@dataclass(frozen=True)
class Statistic:
    """One per-tumor statistic: key in the records, label and unit for tables and figures.

    log: compare and plot on a log10 scale (strongly skewed, e.g. volume).
    """

    key: str
    label: str
    unit: str
    log: bool = False


STATISTICS: tuple[Statistic, ...] = (
    Statistic("volume_ml", "volume", "ml", log=True),
    Statistic("radius_mm", "equivalent radius", "mm"),
    Statistic("sphericity", "sphericity", ""),
    Statistic("elongation", "elongation", ""),
    Statistic("mean_hu", "mean HU", "HU"),
    Statistic("std_hu", "HU std", "HU"),
    Statistic("contrast_hu", "contrast to liver", "HU"),
    Statistic("edge_hu_per_mm", "edge sharpness", "HU/mm"),
    # the two above beyond the liver shell's own (in quadrature): the scan's noise cancels
    Statistic("std_above_liver_hu", "HU std beyond the liver's", "HU"),
    Statistic("edge_above_liver_hu_per_mm", "edge gradient beyond the liver's", "HU/mm"),
    Statistic("glcm_contrast", "GLCM contrast", ""),
    Statistic("glcm_homogeneity", "GLCM homogeneity", ""),
    Statistic("depth_mm", "depth in liver", "mm"),
)
STAT_KEYS: tuple[str, ...] = tuple(s.key for s in STATISTICS)

# the 13 neighbour offsets of a 26-neighbourhood, one per direction (the GLCM is symmetrised)
_OFFSETS = [o for o in product((-1, 0, 1), repeat=3) if o > (0, 0, 0)]


@dataclass
class CaseStatistics:
    """The tumors of one case: one dict per tumor (``STAT_KEYS`` + case, tumor, voxels,
    centroid_mm), and how many components were too small to measure."""

    tumors: list[dict[str, Any]]
    skipped_small: int


def surface_area_mm2(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Surface area (mm^2) of a voxel mask, from its exposed voxel faces.

    Summed face area overestimates a smooth surface by 3/2 on average over orientations (each
    face direction sees the surface's projection: the mean of |n_x| + |n_y| + |n_z| is 3/2), for
    any spacing, so the face area is scaled by 2/3 (exact in expectation; a sphere gives ~1 %).
    """
    padded = np.pad(mask.astype(np.int8), 1)
    area = 0.0
    for axis in range(3):
        faces = int(np.count_nonzero(np.diff(padded, axis=axis)))
        others = [spacing[a] for a in range(3) if a != axis]
        area += faces * others[0] * others[1]
    return area * 2.0 / 3.0


def principal_variances_mm2(coords_mm: np.ndarray, voxel_axes_mm: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending, mm^2) of the covariance of a solid made of voxels.

    coords_mm: (N, 3) world coordinates of voxel centres. voxel_axes_mm: the 3x3 affine part
    (columns = voxel edges in mm); each voxel adds its own box's covariance M M^T / 12, so a
    handful of voxels still gives the moments of the solid they make up.
    """
    cov = np.cov(coords_mm, rowvar=False, bias=True) if len(coords_mm) > 1 else np.zeros((3, 3))
    cov = cov + voxel_axes_mm @ voxel_axes_mm.T / 12.0
    return np.linalg.eigvalsh(cov)


def quantise(hu: np.ndarray, window: tuple[float, float] = GLCM_WINDOW_HU,
             levels: int = GLCM_LEVELS) -> np.ndarray:
    """HU -> grey levels 0..levels-1 over ``window`` (values outside are clipped)."""
    lo, hi = window
    q = np.floor((np.clip(hu, lo, hi) - lo) / (hi - lo) * levels)
    return np.minimum(q, levels - 1).astype(np.intp)


def glcm(levels_arr: np.ndarray, mask: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """Symmetric grey-level co-occurrence matrix of the voxel pairs inside ``mask``.

    Pairs are neighbours at one-voxel offsets in all 13 directions of the 26-neighbourhood,
    pooled into one (levels, levels) matrix, normalised to sum 1 (all zeros if no pair).
    """
    counts = np.zeros(levels * levels, dtype=np.int64)
    n = mask.shape
    for off in _OFFSETS:
        a = tuple(slice(max(0, -o), n[i] - max(0, o)) for i, o in enumerate(off))
        b = tuple(slice(max(0, o), n[i] - max(0, -o)) for i, o in enumerate(off))
        both = mask[a] & mask[b]
        pairs = levels_arr[a][both] * levels + levels_arr[b][both]
        counts += np.bincount(pairs, minlength=levels * levels)
    matrix = counts.reshape(levels, levels).astype(np.float64)
    matrix += matrix.T
    total = matrix.sum()
    return matrix / total if total > 0 else matrix


def glcm_features(matrix: np.ndarray) -> tuple[float, float]:
    """(contrast, homogeneity) of a normalised GLCM, as Haralick / scikit-image define them:
    sum P(i,j) (i-j)^2 (grey levels^2) and sum P(i,j) / (1 + (i-j)^2) (0..1). NaN if empty."""
    if matrix.sum() == 0:
        return math.nan, math.nan
    i, j = np.indices(matrix.shape)
    d2 = (i - j) ** 2
    return float((matrix * d2).sum()), float((matrix / (1.0 + d2)).sum())


def _grow(box: tuple[slice, ...], margin: list[int], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - m), min(n, s.stop + m))
                 for s, m, n in zip(box, margin, shape))


def tumor_statistics(
    ct: np.ndarray,
    label: np.ndarray,
    affine: np.ndarray,
    case: str = "",
    *,
    shell_mm: tuple[float, float] = SHELL_MM,
    min_voxels: int = MIN_VOXELS,
) -> CaseStatistics:
    """Measure every tumor (connected component of label 2, 26-connected) of one case.

    ct: (x, y, z) HU. label: (x, y, z) 0 background / 1 liver / 2 tumor, same grid.
    affine: 4x4 voxel -> world mm. Components under ``min_voxels`` voxels are skipped.

    Per tumor (keys of ``STATISTICS``): volume_ml; radius_mm = (3V / 4 pi)^(1/3);
    sphericity = pi^(1/3) (6V)^(2/3) / area (1 for a ball; area from voxel faces, see
    ``surface_area_mm2``); elongation = sqrt(largest / smallest principal variance) (1 for a
    ball); mean_hu, std_hu inside; contrast_hu = mean HU of the liver shell ``shell_mm`` around
    the tumor minus the tumor's mean (positive: darker than the liver); edge_hu_per_mm = mean
    HU gradient magnitude over the voxel layers on both sides of the boundary, inside the liver
    and away from its surface; std_above_liver_hu and edge_above_liver_hu_per_mm: what the
    tumor adds to the liver shell's own HU std and RMS gradient (over the shell's voxels away
    from the liver surface), in quadrature: signed sqrt(tumor^2 - shell^2), since independent
    noise adds in variance; the scan's own noise, the same on both sides, cancels; glcm_contrast,
    glcm_homogeneity on ``GLCM_WINDOW_HU`` in ``GLCM_LEVELS`` levels; depth_mm = distance from
    the centroid to the liver surface (the array border counts as surface). NaN where a
    statistic cannot be measured (e.g. no liver shell around a tumor that fills the liver).
    """
    ct, label, affine = _case_arrays(ct, label, affine)
    spacing = spacing_of(affine)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    components, n = label_lesions(label == TUMOR)
    liver = label > 0
    # liver voxels whose 6 neighbours are liver too: the gradient there never sees outside fat
    liver_inner = ndi.binary_erosion(liver)
    depth_map = ndi.distance_transform_edt(np.pad(liver, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    margin = [int(math.ceil(shell_mm[1] / s)) + 2 for s in spacing]

    tumors: list[dict[str, Any]] = []
    skipped = 0
    for k, found in enumerate(ndi.find_objects(components), start=1):
        box = _grow(found, margin, ct.shape)
        inside = components[box] == k
        n_vox = int(np.count_nonzero(inside))
        if n_vox < min_voxels:
            skipped += 1
            continue
        hu = ct[box].astype(np.float64)
        record = _intensity_statistics(hu, inside, label[box] == 1, liver_inner[box], spacing,
                                       shell_mm)
        idx = np.argwhere(inside) + np.array([s.start for s in box])
        world = idx @ affine[:3, :3].T + affine[:3, 3]
        volume_ml = n_vox * voxel_ml
        centroid = idx.mean(axis=0)
        tumors.append({
            "case": case,
            "tumor": len(tumors),
            "voxels": n_vox,
            "centroid_mm": [round(float(v), 2) for v in affine[:3, :3] @ centroid + affine[:3, 3]],
            "volume_ml": volume_ml,
            **_shape_statistics(inside, world, affine, spacing, volume_ml),
            **record,
            "depth_mm": float(ndi.map_coordinates(depth_map, centroid[:, None], order=1)[0]),
        })
    return CaseStatistics(tumors, skipped)


def _case_arrays(ct: np.ndarray, label: np.ndarray, affine: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs as arrays, refused unless ``ct`` and ``label`` are 3-D of one shape."""
    ct = np.asarray(ct)
    label = np.asarray(label)
    if ct.shape != label.shape or ct.ndim != 3:
        raise ValueError(f"ct {ct.shape} and label {label.shape} must be 3-D of one shape")
    return ct, label, np.asarray(affine, dtype=np.float64)


def _shape_statistics(inside: np.ndarray, world: np.ndarray, affine: np.ndarray,
                      spacing: tuple[float, float, float], volume_ml: float) -> dict[str, float]:
    """radius_mm, sphericity and elongation of one tumor (``world``: its voxel centres, mm)."""
    volume_mm3 = volume_ml * 1000.0
    variances = principal_variances_mm2(world, affine[:3, :3])
    area = surface_area_mm2(inside, spacing)
    return {
        "radius_mm": (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0),
        "sphericity": math.pi ** (1.0 / 3.0) * (6.0 * volume_mm3) ** (2.0 / 3.0) / area,
        "elongation": math.sqrt(variances[2] / variances[0]),
    }


def _intensity_statistics(hu: np.ndarray, inside: np.ndarray, liver: np.ndarray,
                          liver_inner: np.ndarray, spacing: tuple[float, float, float],
                          shell_mm: tuple[float, float]) -> dict[str, float]:
    """The HU statistics of one tumor on its box (``tumor_statistics``): mean, std, contrast
    and edge, std and edge also beyond the liver shell's own, and the GLCM features.
    liver: label 1 (tumor excluded); liver_inner: liver voxels away from its surface."""
    values = hu[inside]
    mean_hu, std_hu = float(values.mean()), float(values.std())
    shell = _shell(inside, liver, spacing, shell_mm)
    shell_inner = shell & liver_inner
    gradient = _gradient_magnitude(hu, spacing)
    layer = _boundary_layers(inside, liver_inner)
    edge = float(gradient[layer].mean()) if layer.any() else math.nan
    g_contrast, g_homog = glcm_features(glcm(quantise(hu), inside))
    return {
        "mean_hu": mean_hu,
        "std_hu": std_hu,
        "contrast_hu": float(hu[shell].mean()) - mean_hu if shell.any() else math.nan,
        "edge_hu_per_mm": edge,
        "std_above_liver_hu": (_beyond(std_hu**2, float(hu[shell].var())) if shell.any()
                               else math.nan),
        "edge_above_liver_hu_per_mm": (
            _beyond(float(np.mean(gradient[layer] ** 2)),
                    float(np.mean(gradient[shell_inner] ** 2)))
            if layer.any() and shell_inner.any() else math.nan),
        "glcm_contrast": g_contrast,
        "glcm_homogeneity": g_homog,
    }


def _shell(inside: np.ndarray, liver: np.ndarray, spacing: tuple[float, float, float],
           shell_mm: tuple[float, float]) -> np.ndarray:
    """The liver voxels ``shell_mm`` (from, to] around the tumor."""
    outside_mm = ndi.distance_transform_edt(~inside, sampling=spacing)
    shell: np.ndarray = (outside_mm > shell_mm[0]) & (outside_mm <= shell_mm[1]) & liver
    return shell


def _gradient_magnitude(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """|grad HU| (HU/mm), central differences in mm."""
    grads: list[np.ndarray] = list(np.gradient(hu, *spacing))  # 3-D: one per axis
    magnitude: np.ndarray = np.sqrt(sum(g**2 for g in grads))
    return magnitude


def _boundary_layers(inside: np.ndarray, liver_inner: np.ndarray) -> np.ndarray:
    """The voxel layers on both sides of the tumor boundary, within ``liver_inner``."""
    layer: np.ndarray = ndi.binary_dilation(inside, _STRUCTURE) & ~ndi.binary_erosion(
        inside, _STRUCTURE)
    return layer & liver_inner


def _beyond(power: float, background: float) -> float:
    """Signed sqrt(power - background): the part of an RMS beyond an independent background."""
    excess = power - background
    return math.copysign(math.sqrt(abs(excess)), excess)
