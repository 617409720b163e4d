"""Overlap and surface metrics on binary masks: Dice and normalised surface Dice (NSD).

Conventions for empty masks (the same for Dice and NSD):

- prediction and truth both empty: 1.0 (nothing to find, nothing found);
- exactly one of them empty: 0.0.

NSD follows the semantics of DeepMind's ``surface-distance`` library (Nikolov et al. 2021):
the surface of a mask is made of surface elements ("surfels"), one per 2x2x2 cell of voxel
centres whose corners are neither all inside nor all outside. Each surfel is weighted by the
area (mm²) of the marching-cubes surface that passes through its cell, and its distance to the
other surface is the Euclidean distance (mm, with the voxel spacing) from its cell to the
nearest surfel cell of the other mask. Then

    NSD = (area of truth surfels within tol of the prediction's surface
           + area of prediction surfels within tol of the truth's surface)
          / (total truth area + total prediction area),

"within" meaning a distance <= tol. Voxels outside the array count as background, so a mask
touching the array's border is closed there.

Why not MONAI's ``compute_surface_dice(..., use_subvoxels=True)``: it gives the same values
(within 1e-7, float32) but runs its distance transforms over the whole volume, here they run on
the masks' bounding box, tile by tile. ``benchmarks/nsd.py`` on LiTS 117's tumor: 2.7x slower in
a CT-sized 512x512x128 grid (what evaluation sees), 1.2-3.6x (median 1.8x) on the 128^3 crop
on a loaded 2-core machine. The per-surfel areas are MONAI's own table.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

NSD_TOLERANCE_MM = 2.0

# Corner (a, b, c) of a 2x2x2 cell (offsets along x, y, z) is bit 4a + 2b + c of its code.
_CORNERS = tuple(itertools.product((0, 1), repeat=3))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2|P∩T| / (|P| + |T|) of two boolean masks of one shape (1.0 when both empty)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & t)) / total


def overlap_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(|P∩T|, |P|, |T|) in voxels: what a dataset-wide (global) Dice adds up."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t))


def global_dice(counts: Sequence[tuple[int, int, int]]) -> float:
    """Dataset-wide Dice 2·Σ|P∩T| / Σ(|P|+|T|) from per-case :func:`overlap_counts`."""
    inter = sum(c[0] for c in counts)
    total = sum(c[1] + c[2] for c in counts)
    return 1.0 if total == 0 else 2.0 * inter / total


@functools.lru_cache(maxsize=64)
def surfel_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """Surface area (mm²) inside a cell for each of the 256 cell codes, for voxel ``spacing``.

    MONAI's table (the surface-distance library's marching-cubes normals), re-indexed to our
    bit order: MONAI gives corner (a, b, c) bit 7 - (4a + 2b + c), we give it 4a + 2b + c.

    Returns:
        float64 array of shape (256,); 0 for codes 0 and 255 (no surface).
    """
    from monai.metrics.utils import create_table_neighbour_code_to_surface_area

    table, _kernel = create_table_neighbour_code_to_surface_area(tuple(spacing))
    monai_code = [int(f"{code:08b}"[::-1], 2) for code in range(256)]
    return np.asarray(table.cpu(), np.float64)[monai_code]


def _cell_codes(mask: np.ndarray) -> np.ndarray:
    """8-bit code of every 2x2x2 cell of voxel centres, background padded on all sides.

    For a mask of shape (n0, n1, n2) the result has shape (n0+1, n1+1, n2+1); cell (i, j, k)
    has corners at voxels (i-1..i, j-1..j, k-1..k).
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    n = tuple(s - 1 for s in padded.shape)
    codes = np.zeros(n, np.uint8)
    for bit, (a, b, c) in enumerate(_CORNERS):
        codes |= padded[a:a + n[0], b:b + n[1], c:c + n[2]] << bit
    return codes


@dataclass(frozen=True)
class SurfaceDistances:
    """Surfels of both masks: distance (mm) to the other surface and area (mm²), 1-D arrays.

    A distance is ``inf`` when the other mask has no surface.
    """

    truth_to_pred: np.ndarray
    truth_area: np.ndarray
    pred_to_truth: np.ndarray
    pred_area: np.ndarray


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]
) -> SurfaceDistances:
    """Surfel distances and areas of two boolean (x, y, z) masks on one grid.

    Only the bounding box of the union of the masks (plus one cell) is processed: every surfel
    lies in it, so the distances are exact, and the cost follows the masks' extent, not the
    volume's.

    Args:
        pred, truth: boolean masks of one shape.
        spacing: voxel size in mm along (x, y, z).
    """
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {t.shape}")
    sp = tuple(float(s) for s in spacing)
    empty = np.zeros(0)
    union = p | t
    if not union.any():
        return SurfaceDistances(empty, empty, empty, empty)
    box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(union))
    table = surfel_area_table(sp)
    codes_p, codes_t = _cell_codes(p[box]), _cell_codes(t[box])
    border_p = (codes_p != 0) & (codes_p != 255)
    border_t = (codes_t != 0) & (codes_t != 255)

    def distance_to(border: np.ndarray) -> np.ndarray:
        if not border.any():
            return np.full(border.shape, np.inf)
        return ndimage.distance_transform_edt(~border, sampling=sp)

    return SurfaceDistances(
        truth_to_pred=distance_to(border_p)[border_t],
        truth_area=table[codes_t[border_t]],
        pred_to_truth=distance_to(border_t)[border_p],
        pred_area=table[codes_p[border_p]],
    )


def normalized_surface_dice(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
    tolerance_mm: float = NSD_TOLERANCE_MM, *, tile: int = 64,
) -> float:
    """NSD of two boolean (x, y, z) masks at ``tolerance_mm`` (see the module docstring).

    Both masks empty: 1.0; exactly one empty: 0.0.

    Only whether a distance is <= tol matters, so the distance transforms run tile by tile
    (``tile`` cells a side) over the union's bounding box, each tile with a halo wider than
    the tolerance, and tiles without surface are skipped. The result is exact: a surfel
    within tol of the other surface has its nearest other surfel inside its tile's halo.
    """
    has_p, has_t = bool(np.any(pred)), bool(np.any(truth))
    if not has_p and not has_t:
        return 1.0
    if has_p != has_t:
        return 0.0
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    sp = tuple(float(s) for s in spacing)
    box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(p | t))
    table = surfel_area_table(sp)
    codes_p, codes_t = _cell_codes(p[box]), _cell_codes(t[box])
    border_p = (codes_p != 0) & (codes_p != 255)
    border_t = (codes_t != 0) & (codes_t != 255)
    halo = [int(np.ceil(tolerance_mm / s)) + 1 for s in sp]
    close = total = 0.0
    starts = [range(0, n, tile) for n in border_p.shape]
    for corner in itertools.product(*starts):
        core = tuple(slice(c, min(c + tile, n)) for c, n in zip(corner, border_p.shape))
        bp, bt = border_p[core], border_t[core]
        if not (bp.any() or bt.any()):
            continue
        outer = tuple(slice(max(0, c.start - h), min(n, c.stop + h))
                      for c, h, n in zip(core, halo, border_p.shape))
        inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
        area_p, area_t = table[codes_p[core][bp]], table[codes_t[core][bt]]
        total += float(area_p.sum() + area_t.sum())
        for border_self, border_other, area in ((bp, border_t, area_p), (bt, border_p, area_t)):
            if not border_self.any():
                continue
            other = border_other[outer]
            if not other.any():
                continue
            dist = ndimage.distance_transform_edt(~other, sampling=sp)[inner][border_self]
            close += float(area[dist <= tolerance_mm].sum())
    return close / total if total > 0 else 1.0
