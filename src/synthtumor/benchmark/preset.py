"""Benchmark presets: version-controlled TOML files (``presets/*.toml``) or any TOML path.

A preset fixes what every arm shares (network, budget in steps, patch, grid, seed,
augmentation, evaluation) and the phantom set of the phantom arms; see ``presets/cpu.toml``
and ``presets/paper.toml`` for the documented fields.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError
from synthtumor.phantom_scan import ScanRanges
from synthtumor.train import defaults

ARMS = ("synthetic", "phantom", "synthetic+phantom", "real", "mixed")
MODELS = ("unet", "swin_unetr")
#: arms whose training needs the healthy datalist, the phantoms, real tumors
NEEDS_HEALTHY = frozenset({"synthetic", "synthetic+phantom", "mixed"})
NEEDS_PHANTOMS = frozenset({"phantom", "synthetic+phantom"})
NEEDS_REAL = frozenset({"real", "mixed"})


@dataclass(frozen=True)
class TrainSettings:
    """Shared by every arm (``synthtumor train`` options; roi in voxels, spacing in mm)."""

    steps: int
    roi: tuple[int, int, int]
    spacing: float
    batch_size: int = defaults.BATCH_SIZE
    lr: float = defaults.LR
    warmup: int = defaults.WARMUP
    synth_prob: float = defaults.SYNTH_PROB
    real_fraction: float = defaults.REAL_FRACTION
    workers: int = defaults.WORKERS
    cache: str = defaults.CACHE
    seed: int = defaults.SEED
    save_every: int = defaults.SAVE_EVERY
    feature_size: int = defaults.FEATURE_SIZE


@dataclass(frozen=True)
class PhantomSettings:
    """The phantom arm's training set (``synthtumor data phantoms``)."""

    n: int = 8
    seed: int = 0
    workers: int = 1
    ranges: ScanRanges = field(default_factory=ScanRanges)


@dataclass(frozen=True)
class Preset:
    """One benchmark protocol. ``speed`` holds steps/s per device ("cpu", "gpu") and model,
    used only for the time estimates of the plan."""

    name: str
    description: str
    arms: tuple[str, ...]
    models: tuple[str, ...]
    folds: int
    train: TrainSettings
    phantoms: PhantomSettings
    overlap: float = 0.5
    postprocess: bool = True
    speed: dict[str, dict[str, float]] = field(default_factory=dict)
    expected_healthy_cases: int | None = None
    expected_cpu_minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phantoms"]["ranges"] = self.phantoms.ranges.to_dict()
        return d


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("synthtumor.benchmark") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> Preset:
    """A shipped preset by name (``cpu``, ``paper``) or a TOML file by path.

    Raises:
        InputError: unknown name, unreadable TOML, a missing or invalid field (named).
    """
    path = Path(name_or_path)
    if name_or_path in preset_names():
        text = (resources.files("synthtumor.benchmark") / "presets" /
                f"{name_or_path}.toml").read_text()
        where, name = f"preset {name_or_path!r}", name_or_path
    elif path.suffix == ".toml" and path.is_file():
        text, where, name = path.read_text(), str(path), path.stem
    else:
        raise InputError(name_or_path, f"is neither a preset ({', '.join(preset_names())}) "
                         "nor a .toml file")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(where, f"is not valid TOML ({err})") from None
    try:
        return _parse(raw, name)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, InputError):
            raise InputError(where, err.problem) from None
        raise InputError(where, f"invalid preset: {err}") from None


def _parse(raw: dict[str, Any], name: str) -> Preset:
    t = dict(raw["train"])
    t["roi"] = tuple(int(v) for v in t["roi"])
    train = TrainSettings(**t)
    ph = dict(raw.get("phantoms", {}))
    ranges = ScanRanges(
        tuple(ph.pop("phases", ScanRanges().phases)),
        tuple(ph.pop("noise_std_hu", ScanRanges().noise_std_hu)),
        tuple(ph.pop("psf_mm", ScanRanges().psf_mm)),
        tuple(ph.pop("inplane_mm", ScanRanges().inplane_mm)),
        tuple(ph.pop("slice_mm", ScanRanges().slice_mm)),
    )
    ev = raw.get("evaluate", {})
    preset = Preset(
        name=name, description=str(raw.get("description", "")),
        arms=tuple(raw["arms"]), models=tuple(raw.get("models", ["unet"])),
        folds=int(raw.get("folds", 0)), train=train,
        phantoms=PhantomSettings(ranges=ranges, **ph),
        overlap=float(ev.get("overlap", 0.5)), postprocess=bool(ev.get("postprocess", True)),
        speed={k: {m: float(s) for m, s in v.items()} for k, v in raw.get("speed", {}).items()},
        expected_healthy_cases=raw.get("expected_healthy_cases"),
        expected_cpu_minutes=raw.get("expected_cpu_minutes"),
    )
    check_preset(preset)
    return preset


def check_preset(p: Preset) -> None:
    """ValueError naming the field when a value is out of range."""
    checks = [
        (bool(p.arms) and set(p.arms) <= set(ARMS), f"arms must be among {', '.join(ARMS)}"),
        (bool(p.models) and set(p.models) <= set(MODELS),
         f"models must be among {', '.join(MODELS)}"),
        (p.folds == 0 or p.folds >= 2, "folds must be 0 or at least 2"),
        (p.train.steps >= 1, "train.steps must be at least 1"),
        (len(p.train.roi) == 3 and min(p.train.roi) >= 16, "train.roi takes three sizes >= 16"),
        (p.train.spacing > 0, "train.spacing must be positive (mm)"),
        (p.train.batch_size >= 1, "train.batch_size must be at least 1"),
        (p.phantoms.n >= 1, "phantoms.n must be at least 1"),
        (0 <= p.overlap < 1, "evaluate.overlap must be in [0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(None, message)


def select_arms(preset: Preset, arms: list[str] | None) -> tuple[str, ...]:
    """The arms to run: ``arms`` (validated, in the canonical order) or the preset's."""
    if not arms:
        return preset.arms
    names = [a.strip() for item in arms for a in item.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARMS]
    if unknown:
        raise InputError(None, f"--arms: unknown arm(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(ARMS)}")
    return tuple(a for a in ARMS if a in names)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def preset_toml(preset: Preset, train: dict[str, Any] | None = None,
                phantoms: dict[str, Any] | None = None, **top: Any) -> str:
    """``preset`` as TOML text, with fields replaced (``train``/``phantoms`` entries, top-level
    ``arms``, ``models``, ``folds``, ``description``): how scaled variants of a shipped preset
    are made (benchmarks/gpu_check.py, tests). ``load_preset`` reads it back."""
    d = preset.to_dict()
    t = {**d["train"], **(train or {})}
    ph = {k: v for k, v in d["phantoms"].items() if k != "ranges"}
    ph.update(d["phantoms"]["ranges"])
    ph.update(phantoms or {})
    head = {"description": d["description"], "arms": d["arms"], "models": d["models"],
            "folds": d["folds"], **top}
    lines = [f"{k} = {_toml_value(v)}" for k, v in head.items()]
    lines += ["", "[train]", *(f"{k} = {_toml_value(v)}" for k, v in t.items())]
    lines += ["", "[evaluate]", f"overlap = {_toml_value(d['overlap'])}",
              f"postprocess = {_toml_value(d['postprocess'])}"]
    lines += ["", "[phantoms]", *(f"{k} = {_toml_value(v)}" for k, v in ph.items())]
    if d["speed"]:
        lines += ["", "[speed]", *(f"{k} = {_toml_value(v)}" for k, v in d["speed"].items())]
    return "\n".join(lines) + "\n"
