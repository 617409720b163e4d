"""Inference with a ``synthtumor train`` checkpoint, from the original CT grid and back.

1. ``load_model``: read ``best.pt``/``last.pt`` (weights only), check the network description,
   build it and load the weights.
2. ``preprocess``: exactly the training/validation geometry and intensity (RAS, resample to the
   training spacing, HU window [-21, 189] -> [0, 1]) with the same MONAI transforms, but no crop
   to the label (there is no label at inference).
3. ``predict_probabilities``: sliding-window inference with Gaussian weighting -> softmax.
4. ``to_original_grid``: class probabilities resampled trilinearly in world space onto the
   CT's original voxels, then argmax -> uint8 0/1/2 with the CT's exact shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthtumor.conventions import HU_WINDOW, RAS_LABELS
from synthtumor.imaging import Volume
from synthtumor.train import checkpoint as ckpt

Predictor = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LoadedModel:
    """A network ready for inference and what its checkpoint says about training.

    Attributes:
        model: the network in eval mode, on ``device``.
        desc: its description (``synthtumor.train.models.describe``).
        spacing: training grid spacing (mm, isotropic).
        roi: training patch (voxels), used as the sliding window.
        step: training steps done.
        device: where it runs.
    """

    model: torch.nn.Module
    desc: dict[str, Any]
    spacing: float
    roi: tuple[int, int, int]
    step: int
    device: torch.device


def load_model(path: Path, device: torch.device, expect_model: str | None = None) -> LoadedModel:
    """Load a training checkpoint for inference (``checkpoint.read_trained``: ``expect_model``
    is the architecture evaluation expects, default the checkpoint's own).

    Raises:
        InputError: see ``checkpoint.read_trained`` and ``checkpoint.trained_model``.
    """
    path = Path(path)
    obj = ckpt.read_trained(path, expect_model)
    model = ckpt.trained_model(obj, path)
    spacing = float(obj["config"]["spacing"])
    roi = tuple(int(r) for r in obj["config"]["roi"])
    model.to(device).eval()
    return LoadedModel(model, obj["model_desc"], spacing, (roi[0], roi[1], roi[2]),
                       int(obj.get("step", 0)), device)


def to_training_grid(volume: Volume, spacing: float, *, label: bool = False) -> tuple[
    torch.Tensor, np.ndarray
]:
    """Reorient to RAS and resample to ``spacing`` mm, as training does (MONAI transforms).

    Args:
        volume: CT in HU (``label=False``: bilinear, then the [-21, 189] HU window to [0, 1])
            or a label map (``label=True``: nearest, values kept).
        spacing: isotropic training grid spacing (mm).

    Returns:
        (tensor of shape (1, X, Y, Z), its 4x4 voxel -> RAS mm affine as float64 numpy).
    """
    from monai.data import MetaTensor
    from monai.transforms import Orientation, ScaleIntensityRange, Spacing

    array = np.ascontiguousarray(volume.array, dtype=np.float32)
    image: Any = MetaTensor(torch.from_numpy(array)[None], affine=torch.as_tensor(volume.affine))
    image = Orientation(axcodes="RAS", labels=RAS_LABELS)(image)
    image = Spacing(pixdim=(spacing,) * 3, mode="nearest" if label else "bilinear")(image)
    if not label:
        image = ScaleIntensityRange(a_min=HU_WINDOW[0], a_max=HU_WINDOW[1], b_min=0.0, b_max=1.0,
                                    clip=True)(image)
    affine = np.asarray(image.affine, dtype=np.float64)
    return torch.as_tensor(image.as_tensor(), dtype=torch.float32), affine


def sliding_window_predictor(loaded: LoadedModel, overlap: float) -> Predictor:
    """Function (1, 1, X, Y, Z) [0, 1] image -> (1, 3, X, Y, Z) logits on the CPU: Gaussian-
    weighted sliding window of the training ROI, ``overlap`` in [0, 1), AMP on CUDA."""
    from monai.inferers import sliding_window_inference

    device = loaded.device

    @torch.inference_mode()
    def predict(image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = sliding_window_inference(
                image.to(device), loaded.roi, 2, loaded.model, overlap=overlap,
                mode="gaussian", device=device,
            )
        return torch.as_tensor(logits).float().cpu()

    return predict


def predict_probabilities(image: torch.Tensor, predictor: Predictor) -> np.ndarray:
    """Softmax class probabilities (3, X, Y, Z) float32 of a (1, X, Y, Z) preprocessed image."""
    logits = predictor(image[None])
    return torch.softmax(logits[0].float(), dim=0).numpy()


def to_original_grid(
    probs: np.ndarray, grid_affine: np.ndarray, affine: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Labels on the original grid from class probabilities on the training grid.

    Each original voxel centre is mapped through world space (RAS mm) into the training grid,
    the probabilities are interpolated trilinearly there (edge values beyond the last centre)
    and the most likely class wins. Only the box around the training grid's foreground (+1
    voxel) is interpolated: outside it every neighbour prefers background, and so does any
    convex mix of them.

    Args:
        probs: (C, X', Y', Z') probabilities on the training grid.
        grid_affine: its 4x4 voxel -> RAS mm affine.
        affine, shape: the original grid (4x4 affine, (x, y, z) voxels).

    Returns:
        uint8 class indices of ``shape``.
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    out = np.zeros(shape, np.uint8)
    fg = np.argmax(probs, axis=0) != 0
    if not fg.any():
        return out
    lo = np.array([int(i.min()) - 1 for i in np.nonzero(fg)], float)
    hi = np.array([int(i.max()) + 1 for i in np.nonzero(fg)], float)
    corners = np.array([[c[0], c[1], c[2], 1.0] for c in
                        np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T])
    to_orig = np.linalg.inv(affine) @ grid_affine
    ijk = (corners @ to_orig.T)[:, :3]
    start = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, shape)
    stop = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, shape)
    sub = tuple(int(b - a) for a, b in zip(start, stop))
    if min(sub) <= 0:
        return out
    # original sub-box index -> training grid index
    shift = np.eye(4)
    shift[:3, 3] = start
    mapping = np.linalg.inv(grid_affine) @ affine @ shift
    resampled = np.stack([
        ndimage.affine_transform(p, mapping[:3, :3], offset=mapping[:3, 3], output_shape=sub,
                                 order=1, mode="nearest")
        for p in probs
    ])
    out[tuple(slice(a, b) for a, b in zip(start, stop))] = np.argmax(resampled, axis=0)
    return out
