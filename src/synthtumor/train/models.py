"""Segmentation networks for training: MONAI U-Net or Swin UNETR, 3 classes (bg/liver/tumor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from synthtumor.choices import MODEL_NAMES

NUM_CLASSES = 3  # 0 background, 1 liver, 2 tumor
UNET_CHANNELS = (16, 32, 64, 128, 256)
UNET_STRIDES = (2, 2, 2, 2)
UNET_RES_UNITS = 2


def describe(name: str, feature_size: int = 48) -> dict[str, Any]:
    """What a checkpoint records about its network: plain JSON-able types only.

    Two runs can share weights exactly when their descriptions are equal.
    """
    if name == "unet":
        return {
            "name": "unet", "in_channels": 1, "out_channels": NUM_CLASSES,
            "channels": list(UNET_CHANNELS), "strides": list(UNET_STRIDES),
            "num_res_units": UNET_RES_UNITS,
        }
    if name == "swin_unetr":
        return {
            "name": "swin_unetr", "in_channels": 1, "out_channels": NUM_CLASSES,
            "feature_size": int(feature_size),
        }
    raise ValueError(f"--model must be one of {', '.join(MODEL_NAMES)}, got {name!r}")


def build_model(name: str, feature_size: int = 48) -> torch.nn.Module:
    """The network by name; input (B, 1, X, Y, Z) in [0, 1], output logits (B, 3, X, Y, Z).

    Swin UNETR needs every ROI side divisible by 32 (five 2x patch mergings), and >= 64 to
    train (see :func:`check_roi`).
    """
    desc = describe(name, feature_size)
    if name == "unet":
        from monai.networks.nets import UNet

        return UNet(
            spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES,
            channels=UNET_CHANNELS, strides=UNET_STRIDES, num_res_units=UNET_RES_UNITS,
        )
    from monai.networks.nets import SwinUNETR

    # MONAI >= 1.5 dropped img_size: the network adapts to any size divisible by 32.
    return SwinUNETR(
        in_channels=1, out_channels=NUM_CLASSES, feature_size=desc["feature_size"],
        spatial_dims=3,
    )


def check_roi(name: str, roi: Sequence[int]) -> None:
    """ValueError when the ROI (three side lengths, voxels) does not suit the network."""
    if any(r < 16 for r in roi):
        raise ValueError(f"--roi sides must be at least 16 voxels, got {list(roi)}")
    if name == "unet" and any(r % 16 for r in roi):
        raise ValueError(f"--roi sides must be multiples of 16 for unet, got {list(roi)}")
    # Swin UNETR halves the grid 5 times; instance norm needs > 1 voxel at the bottom.
    if name == "swin_unetr" and any(r % 32 or r < 64 for r in roi):
        raise ValueError(
            f"--roi sides must be multiples of 32 and at least 64 for swin_unetr, got {list(roi)}")
