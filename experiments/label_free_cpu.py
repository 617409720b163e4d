"""Label-free training on this machine's CPU, measured on a real tumor case never trained on.

1. Healthy training CTs from ../shared/data: totalseg_ct (3 mm, non-contrast) and the
   totalseg_dicom series (0.98 x 0.98 x 2 mm, contrast), each with its TotalSegmentator liver
   (label 5) turned into a 0/1 mask; a MONAI datalist of both.
2. `synthtumor train --mode synthetic` (U-Net 16-32-64-128-256, the reference's settings, on
   CPU) for a fixed number of steps that fits the time budget.
3. Evaluation on tumor/lits117 (LiTS case 117, real tumors, never seen in training): sliding
   window inference, the reference post-processing (largest liver component; tumor voxels only
   near it), tumor and liver Dice, and lesion detection by equivalent radius (0-5, 5-10,
   > 10 mm; "any overlap" and IoU >= 0.5), false-positive lesions.

Run:  .venv/bin/python experiments/label_free_cpu.py --minutes 45 [--work runs/label_free_cpu]
It prints a Markdown table and writes it with the raw numbers to WORK/results.{md,json}.
lits117's true spacing was lost (its header says 1 mm): sizes below are nominal mm.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BINS_MM = ((0.0, 5.0), (5.0, 10.0), (10.0, np.inf))


def prepare(work: Path) -> Path:
    """Write the healthy training cases as NIfTI + 0/1 liver masks and their datalist."""
    from synthtumor.imaging import read_ct, read_mask, write_nifti

    cases = {
        "totalseg_ct": (DATA / "healthy/totalseg_ct.nii.gz",
                        DATA / "healthy/totalseg_ct_organs.nii.gz"),
        "totalseg_dicom": (DATA / "healthy/totalseg_dicom/ct",
                           DATA / "healthy/totalseg_dicom/organs.nii.gz"),
    }
    (work / "images").mkdir(parents=True, exist_ok=True)
    (work / "labels").mkdir(parents=True, exist_ok=True)
    items = []
    for name, (ct_path, organs) in cases.items():
        ct = read_ct(ct_path)
        liver = read_mask(organs, ct, label=5)
        image, label = work / "images" / f"{name}.nii.gz", work / "labels" / f"{name}.nii.gz"
        write_nifti(image, ct.array, ct.affine, kind="ct")
        write_nifti(label, liver.array, ct.affine, kind="label")
        items.append({"image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz"})
    datalist = work / "healthy.json"
    datalist.write_text(json.dumps({"training": items, "validation": []}, indent=2))
    return datalist


def lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndi.label(mask, structure=np.ones((3, 3, 3), bool))


def evaluate(prediction: np.ndarray, truth: np.ndarray, voxel_mm3: float) -> dict:
    """Tumor/liver Dice and lesion-wise detection (0 bg, 1 liver, 2 tumor arrays)."""

    def dice(a: np.ndarray, b: np.ndarray) -> float:
        total = a.sum() + b.sum()
        return float(2.0 * (a & b).sum() / total) if total else 1.0

    tumor_p, tumor_t = prediction == 2, truth == 2
    out = {"tumor_dice": dice(tumor_p, tumor_t), "liver_dice": dice(prediction > 0, truth > 0)}
    true_lab, n_true = lesions(tumor_t)
    pred_lab, n_pred = lesions(tumor_p)
    bins = {f"{lo:g}-{hi:g} mm": [0, 0, 0] for lo, hi in BINS_MM}  # [lesions, any, iou>=.5]
    for k in range(1, n_true + 1):
        lesion = true_lab == k
        radius = (3.0 * lesion.sum() * voxel_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)
        key = next(f"{lo:g}-{hi:g} mm" for lo, hi in BINS_MM if lo <= radius < hi)
        hits = np.unique(pred_lab[lesion])
        hits = hits[hits > 0]
        bins[key][0] += 1
        if hits.size:
            bins[key][1] += 1
            union = lesion | np.isin(pred_lab, hits)
            if (lesion & tumor_p).sum() / union.sum() >= 0.5:
                bins[key][2] += 1
    false_pos = sum(1 for k in range(1, n_pred + 1) if not tumor_t[pred_lab == k].any())
    out.update({"lesions": n_true, "by_radius": bins, "false_positive_lesions": false_pos})
    return out


def train(datalist: Path, run: Path, steps: int, minutes: float, spacing: float) -> Path:
    """Run `synthtumor train --mode synthetic`; stop it at the time budget (checkpoints are
    atomic, so the last one written is complete). Returns the checkpoint to evaluate."""
    command = [
        sys.executable, "-m", "synthtumor.train", "--data", str(datalist), "-o", str(run),
        "--mode", "synthetic", "--model", "unet", "--roi", "96", "96", "96",
        "--spacing", str(spacing), "--batch-size", "2", "--steps", str(steps), "--lr", "1e-3",
        "--warmup", "50", "--save-every", "50", "--workers", "2", "--cache", "memory",
        "--seed", "0", "--overwrite", "--log-every", "25",
    ]
    print("$", " ".join(command), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(command)
    try:
        proc.wait(timeout=minutes * 60.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print(f"stopped at the {minutes:g}-minute budget", flush=True)
    print(f"training took {(time.monotonic() - start) / 60:.1f} min", flush=True)
    last = run / "last.pt"
    if not last.is_file():
        raise SystemExit(f"{last}: no checkpoint was written")
    return last


def predict(checkpoint: Path, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Sliding-window prediction (0/1/2) and truth for lits117 on the training grid."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        Orientationd,
        ScaleIntensityRanged,
        Spacingd,
    )

    from synthtumor.train.models import build_model
    from synthtumor.train.transforms import RAS_LABELS

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = build_model(ckpt["model_desc"]["name"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    keys = ["image", "label"]
    case = Compose([
        LoadImaged(keys), EnsureChannelFirstd(keys),
        Orientationd(keys, axcodes="RAS", labels=RAS_LABELS),
        Spacingd(keys, pixdim=(spacing,) * 3, mode=("bilinear", "nearest")),
        ScaleIntensityRanged("image", a_min=-21, a_max=189, b_min=0.0, b_max=1.0, clip=True),
    ])({"image": str(DATA / "tumor/lits117_ct.nii.gz"),
        "label": str(DATA / "tumor/lits117_label.nii.gz")})
    with torch.no_grad():
        logits = sliding_window_inference(case["image"][None].as_tensor(), (96, 96, 96), 2,
                                          model, overlap=0.5, mode="gaussian")
    prediction = logits.argmax(dim=1)[0].numpy().astype(np.uint8)
    return prediction, np.asarray(case["label"][0]).astype(np.uint8)


def postprocess(prediction: np.ndarray, spacing: float, reach_mm: float = 30.0) -> np.ndarray:
    """The reference's: keep the largest liver component; tumor only within reach_mm of it."""
    organ, n = lesions(prediction > 0)
    out = np.zeros_like(prediction)
    if n == 0:
        return out
    largest = organ == 1 + int(np.argmax(np.bincount(organ.ravel())[1:]))
    near = ndi.distance_transform_edt(~largest, sampling=spacing) <= reach_mm
    out[largest] = 1
    out[(prediction == 2) & near] = 2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0, help="training time budget")
    parser.add_argument("--steps", type=int, default=900, help="schedule length (steps)")
    parser.add_argument("--spacing", type=float, default=1.5, help="training grid (mm)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "label_free_cpu")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    datalist = prepare(args.work / "data")
    checkpoint = train(datalist, args.work / "run", args.steps, args.minutes, args.spacing)
    import torch

    step = int(torch.load(checkpoint, map_location="cpu", weights_only=True)["step"])
    prediction, truth = predict(checkpoint, args.spacing)
    voxel = args.spacing**3
    raw = evaluate(prediction, truth, voxel)
    post = evaluate(postprocess(prediction, args.spacing), truth, voxel)
    lines = [
        f"U-Net trained {step} steps on 2 healthy CTs with synthetic tumors only (CPU, "
        f"{args.spacing:g} mm, 96³ patches, batch 2); evaluated on LiTS case 117 "
        f"({raw['lesions']} real lesions, never trained on).",
        "",
        "| | tumor Dice | liver Dice | lesions found (any overlap / IoU ≥ 0.5) by radius | "
        "false-positive lesions |",
        "|---|---|---|---|---|",
    ]
    for name, r in (("raw", raw), ("post-processed", post)):
        bins = "; ".join(f"{k}: {v[1]}/{v[0]} / {v[2]}/{v[0]}" for k, v in r["by_radius"].items())
        lines.append(f"| {name} | {r['tumor_dice']:.3f} | {r['liver_dice']:.3f} | {bins} | "
                     f"{r['false_positive_lesions']} |")
    text = "\n".join(lines)
    print(text)
    (args.work / "results.md").write_text(text + "\n")
    (args.work / "results.json").write_text(
        json.dumps({"step": step, "raw": raw, "post_processed": post}, indent=2))


if __name__ == "__main__":
    main()
