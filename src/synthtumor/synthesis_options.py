"""The one way from user options to a ``SynthesisConfig``, shared by every command.

``--type``, ``--tumor-probs``, ``--count``, ``--realistic`` and ``--profile`` mean the same in
``synthesize``, ``demo``, ``train``, ``realism``, ``export nnunet`` and ``turing build``: they
are declared here once (typer ``Annotated`` types) and turned into a config by
:func:`build_config`, which validates them together. Bad values raise :class:`InputError`,
one line naming the option or the profile file.

This is an edge module (it imports typer); the synthesis core stays framework-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from synthtumor.errors import InputError
from synthtumor.synthesis import TUMOR_TYPES, SynthesisConfig

TumorType = Enum("TumorType", {name: name for name in TUMOR_TYPES}, type=str)  # type: ignore[misc]

TypeOpt = Annotated[
    TumorType | None,
    typer.Option("--type", "-t", help="Tumor type; default: drawn at random (0.2 each, or the "
                 "profile's / --tumor-probs' probabilities)."),
]
TumorProbsOpt = Annotated[
    str | None,
    typer.Option("--tumor-probs", help="Probability of each tumor type, e.g. "
                 "'tiny=0.2,small=0.2,medium=0.2,large=0.2,mix=0.2' (types left out: 0; "
                 "normalised to sum 1). Not with --type."),
]
CountOpt = Annotated[
    int | None,
    typer.Option("--count", "-n", min=1, help="Tumors per size class (default: the profile's)."),
]
CountLongOpt = Annotated[  # for commands whose -n means something else
    int | None,
    typer.Option("--count", min=1, help="Tumors per size class (default: the profile's)."),
]
RealisticOpt = Annotated[
    bool,
    typer.Option("--realistic", help="Turn on mass effect, capsule rim, necrotic core, bright "
                 "tumors and vessel avoidance (off = the reference method)."),
]
ProfileOpt = Annotated[
    Path | None,
    typer.Option("--profile", help="Synthesis profile JSON (size classes, type probabilities, "
                 "drop), e.g. from `synthtumor realism --fit`. Default: the reference table."),
]


def parse_tumor_probs(text: str) -> dict[str, float]:
    """``"tiny=0.2,large=0.8"`` -> ``{"tiny": 0.2, "large": 0.8}``, strictly.

    Each entry is ``TYPE=P`` with TYPE one of the tumor types (once) and P a finite number
    >= 0 written in ASCII; at least one P > 0. InputError naming ``--tumor-probs`` otherwise.
    """
    def bad(problem: str) -> InputError:
        return InputError(None, f"--tumor-probs {text!r}: {problem}; write it as "
                          "'tiny=0.2,small=0.2,medium=0.2,large=0.2,mix=0.2'")

    if not text.isascii():
        raise bad("only ASCII characters are allowed")
    probs: dict[str, float] = {}
    for entry in text.split(","):
        name, sep, value = entry.partition("=")
        if not sep or name != name.strip() or value != value.strip():
            raise bad(f"entry {entry!r} is not TYPE=P (no spaces)")
        if name not in TUMOR_TYPES:
            raise bad(f"unknown tumor type {name!r}; choose from {', '.join(TUMOR_TYPES)}")
        if name in probs:
            raise bad(f"{name!r} is given twice")
        try:
            p = float(value)
        except ValueError:
            raise bad(f"{value!r} is not a number") from None
        if not math.isfinite(p) or p < 0 or value.lower().startswith(("+", "nan", "inf")):
            raise bad(f"{name}={value} must be a finite number >= 0")
        probs[name] = p
    if not any(p > 0 for p in probs.values()):
        raise bad("at least one probability must be above 0")
    return probs


def build_config(
    *,
    tumor_type: str | Enum | None = None,
    tumor_probs: str | Mapping[str, float] | None = None,
    count: int | None = None,
    realistic: bool = False,
    profile: str | Path | None = None,
    **overrides: Any,
) -> SynthesisConfig:
    """The synthesis config these options ask for, validated once.

    Start: the reference method, or ``SynthesisConfig.realistic()`` with ``realistic``. Then the
    profile file (size classes, type probabilities, drop) if given; then ``tumor_probs`` (a
    mapping or the ``--tumor-probs`` text) or a fixed ``tumor_type``; then ``count`` and
    ``overrides`` (other ``SynthesisConfig`` fields, e.g. ``bright_probability=0.0``).

    Raises:
        InputError: one line naming the option (``--type`` with ``--tumor-probs``, a bad
            ``--tumor-probs``, ``--count`` below 1, ...) or the profile file.
    """
    kind = tumor_type.value if isinstance(tumor_type, Enum) else tumor_type
    if kind is not None and kind not in TUMOR_TYPES:
        raise InputError(None, f"--type must be one of {', '.join(TUMOR_TYPES)}, got {kind!r}")
    if kind is not None and tumor_probs is not None:
        raise InputError(None, "give --type or --tumor-probs, not both")
    if count is not None and count < 1:
        raise InputError(None, f"--count must be at least 1, got {count}")
    probs = parse_tumor_probs(tumor_probs) if isinstance(tumor_probs, str) else tumor_probs
    config = SynthesisConfig.realistic() if realistic else SynthesisConfig()
    if profile is not None:
        from synthtumor.realism.fit import apply_profile, read_profile

        config = apply_profile(config, read_profile(profile))
    try:
        if probs is not None:
            config = replace(config, tumor_type=None, tumor_probs=dict(probs))
        return replace(config, tumor_type=kind or config.tumor_type, count=count, **overrides)
    except (TypeError, ValueError) as err:
        raise InputError(None, f"synthesis options: {err}") from None


def profile_source(profile: str | Path | None) -> dict[str, Any] | None:
    """Where a profile came from and what it held: ``{"path", "content"}`` (its parsed JSON),
    stored with a run so that it stays reproducible when the file moves or changes."""
    if profile is None:
        return None
    from synthtumor.files import read_json_file

    path = Path(profile)
    return {"path": str(path.absolute()), "content": read_json_file(path, "profile")}


def options_given(tumor_type: Any, tumor_probs: Any, count: Any, realistic: bool,
                  profile: Any) -> bool:
    """Whether any synthesis option was given (a resumed run keeps its stored config else)."""
    return realistic or any(v is not None for v in (tumor_type, tumor_probs, count, profile))
