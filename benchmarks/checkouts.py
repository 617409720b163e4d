"""Two checkouts' synthesis, alternated process by process: is a change faster?

On a shared machine single timings move by tens of percent from minute to minute, more than
many changes do. Here each side runs ``--calls`` in-place calls (seeds 0..N-1, after three
warm-up calls) in a fresh process, the sides alternate for ``--rounds`` rounds, and the table
gives each round's mean CPU ms per call and the ratio of the medians over rounds. Inputs are
those of ``benchmarks/synthesis.py`` (the real CT at 1 mm, full volume and a 96³ patch).

With ``--generic`` both sides synthesize with the generic appearance model (the tumors of
``--realistic`` without its optional effects), else with the reference preset.

Run:  .venv/bin/python benchmarks/checkouts.py ../old/src [--types medium large mix]
      [--inputs patch full] [--calls 20] [--rounds 3] [--generic]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthesis  # noqa: E402  (the inputs of benchmarks/synthesis.py)

ROOT = Path(__file__).resolve().parents[1]

_ONE_SIDE = r"""
import sys, time
from dataclasses import replace
import numpy as np
sys.path.insert(0, sys.argv[1])
from synthtumor.synthesis import SynthesisConfig, synthesize
from synthtumor.synthesis.generic import GENERIC_APPEARANCE
folder, kind, where, calls = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ct0, liver0 = np.load(f"{folder}/{where}_ct.npy"), np.load(f"{folder}/{where}_liver.npy")
config = SynthesisConfig(tumor_type=kind)
if sys.argv[6] == "generic":
    config = replace(config, appearance=GENERIC_APPEARANCE)
def run(seeds):
    total = 0.0
    for seed in seeds:
        ct, liver = ct0.copy(), liver0.copy()
        start = time.process_time()
        synthesize(ct, liver, np.random.default_rng(seed), config, spacing=1.0, inplace=True)
        total += time.process_time() - start
    return total / len(seeds) * 1000.0
run(range(1000, 1003))
print(run(range(calls)))
"""


def _side(src: Path, folder: Path, kind: str, where: str, calls: int, look: str) -> float:
    out = subprocess.run([sys.executable, "-c", _ONE_SIDE, str(src), str(folder), kind, where,
                          str(calls), look], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="src/ of the other checkout")
    parser.add_argument("--types", nargs="+", default=list(synthesis.TYPES),
                        choices=synthesis.TYPES)
    parser.add_argument("--inputs", nargs="+", default=["patch"], choices=["patch", "full"])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--generic", action="store_true",
                        help="time the generic appearance model instead of the reference preset")
    args = parser.parse_args()
    if not (args.baseline / "synthtumor").is_dir():
        parser.error(f"{args.baseline}: not a src/ folder holding synthtumor")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthesis.prepare(folder)
        print("| input | type | baseline, CPU ms per round | this, CPU ms per round | "
              "baseline / this (medians) |")
        print("|---|---|---|---|---|")
        for where in args.inputs:
            for kind in args.types:
                times: dict[str, list[float]] = {"baseline": [], "this": []}
                for _ in range(args.rounds):
                    for side, src in (("baseline", args.baseline), ("this", ROOT / "src")):
                        times[side].append(_side(src, folder, kind, where, args.calls,
                                                 "generic" if args.generic else "reference"))
                ratio = statistics.median(times["baseline"]) / statistics.median(times["this"])
                cells = [", ".join(f"{t:.1f}" for t in times[s]) for s in ("baseline", "this")]
                print(f"| {where} | {kind} | {cells[0]} | {cells[1]} | {ratio:.2f}× |",
                      flush=True)


if __name__ == "__main__":
    main()
