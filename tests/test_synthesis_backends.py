"""The compiled synthesis kernels (numba) against the NumPy reference implementation."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import DICOM_DIR, DICOM_ORGANS, TS_CT, TS_LIVER, TS_ORGANS, Case

from synthtumor.imaging import read_ct, read_mask
from synthtumor.synthesis import SynthesisConfig, SynthesisWarning, synthesize
from synthtumor.synthesis.kernels import box_dilate3
from synthtumor.synthesis.kernels_texture import texture_lattice as compiled_lattice
from synthtumor.synthesis.morphology import box_dilate
from synthtumor.synthesis.synthesize import BACKEND_VARIABLE
from synthtumor.synthesis.texture import TextureParams, texture_lattice
from synthtumor.synthesis.workspace import Workspace

TYPES = ("tiny", "small", "medium", "large", "mix")
HU_TOLERANCE = 0.5


def _both(monkeypatch: pytest.MonkeyPatch, case: Case, config: SynthesisConfig, seed: int,
          inplace: bool):
    results = {}
    for backend in ("numpy", "numba"):
        monkeypatch.setenv(BACKEND_VARIABLE, backend)
        ct, liver = (case.ct.copy(), case.liver.copy()) if inplace else (case.ct, case.liver)
        results[backend] = synthesize(ct, liver, np.random.default_rng(seed), config,
                                      affine=case.affine, inplace=inplace)
    return results["numpy"], results["numba"]


def _assert_parity(reference, compiled) -> None:
    assert np.array_equal(reference.label, compiled.label)
    assert np.abs(reference.ct - compiled.ct).max() <= HU_TOLERANCE
    assert reference.params == compiled.params
    assert len(reference.tumors) == len(compiled.tumors)
    for a, b in zip(reference.tumors, compiled.tumors):
        assert (a.volume_ml, a.centre_voxel, a.effects) == (b.volume_ml, b.centre_voxel, b.effects)
        assert np.allclose(a.centre_mm, b.centre_mm, atol=2e-3)
        assert abs(a.mean_hu_change - b.mean_hu_change) <= 0.01


@pytest.mark.parametrize("inplace", [True, False], ids=["inplace", "default"])
@pytest.mark.parametrize("tumor_type", TYPES)
def test_compiled_kernels_match_the_numpy_reference(
    monkeypatch: pytest.MonkeyPatch, totalseg_1mm: Case, tumor_type: str, inplace: bool
) -> None:
    """Same seed: identical labels, HU within 0.5, same records, for every tumor type."""
    config = SynthesisConfig(tumor_type=tumor_type)
    for seed in range(3):
        reference, compiled = _both(monkeypatch, totalseg_1mm, config, seed, inplace)
        assert (reference.label == 2).any()
        _assert_parity(reference, compiled)


@pytest.mark.parametrize("full", [False, True])
def test_compiled_change_keeps_a_tumor_by_its_centre_as_numpy(full: bool) -> None:
    """A tumor that covers no voxel centre (0.3 mm, moved 0.6 mm off its centre voxel) keeps
    that voxel, with a weight of at least 0.5: the compiled pass, which sets that voxel after
    its vectorised loop, gives the NumPy reference's change there and everywhere else."""
    from synthtumor.synthesis.painting import _change_compiled, _change_numpy, _Tumor
    from synthtumor.synthesis.profiles import PROFILES
    from synthtumor.synthesis.shape import Distortion

    control = np.zeros((3, 2, 3, 3))
    control[0, 0] = 0.6  # the first plane's first axis: a shift of 0.6 mm
    tumor = _Tumor(PROFILES["tiny"], np.array([8, 8, 8]), np.full(3, 0.3), 1.0,
                   Distortion(control), (slice(2, 15), slice(2, 15), slice(2, 15)), [])
    label = np.ones((17, 17, 17), np.uint8)
    texture = TextureParams(sigma_a_mm=3, sigma_b_mm=4, scale=0.2, base=0.05, u0=0.52)
    ref = _change_numpy(label, tumor, 100.0, 1.0, texture, (1.0, 1.0, 1.0),
                        np.random.default_rng(0), Workspace())
    new = _change_compiled(label, tumor, 100.0, 1.0, texture, (1.0, 1.0, 1.0),
                           np.random.default_rng(0), Workspace(), full)
    centre = (6, 6, 6)  # box coordinates
    for inside, n_inside in ((ref[1], ref[2]), (new[1], new[2])):
        assert n_inside == 1 and inside[centre] and inside.sum() == 1
    rows = new[5]
    within = np.zeros(ref[0].shape, bool)
    for i, j in np.ndindex(rows.shape[1:]):
        within[i, j, rows[0, i, j]:rows[1, i, j]] = True
    assert within[centre] and np.abs(ref[0][within] - new[0][within]).max() <= 1e-3
    assert not ref[0][~within].any()  # the compiled pass leaves zeros, or stale values, there
    assert ref[0][centre] == pytest.approx(new[0][centre], abs=1e-4) and ref[0][centre] < -5


def test_compiled_kernels_match_with_every_effect(
    monkeypatch: pytest.MonkeyPatch, totalseg_1mm: Case
) -> None:
    """Mass effect, capsule, necrosis and bright tumors (NumPy steps on the compiled change)."""
    for seed, kind in ((1, "large"), (2, "mix")):
        config = SynthesisConfig.realistic(tumor_type=kind, avoid_vessels=False,
                                           bright_probability=0.5)
        reference, compiled = _both(monkeypatch, totalseg_1mm, config, seed, inplace=False)
        _assert_parity(reference, compiled)


def test_compiled_kernels_match_with_capsule_and_necrosis_without_appearance(
    monkeypatch: pytest.MonkeyPatch, totalseg_1mm: Case
) -> None:
    """Capsule and necrosis on the compiled change (no appearance model): the capsule rim reads
    the surface distance beyond the edge's reach, where the compiled change alone is skipped."""
    for seed, kind in ((0, "large"), (3, "mix"), (4, "small")):
        config = SynthesisConfig(tumor_type=kind, capsule=True, necrosis=True, mass_effect=True,
                                 bright_probability=0.5)
        reference, compiled = _both(monkeypatch, totalseg_1mm, config, seed, inplace=True)
        assert any("capsule" in t.effects for t in compiled.tumors)
        _assert_parity(reference, compiled)


def test_compiled_kernels_match_on_an_anisotropic_float64_ct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The contrast DICOM series (0.98 x 0.98 x 2 mm, no resampling), float64 CT in place."""
    ct = read_ct(DICOM_DIR)
    liver = (read_mask(DICOM_ORGANS, ct, label=TS_LIVER).array > 0).astype(np.uint8)
    case = Case(ct.array.astype(np.float64), liver, ct.affine)
    for seed, kind in enumerate(TYPES):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SynthesisWarning)  # the 20-slice liver is thin
            reference, compiled = _both(monkeypatch, case, SynthesisConfig(tumor_type=kind),
                                        seed, inplace=True)
        assert compiled.ct.dtype == np.float64 and (compiled.label == 2).any()
        _assert_parity(reference, compiled)


def test_compiled_kernels_match_with_vessel_avoidance_on_contrast_ct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The --realistic preset on the contrast series, whose vessels are detected and avoided
    (placement's overlap count and the mass effect compiled)."""
    ct = read_ct(DICOM_DIR)
    liver = (read_mask(DICOM_ORGANS, ct, label=TS_LIVER).array > 0).astype(np.uint8)
    case = Case(ct.array.astype(np.float32), liver, ct.affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SynthesisWarning)
        reference, compiled = _both(monkeypatch, case, SynthesisConfig.realistic(
            tumor_type="small"), 0, inplace=False)
    assert reference.params["vessel_voxels"] > 1000
    assert any("vessel_avoidance" in t.effects or "vessel_overlap" in t.effects
               for t in compiled.tumors)
    _assert_parity(reference, compiled)


def test_unknown_backend_is_refused(monkeypatch: pytest.MonkeyPatch, totalseg_3mm: Case) -> None:
    monkeypatch.setenv(BACKEND_VARIABLE, "cuda")
    with pytest.raises(ValueError, match=BACKEND_VARIABLE):
        synthesize(totalseg_3mm.ct, totalseg_3mm.liver, np.random.default_rng(0),
                   affine=totalseg_3mm.affine)


@pytest.mark.parametrize("shape, reach", [((9, 1, 13), (2, 3, 0)), ((30, 22, 17), (4, 1, 5)),
                                          ((3, 40, 8), (5, 5, 9)), ((130, 6, 5), (125, 2, 1))])
def test_compiled_box_dilation_equals_numpy(shape, reach) -> None:
    mask = np.random.default_rng(1).random(shape) > 0.97
    out, tmp = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
    got = box_dilate3(mask.view(np.uint8), *reach, out, tmp)
    assert np.array_equal(got.view(bool), box_dilate(mask, reach))


@pytest.mark.parametrize("reach", [0, 1, 6, 121])
def test_reach_of_a_labelled_tumor_equals_its_box_dilation(reach: int) -> None:
    """The edge's reach as ``shape_and_reach`` builds it, from the rows' extents (one run per
    row written at once, window counts along x and y, ORs past a reach of 120), equals the
    box dilation within the widened extents, for a mask with gaps and empty rows."""
    from synthtumor.synthesis.kernels_reach import (
        EMPTY,
        dilate_planes,
        dilate_rows_where,
        dilate_y_within,
        widen_rows,
    )

    rng = np.random.default_rng(reach)
    mask = (rng.random((14, 12, 30)) > 0.9).astype(np.uint8)
    mask[3, 4, 5:20] = 1  # one run
    mask[2] = 0  # empty rows
    rows = np.full((2, 14, 12), EMPTY, np.int64)
    rows[1] = -EMPTY
    for i, j in zip(*np.nonzero(mask.any(axis=2))):
        k = np.flatnonzero(mask[i, j])
        rows[:, i, j] = k[0], k[-1] + 1
    out, tmp = np.empty_like(mask), np.empty_like(mask)
    dilate_rows_where(mask, out, reach, rows)
    dilate_planes(out.reshape(14, -1), tmp.reshape(14, -1), reach)
    widen_rows(rows, reach, reach, reach, 30, np.empty_like(rows))
    dilate_y_within(tmp, out, reach, rows)
    expected = box_dilate(mask.astype(bool), [reach] * 3)
    for i, j in np.ndindex(14, 12):
        k0, k1 = rows[:, i, j]
        assert np.array_equal(out[i, j, k0:k1].view(bool), expected[i, j, k0:k1])
        assert not expected[i, j, :k0].any() and not expected[i, j, k1:].any()


def test_inline_exp_and_normal_cdf_are_accurate() -> None:
    """The kernels' inline exp (its power of two built from exponent bits) is within 1e-7
    relative of the exact value over its whole range (clamped at -87, exactly 1 at 0), and
    the soft edge's normal CDF within 1.2e-7 of NumPy's float32 tanh form."""
    from numba import njit

    from synthtumor.synthesis.effects import _normal_cdf
    from synthtumor.synthesis.kernels_edge import exp_neg, normal_cdf

    @njit
    def apply(f, x, out):  # type: ignore[no-untyped-def]
        for k in range(x.shape[0]):
            out[k] = f(x[k])

    x = np.linspace(-100.0, 0.0, 400_001).astype(np.float32)
    got = np.empty_like(x)
    apply(exp_neg, x, got)
    exact = np.exp(np.maximum(x, -87.0).astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < 1e-7
    assert got[-1] == 1.0
    t = np.linspace(-9.0, 9.0, 400_001).astype(np.float32)
    apply(normal_cdf, t, got)
    assert np.max(np.abs(got - _normal_cdf(t.copy()))) <= 1.2e-7


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_z_slopes_equal_the_gradient_on_any_stretch(n: int) -> None:
    """``kernels.z_slopes`` (interior neighbours read as k +- 1, the faces one-sided) gives
    ``np.gradient``'s values, bit for bit with the index-array form the kernels used, on
    every stretch [k0, k1) of a row, and writes nothing outside it."""
    from synthtumor.synthesis.kernels import neighbours, z_slopes

    row = np.random.default_rng(n).normal(size=n).astype(np.float32)
    high, low, factor = neighbours(n, 1.5)
    via_indices = (row[high] - row[low]) * factor
    if n > 1:
        np.testing.assert_allclose(via_indices, np.gradient(row, 1.5), rtol=1e-6)
    for k0 in range(n + 1):
        for k1 in range(k0, n + 1):
            out = np.full(n, np.nan, np.float32)
            z_slopes(row, factor, np.uint64(k0), np.uint64(k1), out)
            assert out[k0:k1].tobytes() == via_indices[k0:k1].tobytes()
            assert np.isnan(out[:k0]).all() and np.isnan(out[k1:]).all()


def test_edge_weight_is_zero_beyond_each_rows_reach() -> None:
    """``kernels_look.edge_weight`` computes the weight only between each row's first and
    last reach voxel: the same weights as on every voxel, zero outside the reach (including
    a row's gaps and rows without reach), a forced voxel raised to 0.5 only within reach."""
    from synthtumor.synthesis.effects import _CDF_FLOOR, soft_edge
    from synthtumor.synthesis.kernels_look import edge_weight

    rng = np.random.default_rng(3)
    distance = rng.uniform(-4.0, 4.0, (6, 5, 20)).astype(np.float32)
    reach = (rng.random((6, 5, 20)) > 0.4).astype(np.uint8)
    reach[1] = 0  # rows without reach
    reach[2, 2] = 0
    reach[2, 2, [3, 15]] = 1  # a row with a gap between its ends
    sigma = 1.0
    # a flat profile (painting._edge_constants' layout: only kind, 1 / sigma and the CDF's
    # floor and scale are read)
    edge = np.array([0.0, 1.0 / sigma, 10.0, 0.0, 0.0, 13.0, _CDF_FLOOR,
                     1.0 / (1.0 - 2.0 * _CDF_FLOOR), 0.0], np.float32)
    force = np.array([1, 0, 7], np.int64)  # in a row without reach: nothing to force
    weight = np.full(distance.shape, np.nan, np.float32)
    edge_weight(distance, reach, edge, force, weight)
    expected = np.where(reach != 0, soft_edge(distance, sigma), np.float32(0.0))
    np.testing.assert_allclose(weight, expected, atol=2e-7)
    assert not weight[reach == 0].any()
    distance[2, 2, 15] = 2.5  # far outside: a weight near 0, raised to 0.5 when forced
    force[:] = [2, 2, 15]
    edge_weight(distance, reach, edge, force, weight)
    assert weight[2, 2, 15] == np.float32(0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_mass_effect_equals_map_coordinates(dtype, totalseg_3mm: Case) -> None:
    """The one-pass warp against ``mass_effect_warp`` (scipy's map_coordinates) on strided
    boxes of the real CT and its liver, anisotropic voxels, centres at and near the box edge:
    the same labels and the same HU (both interpolate in float64 from the same float32 points)."""
    from synthtumor.synthesis.effects import mass_effect_warp
    from synthtumor.synthesis.kernels_warp import mass_effect_pass

    ct, liver = totalseg_3mm.ct.astype(dtype), totalseg_3mm.liver
    rng = np.random.default_rng(3)
    for _ in range(6):
        start = [int(rng.integers(0, n - 12)) for n in ct.shape]
        box = tuple(slice(a, min(a + int(rng.integers(8, 40)), n))
                    for a, n in zip(start, ct.shape))
        image, labels = ct[box].copy(), liver[box].copy()
        centre = np.array([int(rng.integers(0, s.stop - s.start)) for s in box])
        spacing = tuple(float(v) for v in rng.uniform(0.7, 3.0, 3))
        semi_axes = rng.uniform(3.0, 25.0, 3)
        strength = float(rng.uniform(0.08, 0.2))
        expected_ct, expected_labels = mass_effect_warp(image, labels, centre, semi_axes,
                                                        spacing, strength, 2.5)
        target_ct, target_labels = ct.copy(), liver.copy()
        moved = mass_effect_pass(target_ct[box], target_labels[box], image, labels,
                                 centre.astype(np.float32),
                                 np.array([*spacing, *semi_axes], np.float32), strength, 2.5)
        assert 0 < moved <= image.size
        assert np.array_equal(target_labels[box], expected_labels)
        assert np.array_equal(target_ct[box], expected_ct)
        assert (expected_ct != image).any()  # something moved


def test_compiled_vessel_overlap_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placement's vessel overlap count, compiled vs NumPy shape, on the contrast series'
    detected vessels (anisotropic voxels), for distorted tumors of every size class."""
    from synthtumor.synthesis.placement import find_vessels
    from synthtumor.synthesis.profiles import PROFILES
    from synthtumor.synthesis.shape import Distortion
    from synthtumor.synthesis.siting import _box_around, _vessel_overlap

    ct = read_ct(DICOM_DIR)
    liver = read_mask(DICOM_ORGANS, ct, label=TS_LIVER).array > 0
    vessels = find_vessels(ct.array, liver, ct.spacing)
    rng = np.random.default_rng(5)
    points = np.argwhere(vessels)
    full = tuple(slice(0, n) for n in vessels.shape)
    counts = []
    for size_class in PROFILES["mix"]:
        for _ in range(4):
            semi_axes = size_class.draw_semi_axes_mm(rng)
            distortion = Distortion.draw(rng, size_class.draw_elastic_sigma_mm(rng))
            centre = points[rng.integers(len(points))]
            box = _box_around(centre, semi_axes + distortion.reach_mm(), ct.spacing, full)
            both = []
            for backend in ("numpy", "numba"):
                monkeypatch.setenv(BACKEND_VARIABLE, backend)
                both.append(_vessel_overlap(box, centre, semi_axes, distortion, vessels,
                                            ct.spacing, Workspace()))
            assert both[0] == both[1]
            counts.append(both[0])
    assert max(counts) > 0  # centred on vessels: they overlap


def test_compiled_probe_box_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placement's tight box (a coarse probe of the shape, then the box of the probe points
    near its surface), compiled vs NumPy, for tumors of every size class on isotropic and
    anisotropic grids; and a probe grid far from the tumor finds no box."""
    from synthtumor.synthesis.profiles import PROFILES
    from synthtumor.synthesis.shape import Distortion
    from synthtumor.synthesis.siting import _box_around, _probe_compiled, _tight_box

    rng = np.random.default_rng(11)
    limit = tuple(slice(0, 200) for _ in range(3))
    tightened = 0
    for spacing in ((1.0, 1.0, 1.0), (0.7, 0.7, 2.5)):
        for size_class in PROFILES["mix"]:
            for _ in range(3):
                semi_axes = size_class.draw_semi_axes_mm(rng)
                distortion = Distortion.draw(rng, size_class.draw_elastic_sigma_mm(rng))
                centre = rng.integers(60, 140, 3)
                half_mm = semi_axes + distortion.reach_mm() + 3.0 * 2.0
                both = []
                for backend in ("numpy", "numba"):
                    monkeypatch.setenv(BACKEND_VARIABLE, backend)
                    both.append(_tight_box(centre, semi_axes, distortion, half_mm, spacing,
                                           limit, 2.0))
                assert both[0] == both[1]
                loose = _box_around(centre, half_mm, spacing, limit)
                tightened += both[0] != loose
    assert tightened >= 6  # the large boxes were tightened
    far = tuple(np.arange(40.0, 57.0, 4.0) for _ in range(3))  # >= 65 mm from its surface
    ball = (np.full(3, 4.0), Distortion(np.zeros((3, 2, 3, 3))))
    assert _probe_compiled(far, *ball, 60.0) is None
    assert _probe_compiled(far, *ball, 64.0) == (slice(0, 1),) * 3  # the nearest corner


@pytest.mark.parametrize("sigma_a", [3, 9, 15])
@pytest.mark.parametrize("sigma_b", [4, 7])
def test_compiled_texture_lattice_equals_numpy(sigma_a: int, sigma_b: int) -> None:
    """Same draws, same lattice to float32 rounding, on an anisotropic box."""
    params = TextureParams(sigma_a, sigma_b, 0.2, 0.05, 0.52)
    for shape in ((40, 31, 12), (2, 5, 60)):
        b, positions = texture_lattice(shape, (0.8, 0.8, 2.5), params,
                                       np.random.default_rng(4), Workspace())
        b2, positions2 = compiled_lattice(shape, (0.8, 0.8, 2.5), params,
                                          np.random.default_rng(4), Workspace())
        assert np.abs(b - b2).max() < 1e-5
        assert all(np.array_equal(p, q) for p, q in zip(positions, positions2))


@pytest.mark.parametrize("half", [(2, 2), (0, 3), (4, 1), (9, 9)])
def test_square_erosion_equals_the_minimum_filter(half) -> None:
    """Placement's shifted-AND erosion is the minimum filter with mode "nearest" (the border
    does not erode), on a real liver slice and on noise."""
    from scipy import ndimage as ndi

    from synthtumor.synthesis.placement import _erode_square

    liver = read_mask(TS_ORGANS, read_ct(TS_CT), label=TS_LIVER).array > 0
    centre = [int(np.median(v)) for v in np.nonzero(liver)]  # slices through the liver
    planes = [liver[:, :, centre[2]], liver[:, centre[1], :],
              np.random.default_rng(2).random((17, 5)) > 0.2]
    for plane in planes:
        assert plane.sum() > 50  # something to erode
        expected = plane
        for axis, h in enumerate(half):
            if h:
                expected = ndi.minimum_filter1d(expected, 2 * h + 1, axis=axis, mode="nearest")
        assert np.array_equal(_erode_square(plane, list(half)), expected)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.float32])
def test_bounding_box_of_any_mask(dtype) -> None:
    """The uint8-reduced bounding box equals the box of the non-zero voxels, for contiguous and
    strided masks of every dtype, and None for an empty mask."""
    from synthtumor.synthesis.placement import bounding_box

    mask = np.zeros((30, 20, 25), dtype)
    mask[4, 7, 11] = 2
    mask[20, 4, 19] = 1
    for view in (mask, mask[::2, :, ::-1], np.transpose(mask, (2, 0, 1))):
        hits = np.argwhere(view != 0)
        expected = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(hits.min(0), hits.max(0)))
        assert bounding_box(view) == expected
    assert bounding_box(np.zeros((4, 0, 3), dtype)) is None
    assert bounding_box(np.zeros((4, 5, 3), dtype)) is None


@pytest.mark.parametrize("nx", [1, 3, 4, 7, 9])
def test_mask_profiles_equal_numpys_ors(nx: int) -> None:
    """The compiled profiles (four planes at a time, then the rest one by one) equal NumPy's
    ORs over the planes and the columns, values above 1 included."""
    from synthtumor.synthesis.kernels import mask_profiles

    rng = np.random.default_rng(nx)
    mask = (rng.random((nx, 11, 13)) < 0.02).astype(np.uint8)
    mask[nx - 1, 3, 5] = 2  # the last plane: in the remainder unless nx is a multiple of 4
    outer, plane = mask_profiles(mask)
    assert np.array_equal(outer, np.bitwise_or.reduce(mask.reshape(nx, -1), axis=1))
    assert np.array_equal(plane, np.bitwise_or.reduce(mask, axis=0))
    assert outer[nx - 1] & 2 and plane[3, 5] & 2


def test_kernel_cache_is_dropped_when_any_kernel_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numba checks a cached kernel against its own file only; the guard ties the kernels'
    cache to all of their sources, and removes nothing but those cache files."""
    from synthtumor.synthesis.jit_options import refresh_kernel_cache

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    (tmp_path / "kernels.py").write_text("a = 1\n")
    (tmp_path / "kernels_reach.py").write_text("b = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    ours = [cache / "kernels.change_pass-219.py311.nbi",
            cache / "kernels.change_pass-219.py311.1.nbc"]
    kept = [cache / "kernels.cpython-311.pyc", cache / "other.f-1.py311.nbi"]
    for path in ours + kept:
        path.write_bytes(b"x")
    assert refresh_kernel_cache(tmp_path)  # no record of the sources: dropped
    assert not any(p.exists() for p in ours) and all(p.exists() for p in kept)
    for path in ours:
        path.write_bytes(b"x")  # compiled again, from these sources
    assert not refresh_kernel_cache(tmp_path) and all(p.exists() for p in ours)
    (tmp_path / "kernels_reach.py").write_text("b = 2\n")  # a callee's module changes
    assert refresh_kernel_cache(tmp_path) and not any(p.exists() for p in ours)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "kernels.py").write_text("a = 2\n")
    assert not refresh_kernel_cache(tmp_path)  # a cache elsewhere is not this guard's


def test_box_view_kernels_compile_once_for_every_layout() -> None:
    """A kernel over box views compiles one machine code whether the view is contiguous (a box
    spanning the last two axes) or strided, and gives both the right answer; a new dtype
    compiles a second one; arguments it cannot take get numba's own error."""
    from numba import njit
    from numba.core.errors import TypingError

    from synthtumor.synthesis.jit_options import any_layout

    @any_layout(0)
    @njit(cache=False)
    def total(view: np.ndarray, scale: np.ndarray) -> float:
        return float(view.sum()) * scale[0]

    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    scale = np.array([2.0], np.float32)
    contiguous, strided = volume[1:3], volume[1:3, 1:4, 2:5]
    assert contiguous.flags.c_contiguous and not strided.flags.c_contiguous
    with pytest.raises(TypingError):  # a first call that cannot compile leaves it usable
        total(contiguous, "2")
    assert total(contiguous, scale) == 2.0 * contiguous.sum()
    assert total(strided, scale) == 2.0 * strided.sum()
    assert [sig[0].layout for sig in total.signatures] == ["A"]
    assert total(volume[1:3].astype(np.float64), scale) == 2.0 * contiguous.sum()
    assert len(total.signatures) == 2
    with pytest.raises(TypingError):  # numba's own error for arguments its code cannot take
        total(contiguous, "2")


def test_box_view_kernels_compile_once_across_threads() -> None:
    """Threads that meet a kernel first at once, with contiguous and strided views, get the
    right answers from one compiled code."""
    from concurrent.futures import ThreadPoolExecutor

    from numba import njit

    from synthtumor.synthesis.jit_options import any_layout

    @any_layout(0)
    @njit(cache=False)
    def total(view: np.ndarray) -> float:
        return float(view.sum())

    volume = np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8)
    views = [volume[i:i + 2] if i % 2 else volume[i:i + 2, 1:5] for i in range(5)] * 4
    with ThreadPoolExecutor(4) as pool:
        sums = list(pool.map(total, views))
    assert sums == [float(v.sum()) for v in views]
    assert len(total.signatures) == 1


def test_synthesis_kernels_keep_one_signature_per_dtype(totalseg_1mm: Case) -> None:
    """The kernels that take box views hold one compiled signature per dtype after tumors in
    a 40³ crop of the liver, whose large tumors' boxes span the crop (contiguous views), and
    tumors with strided boxes."""
    from numba.core import types

    from synthtumor.synthesis import kernels

    centre = [int(np.median(a)) for a in np.nonzero(totalseg_1mm.liver)]
    crop = tuple(slice(c - 20, c + 20) for c in centre)
    ct, liver = totalseg_1mm.ct[crop].astype(np.float32), totalseg_1mm.liver[crop]
    with warnings.catch_warnings():  # large tumors are clipped to this crop, as intended
        warnings.simplefilter("ignore", SynthesisWarning)
        for seed in range(3):
            for kind in ("tiny", "large"):
                synthesize(ct.copy(), liver.copy(), np.random.default_rng(seed),
                           SynthesisConfig(tumor_type=kind), spacing=1.0, inplace=True)
    for kernel in (kernels.shape_and_reach, kernels.change_pass, kernels.paint_pass):
        # other tests may have compiled other dtypes (a float64 CT); none differ by layout alone
        signatures = [tuple(t.copy(layout="A") if isinstance(t, types.Array) else t for t in sig)
                      for sig in kernel.signatures]
        assert len(signatures) == len(set(signatures)), kernel.__name__


def test_kernels_compiled_reads_numbas_cache(
    totalseg_3mm: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kernels_compiled`` is True once a synthesis has compiled (and cached) its kernels,
    and False for a cache folder without them; the NumPy backend compiles nothing."""
    from types import SimpleNamespace

    from synthtumor.synthesis import kernels, kernels_compiled
    from synthtumor.synthesis.jit_options import on_disk

    synthesize(totalseg_3mm.ct, totalseg_3mm.liver, np.random.default_rng(0),
               SynthesisConfig(tumor_type="tiny"), affine=totalseg_3mm.affine)
    assert on_disk(kernels.change_pass) and kernels_compiled()
    empty = SimpleNamespace(py_func=kernels.change_pass.kernel.py_func,
                            stats=SimpleNamespace(cache_path=str(tmp_path)))
    assert not on_disk(empty)
    (tmp_path / "kernels.change_pass-273.py311.nbi").write_bytes(b"x")  # numba's naming
    assert on_disk(empty)
    monkeypatch.setenv(BACKEND_VARIABLE, "numpy")
    monkeypatch.setattr("synthtumor.synthesis.jit_options.on_disk", lambda kernel: False)
    assert kernels_compiled() and kernels_compiled(appearance=True)


def test_the_synthesize_command_says_when_its_kernels_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``synthtumor synthesize``'s progress names the one-time compile when the kernels are not
    compiled yet, and is the plain step once they are."""
    from synthtumor import workflow

    ct = read_ct(TS_CT)
    liver = read_mask(TS_ORGANS, ct, label=TS_LIVER)
    for compiled in (True, False):
        steps: list[str] = []
        monkeypatch.setattr(workflow, "kernels_compiled",
                            lambda appearance=False, ready=compiled: ready)
        workflow.run_synthesis(ct, liver, tmp_path / f"out{compiled}", step=steps.append,
                               config=SynthesisConfig(tumor_type="tiny"))
        assert ("synthesizing tumors" in steps) is compiled
        assert any("compiling the synthesis kernels" in s for s in steps) is not compiled


def test_kernel_wrappers_run_plain_python_when_numba_jit_is_off() -> None:
    """With ``NUMBA_DISABLE_JIT=1`` (numba's debugging switch) the layout wrapper calls the
    Python function and the cache check reports nothing to compile."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from numba import njit\n"
        "from synthtumor.synthesis import kernels, kernels_compiled\n"
        "from synthtumor.synthesis.jit_options import any_layout, on_disk\n"
        "total = any_layout(0)(njit(lambda a: a.sum()))\n"
        "print(total(np.ones((2, 3, 4))[:, 1:]), kernels_compiled(), on_disk(kernels.paint_pass))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["16.0", "True", "True"]


# a fresh interpreter's first synthesis (compiled backend), then its tumor count in the output
_FIRST_SYNTHESIS = (
    "import sys\n"
    "import numpy as np\n"
    "from synthtumor.synthesis import SynthesisConfig, synthesize\n"
    "ct = np.full((40, 40, 40), 100.0, np.float32)\n"
    "liver = np.zeros(ct.shape, np.uint8)\n"
    "liver[4:36, 4:36, 4:36] = 1\n"
    "out = synthesize(ct, liver, np.random.default_rng(0), SynthesisConfig(tumor_type='small'),"
    " spacing=1.0)\n"
    "print('scipy.linalg' in sys.modules, int((out.label == 2).sum() > 0))\n"
)


def _fresh_python(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter on the compiled backend; its printed words."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_DISABLE_JIT", BACKEND_VARIABLE)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_numbas_blas_probe_loads_no_scipy_linalg_and_blas_still_works() -> None:
    """A synthesis call does not load scipy.linalg (numba's BLAS probe gets a stand-in,
    ``jit_options.load_numpy_support``); afterwards the real module loads and numba's
    ``np.dot`` runs through BLAS."""
    after = (
        "print('scipy.linalg.cython_blas' in sys.modules)\n"
        "from numba import njit\n"
        "import numba.np.arraymath as arraymath\n"
        "dot = njit(lambda a, b: np.dot(a, b))\n"
        "a = np.arange(5.0)\n"
        "print(arraymath._HAVE_BLAS, dot(a, a),"
        " hasattr(sys.modules['scipy.linalg.cython_blas'], '__pyx_capi__'))\n"
    )
    assert _fresh_python(_FIRST_SYNTHESIS + after) == ["False", "1", "False", "True", "30.0",
                                                       "True"]


def test_a_numba_that_needs_the_real_blas_module_gets_it() -> None:
    """If importing numba's NumPy support fails with the stand-in (a numba that reads more of
    ``scipy.linalg.cython_blas`` than the probe), it is imported again with the real module
    and synthesis works."""
    before = (
        "import importlib.abc, sys\n"
        "class NeedsRealBlas(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        blas = sys.modules.get('scipy.linalg.cython_blas')\n"
        "        if name == 'numba.np.arraymath' and blas is not None "
        "and not hasattr(blas, '__pyx_capi__'):\n"
        "            raise ImportError('needs the real cython_blas')\n"
        "        return None\n"
        "sys.meta_path.insert(0, NeedsRealBlas())\n"
    )
    assert _fresh_python(before + _FIRST_SYNTHESIS) == ["True", "1"]
