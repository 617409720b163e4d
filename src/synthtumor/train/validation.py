"""Validation during training: mean tumor and liver Dice by sliding-window inference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch

from synthtumor.conventions import BACKGROUND, LIVER, TUMOR


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, roi: Sequence[int],
             device: torch.device) -> tuple[float, float]:
    """Mean (tumor Dice, liver Dice) over the validation cases; liver = label >= 1.

    Tumor Dice is NaN when no validation label holds tumor voxels.
    """
    from monai.inferers import sliding_window_inference
    from monai.metrics import DiceMetric

    metric = DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=True,
                        get_not_nans=True)
    was_training = model.training
    model.eval()
    for batch in loader:
        image = batch["image"].to(device)
        label = batch["label"].to(device).long()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            # one tensor: MONAI's union also covers models that return tuples or dicts
            logits = cast(torch.Tensor, sliding_window_inference(image, roi, 2, model, overlap=0.5))
        pred = logits.argmax(1, keepdim=True)
        metric(_channels(pred), _channels(label))
    scores, counted = (t.float().cpu() for t in metric.aggregate())  # (liver, tumor)
    scores[counted == 0] = float("nan")  # MONAI reports 0 for a class absent from every label
    model.train(was_training)
    return float(scores[1]), float(scores[0])


def _channels(lab: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) 0/1/2 -> (B, 3, ...) [background, liver incl. tumor, tumor]."""
    return torch.cat([lab == BACKGROUND, lab >= LIVER, lab == TUMOR], dim=1).float()

