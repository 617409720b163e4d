"""The bundle's MONAI config files (``configs/inference.json``, ``configs/train.json``) as dicts.

Pure functions: a network description (``train.models.describe``) and the training settings in,
JSON-able dicts out. Syntax of MONAI's ``ConfigParser``: ``"_target_"`` names a class to
instantiate (short names resolve inside ``monai``), ``"@id"`` refers to another entry (``#``
walks into nested entries), ``"$expr"`` is a Python expression evaluated at parse time (where
``@id`` may appear too), and ``"$import x"`` entries run imports.

Inference uses MONAI components only, so it runs without synthtumor installed; training needs
``synthtumor.adapters.monai.RandTumorSynthesisd`` (tumors pasted on the fly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from synthtumor import conventions

# The training's conventions, as JSON-able values (conventions imports without MONAI/torch).
HU_MIN, HU_MAX = conventions.HU_WINDOW
AIR_HU = conventions.AIR_HU
RAS_LABELS = [list(pair) for pair in conventions.RAS_LABELS]
CLASS_NAMES = {str(k): v for k, v in conventions.LABEL_NAMES.items()}
# Sliding-window settings of inference: Gaussian blending of overlapping ROI patches.
SW_OVERLAP = 0.5
SW_BATCH = 2
CKPT_FILE = "models/model.pt"

_DEVICE = "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')"


def network_def(desc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``network_def`` entry for a ``describe()`` dict (unet or swin_unetr).

    Raises:
        ValueError: an unknown architecture name.
    """
    name = desc.get("name")
    if name == "unet":
        return {
            "_target_": "UNet", "spatial_dims": 3, "in_channels": int(desc["in_channels"]),
            "out_channels": int(desc["out_channels"]), "channels": list(desc["channels"]),
            "strides": list(desc["strides"]), "num_res_units": int(desc["num_res_units"]),
        }
    if name == "swin_unetr":
        return {
            "_target_": "SwinUNETR", "spatial_dims": 3, "in_channels": int(desc["in_channels"]),
            "out_channels": int(desc["out_channels"]), "feature_size": int(desc["feature_size"]),
        }
    raise ValueError(f"unknown network architecture {name!r} (expected unet or swin_unetr)")


def _load_and_resample(keys: str | list[str], modes: str | list[str]) -> list[dict[str, Any]]:
    """Load, channel first, RAS, resample to ``@spacing_mm`` (as the training's cached part)."""
    return [
        {"_target_": "LoadImaged", "keys": keys, "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": keys},
        {"_target_": "Orientationd", "keys": keys, "axcodes": "RAS", "labels": RAS_LABELS},
        {"_target_": "Spacingd", "keys": keys, "pixdim": "@spacing_mm", "mode": modes},
    ]


def _hu_window() -> dict[str, Any]:
    return {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": "@hu_window#0",
            "a_max": "@hu_window#1", "b_min": 0.0, "b_max": 1.0, "clip": True}


def _common(desc: Mapping[str, Any], spacing_mm: float, roi: Sequence[int]) -> dict[str, Any]:
    return {
        "imports": ["$import glob", "$import os"],
        # Relative to the working directory: run from the bundle folder or pass --bundle_root.
        "bundle_root": ".",
        "device": _DEVICE,
        "spacing_mm": [float(spacing_mm)] * 3,
        "roi_size": [int(r) for r in roi],
        "hu_window": [HU_MIN, HU_MAX],
        "network_def": network_def(desc),
        "network": "$@network_def.to(@device)",
    }


def inference_config(desc: Mapping[str, Any], spacing_mm: float, roi: Sequence[int]
                     ) -> dict[str, Any]:
    """``configs/inference.json``: CT files in, uint8 label maps (0/1/2) out.

    Pipeline: every ``*.nii``/``*.nii.gz`` in ``@dataset_dir`` (or an overridden ``datalist``,
    a list of paths) -> load, RAS, resample to ``spacing_mm`` mm (bilinear), HU window
    [-21, 189] -> [0, 1] -> sliding-window inference over ``roi`` voxels (Gaussian, overlap 0.5)
    -> argmax -> ``Invertd`` back to the input grid (nearest) -> ``SaveImaged`` as
    ``<output_dir>/<case>_seg.nii.gz`` (uint8, the input's affine).
    """
    cfg = _common(desc, spacing_mm, roi)
    cfg.update({
        "dataset_dir": "$@bundle_root + '/data'",
        "output_dir": "$@bundle_root + '/eval'",
        "ckpt_path": f"$@bundle_root + '/{CKPT_FILE}'",
        "datalist": "$sorted(glob.glob(os.path.join(@dataset_dir, '*.nii.gz')) + "
                    "glob.glob(os.path.join(@dataset_dir, '*.nii')))",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": _load_and_resample("image", "bilinear") + [
                _hu_window(),
                {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
            ],
        },
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': f} for f in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {
            "_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
            "num_workers": 0,
        },
        "inferer": {
            "_target_": "SlidingWindowInferer", "roi_size": "@roi_size",
            "sw_batch_size": SW_BATCH, "overlap": SW_OVERLAP, "mode": "gaussian",
        },
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                # Undo resampling and reorientation with the image's own transform record,
                # nearest neighbour so the label ids survive.
                {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing",
                 "orig_keys": "image", "nearest_interp": True, "to_tensor": True},
                {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir",
                 "output_postfix": "seg", "output_ext": ".nii.gz",
                 "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": False,
                 "print_log": False},
            ],
        },
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "@ckpt_path",
             "load_dict": {"model": "@network"}, "map_location": "@device"},
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator", "device": "@device",
            "val_data_loader": "@dataloader", "network": "@network", "inferer": "@inferer",
            "postprocessing": "@postprocessing", "val_handlers": "@handlers",
            "amp": "$torch.cuda.is_available()",
        },
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    })
    return cfg


def train_config(desc: Mapping[str, Any], train: Mapping[str, Any]) -> dict[str, Any]:
    """``configs/train.json``: label-free training on healthy livers, as ``synthtumor train``.

    ``train`` is the checkpoint's run configuration (``TrainConfig.to_dict()``): spacing (mm),
    roi (voxels), margin_mm, synth_prob, lr, weight_decay, warmup, batch_size, steps are
    carried over. Data: ``@datalist_file``, an MSD-style datalist whose ``training`` list pairs
    CT (HU) with 0/1 liver labels (e.g. ``healthy.json`` from ``synthtumor data datalist``).
    """
    roi = [int(r) for r in train["roi"]]
    spacing = float(train["spacing"])
    margin = max(0, -(-float(train.get("margin_mm", 32.0)) // spacing))  # ceil(margin / spacing)
    cfg = _common(desc, spacing, roi)
    random_part = _train_random_part(roi)
    cached_part = _train_cached_part(int(margin))
    cfg.update({
        "dataset_dir": "$@bundle_root + '/data'",
        "datalist_file": "$@dataset_dir + '/healthy.json'",
        "ckpt_dir": "$@bundle_root + '/models/trained'",
        "synth_prob": float(train.get("synth_prob", 0.9)),
        "learning_rate": float(train.get("lr", 4e-4)),
        "weight_decay": float(train.get("weight_decay", 1e-5)),
        "warmup_steps": int(train.get("warmup", 50)),
        "batch_size": int(train.get("batch_size", 2)),
        # synthtumor counts optimizer steps; ignite counts epochs (passes over the datalist).
        "num_steps": max(1, int(train.get("steps", 1000))),
        "max_epochs": "$max(1, -(-@num_steps // len(@train#dataloader)))",
        "loss": {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True},
        "optimizer": {"_target_": "torch.optim.AdamW", "params": "$@network.parameters()",
                      "lr": "@learning_rate", "weight_decay": "@weight_decay"},
        "train": {
            "datalist": "$monai.data.load_decathlon_datalist(@datalist_file, True, 'training')",
            "preprocessing": {"_target_": "Compose", "transforms": cached_part + random_part},
            # The deterministic part (up to the liver crop) is cached once per case.
            "dataset": {"_target_": "CacheDataset", "data": "@train#datalist",
                        "transform": "@train#preprocessing", "cache_rate": 1.0,
                        "num_workers": 0, "progress": False},
            "dataloader": {"_target_": "DataLoader", "dataset": "@train#dataset",
                           "batch_size": "@batch_size", "shuffle": True, "num_workers": 0},
            "inferer": {"_target_": "SimpleInferer"},
            "lr_scheduler": {
                "_target_": "monai.optimizers.WarmupCosineSchedule", "optimizer": "@optimizer",
                "warmup_steps": "@warmup_steps",
                "t_total": "$@max_epochs * len(@train#dataloader)",
            },
            "handlers": [
                {"_target_": "LrScheduleHandler", "lr_scheduler": "@train#lr_scheduler",
                 "epoch_level": False, "print_lr": False},
                {"_target_": "StatsHandler", "tag_name": "train_loss",
                 "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
                {"_target_": "CheckpointSaver", "save_dir": "@ckpt_dir",
                 "save_dict": {"model": "@network"}, "save_final": True,
                 "final_filename": "model.pt"},
            ],
            "trainer": {
                "_target_": "SupervisedTrainer", "device": "@device",
                "max_epochs": "@max_epochs", "train_data_loader": "@train#dataloader",
                "network": "@network", "optimizer": "@optimizer", "loss_function": "@loss",
                "inferer": "@train#inferer", "train_handlers": "@train#handlers",
                "amp": "$torch.cuda.is_available()",
            },
        },
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@train#trainer.run()"],
    })
    return cfg


def _train_random_part(roi: list[int]) -> list[dict[str, Any]]:
    """Training transforms drawn anew for every sample: crop, synthesis, window, augmentation."""
    random_part: list[dict[str, Any]] = [
        {"_target_": "RandCropByPosNegLabeld", "keys": ["image", "label"],
         "label_key": "label", "spatial_size": "@roi_size", "pos": 1, "neg": 1,
         "num_samples": 1},
        # HU in, HU out: must run before the window.
        {"_target_": "synthtumor.adapters.monai.RandTumorSynthesisd", "keys": "image",
         "label_key": "label", "prob": "@synth_prob"},
        _hu_window(),
    ]
    random_part += [
        {"_target_": "RandFlipd", "keys": ["image", "label"], "prob": 0.2, "spatial_axis": axis}
        for axis in (0, 1, 2)
    ]
    if roi[0] == roi[1]:  # rot90 in the axial plane swaps x and y: only for square patches
        random_part.append({"_target_": "RandRotate90d", "keys": ["image", "label"],
                            "prob": 0.2, "max_k": 3})
    random_part += [
        {"_target_": "RandScaleIntensityd", "keys": "image", "factors": 0.1, "prob": 0.5},
        {"_target_": "RandShiftIntensityd", "keys": "image", "offsets": 0.1, "prob": 0.5},
        {"_target_": "DeleteItemsd", "keys": ["label_tumors"]},
        {"_target_": "EnsureTyped", "keys": ["image", "label"],
         "dtype": ["$torch.float32", "$torch.uint8"], "track_meta": False},
    ]
    return random_part


def _train_cached_part(margin: int) -> list[dict[str, Any]]:
    """Deterministic training transforms: load, resample, crop to the liver + ``margin`` voxels."""
    return _load_and_resample(["image", "label"], ["bilinear", "nearest"]) + [
        {"_target_": "CastToTyped", "keys": ["image", "label"],
         "dtype": ["$torch.float32", "$torch.uint8"]},
        {"_target_": "CropForegroundd", "keys": ["image", "label"], "source_key": "label",
         "margin": margin, "allow_smaller": True, "start_coord_key": None,
         "end_coord_key": None},
        {"_target_": "SpatialPadd", "keys": "image", "spatial_size": "@roi_size",
         "value": AIR_HU},
        {"_target_": "SpatialPadd", "keys": "label", "spatial_size": "@roi_size", "value": 0},
    ]
