"""One tumor painted into the CT on its own box: the NumPy reference and the compiled path.

Each tumor's shape, soft edge, texture and HU change are evaluated on the tumor's own box (a few
times its volume), never on the whole image. Two implementations of the same arithmetic:
whole-box NumPy passes (the reference, ``_change_numpy``/``_apply_numpy``) and fused numba
kernels (``kernels.py``, ``kernels_texture.py``), chosen by ``BACKEND_VARIABLE``. They make the
same random draws in the same order, so a seed gives the same tumors either way: identical
labels, HU equal to within float rounding (``tests/test_synthesis_backends.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..conventions import TUMOR
from .appearance import Look
from .effects import (
    _CDF_FLOOR,
    _TRUNCATE,
    capsule_rim,
    necrotic_core,
    soft_edge,
    soft_edge_ball,
)
from .morphology import box_dilate
from .profiles import SizeClass
from .shape import Distortion, evaluate_shape
from .texture import TextureParams, texture_field
from .workspace import Workspace

if TYPE_CHECKING:
    from .synthesize import SynthesisConfig

EDGE_TRUNCATE = 3.0  # the soft edge reaches this many sigma beyond the surface
_BALL_EDGE_RADII = 8.0  # tumors smaller than this many edge sigmas get the curved-edge profile

#: Environment variable choosing how tumors are painted: "numba" (default: compiled kernels,
#: ``kernels.py``) or "numpy" (the reference implementation, whole-box NumPy passes). Same
#: draws and labels either way; HU agree to within rounding (parity-tested).
BACKEND_VARIABLE = "SYNTHTUMOR_SYNTHESIS_BACKEND"
BACKENDS = ("numba", "numpy")
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def compiled_backend() -> bool:
    """Whether tumors are painted by the compiled kernels (see ``BACKEND_VARIABLE``)."""
    backend = os.environ.get(BACKEND_VARIABLE, "numba").strip().lower() or "numba"
    if backend not in BACKENDS:
        raise ValueError(f"{BACKEND_VARIABLE}={backend!r}: choose one of {list(BACKENDS)}")
    return backend == "numba"


def kernels_compiled(appearance: bool = False) -> bool:
    """False when the next synthesis must compile its kernels first: the compiled backend with
    no compiled code in numba's cache (20-35 s on two cores, once per installation and
    version). appearance: the kernels of tumors with a drawn appearance instead."""
    if not compiled_backend():
        return True
    from .jit_options import on_disk

    if appearance:  # every tumor then takes paint_look's kernels
        from .kernels_look import shape_region

        return on_disk(shape_region)
    from .kernels import change_pass

    return on_disk(change_pass)


@dataclass
class _Tumor:
    size_class: SizeClass
    centre: np.ndarray  # voxel indices
    semi_axes_mm: np.ndarray
    sigma_mm: float
    distortion: Distortion
    box: tuple[slice, slice, slice]
    effects: list[str]
    look: Look | None = None  # the drawn appearance; None: the reference intensity


def _shared_parts(
    boxes: list[tuple[slice, ...]],
) -> tuple[list[tuple[slice, ...] | None], list[tuple[int, int]]]:
    """Per box, the bounding box (in its own coordinates) of its intersections with the boxes
    before it (None if none), and the pairs (i, j), j < i, of boxes that intersect, in order.

    Plain Python: a call has a few dozen boxes at most, and NumPy's cost per call on arrays
    this small was most of the time."""
    spans = [(x.start, x.stop, y.start, y.stop, z.start, z.stop) for x, y, z in boxes]
    parts: list[tuple[slice, ...] | None] = []
    pairs: list[tuple[int, int]] = []
    for i, (ax0, ax1, ay0, ay1, az0, az1) in enumerate(spans):
        # the smallest lower corner (each the larger of two starts) and the largest upper
        # corner of its intersections, from the box's far ends inwards
        x0, y0, z0, x1, y1, z1 = ax1, ay1, az1, ax0, ay0, az0
        before = len(pairs)
        for j in range(i):
            bx0, bx1, by0, by1, bz0, bz1 = spans[j]
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1 and az0 < bz1 and bz0 < az1:
                pairs.append((i, j))
                x0 = min(x0, bx0 if bx0 > ax0 else ax0)
                y0 = min(y0, by0 if by0 > ay0 else ay0)
                z0 = min(z0, bz0 if bz0 > az0 else az0)
                x1 = max(x1, bx1 if bx1 < ax1 else ax1)
                y1 = max(y1, by1 if by1 < ay1 else ay1)
                z1 = max(z1, bz1 if bz1 < az1 else az1)
        parts.append((slice(x0 - ax0, x1 - ax0), slice(y0 - ay0, y1 - ay0),
                      slice(z0 - az0, z1 - az0)) if len(pairs) > before else None)
    return parts, pairs


def _snapshots(
    out: np.ndarray, boxes: list[tuple[slice, ...]],
    shared_parts: list[tuple[slice, ...] | None], pairs: list[tuple[int, int]], ws: Workspace,
) -> list[np.ndarray | None]:
    """For each box with a shared part (``_shared_parts``): the CT under that part before any
    tumor is painted (the stronger change is measured against it), else None.

    Overlapping boxes are grouped (connected components of the graph of ``pairs``); each
    group's copy covers the bounding box of its members' shared parts, the only voxels ever
    read, and each member gets the view of its own part.
    """
    group = list(range(len(boxes)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, j in pairs:
        group[root(i)] = root(j)
    parts: dict[int, list[tuple[int, tuple[slice, ...]]]] = {}
    for i, (box, part) in enumerate(zip(boxes, shared_parts)):
        if part is not None:  # in absolute voxel coordinates
            where = tuple(slice(b.start + p.start, b.start + p.stop) for b, p in zip(box, part))
            parts.setdefault(root(i), []).append((i, where))
    views: list[np.ndarray | None] = [None] * len(boxes)
    for k, members in enumerate(parts.values()):
        union = tuple(slice(min(w[a].start for _, w in members),
                            max(w[a].stop for _, w in members)) for a in range(3))
        copy = ws.get(f"snapshot{k}", out[union].shape, out.dtype)
        np.copyto(copy, out[union])
        for i, where in members:
            views[i] = copy[tuple(slice(w.start - u.start, w.stop - u.start)
                                  for w, u in zip(where, union))]
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
    # integer offsets first (exact): one array operation per axis fewer
    return tuple(
        np.arange(s.start - int(c), s.stop - int(c), st) * sp
        for s, c, sp, st in zip(box, centre, spacing, step)
    )



def add_core_and_capsule(
    delta: np.ndarray, r2: np.ndarray, distance: np.ndarray, tumor: _Tumor,
    config: SynthesisConfig, rng: np.random.Generator,
) -> None:
    """The optional necrotic core and capsule rim of one tumor, added to ``delta`` (HU) in
    place and named in ``tumor.effects``. r2: normalised squared radius; distance: signed
    surface distance (mm); all on the tumor's box."""
    fx = config.effects
    if config.necrosis and tumor.semi_axes_mm.mean() >= fx.necrosis_min_radius_mm:
        core = necrotic_core(r2, float(rng.uniform(*fx.necrosis_fraction)))
        delta -= core * np.float32(rng.uniform(*fx.necrosis_hu))
        tumor.effects.append("necrosis")
    if config.capsule:
        rim = capsule_rim(distance, float(rng.uniform(*fx.capsule_width_mm)))
        delta += rim * np.float32(rng.uniform(*fx.capsule_hu))
        tumor.effects.append("capsule")


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

    original: the CT on ``shared`` before any tumor was painted (``_snapshots``; None when
    ``shared`` is); shared: the part of the box (box coordinates) that boxes painted earlier
    overlap, where the stronger change wins; None: the change is simply added.
    Returns the tumor's voxel count, centroid (voxel indices) and mean HU change.
    """
    if tumor.look is not None:  # a drawn appearance: margin, attenuation, heterogeneity
        from .paint_look import paint_look

        return paint_look(out, original, shared, label, tumor, spacing, rng, config, ws)
    box, fx = tumor.box, config.effects
    compiled = compiled_backend()
    extra = config.capsule or (
        config.necrosis and tumor.semi_axes_mm.mean() >= fx.necrosis_min_radius_mm)
    rows: np.ndarray | None = None  # the compiled change's per-row extents
    if compiled:
        # the optional effects read the distance and the change on the whole box
        delta, inside, n_inside, r2, distance, rows = _change_compiled(
            label, tumor, drop, edge_sigma, texture, spacing, rng, ws, full=extra)
    else:
        delta, inside, n_inside, r2, distance = _change_numpy(
            label, tumor, drop, edge_sigma, texture, spacing, rng, ws)
    add_core_and_capsule(delta, r2, distance, tumor, config, rng)
    if drop < 0:
        tumor.effects.append("bright")
    if extra or not compiled:  # the compiled change is already zero outside the liver
        delta *= label[box] > 0
    if extra:  # the effects may have changed voxels beyond the edge's reach: every row
        rows = None
    n_voxels, centroid, total = apply_change(compiled, out, original, shared, label, box, delta,
                                             inside, rows, ws)
    return n_voxels, centroid, total / max(n_inside, 1)


def apply_change(
    compiled: bool, out: np.ndarray, original: np.ndarray | None,
    shared: tuple[slice, ...] | None, label: np.ndarray, box: tuple[slice, ...],
    delta: np.ndarray, inside: np.ndarray, rows: np.ndarray | None, ws: Workspace,
) -> tuple[int, np.ndarray, float]:
    """Paint one tumor's change with the chosen backend (``_apply_compiled`` or
    ``_apply_numpy``): voxel count, centroid and summed change (HU). rows: the compiled pass's
    per-row k extents (2, nx, ny); None: every row in full."""
    if not compiled:
        return _apply_numpy(out, original, shared, label, box, delta, inside, ws)
    if rows is None:
        rows = np.zeros((2, *delta.shape[:2]), np.int64)
        rows[1] = delta.shape[2]
    return _apply_compiled(out, original, shared, label, box, delta, inside, rows)


def _apply_compiled(
    out: np.ndarray, original: np.ndarray | None, shared: tuple[slice, ...] | None,
    label: np.ndarray, box: tuple[slice, ...], delta: np.ndarray, inside: np.ndarray,
    rows: np.ndarray,
) -> tuple[int, np.ndarray, float]:
    """``_apply_numpy`` in one compiled pass (``kernels.paint_pass``) over each row's
    extent in ``rows`` (2, nx, ny): voxel count, centroid and summed change (HU)."""
    from .kernels import paint_pass

    bounds = np.zeros(6, np.int64)
    if shared is not None:
        bounds[:] = [v for part in shared for v in (part.start, part.stop)]
    # with no snapshot, an empty view of the same array type (one compiled signature)
    snapshot = out[box][:0, :0, :0] if original is None else original
    total, n_voxels, *sums = paint_pass(out[box], snapshot, bounds, label[box], delta, inside,
                                        np.uint8(TUMOR), rows)
    centroid = np.array([s.start for s in box]) + np.array(sums) / max(n_voxels, 1)
    return n_voxels, centroid, total


def _apply_numpy(
    out: np.ndarray, original: np.ndarray | None, shared: tuple[slice, ...] | None,
    label: np.ndarray, box: tuple[slice, ...], delta: np.ndarray, inside: np.ndarray,
    ws: Workspace,
) -> tuple[int, np.ndarray, float]:
    """Add one tumor's change to ``out`` and label it (the reference implementation of
    ``kernels.paint_pass``): returns its voxel count, centroid and summed change (HU)."""
    target = out[box]
    if shared is None:
        target += delta
        total = float(np.sum(delta, where=inside))
    else:
        # Where an earlier tumor's box overlaps, the stronger change (vs the CT before any
        # tumor) wins; elsewhere the change is simply added.
        assert original is not None  # a box that shares voxels has its snapshot (_snapshots)
        t, o, d = target[shared], original, delta[shared]
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
    np.copyto(label[box], np.uint8(TUMOR), where=inside)
    n_voxels, centroid = _count_and_centroid(inside, box)
    return n_voxels, centroid, total


def _edge_reach(edge_sigma: float, spacing: tuple[float, float, float]) -> list[int]:
    """Voxels per axis the edge may reach past the *labelled* tumor: 3 sigma (+1 voxel for the
    surface between voxel centres), as blurring the liver-clipped mask does in the reference.

    Where the shape leaves the liver, folds back near itself, or its first-order surface
    distance is loose, nothing may darken without a label nearby; a box dilation of the label
    guarantees it."""
    return [int(np.ceil(EDGE_TRUNCATE * edge_sigma / sp)) + 1 for sp in spacing]


def _change_numpy(
    label: np.ndarray, tumor: _Tumor, drop: float, edge_sigma: float, texture: TextureParams,
    spacing: tuple[float, float, float], rng: np.random.Generator, ws: Workspace,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """The reference implementation of one tumor's HU change on its box (whole-box NumPy
    passes): returns the change (float32, before clipping to the liver), the labelled tumor
    (bool), its voxel count, and the shape's r2 and signed distance (mm) for the effects."""
    box = tumor.box
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
    _confine(weight, inside, _edge_reach(edge_sigma, spacing), ws)
    weight *= texture_field(dims, spacing, texture, rng, ws)
    delta = weight
    delta *= np.float32(-drop)
    return delta, inside, n_inside, shape.norm_radius_sq, shape.distance_mm


def _change_compiled(
    label: np.ndarray, tumor: _Tumor, drop: float, edge_sigma: float, texture: TextureParams,
    spacing: tuple[float, float, float], rng: np.random.Generator, ws: Workspace,
    full: bool,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """``_change_numpy`` in four fused passes (numba), already zero outside the liver.

    Computes the change only within the edge's reach of the tumor; full: also the distance
    on the whole box and zeros in the change beyond the reach (for the optional effects),
    else both hold stale values there. Returns as ``_change_numpy``, then per row of the
    box the k extent [start, end) of the reach ((2, nx, ny) int64), outside which the change
    is zero."""
    from . import kernels, kernels_texture

    box = tumor.box
    axes_mm = _box_axes_mm(box, tumor.centre, spacing)
    nx, ny, nz = (len(x) for x in axes_mm)
    dims = (nx, ny, nz)
    terms = _shape_kernel_terms(axes_mm, tumor.semi_axes_mm, tumor.distortion)
    r2, rho = ws.get("r2", dims), ws.get("k_rho", dims)
    inside, labels = ws.get("inside", dims, np.bool_), label[box]
    # never let a tumor vanish: if nothing is inside, its centre is kept (as _change_numpy)
    centre = np.array([int(c - s.start) for c, s in zip(tumor.centre, box)], np.int64)
    rows = ws.get("k_rows", (2, nx, ny), np.int64)
    reach, n_inside, forced = kernels.shape_and_reach(
        terms, labels, centre, np.array(_edge_reach(edge_sigma, spacing), np.int64),
        r2, rho, inside, ws.get("k_reach", dims, np.uint8), ws.get("k_tmp", dims, np.uint8),
        rows)
    force = centre if forced else np.full(3, -1, np.int64)
    lattice = kernels_texture.lattice_values(dims, spacing, texture, rng, ws)
    look_x, look_y, look_z = kernels_texture.voxel_lookup(dims, spacing, texture, lattice.shape)
    grad_x, grad_y, grad_z = (kernels.neighbours(len(x), x[1] - x[0] if len(x) > 1 else 1.0)
                              for x in axes_mm)
    distance, delta = ws.get("distance", dims), ws.get("edge", dims)
    kernels.change_pass(rho, reach, labels, grad_x, grad_y, grad_z, lattice, look_x, look_y, look_z,
                        ws.get("k_planes", (lattice.shape[0], *dims[1:])),
                        _edge_constants(tumor, edge_sigma, drop), force, rows, full, distance,
                        delta)
    return delta, inside, n_inside, r2, distance, rows


def _shape_kernel_terms(
    axes_mm: tuple[np.ndarray, ...], semi_axes_mm: np.ndarray, distortion: Distortion
) -> tuple[np.ndarray, ...]:
    """``shape.shape_terms`` as the kernels take them, for the compiled backend's calls: per
    axis the 1-D line and its two tables as 2-D arrays over the two axes each spans
    (``shape.plane_tables`` unbroadcast, computed by ``kernels_shape.shape_tables``: the
    same bits)."""
    from .kernels_shape import shape_tables

    x, y, z = axes_mm
    result: tuple[np.ndarray, ...] = shape_tables(
        x, y, z, np.asarray(semi_axes_mm, np.float64),
        np.ascontiguousarray(distortion.control_mm, np.float64))
    return result


def _edge_constants(tumor: _Tumor, edge_sigma: float, drop: float) -> np.ndarray:
    """The ``kernels.change_pass`` edge parameters, as the NumPy edge functions compute them."""
    radius = float(np.prod(tumor.semi_axes_mm) ** (1.0 / 3.0))
    ball = radius < _BALL_EDGE_RADII * edge_sigma
    # float64 values, each rounded once to float32 by the array (as np.float32(value) would)
    values = [
        1.0 if ball else 0.0,
        1.0 / edge_sigma,
        radius,
        0.05 * edge_sigma**2 / radius,
        edge_sigma / _SQRT_2PI,
        radius + _TRUNCATE * edge_sigma,
        _CDF_FLOOR,
        1.0 / (1.0 - 2.0 * _CDF_FLOOR),
        -drop,
    ]
    return np.array(values, dtype=np.float32)
