"""The arms of the efficacy benchmark and the ``synthtumor train`` run behind each of them.

Every arm is one ``synthtumor train`` run with the preset's shared settings; arms differ only
in their training data and mode:

=================== ===================================== ===========================
arm                 training data                          ``synthtumor train --mode``
=================== ===================================== ===========================
synthetic           healthy CTs (``--healthy``)            synthetic (tumors on the fly)
phantom             generated healthy phantoms             synthetic
synthetic+phantom   both of the above                      synthetic
real                real-tumor CTs (``--real``)            real
mixed               healthy CTs + real-tumor CTs           mixed
=================== ===================================== ===========================
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

from synthtumor.benchmark.preset import NEEDS_REAL, Preset

SYNTHETIC_ARMS = frozenset({"synthetic", "phantom", "synthetic+phantom", "mixed"})
MODE = {"synthetic": "synthetic", "phantom": "synthetic", "synthetic+phantom": "synthetic",
        "real": "real", "mixed": "mixed"}


@dataclass(frozen=True)
class Job:
    """One training + evaluation: an arm, a network and (with folds) a fold.

    ``name`` is the folder name under ``runs/`` and ``evals/``; ``fold`` None without folds
    or for an arm whose training does not depend on the fold (then evaluated on every fold).
    """

    arm: str
    model: str
    fold: int | None

    @property
    def name(self) -> str:
        fold = "" if self.fold is None else f"-fold{self.fold}"
        return f"{self.arm}-{self.model}{fold}"


def plan_jobs(preset: Preset, arms: tuple[str, ...]) -> list[Job]:
    """Training runs of the benchmark: per network, the arms; arms that use real tumors once
    per fold, the others once (their data do not depend on the fold)."""
    jobs: list[Job] = []
    for model in preset.models:
        for arm in arms:
            folds = range(preset.folds) if preset.folds and arm in NEEDS_REAL else [None]
            jobs.extend(Job(arm, model, k) for k in folds)
    return jobs


def synthesis_args(profile: Path | None, realistic: bool) -> list[str]:
    """The ``synthtumor train`` options that configure the synthetic tumors, given to every arm
    that synthesizes tumors (the one place where the benchmark forwards them)."""
    args: list[str] = []
    if realistic:
        args.append("--realistic")
    if profile is not None:
        args += ["--profile", str(Path(profile).absolute())]
    return args


def check_train_accepts(args: list[str]) -> None:
    """ValueError when ``synthtumor train`` of this installation lacks one of ``args``' options
    (before anything is trained)."""
    from synthtumor.train.cli import train

    params = inspect.signature(train).parameters
    missing = [a for a in args if a.startswith("--")
               and a[2:].replace("-", "_") not in params]
    if missing:
        raise ValueError(f"`synthtumor train` of this installation has no {', '.join(missing)} "
                         "option: update synthtumor, or run without it")


def train_command(job: Job, preset: Preset, data: Path, run: Path, *,
                  real_data: Path | None, synthesis: list[str], device: str,
                  resume: bool) -> list[str]:
    """The ``synthtumor train`` command line of ``job`` (``python -m synthtumor.train``)."""
    t = preset.train
    cmd = [
        sys.executable, "-m", "synthtumor.train", "--data", str(data), "--out", str(run),
        "--mode", MODE[job.arm], "--model", job.model, "--feature-size", str(t.feature_size),
        "--roi", *(str(v) for v in t.roi), "--spacing", str(t.spacing),
        "--batch-size", str(t.batch_size), "--steps", str(t.steps), "--lr", str(t.lr),
        "--warmup", str(t.warmup), "--synth-prob", str(t.synth_prob),
        "--save-every", str(t.save_every), "--workers", str(t.workers), "--cache", t.cache,
        "--seed", str(t.seed), "--device", device, "--log-every", str(max(1, t.steps // 20)),
    ]
    if job.arm == "mixed":
        cmd += ["--real-data", str(real_data), "--real-fraction", str(t.real_fraction)]
    if job.arm in SYNTHETIC_ARMS:
        cmd += synthesis
    cmd.append("--resume" if resume else "--overwrite")
    return cmd
