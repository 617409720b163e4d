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


# ---- 3: export nnunet stages outside nnU-Net's folders; --merge checks every file ---------

def _one_case_export(tmp_path: Path, *extra: str) -> tuple[list[str], Path]:
    ct, liver = _small_case(tmp_path / "src")
    datalist = tmp_path / "one.json"
    datalist.write_text(json.dumps({"training": [{"image": str(ct), "label": str(liver),
                                                  "case": "a"}]}))
    args = ["export", "nnunet", str(datalist), "--out", str(tmp_path / "raw"), "--dataset-id",
            "613", "--name", "One", "--variants", "1", *extra]
    return args, tmp_path / "raw" / "Dataset613_One"


def test_nnunet_export_writes_nothing_temporary_into_images_or_labels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import synthtumor.imaging.io as io

    args, folder = _one_case_export(tmp_path)
    saved: list[Path] = []
    save = io.nib.save
    monkeypatch.setattr(io.nib, "save", lambda img, path: (saved.append(Path(path)),
                                                           save(img, path))[1])
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert len(saved) == 2
    assert all(p.parent.parent == folder / "synthtumor" for p in saved)  # a staging folder
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["a_v000_0000.nii.gz"]
    assert sorted(p.name for p in (folder / "synthtumor").iterdir()) == ["a_v000.json",
                                                                         "export.json"]


def test_nnunet_rerun_removes_a_killed_runs_temp_image(tmp_path: Path) -> None:
    """A half-written .case….tmp.nii.gz left in imagesTr by a killed export"""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    args, folder = _one_case_export(tmp_path)
    assert run_cli(*args).exit_code == 0
    image = folder / "imagesTr" / "a_v000_0000.nii.gz"
    debris = folder / "imagesTr" / ".a_v000_0000.1f2e3d4c.tmp.nii.gz"  # as the kill left it
    debris.write_bytes(image.read_bytes()[:1000])
    (folder / "dataset.json").unlink()
    rerun = run_cli(*args)
    assert rerun.exit_code == 0, rerun.output
    assert not debris.exists() and image.is_file()
    verify_dataset_integrity(str(folder), 1)  # counted 2 images before


def test_nnunet_merge_refuses_unknown_files_in_images(tmp_path: Path) -> None:
    args, folder = _one_case_export(tmp_path)
    assert run_cli(*args).exit_code == 0
    stray = folder / "labelsTr" / "notes.txt"
    stray.write_text("mine")
    result = run_cli(*args, "--merge")
    assert result.exit_code == 2
    assert "labelsTr" in error_line(result) and "notes.txt" in error_line(result)
    assert stray.read_text() == "mine"


# ---- 4: stale staging leftovers are cleaned; SIGTERM/SIGHUP unwind like Ctrl+C --------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_of_a_killed_run_is_removed_by_the_next_run(tmp_path: Path) -> None:
    from synthtumor.files import _HOST

    ct, liver = _small_case(tmp_path / "src")
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".out.{_HOST}-{dead}.k3j_a9x2.tmp"
    stale.mkdir()
    (stale / "ct.nii.gz").write_bytes(b"x" * 1000)
    stale_old = tmp_path / f".out.{_HOST}-{dead}.k3j_a9x3.old"
    stale_old.mkdir()
    live = tmp_path / f".out.{_HOST}-{alive}.k3j_a9x4.tmp"  # a run still going: kept
    live.mkdir()
    other_host = tmp_path / f".out.elsewhere-{dead}.k3j_a9x5.tmp"  # another machine's: kept
    other_host.mkdir()
    foreign = tmp_path / ".out.backup.tmp"  # not our pattern: kept
    foreign.mkdir()
    result = run_cli("synthesize", ct, liver, "-o", tmp_path / "out", "--type", "tiny")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not stale_old.exists()
    assert live.is_dir() and other_host.is_dir() and foreign.is_dir()
    assert (tmp_path / "out" / "ct.nii.gz").is_file()


def test_stale_checkpoint_temp_file_is_removed(tmp_path: Path) -> None:
    from synthtumor.files import _HOST
    from synthtumor.train.checkpoint import remove_stale_writes

    dead = _dead_pid()
    stale = tmp_path / f".last.pt.{_HOST}-{dead}.a1b2c3d4.tmp"
    stale.write_bytes(b"x" * 1000)
    mine = tmp_path / f".last.pt.{_HOST}-{os.getpid()}.a1b2c3d5.tmp"
    mine.write_bytes(b"x")
    assert remove_stale_writes(tmp_path) == [stale]
    assert mine.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_writing_leaves_no_staging_folder(tmp_path: Path, sig: int) -> None:
    """SIGTERM/SIGHUP while the output folder is staged: no debris, exit 128 + signal.

    The run is frozen (SIGSTOP) as soon as its staging folder shows, so that the signal lands
    while it is staged however fast the write is; a run that got past its staging before it
    froze is tried again. The run starts with SIGHUP at its default, as from a terminal: under
    ``nohup`` the test runner passes SIGHUP on ignored, and an ignored SIGHUP stays ignored."""
    exe = Path(sys.executable).with_name("synthtumor")
    for attempt in range(5):
        out = tmp_path / f"res{attempt}" / "out"
        proc = subprocess.Popen(
            [str(exe), "synthesize", str(TS_CT), str(TS_ORGANS), "-o", str(out),
             "--liver-label", str(TS_LIVER), "--type", "large"],
            stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while not list(out.parent.glob(".out.*.tmp")) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGSTOP)
        staged = proc.poll() is None and bool(list(out.parent.glob(".out.*.tmp")))
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)
        _, stderr = proc.communicate(timeout=60)
        if staged:
            break
        assert not list(out.parent.glob(".out.*.tmp"))  # finished first: nothing staged left
    else:
        pytest.fail("the run was never caught while its output was staged")
    assert proc.returncode == 128 + sig, stderr
    assert list(out.parent.iterdir()) == []  # neither the output nor its staging folder
    assert len(stderr.strip().splitlines()) == 1 and signal.Signals(sig).name in stderr



class _Signalled(BaseException):
    """Stands in for the exception a SIGTERM handler raises."""


def test_a_signal_right_after_the_staging_folder_is_made_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window the subprocess test can only hit by chance: the folder exists, the call
    that made it has not returned yet."""
    from synthtumor.files import staged_folder

    made = os.mkdir

    def mkdir_then_signal(path, mode=0o777, *args, **kwargs):
        made(path, mode, *args, **kwargs)
        if Path(path).name.startswith(".out."):
            raise _Signalled
    monkeypatch.setattr(os, "mkdir", mkdir_then_signal)
    with pytest.raises(_Signalled), staged_folder(tmp_path / "out"):
        pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("what", ["checkpoint", "nifti"])
def test_a_signal_right_after_a_file_is_opened_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    """The same window for the files written through a temporary name."""
    from synthtumor.imaging import write_nifti
    from synthtumor.train.checkpoint import save_atomic

    opened = os.open

    def open_then_signal(path, flags, *args, **kwargs):
        fd = opened(path, flags, *args, **kwargs)
        os.close(fd)
        raise _Signalled
    monkeypatch.setattr(os, "open", open_then_signal)
    with pytest.raises(_Signalled):
        if what == "checkpoint":
            save_atomic({"x": 1}, tmp_path / "last.pt")
        else:
            write_nifti(tmp_path / "ct.nii.gz", np.zeros((4, 4, 4), np.int16), np.eye(4),
                        kind="ct")
    assert list(tmp_path.iterdir()) == []


def test_a_signal_during_the_swap_into_place_waits_for_it(tmp_path: Path) -> None:
    """SIGTERM while the new output replaces the old one: the swap completes (no old output
    stranded under a temporary name), then the signal takes effect."""
    from synthtumor.files import signals_held

    got: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: got.append(signum))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert got == []  # held
        for _ in range(100):  # delivered when the block ends
            if got:
                break
            time.sleep(0.001)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert got == [signal.SIGTERM]


# ---- 10: an existing empty output folder is written in place ---------------------------------

def test_current_folder_as_output_is_written_in_place(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ct, liver = _small_case(tmp_path / "src")
    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.chdir(volume)
    result = run_cli("synthesize", ct, liver, "-o", ".", "--type", "tiny")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in volume.iterdir()) == sorted(
        ["ct.nii.gz", "label.nii.gz", "tumors.json", "preview.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "volume"]  # no debris beside
    label = np.asarray(nib.load(volume / "label.nii.gz").dataobj)
    assert (label == 2).any()


def test_empty_mount_point_as_output_is_written_in_place(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty mount point as OUT: renaming over it fails with EBUSY"""
    ct, liver = _small_case(tmp_path / "src")
    mount = tmp_path / "mnt"
    mount.mkdir()
    rename = Path.rename

    def busy(self: Path, target: object) -> Path:
        if Path(os.path.abspath(self)) == mount or Path(os.path.abspath(str(target))) == mount:
            raise OSError(errno.EBUSY, "Device or resource busy", str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", busy)
    result = run_cli("synthesize", ct, liver, "-o", mount, "--type", "tiny")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in mount.iterdir()) == sorted(
        ["ct.nii.gz", "label.nii.gz", "tumors.json", "preview.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt", "src"]


def test_failure_while_writing_in_place_leaves_the_folder_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import synthtumor.preview as preview

    ct, liver = _small_case(tmp_path / "src")
    mount = tmp_path / "mnt"
    mount.mkdir()

    def broken(*_a: object, **_k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(preview, "save_preview", broken)
    result = run_cli("synthesize", ct, liver, "-o", mount, "--type", "tiny")
    assert result.exit_code != 0
    assert list(mount.iterdir()) == []


# ---- 5: train checks labels before it writes; --resume keeps the run's settings -------------

FAST_TRAIN = ["--roi", "32", "32", "32", "--spacing", "4", "--batch-size", "1", "--workers",
              "0", "--warmup", "1", "--lr", "4e-3"]


def _train_data(tmp_path: Path, label_values: dict[int, int] | None = None) -> Path:
    ct, liver = _small_case(tmp_path / "train_src")
    if label_values:
        img = nib.load(liver)
        arr = np.asarray(img.dataobj).copy()
        for src, dst in label_values.items():
            arr[arr == src] = dst
        nib.save(nib.Nifti1Image(arr, img.affine), liver)
    data = tmp_path / "train.json"
    data.write_text(json.dumps({"training": [{"image": str(ct), "label": str(liver)}]}))
    return data


@pytest.mark.parametrize("cache", ["memory", "disk", "none"])
def test_train_refuses_bad_labels_before_writing_the_run(tmp_path: Path, cache: str) -> None:
    """synthetic mode on a label map with liver id 5 (not 0/1/2)"""
    data = _train_data(tmp_path, {1: 5})
    run = tmp_path / "run"
    result = run_cli("train", "--data", data, "-o", run, "--steps", "2", "--cache", cache,
                     *FAST_TRAIN)
    assert result.exit_code == 2, result.output
    assert "liver.nii.gz" in result.output and "5" in result.output
    assert not run.exists()  # no config.json or log.csv that would block the next run


def test_train_rerun_of_a_run_stopped_before_its_first_checkpoint(tmp_path: Path) -> None:
    """A run folder with the same config.json and no checkpoint (stopped early) starts again"""
    data = _train_data(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--data", data, "-o", run, "--steps", "1", *FAST_TRAIN]
    assert run_cli(*args).exit_code == 0
    (run / "last.pt").unlink()
    (run / "last.prev.pt").unlink(missing_ok=True)
    from synthtumor.files import _HOST

    stale = run / f".last.pt.{_HOST}-{_dead_pid()}.q8w7e6r5.tmp"  # a checkpoint write killed
    stale.write_bytes(b"x" * 4096)
    again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert (run / "last.pt").is_file() and not stale.exists()


def test_train_resume_with_other_settings_is_refused_naming_them(tmp_path: Path) -> None:
    data = _train_data(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "--data", data, "-o", run, "--steps", "1", *FAST_TRAIN
                   ).exit_code == 0
    before = (run / "last.pt").read_bytes()
    changed = [a if a != "4e-3" else "1e-3" for a in FAST_TRAIN]
    changed[1:4] = ["48", "48", "48"]
    result = run_cli("train", "--data", data, "-o", run, "--steps", "2", "--resume", *changed)
    assert result.exit_code == 2
    line = [ln for ln in result.output.splitlines() if ln.startswith("error:")][0]
    assert "roi 32x32x32 -> 48x48x48" in line and "lr 0.004 -> 0.001" in line, line
    assert "--allow-config-change" in line and "spacing" not in line
    assert (run / "last.pt").read_bytes() == before
    allowed = run_cli("train", "--data", data, "-o", run, "--steps", "2", "--resume", *changed,
                      "--allow-config-change")
    assert allowed.exit_code == 0, allowed.output
    import torch

    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2


# ---- 9: zero spacing in a NIfTI header; crafted checkpoint grids -----------------------------

def test_nifti_with_zero_spacing_and_no_orientation_is_refused(tmp_path: Path) -> None:
    """NIfTI CT with pixdim 0 and qform/sform code 0 (nibabel would take 1 mm)"""
    import struct

    ct, liver = _small_case(tmp_path / "src")
    img = nib.load(ct)
    raw = tmp_path / "zero_spacing.nii"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine), raw)
    blob = bytearray(raw.read_bytes())
    blob[80:92] = struct.pack("<3f", 0.0, 0.0, 0.0)  # pixdim[1:4]
    blob[252:256] = struct.pack("<2h", 0, 0)  # qform_code, sform_code
    raw.write_bytes(bytes(blob))
    result = run_cli("synthesize", raw, liver, "-o", tmp_path / "out")
    assert result.exit_code == 2
    line = error_line(result)
    assert "zero_spacing.nii" in line and "voxel size [0.0, 0.0, 0.0]" in line, line
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.pt of a one-step run."""
    tmp = tmp_path_factory.mktemp("trained")
    run = tmp / "run"
    result = run_cli("train", "--data", _train_data(tmp), "-o", run, "--steps", "1",
                     *FAST_TRAIN)
    assert result.exit_code == 0, result.output
    return run / "last.pt"


@pytest.mark.parametrize("field,value", [("roi", [0, 0, 0]), ("roi", [32, 32]),
                                         ("roi", [32.5, 32, 32]), ("spacing", 0.0),
                                         ("spacing", -4.0), ("spacing", float("nan")),
                                         ("spacing", 1e-9)])
@pytest.mark.parametrize("command", ["evaluate", "export bundle"])
def test_crafted_checkpoint_grid_is_one_line(trained: Path, tmp_path: Path, field: str,
                                             value: object, command: str) -> None:
    """checkpoint whose training roi/spacing was edited"""
    import torch

    obj = torch.load(trained, weights_only=True)
    obj["config"][field] = value
    crafted = tmp_path / "crafted.pt"
    torch.save(obj, crafted)
    data = tmp_path / "lits.json"
    data.write_text(json.dumps({"validation": [{"image": str(LITS_CT),
                                                "label": str(LITS_LABEL)}]}))
    if command == "evaluate":
        args = ["evaluate", "--checkpoint", crafted, "--data", data, "--out", tmp_path / "o",
                "--device", "cpu"]
    else:
        args = ["export", "bundle", "--checkpoint", crafted, "--out", tmp_path / "o"]
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    line = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "crafted.pt" in line[0] and f"training {field}" in line[0], \
        result.output
    assert not (tmp_path / "o").exists()


# ---- 6: a label map that already holds tumor is not flattened silently ----------------------

def test_lits_label_map_with_liver_label_only_is_refused(tmp_path: Path) -> None:
    """LiTS-style map (1 liver, 2 tumor) with --liver-label 1 only"""
    result = run_cli("synthesize", LITS_CT, LITS_LABEL, "--liver-label", "1", "-o",
                     tmp_path / "out")
    assert result.exit_code == 2
    line = error_line(result)
    assert "lits117_label.nii.gz" in line and "label(s) 2" in line and "--tumor-label" in line
    assert not (tmp_path / "out").exists()


def test_tumor_label_keeps_real_tumor_and_places_synthetic_ones_beside_it(tmp_path: Path
                                                                          ) -> None:
    out = tmp_path / "out"
    result = run_cli("synthesize", LITS_CT, LITS_LABEL, "--liver-label", "1", "--tumor-label",
                     "2", "-o", out, "--type", "small", "--seed", "3")
    assert result.exit_code == 0, result.output
    source = np.asarray(nib.load(LITS_LABEL).dataobj)
    ct_in = np.asarray(nib.load(LITS_CT).dataobj)
    label = np.asarray(nib.load(out / "label.nii.gz").dataobj)
    ct_out = np.asarray(nib.load(out / "ct.nii.gz").dataobj)
    real = source == 2
    assert real.sum() > 1000 and np.all(label[real] == 2)  # every real tumor voxel kept
    assert np.array_equal(ct_out[real], ct_in[real])  # and its CT values
    synthetic = (label == 2) & ~real
    assert synthetic.sum() > 0 and np.all(source[synthetic] == 1)  # pasted into liver only
    assert np.array_equal(label > 0, source > 0)
    record = json.loads((out / "tumors.json").read_text())
    assert record["real_tumor_voxels"] == int(real.sum())


def test_organs_beside_the_liver_are_not_taken_for_tumors() -> None:
    from conftest import DICOM_DIR, DICOM_ORGANS

    from synthtumor.imaging import read_ct, read_labels
    from synthtumor.workflow import lesion_like_labels

    for ct_path, organs in ((TS_CT, TS_ORGANS), (TS_SMALL, TS_SMALL_ORGANS),
                            (DICOM_DIR, DICOM_ORGANS)):
        labels = read_labels(organs, read_ct(ct_path)).array
        assert lesion_like_labels(labels, labels == TS_LIVER) == []
    lits = read_labels(LITS_LABEL, read_ct(LITS_CT)).array
    [(value, share)] = lesion_like_labels(lits, lits == 1)
    assert value == 2 and share > 0.9


def test_overwrite_of_a_non_empty_mount_point_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """synthesize -o MOUNT --overwrite on a non-empty mount point (renaming it: EBUSY)"""
    ct, liver = _small_case(tmp_path / "src")
    mount = tmp_path / "mnt"
    mount.mkdir()
    (mount / "old.txt").write_text("old")
    rename = Path.rename

    def busy(self: Path, target: object) -> Path:
        if Path(os.path.abspath(self)) == mount:
            raise OSError(errno.EBUSY, "Device or resource busy", str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", busy)
    result = run_cli("synthesize", ct, liver, "-o", mount, "--overwrite", "--type", "tiny")
    assert result.exit_code == 2 and "cannot be replaced" in error_line(result)
    assert [p.name for p in mount.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt", "src"]


def test_nnunet_rerun_removes_a_killed_runs_staging_folder(tmp_path: Path) -> None:
    from synthtumor.files import _HOST

    args, folder = _one_case_export(tmp_path)
    assert run_cli(*args).exit_code == 0
    stale = folder / "synthtumor" / f".a_v000.{_HOST}-{_dead_pid()}.x1y2z3w4.tmp"
    stale.mkdir()
    (stale / "a_v000_0000.nii.gz").write_bytes(b"half")
    assert run_cli(*args).exit_code == 0
    assert not stale.exists()
