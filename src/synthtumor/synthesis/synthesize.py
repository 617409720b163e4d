"""synthesize(): paste synthetic liver tumors into a CT, the whole method in one call.

NumPy/SciPy (and numba kernels, see ``painting.py``) on arrays in memory: no files, no
frameworks. Arrays are (x, y, z) voxel index order; sizes are millimetres, converted with the
spacing, so any grid works without resampling.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..conventions import LIVER, TUMOR, cranio_caudal_axis, spacing_of
from .appearance import Look
from .config import SynthesisConfig
from .config import _plain as _plain  # re-exported for importers of this module
from .config import _tuples as _tuples
from .effects import EffectParams, mass_effect_warp
from .painting import (
    BACKEND_VARIABLE,
    BACKENDS,
    _paint,
    _shared_parts,
    _snapshots,
    _Tumor,
    compiled_backend,
)
from .phase import liver_enhancement_hu, liver_median_hu, phase_name
from .placement import LiverSites, bounding_box, find_vessels
from .profiles import PROFILES, draw_type, normalise_type_probs
from .siting import _PROBE_MIN_VOXELS as _PROBE_MIN_VOXELS
from .siting import _SATELLITE as _SATELLITE
from .siting import _box_around, _box_edge, _place, _satellites, _three
from .siting import _probe_compiled as _probe_compiled
from .siting import _tight_box as _tight_box
from .texture import TextureParams
from .workspace import workspace

__all__ = ["BACKENDS", "BACKEND_VARIABLE", "LIVER", "TUMOR", "SynthesisConfig", "SynthesisResult",
           "SynthesisWarning", "TumorRecord", "compiled_backend", "synthesize"]


class SynthesisWarning(UserWarning):
    """A tumor could not be made as requested (e.g. the liver is too small)."""


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
    # the drawn look (appearance model), None for the reference intensity
    look: Look | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.look is None:
            del out["look"]  # reference records stay as they were
        return out


@dataclass
class SynthesisResult:
    ct: np.ndarray  # float32 HU, same shape as the input
    label: np.ndarray  # uint8: 0 background, 1 liver, 2 tumor
    tumors: list[TumorRecord]
    tumor_type: str
    params: dict[str, Any]  # the sample-level draws (drop, edge, texture, ...), for the record


def voxel_geometry(
    spacing: Any, affine: np.ndarray | None
) -> tuple[tuple[float, float, float], int, np.ndarray]:
    """Spacing (mm), the cranio-caudal array axis and an affine, from whichever of ``spacing``
    (mm, one number or three) and ``affine`` (4 x 4, wins when both are given) was given, as
    ``synthesize`` reads them; ValueError if neither is, or a spacing is not positive.

    Examples
    --------
    >>> voxel_geometry(1.5, None)[:2]
    ((1.5, 1.5, 1.5), 2)
    """
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        return spacing_of(affine), cranio_caudal_axis(affine), affine
    if spacing is None:
        raise ValueError("give the voxel spacing (mm) or the affine")
    spacing = tuple(float(v) for v in np.broadcast_to(np.asarray(spacing, float), (3,)))
    if min(spacing) <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    return spacing, 2, np.diag([*spacing, 1.0])


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
    spacing, cc_axis, affine = _geometry_of(ct, liver, spacing, affine)
    out, label, liver_box = _outputs(ct, liver, inplace)
    tumor_type, drop, edge_sigma, texture, params = _draw_sample(config, rng)
    avoid = _vessel_mask(config, vessels, ct.shape, out, label, spacing, liver_box, params)
    enhancement = _enhancement(config, out, label, liver_box, params)
    tumors = _place_all(config, tumor_type, rng, label, spacing, cc_axis, liver_box, edge_sigma,
                        enhancement, avoid)
    if config.mass_effect:
        for tumor in tumors:
            _push(out, label, tumor, spacing, rng, config.effects, liver_box)
    records = _paint_all(out, label, tumors, drop, edge_sigma, texture, spacing, affine, rng,
                         config)
    return SynthesisResult(out, label, records, tumor_type, params)


def _geometry_of(
    ct: np.ndarray, liver: np.ndarray, spacing: Any, affine: np.ndarray | None
) -> tuple[tuple[float, float, float], int, np.ndarray]:
    """Check the input shapes; ``voxel_geometry`` of whichever of spacing/affine was given."""
    if ct.ndim != 3 or np.shape(liver) != ct.shape:
        raise ValueError(f"ct {ct.shape} and liver {np.shape(liver)} must be 3-D of one shape")
    return voxel_geometry(spacing, affine)


def _outputs(
    ct: np.ndarray, liver: np.ndarray, inplace: bool
) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """The output CT and label map (new, or the inputs themselves in place) and the liver's
    bounding box (voxel slices); ValueError if the liver is empty or not 0/1 in place."""
    if inplace:
        out, label = _inplace_arrays(ct, liver)
    else:
        # the outputs: one pass over each input, nothing else of the volume's size
        out = np.empty(ct.shape, np.float32)
        np.copyto(out, ct, casting="unsafe")  # as astype(np.float32)
        label = np.not_equal(liver, 0).view(np.uint8)
    liver_box, values_or = _liver_box(label)
    if liver_box is None:
        raise ValueError("liver mask is empty")
    if inplace:  # a uint8 value above 1 sets a bit above the lowest, so their OR shows it
        peak = values_or if values_or is not None else int(label[liver_box].max())
        if peak > 1:  # (the box holds every non-zero voxel)
            raise ValueError("inplace=True needs a 0/1 liver array")
    return out, label, liver_box


def _draw_sample(
    config: SynthesisConfig, rng: np.random.Generator
) -> tuple[str, float, float, TextureParams, dict[str, Any]]:
    """The sample-level draws, in this order: type, edge sigma (mm), drop (HU), texture,
    bright (and its HU). Returns them and the ``params`` record."""
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
    return tumor_type, drop, edge_sigma, texture, params


def case_vessels(
    ct: np.ndarray, liver: np.ndarray, config: SynthesisConfig | None = None, *,
    spacing: Any = None, affine: np.ndarray | None = None,
) -> np.ndarray | None:
    """The vessels ``synthesize`` finds in a healthy case (bool), when ``config`` avoids them
    (None when it does not; no config: always found): found once, then given as ``vessels=``
    to every call on that case, the same tumors come out without finding them again
    (120-150 ms at 1 mm). The adapters' ``FindVessels(d)`` transforms call it too.

    ct: HU; liver: non-zero = liver; both (x, y, z); spacing / affine as for ``synthesize``.
    """
    if config is not None and not config.avoid_vessels:
        return None
    spacing_mm, _, _ = voxel_geometry(spacing, affine)
    return find_vessels(ct, np.not_equal(liver, 0), spacing_mm)


def _vessel_mask(
    config: SynthesisConfig,
    vessels: np.ndarray | None,
    shape: tuple[int, ...],
    out: np.ndarray,
    label: np.ndarray,
    spacing: tuple[float, float, float],
    liver_box: tuple[slice, ...],
    params: dict[str, Any],
) -> np.ndarray | None:
    """The bool vessel mask to avoid (given, or detected in ``out``), None if not avoiding;
    records its voxel count in the liver box in ``params``."""
    avoid = None
    if config.avoid_vessels:
        if vessels is not None and np.shape(vessels) != shape:
            raise ValueError(f"vessels {np.shape(vessels)} and ct {shape} differ in shape")
        avoid = (
            np.asarray(vessels, dtype=bool)
            if vessels is not None
            else find_vessels(out, label > 0, spacing)
        )
        params["vessel_voxels"] = int(avoid[liver_box].sum())
    return avoid


def _enhancement(
    config: SynthesisConfig,
    out: np.ndarray,
    label: np.ndarray,
    liver_box: tuple[slice, ...],
    params: dict[str, Any],
) -> float:
    """The liver's contrast enhancement (HU) for the appearance model (0 without one); records
    the liver's median HU and phase in ``params``."""
    enhancement = 0.0
    if config.appearance is not None:
        liver_hu = liver_median_hu(out[liver_box], label[liver_box])
        enhancement = liver_enhancement_hu(liver_hu)
        params |= {"liver_hu": round(liver_hu, 2), "phase": phase_name(liver_hu),
                   "liver_enhancement_hu": round(enhancement, 2)}
    return enhancement


def _place_all(
    config: SynthesisConfig,
    tumor_type: str,
    rng: np.random.Generator,
    label: np.ndarray,
    spacing: tuple[float, float, float],
    cc_axis: int,
    liver_box: tuple[slice, ...],
    edge_sigma: float,
    enhancement: float,
    avoid: np.ndarray | None,
) -> list[_Tumor]:
    """Every tumor of the type, size class by size class (count, then per tumor its look and
    its place), then the satellites; warns (SynthesisWarning) where one does not fit."""
    ws = workspace()
    sites = LiverSites(label[liver_box], spacing, cc_axis, config.band, config.erosion_mm,
                       tight=True)
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
                stacklevel=3,  # the caller of synthesize()
            )
        n = config.count or size_class.draw_count(rng)
        for _ in range(n):
            look = (None if config.appearance is None
                    else config.appearance.draw_look(rng, enhancement))
            tumor = _place(size_class, rng, sites, offset, spacing, liver_box,
                           _box_edge(edge_sigma, look, size_class.radius_mm), avoid,
                           config.max_retries, ws)
            if tumor is None:
                warnings.warn(f"no room for a {size_class.name} tumor in the liver band",
                              SynthesisWarning, stacklevel=3)
                continue
            tumor.look = look
            tumors.append(tumor)
    if config.appearance is not None:
        tumors += _satellites(tumors, config.appearance, rng, label[liver_box], offset,
                              spacing, liver_box)
    return tumors


def _paint_all(
    out: np.ndarray,
    label: np.ndarray,
    tumors: list[_Tumor],
    drop: float,
    edge_sigma: float,
    texture: TextureParams,
    spacing: tuple[float, float, float],
    affine: np.ndarray,
    rng: np.random.Generator,
    config: SynthesisConfig,
) -> list[TumorRecord]:
    """Paint the tumors into ``out`` and ``label`` in order; one record per tumor."""
    ws = workspace()
    # Where tumor boxes overlap, the stronger change wins (as blurring their union would):
    # that needs the CT from before any painting, kept where boxes share voxels.
    shared_parts, pairs = _shared_parts([t.box for t in tumors])
    originals = _snapshots(out, [t.box for t in tumors], shared_parts, pairs, ws)
    records = []
    voxel_mm3 = float(np.prod(spacing))
    for i, (tumor, original, shared) in enumerate(zip(tumors, originals, shared_parts)):
        n_voxels, centre_ijk, change = _paint(
            out, original, shared, label, tumor, drop, edge_sigma, texture, spacing, rng,
            config, ws,
        )
        # Python numbers from tolist(): the same values, without a NumPy scalar per number
        centroid = (affine[:3, :3] @ centre_ijk + affine[:3, 3]).tolist()
        records.append(
            TumorRecord(
                index=i,
                size_class=tumor.size_class.name,
                centre_mm=_three(round(v, 3) for v in centroid),
                centre_voxel=_three(int(v) for v in tumor.centre.tolist()),
                semi_axes_mm=_three(round(v, 3) for v in tumor.semi_axes_mm.tolist()),
                elastic_sigma_mm=tumor.sigma_mm,
                volume_ml=round(n_voxels * voxel_mm3 / 1000.0, 6),
                mean_hu_change=round(change, 3),
                effects=tuple(tumor.effects),
                look=tumor.look,
            )
        )
    return records


def _liver_box(label: np.ndarray) -> tuple[tuple[slice, ...] | None, int | None]:
    """``placement.bounding_box`` of the label map (None if it is empty); one compiled pass
    for contiguous uint8 maps, which also gives the OR of all their values (else None)."""
    if not (compiled_backend() and label.dtype == np.uint8 and label.flags.c_contiguous
            and label.size):
        return bounding_box(label), None
    from .kernels import mask_profiles

    outer, plane = mask_profiles(label)
    box = []
    for profile in (outer, plane.max(axis=1), plane.max(axis=0)):
        hits = np.flatnonzero(profile)
        if hits.size == 0:
            return None, None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box), int(np.bitwise_or.reduce(outer))


def _inplace_arrays(ct: Any, liver: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check that in-place synthesis can write into ``ct`` and ``liver``; return them."""
    if not (isinstance(ct, np.ndarray) and ct.dtype in (np.float32, np.float64)
            and ct.flags.writeable):
        raise ValueError("inplace=True needs a writable float32 or float64 ct array")
    if not (isinstance(liver, np.ndarray) and liver.dtype == np.uint8 and liver.flags.writeable):
        raise ValueError("inplace=True needs a writable uint8 liver array (0/1)")
    return ct, liver


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
    if compiled_backend():  # the same warp in one pass (kernels_warp.py)
        from .kernels_warp import mass_effect_pass

        image, labels = out[box], label[box]
        mm = np.array([*spacing, *tumor.semi_axes_mm], np.float32)
        mass_effect_pass(image, labels, image.copy(), labels.copy(), centre.astype(np.float32),
                         mm, strength, fx.mass_effect_reach)
    else:
        out[box], label[box] = mass_effect_warp(out[box], label[box], centre,
                                                tumor.semi_axes_mm, spacing, strength,
                                                fx.mass_effect_reach)
    tumor.effects.append("mass_effect")
