"""Training: CPU smoke run on the real healthy CTs, resume, 2-process gloo DDP, bad input.

All runs use a coarse 4 mm grid and 32^3 patches so the whole file stays well under 3 minutes
on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import typer
from conftest import TS_CT, TS_LIVER, TS_ORGANS, TS_SMALL
from typer.testing import CliRunner

from synthtumor.train.cli import register

pytestmark = pytest.mark.xdist_group("train")  # one worker: the prepared data is built once

TS_SMALL_ORGANS = TS_SMALL.with_name("totalseg_ct_small_organs.nii.gz")


def fast(batch: int = 2, workers: int = 0) -> list[str]:
    """Coarse, quick settings: 4 mm grid, 32^3 patches, high LR with a short warm-up."""
    return ["--roi", "32", "32", "32", "--spacing", "4", "--batch-size", str(batch),
            "--workers", str(workers), "--warmup", "3", "--lr", "4e-3", "--log-every", "5"]


FAST = fast()
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop", hidden=True)
    def _noop() -> None:  # a second command keeps `train` a named sub-command
        pass

    return app


def invoke(*args: str | Path) -> object:
    return runner.invoke(_app(), ["train", *[str(a) for a in args]])


def _write_label(organs: Path, out: Path, *, value_map: dict[int, int] | None = None,
                 affine_shift: float = 0.0) -> Path:
    img = nib.load(organs)
    arr = (np.asarray(img.dataobj) == TS_LIVER).astype(np.uint8)
    for src, dst in (value_map or {}).items():
        arr[arr == src] = dst
    affine = img.affine.copy()
    affine[:3, 3] += affine_shift
    nib.save(nib.Nifti1Image(arr, affine), out)
    return out


def _datalist(path: Path, pairs: list[tuple[Path, Path]], key: str = "training") -> Path:
    items = [{"image": str(i), "label": str(lab)} for i, lab in pairs]
    path.write_text(json.dumps({key: items, "validation": items[:1]}))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """healthy.json: both TotalSegmentator cases with 0/1 liver labels (from label 5)."""
    d = tmp_path_factory.mktemp("train_data")
    big = _write_label(TS_ORGANS, d / "ct_liver.nii.gz")
    small = _write_label(TS_SMALL_ORGANS, d / "ct_small_liver.nii.gz")
    items = [{"image": str(TS_CT), "label": big.name}, {"image": str(TS_SMALL), "label":
                                                        small.name}]
    (d / "healthy.json").write_text(json.dumps({"training": items, "validation": items[:1]}))
    return d / "healthy.json"


def _log(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj["model"] if "model" in obj else obj


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _error_line(result: object) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def run6(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-step run, checkpoints at steps 3 (last.prev.pt) and 6 (last.pt)."""
    run = tmp_path_factory.mktemp("run6") / "run"
    result = invoke("--data", data, "-o", run, "--steps", "6", "--save-every", "3", *FAST)
    assert result.exit_code == 0, result.output
    return run


# ----------------------------------------------------------------------------- smoke


@pytest.mark.slow
def test_smoke_synthetic_loss_goes_down(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke("--data", data, "-o", run, "--mode", "synthetic", "--steps", "24",
                    "--save-every", "10", "--val-data", data, "--val-every", "12", *FAST)
    assert result.exit_code == 0, result.output
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 24
    assert state["model_desc"]["name"] == "unet" and state["model_desc"]["out_channels"] == 3
    assert state["config"]["mode"] == "synthetic"
    rows = _log(run)
    assert [int(r["step"]) for r in rows] == list(range(1, 25))
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    # validation ran twice; healthy validation cases: liver Dice only, tumor Dice not defined
    vals = [r for r in rows if r["val_liver_dice"]]
    assert [int(r["step"]) for r in vals] == [12, 24]
    assert all(0 <= float(r["val_liver_dice"]) <= 1 for r in vals)
    assert (run / "best.pt").is_file()
    torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert json.loads((run / "config.json").read_text())["steps"] == 24


@pytest.mark.slow
def test_a_first_run_says_the_kernels_compile(
    run6: Path, tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its first step a synthetic run says when the synthesis kernels are not compiled
    yet (a wait of 20-35 s per loader process), and says nothing once they are."""
    for compiled in (True, False):
        run = tmp_path / f"run{compiled}"
        shutil.copytree(run6, run)
        monkeypatch.setattr("synthtumor.train.loop.kernels_compiled",
                            lambda appearance=False, ready=compiled: ready)
        result = invoke("--data", data, "-o", run, "--resume", "--steps", "7", *FAST)
        assert result.exit_code == 0, result.output
        assert ("synthesis kernels compile" in result.stderr) is not compiled


# ----------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_continues_at_saved_step(run6: Path, tmp_path: Path, data: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(run6, a)
    shutil.copytree(run6, b)
    for run in (a, b):
        result = invoke("--data", data, "-o", run, "--resume", "--steps", "10",
                        "--save-every", "3", *FAST)
        assert result.exit_code == 0, result.output
        assert "steps 7..10" in result.stderr
        assert torch.load(run / "last.pt", weights_only=True)["step"] == 10
        assert [int(r["step"]) for r in _log(run)] == list(range(1, 11))
    # same checkpoint, same resumed steps: identical weights (CPU, workers 0)
    assert _same(_weights(a / "last.pt"), _weights(b / "last.pt"))
    assert not _same(_weights(a / "last.pt"), _weights(run6 / "last.pt"))


@pytest.mark.slow
def test_resume_is_exact_continuation(data: Path, tmp_path: Path) -> None:
    """10 steps in one go == 5 steps, checkpoint, 5 more (model, optimizer, LR, RNG restored)."""
    full = tmp_path / "full"
    result = invoke("--data", data, "-o", full, "--steps", "10", "--save-every", "5", *FAST)
    assert result.exit_code == 0, result.output
    assert torch.load(full / "last.prev.pt", weights_only=True)["step"] == 5
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(full / "last.prev.pt", part / "step5.pt")
    result = invoke("--data", data, "-o", part, "--resume-from", part / "step5.pt",
                    "--steps", "10", "--save-every", "5", *FAST)
    assert result.exit_code == 0, result.output
    assert _same(_weights(full / "last.pt"), _weights(part / "last.pt"))


def _tumor_case(folder: Path) -> Path:
    """A 0/1/2 label on the small CT: its liver with a 5x5x3-voxel block marked as tumor
    (mechanics only: no claim on real tumors is made from it)."""
    lab = _write_label(TS_SMALL_ORGANS, folder / "small_tumor.nii.gz")
    img = nib.load(lab)
    arr = np.asarray(img.dataobj).copy()
    c = np.argwhere(arr == 1).mean(0).astype(int)
    block = tuple(slice(v - 2, v + 3) for v in c[:2]) + (slice(c[2] - 1, c[2] + 2),)
    arr[block] = np.where(arr[block] == 1, 2, arr[block])
    nib.save(nib.Nifti1Image(arr, img.affine), lab)
    return lab


@pytest.mark.slow
def test_mixed_mode_disk_cache_worker_and_real_mode(data: Path, tmp_path: Path) -> None:
    real = _datalist(tmp_path / "real.json", [(TS_SMALL, _tumor_case(tmp_path))])
    run = tmp_path / "mixed"
    result = invoke("--data", data, "--real-data", real, "-o", run, "--mode", "mixed",
                    "--real-fraction", "0.5", "--cache", "disk", "--steps", "3",
                    "--val-data", real, *fast(workers=1))
    assert result.exit_code == 0, result.output
    assert list((run / "cache").rglob("*.pt")), "disk cache not written"
    last = _log(run)[-1]
    assert last["val_tumor_dice"] and 0 <= float(last["val_tumor_dice"]) <= 1
    run = tmp_path / "real"
    result = invoke("--data", real, "-o", run, "--mode", "real", "--cache", "none",
                    "--steps", "2", *FAST)
    assert result.exit_code == 0, result.output
    assert torch.load(run / "last.pt", weights_only=True)["config"]["mode"] == "real"


def test_swin_unetr_builds_and_runs() -> None:
    from synthtumor.train.models import build_model, describe

    net = build_model("swin_unetr", feature_size=12).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 64, 64, 64)).shape == (1, 3, 64, 64, 64)
    assert describe("swin_unetr", 12)["feature_size"] == 12


@pytest.mark.slow
def test_sigkill_loses_at_most_one_interval(data: Path, tmp_path: Path) -> None:
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "synthtumor.train", "--data", str(data), "-o", str(run),
           "--steps", "1000", "--save-every", "2", *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (run / "last.prev.pt").exists():
            time.sleep(0.2)
        time.sleep(1.0)  # let it be somewhere in the middle of later steps/saves
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    logged = max(int(r["step"]) for r in _log(run))
    saved = torch.load(run / "last.pt", weights_only=True)["step"]
    assert logged - saved <= 2
    result = invoke("--data", data, "-o", run, "--resume", "--steps", str(saved + 1),
                    "--save-every", "2", *FAST)
    assert result.exit_code == 0, result.output
    assert [int(r["step"]) for r in _log(run)] == list(range(1, saved + 2))


# ----------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_ddp_two_gloo_processes_hold_identical_weights(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", "-m", "synthtumor.train", "--data", str(data), "-o", str(run),
           "--steps", "4", "--save-every", "2", "--dump-rank-weights", "--device", "cpu",
           *fast(batch=1)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = _weights(run / "rank0.pt"), _weights(run / "rank1.pt")
    assert _same(r0, r1)
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["world_size"] == 2
    assert _same(state["model"], r0)
    # only rank 0 logs: each step once, one "done" line
    assert [int(r["step"]) for r in _log(run)] == [1, 2, 3, 4]
    assert proc.stderr.count("done: step 4") == 1
    assert json.loads((run / "config.json").read_text())["world_size"] == 2


# ----------------------------------------------------------------------------- bad input


def test_missing_file_in_datalist(tmp_path: Path) -> None:
    dl = _datalist(tmp_path / "dl.json", [(tmp_path / "nope_ct.nii.gz", TS_SMALL)])
    line = _error_line(invoke("--data", dl, "-o", tmp_path / "run", *FAST))
    assert "nope_ct.nii.gz" in line and "does not exist" in line
    assert not (tmp_path / "run").exists()


def test_shape_mismatch(tmp_path: Path) -> None:
    lab = _write_label(TS_ORGANS, tmp_path / "big_liver.nii.gz")
    dl = _datalist(tmp_path / "dl.json", [(TS_SMALL, lab)])
    line = _error_line(invoke("--data", dl, "-o", tmp_path / "run", *FAST))
    assert "big_liver.nii.gz" in line and "shape" in line
    assert not (tmp_path / "run").exists()


def test_affine_mismatch(tmp_path: Path) -> None:
    lab = _write_label(TS_SMALL_ORGANS, tmp_path / "moved_liver.nii.gz", affine_shift=30.0)
    dl = _datalist(tmp_path / "dl.json", [(TS_SMALL, lab)])
    line = _error_line(invoke("--data", dl, "-o", tmp_path / "run", *FAST))
    assert "moved_liver.nii.gz" in line and "affine" in line


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_unexpected_label_ids(tmp_path: Path, cache: str) -> None:
    lab = _write_label(TS_SMALL_ORGANS, tmp_path / "odd_liver.nii.gz", value_map={1: 7})
    dl = _datalist(tmp_path / "dl.json", [(TS_SMALL, lab)])
    line = _error_line(invoke("--data", dl, "-o", tmp_path / "run", "--cache", cache, *FAST))
    assert "odd_liver.nii.gz" in line and "unexpected id" in line and "7" in line


def test_tumor_label_in_synthetic_mode(tmp_path: Path) -> None:
    lab = _write_label(TS_SMALL_ORGANS, tmp_path / "tumor_liver.nii.gz")
    img = nib.load(lab)
    arr = np.asarray(img.dataobj).copy()
    arr[tuple(np.argwhere(arr == 1)[0])] = 2
    nib.save(nib.Nifti1Image(arr, img.affine), lab)
    dl = _datalist(tmp_path / "dl.json", [(TS_SMALL, lab)])
    line = _error_line(invoke("--data", dl, "-o", tmp_path / "run", "--mode", "synthetic",
                              *FAST))
    assert "tumor_liver.nii.gz" in line and "--mode real" in line


def test_empty_datalist(tmp_path: Path) -> None:
    dl = tmp_path / "empty.json"
    dl.write_text(json.dumps({"training": []}))
    line = _error_line(invoke("--data", dl, "-o", tmp_path / "run", *FAST))
    assert "empty.json" in line and "empty" in line


def test_unwritable_output_folder(data: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    line = _error_line(invoke("--data", data, "-o", blocker / "run", *FAST))
    assert "a_file" in line and "not a folder" in line
    assert blocker.read_text() == "x"


def test_corrupt_checkpoint_refused_and_kept(run6: Path, tmp_path: Path, data: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run6, run)
    raw = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(raw[: len(raw) // 2])  # a truncated write
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    line = _error_line(invoke("--data", data, "-o", run, "--resume", "--steps", "9", *FAST))
    assert "last.pt" in line and "corrupt or incomplete" in line
    assert "last.prev.pt (step 3) is good" in line and "--resume-from" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched


def test_resume_without_checkpoint(data: Path, tmp_path: Path) -> None:
    line = _error_line(invoke("--data", data, "-o", tmp_path / "run", "--resume", *FAST))
    assert "last.pt" in line and "no checkpoint" in line


def test_checkpoint_of_other_architecture(run6: Path, tmp_path: Path, data: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run6, run)
    line = _error_line(invoke("--data", data, "-o", run, "--resume", "--steps", "9",
                              *FAST, "--model", "swin_unetr", "--roi", "64", "64", "64"))
    assert "last.pt" in line and "name=unet" in line and "name=swin_unetr" in line


def test_existing_run_with_other_config_refused(run6: Path, tmp_path: Path,
                                                data: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run6, run)
    before = (run / "last.pt").read_bytes()
    line = _error_line(invoke("--data", data, "-o", run, "--steps", "6", *FAST[:-2],
                              "--seed", "5"))
    assert "another configuration" in line and "seed" in line and "--overwrite" in line
    line = _error_line(invoke("--data", data, "-o", run, "--steps", "6", *FAST))
    assert "already holds a run" in line and "--resume" in line
    assert (run / "last.pt").read_bytes() == before


def test_bad_arguments(data: Path, tmp_path: Path) -> None:
    line = _error_line(invoke("--data", data, "-o", tmp_path / "r", *FAST, "--roi", "30",
                              "30", "30"))
    assert "--roi" in line
    line = _error_line(invoke("--data", data, "-o", tmp_path / "r", *FAST,
                              "--real-fraction", "2"))
    assert "--real-fraction" in line
