"""Tests for synthtumor.imaging on the real CT cases in ../shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import (
    DATA,
    DCMQI_DIR,
    DICOM_DIR,
    DICOM_ORGANS,
    LITS_CT,
    LITS_LABEL,
    TS_CT,
    TS_LIVER,
    TS_ORGANS,
    TS_SMALL,
)

from synthtumor.errors import InputError
from synthtumor.imaging import (
    Volume,
    looks_like_hu,
    read_ct,
    read_image,
    read_labels,
    read_mask,
    resample_nearest,
    write_nifti,
)
from synthtumor.imaging import resample as resample_mod

LIVER = TS_LIVER


@pytest.fixture(scope="module")
def ts_ct() -> Volume:
    return read_ct(TS_CT)


@pytest.fixture(scope="module")
def dicom_ct() -> Volume:
    return read_ct(DICOM_DIR)


def _assert_one_line_error(info: pytest.ExceptionInfo[InputError], path: Path, *words: str):
    msg = str(info.value)
    assert path.name in msg, msg
    assert "\n" not in msg, msg
    for word in words:
        assert word in msg, msg


def _save(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write a test input with plain nibabel (independent of write_nifti)."""
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def _sorted_dicom_files(folder: Path) -> list[str]:
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))


def _ipp_lps(file: str) -> np.ndarray:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    reader.ReadImageInformation()
    return np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])


# ---------------------------------------------------------------------------------- reading


def test_totalseg_ct_geometry_and_hu(ts_ct: Volume) -> None:
    assert ts_ct.shape == (122, 101, 112)
    assert ts_ct.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert ts_ct.axis_codes() == ("R", "A", "S")
    assert ts_ct.cranio_caudal_axis() == 2
    assert ts_ct.array.dtype == np.float32
    assert ts_ct.array.min() < -900
    liver = read_mask(TS_ORGANS, ts_ct, label=LIVER)
    assert liver.array.dtype == np.uint8
    assert int(liver.array.sum()) == 41602
    assert 0 < np.median(ts_ct.array[liver.array > 0]) < 150


def test_read_image_keeps_stored_dtype() -> None:
    assert read_image(TS_CT).array.dtype == np.int32
    organs = read_image(TS_ORGANS)
    assert organs.array.dtype == np.float64  # stored as float64 in this file
    assert organs.path == str(TS_ORGANS)


def test_read_labels_multi_organ(ts_ct: Volume) -> None:
    organs = read_labels(TS_ORGANS, ts_ct)
    assert organs.array.dtype == np.uint8
    assert organs.shape == ts_ct.shape
    assert int((organs.array == LIVER).sum()) == 41602
    assert int(organs.array.max()) == 104


def test_volume_world_and_axes() -> None:
    # array axis 0 runs caudal (I), axis 1 left, axis 2 anterior
    affine = np.array(
        [[0.0, -2.0, 0.0, 10.0], [0.0, 0.0, 1.5, -5.0], [-4.0, 0.0, 0.0, 100.0], [0, 0, 0, 1]]
    )
    vol = Volume(np.zeros((3, 4, 5), np.uint8), affine)
    assert vol.spacing == pytest.approx((4.0, 2.0, 1.5))
    assert vol.axis_codes() == ("I", "L", "A")
    assert vol.cranio_caudal_axis() == 0
    ijk = np.array([[0, 0, 0], [1, 2, 3]])
    assert np.allclose(vol.world(ijk), [[10, -5, 100], [6, -0.5, 96]])


def test_dicom_series_geometry_and_hu(dicom_ct: Volume) -> None:
    assert dicom_ct.shape == (512, 512, 20)
    assert dicom_ct.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert dicom_ct.axis_codes() == ("L", "P", "S")  # DICOM's LPS grid written in RAS terms
    # stored pixels are unsigned (0028|0103 = 0), so negative values prove the rescale
    # intercept (-1024) was applied: air comes out at -1024 HU
    assert dicom_ct.array.min() == pytest.approx(-1024, abs=30)
    files = _sorted_dicom_files(DICOM_DIR)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    first = _ipp_lps(files[0]) * lps_to_ras
    last = _ipp_lps(files[-1]) * lps_to_ras
    assert np.allclose(dicom_ct.world(np.array([0, 0, 0])), first, atol=1e-3)
    # last slice's first voxel: row/column directions are identity in LPS here
    assert np.allclose(dicom_ct.world(np.array([0, 0, 19])), last, atol=1e-3)
    far = dicom_ct.world(np.array([511, 511, 0]))
    assert np.allclose(far, first + lps_to_ras * 511 * 0.9765625 * np.array([1, 1, 0]), atol=1e-3)


def test_dicom_organs_line_up_only_in_world_space(dicom_ct: Volume) -> None:
    raw = np.asanyarray(nib.load(str(DICOM_ORGANS)).dataobj) == LIVER
    assert raw.shape == dicom_ct.shape  # same shape: a naive pipeline would not resample
    liver = read_mask(DICOM_ORGANS, dicom_ct, label=LIVER).array.astype(bool)
    assert not np.array_equal(liver, raw)
    assert np.array_equal(liver, np.flip(raw, axis=1))  # organs.nii.gz stores y flipped

    def soft_tissue_fraction(mask: np.ndarray) -> float:
        hu = dicom_ct.array[mask]
        return float(np.mean((hu > 40) & (hu < 160)))

    hu = dicom_ct.array[liver]
    assert 60 < np.median(hu) < 160  # contrast-enhanced liver
    assert soft_tissue_fraction(liver) > 0.95
    # the unflipped mask overlaps only half the liver and picks up air and fat
    dice = 2 * np.sum(liver & raw) / (liver.sum() + raw.sum())
    assert dice < 0.7
    assert soft_tissue_fraction(raw) < 0.8
    assert np.mean(dicom_ct.array[raw]) < 0 < np.mean(hu)


def test_dcmqi_folder_with_nrrd_mask() -> None:
    ct = read_ct(DCMQI_DIR)  # liver.nrrd in the same folder must be ignored
    assert ct.shape == (512, 512, 3)
    assert ct.spacing == pytest.approx((0.810547, 0.810547, 1.0), abs=1e-4)
    liver = read_mask(DCMQI_DIR / "liver.nrrd", ct)
    assert liver.array.sum() > 10_000
    assert 0 < np.median(ct.array[liver.array > 0]) < 150


def test_itk_formats_match_nifti(tmp_path: Path) -> None:
    # ITK converts NIfTI RAS to LPS; our reader must convert back to the same grid
    for src, name in ((TS_SMALL, "small.mha"), (DICOM_ORGANS, "organs.nrrd")):
        out = tmp_path / name
        sitk.WriteImage(sitk.ReadImage(str(src)), str(out))
        via_itk, via_nib = read_image(out), read_image(src)
        assert np.allclose(via_itk.affine, via_nib.affine, atol=1e-4)
        assert np.array_equal(via_itk.array, via_nib.array)
        assert via_itk.axis_codes() == via_nib.axis_codes()


def test_lits_labels() -> None:
    ct = read_ct(LITS_CT)
    labels = read_labels(LITS_LABEL, ct)
    assert labels.array.dtype == np.uint8
    assert set(np.unique(labels.array).tolist()) == {0, 1, 2}
    with pytest.raises(InputError) as info:
        read_mask(LITS_LABEL, ct)
    _assert_one_line_error(info, LITS_LABEL, "holds labels [1, 2]", "--liver-label")
    tumor = read_mask(LITS_LABEL, ct, label=2)
    assert 0 < tumor.array.sum() < (labels.array > 0).sum()


def test_singleton_4d_is_squeezed_and_real_4d_rejected(tmp_path: Path) -> None:
    arr = np.full((4, 5, 6, 1), -1000, np.int16)
    vol = read_image(_save(tmp_path / "one.nii.gz", arr, np.eye(4)))
    assert vol.shape == (4, 5, 6)
    bad = _save(tmp_path / "four.nii.gz", np.zeros((4, 5, 6, 2), np.int16), np.eye(4))
    with pytest.raises(InputError) as info:
        read_image(bad)
    _assert_one_line_error(info, bad, "4D")


# ------------------------------------------------------------------------------- resampling


def _brute_force(vol: Volume, ref_affine: np.ndarray, shape: tuple[int, int, int]):
    """The definition, voxel by voxel (slow; small grids only)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = ijk @ ref_affine[:3, :3].T + ref_affine[:3, 3]
    inv = np.linalg.inv(vol.affine)
    src = np.floor(world @ inv[:3, :3].T + inv[:3, 3] + 0.5).astype(int)
    inside = np.all((src >= 0) & (src < np.array(vol.shape)), axis=1)
    out = np.zeros(len(ijk), vol.array.dtype)
    out[inside] = vol.array[tuple(src[inside].T)]
    return out.reshape(shape)


def test_resample_nearest_matches_definition() -> None:
    rng = np.random.default_rng(0)
    src_affine = np.array(
        [[0.0, 0.0, -2.5, 40.0], [-1.2, 0.0, 0.0, 7.3], [0.0, 3.1, 0.0, -20.0], [0, 0, 0, 1]]
    )
    vol = Volume(rng.integers(1, 200, (17, 13, 11)).astype(np.int16), src_affine)
    angle = np.deg2rad(25)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    oblique = np.eye(4)
    oblique[:3, :3] = rot @ np.diag([1.7, 1.3, 2.2])
    oblique[:3, 3] = [10.3, 2.1, -12.9]
    aligned = np.diag([-1.9, 1.1, 2.7, 1.0])
    aligned[:3, 3] = [25.2, -3.3, -18.1]
    for ref_affine in (oblique, aligned):
        shape = (19, 14, 12)
        # oblique goes through scipy, aligned through the separable gather
        inv_map = np.linalg.inv(vol.affine) @ ref_affine
        separable = resample_mod._axis_columns(inv_map[:3, :3], shape) is not None
        assert separable == (ref_affine is aligned)
        got = resample_nearest(vol, ref_affine, shape)
        want = _brute_force(vol, ref_affine, shape)
        assert got.dtype == np.int16
        assert np.array_equal(got, want)
        assert 0 < np.count_nonzero(got) < got.size  # partly inside, partly outside


def test_resample_edges_round_to_nearest() -> None:
    # Reference voxels 0.4 voxel beyond either end still belong to the edge voxels
    vol = Volume(np.arange(1, 6, dtype=np.int16).reshape(5, 1, 1), np.eye(4))
    for ref_x0, want in ((-0.4, [1, 2, 3, 4, 5]), (0.4, [1, 2, 3, 4, 5]), (-0.6, [0, 1, 2, 3, 4])):
        ref = np.eye(4)
        ref[0, 3] = ref_x0
        assert resample_nearest(vol, ref, (5, 1, 1)).ravel().tolist() == want
        # the scipy (oblique) path must agree with the separable one
        inv_map = np.linalg.inv(vol.affine) @ ref
        general = resample_mod._resample_general(vol.array, inv_map, (5, 1, 1))
        assert general.ravel().tolist() == want


def test_resample_same_grid_returns_array_itself(ts_ct: Volume) -> None:
    assert resample_nearest(ts_ct, ts_ct.affine.copy(), ts_ct.shape) is ts_ct.array


def test_resample_roundtrip_permuted_flipped(ts_ct: Volume, tmp_path: Path) -> None:
    organs = read_image(TS_ORGANS)
    base = organs.array.astype(np.uint8)
    # new[a, b, c] = base[c, n1 - 1 - a, b]: axes permuted and the (old) y axis flipped
    permuted = np.flip(base.transpose(1, 2, 0), axis=0)
    n1 = base.shape[1]
    new_to_old = np.array(
        [[0, 0, 1, 0], [-1, 0, 0, n1 - 1], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64
    )
    assert permuted[3, 5, 7] == base[7, n1 - 1 - 3, 5]
    new_affine = organs.affine @ new_to_old
    path = tmp_path / "organs_permuted.nii.gz"
    write_nifti(path, permuted, new_affine, kind="label")
    assert read_image(path).axis_codes() == ("P", "S", "R")
    back = read_mask(path, ts_ct, label=LIVER)
    assert np.array_equal(back.array, (base == LIVER).astype(np.uint8))
    assert np.array_equal(read_labels(path, ts_ct).array, base)


# ----------------------------------------------------------------------------------- errors


def test_missing_file() -> None:
    path = DATA / "no_such_scan.nii.gz"
    with pytest.raises(InputError) as info:
        read_ct(path)
    _assert_one_line_error(info, path, "does not exist")


def test_unknown_extension_and_single_dicom_file(tmp_path: Path) -> None:
    txt = tmp_path / "scan.txt"
    txt.write_text("not an image")
    with pytest.raises(InputError) as info:
        read_image(txt)
    _assert_one_line_error(info, txt, "unsupported file type")
    one = DCMQI_DIR / "01.dcm"
    with pytest.raises(InputError) as info:
        read_image(one)
    _assert_one_line_error(info, one, "folder")


def test_truncated_nifti(tmp_path: Path) -> None:
    data = TS_CT.read_bytes()
    path = tmp_path / "truncated.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as info:
        read_ct(path)
    _assert_one_line_error(info, path, "is truncated or corrupt")


def test_corrupt_nrrd(tmp_path: Path) -> None:
    path = tmp_path / "broken.nrrd"
    path.write_bytes((DCMQI_DIR / "liver.nrrd").read_bytes()[:200])
    with pytest.raises(InputError) as info:
        read_image(path)
    _assert_one_line_error(info, path, "truncated or corrupt")


def test_folder_with_two_dicom_series(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for f in sorted(DCMQI_DIR.glob("*.dcm")):
        shutil.copy(f, folder)
    for f in _sorted_dicom_files(DICOM_DIR)[:2]:
        shutil.copy(f, folder)
    with pytest.raises(InputError) as info:
        read_ct(folder)
    _assert_one_line_error(info, folder, "holds 2 DICOM series", "series_uid")
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    dcmqi_uid = next(u for u in uids if u)
    assert read_ct(folder, series_uid=dcmqi_uid).shape == (512, 512, 3)
    with pytest.raises(InputError) as info:
        read_ct(folder, series_uid="1.2.3")
    _assert_one_line_error(info, folder, "no DICOM series '1.2.3'")


def test_folder_without_dicom(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    with pytest.raises(InputError) as info:
        read_ct(folder)
    _assert_one_line_error(info, folder, "no DICOM")


def test_dicom_series_with_missing_slice(tmp_path: Path) -> None:
    folder = tmp_path / "gap"
    folder.mkdir()
    files = _sorted_dicom_files(DICOM_DIR)
    for f in files[:2] + files[3:5]:
        shutil.copy(f, folder)
    with pytest.raises(InputError) as info:
        read_ct(folder)
    _assert_one_line_error(info, folder, "unevenly spaced")


def test_mask_errors(ts_ct: Volume, tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_mask(TS_ORGANS, ts_ct)
    _assert_one_line_error(info, TS_ORGANS, "holds labels [1, 2, 3", "...]", "--liver-label")

    with pytest.raises(InputError) as info:
        read_mask(TS_ORGANS, ts_ct, label=200)
    _assert_one_line_error(info, TS_ORGANS, "label 200 not present; labels found: [1, 2,")

    empty = _save(tmp_path / "empty.nii.gz", np.zeros(ts_ct.shape, np.uint8), ts_ct.affine)
    with pytest.raises(InputError) as info:
        read_mask(empty, ts_ct)
    _assert_one_line_error(info, empty, "liver mask is empty")

    far_affine = ts_ct.affine.copy()
    far_affine[0, 3] += 10_000.0  # 10 m to the patient's left
    organs = read_image(TS_ORGANS).array.astype(np.uint8)
    far = _save(tmp_path / "far.nii.gz", organs, far_affine)
    with pytest.raises(InputError) as info:
        read_mask(far, ts_ct, label=LIVER)
    _assert_one_line_error(info, far, "does not overlap", TS_CT.name, "world space")

    probs = _save(tmp_path / "probs.nii.gz", np.full((4, 4, 4), 0.25, np.float32), np.eye(4))
    with pytest.raises(InputError) as info:
        read_mask(probs, ts_ct)
    _assert_one_line_error(info, probs, "non-integer")


def test_binary_mask_variants(ts_ct: Volume, tmp_path: Path) -> None:
    liver = read_mask(TS_ORGANS, ts_ct, label=LIVER).array
    for value in (1, 255, 7):
        path = _save(tmp_path / f"mask{value}.nii.gz", liver * np.uint8(value), ts_ct.affine)
        assert np.array_equal(read_mask(path, ts_ct).array, liver)


def test_ct_with_nan(tmp_path: Path) -> None:
    arr = np.full((6, 6, 6), 40.0, np.float32)
    arr[0] = -1000.0
    arr[2, 3, 4] = np.nan
    path = _save(tmp_path / "nan_ct.nii.gz", arr, np.eye(4))
    with pytest.raises(InputError) as info:
        read_ct(path)
    _assert_one_line_error(info, path, "contains 1 NaN/inf voxels")


def test_ct_not_in_hounsfield_units(tmp_path: Path) -> None:
    arr = np.linspace(0, 4095, 6 * 6 * 6).reshape(6, 6, 6).astype(np.uint16)
    path = _save(tmp_path / "raw_ct.nii.gz", arr, np.eye(4))
    with pytest.raises(InputError) as info:
        read_ct(path)
    _assert_one_line_error(
        info, path, "values 0..4095 do not look like Hounsfield units", "rescale"
    )


def test_looks_like_hu() -> None:
    assert looks_like_hu(np.array([-1024.0, 40.0, 1800.0]))
    assert looks_like_hu(np.array([-150.0, 60.0, 900.0]))  # tight soft-tissue crop
    assert not looks_like_hu(np.array([0.0, 1100.0, 4095.0]))


# ---------------------------------------------------------------------------------- writing


def test_write_nifti_roundtrip(ts_ct: Volume, tmp_path: Path) -> None:
    labels = read_labels(TS_ORGANS, ts_ct).array
    path = tmp_path / "labels.nii.gz"
    write_nifti(path, labels, ts_ct.affine, kind="label")
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.uint8
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    assert np.allclose(img.get_qform(), ts_ct.affine, atol=1e-5)
    back = read_image(path)
    assert np.allclose(back.affine, ts_ct.affine, atol=1e-5)
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, labels)

    # CT: integer input -> int16, float input -> float32; overwriting is fine
    ct_path = tmp_path / "ct.nii.gz"
    write_nifti(ct_path, read_image(TS_CT).array, ts_ct.affine, kind="ct")
    assert nib.load(str(ct_path)).get_data_dtype() == np.int16
    write_nifti(ct_path, ts_ct.array + 0.5, ts_ct.affine, kind="ct")
    again = read_ct(ct_path)
    assert again.array.dtype == np.float32
    assert np.array_equal(again.array, ts_ct.array + 0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz", "labels.nii.gz"]


def test_write_nifti_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def broken_save(img: object, filename: str) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", broken_save)
    out = tmp_path / "ct.nii.gz"
    with pytest.raises(InputError) as info:
        write_nifti(out, np.zeros((3, 3, 3), np.float32), np.eye(4), kind="ct")
    _assert_one_line_error(info, out, "No space left")
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    with pytest.raises(ValueError):
        write_nifti(out, np.full((3, 3, 3), object()), np.eye(4), kind="ct")
    with pytest.raises(ValueError):
        write_nifti(out, np.full((3, 3, 3), 300), np.eye(4), kind="label")
    assert list(tmp_path.iterdir()) == []


def test_write_nifti_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a regular file where a folder should be")
    out = blocker / "ct.nii.gz"
    with pytest.raises(InputError) as info:
        write_nifti(out, np.zeros((3, 3, 3), np.int16), np.eye(4), kind="ct")
    _assert_one_line_error(info, out, "cannot write")
    bad_name = tmp_path / "ct.nrrd"
    with pytest.raises(InputError) as info:
        write_nifti(bad_name, np.zeros((3, 3, 3), np.int16), np.eye(4), kind="ct")
    _assert_one_line_error(info, bad_name, ".nii.gz")
