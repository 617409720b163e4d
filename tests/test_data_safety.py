"""Nothing lost, nothing corrupted: CT values never wrap, --overwrite never deletes an input,
staging leftovers are cleaned, signals leave no debris, train refuses bad labels and changed
settings before writing, label maps with tumors are not silently flattened, zero spacings are
refused, and an existing empty output folder (a mount point, `.`) is written in place."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import catalogue
import nibabel as nib
import numpy as np
import pytest
from conftest import LITS_CT, LITS_LABEL, TS_CT, TS_LIVER, TS_ORGANS, TS_SMALL
from typer.testing import CliRunner

from synthtumor.cli import app

TS_SMALL_ORGANS = TS_SMALL.with_name("totalseg_ct_small_organs.nii.gz")
runner = CliRunner()


def run_cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _hot_int32_ct(folder: Path) -> tuple[Path, Path, np.ndarray]:
    """The small TotalSegmentator CT stored as int32 with 15 voxels at 40000 (outside the
    liver, beyond int16), and its 0/1 liver label."""
    img = nib.load(TS_SMALL)
    ct = np.asarray(img.dataobj).astype(np.int32)
    organs = np.asarray(nib.load(TS_SMALL_ORGANS).dataobj)
    outside = np.argwhere(organs == 0)[:15]
    ct[tuple(outside.T)] = 40000
    ct_path, label_path = folder / "hot_ct.nii.gz", folder / "hot_liver.nii.gz"
    nib.save(nib.Nifti1Image(ct, img.affine), ct_path)
    nib.save(nib.Nifti1Image((organs == TS_LIVER).astype(np.uint8), img.affine), label_path)
    return ct_path, label_path, ct


# ---- 1: CT values never wrap ----------------------------------------------------------------

def test_int32_ct_above_int16_keeps_its_values_through_synthesize(tmp_path: Path) -> None:
    ct_path, liver_path, ct = _hot_int32_ct(tmp_path)
    result = run_cli("synthesize", ct_path, liver_path, "-o", tmp_path / "out", "--type", "small")
    assert result.exit_code == 0, result.output
    out = nib.load(tmp_path / "out" / "ct.nii.gz")
    values = np.asarray(out.dataobj)
    label = np.asarray(nib.load(tmp_path / "out" / "label.nii.gz").dataobj)
    assert out.get_data_dtype() == np.int32
    assert (values == 40000).sum() == 15 and values.min() >= ct.min()
    assert np.array_equal(values[label == 0], ct[label == 0])  # outside the liver: untouched
    assert values[label == 2].mean() < ct[label == 2].mean() - 15  # tumors were pasted


def test_int32_ct_above_int16_is_copied_unchanged_by_nnunet_export(tmp_path: Path) -> None:
    ct_path, liver_path, ct = _hot_int32_ct(tmp_path)
    datalist = tmp_path / "hot.json"
    datalist.write_text(json.dumps({"training": [
        {"image": str(ct_path), "label": str(liver_path), "case": "hot"}]}))
    result = run_cli("export", "nnunet", datalist, "--out", tmp_path / "raw", "--dataset-id",
                     "611", "--name", "Hot", "--variants", "0")
    assert result.exit_code == 0, result.output
    copy = nib.load(tmp_path / "raw" / "Dataset611_Hot" / "imagesTr" / "hot_0000.nii.gz")
    assert np.array_equal(np.asarray(copy.dataobj), ct)  # the documented unchanged copy
    assert copy.get_data_dtype() == np.int32
