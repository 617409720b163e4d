"""``configs/metadata.json`` of the bundle, following MONAI's bundle metadata schema.

The schema (``meta_schema_20240725.json``) requires: schema, version, monai_version,
pytorch_version, numpy_version, required_packages_version, task, description, authors,
copyright and network_data_format (``inputs``/``outputs``, each tensor with type, format,
num_channels, spatial_shape, dtype, value_range). Everything else here is optional or ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthtumor.bundle.configs import CLASS_NAMES, HU_MAX, HU_MIN

SCHEMA_URL = ("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
              "meta_schema_20240725.json")
BUNDLE_VERSION = "0.1.0"
REFERENCES = [
    "Hu Q, Chen Y, Xiao J, Sun S, Chen J, Yuille AL, Zhou Z. Label-Free Liver Tumor "
    "Segmentation. CVPR 2023, pp. 7422-7432. https://arxiv.org/abs/2303.14869",
    "Kerfoot E, Clough J, Oksuz I, Lee J, King AP, Schnabel JA. Left-Ventricle Quantification "
    "Using Residual U-Net. STACOM 2018, LNCS 11395. https://doi.org/10.1007/978-3-030-12029-0_40",
    "Hatamizadeh A, Nath V, Tang Y, Yang D, Roth HR, Xu D. Swin UNETR: Swin Transformers for "
    "Semantic Segmentation of Brain Tumors in MRI Images. BrainLes 2021. "
    "https://arxiv.org/abs/2201.01266",
]

INTENDED_USE = (
    "Research only; not for clinical or diagnostic use. The tumor class was learnt from "
    "synthetic tumors only (no real tumor annotations), so it can miss or mislabel real "
    "lesions, in particular very small, very large, hyperdense or non-hepatic ones, and "
    "its accuracy on real data is not established by this bundle. Check results "
    "against real annotations before relying on them."
)


def public_version(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: the build tag says nothing about compatibility."""
    return version.split("+", 1)[0]


def metadata(
    *, name: str, desc: Mapping[str, Any], train: Mapping[str, Any], step: int,
    source: str, versions: Mapping[str, str],
) -> dict[str, Any]:
    """The metadata dict.

    Args:
        name: bundle name; desc: ``describe()`` of the network; train: the checkpoint's run
            configuration (spacing mm, roi voxels, mode, ...); step: optimizer steps trained.
        source: file name of the exported checkpoint (for the changelog).
        versions: installed versions of monai, torch, numpy, nibabel, pytorch-ignite,
            synthtumor.
    """
    spacing = float(train["spacing"])
    roi = [int(r) for r in train["roi"]]
    mode = str(train.get("mode", "synthetic"))
    return {
        "schema": SCHEMA_URL,
        "version": BUNDLE_VERSION,
        "changelog": {BUNDLE_VERSION: f"exported by synthtumor {versions['synthtumor']} from "
                                      f"{source} (step {step})"},
        "monai_version": versions["monai"],
        "pytorch_version": versions["torch"],
        "numpy_version": versions["numpy"],
        "required_packages_version": {
            "nibabel": versions["nibabel"],
            "pytorch-ignite": versions["pytorch-ignite"],
            "synthtumor": versions["synthtumor"],
        },
        # No optional_packages_version: MONAI >= 1.5 renames it to required_packages_version,
        # replacing this one. fire (the `python -m monai.bundle` command line) is in the docs.
        "synthtumor_needed_by": {
            "configs/inference.json": False,
            "configs/train.json": True,
            "why": "train.json pastes synthetic tumors with "
                   "synthtumor.adapters.monai.RandTumorSynthesisd; inference.json uses MONAI "
                   "components only",
        },
        "name": name,
        "task": "Liver and liver tumor segmentation in abdominal CT",
        "description": _description(_architecture(desc), mode, spacing, roi),
        "authors": "synthtumor authors",
        "copyright": "Copyright (c) the synthtumor authors",
        "data_source": "Healthy-liver abdominal CT with liver masks (e.g. BTCV, Pancreas-CT, "
                       "CHAOS, tumor-free LiTS cases); tumors synthesized during training",
        "data_type": "nibabel",
        "image_classes": (f"single-channel CT in Hounsfield units; the preprocessing clips "
                          f"[{HU_MIN:g}, {HU_MAX:g}] HU and scales it to [0, 1]"),
        "label_classes": "training labels: 0 background, 1 liver (tumors are added as 2 on "
                         "the fly)",
        "pred_classes": "single-channel label map: 0 background, 1 liver, 2 tumor",
        "eval_metrics": {},
        "intended_use": INTENDED_USE,
        "training": {"steps": int(step), "spacing_mm": spacing, "roi_voxels": roi,
                     "mode": mode, "model": dict(desc)},
        "references": list(REFERENCES),
        # the sliding window always feeds the network patches of exactly roi voxels
        "network_data_format": _network_data_format(roi, spacing),
    }


def _architecture(desc: Mapping[str, Any]) -> str:
    """One phrase naming the network and its size, from ``describe()``."""
    return ("MONAI UNet (channels " + "-".join(str(c) for c in desc["channels"])
            + f", {desc['num_res_units']} residual units)" if desc["name"] == "unet"
            else f"MONAI SwinUNETR (feature size {desc['feature_size']})")


def _description(arch: str, mode: str, spacing: float, roi: list[int]) -> str:
    """What the bundle does, its training and its preprocessing (spacing in mm, roi in voxels)."""
    return (
        f"A {arch} that labels every voxel of an abdominal CT as background, liver or liver "
        f"tumor. Trained with synthtumor ({mode} mode): synthetic tumors were pasted on the "
        "fly into healthy livers, following the label-free method of Hu et al. (CVPR 2023). "
        f"Input CT (Hounsfield units) is reoriented to RAS, resampled to {spacing:g} mm "
        f"isotropic, clipped to [{HU_MIN:g}, {HU_MAX:g}] HU and scaled to [0, 1], then "
        f"segmented with a sliding window of {roi[0]}x{roi[1]}x{roi[2]} voxels; the label "
        "map is written back on the input's own grid."
    )


def _network_data_format(roi: list[int], spacing: float) -> dict[str, Any]:
    """The schema's tensor descriptions: patches of ``roi`` voxels on a ``spacing`` mm grid."""
    return {
        "inputs": {
            "image": {
                "type": "image", "format": "hounsfield", "modality": "CT",
                "num_channels": 1, "spatial_shape": roi, "dtype": "float32",
                "value_range": [0, 1], "is_patch_data": True,
                "channel_def": {"0": f"CT, [{HU_MIN:g}, {HU_MAX:g}] HU scaled to [0, 1], "
                                     f"{spacing:g} mm RAS grid"},
            },
        },
        "outputs": {
            "pred": {
                "type": "image", "format": "labels", "num_channels": 3,
                "spatial_shape": roi, "dtype": "float32", "value_range": [],
                "is_patch_data": True, "channel_def": dict(CLASS_NAMES),
            },
        },
        "post_processed_outputs": {
            "pred": {
                "type": "image", "format": "segmentation", "num_channels": 1,
                "spatial_shape": ["*", "*", "*"], "dtype": "uint8", "value_range": [0, 2],
                "is_patch_data": False, "channel_def": dict(CLASS_NAMES),
            },
        },
    }
