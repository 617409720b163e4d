"""Cost of the appearance model per synthesis call, against the reference preset.

Same inputs as ``benchmarks/synthesis.py`` (its ``prepare``: totalseg_ct resampled to 1 mm,
the full volume in place and a 96³ patch centred in the liver, in place). Per tumor type, the
same seeds are run with the reference config ``SynthesisConfig(tumor_type=T)`` and with an
appearance added (``replace(reference, appearance=A)``: the generic appearance, and optionally
a fitted profile's), interleaved call by call so that a noisy shared machine slows all alike;
the median wall time per config is kept, best of ``--rounds``.

With ``--realistic`` the ``--realistic`` preset (``SynthesisConfig.realistic``: the generic
appearance plus mass effect, capsule, necrosis and vessel avoidance) is timed too, for what a
training run with it costs; the 2x target is the appearance model's alone.

Run:  .venv/bin/python benchmarks/appearance.py [--calls 10] [--profile profile.json] [--realistic]
Target: appearance <= 2x the reference per call.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np

TYPES = ("tiny", "small", "medium", "large", "mix")
INPUTS = {"full": "full volume, in place", "patch": "96³ patch, in place"}


def _synthesis_benchmark() -> ModuleType:
    """benchmarks/synthesis.py, whose ``prepare`` and ``_load`` make the inputs."""
    spec = importlib.util.spec_from_file_location(
        "bench_synthesis", Path(__file__).with_name("synthesis.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_inputs(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write synthesis.py's inputs into ``folder`` and load them: name -> (CT, liver)."""
    module = _synthesis_benchmark()
    module.prepare(folder)
    return module._load(folder)


def _time(ct: np.ndarray, liver: np.ndarray, config: object, seed: int) -> float:
    from synthtumor.synthesis import synthesize

    work_ct, work_liver = ct.copy(), liver.copy()
    start = time.perf_counter()
    synthesize(work_ct, work_liver, np.random.default_rng(seed), config, spacing=1.0,
               inplace=True)
    return time.perf_counter() - start


def variants(looks: dict[str, object],
             realistic: bool = False) -> dict[str, Callable[[str], object]]:
    """The configs to time, name -> the config for a tumor type: the reference, the reference
    with each appearance of ``looks`` (name -> ``Appearance``), and with ``realistic`` the
    ``--realistic`` preset."""
    from synthtumor.synthesis import SynthesisConfig

    out: dict[str, Callable[[str], object]] = {
        "reference": lambda kind: SynthesisConfig(tumor_type=kind)}
    for name, look in looks.items():
        out[name] = lambda kind, look=look: replace(SynthesisConfig(tumor_type=kind),
                                                    appearance=look)
    if realistic:
        out["realistic preset"] = lambda kind: SynthesisConfig.realistic(tumor_type=kind)
    return out


def measure(inputs: dict, variants: dict[str, Callable[[str], object]], types: tuple[str, ...],
            calls: int, rounds: int) -> dict[tuple[str, str], dict[str, float]]:
    """(input, type) -> variant name -> best-of-rounds median ms, variants interleaved call by
    call. variants: name -> the config for a tumor type."""
    result = {}
    for where in inputs:
        ct, liver = inputs[where]
        for make in variants.values():
            _time(ct, liver, make("mix"), 1000)  # warm-up: numba cache, scratch buffers
        for kind in types:
            configs = {n: make(kind) for n, make in variants.items()}
            best = {n: np.inf for n in configs}
            for _ in range(rounds):
                times: dict[str, list[float]] = {n: [] for n in configs}
                for seed in range(calls):
                    for n, cfg in configs.items():
                        times[n].append(_time(ct, liver, cfg, seed))
                for n in configs:
                    best[n] = min(best[n], 1000.0 * float(np.median(times[n])))
            result[where, kind] = best
    return result


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="also time this profile's appearance")
    parser.add_argument("--realistic", action="store_true",
                        help="also time the --realistic preset (appearance, mass effect, capsule, "
                             "necrosis, vessel avoidance), outside the 2x target")
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=TYPES)
    parser.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=list(INPUTS))
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from synthtumor.synthesis.generic import GENERIC_APPEARANCE

    looks = {"generic appearance": GENERIC_APPEARANCE}
    if args.profile:
        from synthtumor.realism.fit import read_profile

        looks["fitted appearance"] = read_profile(args.profile).appearance
    configs = variants(looks, args.realistic)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {k: v for k, v in load_inputs(Path(tmp)).items() if k in args.inputs}
        times = measure(inputs, configs, tuple(args.types), args.calls, args.rounds)
    table = Table(title=f"wall ms per call (median of {args.calls} seeds, best of "
                  f"{args.rounds} rounds; configs interleaved call by call), 1 mm")
    compared = [n for n in configs if n != "reference"]
    for col in ("input", "type", "reference", *(c for n in compared for c in (n, "x ref"))):
        table.add_column(col, justify="left" if col in ("input", "type") else "right")
    worst = 0.0
    for (where, kind), best in times.items():
        row = [INPUTS[where], kind, f"{best['reference']:.1f}"]
        for n in compared:
            ratio = best[n] / best["reference"]
            if n in looks:  # the target is the appearance model's; the preset adds effects
                worst = max(worst, ratio)
            row += [f"{best[n]:.1f}", f"{ratio:.2f}"]
        table.add_row(*row)
    console = Console(width=140)
    console.print(table)
    console.print(f"worst ratio {worst:.2f}: target <= 2x {'met' if worst <= 2 else 'NOT met'}")
    return worst


if __name__ == "__main__":
    main()
