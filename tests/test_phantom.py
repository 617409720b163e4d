"""Tests of the procedural abdominal CT phantom (synthtumor.phantom).

Most checks use 2-3 mm voxels: the anatomy is drawn in millimetres, so coarse grids show the
same organs at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthtumor.phantom import ORGANS, Phantom, make_phantom


@pytest.fixture(scope="module")
def p2() -> Phantom:
    return make_phantom(0, spacing=(2.0, 2.0, 2.0))


@pytest.fixture(scope="module")
def p_aniso() -> Phantom:
    return make_phantom(0, spacing=(1.5, 1.5, 3.0))


def _voxel_ml(p: Phantom) -> float:
    return float(np.prod(p.spacing)) / 1000.0


def _world_centroid(p: Phantom, mask: np.ndarray) -> np.ndarray:
    idx = np.array(np.nonzero(mask), dtype=float).mean(axis=1)
    return (p.affine @ np.append(idx, 1.0))[:3]


def _parenchyma(p: Phantom) -> np.ndarray:
    """Liver minus vessels, eroded one voxel (no partial volume with the surroundings)."""
    return ndimage.binary_erosion((p.liver == 1) & (p.vessels == 0))


# -- determinism and variety ------------------------------------------------------------------


def test_same_seed_gives_identical_arrays() -> None:
    a = make_phantom(7, spacing=(3.0, 3.0, 3.0))
    b = make_phantom(7, spacing=(3.0, 3.0, 3.0))
    for name in ("ct", "liver", "vessels", "labels", "affine"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_generator_seed_is_reproducible() -> None:
    a = make_phantom(np.random.default_rng(11), spacing=(3.0, 3.0, 3.0))
    b = make_phantom(np.random.default_rng(11), spacing=(3.0, 3.0, 3.0))
    assert np.array_equal(a.ct, b.ct)
    assert np.array_equal(a.labels, b.labels)


def test_different_seeds_give_different_livers() -> None:
    a = make_phantom(1, spacing=(3.0, 3.0, 3.0))
    b = make_phantom(2, spacing=(3.0, 3.0, 3.0))
    la, lb = a.liver.astype(bool), b.liver.astype(bool)
    assert not np.array_equal(la, lb)
    dice = 2.0 * np.count_nonzero(la & lb) / (la.sum() + lb.sum())
    assert dice < 0.97  # really another shape, not a shifted voxel or two


# -- arrays, labels, geometry -----------------------------------------------------------------


def test_arrays_types_and_label_consistency(p2: Phantom) -> None:
    assert p2.ct.shape == (150, 110, 100)  # round(shape_mm / spacing), (x, y, z) order
    assert p2.ct.dtype == np.float32
    for name in ("liver", "vessels", "labels"):
        arr = getattr(p2, name)
        assert arr.dtype == np.uint8 and arr.shape == p2.ct.shape, name
    assert set(np.unique(p2.labels)) == set(ORGANS)  # every organ is present
    assert np.array_equal(p2.liver, np.isin(p2.labels, (1, 2)).astype(np.uint8))
    assert np.array_equal(p2.vessels, (p2.labels == 2).astype(np.uint8))


def test_affine_is_diagonal_spacing_centred_on_origin() -> None:
    spacing = (0.8, 0.8, 2.5)
    p = make_phantom(3, spacing=spacing, shape_mm=(80.0, 60.0, 50.0))  # small crop: fast
    assert p.ct.shape == (100, 75, 20)
    assert np.allclose(p.affine[:3, :3], np.diag(spacing))
    assert np.allclose(p.affine[3], (0.0, 0.0, 0.0, 1.0))
    centre = (p.affine @ np.append((np.array(p.ct.shape) - 1) / 2.0, 1.0))[:3]
    assert np.allclose(centre, 0.0)
    assert p.spacing == pytest.approx(spacing)


def test_default_call_shape() -> None:
    p = make_phantom()
    assert p.ct.shape == (200, 147, 133)
    assert np.allclose(np.diag(p.affine)[:3], 1.5)


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError):
        make_phantom(0, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        make_phantom(0, shape_mm=(100.0, 100.0))  # type: ignore[arg-type]


# -- intensities ------------------------------------------------------------------------------


def test_hu_statistics_by_region(p2: Phantom) -> None:
    ct, lab = p2.ct, p2.labels
    assert np.median(ct[lab == 0]) < -900  # air
    assert -130 <= np.median(ct[lab == 7]) <= -70  # fat
    liver_med = float(np.median(ct[_parenchyma(p2)]))
    assert 90 <= liver_med <= 125  # portal venous parenchyma
    assert np.median(ct[p2.vessels == 1]) > liver_med + 40  # enhanced veins
    assert ct[lab == 5].max() > 500  # bone
    assert 30 <= np.median(ct[lab == 6]) <= 70  # muscle
    assert np.median(ct[lab == 3]) > liver_med + 15  # enhancing renal cortex


def test_noise_level_in_homogeneous_liver(p2: Phantom) -> None:
    liver = p2.liver.astype(bool)
    far_from_vessels = ~ndimage.binary_dilation(p2.vessels.astype(bool), iterations=2)
    region = ndimage.binary_erosion(liver, iterations=3) & far_from_vessels
    assert region.sum() > 5000
    assert 8.0 <= float(p2.ct[region].std()) <= 20.0


# -- liver and vessels ------------------------------------------------------------------------


def test_liver_volume_plausible_and_spacing_independent(p2: Phantom, p_aniso: Phantom) -> None:
    v_iso = p2.liver.sum() * _voxel_ml(p2) / 1000.0  # litres
    v_aniso = p_aniso.liver.sum() * _voxel_ml(p_aniso) / 1000.0
    assert 1.0 <= v_iso <= 2.2
    assert 1.0 <= v_aniso <= 2.2
    assert abs(v_iso - v_aniso) / v_iso < 0.10
    # same anatomy, not just the same size
    d = _world_centroid(p2, p2.liver == 1) - _world_centroid(p_aniso, p_aniso.liver == 1)
    assert np.linalg.norm(d) < 3.0  # mm


def test_liver_is_one_connected_component(p2: Phantom) -> None:
    _, n = ndimage.label(p2.liver)
    assert n == 1


def test_vessel_tree_inside_liver_and_connected(p2: Phantom, p_aniso: Phantom) -> None:
    for p in (p2, p_aniso):
        liver, vessels = p.liver.astype(bool), p.vessels.astype(bool)
        assert not np.any(vessels & ~liver)
        frac = vessels.sum() / liver.sum()
        assert 0.02 <= frac <= 0.15
        _, n = ndimage.label(vessels)  # face connectivity, the strict kind
        assert 1 <= n <= 3
        # a branching tree, not a few blobs: many voxels lie on thin (<= 2 voxel) parts
        thin = vessels & ~ndimage.binary_opening(vessels, iterations=1)
        assert thin.sum() > 0.2 * vessels.sum()


# -- anatomy layout ---------------------------------------------------------------------------


def test_liver_and_spleen_on_opposite_sides_of_spine(p2: Phantom) -> None:
    x_liver = _world_centroid(p2, p2.liver == 1)[0]
    x_spleen = _world_centroid(p2, p2.labels == 4)[0]
    x_spine = _world_centroid(p2, p2.labels == 5)[0]
    # RAS+: +x is the patient's right, where the liver lives
    assert x_liver > x_spine + 30.0
    assert x_spleen < x_spine - 30.0
    assert x_liver > 0.0


def test_liver_in_upper_abdomen_and_kidneys_on_both_sides(p2: Phantom) -> None:
    assert _world_centroid(p2, p2.liver == 1)[2] > -10.0  # z: superior half
    kid = p2.labels == 3
    xs = (p2.affine @ np.vstack([np.array(np.nonzero(kid)), np.ones(kid.sum())]))[0]
    assert np.count_nonzero(xs > 20) > 1000 and np.count_nonzero(xs < -20) > 1000


def test_spine_present_in_every_slice(p2: Phantom) -> None:
    bone = (p2.labels == 5) & (p2.ct > 300)
    nx = p2.ct.shape[0]
    central = bone[nx // 2 - 15 : nx // 2 + 15]  # within 30 mm of the midline
    assert np.all(central.any(axis=(0, 1)))
