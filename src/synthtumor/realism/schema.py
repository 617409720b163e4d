"""The profile file's schema (``synthtumor-profile/2``), checked with pydantic at the file edge.

The synthesis core builds the profile from the checked data (``synthesis.profiles``); this
module only says whether a file has the right shape and ranges, as one line naming the
field. Format 1 files have no ``appearance`` and are checked by the core alone.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError


def _non_decreasing(knots: list[float]) -> list[float]:
    if any(b < a for a, b in zip(knots, knots[1:])):
        raise ValueError("knots must not decrease")
    return knots


_T = TypeVar("_T")

# A spread: 1-33 non-decreasing knots, each within the bounds of its element type, written
# ``_Knots[Annotated[float, _within(lo, hi)]]``: a generic alias, which type checkers can read.
_Knots = Annotated[list[_T], Field(min_length=1, max_length=33), AfterValidator(_non_decreasing)]


def _within(lo: float, hi: float) -> Any:
    """The bounds of one knot: a finite float in [lo, hi]."""
    return Field(ge=lo, le=hi, allow_inf_nan=False)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassModel(_Strict):
    name: Literal["hypo", "iso", "hyper", "rim"]
    probability: float = Field(ge=0.0, le=1e6)
    unenhanced_contrast_hu: _Knots[Annotated[float, _within(-300.0, 300.0)]]
    enhancement_ratio: _Knots[Annotated[float, _within(-1.0, 5.0)]]
    rim_ratio: _Knots[Annotated[float, _within(0.0, 3.0)]] = [0.0]


class SatelliteModel(_Strict):
    probability: float = Field(default=0.0, ge=0.0, le=1.0)
    count: tuple[Annotated[int, Field(ge=0, le=50)], Annotated[int, Field(ge=0, le=50)]] = (1, 4)
    radius_mm: _Knots[Annotated[float, _within(0.5, 30.0)]] = [2.0, 5.0]
    distance: _Knots[Annotated[float, _within(0.5, 5.0)]] = [1.1, 1.5]
    min_radius_mm: float = Field(default=15.0, gt=0.0, le=200.0)


class AppearanceModel(_Strict):
    classes: list[ClassModel] = Field(min_length=1)
    std_hu: _Knots[Annotated[float, _within(0.0, 300.0)]]
    corr_mm: _Knots[Annotated[float, _within(0.0, 50.0)]]
    edge_mm: _Knots[Annotated[float, _within(0.05, 20.0)]]
    irregularity: _Knots[Annotated[float, _within(0.0, 0.6)]]
    lobe_scale: _Knots[Annotated[float, _within(0.05, 2.0)]]
    scales: int = Field(default=2, ge=1, le=4)
    coarse_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    enhancement_hu: float | None = Field(default=None, ge=0.0, le=400.0)
    std_beyond_liver: StrictBool = False
    satellites: SatelliteModel = Field(default_factory=SatelliteModel)


class ProfileModel(BaseModel):
    """The top level: the size-class part is checked by the core (format 1 rules)."""

    model_config = ConfigDict(extra="allow")
    format: Literal["synthtumor-profile/2"]
    types: dict[str, Any]
    appearance: AppearanceModel | None = None


def check_profile(data: Any) -> None:
    """ValueError (one line: field path and problem) if a format-2 profile is malformed;
    other formats are left to the core's own checks."""
    if not isinstance(data, dict) or data.get("format") != "synthtumor-profile/2":
        return
    try:
        ProfileModel.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ValueError(f"{where}: {first['msg']}{more}") from None
