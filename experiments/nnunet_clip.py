"""Tumor contrast in nnU-Net's network input, with the healthy-liver clip and the widened one.

Plans as nnU-Net's fingerprint would make them: mean, std and 0.5/99.5 percentiles of the
liver's HU (totalseg_ct, liver = organ 5; LiTS 117, label 1). Synthetic tumors: 6 draws
(seeds 0-5) of the reference method into totalseg_ct at 3 mm patch spacing, through the
trainer's own path (``synthesize_normalised``). Real tumors: label 2 of LiTS 117.
Columns: the clip (HU), tumor voxels at the lower clip, and the liver - tumor contrast in
the network's input ((HU - mean) / std units; mean over voxels).

Run:  .venv/bin/python experiments/nnunet_clip.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthtumor.imaging import read_ct, read_labels, read_mask
from synthtumor.nnunet.clip import widened
from synthtumor.nnunet.transform import CTIntensity, patch_affine, synthesize_normalised

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def fingerprint(hu: np.ndarray) -> dict[str, float]:
    return {"mean": float(hu.mean()), "std": float(hu.std()),
            "percentile_00_5": float(np.percentile(hu, 0.5)),
            "percentile_99_5": float(np.percentile(hu, 99.5))}


def row(name: str, props: dict[str, float], tumor_norm: np.ndarray, liver_norm: np.ndarray,
        intensity: CTIntensity) -> str:
    floor = intensity.from_hu(np.float32(intensity.lower))
    at_floor = float(np.mean(np.isclose(tumor_norm, floor, atol=1e-4)))
    contrast = float(liver_norm.mean() - tumor_norm.mean())
    return (f"| {name} | {intensity.lower:.0f}..{intensity.upper:.0f} | {at_floor:.1%} | "
            f"{contrast:.2f} |")


def main() -> None:
    print("| tumors | clip (HU) | tumor voxels at the floor | liver - tumor (std units) |")
    print("|---|---|---|---|")
    ct = read_ct(DATA / "healthy" / "totalseg_ct.nii.gz")
    liver = read_mask(DATA / "healthy" / "totalseg_ct_organs.nii.gz", ct, label=5).array > 0
    props = fingerprint(ct.array[liver])
    affine = patch_affine((3.0, 3.0, 3.0), cc_axis=2)
    for label, p in (("healthy-liver clip", props), ("widened", widened(props))):
        intensity = CTIntensity.from_plans({"0": p})
        base = intensity.from_hu(ct.array)
        tumors, livers = [], []
        for seed in range(6):
            img, seg = base.copy(), liver.astype(np.int16)
            synthesize_normalised(img, seg, np.random.default_rng(seed), intensity, affine)
            tumors.append(img[seg == 2])
            livers.append(img[seg == 1])
        print(row(f"synthetic, totalseg_ct, {label}", p, np.concatenate(tumors),
                  np.concatenate(livers), intensity))
    lits = read_ct(DATA / "tumor" / "lits117_ct.nii.gz")
    labels = read_labels(DATA / "tumor" / "lits117_label.nii.gz", lits).array
    props = fingerprint(lits.array[labels == 1])
    for label, p in (("healthy-liver clip", props), ("widened", widened(props))):
        intensity = CTIntensity.from_plans({"0": p})
        norm = intensity.from_hu(lits.array)
        print(row(f"real, LiTS 117, {label}", p, norm[labels == 2], norm[labels == 1], intensity))


if __name__ == "__main__":
    main()
