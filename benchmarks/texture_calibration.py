"""Calibrate the texture normalisation against the reference texture bank.

The reference smooths one 420x300x320 block of U(0, 1) noise per sigma_a and rescales it with the
block's own min and max. We make textures per tumor box, far smaller than that block, so we rescale
with the block's *expected* range instead: mean 0.5 +/- kappa * std, where std is the exact std of
the smoothed noise and kappa = (max - min) / (2 std) measured here on full-size blocks.

Run:  .venv/bin/python benchmarks/texture_calibration.py   (about a minute per sigma_a)
The printed kappa values are the table `BANK_HALF_RANGE_IN_STD` in synthesis/texture.py.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

BANK_SHAPE = (420, 300, 320)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'sigma_a':>8} {'std':>10} {'kappa':>8}")
    for sigma_a in (3, 6, 9, 12, 15):
        noise = rng.random(BANK_SHAPE, dtype=np.float32)
        smooth = ndi.gaussian_filter(noise, sigma_a)
        del noise
        edge = slice(2 * sigma_a, -2 * sigma_a)
        core = smooth[edge, edge, edge]
        std = float(core.std())
        kappa = float(smooth.max() - smooth.min()) / (2 * std)
        print(f"{sigma_a:>8} {std:>10.6f} {kappa:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
