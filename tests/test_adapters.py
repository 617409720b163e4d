"""Tests for the MONAI and TorchIO adapters, on the real 3 mm TotalSegmentator CT."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, Lambdad, LoadImaged
from monai.utils import set_determinism
from scipy import ndimage

from synthtumor.adapters.monai import RandTumorSynthesisd, load_tumor_records
from synthtumor.adapters.torchio import RandomTumorSynthesis

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TS_CT = DATA / "healthy" / "totalseg_ct.nii.gz"
TS_ORGANS = DATA / "healthy" / "totalseg_ct_organs.nii.gz"
TS_LIVER = 5  # TotalSegmentator's liver id
VOXEL_MM3 = 27.0  # the case is 3 mm isotropic
MEDIUM_SEMI_AXES_MM = (12.0, 20.0)  # 0.75 r .. 1.25 r with r = 16 mm


def _liver01(organs: torch.Tensor) -> torch.Tensor:
    """Organ map -> 0/1 liver label (float, like LoadImaged's output)."""
    return (organs == TS_LIVER).float()


def _loader() -> Compose:
    keys = ["image", "label"]
    return Compose([LoadImaged(keys), EnsureChannelFirstd(keys), Lambdad("label", _liver01)])


FILES = {"image": str(TS_CT), "label": str(TS_ORGANS)}


@pytest.fixture(scope="module")
def case() -> dict:
    """The case as MONAI loads it: (1, 122, 101, 112) MetaTensors, HU and 0/1 liver."""
    return _loader()(dict(FILES))


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _medium(**kwargs) -> RandTumorSynthesisd:
    return RandTumorSynthesisd("image", "label", prob=1.0, tumor_probs={"medium": 1}, **kwargs)


# --------------------------------------------------------------------------------------------
# MONAI


def test_monai_pastes_medium_tumors_in_the_liver_sized_in_mm(case):
    transform = _medium()
    transform.set_random_state(seed=7)
    out = transform(case)

    image, label = out["image"], out["label"]
    assert isinstance(image, MetaTensor) and isinstance(label, MetaTensor)
    assert image.dtype == torch.float32 and label.dtype == case["label"].dtype
    assert torch.equal(image.affine, case["image"].affine)
    assert image.meta["filename_or_obj"] == case["image"].meta["filename_or_obj"]
    assert out["image"] is not case["image"]  # the input sample is left as it was

    liver = _np(case["label"])[0] > 0
    lab = _np(label)[0]
    assert set(np.unique(lab)) == {0, 1, 2}
    tumor = lab == 2
    assert not np.any(tumor & ~liver)
    assert np.array_equal(lab > 0, liver)  # no mass effect: the liver keeps its outline
    change = _np(image)[0] - _np(case["image"])[0]
    changed = change != 0
    assert changed.any()
    assert not np.any(changed & ~liver)
    # Only the soft edge reaches beyond the tumor label: a few voxels, a few HU.
    voxels_away = ndimage.distance_transform_edt(~tumor)
    assert voxels_away[changed].max() <= 5
    assert np.abs(change[voxels_away > 2]).max() < 5.0

    record = load_tumor_records(out["label_tumors"])
    assert record["applied"] and record["tumor_type"] == "medium"
    assert 2 <= len(record["tumors"]) <= 5
    lo, hi = MEDIUM_SEMI_AXES_MM
    for t in record["tumors"]:
        assert all(lo <= a <= hi for a in t["semi_axes_mm"]), t

    # The spacing came from the affine: the tumors' voxels, at the true 27 mm^3 each, add up to
    # about the volume of their ellipsoids (at 1 mm voxels they would be 27x larger).
    ellipsoids_ml = sum(4 / 3 * np.pi * np.prod(t["semi_axes_mm"]) for t in record["tumors"])
    ellipsoids_ml /= 1000.0
    tumor_ml = tumor.sum() * VOXEL_MM3 / 1000.0
    assert 0.3 < tumor_ml / ellipsoids_ml < 2.0, (tumor_ml, ellipsoids_ml)
    assert sum(t["volume_ml"] for t in record["tumors"]) == pytest.approx(tumor_ml, rel=0.5)
    # ... and the world centres went through it (the origin is ~200 mm from identity's).
    affine = _np(case["image"].affine)
    assert np.linalg.norm(affine[:3, 3]) > 100
    for t in record["tumors"]:
        drawn_mm = affine[:3, :3] @ t["centre_voxel"] + affine[:3, 3]
        assert np.linalg.norm(drawn_mm - t["centre_mm"]) < hi, t


def test_monai_set_random_state_reproduces_and_seeds_differ(case):
    outs = [_medium().set_random_state(seed=s)(case) for s in (7, 7, 8)]
    for key in ("image", "label"):
        assert _np(outs[0][key]).tobytes() == _np(outs[1][key]).tobytes()
    assert outs[0]["label_tumors"] == outs[1]["label_tumors"]
    assert not np.array_equal(_np(outs[0]["label"]), _np(outs[2]["label"]))

    # Compose propagates its seed to the transform.
    composed = [Compose([_medium()]).set_random_state(seed=3)(case) for _ in range(2)]
    assert torch.equal(composed[0]["image"], composed[1]["image"])


def test_monai_passes_through_unchanged_samples(case):
    out = RandTumorSynthesisd("image", "label", prob=0.0)(case)
    assert out["image"] is case["image"] and out["label"] is case["label"]
    assert load_tumor_records(out["label_tumors"])["reason"] == "not_drawn"

    real = dict(case)
    real["label"] = case["label"].clone()
    real["label"][0, 60, 50, 60] = 2  # one real tumor voxel is enough
    out = _medium()(real)
    assert out["image"] is case["image"] and out["label"] is real["label"]
    assert load_tumor_records(out["label_tumors"]) == {
        "applied": False, "reason": "has_tumor", "seed": None, "tumor_type": None,
        "tumors": [], "params": {},
    }

    empty = dict(case, label=torch.zeros_like(case["label"]))
    out = _medium()(empty)
    assert out["image"] is case["image"]
    assert load_tumor_records(out["label_tumors"])["reason"] == "empty_liver"


def test_monai_plain_arrays_need_spacing(case):
    plain = {"image": _np(case["image"]), "label": _np(case["label"]).astype(bool)}
    with pytest.raises(ValueError, match="spacing"):
        _medium()(plain)

    # A NIfTI pixdim gives the same tumors as the affine (same spacing and cranio-caudal axis).
    plain["image_meta_dict"] = {"pixdim": np.array([1.0, 3.0, 3.0, 3.0, 1.0, 0.0, 0.0, 0.0])}
    out = _medium().set_random_state(seed=7)(plain)
    ref = _medium().set_random_state(seed=7)(case)
    assert isinstance(out["image"], np.ndarray) and out["image"].dtype == np.float32
    assert out["label"].dtype == np.uint8  # bool cannot hold 2
    assert np.array_equal(out["image"], _np(ref["image"]))
    assert np.array_equal(out["label"], _np(ref["label"]))


def test_monai_rejects_bad_input(case):
    with pytest.raises(ValueError, match="exactly one image key"):
        RandTumorSynthesisd(["image", "other"], "label")
    with pytest.raises(ValueError, match="channel-first"):
        _medium()(dict(case, image=case["image"][0]))
    with pytest.raises(ValueError, match="one grid"):
        _medium()(dict(case, label=case["label"][:, :-1]))
    with pytest.raises(KeyError):
        _medium()({"image": case["image"]})
    out = _medium(allow_missing_keys=True)({"image": case["image"]})
    assert load_tumor_records(out["label_tumors"])["reason"] == "missing_key"


def _run_loader(dataset: Dataset, seed: int) -> list[dict]:
    set_determinism(seed=seed)
    try:
        return list(DataLoader(dataset, batch_size=1, num_workers=2))
    finally:
        set_determinism(seed=None)


def test_monai_dataloader_workers_differ_and_reproduce():
    transform = Compose([_loader(), RandTumorSynthesisd("image", "label", prob=1.0)])
    dataset = Dataset([dict(FILES) for _ in range(4)], transform=transform)
    first, second = _run_loader(dataset, 0), _run_loader(dataset, 0)

    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert a["label_tumors"] == b["label_tumors"]
    records = [load_tumor_records(batch["label_tumors"])[0] for batch in first]
    assert all(r["applied"] for r in records)
    assert len({r["seed"] for r in records}) == 4
    # Samples 0 and 1 come from different workers: each worker has its own seed.
    assert not torch.equal(first[0]["label"], first[1]["label"])

    other = _run_loader(dataset, 1)
    assert not torch.equal(first[0]["label"], other[0]["label"])


def test_monai_records_survive_collation(case):
    real = dict(case, label=case["label"].clone())
    real["label"][0, 60, 50, 60] = 2
    loader = DataLoader(Dataset([case, real], transform=_medium()), batch_size=2)
    (batch,) = list(loader)
    assert batch["image"].shape == (2, 1, 122, 101, 112)
    records = load_tumor_records(batch["label_tumors"])
    assert [r["applied"] for r in records] == [True, False]
    assert records[0]["tumor_type"] == "medium" and records[1]["reason"] == "has_tumor"


# --------------------------------------------------------------------------------------------
# TorchIO


@pytest.fixture(scope="module")
def subject() -> tio.Subject:
    organs = nib.load(TS_ORGANS)
    liver = torch.from_numpy((np.asarray(organs.dataobj) == TS_LIVER).astype(np.uint8))[None]
    return tio.Subject(
        ct=tio.ScalarImage(TS_CT), label=tio.LabelMap(tensor=liver, affine=organs.affine)
    )


def _synth(subject: tio.Subject, seed: int, **kwargs) -> tio.Subject:
    kwargs.setdefault("tumor_probs", {"medium": 1})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RandomTumorSynthesis(record_key="tumors", **kwargs)(subject)


def test_torchio_pastes_tumors_in_the_liver(subject):
    out = _synth(subject, 3)
    assert out.ct.data.dtype == torch.float32 and out.label.data.dtype == torch.uint8
    assert np.array_equal(out.ct.affine, subject.ct.affine)
    assert np.array_equal(out.label.affine, subject.label.affine)
    liver = subject.label.data[0].numpy() > 0
    lab = out.label.data[0].numpy()
    assert set(np.unique(lab)) == {0, 1, 2}
    assert not np.any((lab == 2) & ~liver)
    changed = out.ct.data[0].numpy() != subject.ct.data[0].numpy()
    assert changed.any() and not np.any(changed & ~liver)

    record = load_tumor_records(out["tumors"])
    lo, hi = MEDIUM_SEMI_AXES_MM
    assert record["tumor_type"] == "medium"
    assert all(lo <= a <= hi for t in record["tumors"] for a in t["semi_axes_mm"])
    tumor_ml = (lab == 2).sum() * VOXEL_MM3 / 1000.0
    assert sum(t["volume_ml"] for t in record["tumors"]) == pytest.approx(tumor_ml, rel=0.5)


def test_torchio_manual_seed_reproduces(subject):
    a, b, c = _synth(subject, 3), _synth(subject, 3), _synth(subject, 4)
    assert torch.equal(a.ct.data, b.ct.data) and torch.equal(a.label.data, b.label.data)
    assert not torch.equal(a.label.data, c.label.data)

    # Inside a Compose with intensity transforms after it.
    pipeline = tio.Compose([RandomTumorSynthesis(), tio.RescaleIntensity((0, 1))])
    with torch.random.fork_rng():
        torch.manual_seed(3)
        out = pipeline(subject)
    assert float(out.ct.data.max()) == 1.0 and set(out.label.data.unique().tolist()) == {0, 1, 2}


def test_torchio_passes_through_unchanged_subjects(subject):
    assert _synth(subject, 3, p=0.0) is subject

    real = copy.deepcopy(subject)
    real.label.data[0, 60, 50, 60] = 2
    out = _synth(real, 3)
    assert torch.equal(out.ct.data, subject.ct.data)
    assert torch.equal(out.label.data, real.label.data)
    assert load_tumor_records(out["tumors"])["reason"] == "has_tumor"


def test_torchio_loader_workers_differ_and_reproduce(subject):
    transform = RandomTumorSynthesis(record_key="tumors")
    dataset = tio.SubjectsDataset([subject] * 4, transform=transform)

    def run(batch_size: int = 1) -> list[dict]:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return list(tio.SubjectsLoader(dataset, batch_size=batch_size, num_workers=2))

    first, second = run(), run()
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["label"]["data"], b["label"]["data"])
        assert a["tumors"] == b["tumors"]
    # Batches 0 and 1 come from different workers, each with its own torch seed.
    assert not torch.equal(first[0]["label"]["data"], first[1]["label"]["data"])

    batch = run(batch_size=2)[0]  # the records collate into a list of JSON strings
    assert batch["label"]["data"].shape == (2, 1, 122, 101, 112)
    assert [r["applied"] for r in load_tumor_records(batch["tumors"])] == [True, True]


# --------------------------------------------------------------------------------------------
# import hygiene


def test_core_and_adapters_package_import_no_framework():
    code = (
        "import sys, synthtumor.synthesis, synthtumor.adapters\n"
        "print(','.join(m for m in ('monai', 'torchio', 'torch', 'typer') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "", result.stdout


def test_clipping_warnings_go_into_the_record_not_the_log(recwarn) -> None:
    """A patch with a thin sliver of liver: tumors are clipped, and the loader stays quiet."""
    ct = np.full((1, 40, 40, 40), 60.0, dtype=np.float32)
    label = np.zeros((1, 40, 40, 40), dtype=np.uint8)
    label[0, 5:35, 5:35, 18:21] = 1  # 9 mm thick at 3 mm voxels
    meta = {"affine": np.diag([3.0, 3.0, 3.0, 1.0])}
    t = RandTumorSynthesisd("image", label_key="label", prob=1.0, tumor_probs={"large": 1})
    t.set_random_state(seed=1)
    out = t({"image": ct, "label": label, "image_meta_dict": meta})
    record = load_tumor_records(out["label_tumors"])
    assert record["applied"] and any("smaller than large" in w
                                     for w in record["params"]["warnings"])
    assert not [w for w in recwarn if "smaller than" in str(w.message)]


# --------------------------------------------------------------------------------------------
# non-HU input, multi-organ maps, TorchIO records with p < 1


def test_monai_refuses_an_image_that_is_not_in_hu(case):
    """After ScaleIntensityRanged (or z-scoring) tumors would be drawn in HU into [0, 1] data:
    a clear error instead of tumors at -84 in a [0, 1] window."""
    from monai.transforms import NormalizeIntensityd, ScaleIntensityRanged

    scaled = ScaleIntensityRanged("image", a_min=-21, a_max=189, b_min=0.0, b_max=1.0,
                                  clip=True)(case)
    zscored = NormalizeIntensityd("image")(case)
    for data in (scaled, zscored):
        with pytest.raises(ValueError, match="not in HU") as err:
            _medium().set_random_state(seed=7)(data)
        assert "before any intensity scaling" in str(err.value) and "\n" not in str(err.value)
    # the same case in HU is fine (and a patch with a sliver of liver is not judged)
    assert load_tumor_records(_medium()(case)["label_tumors"])["applied"]


def test_torchio_and_nnunet_step_refuse_non_hu(subject):
    scaled = tio.RescaleIntensity((0, 1))(subject)
    with pytest.raises(ValueError, match="RandomTumorSynthesis: the image is not in HU"):
        _synth(scaled, 3)

    # nnU-Net: a normalisation that does not match the data (here: none) is caught too
    from synthtumor.nnunet.transform import CTIntensity, patch_affine, synthesize_normalised

    hu = subject.ct.data[0].numpy().astype(np.float32)
    seg = subject.label.data[0].numpy().astype(np.int16)
    true = CTIntensity(mean=99.0, std=40.0, lower=-50.0, upper=250.0)
    normalised = true.from_hu(hu)
    wrong = CTIntensity(mean=0.0, std=1.0, lower=-1e6, upper=1e6)
    with pytest.raises(ValueError, match="nnUNetTrainerSynthTumor: the image is not in HU"):
        synthesize_normalised(normalised.copy(), seg.copy(), np.random.default_rng(0), wrong,
                              patch_affine((3.0, 3.0, 3.0), 2))
    assert synthesize_normalised(normalised.copy(), seg.copy(), np.random.default_rng(0), true,
                                 patch_affine((3.0, 3.0, 3.0), 2)) is not None


def test_monai_multi_organ_map_with_liver_label(case):
    """TotalSegmentator's organ map (liver = 5) straight from disk: liver_label=5 pastes tumors
    into the liver only; without it the sample is skipped with one warning, not silently."""
    organs = LoadImaged("label")({"label": str(TS_ORGANS)})["label"][None]
    data = dict(case, label=organs)
    liver = _np(organs)[0] == TS_LIVER
    assert len(np.unique(_np(organs))) > 3  # many organs, kidney among them as id 2

    out = _medium(liver_label=TS_LIVER).set_random_state(seed=7)(data)
    record = load_tumor_records(out["label_tumors"])
    assert record["applied"] and record["tumor_type"] == "medium"
    lab = _np(out["label"])[0]
    assert set(np.unique(lab)) == {0, 1, 2}
    assert np.array_equal(lab > 0, liver)  # other organs -> 0, the liver keeps its outline
    changed = _np(out["image"])[0] != _np(case["image"])[0]
    assert changed.any() and not np.any(changed & ~liver)
    # the same tumors as from the 0/1 liver mask
    ref = _medium().set_random_state(seed=7)(case)
    assert np.array_equal(lab, _np(ref["label"])[0])

    import synthtumor.adapters._common as common

    common._warned.clear()
    with pytest.warns(UserWarning, match="liver_label=") as caught:
        skipped = [_medium()(data) for _ in range(3)]
    assert len([w for w in caught if "liver_label=" in str(w.message)]) == 1  # once
    assert {load_tumor_records(s["label_tumors"])["reason"] for s in skipped} == \
        {"unexpected_labels"}
    assert all(s["image"] is case["image"] for s in skipped)


def test_liver_and_tumor_labels_skip_real_tumors_in_organ_maps(case, subject):
    organs = LoadImaged("label")({"label": str(TS_ORGANS)})["label"][None].clone()
    organs[0, 60, 50, 60] = 99  # a real tumor, id 99, inside the liver
    out = _medium(liver_label=TS_LIVER, tumor_label=99)(dict(case, label=organs))
    assert load_tumor_records(out["label_tumors"])["reason"] == "has_tumor"

    organ_map = tio.LabelMap(TS_ORGANS)
    tio_subject = tio.Subject(ct=subject.ct, label=organ_map)
    out = _synth(tio_subject, 3, liver_label=TS_LIVER)
    assert load_tumor_records(out["tumors"])["applied"]
    lab = out.label.data[0].numpy()
    assert np.array_equal(lab > 0, organ_map.data[0].numpy() == TS_LIVER)


def test_torchio_record_is_written_when_p_skips_and_collates(subject):
    """p < 1 with a record key: every subject carries a record (empty when skipped)."""
    transform = RandomTumorSynthesis(record_key="tumors", tumor_probs={"tiny": 1}, p=0.5)
    dataset = tio.SubjectsDataset([subject] * 6, transform=transform)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        (batch,) = list(tio.SubjectsLoader(dataset, batch_size=6, num_workers=0))
    records = load_tumor_records(batch["tumors"])
    assert len(records) == 6
    reasons = {r["reason"] for r in records}
    assert None in reasons and "not_drawn" in reasons, records  # both kinds in one batch
    for r, label in zip(records, batch["label"]["data"], strict=True):
        assert r["applied"] == bool((label == 2).any())
        if not r["applied"]:
            assert r == {"applied": False, "reason": "not_drawn", "seed": None,
                         "tumor_type": None, "tumors": [], "params": {}}


def test_torchio_skipped_subject_gets_a_fresh_record(subject):
    """A subject transformed before and then skipped by p does not keep the old record."""
    once = _synth(copy.deepcopy(subject), 3)
    assert load_tumor_records(once["tumors"])["applied"]
    again = _synth(once, 4, p=0.0)
    assert again is once and load_tumor_records(again["tumors"])["reason"] == "not_drawn"


# --------------------------------------------------------------------------------------------
# Vessels found once per case (FindVesselsd) and avoided by the synthesis


@pytest.fixture(scope="module")
def contrast_case() -> dict:
    """The contrast-enhanced DICOM series (portal venous: bright hepatic vessels) and its 0/1
    liver, as channel-first MetaTensors with the series' affine."""
    from conftest import DICOM_DIR, DICOM_ORGANS, TS_LIVER

    from synthtumor.imaging import read_ct, read_mask

    ct = read_ct(DICOM_DIR)
    liver = (read_mask(DICOM_ORGANS, ct, label=TS_LIVER).array > 0).astype(np.uint8)
    affine = torch.as_tensor(ct.affine, dtype=torch.float64)
    return {"image": MetaTensor(ct.array.astype(np.float32)[None], affine=affine),
            "label": MetaTensor(liver[None], affine=affine)}


def test_find_vesselsd_is_find_vessels_of_the_case(contrast_case):
    from synthtumor.adapters.monai import FindVesselsd
    from synthtumor.conventions import spacing_of
    from synthtumor.synthesis.placement import find_vessels

    out = FindVesselsd("image", "label")(dict(contrast_case))
    vessels = _np(out["vessels"])
    image, liver = _np(contrast_case["image"])[0], _np(contrast_case["label"])[0] > 0
    expected = find_vessels(image, liver, spacing_of(_np(contrast_case["image"].affine)))
    assert vessels.dtype == np.uint8 and vessels.shape == (1, *image.shape)
    assert np.array_equal(vessels[0] > 0, expected) and expected.sum() > 1000
    assert np.median(image[expected]) > np.median(image[liver]) + 30  # bright: vessels
    assert isinstance(out["vessels"], MetaTensor)
    assert torch.equal(out["vessels"].affine, contrast_case["label"].affine)


def test_monai_vessels_key_avoids_the_given_vessels(contrast_case):
    """With the case's own mask the tumors are those of finding it in the sample (the same
    mask, found once); with another mask they avoid that one instead."""
    from synthtumor.adapters.monai import FindVesselsd
    from synthtumor.synthesis import SynthesisConfig

    config = SynthesisConfig.realistic(tumor_type="small")
    sample = FindVesselsd("image", "label")(dict(contrast_case))
    outputs = []
    for vessels_key in (None, "vessels"):
        synth = RandTumorSynthesisd("image", "label", prob=1.0, config=config,
                                    vessels_key=vessels_key)
        synth.set_random_state(seed=3)
        outputs.append(synth(dict(sample)))
    assert torch.equal(outputs[0]["image"], outputs[1]["image"])
    assert torch.equal(outputs[0]["label"], outputs[1]["label"])
    assert (_np(outputs[1]["label"]) == 2).any()
    record = load_tumor_records(outputs[1]["label_tumors"])
    assert record["params"]["vessel_voxels"] == int(_np(sample["vessels"]).sum())
    # a mask of vessels everywhere in the liver: every tumor overlaps one
    everywhere = dict(sample, vessels=sample["label"].clone())
    synth = RandTumorSynthesisd("image", "label", prob=1.0, config=config,
                                vessels_key="vessels")
    synth.set_random_state(seed=3)
    record = load_tumor_records(synth(everywhere)["label_tumors"])
    assert record["tumors"] and all("vessel_overlap" in t["effects"] for t in record["tumors"])
    with pytest.raises(KeyError, match="vessels"):
        synth(dict(contrast_case))  # the key was asked for and is missing


def _torchio_contrast_subject(case: dict) -> tio.Subject:
    affine = case["image"].affine.numpy()
    return tio.Subject(ct=tio.ScalarImage(tensor=case["image"].as_tensor().clone(), affine=affine),
                       label=tio.LabelMap(tensor=case["label"].as_tensor().clone(), affine=affine))


def test_torchio_find_vessels_is_find_vessels_of_the_case(contrast_case):
    from synthtumor.adapters.torchio import FindVessels
    from synthtumor.conventions import spacing_of
    from synthtumor.synthesis.placement import find_vessels

    out = FindVessels()(_torchio_contrast_subject(contrast_case))
    image, liver = _np(contrast_case["image"])[0], _np(contrast_case["label"])[0] > 0
    expected = find_vessels(image, liver, spacing_of(_np(contrast_case["image"].affine)))
    assert isinstance(out["vessels"], tio.LabelMap) and out["vessels"].data.dtype == torch.uint8
    assert np.array_equal(out["vessels"].data[0].numpy() > 0, expected) and expected.sum() > 1000
    assert np.array_equal(out["vessels"].affine, out["ct"].affine)


def test_torchio_vessels_name_avoids_the_given_vessels(contrast_case):
    """As for MONAI: the case's own mask gives the tumors of finding it on every call; a mask
    everywhere makes every tumor overlap one; a patch sampler crops the mask with the CT."""
    from synthtumor.adapters.torchio import FindVessels
    from synthtumor.synthesis import SynthesisConfig

    config = SynthesisConfig.realistic(tumor_type="small")
    subject = FindVessels()(_torchio_contrast_subject(contrast_case))
    outputs = [_synth(subject, 3, tumor_probs=None, config=config, vessels_name=name)
               for name in (None, "vessels")]
    assert torch.equal(outputs[0].ct.data, outputs[1].ct.data)
    assert torch.equal(outputs[0].label.data, outputs[1].label.data)
    assert (outputs[1].label.data == 2).any()
    record = load_tumor_records(outputs[1]["tumors"])
    assert record["params"]["vessel_voxels"] == int(subject["vessels"].data.sum())

    everywhere = tio.Subject(ct=subject.ct, label=subject.label,
                             vessels=tio.LabelMap(tensor=subject.label.data.clone(),
                                                  affine=subject.label.affine))
    out = _synth(everywhere, 3, tumor_probs=None, config=config, vessels_name="vessels")
    record = load_tumor_records(out["tumors"])
    assert record["tumors"] and all("vessel_overlap" in t["effects"] for t in record["tumors"])
    with pytest.raises(KeyError):
        _synth(_torchio_contrast_subject(contrast_case), 3, vessels_name="vessels")

    patch = tio.Crop((40, 40, 60, 60, 10, 10))(subject)  # as a patch sampler crops
    assert patch["vessels"].shape == patch.ct.shape
    assert torch.equal(patch["vessels"].data,
                       subject["vessels"].data[:, 40:-40, 60:-60, 10:-10])
