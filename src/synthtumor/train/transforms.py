"""MONAI pipelines for training and validation.

Training = a deterministic part that is computed ONCE per case and cached (load, RAS, resample,
label check, crop to the liver) followed by a random part per sample (ROI crop, tumor
synthesis on the cropped patch only, HU window, flips, rot90, intensity jitter).
``CacheDataset``/``PersistentDataset`` cache everything before the first random transform.

Synthesis placement (README, "Where it goes"): in HU, before the window. It runs AFTER the ROI
crop here, for speed (about 5x cheaper per sample than on the liver-cropped volume); that is a
deliberate deviation from the method, which places tumors relative to the whole liver: after
the crop the sample's tumors are packed into the patch's part of the liver (denser tumors).
Synthesis that avoids vessels (``--realistic``) gets each case's vessel mask from the cached
part (found once, on the whole liver) and cropped with the patch.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    CastToTyped,
    Compose,
    CropForegroundd,
    DeleteItemsd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    Randomizable,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

from synthtumor.adapters.monai import FindVesselsd, RandTumorSynthesisd
from synthtumor.conventions import AIR_HU, HU_WINDOW, LIVER, RAS_LABELS, TUMOR, check_labels
from synthtumor.errors import InputError
from synthtumor.synthesis import SynthesisConfig

KEYS = ("image", "label")
VESSELS = "vessels"  # the case's vessel mask, when the synthesis avoids vessels
# Training window (method.md): HU clipped to [-21, 189], scaled to [0, 1]; padding is air.
HU_MIN, HU_MAX = HU_WINDOW
# Highest label id allowed per kind of case: healthy livers 0/1, real tumors 0/1/2.
MAX_LABEL = {"healthy": LIVER, "real": TUMOR}


class CheckLabelsd(MapTransform):
    """Refuse labels with ids other than 0/1 (healthy cases) or 0/1/2 (real-tumor cases).

    The kind comes from ``data["kind"]`` ("healthy" or "real"). Raises :class:`InputError`
    naming the label file (from the MetaTensor's ``filename_or_obj``).
    """

    def __init__(self, keys: KeysCollection = "label") -> None:
        super().__init__(keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        kind = str(d.get("kind", "real"))
        limit = MAX_LABEL[kind]
        for key in self.key_iterator(d):
            label = d[key]
            values = torch.unique(torch.as_tensor(label)).tolist()
            name = getattr(label, "meta", {}).get("filename_or_obj", str(key))
            check_labels(np.asarray(values), name)
            if max(values, default=0) > limit:
                raise InputError(
                    name,
                    "label holds tumor voxels (2) but is listed as a healthy case; synthetic "
                    "mode needs tumor-free livers (use --mode real or mixed for real tumors)",
                )
        return d


def margin_voxels(margin_mm: float, spacing: float) -> int:
    """Crop margin around the liver in voxels of the training grid."""
    return max(0, math.ceil(margin_mm / spacing))


def cached_transforms(
    spacing: float, roi: Sequence[int], margin_mm: float = 32.0, vessels: bool = False
) -> list[Any]:
    """The deterministic part (cached once per case): output channel-first HU image (float32)
    and uint8 0/1/2 label on a ``spacing`` mm RAS grid, cropped to the liver + margin and
    padded to at least ``roi`` voxels; with ``vessels`` also the case's vessel mask
    (``VESSELS``, uint8), for the synthesis to avoid."""
    out = _on_training_grid(spacing, margin_mm) + [
        SpatialPadd("image", spatial_size=tuple(roi), value=AIR_HU),
        SpatialPadd("label", spatial_size=tuple(roi), value=0),
    ]
    if vessels:
        out.append(FindVesselsd("image", label_key="label", vessels_key=VESSELS))
    return out


def needs_vessels(synth_prob: float | None, synthesis: SynthesisConfig | None) -> bool:
    """Whether the training pipeline finds each case's vessels (synthesis avoiding them)."""
    return synth_prob is not None and synthesis is not None and synthesis.avoid_vessels


def _on_training_grid(spacing: float, margin_mm: float) -> list[Any]:
    """Load, check labels, RAS, resample to ``spacing`` mm, crop to the liver + margin."""
    return [
        LoadImaged(KEYS, image_only=True),
        EnsureChannelFirstd(KEYS),
        CheckLabelsd("label"),
        Orientationd(KEYS, axcodes="RAS", labels=RAS_LABELS),
        Spacingd(KEYS, pixdim=(spacing,) * 3, mode=("bilinear", "nearest")),
        CastToTyped(KEYS, dtype=(torch.float32, torch.uint8)),
        CropForegroundd(
            KEYS, source_key="label", margin=margin_voxels(margin_mm, spacing),
            allow_smaller=True, start_coord_key=None, end_coord_key=None,
        ),
    ]


def random_transforms(roi: Sequence[int], synth_prob: float | None,
                      synthesis: SynthesisConfig | None = None) -> list[Any]:
    """The per-sample part: ROI crop (half centred on liver), tumor synthesis on the patch
    (``synth_prob`` None: none; ``synthesis``: how, default the reference method), HU window
    to [0, 1], flips, rot90, intensity jitter."""
    vessels = needs_vessels(synth_prob, synthesis)
    out: list[Any] = [
        RandCropByPosNegLabeld(KEYS + ((VESSELS,) if vessels else ()), label_key="label",
                               spatial_size=tuple(roi), pos=1, neg=1, num_samples=1),
    ]
    if synth_prob is not None:
        # After the crop (the patch only: cheap; see the module docstring) and before the HU
        # window (tumors are drawn in HU); the case's vessels are cropped with the patch.
        out.append(RandTumorSynthesisd("image", label_key="label", prob=synth_prob,
                                       config=synthesis,
                                       vessels_key=VESSELS if vessels else None))
        if vessels:
            out.append(DeleteItemsd([VESSELS]))
    out += [
        ScaleIntensityRanged("image", a_min=HU_MIN, a_max=HU_MAX, b_min=0.0, b_max=1.0, clip=True),
        RandFlipd(KEYS, prob=0.2, spatial_axis=0),
        RandFlipd(KEYS, prob=0.2, spatial_axis=1),
        RandFlipd(KEYS, prob=0.2, spatial_axis=2),
    ]
    if roi[0] == roi[1]:  # rot90 in the axial plane swaps x and y: only for square patches
        out.append(RandRotate90d(KEYS, prob=0.2, max_k=3))
    out += [
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ]
    if synth_prob is not None:  # the JSON record is not needed for training
        out.append(DeleteItemsd(["label_tumors"]))
    out += [
        EnsureTyped(KEYS, dtype=(torch.float32, torch.uint8), track_meta=False),
    ]
    return out


def train_transform(
    spacing: float, roi: Sequence[int], synth_prob: float | None, margin_mm: float = 32.0,
    synthesis: SynthesisConfig | None = None,
) -> Compose:
    """The full training pipeline; dict in ``{"image", "label", "kind"}`` (paths), dict out
    with ``image`` (1, *roi) float32 in [0, 1] (± jitter) and ``label`` (1, *roi) uint8.
    ``synthesis``: how the synthetic tumors are made (default: the reference method)."""
    return Compose(cached_transforms(spacing, roi, margin_mm,
                                     needs_vessels(synth_prob, synthesis))
                   + random_transforms(roi, synth_prob, synthesis))


def val_transform(spacing: float, margin_mm: float = 32.0) -> Compose:
    """Validation pipeline: the cached part without ROI padding, then the HU window."""
    return Compose(_on_training_grid(spacing, margin_mm) + [
        ScaleIntensityRanged("image", a_min=HU_MIN, a_max=HU_MAX, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(KEYS, dtype=(torch.float32, torch.uint8), track_meta=False),
    ])


def randomizable(transform: Any) -> list[Any]:
    """Every object inside a pipeline that owns a ``numpy.random.RandomState`` (``.R``): the
    transforms and the array transforms they delegate to (e.g. a dict crop's inner cropper),
    in a fixed order, so their states can be saved and restored.

    Walks attributes instead of ``Compose.flatten()``: building a Compose reseeds its
    transforms (from entropy unless MONAI's global seed is set).
    """
    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(getattr(obj, "R", None), np.random.RandomState):
            found.append(obj)
        children = obj.transforms if isinstance(obj, Compose) else vars(obj).values()
        for child in children:
            items = child if isinstance(child, list | tuple) else (child,)
            for c in items:
                if isinstance(c, Randomizable | Compose | MapTransform):
                    visit(c)

    visit(transform)
    return found


def find_input_error(err: BaseException) -> InputError | None:
    """The :class:`InputError` inside MONAI's wrapping (``RuntimeError('applying transform')``)."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, InputError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
