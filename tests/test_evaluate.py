"""Evaluation on real tumors (LiTS case 117): outputs and geometry, alignment round trip, Dice/NSD
against DeepMind's surface-distance, lesion detection, post-processing, bad input, compare.

The checkpoint is a freshly built U-Net saved by the training code's own writer (``save_best``)
with the fast test settings (4 mm grid, 32^3 ROI): its predictions are arbitrary, which is all
the geometry and bookkeeping tests need; the metric tests use exact constructed or real masks.
"""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import LITS_CT, LITS_LABEL
from scipy import ndimage
from typer.testing import CliRunner

from synthtumor.cli import app
from synthtumor.errors import InputError
from synthtumor.evaluate import inference
from synthtumor.evaluate.compare import compare_runs
from synthtumor.evaluate.lesions import (
    detect_lesions,
    equivalent_radius_mm,
    label_lesions,
    sensitivity_by_size,
)
from synthtumor.evaluate.metrics import dice, normalized_surface_dice
from synthtumor.evaluate.postprocess import postprocess
from synthtumor.evaluate.run import EvalConfig, evaluate
from synthtumor.imaging import read_ct, read_labels
from synthtumor.train.loop import TrainConfig, save_best
from synthtumor.train.models import build_model, describe

runner = CliRunner()


def _error_line(result: object) -> str:
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def _save_checkpoint(folder: Path, desc: dict | None = None) -> Path:
    """best.pt of a freshly built U-Net (fixed init seed) in the training checkpoint format."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("unet")
    config = TrainConfig(data=folder / "healthy.json", out=folder, spacing=4.0, roi=(32, 32, 32))
    save_best(model, desc or describe("unet"), config, 6, 0.0, folder)
    return folder / "best.pt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def lits() -> tuple:
    ct = read_ct(LITS_CT)
    return ct, read_labels(LITS_LABEL, ct).array


@pytest.fixture(scope="module")
def run(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """`synthtumor evaluate` through the CLI: lits117 with its label, and once without."""
    d = tmp_path_factory.mktemp("eval")
    items = [{"image": str(LITS_CT), "label": str(LITS_LABEL)},
             {"image": str(LITS_CT), "case": "no_label"}]
    (d / "val.json").write_text(json.dumps({"validation": items}))
    out = d / "out"
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--data",
                                 str(d / "val.json"), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out, result


# ----------------------------------------------------------------------------- end to end


def test_evaluate_writes_all_outputs_on_the_input_grid(run: tuple, lits: tuple) -> None:
    out, result = run
    ct, truth = lits
    src = nib.load(LITS_CT)
    for name in ("lits117_ct", "no_label"):
        img = nib.load(out / "predictions" / f"{name}.nii.gz")
        assert img.shape == src.shape
        assert np.array_equal(img.affine, src.affine)  # exactly, LPS-like flipped axes included
        assert img.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(img.dataobj))) <= {0, 1, 2}
    pred = np.asarray(nib.load(out / "predictions" / "lits117_ct.nii.gz").dataobj)

    summary = json.loads((out / "summary.json").read_text())
    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == ["lits117_ct", "no_label"]
    # the metrics describe the saved prediction against the label
    row = rows[0]
    assert float(row["tumor_dice"]) == pytest.approx(dice(pred == 2, truth == 2), abs=1e-6)
    assert float(row["liver_dice"]) == pytest.approx(dice(pred > 0, truth > 0), abs=1e-6)
    assert float(row["tumor_nsd"]) == pytest.approx(
        normalized_surface_dice(pred == 2, truth == 2, ct.spacing), abs=1e-6)
    assert summary["mean"]["tumor_dice"] == pytest.approx(float(row["tumor_dice"]), abs=1e-6)
    assert summary["global_tumor_dice"] == pytest.approx(float(row["tumor_dice"]), abs=1e-6)
    n_lesions = label_lesions(truth == 2)[1]
    assert n_lesions == 70  # LiTS 117, 26-connected
    bins = summary["detection"]["bins"]
    assert sum(b["lesions"] for b in bins.values()) == n_lesions == int(row["lesions"])
    assert summary["detection"]["false_positives_per_case"] == int(row["false_positives"])
    assert summary["cases"] == 2 and summary["cases_with_label"] == 1
    assert summary["checkpoint"].endswith("best.pt") and summary["data"].endswith("val.json")
    assert summary["timing_s"]["inference"] > 0 and summary["timing_s"]["metrics"] > 0
    assert summary["training_spacing_mm"] == 4.0 and summary["roi"] == [32, 32, 32]

    # a case without label: inference only, metrics skipped with a note
    assert rows[1]["tumor_dice"] == "" and "no label" in rows[1]["note"]
    assert any("no_label" in n and "skipped" in n for n in summary["notes"])

    assert (out / "detection_by_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3  # detection chart + one slice per case
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert not re.search(r'src="(?!data:)', html)  # self-contained
    assert "time: inference" in result.stdout and "metrics" in result.stdout
    assert not list(out.parent.glob(".out.*"))  # no temporary folder left


def test_non_empty_out_is_refused(run: tuple, checkpoint: Path) -> None:
    out, _ = run
    before = (out / "summary.json").read_bytes()
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--data",
                                 str(out.parent / "val.json"), "--out", str(out)])
    assert str(out) in _error_line(result) and "--overwrite" in result.stderr
    assert (out / "summary.json").read_bytes() == before


# ----------------------------------------------------------------------------- geometry


def test_ground_truth_on_the_training_grid_lands_back_on_the_original_grid(lits: tuple) -> None:
    """A stand-in model that outputs the ground truth on the training grid: after resampling
    back, Dice is 1 at the image's own 1 mm and stays high at 2 mm (tolerance: downsampling a
    label to 2 mm loses thin structures); a grid one voxel off drops it."""
    ct, truth = lits
    label_vol = type(ct)(truth, ct.affine)

    def round_trip(spacing: float, shift_mm: float = 0.0) -> tuple[float, float]:
        _, grid_affine = inference.to_training_grid(ct, spacing)
        grid_truth, label_affine = inference.to_training_grid(label_vol, spacing, label=True)
        assert np.allclose(grid_affine, label_affine)
        g = grid_truth[0].numpy().astype(int)
        probs = np.stack([g == c for c in range(3)]).astype(np.float32)  # "logits" of the stand-in
        affine = grid_affine.copy()
        affine[0, 3] += shift_mm
        back = inference.to_original_grid(probs, affine, ct.affine, ct.shape)
        assert back.shape == truth.shape
        return dice(back == 2, truth == 2), dice(back > 0, truth > 0)

    tumor, liver = round_trip(1.0)
    assert tumor >= 0.999 and liver >= 0.999
    tumor, liver = round_trip(2.0)
    assert tumor >= 0.90 and liver >= 0.97
    tumor, _ = round_trip(1.0, shift_mm=1.0)
    assert tumor < 0.95  # one voxel off is caught


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.8, 2.5)])
def test_dice_and_nsd_match_deepmind_surface_distance(lits: tuple, spacing: tuple,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference: DeepMind's `surface-distance` (PyPI 0.1). It spells np.Inf (gone in numpy 2)
    for a mask without surface, so that alias is restored for this test only."""
    sd = pytest.importorskip("surface_distance")
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    truth = lits[1] == 2
    perturbed = [
        np.roll(ndimage.binary_erosion(truth), 2, axis=0),
        np.roll(truth, (1, -3, 2), axis=(0, 1, 2)),
    ]
    for pred in perturbed:
        distances = sd.compute_surface_distances(truth, pred, spacing)
        for tol in (1.0, 2.0):
            ref = sd.compute_surface_dice_at_tolerance(distances, tol)
            assert normalized_surface_dice(pred, truth, spacing, tol) == pytest.approx(ref,
                                                                                     abs=1e-6)
        # tiled distance transforms (halo > tolerance) are exact whatever the tile size
        assert normalized_surface_dice(pred, truth, spacing, 2.0, tile=16) == pytest.approx(
            normalized_surface_dice(pred, truth, spacing, 2.0, tile=1024), abs=1e-12)
        assert dice(pred, truth) == pytest.approx(sd.compute_dice_coefficient(truth, pred),
                                                  abs=1e-6)
    # empty masks: one empty -> 0 (as the reference), both empty -> 1 (ours; the reference 0/0)
    empty = np.zeros_like(truth)
    ref = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(truth, empty,
                                                                            spacing), 2.0)
    assert normalized_surface_dice(empty, truth, spacing) == ref == 0.0
    assert normalized_surface_dice(truth, empty, spacing) == 0.0
    assert dice(empty, truth) == 0.0 and dice(truth, empty) == 0.0
    assert normalized_surface_dice(empty, empty, spacing) == 1.0 and dice(empty, empty) == 1.0


def _ball(shape: tuple, centre: tuple, radius: float) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def test_lesion_detection_on_a_constructed_case() -> None:
    shape = (90, 60, 60)
    l1 = _ball(shape, (10, 30, 30), 3)  # 0-5 mm, predicted exactly
    l2 = _ball(shape, (25, 30, 30), 4)  # 0-5 mm, missed
    l3 = _ball(shape, (42, 30, 30), 7)  # 5-10 mm, touched by a 3^3 cube only
    l4 = _ball(shape, (70, 30, 30), 12)  # >10 mm, predicted in two halves
    truth = l1 | l2 | l3 | l4
    pred = l1.copy()
    pred[41:44, 29:32, 29:32] = True
    halves = l4.copy()
    halves[:, 30, :] = False
    pred |= halves
    pred[40:44, 2:6, 2:6] = True  # false positive
    pred[70, 55, 55] = True  # false positive (one voxel)
    det = detect_lesions(pred, truth, voxel_mm3=1.0)
    radii = [le.radius_mm for le in det.lesions]
    assert radii == pytest.approx([equivalent_radius_mm(int(m.sum()), 1.0)
                                   for m in (l1, l2, l3, l4)])
    assert [le.size_bin for le in det.lesions] == ["0-5", "0-5", "5-10", ">10"]
    assert [le.overlap for le in det.lesions] == [True, False, True, True]
    assert [le.detected_iou for le in det.lesions] == [True, False, False, True]
    assert det.lesions[0].iou == 1.0
    assert det.lesions[2].iou == pytest.approx(27 / l3.sum())
    assert det.lesions[3].iou == pytest.approx(halves.sum() / l4.sum())
    assert det.predicted == 6 and det.false_positives == 2
    bins = sensitivity_by_size([det])
    assert bins["0-5"] == {"lesions": 2, "found_overlap": 1, "found_iou": 1,
                           "sensitivity_overlap": 0.5, "sensitivity_iou": 0.5}
    assert bins["5-10"]["sensitivity_overlap"] == 1.0 and bins["5-10"]["sensitivity_iou"] == 0.0
    assert bins[">10"]["found_iou"] == 1
    # the same voxels at 2 mm: radii double, every lesion moves up a bin
    coarse = detect_lesions(pred, truth, voxel_mm3=8.0)
    assert [le.size_bin for le in coarse.lesions] == ["5-10", "5-10", ">10", ">10"]


def test_postprocess_keeps_the_largest_liver_and_tumors_within_the_margin_in_mm() -> None:
    spacing = (1.0, 1.0, 2.5)
    labels = np.zeros((120, 40, 40), np.uint8)
    labels[10:50, 5:35, 5:35] = 1  # the liver
    labels[20:25, 10:15, 10:15] = 2  # tumor inside
    labels[100:110, 5:10, 5:10] = 1  # a smaller, detached "liver" island
    labels[70:73, 18:21, 18:21] = 2  # tumor 20 mm beyond the liver: kept
    labels[90:93, 18:21, 18:21] = 2  # tumor 40 mm beyond: dropped
    out = postprocess(labels, spacing, tumor_margin_mm=30.0)
    assert out[100:110, 5:10, 5:10].max() == 0
    assert (out[20:25, 10:15, 10:15] == 2).all() and (out[70:73, 18:21, 18:21] == 2).all()
    assert out[90:93, 18:21, 18:21].max() == 0
    assert np.array_equal(out[10:50], labels[10:50])
    # along z (2.5 mm voxels) 30 mm is 12 voxels: margin in mm, not voxels
    z = np.zeros((40, 40, 40), np.uint8)
    z[5:35, 5:35, 0:10] = 1
    z[18:21, 18:21, 9 + 12] = 2  # 30 mm above the liver's top voxel
    z[18:21, 18:21, 9 + 14] = 2  # 35 mm
    out = postprocess(z, spacing, tumor_margin_mm=30.0)
    assert out[19, 19, 21] == 2 and out[19, 19, 23] == 0


# ----------------------------------------------------------------------------- bad input


def test_checkpoint_of_another_network_names_both(tmp_path: Path, run: tuple,
                                                  checkpoint: Path) -> None:
    out, _ = run
    data = out.parent / "val.json"
    two = _save_checkpoint(tmp_path / "two", desc={**describe("unet"), "out_channels": 2})
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(two), "--data", str(data),
                                 "--out", str(tmp_path / "o")])
    line = _error_line(result)
    assert str(two) in line and "out_channels=2" in line and "out_channels=3" in line
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data),
                                 "--out", str(tmp_path / "o"), "--model", "swin_unetr"])
    line = _error_line(result)
    assert "name=unet" in line and "name=swin_unetr" in line
    assert not (tmp_path / "o").exists()


def test_missing_or_corrupt_checkpoint(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        inference.load_model(tmp_path / "nope.pt", torch.device("cpu"))
    bad = tmp_path / "best.pt"
    bad.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(InputError, match=r"best\.pt: is not a readable checkpoint"):
        inference.load_model(bad, torch.device("cpu"))


def test_label_on_another_grid_is_resampled_in_world_space(run: tuple, checkpoint: Path,
                                                           tmp_path: Path) -> None:
    """The label stored with permuted, flipped axes and a 4-voxel pad: same metrics (lossless
    world-space resampling); the datalist has only a 'training' list (fallback noted)."""
    out, _ = run
    img = nib.load(LITS_LABEL)
    arr = np.pad(np.asarray(img.dataobj).astype(np.uint8), 4)
    aff = img.affine.copy()
    aff[:3, 3] -= aff[:3, :3] @ [4, 4, 4]
    # new[a, b, c] = old[n - 1 - b, c, a]: axes (z, x, y) with x reversed
    n = arr.shape[0]
    arr = np.flip(arr.transpose(2, 0, 1), axis=1)
    perm = np.array([[0, -1, 0, n - 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr), aff @ perm), tmp_path / "label.nii.gz")
    (tmp_path / "d.json").write_text(json.dumps({"training": [
        {"image": str(LITS_CT), "label": "label.nii.gz"}]}))
    result = evaluate(EvalConfig(checkpoint=checkpoint, data=tmp_path / "d.json",
                                 out=tmp_path / "o", save_predictions=False, device="cpu"),
                      progress=False)
    aligned = json.loads((out / "summary.json").read_text())
    for k in ("tumor_dice", "tumor_nsd", "liver_dice"):
        assert result.summary["mean"][k] == pytest.approx(aligned["mean"][k], abs=1e-9)
    assert result.summary["key"] == "training"
    assert any("resampled onto the image" in n for n in result.summary["notes"])
    assert any("no 'validation' list" in n for n in result.summary["notes"])
    assert result.report.is_file() and not (tmp_path / "o" / "predictions").exists()


def test_compare_writes_the_table_and_figure(run: tuple, tmp_path: Path) -> None:
    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    changed = json.loads(json.dumps(summary))
    changed["mean"]["tumor_dice"] = 0.598
    (other / "summary.json").write_text(json.dumps(changed))
    md = compare_runs(out, other, tmp_path / "cmp", names=("real", "synthetic"))
    text = md.read_text()
    assert "| metric | real | synthetic |" in text
    tumor_row = next(ln for ln in text.splitlines() if ln.startswith("| Tumor DSC (mean)"))
    assert f"{100 * summary['mean']['tumor_dice']:.1f} %" in tumor_row and "59.8 %" in tumor_row
    b = summary["detection"]["bins"]["0-5"]
    assert f"({b['found_overlap']}/{b['lesions']})" in text
    assert "False-positive lesions / case" in text
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["compare", str(out), str(tmp_path / "nothing"), "--out",
                                 str(tmp_path / "cmp2")])
    assert "summary.json" in _error_line(result)


@pytest.mark.parametrize("flip_x", [False, True])
def test_report_slice_outlines_lie_on_the_image(flip_x: bool) -> None:
    """The report's slice is radiological (patient right on the left) and the outlines sit on
    the structures they outline, whatever the storage order of the x axis."""
    import io

    import matplotlib.pyplot as plt

    from synthtumor.evaluate.report import case_slice_png

    ct = np.full((80, 60, 20), 40.0, np.float32)
    label = np.zeros(ct.shape, np.uint8)
    ct[50:70, 20:40, :] = 250.0  # a bright block at high RAS x: the patient's right
    label[50:70, 20:40, :] = 2
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    if flip_x:  # same anatomy stored with x running right-to-left
        ct, label = ct[::-1].copy(), label[::-1].copy()
        affine = affine.copy()
        affine[0, 0], affine[0, 3] = -1.5, 79 * 1.5
    rgb = plt.imread(io.BytesIO(case_slice_png(ct, label, label, affine, "t")))[..., :3]
    grey = np.ptp(rgb, axis=-1) < 0.02
    # the image area: where the 40 HU background shows (the figure margin is white too)
    rows, cols = np.nonzero(grey & (rgb[..., 0] > 0.2) & (rgb[..., 0] < 0.6))
    area = np.zeros(grey.shape, bool)
    area[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    bright_rows, bright_cols = np.nonzero(area & grey & (rgb[..., 0] > 0.95))
    lime = (rgb[..., 1] > 0.8) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    assert bright_cols.size > 1000 and lime.sum() > 50
    # the patient's right on the image's left
    assert bright_cols.mean() < (cols.min() + cols.max()) / 2
    # the tumor outline lies on the block's edge: inside its bounding box grown by 4 pixels
    box = np.zeros_like(lime)
    r0, r1, c0, c1 = bright_rows.min(), bright_rows.max(), bright_cols.min(), bright_cols.max()
    box[r0 - 4:r1 + 5, c0 - 4:c1 + 5] = True
    assert lime[box].sum() / lime.sum() > 0.95
