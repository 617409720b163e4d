"""Do metrics dominate evaluation? Inference vs metric seconds on a 512x512x100 CT.

The volume is LiTS case 117 (../shared/data/tumor) upsampled to 512x512x100 (CT linear, label
nearest) with spacing 0.25 x 0.25 x 1.28 mm, so its anatomy keeps the nominal 1 mm size of the
original 128^3 crop. Timed, each the way `synthtumor evaluate` runs it:

- inference: preprocessing (RAS, resample to the training spacing, HU window), Gaussian sliding
  window of the reference U-Net (freshly built: weights do not change the cost), probabilities
  back onto the 512x512x100 grid;
- post-processing (largest liver component, tumors within 30 mm);
- metrics of a realistic prediction (the label with the tumor eroded and shifted by 2 voxels):
  liver and tumor Dice, tumor NSD at 2 mm, lesion detection.

Run:  .venv/bin/python benchmarks/evaluate.py [--spacing 1.0] [--roi 96] [--overlap 0.75]
      [--device auto]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tumor"
SHAPE = (512, 512, 100)


def build_case() -> tuple:
    """(CT Volume, 0/1/2 label) on a 512x512x100 grid built from lits117."""
    from scipy import ndimage

    from synthtumor.imaging import Volume, read_ct, read_labels

    ct = read_ct(DATA / "lits117_ct.nii.gz")
    label = read_labels(DATA / "lits117_label.nii.gz", ct).array
    zoom = np.array(SHAPE) / np.array(ct.shape)
    big_ct = ndimage.zoom(ct.array, zoom, order=1, grid_mode=True, mode="nearest")
    big_label = ndimage.zoom(label, zoom, order=0, grid_mode=True, mode="nearest")
    affine = ct.affine.copy()
    affine[:3, :3] = ct.affine[:3, :3] / zoom
    affine[:3, 3] = ct.affine[:3, :3] @ (0.5 / zoom - 0.5) + ct.affine[:3, 3]
    return Volume(big_ct.astype(np.float32), affine, "lits117 x4"), big_label.astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=1.0, help="training grid (mm)")
    parser.add_argument("--roi", type=int, default=96, help="sliding window side (voxels)")
    parser.add_argument("--overlap", type=float, default=0.75)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch
    from scipy import ndimage

    from synthtumor.evaluate import inference
    from synthtumor.evaluate.postprocess import postprocess
    from synthtumor.evaluate.run import case_metrics
    from synthtumor.train.models import build_model, describe

    ct, truth = build_case()
    device = inference.pick_device(args.device)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("unet").to(device).eval()
    loaded = inference.LoadedModel(model, describe("unet"), args.spacing, (args.roi,) * 3, 0,
                                   device)
    predictor = inference.sliding_window_predictor(loaded, args.overlap)
    # warm-up on a small input: first-call costs (kernel selection, lazy imports) are not
    # what a long evaluation pays per case
    predictor(torch.zeros((1, 1, args.roi, args.roi, args.roi)))

    t0 = time.perf_counter()
    image, grid_affine = inference.to_training_grid(ct, args.spacing)
    t1 = time.perf_counter()
    probs = inference.predict_probabilities(image, predictor)
    t2 = time.perf_counter()
    pred = inference.to_original_grid(probs, grid_affine, ct.affine, ct.shape)
    t3 = time.perf_counter()
    postprocess(pred, ct.spacing)
    t4 = time.perf_counter()

    # a realistic prediction: tumor eroded and shifted, liver shifted
    realistic = np.roll(truth, 2, axis=0)
    tumor = np.roll(ndimage.binary_erosion(truth == 2, iterations=2), 2, axis=1)
    realistic[(realistic == 2) & ~tumor] = 1
    realistic[tumor & (realistic > 0)] = 2
    t5 = time.perf_counter()
    row, detection, _ = case_metrics(realistic, truth, ct.spacing, 2.0)
    t6 = time.perf_counter()

    stages = [
        (f"preprocess to {args.spacing:g} mm {tuple(image.shape[1:])}", t1 - t0),
        (f"sliding window ({args.roi}^3, overlap {args.overlap:g}, {device})", t2 - t1),
        ("probabilities back to 512x512x100", t3 - t2),
        ("post-processing", t4 - t3),
        ("inference total", t4 - t0),
        ("metrics: Dice, NSD @ 2 mm, detection", t6 - t5),
    ]
    print("| stage | seconds |\n|---|---|")
    for name, sec in stages:
        print(f"| {name} | {sec:.2f} |")
    print(f"\nmetrics / inference = {(t6 - t5) / (t4 - t0):.2f}; realistic prediction: tumor "
          f"Dice {row['tumor_dice']:.3f}, NSD {row['tumor_nsd']:.3f}, "
          f"{len(detection.lesions)} lesions, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
