"""SynthesisConfig: what ``synthesize`` makes (tumor type, intensity ranges, placement rule,
effects, appearance model), and its exact JSON form (``to_dict`` / ``from_dict``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from .appearance import Appearance
from .effects import EffectParams
from .generic import GENERIC_APPEARANCE
from .profiles import (
    DEFAULT_TYPE_PROBS,
    PROFILES,
    SizeClass,
    appearance_from_dict,
    appearance_to_dict,
    normalise_type_probs,
)

__all__ = ["SynthesisConfig"]


@dataclass(frozen=True)
class SynthesisConfig:
    """What to synthesize. Defaults reproduce the reference training setup.

    tumor_type: one of tiny/small/medium/large/mix, or None to draw from ``tumor_probs``.
    count: override the number of tumors of every size class of the type.
    drop_hu: range of the intensity drop d (HU); edge_sigma_mm: range of the soft-edge blur.
    band / erosion_mm: the reference placement rule (cranio-caudal band, in-plane erosion).
    avoid_vessels: reject locations whose tumor would touch a vessel (auto-detected if no vessel
        mask is given), at most ``max_retries`` times per tumor.
    mass_effect, capsule, necrosis, bright_probability: options beyond the reference.
    profiles: type -> size classes (e.g. a profile fitted to real tumors); None: the built-in
        table ``PROFILES`` (the reference).
    appearance: the per-tumor appearance model (heterogeneity, margin, attenuation class, phase
        awareness, satellites; ``appearance.Appearance``); None: the reference intensity
        (drop_hu, edge_sigma_mm and the reference texture), which it replaces when given.
    """

    tumor_type: str | None = None
    tumor_probs: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_PROBS))
    count: int | None = None
    drop_hu: tuple[float, float] = (65.0, 145.0)
    edge_sigma_mm: tuple[float, float] = (1.0, 2.0)
    band: tuple[float, float] = (0.3, 0.7)
    erosion_mm: float = 2.0
    avoid_vessels: bool = False
    max_retries: int = 10
    mass_effect: bool = False
    capsule: bool = False
    necrosis: bool = False
    bright_probability: float = 0.0
    effects: EffectParams = field(default_factory=EffectParams)
    profiles: Mapping[str, tuple[SizeClass, ...]] | None = None
    appearance: Appearance | None = None

    def __post_init__(self) -> None:
        if self.tumor_type is not None and self.tumor_type not in PROFILES:
            raise ValueError(
                f"unknown tumor type {self.tumor_type!r}; choose from {list(PROFILES)}"
            )
        if self.profiles is not None and set(self.profiles) != set(PROFILES):
            raise ValueError(f"profiles must map every tumor type {list(PROFILES)} to its "
                             f"size classes, got {sorted(self.profiles)}")
        normalise_type_probs(self.tumor_probs)
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if not 0.0 <= self.bright_probability <= 1.0:
            raise ValueError(f"bright_probability must be in [0, 1], got {self.bright_probability}")

    @classmethod
    def realistic(cls, **overrides: Any) -> SynthesisConfig:
        """A generic realistic setting, not fitted to any data set: the generic appearance
        model (``GENERIC_APPEARANCE``: heterogeneous, irregular, every attenuation class,
        phase-aware, satellites), mass effect, capsule, necrosis, vessel avoidance. Bright
        tumors come from the appearance's hyper class (``bright_probability`` is unused
        with an appearance)."""
        base = cls(mass_effect=True, capsule=True, necrosis=True, bright_probability=0.2,
                   avoid_vessels=True, appearance=GENERIC_APPEARANCE)
        return replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (plain dicts, lists, numbers); ``from_dict`` inverts it exactly."""
        data: dict[str, Any] = _plain(asdict(self))
        if self.appearance is not None:  # its own JSON form (the profile file's)
            data["appearance"] = _plain(appearance_to_dict(self.appearance))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthesisConfig:
        """The config of a ``to_dict`` output (e.g. read back from JSON). Settings missing from
        ``data`` take their defaults; unknown ones raise ValueError (one line)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown synthesis setting(s) {unknown}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "appearance" and value is not None:
                value = appearance_from_dict(value)
            elif name == "profiles" and value is not None:
                value = {t: tuple(SizeClass(**_tuples(c)) for c in classes)
                         for t, classes in value.items()}
            else:
                default = cls.__dataclass_fields__[name].default_factory
                nested = default() if callable(default) else None
                if (is_dataclass(nested) and not isinstance(nested, type)
                        and isinstance(value, Mapping)):
                    value = type(nested)(**_tuples(value))
                elif not isinstance(value, Mapping):
                    value = _tuples(value)
            kwargs[name] = value
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    """Tuples -> lists, mappings -> dicts, recursively (the JSON form of ``asdict``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    """Lists -> tuples, recursively inside mappings (dataclass fields are tuples)."""
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value
