"""Shared fixtures: the real CT cases in ../shared/data (read in place, never copied)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import catalogue
import numpy as np
import pytest
from typer.testing import CliRunner

from synthtumor.imaging import Volume, read_ct, read_mask, resample_to_spacing
from synthtumor.synthesis.placement import bounding_box

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TS_CT = DATA / "healthy" / "totalseg_ct.nii.gz"
TS_ORGANS = DATA / "healthy" / "totalseg_ct_organs.nii.gz"
TS_SMALL = DATA / "healthy" / "totalseg_ct_small.nii.gz"
DICOM_DIR = DATA / "healthy" / "totalseg_dicom" / "ct"
DICOM_ORGANS = DATA / "healthy" / "totalseg_dicom" / "organs.nii.gz"
DCMQI_DIR = DATA / "healthy" / "dcmqi_3slice"
LITS_CT = DATA / "tumor" / "lits117_ct.nii.gz"
LITS_LABEL = DATA / "tumor" / "lits117_label.nii.gz"
TS_LIVER = 5  # TotalSegmentator's liver id


def pytest_sessionstart(session: pytest.Session) -> None:
    if not TS_CT.is_file():
        raise pytest.UsageError(f"real test CT not found at {DATA}: check out ../shared beside it")


@dataclass
class Case:
    ct: np.ndarray  # HU, (x, y, z)
    liver: np.ndarray  # uint8 0/1
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


def crop_to_liver(ct: Volume, liver: Volume, margin_mm: float) -> Case:
    """Crop to the liver's bounding box plus a margin; the affine follows the crop."""
    box = bounding_box(liver.array > 0)
    margin = [int(np.ceil(margin_mm / s)) for s in ct.spacing]
    box = tuple(
        slice(max(0, b.start - m), min(n, b.stop + m)) for b, m, n in zip(box, margin, ct.shape)
    )
    affine = ct.affine.copy()
    affine[:3, 3] = ct.affine[:3, :3] @ [b.start for b in box] + ct.affine[:3, 3]
    return Case(np.ascontiguousarray(ct.array[box]), np.ascontiguousarray(liver.array[box]), affine)


@pytest.fixture(scope="session")
def totalseg_3mm() -> Case:
    """totalseg_ct on its own 3 mm grid, cropped to the liver + 10 mm."""
    ct = read_ct(TS_CT)
    liver = read_mask(TS_ORGANS, ct, label=TS_LIVER)
    return crop_to_liver(ct, liver, 10.0)


@pytest.fixture(scope="session")
def totalseg_1mm() -> Case:
    """totalseg_ct resampled to 1 mm (as the reference pipeline does), cropped to the liver."""
    ct = read_ct(TS_CT)
    liver = read_mask(TS_ORGANS, ct, label=TS_LIVER)
    ct_1 = resample_to_spacing(ct, 1.0, order=1)
    liver_1 = resample_to_spacing(liver, 1.0, order=0)
    return crop_to_liver(ct_1, liver_1, 10.0)


@pytest.fixture(autouse=True)
def bad_input_catalogue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Record every command of this test that exits with status 2 in docs/bad-inputs.md
    (see tests/catalogue.py) and check the committed rows are up to date."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    doc = (request.function.__doc__ or "").strip().splitlines()
    description = doc[0] if doc else request.function.__name__.removeprefix("test_").replace(
        "_", " ")
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None:
        description += f" [{callspec.id}]"
    base = request.getfixturevalue("tmp_path_factory").getbasetemp()
    recorder = catalogue.Recorder(request.node.nodeid, description, tmp, base)
    original = CliRunner.invoke

    def invoke(self, app, args=None, *a, **kw):
        before = catalogue.files_under(tmp)
        result = original(self, app, args, *a, **kw)
        if result.exit_code == 2 and isinstance(args, (list, tuple)):
            recorder.add([str(x) for x in args], result.output, 2, before)
        return result

    monkeypatch.setattr(CliRunner, "invoke", invoke)
    catalogue._CURRENT.append(recorder)
    yield recorder
    catalogue._CURRENT.remove(recorder)
    differ = recorder.check()
    if differ:
        pytest.fail(f"docs/bad-inputs.md is out of date for {', '.join(differ)}: rerun with "
                    "SYNTHTUMOR_UPDATE_CATALOGUE=1", pytrace=False)
