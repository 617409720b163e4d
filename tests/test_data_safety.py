"""Nothing lost, nothing corrupted: CT values never wrap, --overwrite never deletes an input,
staging leftovers are cleaned, signals leave no debris, train refuses bad labels and changed
settings before writing, label maps with tumors are not silently flattened, zero spacings are
refused, and an existing empty output folder (a mount point, `.`) is written in place."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from conftest import LITS_CT, LITS_LABEL, TS_LIVER, TS_SMALL
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


# ---- 2: --overwrite never deletes an input --------------------------------------------------

def _small_case(folder: Path) -> tuple[Path, Path]:
    """The small CT and its 0/1 liver label, copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    img = nib.load(TS_SMALL)
    organs = np.asarray(nib.load(TS_SMALL_ORGANS).dataobj)
    ct, liver = folder / "ct.nii.gz", folder / "liver.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine), ct)
    nib.save(nib.Nifti1Image((organs == TS_LIVER).astype(np.uint8), img.affine), liver)
    return ct, liver


def test_synthesize_overwrite_refuses_an_out_holding_its_inputs(tmp_path: Path) -> None:
    """synthesize -o CASE --overwrite where CASE holds the CT and the mask"""
    case = tmp_path / "case"
    ct, liver = _small_case(case)
    before = {p.name: p.read_bytes() for p in case.iterdir()}
    result = run_cli("synthesize", ct, liver, "-o", case, "--overwrite")
    assert result.exit_code == 2
    assert "holds the input" in error_line(result) and str(case) in error_line(result)
    assert {p.name: p.read_bytes() for p in case.iterdir()} == before
    # the same folder given through a symlink is the same folder
    (tmp_path / "link").symlink_to(case)
    assert run_cli("synthesize", ct, liver, "-o", tmp_path / "link", "--overwrite"
                   ).exit_code == 2
    assert {p.name: p.read_bytes() for p in case.iterdir()} == before


def test_evaluate_overwrite_refuses_the_run_folder_of_its_checkpoint(tmp_path: Path) -> None:
    """evaluate --checkpoint RUN/last.pt --out RUN --overwrite"""
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"weights that took a week")
    data = tmp_path / "lits.json"
    data.write_text(json.dumps({"validation": [{"image": str(LITS_CT),
                                                "label": str(LITS_LABEL)}]}))
    result = run_cli("evaluate", "--checkpoint", run / "last.pt", "--data", data, "--out", run,
                     "--overwrite", "--device", "cpu")
    assert result.exit_code == 2
    assert "last.pt" in error_line(result) and "holds the input" in error_line(result)
    assert (run / "last.pt").read_bytes() == b"weights that took a week"


def _study_inputs(tmp_path: Path) -> tuple[Path, Path]:
    ct, liver = _small_case(tmp_path / "healthy")
    real = tmp_path / "real.json"
    real.write_text(json.dumps({"training": [{"image": str(LITS_CT), "label": str(LITS_LABEL)}]}))
    healthy = tmp_path / "healthy.json"
    healthy.write_text(json.dumps({"training": [{"image": str(ct), "label": str(liver)}]}))
    return real, healthy


def test_turing_build_overwrite_keeps_collected_answers(tmp_path: Path) -> None:
    """turing build -o STUDY --overwrite where STUDY holds readers' answers"""
    real, healthy = _study_inputs(tmp_path)
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    (study / "answers.sqlite").write_bytes(b"164 answers")
    args = ["turing", "build", "--real", real, "--healthy", healthy, "-o", study, "--overwrite",
            "--pixels", "32", "--slices", "3"]
    result = run_cli(*args)
    assert result.exit_code == 2 and "--discard-answers" in error_line(result)
    assert (study / "answers.sqlite").read_bytes() == b"164 answers"
    done = run_cli(*args, "--discard-answers")
    assert done.exit_code == 0, done.output
    assert not (study / "answers.sqlite").exists() and (study / "key.json").is_file()


def test_turing_build_overwrite_refuses_an_out_holding_its_datalist(tmp_path: Path) -> None:
    real, healthy = _study_inputs(tmp_path)
    result = run_cli("turing", "build", "--real", real, "--healthy", healthy, "-o", tmp_path,
                     "--overwrite")
    assert result.exit_code == 2 and "holds the input" in error_line(result)
    assert real.is_file() and healthy.is_file()


def test_nnunet_export_overwrite_refuses_a_dataset_folder_holding_its_inputs(
        tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "Dataset612_Mine"
    ct, liver = _small_case(folder / "sources")
    datalist = folder / "sources" / "list.json"
    datalist.write_text(json.dumps({"training": [{"image": str(ct), "label": str(liver),
                                                  "case": "a"}]}))
    result = run_cli("export", "nnunet", datalist, "--out", tmp_path / "raw", "--dataset-id",
                     "612", "--name", "Mine", "--variants", "0", "--overwrite")
    assert result.exit_code == 2 and "holds the input" in error_line(result)
    assert ct.is_file() and liver.is_file() and datalist.is_file()
