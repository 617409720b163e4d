"""How long does `synthtumor data phantoms` take? Target: 100 phantoms at 1.5 mm in <= 5 min
with 2 workers.

Run:  python benchmarks/phantoms.py [--n 100] [--spacing 1.5] [--workers 2]
Prints one table row: phantoms, spacing, workers, seconds, seconds per phantom, MB written.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=1.5, help="mm, isotropic")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from synthtumor.data.phantoms import write_phantom_set
    from synthtumor.phantom_scan import ScanRanges

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_phantom_set(Path(tmp) / "set", args.n, seed=0, workers=args.workers,
                          ranges=ScanRanges().fixed_spacing(args.spacing))
        seconds = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e6
    load = os.getloadavg()[0]
    print("| phantoms | spacing mm | workers | seconds | s / phantom | MB | load avg |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.n} | {args.spacing:g} | {args.workers} | {seconds:.0f} | "
          f"{seconds / args.n:.2f} | {size:.0f} | {load:.1f} |")


if __name__ == "__main__":
    main()
