"""Lesion-wise detection: connected lesions, their size (equivalent radius), hits and misses.

Definitions (all on one voxel grid, (x, y, z) boolean masks):

- A lesion is a 26-connected component (faces, edges and corners touch) of the tumor mask,
  real or predicted.
- Equivalent radius (mm): radius of the sphere with the lesion's volume,
  r = (3 V / 4π)^(1/3) with V = voxels × voxel volume (mm³).
- Size bins by equivalent radius: ``0-5`` (r <= 5 mm), ``5-10`` (5 < r <= 10 mm),
  ``>10`` (r > 10 mm).
- Detected, "any overlap": at least one predicted tumor voxel lies in the real lesion.
- Detected, "IoU >= 0.5" (LiTS-style): let U be the union of the predicted lesions that overlap
  the real lesion L; detected when |L ∩ U| / |L ∪ U| >= 0.5.
- False positive: a predicted lesion that overlaps no real tumor voxel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("0-5", 0.0, 5.0), ("5-10", 5.0, 10.0), (">10", 10.0, math.inf),
)
IOU_THRESHOLD = 0.5
CONNECTIVITY = ndimage.generate_binary_structure(3, 3)  # 26-connectivity


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components: (int32 label array, count), labels 1..count."""
    labels, n = ndimage.label(np.asarray(mask, bool), structure=CONNECTIVITY)
    return labels.astype(np.int32, copy=False), int(n)


def equivalent_radius_mm(voxels: int, voxel_mm3: float) -> float:
    """Radius (mm) of the sphere whose volume equals ``voxels`` × ``voxel_mm3`` mm³."""
    return (3.0 * voxels * voxel_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)


def size_bin(radius_mm: float) -> str:
    """Name of the size bin of an equivalent radius (see the module docstring)."""
    for name, lo, hi in SIZE_BINS:
        if lo < radius_mm <= hi or (lo == 0.0 and radius_mm <= hi):
            return name
    return SIZE_BINS[-1][0]


@dataclass(frozen=True)
class Lesion:
    """One real lesion: size and whether the prediction found it."""

    voxels: int
    radius_mm: float
    size_bin: str
    overlap: bool  # any predicted tumor voxel inside
    iou: float  # with the union of the predicted lesions that overlap it
    detected_iou: bool  # iou >= 0.5


@dataclass
class Detection:
    """Lesion-wise result of one case."""

    lesions: list[Lesion] = field(default_factory=list)
    predicted: int = 0  # predicted lesions
    false_positives: int = 0  # predicted lesions touching no real tumor

    def to_dict(self) -> dict[str, Any]:
        return {"lesions": [asdict(le) for le in self.lesions], "predicted": self.predicted,
                "false_positives": self.false_positives}


def detect_lesions(pred: np.ndarray, truth: np.ndarray, voxel_mm3: float) -> Detection:
    """Match real lesions (``truth``) with predicted ones (``pred``), both boolean (x, y, z).

    Args:
        pred: predicted tumor mask.
        truth: real tumor mask on the same grid.
        voxel_mm3: volume of one voxel in mm³ (for the equivalent radius).
    """
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {t.shape}")
    truth_lab, n_truth = label_lesions(t)
    pred_lab, n_pred = label_lesions(p)
    pred_sizes = np.bincount(pred_lab.ravel(), minlength=n_pred + 1)
    touching = np.zeros(n_pred + 1, bool)
    touching[np.unique(pred_lab[t])] = True
    out = Detection(predicted=n_pred, false_positives=int(np.count_nonzero(~touching[1:])))
    for index, box in enumerate(ndimage.find_objects(truth_lab), start=1):
        if box is None:
            continue
        lesion = truth_lab[box] == index
        hit_labels = pred_lab[box][lesion]
        voxels = int(np.count_nonzero(lesion))
        inter = int(np.count_nonzero(hit_labels))  # every predicted voxel in L is in U
        union_pred = int(pred_sizes[np.unique(hit_labels[hit_labels > 0])].sum())
        iou = inter / (voxels + union_pred - inter)
        radius = equivalent_radius_mm(voxels, voxel_mm3)
        out.lesions.append(Lesion(voxels, radius, size_bin(radius), inter > 0, iou,
                                  iou >= IOU_THRESHOLD))
    return out


def sensitivity_by_size(detections: list[Detection]) -> dict[str, dict[str, Any]]:
    """Per size bin over all cases: real lesions, found (any overlap / IoU >= 0.5), and the
    sensitivities (None when a bin holds no lesion)."""
    table: dict[str, dict[str, Any]] = {}
    for name, _, _ in SIZE_BINS:
        group = [le for d in detections for le in d.lesions if le.size_bin == name]
        n = len(group)
        found_any = sum(le.overlap for le in group)
        found_iou = sum(le.detected_iou for le in group)
        table[name] = {
            "lesions": n, "found_overlap": found_any, "found_iou": found_iou,
            "sensitivity_overlap": found_any / n if n else None,
            "sensitivity_iou": found_iou / n if n else None,
        }
    return table
