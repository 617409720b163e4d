"""MONAI adapter: :class:`RandTumorSynthesisd`, a dictionary transform around ``synthesize()``.

Tumors are pasted on the fly into channel-first CT of a MONAI pipeline::

    Compose([
        LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"]),
        RandTumorSynthesisd("image", label_key="label", prob=0.9),    # HU in, HU out
        ScaleIntensityRanged("image", a_min=-21, a_max=189, b_min=0, b_max=1, clip=True),
        RandCropByPosNegLabeld(["image", "label"], "label", (96, 96, 96)),
        ...
    ])

Placement (README, "Where it goes"): BEFORE any intensity scaling (it needs HU and raises
ValueError on a scaled or z-scored image). Before a random crop follows the method (tumors
placed relative to the whole liver); after it is cheaper but packs the sample's tumors into
the patch's part of the liver (denser tumors). Sizes are in mm through the affine, so it works
before or after resampling.

What was pasted is recorded as a JSON string under ``data[record_key]`` (default
``f"{label_key}_tumors"``), written for every sample, synthesized or not, so that MONAI's default
collation turns it into a list of strings, one per sample; :func:`load_tumor_records` decodes
either form.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy

from synthtumor.adapters._common import (
    AFFINE_ATOL_MM,
    SEED_LIMIT,
    default_tumor_label,
    liver_mask,
    load_tumor_records,
    merge_config,
    record_json,
    synthesize_step,
)
from synthtumor.synthesis import SynthesisConfig, case_vessels

__all__ = ["FindVesselsd", "RandTumorSynthesisd", "load_tumor_records", "record_json"]

def _spatial(array: Any, key: Hashable) -> np.ndarray:
    """The (H, W, D) numpy view of a channel-first (1, H, W, D) array or tensor."""
    if np.ndim(array) != 4 or array.shape[0] != 1:
        raise ValueError(
            f"data[{key!r}] must be channel-first (1, H, W, D), got shape {tuple(array.shape)}; "
            "use EnsureChannelFirstd and a single-channel image"
        )
    return convert_to_numpy(array)[0]


def _image_and_label(image: Any, label: Any, key: Hashable,
                     label_key: Hashable) -> tuple[np.ndarray, np.ndarray]:
    """The (H, W, D) arrays of a channel-first image and label; ValueError unless they share
    one grid."""
    ct, lab = _spatial(image, key), _spatial(label, label_key)
    if ct.shape != lab.shape:
        raise ValueError(f"image {ct.shape} and label {lab.shape} must share one grid (H, W, D)")
    return ct, lab


def _affine_from_meta(meta: Mapping[str, Any], key: Hashable) -> tuple[Any, Any]:
    """(affine, spacing) from a ``{key}_meta_dict``: its affine, else spacing, else pixdim."""
    if meta.get("affine") is not None:
        return convert_to_numpy(meta["affine"]), None
    if meta.get("spacing") is not None:
        return None, convert_to_numpy(meta["spacing"], wrap_sequence=True)
    if meta.get("pixdim") is not None:
        pixdim = np.ravel(convert_to_numpy(meta["pixdim"], wrap_sequence=True))
        # A NIfTI header pixdim is (qfac, sx, sy, sz, ...); a bare 3-vector is the spacing.
        return None, pixdim if pixdim.size == 3 else pixdim[1:4]
    raise ValueError(
        f"data[{key!r}] has no affine: RandTumorSynthesisd needs the voxel spacing (mm) to size "
        f"tumors; pass a MetaTensor (e.g. from LoadImaged) or put 'affine', 'spacing' or "
        f"'pixdim' in data['{key}_meta_dict']"
    )


class RandTumorSynthesisd(RandomizableTransform, MapTransform):
    """Paste synthetic liver tumors into a healthy-liver CT, with probability ``prob``.

    Must run on CT in Hounsfield units, i.e. BEFORE any intensity scaling such as
    ``ScaleIntensityRanged``: tumor intensities are drawn in HU.

    Args:
        keys: exactly one key, the CT image: channel-first (1, H, W, D) MetaTensor, tensor or
            array, HU. Several image keys are rejected (one synthesis cannot be shared across
            images here).
        label_key: the label, (1, H, W, D) on the same grid: 0 background, any other value but
            2 liver. Samples whose label already holds a 2 (real tumor) pass through unchanged,
            and so do samples with an empty liver.
        prob: probability of synthesizing tumors in a sample.
        tumor_probs: probabilities of the tumor types ("tiny", "small", "medium", "large",
            "mix"); overrides ``config.tumor_probs`` (and any fixed ``config.tumor_type``).
        config: everything else about the tumors (default: the reference setup).
        record_key: where the JSON record goes (default ``f"{label_key}_tumors"``), see
            :func:`record_json`; it is written for every sample so that batches collate.
        allow_missing_keys: skip samples without the image or label key instead of raising.
        profile: a synthesis profile (JSON path, e.g. from ``synthtumor realism --fit``, or a
            ``SynthesisProfile``) applied to ``config`` before ``tumor_probs``.
        liver_label: the liver's id in a multi-organ label map (TotalSegmentator: 5); other
            ids are other organs and become 0 in the output. None: a 0/1/2 map.
        tumor_label: the id of real tumors in the input (samples holding it are skipped);
            default 2 for 0/1/2 maps, none when ``liver_label`` is given.
        vessels_key: where :class:`FindVesselsd` put the case's vessel mask (cropped with the
            image), for configs with ``avoid_vessels``: found once per case instead of in
            every sample. None: found in each sample's own CT.

    Skips other than real tumors (no liver in the sample, a multi-organ map without
    ``liver_label``) warn once per process; every skip is in the record.

    Geometry: taken from the image's MetaTensor affine (voxel -> world mm, RAS in MONAI; an
    identity affine means 1 mm voxels). Plain arrays/tensors need
    ``data[f"{key}_meta_dict"]`` with "affine", "spacing" (mm) or "pixdim"; without an affine
    the last array axis is taken as cranio-caudal. ``ValueError`` when none is available.

    Output: the image becomes the synthesized CT (same container type, meta and device,
    float32, HU); the label becomes 0/1/2 (same container, meta and dtype; bool becomes uint8).

    Randomness: all of it comes from ``self.R`` (seeded by ``set_random_state``,
    ``Compose.set_random_state`` or MONAI's ``DataLoader`` worker seeding): ``randomize`` draws
    the coin and a 63-bit seed for ``numpy.random.default_rng``, on every call, so the stream
    advances the same way whether or not a sample gets tumors.

    Examples
    --------
    >>> import json, numpy as np, torch
    >>> x, y, z = np.ogrid[:64, :64, :48]  # a toy ellipsoid liver of 60 HU in air, 2 mm voxels
    >>> liver = ((x - 32) / 28) ** 2 + ((y - 32) / 24) ** 2 + ((z - 24) / 20) ** 2 <= 1
    >>> ct = np.random.default_rng(0).normal(60.0, 12.0, liver.shape).astype(np.float32)
    >>> ct[~liver] = -1000.0
    >>> from monai.data import MetaTensor
    >>> affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    >>> sample = {"image": MetaTensor(ct[None], affine=affine),
    ...           "label": MetaTensor(liver[None].astype(np.uint8), affine=affine)}
    >>> synth = RandTumorSynthesisd(keys="image", label_key="label", prob=1.0,
    ...                             tumor_probs={"small": 1.0})
    >>> _ = synth.set_random_state(seed=0)
    >>> out = synth(sample)
    >>> torch.unique(out["label"]).tolist(), out["image"].dtype
    ([0, 1, 2], torch.float32)
    >>> record = json.loads(out["label_tumors"])
    >>> record["applied"], record["tumor_type"], len(record["tumors"]) > 0
    (True, 'small', True)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection,
        label_key: Hashable,
        prob: float = 0.9,
        tumor_probs: Mapping[str, float] | None = None,
        config: SynthesisConfig | None = None,
        record_key: Hashable | None = None,
        allow_missing_keys: bool = False,
        profile: Any = None,
        liver_label: int | None = None,
        tumor_label: int | None = None,
        vessels_key: Hashable | None = None,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if len(self.keys) != 1:
            raise ValueError(
                f"RandTumorSynthesisd takes exactly one image key (the CT), got {self.keys}"
            )
        self.label_key = label_key
        self.config = merge_config(config, tumor_probs, profile)
        self.liver_label = liver_label
        self.tumor_label = default_tumor_label(liver_label, tumor_label)
        self.record_key = record_key if record_key is not None else f"{label_key}_tumors"
        self.vessels_key = vessels_key
        self._seed = 0

    def randomize(self, data: Any = None) -> None:
        """Draw whether to transform (``prob``) and the seed of the synthesis, from ``self.R``."""
        super().randomize(None)
        self._seed = int(self.R.randint(SEED_LIMIT, dtype=np.int64))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        key = self.keys[0]
        wanted = (key, self.label_key) + (() if self.vessels_key is None else (self.vessels_key,))
        missing = [k for k in wanted if k not in d]
        if missing:
            if not self.allow_missing_keys:
                raise KeyError(f"RandTumorSynthesisd: key(s) {missing} missing from the data")
            d[self.record_key] = record_json(None, None, "missing_key")
            return d
        if not self._do_transform:
            d[self.record_key] = record_json(None, None, "not_drawn")
            return d

        image, label = d[key], d[self.label_key]
        ct, lab = _image_and_label(image, label, key, self.label_key)
        vessels = None
        if self.vessels_key is not None:
            vessels = _spatial(d[self.vessels_key], self.vessels_key) > 0
            if vessels.shape != ct.shape:
                raise ValueError(f"vessels {vessels.shape} and image {ct.shape} must share one "
                                 "grid (H, W, D): crop them with the image")
        # our own float32 copy (the input sample stays as it was), synthesized in place
        step = synthesize_step(
            np.array(ct, dtype=np.float32, copy=True), lab, self._seed, self.config,
            geometry=lambda: self._geometry(d, key, image, label), liver_label=self.liver_label,
            tumor_label=self.tumor_label, where="RandTumorSynthesisd", vessels=vessels,
        )
        d[self.record_key] = step.record
        result = step.result
        if result is None:
            return d
        d[key] = convert_to_dst_type(result.ct[None], image, dtype=torch.float32)[0]
        d[self.label_key] = convert_to_dst_type(
            result.label[None], label, dtype=_label_dtype(label)
        )[0]
        return d

    @staticmethod
    def _geometry(
        d: Mapping[Hashable, Any], key: Hashable, image: Any, label: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(affine, spacing) for the core: the MetaTensor's affine, else the meta dict's."""
        if isinstance(image, MetaTensor):
            affine = convert_to_numpy(image.affine).astype(np.float64)
            if isinstance(label, MetaTensor) and not np.allclose(
                convert_to_numpy(label.affine), affine, atol=AFFINE_ATOL_MM
            ):
                raise ValueError("image and label affines differ: they must share one grid")
            return affine, None
        meta = d.get(f"{key}_meta_dict")
        return _affine_from_meta(meta if isinstance(meta, Mapping) else {}, key)


class FindVesselsd(MapTransform):
    """The bright vessels inside the liver (``placement.find_vessels``), found once per case.

    For pipelines that cache their deterministic part (``CacheDataset``) and synthesize with
    vessel avoidance on random patches: put this before the cache boundary and pass its key
    to :class:`RandTumorSynthesisd` (``vessels_key``), which then avoids the case's vessels
    instead of finding them again in every patch (where a patch's share of the liver sets the
    threshold, and vessels cut by its border may fall under the minimum size).

    Args:
        keys: exactly one key, the CT (channel-first, HU, with an affine as for
            :class:`RandTumorSynthesisd`).
        label_key: the label on the same grid (0/1/2, or organ ids with ``liver_label``).
        vessels_key: where the mask goes: uint8 0/1, channel-first, the label's container
            and meta (so that spatial transforms given this key move it with the image).
        liver_label, tumor_label: as for :class:`RandTumorSynthesisd`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from monai.data import MetaTensor
    >>> x, y, z = np.ogrid[:48, :48, :32]
    >>> liver = ((x - 24) / 20) ** 2 + ((y - 24) / 20) ** 2 + ((z - 16) / 14) ** 2 <= 1
    >>> ct = np.where(liver, 100.0, -1000.0).astype(np.float32)
    >>> ct[20:23, 10:38, 14:17] = 220.0  # a bright vessel, 3 x 28 x 3 voxels of 2 mm
    >>> affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    >>> out = FindVesselsd("image", "label")({
    ...     "image": MetaTensor(ct[None], affine=affine),
    ...     "label": MetaTensor(liver[None].astype(np.uint8), affine=affine)})
    >>> int(out["vessels"].sum()) > 100, bool(out["vessels"][0, 21, 20, 15])
    (True, True)
    """

    def __init__(self, keys: KeysCollection, label_key: Hashable,
                 vessels_key: Hashable = "vessels", liver_label: int | None = None,
                 tumor_label: int | None = None) -> None:
        super().__init__(keys)
        if len(self.keys) != 1:
            raise ValueError(f"FindVesselsd takes exactly one image key (the CT), got {self.keys}")
        self.label_key, self.vessels_key, self.liver_label = label_key, vessels_key, liver_label
        self.tumor_label = default_tumor_label(liver_label, tumor_label)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        key = self.keys[0]
        image, label = d[key], d[self.label_key]
        ct, lab = _image_and_label(image, label, key, self.label_key)
        affine, spacing = RandTumorSynthesisd._geometry(d, key, image, label)
        liver = liver_mask(lab, self.liver_label, self.tumor_label)
        vessels = case_vessels(ct, liver, spacing=spacing, affine=affine)
        assert vessels is not None  # no config: always found
        dtype = torch.uint8 if isinstance(label, torch.Tensor) else np.uint8
        d[self.vessels_key] = convert_to_dst_type(vessels.view(np.uint8)[None], label,
                                                  dtype=dtype)[0]
        return d


def _label_dtype(label: Any) -> torch.dtype | np.dtype:
    """The label's own dtype if it can hold 2, else uint8 (bool masks)."""
    dtype = label.dtype
    if dtype in (torch.bool, np.dtype(bool)):
        return torch.uint8 if isinstance(label, torch.Tensor) else np.dtype(np.uint8)
    return dtype
