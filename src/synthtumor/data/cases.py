"""Pair images with labels and write MONAI/MSD-style datalists, a healthy list and k folds.

Pairing rule (``case_id``): a file's case id is its name without the image extension
(.nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd), then, for images only, without the nnU-Net channel
suffix ``_0000``; then without one leading role word (``img``, ``image``, ``images``,
``volume``, ``ct``, ``label``, ``labels``, ``seg``, ``segmentation``, ``mask``, ``gt``;
case-insensitive) followed by ``-``, ``_``, ``.`` or a digit, and then without one trailing
role word preceded by ``-``, ``_`` or ``.``. An image and a label pair when their case ids are
equal (case-sensitive). So ``img0001.nii.gz`` pairs with ``label0001.nii.gz`` (BTCV),
``volume-7.nii`` with ``segmentation-7.nii`` (LiTS), ``liver_3_0000.nii.gz`` with
``liver_3.nii.gz`` (nnU-Net), ``case9_ct.nii.gz`` with ``case9_label.nii.gz``, and identical
names in the two folders pair (MSD). Two files of one folder with the same case id are an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from synthtumor.errors import InputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_NNUNET_CHANNEL = "_0000"
# longest words first so the regex alternation prefers "images" over "image" over "img"
_ROLE_WORDS = (
    "segmentation", "volume", "images", "labels", "image", "label", "mask", "img", "seg", "ct",
    "gt",
)
_ROLES = "|".join(_ROLE_WORDS)
_PREFIX_RE = re.compile(rf"^(?:{_ROLES})(?:[-_.]|(?=\d))(?P<rest>.+)$", re.IGNORECASE)
_SUFFIX_RE = re.compile(rf"^(?P<rest>.+?)[-_.](?:{_ROLES})$", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """One image/label pair.

    Attributes:
        case_id: shared id from the pairing rule.
        image: image path (absolute, symlinks kept).
        label: label path (absolute, symlinks kept); None only for label-less items read with
            ``load_datalist(..., label_optional=True)``.
        has_tumor: whether the label holds tumor voxels (value 2); None before it was read.
    """

    case_id: str
    image: Path
    label: Path
    has_tumor: bool | None = None



def strip_image_suffix(file_name: str) -> str | None:
    """The name without its image extension, or None if it is not an image file name."""
    lower = file_name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(file_name) > len(suffix):
            return file_name[: -len(suffix)]
    return None


def case_id(file_name: str, *, image: bool) -> str | None:
    """Case id of an image (``image=True``) or label file name; None if not an image file.

    See the module docstring for the rule.
    """
    stem = strip_image_suffix(file_name)
    if stem is None:
        return None
    if image and stem.endswith(_NNUNET_CHANNEL) and len(stem) > len(_NNUNET_CHANNEL):
        stem = stem[: -len(_NNUNET_CHANNEL)]
    if m := _PREFIX_RE.match(stem):
        stem = m.group("rest")
    if m := _SUFFIX_RE.match(stem):
        stem = m.group("rest")
    return stem


def _by_case_id(folder: Path, *, image: bool) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(folder, "is not a folder" if folder.exists() else "does not exist")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():  # hidden files include macOS "._" debris
            continue
        cid = case_id(p.name, image=image)
        if cid is None:
            continue
        if cid in found:
            raise InputError(
                folder,
                f"{found[cid].name} and {p.name} both have case id {cid!r}; keep one of them",
            )
        found[cid] = p.absolute()
    return found


def pair_files(images_dir: str | os.PathLike[str], labels_dir: str | os.PathLike[str]) -> tuple[
    list[Case], list[Path], list[Path]
]:
    """Pair the image files of one folder with the label files of another by case id.

    Args:
        images_dir: folder of images (not recursive; hidden files ignored).
        labels_dir: folder of labels.

    Returns:
        (pairs sorted by case id, images without a label, labels without an image).

    Raises:
        InputError: a folder is missing, or two files of one folder share a case id.
    """
    images = _by_case_id(Path(images_dir), image=True)
    labels = _by_case_id(Path(labels_dir), image=False)
    cases = [Case(cid, images[cid], labels[cid]) for cid in sorted(images.keys() & labels.keys())]
    lone_images = [images[c] for c in sorted(images.keys() - labels.keys())]
    lone_labels = [labels[c] for c in sorted(labels.keys() - images.keys())]
    return cases, lone_images, lone_labels
