"""Label-free training on this machine's CPU, measured on a real tumor case never trained on.

1. Healthy training CTs from ../shared/data: totalseg_ct (3 mm, non-contrast) and the
   totalseg_dicom series (0.98 x 0.98 x 2 mm, contrast), each with its TotalSegmentator liver
   (label 5) turned into a 0/1 mask; a MONAI datalist of both.
2. `synthtumor train --mode synthetic` (U-Net 16-32-64-128-256, the reference's settings, on
   CPU) for a fixed number of steps that fits the time budget.
3. `synthtumor evaluate` on tumor/lits117 (LiTS case 117, real tumors, never seen in
   training), without and with the reference post-processing: tumor Dice and NSD, liver Dice,
   lesion detection by equivalent radius, false-positive lesions; reports in WORK/eval_*.

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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


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


def test_datalist(work: Path) -> Path:
    """A datalist whose validation list is LiTS case 117 (real tumors, never trained on)."""
    path = work / "lits117.json"
    item = {"case": "lits117", "image": str(DATA / "tumor/lits117_ct.nii.gz"),
            "label": str(DATA / "tumor/lits117_label.nii.gz")}
    path.write_text(json.dumps({"training": [], "validation": [item]}, indent=2))
    return path


def evaluate(checkpoint: Path, datalist: Path, out: Path, postprocess: bool) -> dict:
    """`synthtumor evaluate` on the original lits117 grid; returns its summary."""
    from synthtumor.evaluate.run import EvalConfig
    from synthtumor.evaluate.run import evaluate as run_evaluation

    return run_evaluation(EvalConfig(
        checkpoint=checkpoint, data=datalist, out=out, key="validation", overlap=0.5,
        postprocess=postprocess, overwrite=True,
    ), progress=False).summary


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
    lits = test_datalist(args.work)
    results = {name: evaluate(checkpoint, lits, args.work / f"eval_{name}", post)
               for name, post in (("raw", False), ("post-processed", True))}
    lesions = results["raw"]["detection"]["lesions"]
    lines = [
        f"U-Net trained {step} steps on 2 healthy CTs with synthetic tumors only (CPU, "
        f"{args.spacing:g} mm, 96³ patches, batch 2); evaluated with `synthtumor evaluate` on "
        f"LiTS case 117 ({lesions} real lesions, never trained on).",
        "",
        "| | tumor Dice | tumor NSD @ 2 mm | liver Dice | lesions found, any overlap (IoU ≥ 0.5), "
        "by equivalent radius | false-positive lesions |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        bins = "; ".join(f"{k} mm: {b['found_overlap']}/{b['lesions']} ({b['found_iou']})"
                         for k, b in r["detection"]["bins"].items())
        mean = r["mean"]
        lines.append(f"| {name} | {mean['tumor_dice']:.3f} | {mean['tumor_nsd']:.3f} | "
                     f"{mean['liver_dice']:.3f} | {bins} | {r['detection']['false_positives']} |")
    text = "\n".join(lines)
    print(text)
    (args.work / "results.md").write_text(text + "\n")
    (args.work / "results.json").write_text(
        json.dumps({"step": step, **results}, indent=2))


if __name__ == "__main__":
    main()
