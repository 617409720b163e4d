"""The per-tumor set-up computed in batches gives the same bytes as computed one by one."""

from __future__ import annotations

import numpy as np
from conftest import Case

from synthtumor.synthesis.painting import _shape_kernel_terms
from synthtumor.synthesis.placement import LiverSites, bounding_box
from synthtumor.synthesis.shape import PLANES, Distortion, _basis, shape_terms
from synthtumor.synthesis.workspace import Workspace


def _one_by_one(axes_mm, semi_axes_mm, distortion):
    """Each line and table on its own: x / a per axis, and basis_i @ C @ basis_j.T / a per
    table, summed over k = 0, 1, 2 in order (the plain definition)."""
    a = np.asarray(semi_axes_mm, dtype=np.float64)
    basis = [_basis(x / (2.0 * a[i])) for i, x in enumerate(axes_mm)]
    lines = [(x / a[i]).astype(np.float32) for i, x in enumerate(axes_mm)]
    tables = {}
    for plane, (i, j) in enumerate(PLANES):
        for k, axis in enumerate((i, j)):
            control = distortion.control_mm[plane, k]
            inner = basis[i][:, 0, None] * control[0]
            inner = inner + basis[i][:, 1, None] * control[1]
            inner = inner + basis[i][:, 2, None] * control[2]
            table = inner[:, 0, None] * basis[j][:, 0]
            table = table + inner[:, 1, None] * basis[j][:, 1]
            table = table + inner[:, 2, None] * basis[j][:, 2]
            # the definition is the matrix product, whichever way a BLAS sums it
            np.testing.assert_allclose(table, basis[i] @ control @ basis[j].T, rtol=1e-12,
                                       atol=1e-12)
            tables[plane, k] = (table / a[axis]).astype(np.float32)
    return lines, tables


def _boxes(rng: np.random.Generator, n: int):
    for _ in range(n):
        dims = rng.integers(1, 90, 3)
        spacing = rng.uniform(0.6, 3.0, 3)
        centre = rng.integers(0, 60, 3)
        start = centre - rng.integers(0, dims + 1)
        axes = tuple((np.arange(s, s + d) - c) * sp
                     for s, d, c, sp in zip(start, dims, centre, spacing))
        yield axes, rng.uniform(1.0, 40.0, 3), Distortion.draw(rng, float(rng.uniform(0.2, 8.0)))


def test_batched_shape_terms_equal_the_tables_one_by_one() -> None:
    """Stacked tables and one division for the three lines give bit-identical float32 terms:
    NumPy's broadcast form (``shape.shape_terms``, the reference) and the kernels' 2-D form
    (compiled, ``kernels_shape.shape_tables``)."""
    for axes, semi, distortion in _boxes(np.random.default_rng(12), 300):
        lines, tables = _one_by_one(axes, semi, distortion)
        got_lines, got_tables = shape_terms(axes, semi, distortion)
        expected_kernel = (lines[0], tables[0, 0], tables[2, 0], lines[1], tables[0, 1],
                           tables[1, 0], lines[2], tables[1, 1], tables[2, 1])
        kernel = _shape_kernel_terms(axes, semi, distortion)
        for got, want in zip(kernel, expected_kernel, strict=True):
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert np.array_equal(got, want)
        for axis in range(3):
            assert np.array_equal(got_lines[axis].ravel(), lines[axis])
            planes = [p for p, pair in enumerate(PLANES) if axis in pair]
            for got, plane in zip(got_tables[axis], planes):
                want = tables[plane, PLANES[plane].index(axis)]
                assert got.ndim == 3 and np.array_equal(np.squeeze(got), np.squeeze(want))


def test_batched_reach_equals_the_tables_one_by_one() -> None:
    """Distortion.reach_mm: the six tables' peaks summed per axis, exactly as one by one."""
    fine = _basis(np.linspace(-1.0, 1.0, 17))
    rng = np.random.default_rng(3)
    for _ in range(500):
        distortion = Distortion.draw(rng, float(rng.uniform(0.1, 10.0)))
        want = np.zeros(3)
        for plane, axes in enumerate(PLANES):
            for k, axis in enumerate(axes):
                want[axis] += np.abs(fine @ distortion.control_mm[plane, k] @ fine.T).max()
        assert np.array_equal(distortion.reach_mm(), want)


def test_sites_on_the_cropped_liver_draw_the_same_centres(totalseg_3mm: Case) -> None:
    """LiverSites told that the mask is its own bounding box (no extent pass) draws the same
    centres, in the liver, as when it finds the extent itself, on the real liver."""
    box = bounding_box(totalseg_3mm.liver)
    liver = totalseg_3mm.liver[box] > 0
    found = LiverSites(liver, totalseg_3mm.spacing)
    told = LiverSites(liver, totalseg_3mm.spacing, tight=True)
    assert (told.cc_start, told.cc_end) == (found.cc_start, found.cc_end)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(200):
        centre = told.draw(a)
        assert np.array_equal(centre, found.draw(b))
        assert centre.dtype == np.intp and liver[tuple(centre)]


def test_workspace_dtype_spellings_share_one_buffer() -> None:
    """np.float32, "float32" and np.dtype("float32") name the same buffer."""
    ws = Workspace()
    first = ws.get("x", (4, 5), np.float32)
    assert np.shares_memory(first, ws.get("x", (20,), "float32"))
    assert np.shares_memory(first, ws.get("x", (2, 2), np.dtype("float32")))
    assert ws.get("x", (3,), np.uint8).dtype == np.uint8
    assert ws.nbytes() == 20 * 4 + 3
