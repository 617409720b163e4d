"""`synthtumor train` with synthesis options: the run trains on tumors from the profile it was
given, stores that config (the profile's content, not only its path) and keeps it on resume."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import typer
from conftest import TS_CT, TS_LIVER, TS_ORGANS
from typer.testing import CliRunner

import synthtumor.adapters.monai as monai_adapter
from synthtumor.synthesis import SynthesisConfig
from synthtumor.synthesis_options import build_config
from synthtumor.train.cli import register

pytestmark = pytest.mark.xdist_group("train")

FAST = ["--roi", "32", "32", "32", "--spacing", "4", "--batch-size", "2", "--workers", "0",
        "--warmup", "1", "--synth-prob", "1.0", "--log-every", "1"]
RADIUS_MM = 30.0  # the profile's only class: large, semi-axes 0.75 r .. 1.25 r
DROP_HU = (30.0, 40.0)  # far from the reference's 65..145 HU
PROFILE = {
    "format": "synthtumor-profile/1",
    "types": {"large": {"probability": 1.0, "classes": [
        {"name": "large", "radius_mm": RADIUS_MM, "count": [1, 1],
         "elastic_sigma_mm": [5, 10], "integer_sigma": True}]}},
    "drop_hu": list(DROP_HU),
}


def _invoke(*args: str | Path) -> object:
    app = typer.Typer()
    register(app)
    app.command("noop", hidden=True)(lambda: None)  # keeps `train` a named sub-command
    return CliRunner().invoke(app, ["train", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """healthy.json: the TotalSegmentator case with a 0/1 liver label (from id 5)."""
    d = tmp_path_factory.mktemp("healthy")
    img = nib.load(TS_ORGANS)
    liver = (np.asarray(img.dataobj) == TS_LIVER).astype(np.uint8)
    nib.save(nib.Nifti1Image(liver, img.affine), d / "liver.nii.gz")
    (d / "healthy.json").write_text(json.dumps(
        {"training": [{"image": str(TS_CT), "label": "liver.nii.gz"}]}))
    return d / "healthy.json"


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every synthesis step the training loader takes (workers 0: in this process)."""
    taken: list = []
    real = monai_adapter.synthesize_step

    def spy(*args, **kwargs):
        step = real(*args, **kwargs)
        taken.append(step)
        return step

    monkeypatch.setattr(monai_adapter, "synthesize_step", spy)
    return taken


def _assert_from_profile(steps: list) -> None:
    applied = [s.result for s in steps if s.result is not None]
    assert applied, [s.reason for s in steps]
    for result in applied:
        assert result.tumor_type == "large"
        assert DROP_HU[0] <= result.params["drop_hu"] <= DROP_HU[1]
        assert len(result.tumors) == 1  # count [1, 1]
        for t in result.tumors:
            assert t.size_class == "large"
            assert all(0.75 * RADIUS_MM <= a <= 1.25 * RADIUS_MM for a in t.semi_axes_mm)


@pytest.mark.slow
def test_train_profile_reaches_the_tumors_and_resume_keeps_it(
    healthy: Path, tmp_path: Path, steps: list
) -> None:
    profile = tmp_path / "large.json"
    profile.write_text(json.dumps(PROFILE))
    wanted = build_config(profile=profile).to_dict()
    run = tmp_path / "run"
    result = _invoke("--data", healthy, "-o", run, "--steps", "3", "--save-every", "1",
                     "--profile", profile, *FAST)
    assert result.exit_code == 0, result.output
    _assert_from_profile(steps)

    stored = json.loads((run / "config.json").read_text())
    assert stored["synthesis"] == wanted
    assert stored["synthesis_profile"]["content"] == PROFILE
    assert SynthesisConfig.from_dict(stored["synthesis"]).profiles["large"][0].radius_mm == 30.0
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert state["config"]["synthesis"] == wanted

    # The profile file goes away; the resumed run still draws from it (stored content).
    profile.unlink()
    steps.clear()
    result = _invoke("--data", healthy, "-o", run, "--resume", "--steps", "6",
                     "--save-every", "1", *FAST)
    assert result.exit_code == 0, result.output
    assert "steps 4..6" in result.stderr
    _assert_from_profile(steps)
    assert json.loads((run / "config.json").read_text())["synthesis"] == wanted
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 6 and state["config"]["synthesis"] == wanted


@pytest.mark.slow
def test_train_without_options_stores_the_reference(healthy: Path, tmp_path: Path,
                                                    steps: list) -> None:
    run = tmp_path / "run"
    result = _invoke("--data", healthy, "-o", run, "--steps", "2", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["synthesis"] == \
        SynthesisConfig().to_dict()
    applied = [s.result for s in steps if s.result is not None]
    assert applied and all(65.0 <= r.params["drop_hu"] <= 145.0 for r in applied)


@pytest.mark.slow
def test_resume_with_another_synthesis_config_is_refused(healthy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = _invoke("--data", healthy, "-o", run, "--steps", "2", "--save-every", "1", *FAST)
    assert result.exit_code == 0, result.output
    before = (run / "last.pt").read_bytes()
    result = _invoke("--data", healthy, "-o", run, "--resume", "--steps", "4", "--type",
                     "large", *FAST)
    assert result.exit_code == 2
    assert "synthesis (another configuration)" in result.stderr
    assert "--allow-config-change" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (run / "last.pt").read_bytes() == before  # nothing trained, nothing rewritten
    result = _invoke("--data", healthy, "-o", run, "--resume", "--steps", "4", "--type",
                     "large", "--allow-config-change", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["synthesis"]["tumor_type"] == "large"


def test_vessel_avoiding_synthesis_gets_each_cases_vessels_cropped_with_the_patch(
    healthy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--realistic avoids vessels: the cached part finds them once per case (on the whole
    liver) and the patch's crop of that mask reaches the synthesis; the sample leaves without
    it. The reference method (no vessel avoidance) gets no mask."""
    from monai.transforms import Compose

    from synthtumor.train.transforms import cached_transforms, needs_vessels, train_transform

    item = json.loads(healthy.read_text())["training"][0]
    item = {"image": item["image"], "label": str(healthy.parent / item["label"]),
            "kind": "healthy"}
    roi = (32, 32, 32)
    cached = Compose(cached_transforms(4.0, roi, vessels=True))(dict(item))
    assert cached["vessels"].shape == cached["label"].shape
    assert not (_np_array(cached["vessels"]) > _np_array(cached["label"])).any()  # in the liver
    seen: list = []
    real = monai_adapter.synthesize_step

    def spy(*args, **kwargs):
        seen.append(kwargs.get("vessels"))
        return real(*args, **kwargs)

    monkeypatch.setattr(monai_adapter, "synthesize_step", spy)
    realistic = SynthesisConfig.realistic()
    assert needs_vessels(1.0, realistic) and not needs_vessels(1.0, SynthesisConfig())
    assert not needs_vessels(None, realistic)
    for synthesis in (realistic, SynthesisConfig()):
        transform = train_transform(4.0, roi, 1.0, synthesis=synthesis)
        transform.set_random_state(seed=0)
        out = transform(dict(item))
        sample = out[0] if isinstance(out, list) else out
        assert "vessels" not in sample and tuple(sample["image"].shape) == (1, *roi)
    assert seen[0] is not None and seen[0].shape == roi and seen[0].dtype == bool
    assert seen[1] is None


def _np_array(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
