"""Speed and memory of the synthesizer on real CT: absolute times, start-up, and ratios.

Input: ../shared/data/healthy/totalseg_ct.nii.gz (liver = label 5 of totalseg_ct_organs)
resampled to 1 mm, 366x303x336 with 1.12 M liver voxels, as the reference pipeline does. The
call is timed on arrays in memory (file I/O excluded); every type gets the same seeds 0..N-1.

Printed:
1. median wall and CPU ms per call and type, default backend, each row in its own process
   (on a shared machine the CPU time is the better estimate of a quiet machine's wall time):
   - "full volume, in place": ``inplace=True`` on the whole volume (a fresh copy of the inputs
     is made before each call, outside the timing), the way loaders and adapters call it;
   - "full volume, default call": the plain call, which returns new CT and label arrays;
   - "96³ patch, in place": a 96³ training patch centred in the liver (the training loader's
     call);
   with the peak extra memory of one call after warm-up (tracemalloc: everything NumPy
   allocates during the call, including the returned arrays) and the scratch buffers that the
   first calls allocate and later calls reuse.
2. start-up: a fresh interpreter importing the core and making its first call (mix on the 96³
   patch) with the numba cache warm, and the same with an empty cache (cold: compiling).
3. ratios measured in one run, alternating call by call on the same inputs and seeds, so that
   machine load affects both sides alike: the NumPy reference path / the compiled path, and,
   with ``--baseline SRC`` (the src/ folder of another synthtumor checkout, e.g. the previous
   release), that code / this code, each in its own process.

Run:  .venv/bin/python benchmarks/synthesis.py [--calls 15] [--baseline ../old/src] [--ratios-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "healthy"
TYPES = ("tiny", "small", "medium", "large", "mix")
BACKEND_VARIABLE = "SYNTHTUMOR_SYNTHESIS_BACKEND"
ROWS = {"full_inplace": "full volume, in place", "full_default": "full volume, default call",
        "patch_inplace": "96³ patch, in place"}


def prepare(folder: Path) -> None:
    """Resample the real CT and its liver to 1 mm once; save the full volume and a 96³ patch."""
    sys.path.insert(0, str(ROOT / "src"))
    from synthtumor.imaging import read_ct, read_mask, resample_to_spacing

    ct = read_ct(DATA / "totalseg_ct.nii.gz")
    liver = read_mask(DATA / "totalseg_ct_organs.nii.gz", ct, label=5)
    ct1 = resample_to_spacing(ct, 1.0, order=1).array.astype(np.float32)
    liver1 = (resample_to_spacing(liver, 1.0, order=0).array > 0).astype(np.uint8)
    centre = [int(np.median(np.nonzero(liver1)[i])) for i in range(3)]
    start = [min(max(c - 48, 0), n - 96) for c, n in zip(centre, ct1.shape)]
    patch = tuple(slice(s, s + 96) for s in start)
    for name, (c, m) in {"full": (ct1, liver1), "patch": (ct1[patch], liver1[patch])}.items():
        np.save(folder / f"{name}_ct.npy", np.ascontiguousarray(c))
        np.save(folder / f"{name}_liver.npy", np.ascontiguousarray(m))


def _arguments(inputs: dict, mode: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """The call's CT, liver and inplace flag; in-place calls get fresh copies of the inputs."""
    ct, liver = inputs["patch" if mode == "patch_inplace" else "full"]
    inplace = mode != "full_default"
    if inplace:
        ct, liver = ct.copy(), liver.copy()
    return ct, liver, inplace


def _call(inputs: dict, kind: str, seed: int, mode: str) -> tuple[float, float]:
    """One timed call, wall and CPU seconds (in-place input copies are made before the clock
    starts)."""
    from synthtumor.synthesis import SynthesisConfig, synthesize

    ct, liver, inplace = _arguments(inputs, mode)
    config = SynthesisConfig(tumor_type=kind)
    start, cpu = time.perf_counter(), time.process_time()
    synthesize(ct, liver, np.random.default_rng(seed), config, spacing=1.0, inplace=inplace)
    return time.perf_counter() - start, time.process_time() - cpu


def _peak_mb(inputs: dict, kind: str, mode: str, calls: int = 2) -> float:
    """The largest tracemalloc peak of a call above what was allocated just before it."""
    import tracemalloc

    from synthtumor.synthesis import SynthesisConfig, synthesize

    peaks = []
    tracemalloc.start()
    for seed in range(calls):
        ct, liver, inplace = _arguments(inputs, mode)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = synthesize(ct, liver, np.random.default_rng(seed),
                            SynthesisConfig(tumor_type=kind), spacing=1.0, inplace=inplace)
        peaks.append(tracemalloc.get_traced_memory()[1] - before)
        del result, ct, liver
    tracemalloc.stop()
    return max(peaks) / 2**20


def _load(folder: Path) -> dict:
    return {name: (np.load(folder / f"{name}_ct.npy"), np.load(folder / f"{name}_liver.npy"))
            for name in ("full", "patch")}


def worker_row(folder: Path, mode: str, calls: int) -> None:
    """One row of table 1 in this process: median / fastest ms per type, peak extra MB."""
    inputs = _load(folder)
    _call(inputs, "mix", 1000, mode)  # warm-up: numba cache loaded, scratch buffers grown
    row: dict = {"ms": {}, "cpu_ms": {}, "peak_mb": {}}
    for kind in TYPES:
        times = np.array([_call(inputs, kind, seed, mode) for seed in range(calls)])
        row["ms"][kind], row["cpu_ms"][kind] = (1000.0 * np.median(times, axis=0)).tolist()
    for kind in TYPES:
        row["peak_mb"][kind] = _peak_mb(inputs, kind, mode)
    from synthtumor.synthesis.workspace import workspace

    row["scratch_mb"] = workspace().nbytes() / 2**20
    print(json.dumps(row))


def worker_serve(folder: Path) -> None:
    """Answer timing requests, one JSON line in, one out (for call-by-call alternation)."""
    inputs = _load(folder)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("backend"):
            os.environ[BACKEND_VARIABLE] = request["backend"]
        print(json.dumps(_call(inputs, request["kind"], request["seed"], request["mode"])),
              flush=True)


def _spawn(src: Path, folder: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), **(env or {})}
    return subprocess.Popen([sys.executable, __file__, "--data", str(folder), *args], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ask(proc: subprocess.Popen, request: dict) -> list[float]:
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def alternate(sides: list[tuple[subprocess.Popen, str | None]], mode: str, calls: int,
              kinds: tuple[str, ...] = TYPES) -> dict[str, list[list[float]]]:
    """Per type and side, the median wall and CPU s, the two sides timed call by call in
    turn."""
    for proc in {id(p): p for p, _ in sides}.values():
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("a benchmark worker failed to start")
    for proc, backend in sides:  # warm-up: numba cache loaded, scratch buffers grown
        _ask(proc, {"kind": "mix", "seed": 1000, "mode": mode, "backend": backend})
    ratios = {}
    for kind in kinds:
        times: list[list[list[float]]] = [[], []]
        for seed in range(calls):
            order = (0, 1) if seed % 2 == 0 else (1, 0)  # neither side always goes first
            for i in order:
                proc, backend = sides[i]
                times[i].append(_ask(proc, {"kind": kind, "seed": seed, "mode": mode,
                                            "backend": backend}))
        # per side: median wall s, median CPU s
        ratios[kind] = [np.median(np.array(t), axis=0).tolist() for t in times]
    return ratios


def startup_s(folder: Path, cache: str | None) -> dict[str, float]:
    """Fresh interpreter: import the core, then its first call (mix, 96³ patch, in place)."""
    code = (
        "import time, sys, numpy as np\n"
        f"ct = np.load({str(folder / 'patch_ct.npy')!r}); "
        f"liver = np.load({str(folder / 'patch_liver.npy')!r})\n"
        "t0 = time.perf_counter()\n"
        "from synthtumor.synthesis import SynthesisConfig, synthesize\n"
        "t1 = time.perf_counter()\n"
        "synthesize(ct, liver, np.random.default_rng(0), SynthesisConfig(tumor_type='mix'),"
        " spacing=1.0, inplace=True)\n"
        "t2 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    imp, first = map(float, out.stdout.split())
    return {"import": imp, "first": first, "total": imp + first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=15, help="calls per type (>= 15)")
    parser.add_argument("--baseline", type=Path, help="src/ of another checkout to compare")
    parser.add_argument("--ratios-only", action="store_true",
                        help="skip the absolute table and start-up; only the alternated ratios")
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--row", choices=list(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        worker_row(args.data, args.row, args.calls)
        return
    if args.serve:
        worker_serve(args.data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder)
        report(folder, args.calls, args.baseline, args.ratios_only)


def report(folder: Path, calls: int, baseline: Path | None, ratios_only: bool = False) -> None:
    from rich.console import Console

    src = ROOT / "src"
    console = Console(width=160)
    if not ratios_only:
        absolute(folder, calls, console)
    ratios(folder, calls, baseline, src, console)


def absolute(folder: Path, calls: int, console) -> None:
    """Table 1 and the start-up times."""
    from rich.table import Table

    src = ROOT / "src"
    rows = {}
    for mode in ROWS:
        proc = _spawn(src, folder, "--row", mode, "--calls", str(calls))
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"benchmark row {mode} failed")
        rows[mode] = json.loads(out.strip().splitlines()[-1])
    warm = min((startup_s(folder, None) for _ in range(3)), key=lambda r: r["total"])
    with tempfile.TemporaryDirectory() as empty:
        cold = startup_s(folder, empty)

    table = Table(title=f"synthesis, {os.environ.get(BACKEND_VARIABLE, 'numba')} backend: "
                  f"median wall ms per call (median CPU ms) over {calls} calls per type, 1 mm")
    for col in ("input", *TYPES, "peak extra per call", "scratch kept"):
        table.add_column(col, justify="left" if col == "input" else "right")
    for mode, row in rows.items():
        table.add_row(ROWS[mode], *(f"{row['ms'][k]:.1f} ({row['cpu_ms'][k]:.1f})" for k in TYPES),
                      f"{max(row['peak_mb'].values()):.0f} MB", f"{row['scratch_mb']:.0f} MB")
    console.print(table)
    shape = np.load(folder / "full_ct.npy", mmap_mode="r").shape
    console.print(
        f"full volume {'×'.join(map(str, shape))}. Peak extra per call: tracemalloc, worst type; "
        f"for the default call it includes the returned CT and label "
        f"({np.prod(shape) * 5 / 2**20:.0f} MB). Scratch kept: the workspace buffers reused "
        "from call to call (allocated by the first calls).\n"
        f"start-up, warm numba cache (fresh interpreter; best of 3): import {warm['import']:.2f} s"
        f" + first mix call on 96³ {warm['first']:.2f} s = {warm['total']:.2f} s\n"
        f"cold (empty numba cache, compiling): import {cold['import']:.2f} s + first call "
        f"{cold['first']:.2f} s = {cold['total']:.2f} s"
    )


def ratios(folder: Path, calls: int, baseline: Path | None, src: Path, console) -> None:
    """Table 2: ratios of the two sides' median times, alternated call by call."""
    from rich.table import Table

    ratio = Table(title=f"ratios measured in one run, call by call in turn ({calls} calls per "
                  "type; median time of one side / median time of the other)")
    for col in ("comparison", *TYPES):
        ratio.add_column(col, justify="left" if col == "comparison" else "right")
    def add(name: str, result: dict[str, list[list[float]]]) -> None:
        cells = [f"{a[0] / b[0]:.1f}× ({a[1] / b[1]:.1f}×) {1e3 * a[0]:.0f} / {1e3 * b[0]:.0f} ms"
                 for a, b in result.values()]
        ratio.add_row(name, *cells)
        print(name, *cells, sep=" | ", flush=True)  # each row as soon as it is measured

    for mode in ("full_inplace", "full_default", "patch_inplace"):
        proc = _spawn(src, folder, "--serve")
        add(f"NumPy reference / numba, {ROWS[mode]}",
            alternate([(proc, "numpy"), (proc, "numba")], mode, calls))
        proc.communicate("")
    if baseline is not None:
        for mode in ("full_inplace", "full_default", "patch_inplace"):
            old, new = _spawn(baseline.resolve(), folder, "--serve"), _spawn(src, folder, "--serve")
            add(f"{baseline} / this, {ROWS[mode]}", alternate([(old, None), (new, None)], mode,
                                                              calls))
            old.communicate("")
            new.communicate("")
    console.print(ratio)
    console.print("cells: wall-time ratio (CPU-time ratio), then the two sides' median wall ms")


if __name__ == "__main__":
    main()
