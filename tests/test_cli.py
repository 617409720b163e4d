"""The command line on real CT: outputs, geometry, and one-line errors that leave nothing behind."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import DCMQI_DIR, DICOM_DIR, DICOM_ORGANS, TS_CT, TS_LIVER, TS_ORGANS
from typer.testing import CliRunner

from synthtumor.cli import app

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_synthesize_writes_the_four_outputs_on_the_ct_grid(tmp_path: Path) -> None:
    out = tmp_path / "case"
    result = run_cli("synthesize", TS_CT, TS_ORGANS, "-o", out, "--liver-label", TS_LIVER,
                     "--type", "medium", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ct.nii.gz", "label.nii.gz", "tumors.json", "preview.png"]
    )
    src = nib.load(TS_CT)
    ct, label = nib.load(out / "ct.nii.gz"), nib.load(out / "label.nii.gz")
    assert ct.shape == label.shape == src.shape
    assert np.allclose(ct.affine, src.affine) and np.allclose(label.affine, src.affine)
    assert label.get_data_dtype() == np.uint8
    lab = np.asarray(label.dataobj)
    organs = np.asarray(nib.load(TS_ORGANS).dataobj)
    assert set(np.unique(lab)) == {0, 1, 2}
    assert np.array_equal(lab > 0, organs == TS_LIVER)
    original = np.asarray(src.dataobj)
    new = np.asarray(ct.dataobj)
    assert np.array_equal(new[lab == 0], original[lab == 0])  # nothing outside the liver moves
    assert new[lab == 2].mean() < original[lab == 2].mean() - 15  # tumors are darker
    record = json.loads((out / "tumors.json").read_text())
    assert record["seed"] == 4 and record["tumor_type"] == "medium"
    assert not record["config"]["avoid_vessels"]  # the default run is the reference method
    assert 2 <= len(record["tumors"]) <= 5
    total_ml = (lab == 2).sum() * 27 / 1000
    assert sum(t["volume_ml"] for t in record["tumors"]) >= total_ml - 1e-6
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthesize_table_keeps_whole_rows_in_a_log(tmp_path: Path) -> None:
    """Into a pipe or a log file (CliRunner's output is not a terminal), the tumor table is
    printed at its full width: one line per tumor naming every effect, as tumors.json does."""
    out = tmp_path / "case"
    result = run_cli("synthesize", TS_CT, TS_ORGANS, "-o", out, "--liver-label", TS_LIVER,
                     "--type", "small", "--seed", "2", "--realistic")
    assert result.exit_code == 0, result.output
    tumors = json.loads((out / "tumors.json").read_text())["tumors"]
    assert tumors and all(len(t["effects"]) >= 2 for t in tumors)
    lines = result.output.splitlines()
    for t in tumors:
        row = re.compile(rf"^│\s*{t['index']} │ {t['size_class']}\b")
        (line,) = [x for x in lines if row.match(x)]
        assert ", ".join(t["effects"]) in line
    assert "…" not in result.output


def test_same_seed_same_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run_cli("synthesize", TS_CT, TS_ORGANS, "-o", tmp_path / name,
                         "--liver-label", TS_LIVER, "--seed", "9", "--vessels", "none")
        assert result.exit_code == 0, result.output
    for f in ("ct.nii.gz", "label.nii.gz"):
        a = np.asarray(nib.load(tmp_path / "a" / f).dataobj)
        b = np.asarray(nib.load(tmp_path / "b" / f).dataobj)
        assert a.tobytes() == b.tobytes()


def test_dicom_series_with_flipped_mask(tmp_path: Path) -> None:
    """The DICOM CT's mask is stored with a flipped y axis: it must land on the liver."""
    out = tmp_path / "dicom"
    result = run_cli("synthesize", DICOM_DIR, DICOM_ORGANS, "-o", out, "--liver-label",
                     TS_LIVER, "--type", "small", "--realistic")  # vessels: auto
    assert result.exit_code == 0, result.output
    ct = nib.load(out / "ct.nii.gz")
    lab = np.asarray(nib.load(out / "label.nii.gz").dataobj)
    assert ct.shape == (512, 512, 20)
    hu = np.asarray(ct.dataobj)
    assert 60 < np.median(hu[lab == 1]) < 130  # contrast-enhanced liver, not fat or air
    record = json.loads((out / "tumors.json").read_text())
    assert record["config"]["mass_effect"] and record["config"]["capsule"]
    assert record["config"]["avoid_vessels"] and record["sample"]["vessel_voxels"] > 1000


def test_too_small_liver_warns_not_crashes(tmp_path: Path) -> None:
    result = run_cli("synthesize", DCMQI_DIR, DCMQI_DIR / "liver.nrrd", "-o", tmp_path / "o",
                     "--type", "large")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "o" / "tumors.json").read_text())
    assert any("smaller than large tumors" in w for w in record["warnings"])


def test_existing_output_is_refused_then_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["synthesize", TS_CT, TS_ORGANS, "-o", out, "--liver-label", TS_LIVER, "--count", "1",
            "--type", "tiny"]
    result = run_cli(*args)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    assert run_cli(*args, "--overwrite").exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "ct.nii.gz").exists()


# ---- bad input: exit 2, one line naming the file, no output folder, no temp leftovers ----

def _bad_cases(tmp: Path) -> dict[str, tuple[list, str, str]]:
    """name -> (CLI args after 'synthesize', file named in the message, words in it)."""
    ct_img = nib.load(TS_CT)
    organs = np.asarray(nib.load(TS_ORGANS).dataobj)
    empty = tmp / "empty_liver.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(organs.shape, np.uint8), ct_img.affine), empty)
    far = tmp / "far_liver.nii.gz"
    shifted = ct_img.affine.copy()
    shifted[:3, 3] += 10_000.0
    nib.save(nib.Nifti1Image((organs == TS_LIVER).astype(np.uint8), shifted), far)
    nan_ct = tmp / "nan_ct.nii.gz"
    data = np.asarray(ct_img.dataobj).astype(np.float32)
    data[60, 50, 50] = np.nan
    nib.save(nib.Nifti1Image(data, ct_img.affine), nan_ct)
    raw_ct = tmp / "raw_ct.nii.gz"  # stored scanner values, no rescale: 0..4095
    nib.save(nib.Nifti1Image((np.asarray(ct_img.dataobj) + 1024).clip(0, 4095).astype(np.int16),
                             ct_img.affine), raw_ct)
    truncated = tmp / "truncated.nii.gz"
    blob = TS_CT.read_bytes()
    truncated.write_bytes(blob[: len(blob) // 2])
    two_series = tmp / "two_series"
    two_series.mkdir()
    for f in sorted(DCMQI_DIR.glob("*.dcm")):
        shutil.copy(f, two_series / f.name)
    for f in sorted(DICOM_DIR.iterdir())[:3]:
        shutil.copy(f, two_series / f"ts_{f.name}.dcm")
    liver = ["--liver-label", str(TS_LIVER)]
    return {
        "empty liver": ([TS_CT, empty], empty.name, "empty"),
        "multi-label without --liver-label": ([TS_CT, TS_ORGANS], TS_ORGANS.name, "--liver-label"),
        "no overlap": ([TS_CT, far], far.name, "overlap"),
        "NaN in CT": ([nan_ct, TS_ORGANS, *liver], nan_ct.name, "NaN"),
        "not HU": ([raw_ct, TS_ORGANS, *liver], raw_ct.name, "Hounsfield"),
        "truncated": ([truncated, TS_ORGANS, *liver], truncated.name, "truncated"),
        "two DICOM series": ([two_series, TS_ORGANS, *liver], two_series.name, "series"),
        "missing file": ([tmp / "nope.nii.gz", TS_ORGANS], "nope.nii.gz", "not"),
        # TotalSegmentator 17 is a lung lobe (about -800 HU): not a liver, or not HU
        "mask on the wrong organ": ([TS_CT, TS_ORGANS, "--liver-label", "17"], TS_CT.name,
                                    "not a liver"),
    }


BAD = ["empty liver", "multi-label without --liver-label", "no overlap", "NaN in CT", "not HU",
       "truncated", "two DICOM series", "missing file", "mask on the wrong organ"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, name, words = _bad_cases(inputs)[case]
    out = tmp_path / "results" / "out"
    result = run_cli("synthesize", *args, "-o", out)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert name in lines[0] and words.lower() in lines[0].lower(), lines[0]
    assert not out.exists()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_real_process_exit_code_and_stderr(tmp_path: Path) -> None:
    """Through the installed console script: status 2 and a single stderr line."""
    exe = Path(sys.executable).with_name("synthtumor")
    proc = subprocess.run([str(exe), "synthesize", str(TS_CT), str(TS_ORGANS), "-o",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--liver-label" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_demo_runs_on_the_phantom(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--synthesis-only", "--out", out, "--type", "medium", "--seed", "1")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "tumors.json").read_text())
    assert record["inputs"] == {"phantom_seed": 1} and record["tumors"]
    lab = np.asarray(nib.load(out / "label.nii.gz").dataobj)
    assert (lab == 2).sum() > 0


def test_gzip_is_real(tmp_path: Path) -> None:
    """Outputs are genuinely gzip-compressed NIfTI (3D Slicer / ITK-SNAP open them)."""
    out = tmp_path / "o"
    assert run_cli("synthesize", TS_CT, TS_ORGANS, "-o", out, "--liver-label", TS_LIVER,
                   "--type", "tiny").exit_code == 0
    with gzip.open(out / "label.nii.gz") as fh:
        assert int.from_bytes(fh.read(4), "little") == 348  # NIfTI-1 header size
