"""Phantom training sets (`synthtumor data phantoms`): reproducible files and randomized
acquisitions (contrast phase, noise, sharpness, spacing), each visible in a statistic."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, stats
from typer.testing import CliRunner

from synthtumor.cli import app
from synthtumor.data.phantoms import write_phantom_set
from synthtumor.phantom import make_phantom
from synthtumor.phantom_scan import Scan, ScanRanges

COARSE = ScanRanges(inplane_mm=(3.0, 4.5), slice_mm=(3.0, 5.0))


def _interior(liver: np.ndarray, vessels: np.ndarray | None = None) -> np.ndarray:
    region = ndimage.binary_erosion(liver.astype(bool), iterations=2)
    if vessels is not None:
        region &= ~ndimage.binary_dilation(vessels.astype(bool), iterations=2)
    return region


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("phantoms") / "set"
    res = write_phantom_set(out, 12, seed=5, workers=2, ranges=COARSE)
    return out, res.items


def test_same_seed_byte_identical_files_any_worker_count(
        phantom_set: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out, _ = phantom_set
    again = tmp_path / "again"
    write_phantom_set(again, 3, seed=5, workers=1,
                      ranges=COARSE)  # first three cases, one process
    for i in range(3):
        for sub in ("images", "labels"):
            name = f"{sub}/phantom_{i:04d}.nii.gz"
            assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    write_phantom_set(other, 1, seed=6, ranges=COARSE)
    assert (other / "images/phantom_0000.nii.gz").read_bytes() != \
        (out / "images/phantom_0000.nii.gz").read_bytes()


def test_liver_hu_follows_the_contrast_phase(phantom_set: tuple[Path, list[dict]]) -> None:
    out, items = phantom_set
    by_phase: dict[str, list[float]] = {}
    for it in items:
        ct = np.asarray(nib.load(out / it["image"]).dataobj)
        liver = np.asarray(nib.load(out / it["label"]).dataobj)
        by_phase.setdefault(it["phase"], []).append(float(np.median(ct[_interior(liver)])))
    assert set(by_phase) == {"non-contrast", "arterial", "portal"}
    nc, art, pv = (np.mean(by_phase[p]) for p in ("non-contrast", "arterial", "portal"))
    # textbook liver HU: unenhanced 50-65, late arterial 65-80, portal venous 95-115
    assert 40 < nc < 66 and 60 < art < 82 and 90 < pv < 118
    assert max(by_phase["non-contrast"]) < min(by_phase["portal"]) - 20


def test_one_anatomy_three_phases_vessels_flip_contrast() -> None:
    """Same seed: the liver mask is the same in every phase; the liver veins are brighter than
    the parenchyma in the portal phase and darker without contrast (in the arterial phase the
    portal veins fill while the hepatic veins do not: no single sign)."""
    rng_seed = 3
    looks = {ph: make_phantom(rng_seed, (3.0, 3.0, 3.0), scan=Scan(ph, 1.0, 0.75))
             for ph in ("non-contrast", "arterial", "portal")}
    masks = [p.liver for p in looks.values()]
    assert all(np.array_equal(masks[0], m) for m in masks[1:])
    for ph, p in looks.items():
        vessel = ndimage.binary_erosion(p.vessels.astype(bool))
        parenchyma = _interior(p.liver, p.vessels)
        diff = float(np.median(p.ct[vessel]) - np.median(p.ct[parenchyma]))
        if ph != "arterial":
            assert (diff < 0) if ph == "non-contrast" else (diff > 20), (ph, diff)


def test_noise_std_is_visible(tmp_path: Path) -> None:
    """With phase, kernel and spacing fixed, the drawn noise std is what the files show (the
    spread of a high-pass of the liver interior; robust to the vessels)."""
    ranges = ScanRanges(phases=("portal",), psf_mm=(0.75, 0.75)).fixed_spacing(4.0)
    res = write_phantom_set(tmp_path / "noise", 8, seed=1, ranges=ranges)
    measured, asked = [], []
    for it in res.items:
        ct = np.asarray(nib.load(tmp_path / "noise" / it["image"]).dataobj).astype(np.float32)
        liver = np.asarray(nib.load(tmp_path / "noise" / it["label"]).dataobj)
        hp = (ct - ndimage.gaussian_filter(ct, 1.0))[_interior(liver)]
        measured.append(1.4826 * float(np.median(np.abs(hp - np.median(hp)))))
        asked.append(it["noise_std_hu"])
    assert stats.spearmanr(asked, measured).statistic > 0.9, (asked, measured)
    assert max(asked) - min(asked) > 8
    slope = np.polyfit(asked, measured, 1)[0]
    assert slope > 0.3  # the high-pass keeps a fixed share of the noise at a fixed kernel


def test_sharpness_is_visible() -> None:
    """A sharper kernel (smaller blur) gives a steeper body-air edge."""
    steep = []
    for psf in (0.45, 1.1):
        p = make_phantom(2, (1.5, 1.5, 1.5), scan=Scan("portal", 0.0, psf))
        steep.append(float(np.abs(np.diff(p.ct, axis=1)).max()))
    assert steep[0] > 1.2 * steep[1]


def test_spacing_is_randomized_and_in_the_header(phantom_set: tuple[Path, list[dict]]) -> None:
    out, items = phantom_set
    zooms = np.array([nib.load(out / it["image"]).header.get_zooms()[:3] for it in items])
    recorded = np.array([it["spacing_mm"] for it in items])
    assert np.allclose(zooms, recorded, atol=1e-4)
    assert np.all((zooms[:, 0] >= 3.0) & (zooms[:, 0] <= 4.5) & (zooms[:, 2] >= 3.0)
                  & (zooms[:, 2] <= 5.0))
    assert np.ptp(zooms[:, 0]) > 0.5 and np.ptp(zooms[:, 2]) > 0.8
    assert np.allclose(zooms[:, 0], zooms[:, 1])


def test_cli_writes_datalist_resumes_and_refuses_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "ph"
    args = ["data", "phantoms", "--n", "2", "--out", str(out), "--spacing", "5", "--seed", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads((out / "datalist.json").read_text())
    assert [it["case"] for it in data["training"]] == ["phantom_0000", "phantom_0001"]
    assert all(it["spacing_mm"] == [5.0, 5.0, 5.0] for it in data["training"])
    before = (out / "images/phantom_0001.nii.gz").read_bytes()
    (out / "datalist.json").unlink()  # as if killed before the end
    (out / "images/phantom_0001.nii.gz").unlink()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert (out / "images/phantom_0001.nii.gz").read_bytes() == before
    other = CliRunner().invoke(app, [*args[:-1], "2"])  # other seed, same folder
    assert other.exit_code == 2 and "other settings" in other.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["data", "phantoms", "--n", "1", "--out", str(foreign)])
    assert res.exit_code == 2 and (foreign / "notes.txt").read_text() == "mine"
