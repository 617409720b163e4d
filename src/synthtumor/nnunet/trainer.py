"""``nnUNetTrainerSynthTumor``: nnU-Net v2's default trainer plus on-the-fly tumor synthesis.

Train on a dataset of healthy livers (labels 0 background, 1 liver, and a declared but unused
2 tumor; ``synthtumor export nnunet --variants 0`` writes one)::

    synthtumor export nnunet --install-trainer      # once: lets -tr find the class
    nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainerSynthTumor

Each training patch whose labels hold no tumor gets synthetic tumors (with
``synthesis_probability``) before nnU-Net's spatial augmentation, in HU converted from and back
to the plans' CT normalisation, at the configuration's spacing. It runs in nnU-Net's
augmentation workers (``nnUNet_n_proc_DA``). Validation patches are left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from synthtumor.adapters._common import merge_config
from synthtumor.nnunet.clip import is_widened
from synthtumor.nnunet.transform import CTIntensity, SynthesisTransform
from synthtumor.synthesis import SynthesisConfig


def stored_synthesis(dataset_json: dict) -> SynthesisConfig:
    """The synthesis config ``synthtumor export nnunet`` stored in dataset.json
    (``synthtumor.synthesis``), else the reference method."""
    stored = (dataset_json.get("synthtumor") or {}).get("synthesis")
    return SynthesisConfig() if stored is None else SynthesisConfig.from_dict(stored)


class nnUNetTrainerSynthTumor(nnUNetTrainer):  # noqa: N801 - nnU-Net's naming convention
    """nnUNetTrainer with ``SynthesisTransform`` first in the training transforms.

    The synthesis config: the one ``synthtumor export nnunet`` stored in dataset.json
    (``synthtumor.synthesis``, from its ``--type/--tumor-probs/--count/--realistic/--profile``),
    else the reference method.

    Tunables (set them in a subclass's ``__init__`` after ``super().__init__``):
    synthesis_probability (default 0.9), synthesis_config (``SynthesisConfig``, replaces the
    stored one), synthesis_profile (a profile JSON path or ``SynthesisProfile`` applied on top),
    synthesis_seed (None: fresh entropy per run).
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")) -> None:  # noqa: B008 - nnU-Net's
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.synthesis_probability = 0.9
        self.synthesis_config = stored_synthesis(dataset_json)
        self.synthesis_profile: Any = None
        self.synthesis_seed: int | None = None

    def synthesis_transform(self) -> SynthesisTransform:
        """The transform, configured from the plans (normalisation, spacing, axis order) and
        the dataset's labels. Raises RuntimeError for setups it cannot serve."""
        cm, pm = self.configuration_manager, self.plans_manager
        if len(cm.patch_size) != 3:
            raise RuntimeError(f"{type(self).__name__} needs a 3-D configuration (3d_fullres, "
                               f"3d_lowres), not {self.configuration_name!r}")
        schemes = cm.normalization_schemes
        if not schemes or schemes[0] != "CTNormalization":
            raise RuntimeError(f"{type(self).__name__} needs channel 0 to be CT "
                               f"(CTNormalization), got {schemes}")
        labels = self.dataset_json.get("labels", {})
        if self.label_manager.has_regions or "tumor" not in labels or "liver" not in labels:
            raise RuntimeError(f"{type(self).__name__} needs plain labels named 'liver' and "
                               f"'tumor' in dataset.json, got {labels}")
        props = pm.foreground_intensity_properties_per_channel["0"]
        if not is_widened(props):
            self.print_to_log_file(
                "synthtumor warning: the plans clip CT to "
                f"{props['percentile_00_5']:.0f}..{props['percentile_99_5']:.0f} HU (the healthy "
                "liver's range): darker tumors reach the network at that floor. Run `synthtumor "
                "export nnunet --widen-clip PLANS` before nnUNetv2_preprocess.",
                also_print_to_console=True)
        # array axis 0 of nnU-Net's readers is the slice (k) axis: cranio-caudal for axial CT
        cc_axis = list(pm.transpose_forward).index(0)
        return SynthesisTransform(
            CTIntensity.from_plans(pm.foreground_intensity_properties_per_channel, 0),
            [float(s) for s in cm.spacing], cc_axis,
            probability=self.synthesis_probability,
            config=merge_config(self.synthesis_config, None, self.synthesis_profile),
            seed=self.synthesis_seed, channel=0,
            liver_label=int(labels["liver"]), tumor_label=int(labels["tumor"]),
        )

    def get_training_transforms(  # type: ignore[override]
        self,
        patch_size: np.ndarray | tuple[int, ...],
        rotation_for_DA: Any,  # noqa: N803 - nnU-Net's parameter name
        deep_supervision_scales: list | tuple | None,
        mirror_axes: tuple[int, ...],
        do_dummy_2d_data_aug: bool,
        use_mask_for_norm: list[bool] | None = None,
        is_cascaded: bool = False,
        foreground_labels: tuple[int, ...] | list[int] | None = None,
        regions: list | None = None,
        ignore_label: int | None = None,
    ) -> Any:
        """nnU-Net's training transforms with tumor synthesis first (on the un-augmented
        patch, before any 3D->2D conversion, spatial or intensity augmentation)."""
        compose = nnUNetTrainer.get_training_transforms(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
            do_dummy_2d_data_aug, use_mask_for_norm, is_cascaded, foreground_labels, regions,
            ignore_label,
        )
        compose.transforms.insert(0, self.synthesis_transform())
        self.print_to_log_file(f"synthtumor: tumors synthesized on the fly "
                               f"(p={self.synthesis_probability})", also_print_to_console=False)
        return compose
