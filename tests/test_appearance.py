"""The appearance model on real CT: iso tumors, phase awareness, heterogeneity, margins."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import (
    DICOM_DIR,
    DICOM_ORGANS,
    LITS_CT,
    LITS_LABEL,
    TS_LIVER,
    Case,
    crop_to_liver,
)

from synthtumor.imaging import read_ct, read_labels, read_mask, resample_to_spacing
from synthtumor.realism.stats import tumor_statistics
from synthtumor.synthesis import SynthesisConfig, synthesize
from synthtumor.synthesis.appearance import Appearance, AttenuationClass, Spread
from synthtumor.synthesis.generic import GENERIC_APPEARANCE
from synthtumor.synthesis.phase import (
    NON_CONTRAST_LIVER_HU,
    PORTAL_VENOUS_LIVER_HU,
    PUBLISHED_CONTRAST_HU,
    liver_median_hu,
)

HYPO = AttenuationClass("hypo", 1.0, Spread.of(15.0, 45.0), Spread.of(0.2, 0.6))
ISO = AttenuationClass("iso", 1.0, Spread.of(-6.0, 8.0), Spread.of(0.9, 1.1))


@pytest.fixture(scope="module")
def dicom_1mm() -> Case:
    """The contrast-enhanced DICOM series (liver ~93 HU) on a 1 mm grid, like training,
    cropped to the liver + 10 mm (a sixth of the slices' area: tumors go in the liver)."""
    ct = read_ct(DICOM_DIR)
    liver = read_mask(DICOM_ORGANS, ct, label=TS_LIVER)
    case = crop_to_liver(resample_to_spacing(ct, 1.0, order=1),
                          resample_to_spacing(liver, 1.0, order=0), 10.0)
    return Case(case.ct.astype(np.float32), (case.liver > 0).astype(np.uint8), case.affine)


def _measure(case: Case, config: SynthesisConfig, seeds: range) -> dict[str, np.ndarray]:
    tumors = []
    for seed in seeds:
        result = synthesize(case.ct, case.liver, np.random.default_rng(seed), config,
                            affine=case.affine)
        tumors += tumor_statistics(result.ct, result.label, case.affine).tumors
    return {k: np.array([t[k] for t in tumors], dtype=float)
            for k in ("contrast_hu", "std_hu", "sphericity")}


def test_spread_is_the_interpolated_inverse_cdf() -> None:
    """``Spread.at`` is ``np.interp`` on equally spaced probabilities, float for float, at
    random points and on and either side of every knot, for spreads of 2 to 13 knots."""
    rng = np.random.default_rng(8)
    for n in range(2, 14):
        knots = np.sort(rng.normal(0.0, 30.0, n))
        knots[n // 2:n // 2 + 2] = knots[n // 2]  # a flat stretch (repeated knots)
        spread = Spread.of(*knots)
        at_knots = np.linspace(0.0, 1.0, n)
        for u in np.concatenate([rng.random(300), at_knots, np.nextafter(at_knots, 2.0),
                                 np.nextafter(at_knots, -1.0)]):
            if 0.0 <= u <= 1.0:
                assert spread.at(float(u)) == float(np.interp(u, at_knots, spread.knots))


def test_iso_tumors_measure_within_15_hu(totalseg_1mm: Case, dicom_1mm: Case) -> None:
    """An appearance that asks for iso tumors only: >= 90 % of them measure |contrast| <= 15
    HU, in the non-contrast and in the contrast-enhanced case."""
    config = SynthesisConfig(tumor_type="small", count=4,
                             appearance=replace(GENERIC_APPEARANCE, classes=(ISO,)))
    for case in (totalseg_1mm, dicom_1mm):
        contrast = _measure(case, config, range(6))["contrast_hu"]
        contrast = contrast[np.isfinite(contrast)]
        assert contrast.size >= 15
        assert np.mean(np.abs(contrast) <= 15.0) >= 0.9, np.round(contrast, 1)


def test_same_profile_gives_each_phase_its_published_contrast(
    totalseg_1mm: Case, dicom_1mm: Case
) -> None:
    """One hypo appearance; the non-contrast liver (~46 HU) and the portal-venous one (~93 HU)
    are told apart by their HU, and the measured contrasts fall in each phase's range."""
    config = SynthesisConfig(tumor_type="small", count=4,
                             appearance=replace(GENERIC_APPEARANCE, classes=(HYPO,)))
    medians = {}
    for phase, case in (("non-contrast", totalseg_1mm), ("portal venous", dicom_1mm)):
        liver_hu = liver_median_hu(case.ct, case.liver)
        expected = NON_CONTRAST_LIVER_HU if phase == "non-contrast" else (80.0, 130.0)
        assert expected[0] <= liver_hu <= expected[1], (phase, liver_hu)
        contrast = _measure(case, config, range(6))["contrast_hu"]
        contrast = contrast[np.isfinite(contrast)]
        lo, hi = PUBLISHED_CONTRAST_HU[phase]
        assert np.mean((contrast >= lo) & (contrast <= hi)) >= 0.85, (phase, contrast)
        medians[phase] = float(np.median(contrast))
    assert medians["portal venous"] > medians["non-contrast"] + 10.0, medians
    assert PORTAL_VENOUS_LIVER_HU[0] > NON_CONTRAST_LIVER_HU[1]


def test_heterogeneity_and_margin_are_what_was_drawn(totalseg_1mm: Case) -> None:
    """The HU std inside the tumor is the drawn one (host texture included); an irregular
    margin lowers the sphericity of the same tumors."""
    smooth = Appearance(classes=(HYPO,), std_hu=Spread.of(25.0), corr_mm=Spread.of(0.5),
                        edge_mm=Spread.of(0.5), irregularity=Spread.of(0.0))
    rough = replace(smooth, irregularity=Spread.of(0.25), lobe_scale=Spread.of(0.4))
    base = SynthesisConfig(tumor_type="medium", count=2)
    a = _measure(totalseg_1mm, replace(base, appearance=smooth), range(4))
    b = _measure(totalseg_1mm, replace(base, appearance=rough), range(4))
    assert np.median(a["std_hu"]) == pytest.approx(25.0, abs=3.0)
    assert np.median(b["sphericity"]) < np.median(a["sphericity"]) - 0.05


# ---- profile format 2: fitted appearance, validation -----------------------------------------


@pytest.fixture(scope="module")
def lits_real():
    import nibabel as nib
    from conftest import LITS_CT, LITS_LABEL

    from synthtumor.realism.sets import StatsSet

    img = nib.load(LITS_CT)
    found = tumor_statistics(img.get_fdata(dtype=np.float32),
                             np.asarray(nib.load(LITS_LABEL).dataobj), img.affine, "lits117")
    return StatsSet("lits117", "real", found.tumors)


def test_fit_v2_recovers_the_real_appearance_and_moves_synthetic_tumors_to_it(
    lits_real, totalseg_1mm: Case
) -> None:
    from synthtumor.realism.compare import distance
    from synthtumor.realism.fit import apply_profile, fit_profile

    profile, summary = fit_profile(lits_real, fixed_phase=True)
    look = profile.appearance
    real = {k: lits_real.values(k) for k in ("std_hu", "sphericity", "contrast_hu")}
    # LiTS 117's lesions are all hypodense; its contrast is measured at a ~120 HU liver
    assert [c.name for c in look.classes] == ["hypo"]
    assert 50.0 < look.enhancement_hu < 80.0
    assert look.std_hu.knots[len(look.std_hu.knots) // 2] == pytest.approx(
        np.median(real["std_hu"]), abs=1.0)
    assert np.median(look.irregularity.knots) > 0.05  # real lesions are not round
    assert np.median(look.edge_mm.knots) < 1.5  # and their edges are sharp
    assert summary["appearance"]["attenuation_tumors"]["hypo"] == len(lits_real.tumors)

    fitted = apply_profile(SynthesisConfig(tumor_type="mix"), profile)
    synth = _measure(totalseg_1mm, fitted, range(2))
    ref = _measure(totalseg_1mm, SynthesisConfig(tumor_type="mix"), range(6))
    for key in ("std_hu", "sphericity", "contrast_hu"):
        ks_fit = distance(real[key], synth[key])["ks"]
        ks_ref = distance(real[key], ref[key])["ks"]
        assert ks_fit <= 0.35 and ks_fit < ks_ref, (key, ks_fit, ks_ref)


def test_profile_v2_round_trips_and_bad_appearance_is_one_line(tmp_path, lits_real) -> None:
    import json

    from synthtumor.errors import InputError
    from synthtumor.realism.fit import fit_profile, read_profile, write_profile

    profile, _ = fit_profile(lits_real)
    path = tmp_path / "p.json"
    write_profile(path, profile, {"set": "lits117"})
    data = json.loads(path.read_text())
    assert data["format"] == "synthtumor-profile/2"
    again = read_profile(path)
    assert again.appearance == profile.appearance and again.table == profile.table

    data["appearance"]["std_hu"] = [20.0, 10.0]
    data["appearance"]["scales"] = 9
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        read_profile(bad)
    message = str(err.value)
    assert "\n" not in message and "bad.json" in message
    assert "appearance.std_hu" in message and "knots must not decrease" in message
    data["appearance"]["std_hu"] = [10.0, 20.0]
    data["appearance"]["scales"] = 2
    data["format"] = "synthtumor-profile/1"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="'appearance' needs"):
        read_profile(bad)


def test_gallery_crops_are_centred_on_the_tumors_and_drawn(lits_real, tmp_path) -> None:
    import struct

    import nibabel as nib
    from conftest import LITS_CT, LITS_LABEL

    from synthtumor.realism.gallery import CROP_MM, add_crops, draw_gallery

    img = nib.load(LITS_CT)
    ct = img.get_fdata(dtype=np.float32)
    label = np.asarray(nib.load(LITS_LABEL).dataobj)
    tumors = [dict(t) for t in lits_real.tumors]
    add_crops(ct, label, img.affine, tumors)
    centred = 0
    for t in tumors:
        for view in ("axial", "coronal"):
            hu, mask = t["_crop"][view]
            assert hu.shape == mask.shape and hu.shape[0] * 1.0 == pytest.approx(CROP_MM, abs=1.5)
            centred += bool(mask[hu.shape[0] // 2, hu.shape[1] // 2])
            # the crop holds the CT's own HU around the tumor
            assert np.isclose(hu[mask > 0].mean(), t["mean_hu"], atol=25.0) or mask.sum() < 8
    assert centred >= 0.9 * 2 * len(tumors)  # centroids of compact lesions lie inside them

    from synthtumor.realism.sets import StatsSet

    path = tmp_path / "gallery.png"
    draw_gallery([StatsSet("real", "real", tumors), StatsSet("copy", "synthetic", tumors)],
                 path)
    png = path.read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width > 3 * height > 600


def test_cranio_caudal_halves_split_the_lesions_by_height(lits_real) -> None:
    from synthtumor.realism.sets import cranio_caudal_half

    upper = cranio_caudal_half(lits_real, "cranial")
    lower = cranio_caudal_half(lits_real, "caudal")
    assert len(upper.tumors) + len(lower.tumors) == len(lits_real.tumors)
    assert abs(len(upper.tumors) - len(lower.tumors)) <= 1 + len(lits_real.tumors) // 10
    z_up = [t["centroid_mm"][2] for t in upper.tumors]
    z_low = [t["centroid_mm"][2] for t in lower.tumors]
    assert min(z_up) > max(z_low) and upper.settings["half"] == "cranial"


def test_a_fit_without_large_lesions_says_its_profile_draws_none(lits_real) -> None:
    """A profile fitted to the cranial half of LiTS 117 (one case, no large lesion) says both:
    it repeats that case's counts, and it never draws a large tumor."""
    from synthtumor.realism.fit import fit_profile
    from synthtumor.realism.sets import cranio_caudal_half

    upper = cranio_caudal_half(lits_real, "cranial")  # LiTS 117's one large lesion is caudal
    profile, summary = fit_profile(upper)
    radii = upper.values("radius_mm")
    assert radii.max() < 22.6  # below the large class (boundary 22.6 mm)
    assert [c.name for c in profile.table["mix"]] == ["tiny", "small", "medium"]
    assert summary["cautions"][1] == "no real tumor of class large: this profile draws none"
    assert summary["cautions"][0].startswith("fitted to 1 case(s)")


def test_satellites_surround_a_large_tumor_and_look_like_it(totalseg_1mm: Case) -> None:
    look = replace(GENERIC_APPEARANCE, classes=(HYPO,), satellite_probability=1.0,
                   satellite_count=(3, 3))
    config = SynthesisConfig(tumor_type="large", count=1, appearance=look)
    found = 0
    for seed in range(3):
        result = synthesize(totalseg_1mm.ct, totalseg_1mm.liver, np.random.default_rng(seed),
                            config, affine=totalseg_1mm.affine)
        parent, *satellites = result.tumors
        assert parent.size_class == "large" and len(satellites) <= 3
        radius = float(np.prod(parent.semi_axes_mm) ** (1 / 3))
        for s in satellites:
            assert s.size_class == "satellite" and "satellite" in s.effects
            assert s.look == parent.look and max(s.semi_axes_mm) <= 5.0 * 1.15 + 1e-6
            gap = np.linalg.norm(np.subtract(s.centre_voxel, parent.centre_voxel))  # 1 mm grid
            assert 1.1 * radius - 2.0 <= gap <= 1.5 * radius + 2.0
            found += 1
    assert found >= 5  # most satellites land in the liver


def test_heterogeneity_beyond_the_liver_adds_to_each_hosts_own(
    totalseg_1mm: Case, dicom_1mm: Case
) -> None:
    """``std_beyond_liver``: the drawn std is what the tumor adds to its host's in quadrature,
    so in a smooth and in a noisier scan the measured excess over the liver shell is the drawn
    one, and the tumor's own std is more than the drawn one (the host's adds)."""
    look = Appearance(classes=(HYPO,), std_hu=Spread.of(15.0), corr_mm=Spread.of(0.5),
                      edge_mm=Spread.of(0.5), irregularity=Spread.of(0.0),
                      std_beyond_liver=True)
    config = SynthesisConfig(tumor_type="medium", count=2, appearance=look)
    stds: dict[str, float] = {}
    for name, case in (("non-contrast", totalseg_1mm), ("portal venous", dicom_1mm)):
        tumors = []
        for seed in range(3):
            result = synthesize(case.ct, case.liver, np.random.default_rng(seed), config,
                                affine=case.affine)
            tumors += tumor_statistics(result.ct, result.label, case.affine).tumors
        beyond = np.array([t["std_above_liver_hu"] for t in tumors], dtype=float)
        beyond = beyond[np.isfinite(beyond)]
        assert beyond.size >= 4
        assert np.median(beyond) == pytest.approx(15.0, abs=4.0), (name, np.round(beyond, 1))
        stds[name] = float(np.median([t["std_hu"] for t in tumors]))
    assert min(stds.values()) > 15.5, stds


@pytest.fixture(scope="module")
def lits_liver() -> Case:
    """LiTS 117 as a host: its liver without its lesions (label 1 only), a noisy portal-venous
    scan whose liver is more heterogeneous (vessels, noise) than many tumors are."""
    ct = read_ct(LITS_CT)
    label = read_labels(LITS_LABEL, ct)
    return Case(ct.array.astype(np.float32), (label.array == 1).astype(np.uint8), ct.affine)


def test_a_host_rougher_than_the_drawn_std_is_flattened_inside_the_tumor(
    monkeypatch, lits_liver: Case
) -> None:
    """In a host liver more heterogeneous than the drawn std, the tumor displaces the host's
    structure: its measured HU std is the drawn one (not the host's), its contrast is still the
    drawn one, and both backends agree."""
    # 20 HU in every phase (enhancing like the liver): the edge ramp alone stays well below
    # the drawn std, which it would not for a tumor of 80 HU contrast
    subtle = AttenuationClass("hypo", 1.0, Spread.of(20.0), Spread.of(1.0))
    look = Appearance(classes=(subtle,), std_hu=Spread.of(8.0), corr_mm=Spread.of(0.5),
                      edge_mm=Spread.of(0.5), irregularity=Spread.of(0.0))
    config = SynthesisConfig(tumor_type="small", count=3, appearance=look)
    measured, host, drawn, found = [], [], [], []
    for seed in range(4):
        reference, result = _backends(monkeypatch, lits_liver, config, seed)
        assert np.array_equal(reference.label, result.label)
        assert np.abs(reference.ct - result.ct).max() <= 0.5
        after = tumor_statistics(result.ct, result.label, lits_liver.affine).tumors
        before = tumor_statistics(lits_liver.ct, result.label, lits_liver.affine).tumors
        measured += [t["std_hu"] for t in after]
        host += [t["std_hu"] for t in before]
        found += [t["contrast_hu"] for t in after]
        drawn += [t.look.contrast_hu for t in result.tumors]
    assert len(measured) >= 8
    assert np.median(host) > 12.0  # the host alone is rougher than the drawn 8 HU
    assert np.median(measured) == pytest.approx(8.0, abs=2.0), np.round(measured, 1)
    assert np.median(found) == pytest.approx(np.median(drawn), abs=5.0)


def test_fit_beyond_the_liver_and_its_profile_round_trip(lits_real, tmp_path) -> None:
    import json

    from synthtumor.realism.fit import fit_profile, read_profile, write_profile

    profile, summary = fit_profile(lits_real, fixed_phase=True, beyond_liver=True)
    look = profile.appearance
    assert look is not None and look.std_beyond_liver
    beyond = np.clip(lits_real.values("std_above_liver_hu"), 0.0, None)
    assert look.std_hu.knots[len(look.std_hu.knots) // 2] == pytest.approx(
        np.median(beyond), abs=0.5)
    assert summary["appearance"]["std_beyond_liver_hu_median"] == pytest.approx(
        np.median(lits_real.values("std_above_liver_hu")), abs=0.01)
    path = tmp_path / "p.json"
    write_profile(path, profile, {"set": "lits117"})
    assert json.loads(path.read_text())["appearance"]["std_beyond_liver"] is True
    assert read_profile(path).appearance == look
    # the default fit keeps the tumors' std as measured
    assert not fit_profile(lits_real)[0].appearance.std_beyond_liver


def test_appearance_benchmark_runs_on_the_synthesis_benchmarks_inputs(tmp_path) -> None:
    """benchmarks/appearance.py takes its inputs from benchmarks/synthesis.py's ``prepare``
    (so the two cannot drift apart again) and times every config on them."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "appearance.py"
    spec = importlib.util.spec_from_file_location("bench_appearance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inputs = module.load_inputs(tmp_path)
    full_ct, full_liver = inputs["full"]
    patch_ct, patch_liver = inputs["patch"]
    assert patch_ct.shape == patch_liver.shape == (96, 96, 96)
    assert full_ct.shape == full_liver.shape and full_ct.size > 96**3
    assert patch_liver.sum() > 0.5 * 96**3  # centred in the liver
    configs = module.variants({"generic": GENERIC_APPEARANCE}, realistic=True)
    times = module.measure({"patch": inputs["patch"]}, configs, ("tiny",), calls=1, rounds=1)
    assert set(times[("patch", "tiny")]) == {"reference", "generic", "realistic preset"}
    assert all(0 < t < 60_000 for t in times[("patch", "tiny")].values())


# ---- the compiled appearance path against its NumPy reference -------------------------------

#: A fitted-like appearance: very irregular margins, fine texture, one scale, a fixed phase.
ROUGH = Appearance(classes=(HYPO, ISO), std_hu=Spread.of(13.0, 24.0), corr_mm=Spread.of(0.3, 0.9),
                   edge_mm=Spread.of(0.2, 0.9), irregularity=Spread.of(0.08, 0.5),
                   lobe_scale=Spread.of(0.3, 0.8), scales=1, coarse_weight=0.0,
                   enhancement_hu=65.0)


def _backends(monkeypatch, case: Case, config: SynthesisConfig, seed: int):
    from synthtumor.synthesis.painting import BACKEND_VARIABLE

    out = []
    for backend in ("numpy", "numba"):
        monkeypatch.setenv(BACKEND_VARIABLE, backend)
        out.append(synthesize(case.ct, case.liver, np.random.default_rng(seed), config,
                              affine=case.affine))
    return out


@pytest.mark.parametrize("tumor_type", ["tiny", "small", "medium", "large", "mix"])
def test_compiled_appearance_matches_the_numpy_reference(
    monkeypatch, totalseg_1mm: Case, tumor_type: str
) -> None:
    """Same seed, generic and rough appearances, with and without capsule and necrosis:
    identical labels and records, HU within 0.5 (the compiled shape, margin, edge and
    smoothing repeat the reference's arithmetic)."""
    for seed, (app, effects) in enumerate([(GENERIC_APPEARANCE, {}), (ROUGH, {}),
                                           (ROUGH, {"capsule": True, "necrosis": True})]):
        config = SynthesisConfig(tumor_type=tumor_type, appearance=app, **effects)
        reference, compiled = _backends(monkeypatch, totalseg_1mm, config, seed)
        assert (reference.label == 2).any()
        assert np.array_equal(reference.label, compiled.label)
        assert np.abs(reference.ct - compiled.ct).max() <= 0.5
        assert reference.params == compiled.params
        for a, b in zip(reference.tumors, compiled.tumors, strict=True):
            assert (a.volume_ml, a.centre_voxel, a.effects) == (b.volume_ml, b.centre_voxel,
                                                                  b.effects)
            assert abs(a.mean_hu_change - b.mean_hu_change) <= 0.01


def test_appearance_changes_the_ct_only_near_its_tumors(totalseg_1mm: Case) -> None:
    """The work after the shape is done on the reach box (the labelled tumor's bounds + the
    edge's reach): no HU change may lie farther from a tumor voxel than the widest edge
    reaches (3 sigma + 1 voxel) plus the rim's 3 voxels, and tumors still get their drawn
    contrast there."""
    from scipy import ndimage as ndi

    config = SynthesisConfig(tumor_type="mix", appearance=ROUGH)
    result = synthesize(totalseg_1mm.ct, totalseg_1mm.liver, np.random.default_rng(3), config,
                        affine=totalseg_1mm.affine)
    changed = result.ct != totalseg_1mm.ct
    reach = int(np.ceil(3.0 * ROUGH.edge_mm.bounds()[1])) + 1 + 3
    near = ndi.binary_dilation(result.label == 2, np.ones((2 * reach + 1,) * 3, bool))
    assert changed.any() and not (changed & ~near).any()
    # the mean change over each tumor's voxels is its drawn -contrast (where boxes overlap,
    # the stronger change wins, which moves a few)
    off = np.array([abs(t.mean_hu_change + t.look.contrast_hu) for t in result.tumors])
    assert len(off) >= 10 and np.median(off) <= 0.01 and np.mean(off <= 0.05) >= 0.75, off


@pytest.mark.parametrize("shape", [(23, 17, 31), (9, 13, 45)], ids=["rotated", "rows"])
@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0, 3.3])
def test_compiled_smoothing_is_scipys_gaussian(sigma: float, shape: tuple[int, ...]) -> None:
    """The compiled periodic Gaussian equals scipy.ndimage.gaussian_filter(mode="wrap") with
    the same truncation bit for bit, on odd-shaped boxes: short rows (the axes rotated to the
    front between passes) and long ones (smoothed along the rows)."""
    from scipy import ndimage as ndi

    from synthtumor.synthesis.heterogeneity import _TRUNCATE
    from synthtumor.synthesis.kernels_texture import gaussian_wrap

    noise = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    radius = int(_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / sigma**2 * x**2)
    weights /= weights.sum()
    out = np.empty_like(noise)
    gaussian_wrap(noise, weights, out, np.empty_like(noise))
    expected = ndi.gaussian_filter(noise, sigma, truncate=_TRUNCATE, mode="wrap")
    np.testing.assert_array_equal(out, expected)


def test_compiled_appearance_matches_on_an_anisotropic_float64_ct(monkeypatch) -> None:
    """The contrast DICOM series at its own 0.98 x 0.98 x 2 mm grid, float64 CT: the margin
    lattice is interpolated along some axes only; same labels, HU within 0.5."""
    import warnings

    from synthtumor.synthesis import SynthesisWarning

    ct = read_ct(DICOM_DIR)
    liver = (read_mask(DICOM_ORGANS, ct, label=TS_LIVER).array > 0).astype(np.uint8)
    case = Case(ct.array.astype(np.float64), liver, ct.affine)
    config = SynthesisConfig(tumor_type="mix", appearance=ROUGH, capsule=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SynthesisWarning)  # the 20-slice liver is thin
        reference, compiled = _backends(monkeypatch, case, config, 5)
    assert (reference.label == 2).sum() > 1000
    assert np.array_equal(reference.label, compiled.label)
    assert np.abs(reference.ct - compiled.ct).max() <= 0.5
