"""`synthtumor benchmark efficacy` and the GPU check's smoke run.

The end-to-end tests use a tiny variant of the cpu preset (a few steps of 32³ patches on a
4 mm grid) on real CT: healthy TotalSegmentator CT (liver id 5) for the synthetic arm and
LiTS case 117 (real tumors, never trained on) as the held-out test case.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import DICOM_DIR, DICOM_ORGANS, LITS_CT, LITS_LABEL, TS_ORGANS, TS_SMALL
from typer.testing import CliRunner

from synthtumor.benchmark import arms as arms_mod
from synthtumor.benchmark.cases import LabelIds, prepare_set, read_cases
from synthtumor.benchmark.preset import load_preset, preset_toml
from synthtumor.cli import app
from synthtumor.data.datalist import build_datalist
from synthtumor.imaging import read_ct, write_nifti

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("arm", "model", "steps", "tumor_dice", "tumor_dice_global", "tumor_nsd",
           "liver_dice", "found_0-5", "found_5-10", "found_>10", "false_positives_per_case")


def _tiny_preset(folder: Path) -> Path:
    path = folder / "tiny.toml"
    path.write_text(preset_toml(
        load_preset("cpu"), arms=["synthetic", "phantom"],
        train={"steps": 6, "roi": [32, 32, 32], "spacing": 4.0, "batch_size": 1,
               "workers": 0, "save_every": 2, "warmup": 2},
        phantoms={"n": 1, "workers": 1, "inplane_mm": [4.0, 4.0], "slice_mm": [4.0, 4.0]}))
    return path


def _inputs(folder: Path) -> tuple[Path, Path]:
    healthy = folder / "healthy.json"
    healthy.write_text(json.dumps({"training": [
        {"case": "ts_small", "image": str(TS_SMALL), "label": str(TS_ORGANS.with_name(
            "totalseg_ct_small_organs.nii.gz"))}]}))
    test = folder / "lits117.json"
    test.write_text(json.dumps({"validation": [
        {"case": "lits117", "image": str(LITS_CT), "label": str(LITS_LABEL)}]}))
    return healthy, test


def _command(preset: Path, healthy: Path, test: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "synthtumor.cli", "benchmark", "efficacy", "--preset",
            str(preset), "--healthy", str(healthy), "--healthy-liver-id", "5", "--test",
            str(test), "--device", "cpu", "--out", str(out), *extra]


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "efficacy.csv").open() as f:
        return {r["arm"]: {k: r[k] for k in METRICS} for r in csv.DictReader(f)}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _processes_writing(folder: Path) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if str(folder).encode() in (p / "cmdline").read_bytes():
                    pids.append(int(p.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_kill_9_in_second_arm_then_same_command_resumes(tmp_path: Path) -> None:
    preset = _tiny_preset(tmp_path)
    healthy, test = _inputs(tmp_path)
    out = tmp_path / "bench"
    cmd = _command(preset, healthy, test, out)
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    second = out / "runs" / "phantom-unet" / "last.pt"
    deadline = time.monotonic() + 600
    while not second.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert second.is_file(), "the second arm never wrote a checkpoint"
    import torch

    killed_at = int(torch.load(second, map_location="cpu", weights_only=True)["step"])
    assert killed_at < 6, "the second arm finished before the kill: nothing tested"
    time.sleep(1.0)
    assert _processes_writing(out / "runs") == []  # the training process died with it
    assert not (out / "efficacy.csv").exists()

    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "synthetic-unet: trained (6 steps), not re-run" in done.stderr
    logs = {arm: (out / "runs" / f"{arm}-unet" / "train.log").read_text()
            for arm in ("synthetic", "phantom")}
    assert logs["synthetic"].count("\n$ ") + logs["synthetic"].startswith("$ ") == 1
    commands = [ln for ln in logs["phantom"].splitlines() if ln.startswith("$ ")]
    assert len(commands) == 2 and commands[1].endswith("--resume")
    assert f"steps {killed_at + 1}..6" in logs["phantom"]

    reference = tmp_path / "reference"
    ref = subprocess.run(_command(preset, healthy, test, reference, "--arms", "synthetic"),
                         env=_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    rows, ref_rows = _rows(out), _rows(reference)
    assert rows["synthetic"] == ref_rows["synthetic"]
    assert rows["phantom"]["steps"] == "6"
    assert float(rows["synthetic"]["liver_dice"]) > 0  # a real evaluation on LiTS 117
    md = (out / "efficacy.md").read_text()
    assert "| synthetic | unet |" in md and "| phantom | unet |" in md
    assert (out / "efficacy.png").stat().st_size > 1000
    assert json.loads((out / "efficacy.json").read_text())["arms"] == ["synthetic", "phantom"]


def _public_layout(folder: Path, healthy: int, tumor: int) -> Path:
    """A `synthtumor data datalist` output over tiny cases named like the public sets."""
    images, labels = folder / "images", folder / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    ct = np.full((4, 4, 4), 60, np.int16)
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    # numbered from 1: a "_0000" ending is read as an nnU-Net channel suffix
    names = ([f"btcv_img{i:04d}" for i in range(1, 48)]
             + [f"pancreas_{i:04d}" for i in range(1, 39)]
             + [f"chaos_{i:02d}" for i in range(1, 21)])
    names += [f"lits_{i:03d}" for i in range(1, healthy - len(names) + tumor + 1)]
    for k, name in enumerate(names):
        t = lab.copy()
        if k >= healthy:
            t[1, 1, 1] = 2
        write_nifti(images / f"{name}.nii.gz", ct, aff, kind="ct")
        write_nifti(labels / f"{name}.nii.gz", t, aff, kind="label")
    out = folder / "datalists"
    build_datalist(images, labels, out, folds=5)
    return out


def test_paper_preset_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    lists = _public_layout(tmp_path, healthy=116, tumor=10)
    out = tmp_path / "bench"
    res = CliRunner().invoke(app, ["benchmark", "efficacy", "--preset", "paper", "--healthy",
                                   str(lists / "healthy.json"), "--real", str(lists),
                                   "--out", str(out), "--dry-run"])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "arms: synthetic, real; networks: unet, swin_unetr; folds: 5" in text
    assert "232000 steps, batch 2, patch 96x96x96 voxels, 1 mm grid" in text
    assert "healthy CTs: 116 (published protocol: 116)" in text
    for k in range(5):
        assert f"real-tumor training cases fold {k}: 8" in text
        assert f"held-out test cases fold {k}: 2" in text
    # U-Net and Swin UNETR: one synthetic run each + one real run per fold
    assert "training runs (12)" in text and "evaluations: 20" in text
    assert "expected training time on one GPU: 145.0 h" in text
    assert not out.exists()


def test_paper_dry_run_names_a_missing_fold(tmp_path: Path) -> None:
    lists = _public_layout(tmp_path, healthy=116, tumor=10)
    (lists / "fold_3.json").unlink()
    res = CliRunner().invoke(app, ["benchmark", "efficacy", "--preset", "paper", "--healthy",
                                   str(lists / "healthy.json"), "--real", str(lists),
                                   "--out", str(tmp_path / "b"), "--dry-run"])
    assert res.exit_code == 2 and "fold_3.json" in res.output


def test_test_case_in_training_set_is_refused(tmp_path: Path) -> None:
    healthy, test = _inputs(tmp_path)
    healthy.write_text(json.dumps({"training": [
        {"image": str(LITS_CT), "label": str(LITS_LABEL)}]}))
    res = CliRunner().invoke(app, ["benchmark", "efficacy", "--preset", "cpu", "--healthy",
                                   str(healthy), "--test", str(test), "--out",
                                   str(tmp_path / "b"), "--dry-run"])
    assert res.exit_code == 2 and "must never be trained on" in res.output


def test_dicom_case_with_organ_ids_becomes_nifti_liver_mask(tmp_path: Path) -> None:
    src = tmp_path / "h.json"
    src.write_text(json.dumps({"training": [{"case": "dcm", "image": str(DICOM_DIR),
                                             "label": str(DICOM_ORGANS)}]}))
    cases, _ = read_cases(src, ("training",))
    datalist = prepare_set(cases, tmp_path / "out", LabelIds((5,), ()), healthy=True)
    item = json.loads(datalist.read_text())["training"][0]
    ct = read_ct(DICOM_DIR)
    img = nib.load(item["image"])
    lab = np.asarray(nib.load(item["label"]).dataobj)
    assert img.shape == ct.shape == lab.shape
    assert np.allclose(img.affine, ct.affine, atol=1e-3)
    assert set(np.unique(lab)) == {0, 1}
    assert 50 < float(np.median(np.asarray(img.dataobj)[lab == 1])) < 150  # contrast liver HU


def test_other_label_ids_map_to_0_1_2(tmp_path: Path) -> None:
    """A LiTS label stored with liver 7 and tumor 9 gives the same 0/1/2 map as the original."""
    original = nib.load(LITS_LABEL)
    arr = np.asarray(original.dataobj).astype(np.uint8)
    remapped = np.select([arr == 1, arr == 2], [7, 9], 0).astype(np.uint8)
    write_nifti(tmp_path / "lab79.nii.gz", remapped, original.affine, kind="label")
    src = tmp_path / "t.json"
    src.write_text(json.dumps({"validation": [{"image": str(LITS_CT),
                                               "label": str(tmp_path / "lab79.nii.gz")}]}))
    cases, key = read_cases(src, ("validation", "training"))
    out = prepare_set(cases, tmp_path / "t", LabelIds((7,), (9,)), healthy=False, key=key)
    item = json.loads(out.read_text())["validation"][0]
    assert np.array_equal(np.asarray(nib.load(item["label"]).dataobj), arr)
    with pytest.raises(ValueError, match="holds no liver"):
        prepare_set(cases, tmp_path / "t2", LabelIds((1,), (2,)), healthy=False, key=key)


def test_synthesis_options_reach_every_synthetic_arm_only(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    preset = load_preset("cpu")
    extra = arms_mod.synthesis_args(tmp_path / "p.json", realistic=True)
    assert extra == ["--realistic", "--profile", str((tmp_path / "p.json").absolute())]
    for arm, expect in (("synthetic", True), ("phantom", True), ("synthetic+phantom", True),
                        ("mixed", True), ("real", False)):
        cmd = arms_mod.train_command(arms_mod.Job(arm, "unet", None), preset, Path("d.json"),
                                     Path("run"), real_data=Path("r.json"), synthesis=extra,
                                     device="cpu", resume=False)
        assert ("--realistic" in cmd and "--profile" in cmd) == expect, arm
        assert cmd[cmd.index("--steps") + 1] == "300" and cmd[cmd.index("--seed") + 1] == "0"

    import synthtumor.train.cli as train_cli

    def without(data: Path, out: Path) -> None: ...

    def with_them(data: Path, out: Path, realistic: bool = False,
                  profile: Path | None = None) -> None: ...

    monkeypatch.setattr(train_cli, "train", without)
    with pytest.raises(ValueError, match="--realistic, --profile"):
        arms_mod.check_train_accepts(extra)
    monkeypatch.setattr(train_cli, "train", with_them)
    arms_mod.check_train_accepts(extra)


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "benchmark.json").write_text(json.dumps({"format": "synthtumor-efficacy/1"}))
    healthy, test = _inputs(tmp_path)
    res = CliRunner().invoke(app, ["benchmark", "efficacy", "--preset", "cpu", "--arms",
                                   "phantom", "--test", str(test), "--out", str(out)])
    assert res.exit_code == 2 and "other settings" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.json"]


@pytest.mark.slow
def test_gpu_check_smoke_on_cpu(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                           "--smoke", "--out", str(tmp_path)], env=_env(), capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((tmp_path / "gpu_check.json").read_text())
    assert r["device"] == "cpu" and set(r["model_samples_per_s"]) == {"unet", "swin_unetr"}
    assert all(v > 0 for v in r["loader_samples_per_s"].values())
    assert all(v > 0 for v in r["inference_s"].values())
    assert [row["arm"] for row in r["efficacy"]["rows"]] == ["phantom"]
    assert "| loader workers |" in (tmp_path / "gpu_check.md").read_text()
    print(f"gpu_check --smoke: {time.monotonic() - t0:.0f} s")


def test_same_settings_claim_the_folder_again(tmp_path: Path) -> None:
    """Regression: the stored identity (JSON lists) equals a fresh one (tuples) on rerun."""
    from synthtumor.benchmark.efficacy import EfficacyConfig, claim_folder

    healthy, test = _inputs(tmp_path)
    config = EfficacyConfig(preset=load_preset("cpu"), out=tmp_path / "b", arms=("phantom",),
                            healthy=healthy, test=test)
    claim_folder(config)
    (tmp_path / "b" / "runs").mkdir()
    claim_folder(config)  # resumes: no error
