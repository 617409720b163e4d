"""``synthtumor benchmark efficacy``: label-free vs real-tumor training, measured on real tumors.

Layout of the output folder (everything written atomically, so a kill loses at most the
steps since the last checkpoint):

- ``benchmark.json``: what defines the benchmark (preset, inputs, label ids, synthesis
  options); a rerun with other settings is refused, the same command resumes;
- ``data/``: the inputs as NIfTI 0/1/2 (``healthy``, ``real[-foldK]``, ``test[-foldK]``),
  the phantom set and the merged synthetic+phantom datalist;
- ``runs/<arm>-<model>[-foldK]/``: one ``synthtumor train`` run folder per job, with
  ``train.log``; a killed run continues from its ``last.pt``;
- ``evals/<arm>-<model>[-foldK]/``: one ``synthtumor evaluate`` folder per job and test set;
- ``efficacy.md``, ``efficacy.csv``, ``efficacy.json``, ``efficacy.png``: the table and figure.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthtumor.benchmark.arms import (
    Job,
    check_train_accepts,
    plan_jobs,
    synthesis_args,
    train_command,
)
from synthtumor.benchmark.cases import (
    LabelIds,
    SourceCase,
    check_headers,
    merge_datalists,
    prepare_set,
    read_cases,
)
from synthtumor.benchmark.preset import NEEDS_HEALTHY, NEEDS_PHANTOMS, NEEDS_REAL, Preset
from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json, write_json_atomic

IDENTITY_FILE = "benchmark.json"


@dataclass
class EfficacyConfig:
    """Inputs of one benchmark. Datalists: ``healthy`` (tumor-free CTs, ``training`` list);
    ``real`` (real tumors, ``training`` list; with folds a ``synthtumor data datalist`` folder
    whose ``fold_K.json`` give training and held-out cases); ``test`` (held-out cases,
    ``validation`` list else ``training``; with folds optional)."""

    preset: Preset
    out: Path
    arms: tuple[str, ...]
    healthy: Path | None = None
    real: Path | None = None
    test: Path | None = None
    healthy_ids: LabelIds = field(default_factory=lambda: LabelIds((1,), ()))
    real_ids: LabelIds = field(default_factory=LabelIds)
    test_ids: LabelIds = field(default_factory=LabelIds)
    profile: Path | None = None
    realistic: bool = False
    device: str = "auto"


@dataclass
class Inputs:
    """The cases of every set, read from the datalists (nothing converted yet)."""

    healthy: list[SourceCase] = field(default_factory=list)
    real: dict[int | None, list[SourceCase]] = field(default_factory=dict)
    test: dict[int | None, list[SourceCase]] = field(default_factory=dict)


@dataclass
class Plan:
    """What the benchmark will do; ``estimates`` in hours per device ("cpu", "gpu")."""

    jobs: list[Job]
    evaluations: list[tuple[Job, int | None]]
    inputs: Inputs
    estimates: dict[str, float]


def _fold_file(real: Path, k: int) -> Path:
    path = Path(real) / f"fold_{k}.json"
    if not path.is_file():
        raise InputError(path, "does not exist: --real must be a `synthtumor data datalist` "
                         "output folder holding fold_0.json .. fold_{K-1}.json for a preset "
                         "with folds")
    return path


def read_inputs(config: EfficacyConfig) -> Inputs:
    """Read and check the datalists the chosen arms need.

    Raises:
        InputError: a needed datalist missing, unreadable, or a test case also trained on.
    """
    p, arms, inputs = config.preset, set(config.arms), Inputs()
    if arms & NEEDS_HEALTHY:
        if config.healthy is None:
            raise InputError(None, f"arm(s) {', '.join(sorted(arms & NEEDS_HEALTHY))} need "
                             "--healthy DATALIST (tumor-free CTs with liver labels)")
        inputs.healthy, _ = read_cases(config.healthy, ("training",))
    folds: list[int | None] = list(range(p.folds)) if p.folds else [None]
    for k in folds:
        if k is not None and config.real is None:
            raise InputError(None, f"preset {p.name!r} has {p.folds} folds: pass --real DIR (the "
                             "`synthtumor data datalist` folder of the real-tumor set)")
        source = (_fold_file(config.real, k) if k is not None and config.real is not None
                  else config.real)
        if arms & NEEDS_REAL:
            if source is None:
                raise InputError(None, f"arm(s) {', '.join(sorted(arms & NEEDS_REAL))} need --real "
                                 "DATALIST (real-tumor CTs with liver and tumor labels)")
            inputs.real[k], _ = read_cases(source, ("training",))
        if config.test is not None:
            inputs.test[k], _ = read_cases(config.test, ("validation", "training"))
        elif k is not None and source is not None:
            inputs.test[k], _ = read_cases(source, ("validation",))
        else:
            raise InputError(None, "pass --test DATALIST: the held-out real-tumor cases "
                             "every arm is evaluated on")
    _check_held_out(inputs)
    return inputs


def _check_held_out(inputs: Inputs) -> None:
    for k, test in inputs.test.items():
        trained = {c.image.resolve() for c in inputs.healthy + inputs.real.get(k, [])}
        for c in test:
            if c.image.resolve() in trained:
                raise InputError(c.image, "is a test case and a training case: the held-out "
                                 "set must never be trained on")


def make_plan(config: EfficacyConfig, inputs: Inputs) -> Plan:
    jobs = plan_jobs(config.preset, config.arms)
    evaluations: list[tuple[Job, int | None]] = []
    for job in jobs:
        folds = [job.fold] if job.fold is not None else list(inputs.test)
        evaluations.extend((job, k) for k in folds)
    steps = config.preset.train.steps
    estimates = {}
    for device, speed in config.preset.speed.items():
        if all(m in speed for m in config.preset.models):
            estimates[device] = sum(steps / speed[j.model] for j in jobs) / 3600.0
    return Plan(jobs, evaluations, inputs, estimates)


def eval_name(job: Job, fold: int | None) -> str:
    return f"{job.arm}-{job.model}" + ("" if fold is None else f"-fold{fold}")


def plan_text(config: EfficacyConfig, plan: Plan) -> str:
    """The plan as printed by ``--dry-run``."""
    p = config.preset
    t = p.train
    lines = [
        f"preset {p.name}: {p.description}",
        f"arms: {', '.join(config.arms)}; networks: {', '.join(p.models)}; folds: "
        f"{p.folds or 'none (one test set)'}",
        f"every run: {t.steps} steps, batch {t.batch_size}, patch {'x'.join(map(str, t.roi))} "
        f"voxels, {t.spacing:g} mm grid, lr {t.lr:g}, seed {t.seed}",
        f"healthy CTs: {len(plan.inputs.healthy)}"
        + (f" (published protocol: {p.expected_healthy_cases})"
           if p.expected_healthy_cases else ""),
    ]
    for k, real in plan.inputs.real.items():
        lines.append(f"real-tumor training cases{'' if k is None else f' fold {k}'}: {len(real)}")
    for k, test in plan.inputs.test.items():
        lines.append(f"held-out test cases{'' if k is None else f' fold {k}'}: {len(test)}")
    if set(config.arms) & NEEDS_PHANTOMS:
        lines.append(f"phantoms: {p.phantoms.n} (seed {p.phantoms.seed})")
    lines.append(f"training runs ({len(plan.jobs)}): "
                 + ", ".join(j.name for j in plan.jobs))
    lines.append(f"evaluations: {len(plan.evaluations)}")
    for device, hours in plan.estimates.items():
        lines.append(f"expected training time on one {device.upper()}: {hours:.1f} h "
                     f"({hours * 60:.0f} min), at the preset's steps/s")
    return "\n".join(lines)


def identity(config: EfficacyConfig) -> dict[str, Any]:
    """What must match for a rerun to resume this benchmark (arms may differ)."""
    def path(p: Path | None) -> str | None:
        return None if p is None else str(Path(p).absolute())

    # through JSON: tuples become lists, exactly as the stored copy reads back
    return json.loads(json.dumps({
            "format": "synthtumor-efficacy/1", "preset": config.preset.to_dict(),
            "healthy": path(config.healthy), "real": path(config.real),
            "test": path(config.test), "healthy_ids": config.healthy_ids.to_dict(),
            "real_ids": config.real_ids.to_dict(), "test_ids": config.test_ids.to_dict(),
            "profile": path(config.profile), "realistic": config.realistic}))


def claim_folder(config: EfficacyConfig) -> None:
    """Create the output folder or accept one holding this benchmark (resume); refuse others."""
    out = Path(config.out)
    mine = identity(config)
    if out.is_dir() and any(out.iterdir()):
        old = read_json(out / IDENTITY_FILE)
        if old is None:
            raise InputError(out, "is not empty and holds no benchmark; choose another --out")
        if old != mine:
            differ = [k for k in mine if old.get(k) != mine[k]]
            raise InputError(out, f"holds a benchmark with other settings (differs in: "
                             f"{', '.join(differ)}); rerun it with its own settings or choose "
                             "another --out")
        return
    make_folder(out)
    write_json_atomic(out / IDENTITY_FILE, mine)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the training process is killed when the benchmark dies (even by SIGKILL), so a
    killed benchmark never leaves a run writing into its folder."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def checkpoint_step(path: Path) -> int | None:
    """Step of a ``synthtumor train`` checkpoint, or None when absent."""
    if not path.is_file():
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def train_job(job: Job, config: EfficacyConfig, data: Path, real_data: Path | None,
              say: Callable[[str], None]) -> Path:
    """Train ``job`` to the preset's steps (resuming a killed run); returns ``last.pt``."""
    run = Path(config.out) / "runs" / job.name
    last = run / "last.pt"
    step = checkpoint_step(last)
    steps = config.preset.train.steps
    if step is not None and step >= steps:
        say(f"{job.name}: trained ({step} steps), not re-run")
        return last
    cmd = train_command(job, config.preset, data, run, real_data=real_data,
                        synthesis=synthesis_args(config.profile, config.realistic),
                        device=config.device, resume=step is not None)
    say(f"{job.name}: training" + (f", resuming at step {step}" if step else "")
        + f"; log {run / 'train.log'}")
    make_folder(run)
    t0 = time.perf_counter()
    with (run / "train.log").open("a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              preexec_fn=_die_with_parent, check=False)
    if proc.returncode != 0:
        tail = (run / "train.log").read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"{job.name}: `synthtumor train` failed (exit {proc.returncode}): "
                           + " | ".join(tail))
    _add_time(Path(config.out), job.name, "train_s", time.perf_counter() - t0)
    return last


def _add_time(out: Path, name: str, what: str, seconds: float) -> None:
    times = read_json(out / "times.json") or {}
    entry = times.setdefault(name, {})
    entry[what] = round(entry.get(what, 0.0) + seconds, 1)
    write_json_atomic(out / "times.json", times)


def evaluate_job(job: Job, fold: int | None, checkpoint: Path, test: Path,
                 config: EfficacyConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """``synthtumor evaluate`` of ``checkpoint`` on the test set; an evaluation of the same
    checkpoint step already on disk is reused."""
    from synthtumor.evaluate.run import EvalConfig, evaluate

    name = eval_name(job, fold)
    folder = Path(config.out) / "evals" / name
    done = read_json(folder / "summary.json")
    if done is not None and done.get("training_step") == config.preset.train.steps:
        say(f"{name}: evaluated, not re-run")
        return done
    say(f"{name}: evaluating on {test}")
    make_folder(folder.parent)
    t0 = time.perf_counter()
    result = evaluate(EvalConfig(
        checkpoint=checkpoint, data=test, out=folder, key="validation",
        overlap=config.preset.overlap, postprocess=config.preset.postprocess,
        device=config.device, overwrite=True,
    ), progress=False)
    _add_time(Path(config.out), name, "eval_s", time.perf_counter() - t0)
    return result.summary


def _remove_debris(out: Path) -> None:
    """Staging folders of an evaluation killed mid-way (only names ``staged_folder`` uses
    for our own evaluation folders)."""
    import shutil

    evals = out / "evals"
    if evals.is_dir():
        for tmp in evals.glob(".*.tmp"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)


def prepare_data(config: EfficacyConfig, inputs: Inputs, say: Callable[[str], None]
                 ) -> dict[str, Any]:
    """Convert the inputs and draw the phantoms the arms need; returns the datalist paths:
    ``healthy``, ``phantoms``, ``synthetic+phantom``, ``real`` / ``test`` (dicts by fold)."""
    from synthtumor.data.phantoms import write_phantom_set

    data = Path(config.out) / "data"
    paths: dict[str, Any] = {"real": {}, "test": {}}
    arms = set(config.arms)
    if inputs.healthy:
        say(f"preparing {len(inputs.healthy)} healthy case(s)")
        paths["healthy"] = prepare_set(inputs.healthy, data / "healthy", config.healthy_ids,
                                       healthy=True, progress=say)
    if arms & NEEDS_PHANTOMS:
        ph = config.preset.phantoms
        say(f"drawing {ph.n} phantom(s) with {ph.workers} worker(s)")
        res = write_phantom_set(data / "phantoms", ph.n, seed=ph.seed, workers=ph.workers,
                                ranges=ph.ranges)
        paths["phantoms"] = res.datalist
        if "synthetic+phantom" in arms:
            paths["synthetic+phantom"] = merge_datalists(
                [paths["healthy"], res.datalist], data / "synthetic+phantom.json")
    for k, cases in inputs.real.items():
        paths["real"][k] = prepare_set(cases, data / ("real" if k is None else f"real-fold{k}"),
                                       config.real_ids, healthy=False, progress=say)
    for k, cases in inputs.test.items():
        paths["test"][k] = prepare_set(cases, data / ("test" if k is None else f"test-fold{k}"),
                                       config.test_ids, healthy=False, key="validation",
                                       progress=say)
    return paths


def _training_data(job: Job, paths: dict[str, Any]) -> tuple[Path, Path | None]:
    if job.arm == "synthetic":
        return paths["healthy"], None
    if job.arm == "phantom":
        return paths["phantoms"], None
    if job.arm == "synthetic+phantom":
        return paths["synthetic+phantom"], None
    if job.arm == "real":
        return paths["real"][job.fold], None
    return paths["healthy"], paths["real"][job.fold]  # mixed


def run_efficacy(config: EfficacyConfig, say: Callable[[str], None] = lambda _m: None
                 ) -> dict[str, Any]:
    """Run (or resume) the whole benchmark; returns the table as written to efficacy.json.

    Raises:
        InputError / ValueError: bad inputs or options, before anything is trained.
        RuntimeError: a training run failed (its log is named).
    """
    from synthtumor.benchmark.table import write_table

    check_train_accepts(synthesis_args(config.profile, config.realistic))
    inputs = read_inputs(config)
    plan = make_plan(config, inputs)
    claim_folder(config)
    out = Path(config.out)
    _remove_debris(out)
    paths = prepare_data(config, inputs, say)
    summaries: list[tuple[Job, int | None, dict[str, Any]]] = []
    for job in plan.jobs:
        data, real_data = _training_data(job, paths)
        last = train_job(job, config, data, real_data, say)
        for j, k in plan.evaluations:
            if j == job:
                summaries.append((job, k, evaluate_job(job, k, last, paths["test"][k],
                                                       config, say)))
    return write_table(out, config, summaries, read_json(out / "times.json") or {})


def dry_run(config: EfficacyConfig) -> str:
    """Validate the preset against the datalists (headers only, nothing written); the plan."""
    check_train_accepts(synthesis_args(config.profile, config.realistic))
    inputs = read_inputs(config)
    for cases in [inputs.healthy, *inputs.real.values(), *inputs.test.values()]:
        check_headers(cases)
    return plan_text(config, make_plan(config, inputs))
