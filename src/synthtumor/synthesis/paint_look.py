"""One tumor with a drawn appearance (``Look``) painted into the CT: margin, edge, attenuation,
heterogeneity, contrast.

The tumor's box is sized for the largest surface move its irregular margin may make; the
drawn margin usually moves it far less. So only the shape and the margin are evaluated on the
whole box: everything after (edge, effects, heterogeneity, statistics, paint) works on the
*reach box*, the labelled tumor's bounding box grown by the edge's reach (and as far as rims
and capsules reach past the surface, ``_rim_pad``), outside which the change is exactly zero.
The heterogeneity field is drawn on the reach box.

Two implementations of the per-voxel passes, chosen like the reference path's
(``painting.BACKEND_VARIABLE``): NumPy (the reference) and numba (``kernels_look.py``). They make
the same draws in the same order: identical labels, HU equal to within rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .attenuation import (
    RIM_WIDTH_MM,
    add_texture,
    base_change,
    flatten_host,
    match_contrast,
    rougher_than_drawn,
    texture_constants,
)
from .effects import soft_edge, soft_edge_ball
from .heterogeneity import heterogeneity_field
from .margin import REACH_STD, displace_surface, margin_noise
from .placement import bounding_box
from .shape import evaluate_shape
from .workspace import Workspace

if TYPE_CHECKING:
    from .appearance import Look
    from .config import SynthesisConfig
    from .painting import _Tumor

_DISTANCE_SLACK = 1.25  # the first-order surface distance may underestimate by this factor


def paint_look(
    out: np.ndarray, original: np.ndarray | None, shared: tuple[slice, ...] | None,
    label: np.ndarray, tumor: _Tumor, spacing: tuple[float, float, float],
    rng: np.random.Generator, config: SynthesisConfig, ws: Workspace,
) -> tuple[int, np.ndarray, float]:
    """Paint one tumor with a look into ``out`` and ``label`` (``painting._paint``'s contract:
    returns its voxel count, centroid (voxel indices) and mean HU change)."""
    from .painting import add_core_and_capsule, apply_change, compiled_backend

    look, app = tumor.look, config.appearance
    assert look is not None and app is not None
    compiled = compiled_backend()
    change = _change_compiled if compiled else _change_numpy
    pad = _rim_pad(look, config, spacing)
    sub, inside, n_inside, r2, distance, weight = change(label, tumor, spacing, pad, rng, ws)
    delta = base_change(weight, inside, distance, look, ws)
    add_core_and_capsule(delta, r2, distance, tumor, config, rng)
    field = heterogeneity_field(inside.shape, spacing, look.corr_mm, app.scales,
                                app.coarse_weight, rng, ws)
    host, flattening = out[sub], None
    if compiled:  # the two steps below in two passes
        from .kernels_look import compose, texture_moments

        moments = texture_moments(delta, weight, inside, host, field)
        # flatten_host's test from the sums at hand: most hosts need no flattening
        if rougher_than_drawn(moments, look):
            flat = flatten_host(host, delta, weight, inside, label[sub] > 0, look)
            if flat is not None:
                host, flattening = flat
                moments = texture_moments(delta, weight, inside, host, field)
        compose(delta, weight, field, label[sub], texture_constants(moments, look))
    else:
        liver = label[sub] > 0
        flat = flatten_host(host, delta, weight, inside, liver, look)
        if flat is not None:
            host, flattening = flat
        add_texture(delta, weight, inside, host, field, look)
        match_contrast(delta, weight, inside, look.contrast_hu)
        delta *= liver
    if flattening is not None:
        delta += flattening
    tumor.effects.append(look.attenuation)
    local = _local_shared(shared, sub, tumor.box)
    snapshot = None if local is None or original is None else original[
        _snapshot_part(local, shared, sub, tumor.box)]
    # every row in full (rows None): the reach box is already tight
    n_voxels, centroid, total = apply_change(compiled, out, snapshot, local, label, sub, delta,
                                             inside, None, ws)
    return n_voxels, centroid, total / max(n_inside, 1)


def _snapshot_part(
    local: tuple[slice, ...], shared: tuple[slice, ...] | None, sub: tuple[slice, ...],
    box: tuple[slice, ...],
) -> tuple[slice, ...]:
    """Where ``local`` (``_local_shared``: ``sub``'s coordinates) lies in the snapshot of
    ``shared`` (``box`` coordinates; ``painting._snapshots``)."""
    assert shared is not None  # a local shared part comes from one
    return tuple(slice(part.start + s.start - b.start - whole.start,
                       part.stop + s.start - b.start - whole.start)
                 for part, whole, s, b in zip(local, shared, sub, box))


def _local_shared(
    shared: tuple[slice, ...] | None, sub: tuple[slice, ...], box: tuple[slice, ...]
) -> tuple[slice, ...] | None:
    """The shared part (``box`` coordinates) in ``sub``'s coordinates; None if none is left."""
    if shared is None:
        return None
    parts = []
    for part, s, b in zip(shared, sub, box):
        lo, hi = max(part.start, s.start - b.start), min(part.stop, s.stop - b.start)
        if hi <= lo:
            return None
        parts.append(slice(lo - (s.start - b.start), hi - (s.start - b.start)))
    return tuple(parts)


def _rim_pad(look: Look, config: SynthesisConfig,
             spacing: tuple[float, float, float]) -> list[float]:
    """Per axis, how far (voxels) rims and capsules may reach past the surface: 1.5 widths
    (``effects.capsule_rim``), x ``_DISTANCE_SLACK`` for the approximate distance, + 1 voxel;
    0 without them."""
    widths = [RIM_WIDTH_MM] if look.rim_hu > 0 else []
    if config.capsule:
        widths.append(config.effects.capsule_width_mm[1])
    if not widths:
        return [0.0, 0.0, 0.0]
    return [_DISTANCE_SLACK * 1.5 * max(widths) / sp + 1.0 for sp in spacing]


def _reach_box(
    found: tuple[slice, ...] | None, centre: tuple[int, ...], reach: list[int],
    pad: list[float], box: tuple[slice, ...],
) -> tuple[slice, ...]:
    """Box coordinates of the reach box: ``found`` (the labelled tumor's bounds, or the centre
    voxel if it has none) grown per axis by the edge's ``reach`` or the rims' ``pad``
    (voxels), whichever is farther, inside ``box``."""
    if found is None:
        found = tuple(slice(c, c + 1) for c in centre)
    grow = [max(r, int(np.ceil(p))) for r, p in zip(reach, pad)]
    return tuple(slice(max(0, f.start - g), min(b.stop - b.start, f.stop + g))
                 for f, g, b in zip(found, grow, box))


def _change_numpy(
    label: np.ndarray, tumor: _Tumor, spacing: tuple[float, float, float], pad: list[float],
    rng: np.random.Generator, ws: Workspace,
) -> tuple[tuple[slice, ...], np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """The reference implementation (whole-box NumPy passes): the reach box (absolute voxel
    slices) and on it the labelled tumor (bool), its voxel count, r2, the signed distance (mm)
    and the confined soft-edge weight (float32)."""
    from .painting import _BALL_EDGE_RADII, _box_axes_mm, _confine, _edge_reach

    box, look = tumor.box, tumor.look
    assert look is not None
    shape = evaluate_shape(
        _box_axes_mm(box, tumor.centre, spacing), tumor.semi_axes_mm, tumor.distortion, ws
    )
    radius = float(np.prod(tumor.semi_axes_mm) ** (1.0 / 3.0))
    if look.irregularity > 0:
        displace_surface(shape.distance_mm, spacing, radius, look.irregularity,
                         look.lobe_scale, rng, ws)
        np.less_equal(shape.distance_mm, np.float32(0.0), out=shape.inside)
    liver = ws.get("liver", shape.inside.shape, np.bool_)
    np.greater(label[box], 0, out=liver)
    inside = shape.inside
    inside &= liver
    n_inside = int(np.count_nonzero(inside))
    centre = tuple(int(c - s.start) for c, s in zip(tumor.centre, box))
    forced = n_inside == 0
    if forced:  # never let a tumor vanish: keep its centre (as the reference path)
        inside[centre] = liver[centre]
        n_inside = int(inside[centre])
    reach = _edge_reach(look.edge_mm, spacing)
    local = _reach_box(bounding_box(inside), centre, reach, pad, box)
    inside, distance = inside[local], shape.distance_mm[local]
    r2 = shape.norm_radius_sq[local]
    if radius < _BALL_EDGE_RADII * look.edge_mm:
        weight = soft_edge_ball(distance, radius, look.edge_mm, ws)
    else:
        weight = soft_edge(distance, look.edge_mm, ws)
    if forced:
        force = tuple(c - s.start for c, s in zip(centre, local))
        weight[force] = max(float(weight[force]), 0.5)
    _confine(weight, inside, reach, ws)
    sub = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local))
    return sub, inside, n_inside, r2, distance, weight


def _change_compiled(
    label: np.ndarray, tumor: _Tumor, spacing: tuple[float, float, float], pad: list[float],
    rng: np.random.Generator, ws: Workspace,
) -> tuple[tuple[slice, ...], np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """``_change_numpy`` in compiled passes (``kernels_look``); contiguous reach-box arrays."""
    from . import kernels, kernels_look
    from .painting import _box_axes_mm, _edge_constants, _edge_reach, _shape_kernel_terms

    box, look = tumor.box, tumor.look
    assert look is not None
    axes_mm = _box_axes_mm(box, tumor.centre, spacing)
    dims = (len(axes_mm[0]), len(axes_mm[1]), len(axes_mm[2]))
    radius = float(np.prod(tumor.semi_axes_mm) ** (1.0 / 3.0))
    margin = _margin_arguments(dims, spacing, radius, look, rng, ws)
    grads = tuple(kernels.neighbours(len(x), x[1] - x[0] if len(x) > 1 else 1.0)
                  for x in axes_mm)
    terms = _shape_kernel_terms(axes_mm, tumor.semi_axes_mm, tumor.distortion)
    rho, labels = ws.get("k_rho", dims), label[box]
    r2_box, distance_box = ws.get("lk_r2_box", dims), ws.get("lk_distance_box", dims)
    kernels_look.shape_rho(terms, r2_box, rho)
    b = np.zeros(6, np.int64)
    n_inside = kernels_look.shape_region(grads, labels, margin, rho, r2_box, distance_box, b)
    centre = tuple(int(c - s.start) for c, s in zip(tumor.centre, box))
    forced = n_inside == 0
    if forced:  # never let a tumor vanish: keep its centre (as the reference path)
        n_inside = int(labels[centre] > 0)
        b[:] = [v for c in centre for v in (c, c + 1)] if n_inside else -1
    reach = _edge_reach(look.edge_mm, spacing)
    found = None if b[0] < 0 else tuple(slice(int(b[2 * a]), int(b[2 * a + 1]))
                                        for a in range(3))
    local = _reach_box(found, centre, reach, pad, box)
    sub_dims = tuple(s.stop - s.start for s in local)
    inside = ws.get("lk_inside", sub_dims, np.bool_)
    distance, r2 = ws.get("lk_distance", sub_dims), ws.get("lk_r2", sub_dims)
    kernels_look.crop_region(r2_box, distance_box, labels,
                             np.array([v for s in local for v in (s.start, s.stop)], np.int64),
                             look.irregularity > 0, r2, distance, inside)
    force = np.full(3, -1, np.int64)
    if forced:
        force[:] = [c - s.start for c, s in zip(centre, local)]
        inside[tuple(force)] = n_inside > 0
    reach_mask = kernels.box_dilate3(
        inside.view(np.uint8), reach[0], reach[1], reach[2],
        ws.get("k_reach", sub_dims, np.uint8), ws.get("k_tmp", sub_dims, np.uint8))
    weight = ws.get("edge", sub_dims)
    kernels_look.edge_weight(distance, reach_mask,
                             _edge_constants(tumor, look.edge_mm, 0.0), force, weight)
    sub = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local))
    return sub, inside, n_inside, r2, distance, weight


# (field, lattice, x / y / z lattice lookups, constants): ``kernels_look.shape_distance``'s margin
_MarginArguments = tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...],
                         tuple[np.ndarray, ...], np.ndarray]


def _margin_arguments(
    dims: tuple[int, int, int], spacing: tuple[float, float, float], radius: float, look: Look,
    rng: np.random.Generator, ws: Workspace,
) -> _MarginArguments:
    """The ``margin`` argument of ``kernels_look.shape_distance`` (same draws as
    ``margin.margin_displacement``): empty arrays for a smooth margin, the displacement field
    where its lattice is the voxel grid, else the lattice and its lookups."""
    from .kernels_texture import lattice_lookup

    empty3, no_lookup = np.zeros((0, 0, 0), np.float32), (np.zeros(0, np.int64),
                                                          np.zeros(0, np.float32))
    constants = np.array([REACH_STD, look.irregularity * radius], np.float32)
    if look.irregularity <= 0:
        return empty3, empty3, no_lookup, no_lookup, no_lookup, constants
    noise, positions = margin_noise(dims, spacing, radius, look.lobe_scale, rng, ws)
    if positions is None:
        field = ws.get("margin_field", dims)
        np.clip(noise, -REACH_STD, REACH_STD, out=field)
        field *= np.float32(look.irregularity * radius)
        return field, empty3, no_lookup, no_lookup, no_lookup, constants
    look_x, look_y, look_z = (tuple(t) for t in lattice_lookup(positions, noise.shape))
    return empty3, noise, look_x, look_y, look_z, constants
