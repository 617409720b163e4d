"""File-level synthesis: read CT and liver, synthesize, write a complete output folder atomically.

The edge between the pure core (``synthtumor.synthesis``) and the command line: geometry comes from
the files, every problem with the inputs becomes one ``InputError`` line, and the output folder
appears whole or not at all.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor import __version__
from synthtumor.conventions import TUMOR
from synthtumor.errors import InputError
from synthtumor.files import check_output_folder, staged_folder
from synthtumor.imaging import (
    Volume,
    ct_values_to_store,
    read_case_labels,
    read_ct,
    read_labels,
    read_mask,
    write_nifti,
)
from synthtumor.synthesis import SynthesisConfig, SynthesisResult, kernels_compiled, synthesize

OUTPUT_FILES = ("ct.nii.gz", "label.nii.gz", "tumors.json", "preview.png")
_LIVER_HU = (-100.0, 300.0)  # a liver in HU, plain or contrast CT, sits well inside this


def check_liver_hu(ct: Volume, liver: np.ndarray, liver_path: str | Path) -> None:
    """Refuse a CT whose liver is not at liver HU: wrong units or a mask on the wrong organ."""
    median = float(np.median(ct.array[liver > 0]))
    if not _LIVER_HU[0] <= median <= _LIVER_HU[1]:
        raise InputError(
            ct.path,
            f"median HU inside the liver mask {Path(liver_path).name} is {median:.0f}, outside "
            f"{_LIVER_HU[0]:g}..{_LIVER_HU[1]:g}: the CT is not in Hounsfield units or the mask "
            "is not a liver",
        )


def load_case(
    ct_path: str | Path, liver_path: str | Path, liver_label: int | None = None, *,
    tumor_label: int | None = None, ignore_labels: tuple[int, ...] = (),
) -> tuple[Volume, Volume, np.ndarray | None]:
    """Read a CT (HU) and its liver mask resampled onto the CT grid, with every check.

    With ``liver_label`` (a multi-label map) every other id lying against the liver like a
    lesion inside it (see ``lesion_like_labels``) must be named: ``tumor_label`` (kept as real
    tumor: returned as a bool mask, not part of the liver) or one of ``ignore_labels``
    (treated as background); else InputError, since dropping real tumor to background would
    silently mislabel it.

    Returns:
        (CT, liver 0/1, real tumor mask or None), all on the CT grid (x, y, z).
    """
    ct = read_ct(ct_path)
    liver = read_mask(liver_path, ct, label=liver_label)
    check_liver_hu(ct, liver.array, liver_path)
    if liver_label is None:
        if tumor_label is not None:
            raise InputError(liver_path, "--tumor-label needs --liver-label (a label map)")
        return ct, liver, None
    labels = read_labels(liver_path, ct).array
    tumor = None
    if tumor_label is not None:
        if tumor_label in (0, liver_label):
            raise InputError(liver_path, f"--tumor-label {tumor_label} must differ from the "
                             "background (0) and the liver label")
        tumor = labels == tumor_label
        if not tumor.any():
            raise InputError(liver_path, f"tumor label {tumor_label} not present")
    suspects = [(v, share) for v, share in lesion_like_labels(labels, liver.array > 0)
                if v != tumor_label and v not in ignore_labels]
    if suspects:
        listed = ", ".join(f"{v} ({share:.0%} of its surface)" for v, share in suspects)
        raise InputError(liver_path, f"label(s) {listed} lie against the liver label "
                         f"{liver_label} like tumors inside it; pass --tumor-label ID to keep "
                         "real tumor as label 2 (no synthetic tumor over it), or --ignore-label "
                         "ID for a structure that is not tumor")
    return ct, liver, tumor


_LESION_CONTACT = 0.75  # share of a label's surface on the liver that marks it as inside it


def lesion_like_labels(labels: np.ndarray, liver: np.ndarray) -> list[tuple[int, float]]:
    """Ids of a label map that lie against ``liver`` like lesions inside it, with the share of
    their surface voxels that touch the liver (>= 0.75). Organs beside the liver touch it
    with a smaller share (TotalSegmentator maps of the test data: at most 0.65, the portal vein
    in a 20-slice crop; 0.31 on the whole abdomen); a tumor inside it with nearly all (LiTS
    case 117: 0.96). The volume's edges are not surface."""
    from scipy import ndimage

    near = ndimage.binary_dilation(liver)
    found = []
    for value in np.unique(labels[near & ~liver]):
        if value == 0:
            continue
        region = labels == value
        surface = region & ~ndimage.binary_erosion(region, border_value=1)
        share = float((surface & near).sum()) / max(1, int(surface.sum()))
        if share >= _LESION_CONTACT:
            found.append((int(value), share))
    return found


def load_healthy_case(image: str | Path, label: str | Path) -> tuple[Volume, np.ndarray]:
    """A healthy case to synthesize into: the CT (HU) and its uint8 0/1 liver mask, from a
    0/1 label map on any grid.

    Raises:
        InputError: naming the label file for tumor voxels, ids other than 0/1, an empty
            liver; naming the CT when its liver is not at liver HU.
    """
    ct = read_ct(image)
    labels = read_case_labels(label, ct).array
    if (labels == TUMOR).any():
        raise InputError(label, "holds tumor voxels (label 2); a healthy case needs a "
                         "tumor-free liver")
    liver = (labels == 1).astype(np.uint8)
    if not liver.any():
        raise InputError(label, "liver mask is empty")
    check_liver_hu(ct, liver, label)
    return ct, liver


def run_synthesis(
    ct: Volume,
    liver: Volume,
    out_dir: str | Path,
    *,
    seed: int = 0,
    config: SynthesisConfig | None = None,
    vessels: np.ndarray | None = None,
    overwrite: bool = False,
    step: Callable[[str], None] = lambda _msg: None,
    source: dict[str, Any] | None = None,
    real_tumor: np.ndarray | None = None,
) -> SynthesisResult:
    """Synthesize tumors into ``ct`` and write ``out_dir`` with ct, label, tumors.json, preview.

    The folder is built under a temporary name beside ``out_dir`` and renamed into place at the
    end, so a failure leaves no partial output. An existing non-empty ``out_dir`` is refused
    unless ``overwrite``. ``step`` is called with a short message before each stage (progress).
    ``real_tumor`` (bool mask, outside ``liver``): real tumor voxels, written as label 2 with
    their CT values unchanged; synthetic tumors stay inside ``liver``, off them.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite)
    config = config or SynthesisConfig()
    if vessels is not None:
        config = replace(config, avoid_vessels=True)

    step("synthesizing tumors" if kernels_compiled(config.appearance is not None) else
         "synthesizing tumors (first run: compiling the synthesis kernels, once, 20-35 s)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = synthesize(
            ct.array, liver.array, np.random.default_rng(seed), config,
            affine=ct.affine, vessels=vessels,
        )
    notes = sorted({str(w.message) for w in caught})
    if real_tumor is not None:
        result.label[real_tumor] = 2
        result.ct[real_tumor] = ct.array[real_tumor]  # mass effect may not move real tumor

    with staged_folder(out_dir) as tmp:
        step("writing NIfTI")
        write_nifti(tmp / "ct.nii.gz", ct_values_to_store(result.ct, ct), ct.affine, kind="ct")
        write_nifti(tmp / "label.nii.gz", result.label, ct.affine, kind="label")
        record = {
            "synthtumor_version": __version__,
            "seed": seed,
            "tumor_type": result.tumor_type,
            "config": _config_dict(config),
            "sample": result.params,
            "inputs": source or {"ct": ct.path, "liver": liver.path},
            "spacing_mm": list(ct.spacing),
            "real_tumor_voxels": None if real_tumor is None else int(real_tumor.sum()),
            "warnings": notes,
            "tumors": [t.to_dict() for t in result.tumors],
        }
        (tmp / "tumors.json").write_text(json.dumps(record, indent=2) + "\n")
        step("drawing preview")
        from synthtumor.preview import save_preview  # matplotlib: only where a preview is drawn

        largest = max(result.tumors, key=lambda t: t.volume_ml, default=None)
        save_preview(
            tmp / "preview.png", result.ct, result.label, ct.affine,
            centre_voxel=None if largest is None else _nearest_tumor_voxel(result.label, largest),
            title=f"{result.tumor_type} · seed {seed} · {len(result.tumors)} tumors",
        )
    result.params["warnings"] = notes
    return result


def _nearest_tumor_voxel(label: np.ndarray, tumor: Any) -> tuple[int, int, int]:
    """The drawn centre if it is tumor, else the tumor voxel closest to it."""
    centre = np.array(tumor.centre_voxel)
    if label[tuple(centre)] != TUMOR:
        idx = np.argwhere(label == TUMOR)
        centre = idx[np.argmin(((idx - centre) ** 2).sum(axis=1))]
    return (int(centre[0]), int(centre[1]), int(centre[2]))


def _config_dict(config: SynthesisConfig) -> dict[str, Any]:
    data = asdict(config)
    data["tumor_probs"] = dict(config.tumor_probs)
    return data
