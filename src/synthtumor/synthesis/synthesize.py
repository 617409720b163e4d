"""synthesize(): paste synthetic liver tumors into a CT, the whole method in one call.

Pure NumPy/SciPy on arrays in memory: no files, no frameworks. Arrays are (x, y, z) voxel index
order; sizes are millimetres, converted with the spacing, so any grid works without resampling.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

import numpy as np

from .effects import (
    EffectParams,
    capsule_rim,
    mass_effect_warp,
    necrotic_core,
    soft_edge,
    soft_edge_ball,
)
from .morphology import box_dilate
from .placement import LiverSites, bounding_box, find_vessels
from .profiles import DEFAULT_TYPE_PROBS, PROFILES, SizeClass, draw_type, normalise_type_probs
from .shape import Distortion, evaluate_shape
from .texture import TextureParams, texture_field
from .workspace import Workspace, workspace

LIVER, TUMOR = 1, 2
_EDGE_TRUNCATE = 3.0  # the soft edge reaches this many sigma beyond the surface
_PROBE_MIN_VOXELS = 40_000  # tumor boxes smaller than this are not tightened
_BALL_EDGE_RADII = 8.0  # tumors smaller than this many edge sigmas get the curved-edge profile


class SynthesisWarning(UserWarning):
    """A tumor could not be made as requested (e.g. the liver is too small)."""


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
        """All effects on: mass effect, capsule, necrosis, 20 % bright tumors, vessel avoidance."""
        base = cls(mass_effect=True, capsule=True, necrosis=True, bright_probability=0.2,
                   avoid_vessels=True)
        return replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (plain dicts, lists, numbers); ``from_dict`` inverts it exactly."""
        return _plain(asdict(self))

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
            if name == "profiles" and value is not None:
                value = {t: tuple(SizeClass(**_tuples(c)) for c in classes)
                         for t, classes in value.items()}
            else:
                default = cls.__dataclass_fields__[name].default_factory  # type: ignore[misc]
                nested = default() if callable(default) else None
                if is_dataclass(nested) and isinstance(value, Mapping):
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


@dataclass(frozen=True)
class TumorRecord:
    """One synthesized tumor, as it ends up in the output (after clipping to the liver)."""

    index: int
    size_class: str
    centre_mm: tuple[float, float, float]  # world coordinates of its voxels' centroid
    centre_voxel: tuple[int, int, int]  # the drawn centre
    semi_axes_mm: tuple[float, float, float]
    elastic_sigma_mm: float
    volume_ml: float
    # mean over its voxels of output minus input HU (negative: darker), when it was painted; a
    # tumor painted later over the same voxels can only deepen the change there
    mean_hu_change: float
    effects: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SynthesisResult:
    ct: np.ndarray  # float32 HU, same shape as the input
    label: np.ndarray  # uint8: 0 background, 1 liver, 2 tumor
    tumors: list[TumorRecord]
    tumor_type: str
    params: dict[str, Any]  # the sample-level draws (drop, edge, texture, ...), for the record


@dataclass
class _Tumor:
    size_class: SizeClass
    centre: np.ndarray  # voxel indices
    semi_axes_mm: np.ndarray
    sigma_mm: float
    distortion: Distortion
    box: tuple[slice, slice, slice]
    effects: list[str]


def _geometry(
    spacing: Any, affine: np.ndarray | None
) -> tuple[tuple[float, float, float], int, np.ndarray]:
    """Spacing (mm), the cranio-caudal array axis and an affine, from whichever was given."""
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
        cc_axis = int(np.argmax(np.abs(affine[2, :3]) / np.array(spacing)))
        return spacing, cc_axis, affine
    if spacing is None:
        raise ValueError("give the voxel spacing (mm) or the affine")
    spacing = tuple(float(v) for v in np.broadcast_to(np.asarray(spacing, float), (3,)))
    if min(spacing) <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    return spacing, 2, np.diag([*spacing, 1.0])


def _box_around(
    centre: np.ndarray, half_mm: np.ndarray, spacing: tuple[float, ...], limit: tuple[slice, ...]
) -> tuple[slice, slice, slice]:
    half = np.ceil(half_mm / np.asarray(spacing)).astype(int)
    return tuple(
        slice(max(lim.start, int(c - h)), min(lim.stop, int(c + h + 1)))
        for c, h, lim in zip(centre, half, limit)
    )


def synthesize(
    ct: np.ndarray,
    liver: np.ndarray,
    rng: np.random.Generator,
    config: SynthesisConfig | None = None,
    *,
    spacing: Any = None,
    affine: np.ndarray | None = None,
    vessels: np.ndarray | None = None,
    inplace: bool = False,
) -> SynthesisResult:
    """Paste synthetic tumors into the liver of a CT.

    ct: (x, y, z) HU. liver: (x, y, z) mask, non-zero = liver (must not already hold tumors).
    rng: the only source of randomness; the same seed gives byte-identical output.
    spacing: voxel size in mm (scalar or 3 values) when no affine is given; affine: 4x4 voxel ->
        world mm, which also gives the cranio-caudal axis and world tumor centres.
    vessels: optional bool mask of vessels to avoid (used when ``config.avoid_vessels``).
    inplace: write into ``ct`` (a writable float32/float64 array) and turn ``liver`` (a writable
        uint8 0/1 array) into the label map, allocating nothing of the volume's size: for
        loaders that own their arrays, and for timing the synthesis itself.
    Returns the new CT (float32, or the input array itself in place; changed only inside the
    liver near tumors unless mass effect is on), the label map (0/1/2) and one record per tumor.

    Examples
    --------
    >>> import numpy as np
    >>> from synthtumor.phantom import make_phantom
    >>> ph = make_phantom(0, spacing=(4.0, 4.0, 4.0))  # CT in HU + liver mask, 4 mm voxels
    >>> result = synthesize(ph.ct, ph.liver, np.random.default_rng(7), affine=ph.affine)
    >>> np.unique(result.label).tolist()  # 0 background, 1 liver, 2 tumor
    [0, 1, 2]
    >>> bool(np.all(result.ct[result.label == 0] == ph.ct[result.label == 0]))  # only the liver
    True
    >>> len(result.tumors) > 0 and result.tumors[0].volume_ml > 0
    True
    >>> again = synthesize(ph.ct, ph.liver, np.random.default_rng(7), affine=ph.affine)
    >>> np.array_equal(again.ct, result.ct)  # same seed, same tumors
    True
    """
    config = config or SynthesisConfig()
    ct = np.asarray(ct)
    if ct.ndim != 3 or np.shape(liver) != ct.shape:
        raise ValueError(f"ct {ct.shape} and liver {np.shape(liver)} must be 3-D of one shape")
    spacing, cc_axis, affine = _geometry(spacing, affine)
    if inplace:
        out, label = _inplace_arrays(ct, liver)
    else:
        out = ct.astype(np.float32, copy=True)
        label = np.not_equal(liver, 0).view(np.uint8)
    liver_box = bounding_box(label)
    if liver_box is None:
        raise ValueError("liver mask is empty")

    tumor_type = config.tumor_type or draw_type(rng, normalise_type_probs(config.tumor_probs))
    edge_sigma = float(rng.uniform(*config.edge_sigma_mm))
    drop = float(rng.uniform(*config.drop_hu))
    texture = TextureParams.draw(rng)
    fx = config.effects
    bright = bool(rng.random() < config.bright_probability)
    if bright:
        drop = -float(rng.uniform(*fx.bright_hu))
    params: dict[str, Any] = {
        "drop_hu": drop, "edge_sigma_mm": edge_sigma, "texture": asdict(texture),
        "bright": bright,
    }

    avoid = None
    if config.avoid_vessels:
        if vessels is not None and np.shape(vessels) != ct.shape:
            raise ValueError(f"vessels {np.shape(vessels)} and ct {ct.shape} differ in shape")
        avoid = (
            np.asarray(vessels, dtype=bool)
            if vessels is not None
            else find_vessels(out, label > 0, spacing)
        )
        params["vessel_voxels"] = int(avoid[liver_box].sum())

    ws = workspace()
    sites = LiverSites(label[liver_box], spacing, cc_axis, config.band, config.erosion_mm)
    offset = np.array([s.start for s in liver_box])
    extent_mm = np.array([(s.stop - s.start) * sp for s, sp in zip(liver_box, spacing)])
    tumors: list[_Tumor] = []
    for size_class in (config.profiles or PROFILES)[tumor_type]:
        if extent_mm.min() < 2 * size_class.radius_mm:
            warnings.warn(
                f"liver extent {np.round(extent_mm).astype(int).tolist()} mm is smaller than "
                f"{size_class.name} tumors ({2 * size_class.radius_mm:.0f} mm across): "
                "they are clipped to the liver",
                SynthesisWarning,
                stacklevel=2,
            )
        n = config.count or size_class.draw_count(rng)
        for _ in range(n):
            tumor = _place(size_class, rng, sites, offset, spacing, liver_box, edge_sigma,
                           avoid, config.max_retries, ws)
            if tumor is None:
                warnings.warn(f"no room for a {size_class.name} tumor in the liver band",
                              SynthesisWarning, stacklevel=2)
                continue
            tumors.append(tumor)

    if config.mass_effect:
        for tumor in tumors:
            _push(out, label, tumor, spacing, rng, fx, liver_box)

    # Where tumor boxes overlap, the stronger change wins (as blurring their union would):
    # that needs the CT from before any painting, kept per group of overlapping boxes.
    originals = _snapshots(out, [t.box for t in tumors], ws)
    records = []
    for i, (tumor, original) in enumerate(zip(tumors, originals)):
        shared = _overlap_with_earlier(tumor.box, [t.box for t in tumors[:i]])
        n_voxels, centre_ijk, change = _paint(
            out, original, shared, label, tumor, drop, edge_sigma, texture, spacing, rng,
            config, ws,
        )
        centroid = affine[:3, :3] @ centre_ijk + affine[:3, 3]
        records.append(
            TumorRecord(
                index=i,
                size_class=tumor.size_class.name,
                centre_mm=tuple(round(float(v), 3) for v in centroid),
                centre_voxel=tuple(int(v) for v in tumor.centre),
                semi_axes_mm=tuple(round(float(v), 3) for v in tumor.semi_axes_mm),
                elastic_sigma_mm=tumor.sigma_mm,
                volume_ml=round(n_voxels * float(np.prod(spacing)) / 1000.0, 6),
                mean_hu_change=round(change, 3),
                effects=tuple(tumor.effects),
            )
        )
    return SynthesisResult(out, label, records, tumor_type, params)


def _inplace_arrays(ct: Any, liver: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check that in-place synthesis can write into ``ct`` and ``liver``; return them."""
    if not (isinstance(ct, np.ndarray) and ct.dtype in (np.float32, np.float64)
            and ct.flags.writeable):
        raise ValueError("inplace=True needs a writable float32 or float64 ct array")
    if not (isinstance(liver, np.ndarray) and liver.dtype == np.uint8 and liver.flags.writeable):
        raise ValueError("inplace=True needs a writable uint8 liver array (0/1)")
    if liver.max(initial=0) > 1:
        raise ValueError("inplace=True needs a 0/1 liver array")
    return ct, liver


def _intersect(a: tuple[slice, ...], b: tuple[slice, ...]) -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b))


def _overlap_with_earlier(
    box: tuple[slice, ...], earlier: list[tuple[slice, ...]]
) -> tuple[slice, ...] | None:
    """The bounding box (in ``box``'s own coordinates) of its intersections with ``earlier``."""
    parts = [
        tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, other))
        for other in earlier
        if _intersect(box, other)
    ]
    if not parts:
        return None
    return tuple(
        slice(min(p[a].start for p in parts) - box[a].start,
              max(p[a].stop for p in parts) - box[a].start)
        for a in range(3)
    )


def _snapshots(
    out: np.ndarray, boxes: list[tuple[slice, ...]], ws: Workspace
) -> list[np.ndarray | None]:
    """For each box: a copy of ``out`` under it if another box overlaps it, else None.

    Overlapping boxes are grouped (connected components of the overlap graph) and each group's
    bounding box is copied once into a workspace buffer; boxes get views of their group's copy.
    """
    group = list(range(len(boxes)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i in range(len(boxes)):
        for j in range(i):
            if _intersect(boxes[i], boxes[j]):
                group[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        members.setdefault(root(i), []).append(i)
    views: list[np.ndarray | None] = [None] * len(boxes)
    for k, ids in enumerate(m for m in members.values() if len(m) > 1):
        union = tuple(slice(min(boxes[i][a].start for i in ids), max(boxes[i][a].stop for i in ids))
                      for a in range(3))
        copy = ws.get(f"snapshot{k}", out[union].shape, out.dtype)
        np.copyto(copy, out[union])
        for i in ids:
            views[i] = copy[tuple(slice(b.start - u.start, b.stop - u.start)
                                  for b, u in zip(boxes[i], union))]
    return views


def _confine(weight: np.ndarray, inside: np.ndarray, reach: list[int], ws: Workspace) -> None:
    """Zero ``weight`` farther than ``reach`` voxels (per axis: a box) from ``inside``."""
    weight *= box_dilate(inside, tuple(reach), ws)


def _count_and_centroid(mask: np.ndarray, box: tuple[slice, ...]) -> tuple[int, np.ndarray]:
    """Voxel count and centroid (absolute voxel indices) of a box mask, from its projections."""
    n = int(np.count_nonzero(mask))
    centre = np.empty(3)
    for axis in range(3):
        profile = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        centre[axis] = box[axis].start + float(profile @ np.arange(len(profile))) / max(n, 1)
    return n, centre


def _box_axes_mm(
    box: tuple[slice, ...],
    centre: np.ndarray,
    spacing: tuple[float, ...],
    step: tuple[int, ...] = (1, 1, 1),
) -> tuple[np.ndarray, ...]:
    """Coordinates (mm) of every ``step``-th voxel centre of a box relative to the tumor centre,
    one array per axis."""
    return tuple(
        (np.arange(s.start, s.stop, st) - c) * sp
        for s, c, sp, st in zip(box, centre, spacing, step)
    )


def _tight_box(
    centre: np.ndarray,
    semi_axes: np.ndarray,
    distortion: Distortion,
    half_mm: np.ndarray,
    spacing: tuple[float, float, float],
    limit: tuple[slice, ...],
    edge_sigma: float,
) -> tuple[slice, slice, slice]:
    """The box the tumor and its soft edge really occupy, found on a ~4 mm sub-grid.

    The bound from the largest displacement is loose (large tumors: ~20x the tumor's volume);
    the analytic shape is cheap to probe coarsely, so probe it and keep a safe margin.
    """
    loose = _box_around(centre, half_mm, spacing, limit)
    step = tuple(max(1, int(round(4.0 / sp))) for sp in spacing)
    if math.prod(s.stop - s.start for s in loose) < _PROBE_MIN_VOXELS:
        return loose  # small already: probing would cost more than it saves
    probe = evaluate_shape(_box_axes_mm(loose, centre, spacing, step), semi_axes, distortion)
    cell_mm = float(np.linalg.norm(np.array(step) * spacing))
    # A voxel within 3 sigma of the surface is at most half a cell from a probe point, so that
    # point is within 3 sigma + half a cell (x 1.25: the distance estimate is not exact).
    near = probe.distance_mm <= 1.25 * (_EDGE_TRUNCATE * edge_sigma + 0.5 * cell_mm) + 1.0
    found = bounding_box(near)
    if found is None:
        return loose
    return tuple(
        slice(max(s.start, s.start + f.start * st - st), min(s.stop, s.start + f.stop * st + st))
        for s, f, st in zip(loose, found, step)
    )


def _place(
    size_class: SizeClass,
    rng: np.random.Generator,
    sites: LiverSites,
    offset: np.ndarray,
    spacing: tuple[float, float, float],
    limit: tuple[slice, ...],
    edge_sigma: float,
    avoid: np.ndarray | None,
    max_retries: int,
    ws: Workspace,
) -> _Tumor | None:
    """Draw one tumor's shape and a location for it (avoiding vessels if asked)."""
    semi_axes = size_class.draw_semi_axes_mm(rng)
    sigma = size_class.draw_elastic_sigma_mm(rng)
    distortion = Distortion.draw(rng, sigma)
    half_mm = semi_axes + distortion.reach_mm() + _EDGE_TRUNCATE * edge_sigma
    best: _Tumor | None = None
    best_overlap = np.inf
    for _ in range(max_retries + 1 if avoid is not None else 1):
        local = sites.draw(rng)
        if local is None:
            break
        centre = local + offset
        box = _tight_box(centre, semi_axes, distortion, half_mm, spacing, limit, edge_sigma)
        overlap = 0
        if avoid is not None:
            shape = evaluate_shape(_box_axes_mm(box, centre, spacing), semi_axes, distortion, ws)
            overlap = int(np.count_nonzero(shape.inside & avoid[box]))
        if overlap < best_overlap:
            best = _Tumor(size_class, centre, semi_axes, sigma, distortion, box, [])
            best_overlap = overlap
        if overlap == 0:
            break
    if avoid is not None and best is not None:
        best.effects.append("vessel_avoidance" if best_overlap == 0 else "vessel_overlap")
    return best


def _push(
    out: np.ndarray,
    label: np.ndarray,
    tumor: _Tumor,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    fx: EffectParams,
    limit: tuple[slice, ...],
) -> None:
    """Mass effect: warp image and labels around the tumor, in place."""
    strength = float(rng.uniform(*fx.mass_effect_strength))
    half_mm = tumor.semi_axes_mm * fx.mass_effect_reach
    full = tuple(slice(0, n) for n in out.shape)
    box = _box_around(tumor.centre, half_mm, spacing, full)
    centre = tumor.centre - [s.start for s in box]
    out[box], label[box] = mass_effect_warp(
        out[box], label[box], centre, tumor.semi_axes_mm, spacing, strength, fx.mass_effect_reach
    )
    tumor.effects.append("mass_effect")


def _paint(
    out: np.ndarray,
    original: np.ndarray | None,
    shared: tuple[slice, ...] | None,
    label: np.ndarray,
    tumor: _Tumor,
    drop: float,
    edge_sigma: float,
    texture: TextureParams,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    config: SynthesisConfig,
    ws: Workspace,
) -> tuple[int, np.ndarray, float]:
    """Paint one tumor into ``out`` and ``label`` inside the liver.

    original: the CT in the tumor's box before any tumor was painted (None if no other box
    overlaps it); shared: the part of the box (box coordinates) that boxes painted earlier
    overlap, where the stronger change wins; None: the change is simply added.
    Returns the tumor's voxel count, centroid (voxel indices) and mean HU change.
    """
    box, fx = tumor.box, config.effects
    shape = evaluate_shape(
        _box_axes_mm(box, tumor.centre, spacing), tumor.semi_axes_mm, tumor.distortion, ws
    )
    dims = shape.inside.shape
    liver = ws.get("liver", dims, np.bool_)
    np.greater(label[box], 0, out=liver)
    inside = shape.inside
    inside &= liver
    n_inside = int(np.count_nonzero(inside))
    radius = float(np.prod(tumor.semi_axes_mm) ** (1.0 / 3.0))
    if radius < _BALL_EDGE_RADII * edge_sigma:
        weight = soft_edge_ball(shape.distance_mm, radius, edge_sigma, ws)
    else:
        weight = soft_edge(shape.distance_mm, edge_sigma, ws)
    if n_inside == 0:
        # Never let a tumor vanish (e.g. one voxel thick on a coarse grid): keep its centre.
        local = tuple(int(c - s.start) for c, s in zip(tumor.centre, box))
        inside[local] = liver[local]
        weight[local] = max(float(weight[local]), 0.5)
        n_inside = int(inside[local])
    # The edge may reach only 3 sigma (+1 voxel for the surface between voxel centres) past the
    # *labelled* tumor, as blurring the liver-clipped mask does in the reference: where the shape
    # leaves the liver, folds back near itself, or its first-order surface distance is loose,
    # nothing may darken without a label nearby. A box dilation of the label guarantees it.
    reach = [int(np.ceil(_EDGE_TRUNCATE * edge_sigma / sp)) + 1 for sp in spacing]
    _confine(weight, inside, reach, ws)
    weight *= texture_field(dims, spacing, texture, rng, ws)
    delta = weight
    delta *= np.float32(-drop)
    if config.necrosis and tumor.semi_axes_mm.mean() >= fx.necrosis_min_radius_mm:
        core = necrotic_core(shape.norm_radius_sq, float(rng.uniform(*fx.necrosis_fraction)))
        delta -= core * np.float32(rng.uniform(*fx.necrosis_hu))
        tumor.effects.append("necrosis")
    if config.capsule:
        rim = capsule_rim(shape.distance_mm, float(rng.uniform(*fx.capsule_width_mm)))
        delta += rim * np.float32(rng.uniform(*fx.capsule_hu))
        tumor.effects.append("capsule")
    if drop < 0:
        tumor.effects.append("bright")
    delta *= liver
    target = out[box]
    if shared is None:
        target += delta
        total = float(np.sum(delta, where=inside))
    else:
        # Where an earlier tumor's box overlaps, the stronger change (vs the CT before any
        # tumor) wins; elsewhere the change is simply added.
        t, o, d = target[shared], original[shared], delta[shared]
        current = ws.get("scratch1", t.shape)
        np.subtract(t, o, out=current)
        np.abs(current, out=current)
        magnitude = ws.get("scratch2", t.shape)
        np.abs(d, out=magnitude)
        stronger = ws.get("mask", t.shape, np.bool_)
        np.greater(magnitude, current, out=stronger)
        d += o
        np.copyto(t, d, where=stronger)
        d.fill(0.0)
        target += delta
        np.subtract(t, o, out=current)
        total = float(np.sum(delta, where=inside)) + float(
            np.sum(current, where=inside[shared])
        )
    change = total / max(n_inside, 1)
    np.copyto(label[box], np.uint8(TUMOR), where=inside)
    n_voxels, centroid = _count_and_centroid(inside, box)
    return n_voxels, centroid, change
