"""Realism statistics on real CT: known answers, real vs synthetic, fitted profiles, bad input."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import LITS_CT, LITS_LABEL, TS_CT, TS_LIVER, TS_ORGANS, TS_SMALL
from scipy import ndimage as ndi
from typer.testing import CliRunner

from synthtumor.cli import app
from synthtumor.imaging import write_nifti
from synthtumor.realism.fit import CONTRAST_PER_DROP, apply_profile, read_profile
from synthtumor.realism.sets import StatsSet, read_stats, synthesize_into
from synthtumor.realism.stats import STAT_KEYS, glcm, glcm_features, tumor_statistics
from synthtumor.synthesis import SynthesisConfig
from synthtumor.synthesis.profiles import profile_from_dict

runner = CliRunner()
TS_SMALL_ORGANS = TS_SMALL.with_name("totalseg_ct_small_organs.nii.gz")


def run_cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _datalist(path: Path, pairs: list[tuple[Path, Path]]) -> Path:
    items = [{"image": str(i), "label": str(lab), "case": f"case{k}"}
             for k, (i, lab) in enumerate(pairs)]
    path.write_text(json.dumps({"training": items}))
    return path


@pytest.fixture(scope="module")
def lits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = nib.load(LITS_CT)
    return (img.get_fdata(dtype=np.float32), np.asarray(nib.load(LITS_LABEL).dataobj),
            img.affine)


# ---- statistics with known answers -------------------------------------------------------


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.5)])
def test_ball_in_real_liver_gives_known_statistics(lits, spacing) -> None:
    """A ball of radius 12 mm, 60 HU darker, in LiTS 117's liver (real tumors removed), on an
    isotropic and on an anisotropic grid (same voxels, other affine, axes flipped as LiTS)."""
    ct, label, lits_affine = lits
    liver = label > 0
    healthy_ct = ct.copy()
    healthy_ct[label == 2] = np.median(ct[label == 1])
    affine = np.diag([*spacing, 1.0]) @ np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS flips of LiTS
    affine[:3, 3] = lits_affine[:3, 3]
    depth = ndi.distance_transform_edt(np.pad(liver, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    centre = np.unravel_index(np.argmax(depth), liver.shape)
    radius, offset = 12.0, 60.0
    assert depth[centre] > radius + 8  # room for the ball and its liver shell
    grid = np.indices(liver.shape).astype(float)
    d2 = sum(((grid[a] - centre[a]) * spacing[a]) ** 2 for a in range(3))
    ball = d2 <= radius**2
    lab = liver.astype(np.uint8)
    lab[ball] = 2
    test_ct = healthy_ct.copy()
    test_ct[ball] -= offset

    found = tumor_statistics(test_ct, lab, affine, "ball")
    assert len(found.tumors) == 1 and found.skipped_small == 0
    t = found.tumors[0]
    assert set(STAT_KEYS) <= t.keys()
    true_ml = 4 / 3 * math.pi * radius**3 / 1000
    assert t["volume_ml"] == pytest.approx(true_ml, rel=0.03)
    assert t["radius_mm"] == pytest.approx(radius, rel=0.01)
    assert 0.95 <= t["sphericity"] <= 1.05
    assert 1.0 <= t["elongation"] <= 1.06
    assert t["mean_hu"] == pytest.approx(float(healthy_ct[ball].mean()) - offset, abs=1e-3)
    # contrast: the offset, up to the liver's own heterogeneity between ball and shell
    assert t["contrast_hu"] == pytest.approx(offset, abs=6.0)
    # depth: nearest non-liver voxel centre (or the array border) by brute force
    edge = np.argwhere(liver & ~ndi.binary_erosion(liver))
    brute = np.min(np.linalg.norm((edge - centre) * spacing, axis=1))
    border = min(min((c + 1) * s, (n - c) * s) for c, n, s in zip(centre, liver.shape, spacing))
    assert t["depth_mm"] == pytest.approx(min(brute, border), abs=max(spacing))
    # world centroid: the ball centre through the affine
    assert np.allclose(t["centroid_mm"], affine[:3, :3] @ centre + affine[:3, 3], atol=0.05)
    # an edge 60 HU deep is sharper than the same ball without contrast
    flat = tumor_statistics(healthy_ct, lab, affine, "flat").tumors[0]
    assert t["edge_hu_per_mm"] > flat["edge_hu_per_mm"] + 0.2 * offset / max(spacing)
    assert abs(flat["contrast_hu"]) < 6.0
    # beyond the liver's own: the scan's noise cancels (in quadrature), the 60 HU step stays
    assert flat["edge_hu_per_mm"] > 5.0  # LiTS 117's own noise alone
    assert abs(flat["edge_above_liver_hu_per_mm"]) < 0.5 * flat["edge_hu_per_mm"]
    assert abs(flat["std_above_liver_hu"]) < 0.5 * flat["std_hu"]
    assert t["edge_above_liver_hu_per_mm"] > 0.3 * offset / max(spacing)
    assert t["edge_above_liver_hu_per_mm"] > 0.8 * t["edge_hu_per_mm"]
    # a constant offset changes neither the tumor's std nor its shell's
    assert t["std_above_liver_hu"] == pytest.approx(flat["std_above_liver_hu"], abs=1e-6)


def test_glcm_of_a_checkerboard_and_a_constant() -> None:
    """3-D checkerboard of grey levels 0 and 4: the 7 of 13 directions with an odd offset sum
    (3 faces, 4 corners) pair different levels, so contrast = 16 * 7/13 (to edge effects)."""
    levels = (np.indices((40, 40, 40)).sum(axis=0) % 2) * 4
    mask = np.ones(levels.shape, bool)
    contrast, homogeneity = glcm_features(glcm(levels, mask))
    assert contrast == pytest.approx(16 * 7 / 13, rel=0.02)
    assert homogeneity == pytest.approx(6 / 13 + 7 / 13 / 17, rel=0.02)
    assert glcm_features(glcm(np.full((5, 5, 5), 3), np.ones((5, 5, 5), bool))) == (0.0, 1.0)


def test_lits_tumors_are_26_connected_and_plausible(lits) -> None:
    ct, label, affine = lits
    found = tumor_statistics(ct, label, affine, "lits117")
    n26 = ndi.label(label == 2, np.ones((3, 3, 3)))[1]
    assert len(found.tumors) + found.skipped_small == n26
    total = sum(t["voxels"] for t in found.tumors)
    assert total > 0.99 * np.count_nonzero(label == 2)
    stats = {k: np.array([t[k] for t in found.tumors]) for k in STAT_KEYS}
    assert np.all(stats["contrast_hu"] > 0)  # LiTS 117's lesions are hypodense
    assert np.median(stats["mean_hu"]) < np.median(ct[label == 1])
    assert np.all((stats["glcm_homogeneity"] > 0) & (stats["glcm_homogeneity"] <= 1))


# ---- the command: real LiTS vs tumors synthesized into the healthy TotalSegmentator case ----


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("realism")
    healthy = _datalist(tmp / "healthy.json", [(TS_CT, TS_ORGANS)])
    out = tmp / "out"
    result = run_cli("realism", "--real", LITS_CT, "--real-label", LITS_LABEL,
                     "--synthesize-into", healthy, "--liver-label", TS_LIVER, "--samples", 3,
                     "--seed", 1, "--fit", "-o", out)
    assert result.exit_code == 0, result.output
    return out, healthy, result.output


def test_realism_compares_real_and_synthetic_and_draws_the_figure(study) -> None:
    out, _, output = study
    png = (out / "realism.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(png) < 1_000_000
    width, height = struct.unpack(">II", png[16:24])
    assert 800 <= width <= 2000 and 500 <= height <= 1500
    cmp = json.loads((out / "comparison.json").read_text())
    assert cmp["real"] == "lits117_ct" and cmp["synthetic"] == ["synthetic-reference"]
    assert set(cmp["statistics"]) == set(STAT_KEYS)
    for key, entry in cmp["statistics"].items():
        for name in ("lits117_ct", "synthetic-reference"):
            assert entry[name]["n"] > 5 and math.isfinite(entry[name]["median"]), key
            assert entry[name]["q05"] <= entry[name]["median"] <= entry[name]["q95"]
        syn = entry["synthetic-reference"]
        assert syn["wasserstein"] >= 0 and 0 <= syn["ks"] <= 1 and 0 <= syn["ks_p"] <= 1
    real = read_stats(out / "real_stats.json")
    assert real.kind == "real" and len(real.tumors) == cmp["n_tumors"]["lits117_ct"] > 50
    synth = read_stats(out / "synthetic_stats.json")
    assert synth.settings["samples"] == 3 and {t["sample"] for t in synth.tumors} == {0, 1, 2}
    # what the numbers must say: LiTS 117 has many small lesions, the reference far fewer
    r_real = np.median(real.values("radius_mm"))
    assert r_real < 5.0 and np.median(synth.values("radius_mm")) > r_real
    for word in ("volume", "sphericity", "contrast", "GLCM", "depth", "KS"):
        assert word in output
    # stats JSONs are inputs too: the same comparison without measuring again
    again = run_cli("realism", "--real", out / "real_stats.json", "--synthetic",
                    out / "synthetic_stats.json", "-o", out / "again")
    assert again.exit_code == 0, again.output
    assert json.loads((out / "again" / "comparison.json").read_text()) == cmp


def test_fitted_profile_is_accepted_and_moves_tumor_sizes(study, tmp_path: Path) -> None:
    out, healthy, output = study
    real = read_stats(out / "real_stats.json")
    profile = read_profile(out / "profile.json")
    radii = real.values("radius_mm")
    tiny = profile.table["tiny"][0]
    assert tiny.radius_mm == pytest.approx(np.median(radii[radii < 4 * 2**0.5]), abs=0.01)
    assert tiny.count[0] == tiny.count[1] == np.count_nonzero(radii < 4 * 2**0.5)
    assert profile.type_probs["mix"] == 1.0  # one case, lesions of several classes
    # ... which the fit says, in its summary and on the console
    cautions = json.loads((out / "profile.json").read_text())["source"]["fit"]["cautions"]
    assert len(cautions) == 1 and cautions[0].startswith("fitted to 1 case(s)")
    assert "note: fitted to 1 case(s)" in " ".join(output.split())
    p10, p90 = np.percentile(real.values("contrast_hu"), [10, 90])
    assert profile.drop_hu == pytest.approx((p10 / CONTRAST_PER_DROP, p90 / CONTRAST_PER_DROP),
                                            abs=0.1)

    # `synthesize --profile` accepts it: the drawn semi-axes follow the fitted radii
    syn = tmp_path / "syn"
    result = run_cli("synthesize", TS_SMALL, TS_SMALL_ORGANS, "--liver-label", TS_LIVER,
                     "--profile", out / "profile.json", "-o", syn, "--seed", 2)
    assert result.exit_code == 0, result.output
    record = json.loads((syn / "tumors.json").read_text())
    assert record["tumor_type"] == "mix" and record["inputs"]["profile"].endswith("profile.json")
    tiny_axes = [t["semi_axes_mm"] for t in record["tumors"] if t["size_class"] == "tiny"]
    assert len(tiny_axes) == tiny.count[0]
    assert np.all((np.array(tiny_axes) >= 0.75 * tiny.radius_mm - 1e-3)
                  & (np.array(tiny_axes) <= 1.25 * tiny.radius_mm + 1e-3))
    assert profile.drop_hu[0] <= record["sample"]["drop_hu"] <= profile.drop_hu[1]

    # measured: with the profile, synthetic lesions are many and small, like LiTS 117's
    reference = read_stats(out / "synthetic_stats.json")
    fitted = synthesize_into(healthy, 2, apply_profile(SynthesisConfig(), profile), 1,
                             liver_label=TS_LIVER)
    r_real, r_ref, r_fit = (np.median(s.values("radius_mm")) for s in (real, reference, fitted))
    assert abs(r_fit - r_real) < 0.5 * abs(r_ref - r_real)
    per_sample = len(fitted.tumors) / 2
    assert abs(per_sample - len(real.tumors)) < abs(len(reference.tumors) / 3 - len(real.tumors))


# ---- bad input ----------------------------------------------------------------------------


def test_case_without_tumor_is_skipped_with_a_note_and_a_tumorless_set_is_refused(
    tmp_path: Path, lits
) -> None:
    ct, label, affine = lits
    no_tumor = tmp_path / "lits_no_tumor.nii.gz"
    write_nifti(no_tumor, np.where(label == 2, 1, label).astype(np.uint8), affine, kind="label")
    both = _datalist(tmp_path / "both.json", [(LITS_CT, LITS_LABEL), (LITS_CT, no_tumor)])
    out = tmp_path / "out"
    result = run_cli("realism", "--real", both, "-o", out)
    assert result.exit_code == 0, result.output
    assert "case1: no tumor (label 2), skipped" in result.output
    real = read_stats(out / "real_stats.json")
    assert {t["case"] for t in real.tumors} == {"case0"}
    assert (out / "realism.png").is_file() and not (out / "comparison.json").exists()

    none = _datalist(tmp_path / "none.json", [(LITS_CT, no_tumor)])
    result = run_cli("realism", "--real", none, "-o", tmp_path / "out2")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no tumor (label 2) in any case" in lines[0], result.output
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--real", "missing.json"], "missing.json: does not exist"),
        (["--real", LITS_CT], "give its label map too"),
        ([], "nothing to measure"),
        (["--synthetic", LITS_CT, "--real-label", LITS_LABEL], "needs the CT as --real"),
    ],
)
def test_bad_realism_input_is_one_line(tmp_path: Path, args, words) -> None:
    result = run_cli("realism", *args, "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_fit_beyond_liver_on_stats_without_it_is_one_line(tmp_path: Path) -> None:
    """Stats written before the liver shell's std was measured cannot be fitted beyond it."""
    records = [{"case": "a", "std_hu": 10.0 + k, "contrast_hu": 40.0, "mean_hu": 60.0}
               for k in range(4)]
    old = tmp_path / "old_stats.json"
    old.write_text(json.dumps(StatsSet("old", "real", records).to_dict()))
    result = run_cli("realism", "--real", old, "--fit", "--fit-beyond-liver",
                     "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "old_stats.json" in lines[0], result.output
    assert "--fit-beyond-liver" in lines[0]
    assert not (tmp_path / "out").exists()


GOOD = {"format": "synthtumor-profile/1", "types": {"small": {"probability": 1, "classes": [
    {"name": "small", "radius_mm": 6.0, "count": [2, 4], "elastic_sigma_mm": [1, 2],
     "integer_sigma": True}]}}, "drop_hu": [80, 120]}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"format": "other"}, "not a synthesis profile"),
        ({"types": {"huge": GOOD["types"]["small"]}}, "unknown tumor type"),
        ({"types": {"small": {"probability": 1, "classes": [{"name": "s", "radius_mm": -3,
                                                             "count": [1, 2]}]}}}, "radius_mm"),
        ({"types": {"small": {"probability": 1, "classes": [{"name": "s", "radius_mm": 3,
                                                             "count": [3, 1]}]}}}, "count"),
        ({"drop_hu": [100]}, "drop_hu"),
        ({"types": {"small": {"probability": 0, "classes": GOOD["types"]["small"]["classes"]}}},
         "probabilities are 0"),
    ],
)
def test_malformed_profile_is_refused_in_one_line(tmp_path: Path, change, words) -> None:
    profile = profile_from_dict(GOOD)
    assert profile.type_probs["small"] == 1 and profile.table["small"][0].count == (2, 4)
    bad = tmp_path / "bad_profile.json"
    bad.write_text(json.dumps(GOOD | change))
    out = tmp_path / "syn"
    result = run_cli("synthesize", TS_SMALL, TS_SMALL_ORGANS, "--liver-label", TS_LIVER,
                     "--profile", bad, "-o", out)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad_profile.json" in lines[0] and words in lines[0], lines
    assert not out.exists()


def test_profile_that_is_not_json_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    healthy = _datalist(tmp_path / "h.json", [(TS_SMALL, TS_SMALL_ORGANS)])
    result = run_cli("realism", "--synthesize-into", healthy, "--liver-label", TS_LIVER,
                     "--profile", bad, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "broken.json: is not a readable JSON profile" in \
        result.output


def test_default_config_keeps_the_reference_table() -> None:
    assert SynthesisConfig().profiles is None
    assert isinstance(StatsSet("x", "real", []).values("radius_mm"), np.ndarray)
