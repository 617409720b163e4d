"""Tumor synthesis inside nnU-Net's data augmentation, in its preprocessed space.

nnU-Net's CT preprocessing clips HU to the foreground's 0.5/99.5 percentiles and then computes
(HU - mean) / std. Patches reaching the augmentation are in that normalised space, resampled to
the configuration's spacing, with axes permuted by the plans' ``transpose_forward``. The pure
function ``synthesize_normalised`` undoes the normalisation, synthesizes in HU and redoes it
(including the clip, exactly as preprocessing would have treated a real tumor);
``SynthesisTransform`` wraps it as a batchgeneratorsv2 transform for nnU-Net's workers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from synthtumor.adapters._common import synthesize_step
from synthtumor.conventions import TUMOR
from synthtumor.synthesis import SynthesisConfig, SynthesisResult


@dataclass(frozen=True)
class CTIntensity:
    """nnU-Net's CTNormalization of one channel: clip to [lower, upper] HU, then
    (HU - mean) / std. Values from the plans' ``foreground_intensity_properties_per_channel``."""

    mean: float
    std: float
    lower: float
    upper: float

    @classmethod
    def from_plans(cls, properties: Mapping[str, Any], channel: int = 0) -> CTIntensity:
        """From ``plans['foreground_intensity_properties_per_channel']``."""
        p = properties[str(channel)]
        return cls(float(p["mean"]), max(float(p["std"]), 1e-8),
                   float(p["percentile_00_5"]), float(p["percentile_99_5"]))

    def to_hu(self, x: np.ndarray) -> np.ndarray:
        """Normalised values -> HU (float32); clipped voxels stay at the clip bounds."""
        return (np.asarray(x, np.float32) * np.float32(self.std) + np.float32(self.mean))

    def from_hu(self, hu: np.ndarray) -> np.ndarray:
        """HU -> normalised values (float32), clipping as nnU-Net's preprocessing does."""
        clipped = np.clip(np.asarray(hu, np.float32), self.lower, self.upper)
        return (clipped - np.float32(self.mean)) / np.float32(self.std)


def patch_affine(spacing: Sequence[float], cc_axis: int) -> np.ndarray:
    """A 4x4 affine for a preprocessed patch: ``spacing`` (mm, per patch axis) on the diagonal
    of a permutation that sends ``cc_axis`` to world z, so synthesis finds the cranio-caudal
    axis. Only axis identity and spacing matter to the synthesis, not the sign or origin."""
    others = [a for a in range(3) if a != cc_axis]
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for world, axis in zip((0, 1, 2), (*others, cc_axis)):
        affine[world, axis] = float(spacing[axis])
    return affine


def synthesize_normalised(
    image: np.ndarray,
    seg: np.ndarray,
    rng: np.random.Generator,
    intensity: CTIntensity,
    affine: np.ndarray,
    config: SynthesisConfig | None = None,
    *,
    liver_label: int = 1,
    tumor_label: int = 2,
) -> SynthesisResult | None:
    """Paste tumors into a normalised CT patch, in place.

    image: (x, y, z) float32 normalised CT (one channel). seg: (x, y, z) integer labels (nnU-Net
    pads with -1). Skipped (returns None, nothing changed) when the patch already holds
    ``tumor_label`` or no ``liver_label`` (the adapters' skip rule). Otherwise synthesizes in HU,
    writes the changed voxels back normalised, marks tumors ``tumor_label`` and returns the
    synthesis result (the core's warnings in ``params["warnings"]``). ValueError when the
    values, converted back, are not HU (wrong ``intensity``).
    """
    hu = intensity.to_hu(image)
    work = hu.copy()  # synthesized in place; ``hu`` tells which voxels changed
    # the adapters' one synthesis step: skip rule, HU check, quiet warnings (into the result)
    step = synthesize_step(work, seg, rng, config or SynthesisConfig(), affine=affine,
                           liver_label=liver_label, tumor_label=tumor_label,
                           where="nnUNetTrainerSynthTumor")
    result = step.result
    if result is None:
        return None
    changed = result.ct != hu
    image[changed] = intensity.from_hu(result.ct[changed])
    new = result.label
    seg[new == TUMOR] = tumor_label
    # mass effect may move the liver border: follow it, leaving other organs alone
    seg[(seg == liver_label) & (new == 0)] = 0
    seg[(seg == 0) & (new == 1)] = liver_label
    return result


class SynthesisTransform(BasicTransform):
    """batchgeneratorsv2 transform: synthesize tumors into patches without tumor.

    Works on nnU-Net's per-sample dicts: ``image`` (C, x, y, z) float tensor, ``segmentation``
    (C, x, y, z) int tensor; channel ``channel`` of the image is the CT, seg channel 0 the
    labels. Each sample is synthesized with ``probability``.

    Randomness comes from one ``numpy.random.Generator`` per process, created on first use from
    (``seed``, the process's multiprocessing identity): nnU-Net's augmentation workers, forked
    or spawned, draw different tumors; a single-process run with a given seed is reproducible.
    Pickles without its Generator.
    """

    def __init__(
        self,
        intensity: CTIntensity,
        spacing: Sequence[float],
        cc_axis: int,
        *,
        probability: float = 1.0,
        config: SynthesisConfig | None = None,
        seed: int | None = None,
        channel: int = 0,
        liver_label: int = 1,
        tumor_label: int = 2,
    ) -> None:
        super().__init__()
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.intensity = intensity
        self.affine = patch_affine(spacing, cc_axis)
        self.probability = float(probability)
        self.config = config or SynthesisConfig()
        # a fresh SeedSequence's entropy is one int (128 bits from the OS)
        self.seed = int(cast(int, np.random.SeedSequence().entropy) if seed is None else seed)
        self.channel = channel
        self.liver_label = liver_label
        self.tumor_label = tumor_label
        self.applied = 0  # samples that got tumors, in this process
        self._rng: np.random.Generator | None = None
        self._rng_pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_rng"] = state["_rng_pid"] = None
        return state

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None or self._rng_pid != os.getpid():
            identity = tuple(multiprocessing.current_process()._identity)  # () in the main one
            self._rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.seed >> 32, *identity])
            self._rng_pid = os.getpid()
        return self._rng

    def apply(self, data_dict: dict[str, Any], **params: Any) -> dict[str, Any]:
        image, seg = data_dict.get("image"), data_dict.get("segmentation")
        if image is None or seg is None or image.ndim != 4:
            return data_dict
        rng = self.rng
        if rng.random() >= self.probability:
            return data_dict
        # work on copies: the tensors may share memory with the loader's cached arrays
        work = image[self.channel].detach().cpu().numpy().astype(np.float32, copy=True)
        labels = seg[0].detach().cpu().numpy().astype(np.int16, copy=True)
        result = synthesize_normalised(work, labels, rng, self.intensity, self.affine,
                                       self.config, liver_label=self.liver_label,
                                       tumor_label=self.tumor_label)
        if result is not None:
            image[self.channel] = torch.from_numpy(work).to(image.dtype)
            seg[0] = torch.from_numpy(labels).to(seg.dtype)
            self.applied += 1
        return data_dict
