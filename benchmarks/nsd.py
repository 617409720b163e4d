"""NSD: ours (``evaluate.metrics.normalized_surface_dice``) against MONAI's
``compute_surface_dice(..., use_subvoxels=True)`` and DeepMind's ``surface-distance``.

Masks: the tumor of ../shared/data/tumor/lits117_label.nii.gz (label 2, 128^3 at 1 mm) and two
perturbed predictions (eroded and shifted 2 voxels; shifted by (1, -3, 2)), at two spacings and
two tolerances; then the same pair placed in a CT-sized 512x512x128 grid. Times are the best of
``--repeat`` warm calls (this kind of machine is shared and noisy).

Run:  .venv/bin/python benchmarks/nsd.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.metrics import compute_surface_dice
from scipy import ndimage

from synthtumor.evaluate.metrics import normalized_surface_dice

LITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tumor" / "lits117_label.nii.gz"


def monai_nsd(pred: np.ndarray, truth: np.ndarray, spacing: tuple, tol: float) -> float:
    one_hot = [torch.from_numpy(np.stack([~m, m])[None]) for m in (pred, truth)]
    return float(compute_surface_dice(*one_hot, [tol], include_background=False,
                                      spacing=list(spacing), use_subvoxels=True)[0, 0])


def best_of(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    fn()  # warm: tables, imports
    times, value = [], 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    truth = np.asarray(nib.load(LITS).dataobj) == 2
    preds = {"eroded+shift": np.roll(ndimage.binary_erosion(truth), 2, axis=0),
             "shift (1,-3,2)": np.roll(truth, (1, -3, 2), axis=(0, 1, 2))}
    big_t = np.zeros((512, 512, 128), bool)
    big_t[200:328, 200:328] = truth
    big_p = np.zeros_like(big_t)
    big_p[200:328, 200:328] = preds["shift (1,-3,2)"]
    cases = [(f"{name}, {sp}, tol {tol}", p, truth, sp, tol) for name, p in preds.items()
             for sp in ((1.0, 1.0, 1.0), (0.7, 0.8, 2.5)) for tol in (1.0, 2.0)]
    cases.append(("shift in 512x512x128, (0.7, 0.7, 2.5), tol 2", big_p, big_t, (0.7, 0.7, 2.5),
                  2.0))
    print("| case | ours | MONAI | |diff| | ours (s) | MONAI (s) | MONAI / ours |")
    print("|---|---|---|---|---|---|---|")
    for label, p, t, sp, tol in cases:
        ours, t_ours = best_of(lambda p=p, t=t, sp=sp, tol=tol:
                               normalized_surface_dice(p, t, sp, tol), args.repeat)
        ref, t_ref = best_of(lambda p=p, t=t, sp=sp, tol=tol: monai_nsd(p, t, sp, tol),
                             args.repeat)
        print(f"| {label} | {ours:.7f} | {ref:.7f} | {abs(ours - ref):.1e} | {t_ours:.2f} | "
              f"{t_ref:.2f} | {t_ref / t_ours:.1f}x |")


if __name__ == "__main__":
    main()
