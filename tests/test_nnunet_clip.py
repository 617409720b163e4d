"""nnU-Net's CT clip, widened so that tumors keep their contrast: measured on totalseg_ct's
liver (plans as nnU-Net's fingerprint makes them) with synthetic tumors through the trainer's
own path, the plans file edit, and the command's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TS_CT, TS_ORGANS
from typer.testing import CliRunner

from synthtumor.cli import app
from synthtumor.imaging import read_ct, read_mask
from synthtumor.nnunet.clip import TUMOR_MARGIN_HU, is_widened, widen_plans_clip, widened
from synthtumor.nnunet.transform import CTIntensity, patch_affine, synthesize_normalised

runner = CliRunner()


@pytest.fixture(scope="module")
def liver_ct() -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    ct = read_ct(TS_CT)
    liver = read_mask(TS_ORGANS, ct, label=5).array > 0
    fg = ct.array[liver]
    props = {"mean": float(fg.mean()), "std": float(fg.std()),
             "percentile_00_5": float(np.percentile(fg, 0.5)),
             "percentile_99_5": float(np.percentile(fg, 99.5))}
    return ct.array, liver, props


def _synthetic_tumor(hu: np.ndarray, liver: np.ndarray, props: dict[str, float],
                     seed: int) -> tuple[np.ndarray, np.ndarray, CTIntensity]:
    """Network-input values of tumor and liver voxels after the trainer's synthesis."""
    intensity = CTIntensity.from_plans({"0": props})
    img, seg = intensity.from_hu(hu), liver.astype(np.int16)
    synthesize_normalised(img, seg, np.random.default_rng(seed),
                          intensity, patch_affine((3.0, 3.0, 3.0), cc_axis=2))
    return img[seg == 2], img[seg == 1], intensity


def test_widened_clip_keeps_dark_synthetic_tumors(liver_ct: tuple) -> None:
    hu, liver, props = liver_ct
    assert props["percentile_00_5"] == pytest.approx(-32.0, abs=1.0)  # the healthy liver's floor
    seed = 4  # the darkest of seeds 0-5 (tumor 0.5th percentile about -118 HU)
    tumor, liver_vals, intensity = _synthetic_tumor(hu, liver, props, seed)
    floor = intensity.from_hu(np.float32(intensity.lower))
    at_floor_before = float(np.mean(np.isclose(tumor, floor, atol=1e-4)))
    assert at_floor_before > 0.2  # measured 0.44 (seed 4; after widening 0.0002)
    wide = widened(props)
    assert wide["mean"] == props["mean"] and wide["std"] == props["std"]
    assert wide["percentile_00_5"] == pytest.approx(props["mean"] - TUMOR_MARGIN_HU)
    tumor_w, liver_w, intensity_w = _synthetic_tumor(hu, liver, wide, seed)
    floor_w = intensity_w.from_hu(np.float32(intensity_w.lower))
    assert float(np.mean(np.isclose(tumor_w, floor_w, atol=1e-4))) < 0.001
    # the same tumors (same draws), no longer flattened: darker on average, more texture
    assert tumor_w.size == tumor.size
    assert tumor_w.mean() < tumor.mean() - 0.2 and tumor_w.std() > tumor.std()
    # liver voxels inside the old range are unchanged: same mean and std
    assert liver_w.mean() == pytest.approx(liver_vals.mean(), abs=0.05)


def test_plans_file_is_widened_in_place_once(tmp_path: Path, liver_ct: tuple) -> None:
    _hu, _liver, props = liver_ct
    plans = {"dataset_name": "Dataset501_X", "configurations": {},
             "foreground_intensity_properties_per_channel": {"0": {**props, "median": 40.0}}}
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(plans))
    assert not is_widened(plans["foreground_intensity_properties_per_channel"]["0"])
    result = runner.invoke(app, ["export", "nnunet", "--widen-clip", str(path)])
    assert result.exit_code == 0, result.output
    assert "-32.0..79.0 HU -> -155.7..244.3 HU" in result.output
    new = json.loads(path.read_text())
    ch = new["foreground_intensity_properties_per_channel"]["0"]
    assert is_widened(ch) and ch["median"] == 40.0 and new["dataset_name"] == "Dataset501_X"
    assert ch["percentile_00_5"] == pytest.approx(props["mean"] - 200.0)
    assert ch["percentile_99_5"] == pytest.approx(props["mean"] + 200.0)
    before = path.read_bytes()
    assert widen_plans_clip(path)[0] == widen_plans_clip(path)[1]  # already wide: unchanged
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*"))  # no temp files left


def test_widen_clip_bad_plans_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "plans.json"
    bad.write_text('{"configurations": {}}')
    for target, needle in ((bad, "intensity properties"), (tmp_path / "nope.json", "not exist")):
        result = runner.invoke(app, ["export", "nnunet", "--widen-clip", str(target)])
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert bad.read_text() == '{"configurations": {}}'
