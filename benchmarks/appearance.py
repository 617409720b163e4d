"""Cost of the appearance model per synthesis call, against the reference preset.

Same input and call as the "liver box, in place" row of ``benchmarks/synthesis.py``
(totalseg_ct at 1 mm, the liver's bounding box + 10 mm, in place). Per tumor type, the same
seeds are run with the reference config and with the appearance options on (the generic
appearance of ``SynthesisConfig.realistic`` alone, and optionally a fitted profile's
appearance with the type's own size classes), interleaved call by call so that a noisy shared
machine slows both alike; the median per config is kept, best of ``--rounds``.

Run:  .venv/bin/python benchmarks/appearance.py [--calls 10] [--profile profile.json]
Target: appearance <= 2x the reference per call.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

TYPES = ("tiny", "small", "medium", "large", "mix")


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.spec_from_file_location(
        "bench_synthesis", Path(__file__).with_name("synthesis.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.crop(*module.load_1mm(), "box")


def _time(ct: np.ndarray, liver: np.ndarray, config: object, seed: int) -> float:
    from synthtumor.synthesis import synthesize

    work_ct, work_liver = ct.copy(), liver.copy()
    start = time.perf_counter()
    synthesize(work_ct, work_liver, np.random.default_rng(seed), config, spacing=1.0,
               inplace=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="also time this profile's appearance")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from synthtumor.synthesis import SynthesisConfig
    from synthtumor.synthesis.generic import GENERIC_APPEARANCE

    looks = {"generic appearance": GENERIC_APPEARANCE}
    if args.profile:
        from synthtumor.realism.fit import read_profile

        looks["fitted appearance"] = read_profile(args.profile).appearance
    ct, liver = _inputs()
    table = Table(title=f"ms per call (median of {args.calls} seeds, best of {args.rounds} "
                  f"rounds), liver box {'x'.join(map(str, ct.shape))} in place")
    table.add_column("type")
    table.add_column("reference", justify="right")
    for name in looks:
        table.add_column(name, justify="right")
        table.add_column("x ref", justify="right")
    worst = 0.0
    for kind in TYPES:
        ref_cfg = SynthesisConfig(tumor_type=kind)
        configs = {"reference": ref_cfg} | {n: replace(ref_cfg, appearance=a)
                                            for n, a in looks.items()}
        best = {n: np.inf for n in configs}
        for _ in range(args.rounds):
            times: dict[str, list[float]] = {n: [] for n in configs}
            for seed in range(args.calls):
                for n, cfg in configs.items():
                    times[n].append(_time(ct, liver, cfg, seed))
            for n in configs:
                best[n] = min(best[n], 1000.0 * float(np.median(times[n])))
        row = [kind, f"{best['reference']:.1f}"]
        for n in looks:
            ratio = best[n] / best["reference"]
            worst = max(worst, ratio)
            row += [f"{best[n]:.1f}", f"{ratio:.2f}"]
        table.add_row(*row)
    console = Console(width=140)
    console.print(table)
    console.print(f"worst ratio {worst:.2f}: target <= 2x {'met' if worst <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
