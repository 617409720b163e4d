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
from synthtumor.imaging import Volume, read_case_labels, read_ct, read_mask, write_nifti
from synthtumor.synthesis import SynthesisConfig, SynthesisResult, synthesize

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
    ct_path: str | Path, liver_path: str | Path, liver_label: int | None = None
) -> tuple[Volume, Volume]:
    """Read a CT (HU) and its liver mask resampled onto the CT grid, with every check."""
    ct = read_ct(ct_path)
    liver = read_mask(liver_path, ct, label=liver_label)
    check_liver_hu(ct, liver.array, liver_path)
    return ct, liver


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
) -> SynthesisResult:
    """Synthesize tumors into ``ct`` and write ``out_dir`` with ct, label, tumors.json, preview.

    The folder is built under a temporary name beside ``out_dir`` and renamed into place at the
    end, so a failure leaves no partial output. An existing non-empty ``out_dir`` is refused
    unless ``overwrite``. ``step`` is called with a short message before each stage (progress).
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite)
    config = config or SynthesisConfig()
    if vessels is not None:
        config = replace(config, avoid_vessels=True)

    step("synthesizing tumors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = synthesize(
            ct.array, liver.array, np.random.default_rng(seed), config,
            affine=ct.affine, vessels=vessels,
        )
    notes = sorted({str(w.message) for w in caught})

    with staged_folder(out_dir) as tmp:
        step("writing NIfTI")
        ct_out = result.ct
        if np.array_equal(ct.array, np.rint(ct.array)):
            ct_out = np.rint(ct_out).astype(np.int16)  # scanner-like integer HU, half the size
        write_nifti(tmp / "ct.nii.gz", ct_out, ct.affine, kind="ct")
        write_nifti(tmp / "label.nii.gz", result.label, ct.affine, kind="label")
        record = {
            "synthtumor_version": __version__,
            "seed": seed,
            "tumor_type": result.tumor_type,
            "config": _config_dict(config),
            "sample": result.params,
            "inputs": source or {"ct": ct.path, "liver": liver.path},
            "spacing_mm": list(ct.spacing),
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
