"""The conventions module: label check, geometry from an affine (against nibabel and real CT)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import LITS_CT, TS_CT
from scipy.spatial.transform import Rotation

from synthtumor import conventions as cv
from synthtumor.errors import InputError
from synthtumor.imaging import read_ct


@pytest.mark.parametrize("seed", range(50))
def test_orientation_matches_nibabel(seed: int) -> None:
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    rot = Rotation.random(random_state=seed).as_matrix() if seed % 2 else (
        np.eye(3)[rng.permutation(3)] * rng.choice([-1.0, 1.0], 3))
    affine[:3, :3] = rot * rng.uniform(0.4, 6.0, 3)
    np.testing.assert_array_equal(cv.orientation(affine), nib.io_orientation(affine))
    assert cv.axis_codes(affine) == nib.aff2axcodes(affine)
    assert cv.spacing_of(affine) == pytest.approx(nib.affines.voxel_sizes(affine))


@pytest.mark.parametrize("path", [TS_CT, LITS_CT])
def test_real_ct_geometry(path) -> None:
    img = nib.load(str(path))
    vol = read_ct(path)
    assert cv.spacing_of(vol.affine) == pytest.approx(img.header.get_zooms()[:3], rel=1e-4)
    assert cv.axis_codes(vol.affine) == nib.aff2axcodes(img.affine)
    # axial CT: the slice axis is cranio-caudal
    assert cv.cranio_caudal_axis(vol.affine) == 2
    assert cv.cranio_caudal_axis(vol.affine[:, [2, 0, 1, 3]]) == 0


def test_label_problem() -> None:
    assert cv.label_problem(np.zeros((3, 3, 3), np.uint8)) is None
    assert cv.label_problem(np.array([0, 1, 2], np.float32)) is None
    assert cv.label_problem(np.array([0, 1, 2]), max_id=cv.LIVER) is not None
    text = cv.label_problem((np.arange(216) % 7).reshape(6, 6, 6))
    assert text is not None and "[3, 4, 5, 6]" in text
    assert "-1" in str(cv.label_problem(np.array([0, -1])))
    assert "non-integer" in str(cv.label_problem(np.array([0.0, np.nan])))
    assert "S1 values" in str(cv.label_problem(np.array([b"a"])))
    with pytest.raises(InputError) as err:
        cv.check_labels(np.array([0, 9]), "x/lab.nii.gz")
    assert str(err.value).startswith("x/lab.nii.gz: holds unexpected label ids [9]")
    assert "\n" not in str(err.value)


def test_lps_to_ras_and_constants() -> None:
    lps = np.diag([0.7, 0.7, 3.0, 1.0])
    lps[:3, 3] = (10.0, 20.0, 30.0)
    ras = cv.LPS_TO_RAS @ lps
    assert cv.axis_codes(ras) == ("L", "P", "S")
    np.testing.assert_array_equal(ras[:3, 3], (-10.0, -20.0, 30.0))
    assert cv.HU_WINDOW == (-21.0, 189.0)
    assert (cv.BACKGROUND, cv.LIVER, cv.TUMOR) == (0, 1, 2)
