"""Drawing one tumor's shape and place, and the box of voxels it occupies.

Boxes are tuples of voxel-index slices of the (x, y, z) array; sizes are millimetres,
converted with the spacing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

import numpy as np

from .appearance import Appearance, Look
from .margin import margin_reach_mm
from .painting import EDGE_TRUNCATE, _box_axes_mm, _shape_kernel_terms, _Tumor, compiled_backend
from .placement import LiverSites, bounding_box
from .profiles import SizeClass
from .satellites import draw_satellites
from .shape import Distortion, evaluate_shape
from .workspace import Workspace

_PROBE_MIN_VOXELS = 40_000  # tumor boxes smaller than this are not tightened

_T = TypeVar("_T")


def _three(values: Iterable[_T]) -> tuple[_T, _T, _T]:
    """The three per-axis values of an iterable, as a 3-tuple (its length checked)."""
    a, b, c = values
    return a, b, c


def _box_around(
    centre: np.ndarray, half_mm: np.ndarray, spacing: tuple[float, ...], limit: tuple[slice, ...]
) -> tuple[slice, slice, slice]:
    # Python numbers (tolist): the same float64 quotients and ceilings as NumPy's, without a
    # NumPy call per value
    half = [math.ceil(m / sp) for m, sp in zip(half_mm.tolist(), spacing)]
    return _three(
        slice(max(lim.start, c - h), min(lim.stop, c + h + 1))
        for c, h, lim in zip(centre.tolist(), half, limit)
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
    axes_mm = _box_axes_mm(loose, centre, spacing, step)
    cell_mm = float(np.linalg.norm(np.array(step) * spacing))
    # A voxel within 3 sigma of the surface is at most half a cell from a probe point, so that
    # point is within 3 sigma + half a cell (x 1.25: the distance estimate is not exact).
    near_mm = 1.25 * (EDGE_TRUNCATE * edge_sigma + 0.5 * cell_mm) + 1.0
    found: tuple[slice, ...] | None
    if compiled_backend():
        found = _probe_compiled(axes_mm, semi_axes, distortion, near_mm)
    else:
        found = bounding_box(evaluate_shape(axes_mm, semi_axes, distortion).distance_mm
                             <= near_mm)
    if found is None:
        return loose
    return _three(
        slice(max(s.start, s.start + f.start * st - st), min(s.stop, s.start + f.stop * st + st))
        for s, f, st in zip(loose, found, step)
    )


def _vessel_overlap(
    box: tuple[slice, ...], centre: np.ndarray, semi_axes: np.ndarray, distortion: Distortion,
    avoid: np.ndarray, spacing: tuple[float, float, float], ws: Workspace,
) -> int:
    """How many vessel voxels (``avoid``) the tumor's shape covers in its box (the liver
    aside), with the chosen backend."""
    axes_mm = _box_axes_mm(box, centre, spacing)
    if compiled_backend():
        from . import kernels

        terms = _shape_kernel_terms(axes_mm, semi_axes, distortion)
        return int(kernels.overlap_count(terms, avoid[box]))
    shape = evaluate_shape(axes_mm, semi_axes, distortion, ws)
    return int(np.count_nonzero(shape.inside & avoid[box]))


def _probe_compiled(
    axes_mm: tuple[np.ndarray, ...], semi_axes: np.ndarray, distortion: Distortion,
    limit_mm: float,
) -> tuple[slice, slice, slice] | None:
    """``bounding_box(evaluate_shape(...).distance_mm <= limit_mm)`` by one compiled pass
    (``kernels.probe_box``: the same float32 arithmetic and comparison)."""
    from . import kernels

    dims = tuple(len(x) for x in axes_mm)
    r2, distance = np.empty(dims, np.float32), np.empty(dims, np.float32)
    grads = tuple(kernels.neighbours(len(x), x[1] - x[0] if len(x) > 1 else 1.0)
                  for x in axes_mm)
    box = np.empty(6, np.int64)
    if not kernels.probe_box(_shape_kernel_terms(axes_mm, semi_axes, distortion), grads,
                             np.float32(limit_mm), r2, distance, box):
        return None
    start, stop = box[0::2].tolist(), box[1::2].tolist()
    return _three(slice(a, b) for a, b in zip(start, stop))


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
    half_mm = semi_axes + distortion.reach_mm() + EDGE_TRUNCATE * edge_sigma
    best: _Tumor | None = None
    best_overlap = np.inf
    for _ in range(max_retries + 1 if avoid is not None else 1):
        local = sites.draw(rng)
        if local is None:
            break
        centre = local + offset
        box = _tight_box(centre, semi_axes, distortion, half_mm, spacing, limit, edge_sigma)
        overlap = 0
        if avoid is not None and avoid[box].any():  # no vessel in the box: no overlap
            overlap = _vessel_overlap(box, centre, semi_axes, distortion, avoid, spacing, ws)
        if overlap < best_overlap:
            best = _Tumor(size_class, centre, semi_axes, sigma, distortion, box, [])
            best_overlap = overlap
        if overlap == 0:
            break
    if avoid is not None and best is not None:
        best.effects.append("vessel_avoidance" if best_overlap == 0 else "vessel_overlap")
    return best


def _box_edge(edge_sigma: float, look: Look | None, radius_mm: float) -> float:
    """The edge sigma that sizes a tumor's box: its own edge, plus a third of how far an
    irregular margin may move its surface (the box reaches 3 edge sigmas past the shape)."""
    if look is None:
        return edge_sigma
    return look.edge_mm + margin_reach_mm(look.irregularity, 1.25 * radius_mm) / 3.0


_SATELLITE = SizeClass("satellite", 3.0, (1, 1), (0.5, 0.5), integer_sigma=False)


def _satellites(
    parents: list[_Tumor],
    appearance: Appearance,
    rng: np.random.Generator,
    liver: np.ndarray,
    offset: np.ndarray,
    spacing: tuple[float, float, float],
    limit: tuple[slice, ...],
) -> list[_Tumor]:
    """Satellite nodules around the large tumors of ``parents``; each looks like its parent.
    liver: the liver mask (non-zero) of the ``limit`` box; offset: that box's corner (voxel
    indices)."""
    out = []
    for parent in parents:
        radius = float(np.prod(parent.semi_axes_mm) ** (1.0 / 3.0))
        found = draw_satellites(rng, appearance, parent.centre - offset, radius, spacing, liver)
        for local, semi_axes in found:
            centre = local + offset
            distortion = Distortion.draw(rng, 0.5)
            edge = _box_edge(0.0, parent.look, float(semi_axes.mean()))
            half_mm = semi_axes + distortion.reach_mm() + EDGE_TRUNCATE * edge
            box = _tight_box(centre, semi_axes, distortion, half_mm, spacing, limit, edge)
            out.append(_Tumor(_SATELLITE, centre, semi_axes, 0.5, distortion, box,
                              ["satellite"], parent.look))
    return out
