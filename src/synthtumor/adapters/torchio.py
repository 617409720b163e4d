"""TorchIO adapter: :class:`RandomTumorSynthesis`, a random transform around ``synthesize()``.

::

    transform = tio.Compose([
        RandomTumorSynthesis(image_name="ct", label_name="label", p=0.9),   # HU in, HU out
        tio.Clamp(-21, 189), tio.RescaleIntensity((0, 1)),  # the reference window
    ])

Placement: before any intensity transform (it needs HU and raises ValueError on a scaled or
z-scored image); after a patch sampler or crop if there is one, so that only the patch is
synthesized.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch
from torchio import Image, LabelMap, Subject
from torchio.transforms import Transform
from torchio.transforms.augmentation import RandomTransform

from synthtumor.adapters._common import (
    AFFINE_ATOL_MM,
    SEED_LIMIT,
    default_tumor_label,
    liver_mask,
    merge_config,
    record_json,
    synthesize_step,
)
from synthtumor.synthesis import SynthesisConfig, case_vessels

__all__ = ["FindVessels", "RandomTumorSynthesis"]

def _single_channel(image: Image, name: str) -> torch.Tensor:
    """The (W, H, D) data of a single-channel (1, W, H, D) image, on the CPU."""
    data = image.data
    if data.shape[0] != 1:
        raise ValueError(f"image {name!r} must have one channel, got shape {tuple(data.shape)}")
    return data[0].detach().cpu()


def _ct_and_label(subject: Subject, image_name: str,
                  label_name: str) -> tuple[Image, Image, torch.Tensor, torch.Tensor]:
    """The CT and label images of ``subject`` and their (W, H, D) data; ValueError unless they
    share one grid."""
    image = cast(Image, subject[image_name])
    label = cast(Image, subject[label_name])
    ct = _single_channel(image, image_name)
    lab = _single_channel(label, label_name)
    if ct.shape != lab.shape:
        raise ValueError(f"CT {tuple(ct.shape)} and label {tuple(lab.shape)} differ in shape")
    if not np.allclose(image.affine, label.affine, atol=AFFINE_ATOL_MM):
        raise ValueError("CT and label affines differ: they must share one grid")
    return image, label, ct, lab


class RandomTumorSynthesis(RandomTransform):
    """Paste synthetic liver tumors into a healthy-liver CT of a ``tio.Subject``.

    Must run on CT in Hounsfield units, i.e. BEFORE intensity transforms such as
    ``Clamp``/``RescaleIntensity``: tumor intensities are drawn in HU.

    Args:
        image_name: the CT, a ``ScalarImage`` (1, W, H, D) in HU.
        label_name: the label, a ``LabelMap`` (1, W, H, D) on the same grid: 0 background, any
            other value but 2 liver. Subjects whose label already holds a 2 (real tumor) or
            whose liver is empty pass through unchanged.
        tumor_probs: probabilities of the tumor types ("tiny", "small", "medium", "large",
            "mix"); overrides ``config.tumor_probs`` (and any fixed ``config.tumor_type``).
        config: everything else about the tumors (default: the reference setup).
        record_key: if given, a JSON record of what was pasted (same layout as the MONAI
            adapter's) is stored as ``subject[record_key]`` for every subject, also those that
            TorchIO's ``p`` skipped (reason ``"not_drawn"``; TorchIO returns such a subject
            itself, so the record is added to it), so ``SubjectsLoader`` collates the records
            into a list of strings.
        profile: a synthesis profile (JSON path or ``SynthesisProfile``) applied to
            ``config`` before ``tumor_probs``.
        liver_label: the liver's id in a multi-organ label map (TotalSegmentator: 5); other
            ids are other organs and become 0 in the output. None: a 0/1/2 map.
        tumor_label: the id of real tumors in the input (subjects holding it are skipped);
            default 2 for 0/1/2 maps, none when ``liver_label`` is given.
        vessels_name: the subject's vessel mask from :class:`FindVessels` (a ``LabelMap`` on
            the CT's grid, cropped with it by patch samplers), for configs with
            ``avoid_vessels``: found once per subject instead of in every patch. None: found
            in the CT on every call.
        **kwargs: TorchIO's ``Transform`` arguments, e.g. ``p`` (probability of applying).

    Geometry: the CT's affine (voxel -> world RAS mm) gives spacing and the cranio-caudal axis.
    Output: the CT becomes float32 HU; the label becomes 0/1/2 in its own dtype (bool: uint8).

    Randomness: one seed drawn from torch's global RNG per call (after TorchIO's own draw for
    ``p``) seeds ``numpy.random.default_rng``, so ``torch.manual_seed`` reproduces the tumors
    and DataLoader workers, each with its own torch seed, draw different ones. Not invertible
    (no ``invert_transform`` attribute), and not written to the subject's history.

    Examples
    --------
    >>> import json, numpy as np, torch
    >>> x, y, z = np.ogrid[:64, :64, :48]  # a toy ellipsoid liver of 60 HU in air, 2 mm voxels
    >>> liver = ((x - 32) / 28) ** 2 + ((y - 32) / 24) ** 2 + ((z - 24) / 20) ** 2 <= 1
    >>> ct = np.random.default_rng(0).normal(60.0, 12.0, liver.shape).astype(np.float32)
    >>> ct[~liver] = -1000.0
    >>> import torchio as tio
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> subject = tio.Subject(
    ...     ct=tio.ScalarImage(tensor=torch.from_numpy(ct[None]), affine=affine),
    ...     label=tio.LabelMap(tensor=torch.from_numpy(liver[None].astype(np.uint8)),
    ...                        affine=affine))
    >>> _ = torch.manual_seed(0)
    >>> out = RandomTumorSynthesis(tumor_probs={"small": 1.0}, record_key="tumors")(subject)
    >>> out["label"].data.unique().tolist(), out["ct"].data.dtype
    ([0, 1, 2], torch.float32)
    >>> json.loads(out["tumors"])["applied"]
    True
    """

    def __init__(
        self,
        image_name: str = "ct",
        label_name: str = "label",
        tumor_probs: Mapping[str, float] | None = None,
        config: SynthesisConfig | None = None,
        record_key: str | None = None,
        profile: Any = None,
        liver_label: int | None = None,
        tumor_label: int | None = None,
        vessels_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vessels_name = vessels_name
        self.image_name = image_name
        self.label_name = label_name
        self.config = merge_config(config, tumor_probs, profile)
        self.record_key = record_key
        self.liver_label = liver_label
        self.tumor_label = default_tumor_label(liver_label, tumor_label)
        self.args_names = ["image_name", "label_name", "record_key"]  # for repr()
        self._stored = False  # whether this call wrote the record (else: p skipped it)

    def __call__(self, data: Any) -> Any:
        # TorchIO returns the input itself when its coin for ``p`` says no: give such subjects
        # their (empty) record too, replacing any older one, so every subject of a batch has
        # one that describes this call.
        self._stored = False
        out = super().__call__(data)
        if self.record_key is not None and isinstance(out, Subject) and not self._stored:
            self._store(out, record_json(None, None, "not_drawn"))
        return out

    def apply_transform(self, subject: Subject) -> Subject:
        # Drawn first, always, so that the torch stream advances the same for every subject.
        seed = int(torch.randint(0, SEED_LIMIT, (1,)).item())
        image, label, ct, lab = _ct_and_label(subject, self.image_name, self.label_name)
        vessels = None
        if self.vessels_name is not None:
            vessels = _single_channel(cast(Image, subject[self.vessels_name]),
                                      self.vessels_name).numpy() > 0
            if vessels.shape != ct.shape:
                raise ValueError(f"vessels {vessels.shape} and CT {tuple(ct.shape)} differ in "
                                 "shape: they must share one grid")

        # TorchIO runs apply_transform under np.errstate(all="raise"); the core is written and
        # tested under numpy's defaults, where a harmless warning must not abort training.
        with np.errstate(divide="warn", over="warn", under="ignore", invalid="warn"):
            step = synthesize_step(
                np.array(ct.numpy(), dtype=np.float32, copy=True), lab.numpy(), seed,
                self.config, affine=np.asarray(image.affine, dtype=np.float64),
                liver_label=self.liver_label, tumor_label=self.tumor_label,
                where="RandomTumorSynthesis", vessels=vessels,
            )
        self._store(subject, step.record)
        result = step.result
        if result is None:
            return subject
        device = image.data.device
        image.set_data(torch.from_numpy(result.ct)[None].to(device))
        dtype = torch.uint8 if label.data.dtype == torch.bool else label.data.dtype
        label.set_data(torch.from_numpy(result.label)[None].to(label.data.device, dtype))
        return subject

    def _store(self, subject: Subject, record: str) -> None:
        self._stored = True
        if self.record_key is not None:
            subject[self.record_key] = record
            subject.update_attributes()  # also as subject.<record_key>, like TorchIO's keys


class FindVessels(Transform):
    """The bright vessels inside the liver (``placement.find_vessels``), found once per subject
    and added to it as a ``LabelMap`` (uint8 0/1, the CT's grid and affine).

    Put it before a patch sampler, e.g. in the ``SubjectsDataset``'s transform of a
    ``tio.Queue``, and give its name to :class:`RandomTumorSynthesis` (``vessels_name``): the
    sampler crops the mask with the CT, and the synthesis avoids the subject's vessels without
    finding them again in every patch (a patch alone also sees fewer of them: its own
    brightness threshold, and vessels cut by its border may fall under the minimum size).

    Args:
        image_name: the CT, a ``ScalarImage`` (1, W, H, D) in HU.
        label_name: its label map (see :class:`RandomTumorSynthesis`).
        vessels_name: the name of the new ``LabelMap``.
        liver_label, tumor_label: as for :class:`RandomTumorSynthesis`.
        **kwargs: TorchIO's ``Transform`` arguments.

    Examples
    --------
    >>> import numpy as np, torch, torchio as tio
    >>> x, y, z = np.ogrid[:48, :48, :32]  # a toy liver of 60 HU with one bright vessel
    >>> liver = ((x - 24) / 20) ** 2 + ((y - 24) / 18) ** 2 + ((z - 16) / 14) ** 2 <= 1
    >>> ct = np.random.default_rng(0).normal(60.0, 5.0, liver.shape).astype(np.float32)
    >>> ct[~liver] = -1000.0
    >>> ct[20:23, 19:22, 6:26] = 200.0
    >>> affine = np.diag([1.5, 1.5, 2.0, 1.0])
    >>> subject = tio.Subject(
    ...     ct=tio.ScalarImage(tensor=torch.from_numpy(ct[None]), affine=affine),
    ...     label=tio.LabelMap(tensor=torch.from_numpy(liver[None].astype(np.uint8)),
    ...                        affine=affine))
    >>> vessels = FindVessels()(subject)["vessels"].data
    >>> vessels.dtype, int(vessels.sum()), bool(vessels[0, 21, 20, 15])
    (torch.uint8, 180, True)
    """

    def __init__(self, image_name: str = "ct", label_name: str = "label",
                 vessels_name: str = "vessels", liver_label: int | None = None,
                 tumor_label: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_name, self.label_name, self.vessels_name = image_name, label_name, vessels_name
        self.liver_label = liver_label
        self.tumor_label = default_tumor_label(liver_label, tumor_label)
        self.args_names = ["image_name", "label_name", "vessels_name"]  # for repr()

    def apply_transform(self, subject: Subject) -> Subject:
        image, _, ct, lab = _ct_and_label(subject, self.image_name, self.label_name)
        liver = liver_mask(lab.numpy(), self.liver_label, self.tumor_label)
        vessels = case_vessels(ct.numpy(), liver, affine=image.affine)
        assert vessels is not None  # no config: always found
        mask = torch.from_numpy(vessels.view(np.uint8)[None].copy())
        subject.add_image(LabelMap(tensor=mask, affine=image.affine), self.vessels_name)
        return subject
