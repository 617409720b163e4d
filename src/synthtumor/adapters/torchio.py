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
from torchio import Image, Subject
from torchio.transforms.augmentation import RandomTransform

from synthtumor.adapters._common import (
    AFFINE_ATOL_MM,
    SEED_LIMIT,
    default_tumor_label,
    merge_config,
    record_json,
    synthesize_step,
)
from synthtumor.synthesis import SynthesisConfig

__all__ = ["RandomTumorSynthesis"]

def _single_channel(image: Image, name: str) -> torch.Tensor:
    """The (W, H, D) data of a single-channel (1, W, H, D) image, on the CPU."""
    data = image.data
    if data.shape[0] != 1:
        raise ValueError(f"image {name!r} must have one channel, got shape {tuple(data.shape)}")
    return data[0].detach().cpu()


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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        image = cast(Image, subject[self.image_name])
        label = cast(Image, subject[self.label_name])
        ct = _single_channel(image, self.image_name)
        lab = _single_channel(label, self.label_name)
        if ct.shape != lab.shape:
            raise ValueError(f"CT {tuple(ct.shape)} and label {tuple(lab.shape)} differ in shape")
        if not np.allclose(image.affine, label.affine, atol=AFFINE_ATOL_MM):
            raise ValueError("CT and label affines differ: they must share one grid")

        # TorchIO runs apply_transform under np.errstate(all="raise"); the core is written and
        # tested under numpy's defaults, where a harmless warning must not abort training.
        with np.errstate(divide="warn", over="warn", under="ignore", invalid="warn"):
            step = synthesize_step(
                np.array(ct.numpy(), dtype=np.float32, copy=True), lab.numpy(), seed,
                self.config, affine=np.asarray(image.affine, dtype=np.float64),
                liver_label=self.liver_label, tumor_label=self.tumor_label,
                where="RandomTumorSynthesis",
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
