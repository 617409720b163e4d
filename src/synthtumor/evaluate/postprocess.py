"""The reference's evaluation post-processing, in millimetres.

The reference keeps the largest connected liver component and keeps tumor voxels only inside a
30-voxel dilation of it, at 1 mm. Here the reach is a distance in mm (default 30 mm), measured
with the voxel spacing, so it means the same on any grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from synthtumor.conventions import TUMOR
from synthtumor.evaluate.lesions import label_lesions

TUMOR_MARGIN_MM = 30.0


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 26-connected component (all False for an empty mask)."""
    labels, n = label_lesions(mask)
    if n == 0:
        return np.zeros(labels.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def postprocess(
    labels: np.ndarray, spacing: Sequence[float], tumor_margin_mm: float = TUMOR_MARGIN_MM
) -> np.ndarray:
    """Clean a predicted 0/1/2 label map (x, y, z).

    The liver is every voxel predicted 1 or 2; its largest 26-connected component is kept with
    its labels. Outside it, tumor voxels (2) within ``tumor_margin_mm`` mm (Euclidean, with
    ``spacing`` in mm) of that component stay tumor; everything else becomes background.

    Returns:
        uint8 label map of the same shape.
    """
    labels = np.asarray(labels)
    liver = largest_component(labels > 0)
    out = np.where(liver, labels, 0).astype(np.uint8)
    stray = (labels == TUMOR) & ~liver
    if not liver.any() or not stray.any():
        return out
    # distances only in the liver's box grown by the margin: nothing farther can be kept
    sp = np.asarray(spacing, float)
    reach = np.ceil(tumor_margin_mm / sp).astype(int) + 1
    idx = np.nonzero(liver)
    box = tuple(slice(max(0, int(i.min()) - r), min(n, int(i.max()) + 1 + r))
                for i, r, n in zip(idx, reach, labels.shape))
    near = ndimage.distance_transform_edt(~liver[box], sampling=sp) <= tumor_margin_mm
    keep = np.zeros(labels.shape, bool)
    keep[box] = near & stray[box]
    out[keep] = 2
    return out
