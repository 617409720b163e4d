"""The benchmark's inputs: any datalist of CT cases, brought to NIfTI with 0/1/2 labels.

A datalist here is a MONAI/MSD-style JSON (``training`` / ``validation`` lists of
``{"image", "label"[, "case"]}``, paths relative to the JSON), e.g. the output of
``synthtumor data datalist``. Images may be NIfTI, NRRD/MHA or a DICOM series folder; labels
any integer map whose liver and tumor ids are given (:class:`LabelIds`). ``prepare_set``
writes every case as ``images/<case>.nii.gz`` (NIfTI input is referenced, not copied) and
``labels/<case>.nii.gz`` (uint8 0 background, 1 liver, 2 tumor, on the CT grid) plus a datalist,
so ``synthtumor train`` and ``synthtumor evaluate`` read them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.data.datalist import read_header, strip_image_suffix
from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json_file, write_json_atomic


@dataclass(frozen=True)
class LabelIds:
    """Which ids of a label map are liver and which tumor (all others: background)."""

    liver: tuple[int, ...] = (1,)
    tumor: tuple[int, ...] = (2,)

    def to_dict(self) -> dict[str, list[int]]:
        return {"liver": list(self.liver), "tumor": list(self.tumor)}


@dataclass(frozen=True)
class SourceCase:
    """One item of an input datalist: image (file or DICOM folder) and label file."""

    name: str
    image: Path
    label: Path


def read_cases(path: Path, keys: tuple[str, ...]) -> tuple[list[SourceCase], str]:
    """The cases of the first non-empty list among ``keys``; (cases, key used).

    Raises:
        InputError: unreadable JSON, none of the lists, an item without image and label, a
            file that does not exist (named with the datalist).
    """
    path = Path(path)
    data = read_json_file(path, "datalist")
    key = next((k for k in keys if isinstance(data, dict) and isinstance(data.get(k), list)
                and data[k]), None)
    if key is None:
        raise InputError(path, f"has no non-empty {' or '.join(repr(k) for k in keys)} list")
    cases: list[SourceCase] = []
    names: set[str] = set()
    for i, item in enumerate(data[key]):
        if not isinstance(item, dict) or not {"image", "label"} <= item.keys():
            raise InputError(path, f"item {i} of {key!r} lacks an image or a label")
        image, label = path.parent / str(item["image"]), path.parent / str(item["label"])
        if not image.exists():
            raise InputError(image, f"named in {path} does not exist")
        if not label.is_file():
            raise InputError(label, f"named in {path} does not exist")
        name = _case_name(item.get("case"), image, i, names)
        names.add(name)
        cases.append(SourceCase(name, image, label))
    return cases, key


def _case_name(case: Any, image: Path, i: int, taken: set[str]) -> str:
    raw = str(case) if case is not None else (strip_image_suffix(image.name) or image.name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or f"case{i}"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def check_headers(cases: list[SourceCase]) -> None:
    """Read every label header (and NIfTI/NRRD image header): InputError naming a bad file.
    Cheap: no voxel data is read (the dry run's check)."""
    for c in cases:
        read_header(c.label)
        if c.image.is_file():
            read_header(c.image)


def map_labels(labels: np.ndarray, ids: LabelIds, path: Path, *, healthy: bool) -> np.ndarray:
    """uint8 0/1/2 from an integer label map; InputError when the liver is absent or a healthy
    case holds tumor ids."""
    out = np.zeros(labels.shape, np.uint8)
    out[np.isin(labels, ids.liver)] = 1
    tumor = np.isin(labels, ids.tumor) if ids.tumor else np.zeros(labels.shape, bool)
    if healthy and tumor.any():
        raise InputError(path, f"holds tumor id(s) {list(ids.tumor)} but is listed as a "
                         "healthy case")
    out[tumor] = 2
    if not out.any():
        present = sorted(int(v) for v in np.unique(labels) if v != 0)[:10]
        raise InputError(path, f"holds no liver (ids {list(ids.liver)}); ids present: "
                         f"{present or 'none'} (see the --*-liver-id options)")
    return out


def prepare_set(cases: list[SourceCase], folder: Path, ids: LabelIds, *, healthy: bool,
                key: str = "training", progress: Callable[[str], None] = lambda _m: None
                ) -> Path:
    """Write ``folder/{images,labels}`` and ``folder/datalist.json`` (list ``key``) for
    ``cases``; cases already written by an earlier (killed) call are kept.

    Returns:
        The datalist path (absolute paths inside).

    Raises:
        InputError: unreadable images or labels, no liver, tumor in a healthy case.
    """
    from synthtumor.imaging import read_ct, read_labels, write_nifti

    datalist = folder / "datalist.json"
    for sub in ("images", "labels"):
        make_folder(folder / sub)
    items = []
    for c in cases:
        label_out = folder / "labels" / f"{c.name}.nii.gz"
        nifti = c.image.is_file() and c.image.name.lower().endswith((".nii", ".nii.gz"))
        image_out = c.image.absolute() if nifti else folder / "images" / f"{c.name}.nii.gz"
        if not (label_out.is_file() and image_out.is_file()):
            progress(f"reading {c.name}")
            ct = read_ct(c.image)
            lab = read_labels(c.label, ct)
            mapped = map_labels(lab.array, ids, c.label, healthy=healthy)
            if not nifti:
                write_nifti(image_out, ct.array, ct.affine, kind="ct")
            write_nifti(label_out, mapped, ct.affine, kind="label")
        items.append({"case": c.name, "image": str(image_out.absolute()),
                      "label": str(label_out.absolute()), "source_image": str(c.image),
                      "source_label": str(c.label)})
    write_json_atomic(datalist, {key: items, **({"training": []} if key != "training" else
                                                {"validation": []})})
    return datalist


def merge_datalists(paths: list[Path], out: Path) -> Path:
    """One training datalist holding the training items of ``paths`` (absolute paths)."""
    items: list[dict[str, Any]] = []
    for p in paths:
        data = read_json_file(p, "datalist")
        for item in data["training"]:
            items.append({**item, "image": str((p.parent / item["image"]).absolute()),
                          "label": str((p.parent / item["label"]).absolute())})
    write_json_atomic(out, {"training": items, "validation": []})
    return out
