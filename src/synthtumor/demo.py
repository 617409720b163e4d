"""The end-to-end demo: label-free training and evaluation on CT phantoms, no data needed.

1. Draw healthy phantoms (training) and phantoms carrying tumors (test). The test tumors are
   held out: drawn by a separate random stream, with the ``--realistic`` shape effects (mass
   effect, capsule, necrotic core), which training never sees.
2. Write one synthesis example (what a training sample looks like) with its preview.
3. Train a small U-Net on the healthy phantoms with tumors synthesized on the fly.
4. Evaluate it on the test phantoms: Dice, NSD, detection by size, an HTML report.

Everything lands in one output folder; numbers in the report come from this run.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.errors import InputError
from synthtumor.imaging import Volume, write_nifti
from synthtumor.phantom import make_phantom
from synthtumor.synthesis import SynthesisConfig, synthesize


@dataclass(frozen=True)
class DemoPreset:
    """Sizes of one demo run: phantoms, grid (mm), patch (voxels) and optimizer steps."""

    train_cases: int
    test_cases: int
    phantom_spacing_mm: float
    train_spacing_mm: float
    roi: tuple[int, int, int]
    steps: int
    batch_size: int
    lr: float
    warmup: int
    overlap: float


#: ``full`` is calibrated to finish in about 10 minutes on 2 CPU cores (`make demo`);
#: ``quick`` in under 2 minutes (a smoke run of every stage; the network barely learns).
PRESETS: dict[str, DemoPreset] = {
    "full": DemoPreset(train_cases=4, test_cases=3, phantom_spacing_mm=2.0, train_spacing_mm=2.0,
                       roi=(64, 64, 64), steps=900, batch_size=2, lr=1e-3, warmup=20,
                       overlap=0.5),
    "quick": DemoPreset(train_cases=2, test_cases=2, phantom_spacing_mm=3.0, train_spacing_mm=3.0,
                        roi=(32, 32, 32), steps=30, batch_size=2, lr=2e-3, warmup=5,
                        overlap=0.25),
}

#: Held-out test tumors: every size class ("mix") with the shape effects, never bright (a model
#: trained on dark tumors only is not expected to find hyper-attenuating ones), so with the
#: reference intensity rather than the appearance model's attenuation classes.
TEST_TUMORS = SynthesisConfig.realistic(tumor_type="mix", bright_probability=0.0,
                                        appearance=None)


@dataclass(frozen=True)
class DemoResult:
    out: Path
    datalist: Path
    example: Path
    run: Path
    evaluation: Path
    report: Path
    summary: dict[str, Any]
    seconds: dict[str, float]


def write_phantom_cases(
    folder: Path, preset: DemoPreset, seed: int, step: Callable[[str], None] = lambda _m: None
) -> Path:
    """Write the demo's phantoms as NIfTI and a datalist; returns the datalist path.

    Training cases are healthy (labels 0/1); test cases carry held-out tumors (labels 0/1/2).
    Seeds: phantom anatomy from ``[seed, kind, i]``; test tumors from their own stream.
    """
    spacing = (preset.phantom_spacing_mm,) * 3
    lists: dict[str, list[dict[str, Any]]] = {"training": [], "validation": []}
    kinds = (("training", "train", preset.train_cases, 0), ("validation", "test",
                                                            preset.test_cases, 1))
    for key, name, count, kind in kinds:
        for i in range(count):
            case = f"phantom_{name}_{i:02d}"
            step(f"drawing phantom {case}")
            ph = make_phantom(np.random.default_rng([seed, kind, i]), spacing=spacing)
            ct, label = ph.ct, ph.liver
            tumors = 0
            if kind == 1:
                res = synthesize(ph.ct, ph.liver, np.random.default_rng([seed, 2, i]),
                                 TEST_TUMORS, affine=ph.affine, vessels=ph.vessels.astype(bool))
                ct, label, tumors = res.ct, res.label, len(res.tumors)
            image = folder / "images" / f"{case}.nii.gz"
            lab = folder / "labels" / f"{case}.nii.gz"
            image.parent.mkdir(parents=True, exist_ok=True)
            lab.parent.mkdir(parents=True, exist_ok=True)
            write_nifti(image, np.rint(ct).astype(np.int16), ph.affine, kind="ct")
            write_nifti(lab, label, ph.affine, kind="label")
            item = {"case": case, "image": str(image.relative_to(folder)),
                    "label": str(lab.relative_to(folder)), "tumor": kind == 1}
            if kind == 1:
                item["tumors"] = tumors
            lists[key].append(item)
    datalist = folder / "datalist.json"
    datalist.write_text(json.dumps(lists, indent=2) + "\n")
    return datalist


#: What a demo run writes into its output folder (anything else: not ours to delete).
DEMO_ENTRIES = frozenset({"data", "synthesis-example", "run", "evaluation", "demo.json"})
#: What ``demo --synthesis-only`` writes.
SYNTHESIS_ENTRIES = frozenset({"ct.nii.gz", "label.nii.gz", "tumors.json", "preview.png"})


def check_replaceable(out: Path, entries: frozenset[str]) -> None:
    """InputError when the folder ``out`` holds anything but ``entries`` (what the demo
    writes): the demo replaces its output by default and must never delete other files."""
    if Path(out).is_dir() and not {p.name for p in Path(out).iterdir()} <= entries:
        raise InputError(out, "is not empty and holds files the demo did not write; "
                         "choose another --out")


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    seed: int = 0,
    steps: int | None = None,
    device: str = "auto",
    workers: int = 1,
    threads: int = 2,
    overwrite: bool = True,
    example: SynthesisConfig | None = None,
    step: Callable[[str], None] = lambda _m: None,
    progress: bool | None = None,
) -> DemoResult:
    """Run the whole label-free pipeline on phantoms into ``out``; see the module docstring.

    ``steps`` overrides the preset's optimizer steps; ``example`` configures the synthesis
    example (default: a "mix" sample, the reference method). An existing non-empty ``out`` is
    replaced only with ``overwrite``, and only if it holds nothing but a demo's own outputs.
    Training and evaluation run on ``threads`` torch threads whatever the machine: the same
    seed, ``workers`` and ``threads`` give the same network on the same kind of CPU.
    """
    from synthtumor.evaluate.run import EvalConfig, evaluate
    from synthtumor.train.determinism import fixed_threads
    from synthtumor.train.loop import TrainConfig, train

    preset = _preset(quick, steps)
    out = _fresh_output(Path(out), overwrite)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    datalist = write_phantom_cases(out / "data", preset, seed, step)
    seconds["phantoms"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("synthesis example")
    example_dir = _synthesis_example(out, datalist, seed, example)
    seconds["example"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("training")
    run = out / "run"
    with fixed_threads(threads):  # the same network whatever the machine's core count
        result = train(TrainConfig(
            data=datalist, out=run, mode="synthetic", model="unet", roi=preset.roi,
            spacing=preset.train_spacing_mm, batch_size=preset.batch_size, steps=preset.steps,
            lr=preset.lr, warmup=preset.warmup, save_every=max(1, preset.steps // 4),
            workers=workers, cache="memory", seed=seed, device=device, overwrite=True,
            log_every=max(1, preset.steps // 10), progress=progress,
        ))
        seconds["training"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        step("evaluation")
        evaluation = out / "evaluation"
        ev = evaluate(EvalConfig(
            checkpoint=result.last, data=datalist, out=evaluation, key="validation",
            overlap=preset.overlap, device=device, overwrite=True,
        ), progress=bool(progress))
    seconds["evaluation"] = time.perf_counter() - t0

    summary = {
        "preset": "quick" if quick else "full",
        "seed": seed,
        "steps": preset.steps,
        "workers": workers,
        "threads": threads,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "evaluation": ev.summary,
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return DemoResult(out=out, datalist=datalist, example=example_dir, run=run,
                      evaluation=evaluation, report=ev.report, summary=ev.summary,
                      seconds=seconds)


def _preset(quick: bool, steps: int | None) -> DemoPreset:
    """The quick or full preset, with ``steps`` optimizer steps when given (at least 1)."""
    preset = PRESETS["quick" if quick else "full"]
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be at least 1, got {steps}")
        preset = replace(preset, steps=steps)
    return preset


def _fresh_output(out: Path, overwrite: bool) -> Path:
    """``out`` as an empty folder; an old demo output there is replaced only with ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "exists and is not empty; pass --overwrite to replace it")
        check_replaceable(out, DEMO_ENTRIES)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _synthesis_example(out: Path, datalist: Path, seed: int,
                       example: SynthesisConfig | None) -> Path:
    """Synthesize tumors into the first training phantom: ``out/synthesis-example``."""
    from synthtumor.imaging import read_ct, read_mask
    from synthtumor.workflow import run_synthesis

    first = json.loads(datalist.read_text())["training"][0]
    ct = read_ct(out / "data" / first["image"])
    liver = read_mask(out / "data" / first["label"], ct)
    example_dir = out / "synthesis-example"
    run_synthesis(ct, Volume(liver.array, ct.affine, liver.path), example_dir, seed=seed,
                  config=example or SynthesisConfig(tumor_type="mix"),
                  source={"ct": first["image"]})
    return example_dir
