"""nnU-Net v2 integration on the real CTs: export (shards, merge, nnU-Net's integrity check),
the trainer's synthesis in nnU-Net's normalised space, trainer registration, and a CPU training
run whose batches carry synthesized tumors."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import DICOM_DIR, DICOM_ORGANS, LITS_CT, LITS_LABEL, TS_CT, TS_ORGANS, TS_SMALL
from typer.testing import CliRunner

from synthtumor.cli import app
from synthtumor.imaging import read_ct, read_mask, write_nifti
from synthtumor.nnunet.export import ExportSettings, run_export
from synthtumor.nnunet.shards import make_units, parse_shard, shard_units, variant_seed

pytest.importorskip("nnunetv2")

from synthtumor.nnunet.transform import (  # noqa: E402 - needs nnunetv2's batchgeneratorsv2
    CTIntensity,
    SynthesisTransform,
    patch_affine,
    synthesize_normalised,
)

TS_SMALL_ORGANS = TS_SMALL.with_name("totalseg_ct_small_organs.nii.gz")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _nnunet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.delenv(var, raising=False)


def _write_case(folder: Path, case: str, ct_path: Path, organs: Path) -> dict[str, object]:
    """CT as int16 NIfTI (DICOM converted) and TotalSegmentator's liver (5) as a 0/1 mask."""
    ct = read_ct(ct_path)
    liver = read_mask(organs, ct, label=5)
    write_nifti(folder / f"{case}_ct.nii.gz", np.rint(ct.array).astype(np.int16), ct.affine,
                kind="ct")
    write_nifti(folder / f"{case}_liver.nii.gz", liver.array, ct.affine, kind="label")
    return {"image": f"{case}_ct.nii.gz", "label": f"{case}_liver.nii.gz", "case": case,
            "tumor": False}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """healthy.json over the three healthy patients (TotalSegmentator CT, its 30-slice part,
    the contrast DICOM series), labels converted to 0/1."""
    folder = tmp_path_factory.mktemp("healthy")
    items = [_write_case(folder, "tsfull", TS_CT, TS_ORGANS),
             _write_case(folder, "tssmall", TS_SMALL, TS_SMALL_ORGANS),
             _write_case(folder, "tsdicom", DICOM_DIR, DICOM_ORGANS)]
    path = folder / "healthy.json"
    path.write_text(json.dumps({"training": items}))
    return path


def _sub_datalist(healthy: Path, cases: list[str], name: str) -> Path:
    items = [dict(it, image=str(healthy.parent / it["image"]),
                  label=str(healthy.parent / it["label"]))
             for it in json.loads(healthy.read_text())["training"] if it["case"] in cases]
    path = healthy.parent / name
    path.write_text(json.dumps({"training": items}))
    return path


def _export_args(datalist: Path, out: Path, *extra: str, dataset_id: int = 501,
                 name: str = "LiverSynth", variants: int = 2) -> list[str]:
    return ["export", "nnunet", str(datalist), "--out", str(out), "--dataset-id",
            str(dataset_id), "--name", name, "--variants", str(variants), *extra]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "export.json"}


# --------------------------------------------------------------------------------------------
# export


def test_export_passes_nnunet_check_and_shards_reproduce_it(healthy: Path, tmp_path: Path
                                                            ) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    raw = tmp_path / "raw"
    result = runner.invoke(app, _export_args(healthy, raw, "--seed", "7", "--workers", "2"))
    assert result.exit_code == 0, result.output
    assert "43.5 vs 52.9" in result.output
    folder = raw / "Dataset501_LiverSynth"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT"}
    assert meta["labels"] == {"background": 0, "liver": 1, "tumor": 2}
    assert meta["numTraining"] == 6 and meta["file_ending"] == ".nii.gz"

    sources = {it["case"]: it for it in json.loads(healthy.read_text())["training"]}
    for case, item in sources.items():
        src = nib.load(healthy.parent / item["image"])
        src_ct = np.asarray(src.dataobj)
        src_liver = np.asarray(nib.load(healthy.parent / item["label"]).dataobj)
        for v in range(2):
            name = f"{case}_v{v:03d}"
            img = nib.load(folder / "imagesTr" / f"{name}_0000.nii.gz")
            lab = np.asarray(nib.load(folder / "labelsTr" / f"{name}.nii.gz").dataobj)
            ct = np.asarray(img.dataobj)
            record = json.loads((folder / "synthtumor" / f"{name}.json").read_text())
            assert np.allclose(img.affine, src.affine) and ct.shape == src_ct.shape
            assert ct.dtype == np.int16 and lab.dtype == np.uint8
            assert set(np.unique(lab)) == {0, 1, 2}
            # tumors replace liver only, and the CT changed only inside the liver
            assert np.array_equal(lab > 0, src_liver > 0)
            assert not np.any((ct != src_ct) & (src_liver == 0))
            assert ct[lab == 2].mean() < src_ct[src_liver > 0].mean() - 10  # hypodense (HU)
            assert record["seed"] == variant_seed(7, case, v) and record["base_seed"] == 7
            assert record["tumors"] and record["source"]["case"] == case
    verify_dataset_integrity(str(folder), 1)  # nnU-Net's own check: raises if anything is off

    # two shards write exactly the unsharded run's cases, byte for byte; merge then completes
    raw2 = tmp_path / "raw2"
    settings = ExportSettings(healthy, raw2, 501, "LiverSynth", 2, seed=7)
    first = run_export(settings, shard=(0, 2))
    assert first.dataset_json is None and len(first.written) == 3
    failed = runner.invoke(app, _export_args(healthy, raw2, "--seed", "7", "--merge"))
    assert failed.exit_code == 2 and "3 of 6 cases are not finished" in failed.output
    second = run_export(settings, shard=(1, 2))
    assert not set(first.written) & set(second.written)
    merged = runner.invoke(app, _export_args(healthy, raw2, "--seed", "7", "--merge"))
    assert merged.exit_code == 0, merged.output
    assert _files(folder) == _files(raw2 / "Dataset501_LiverSynth")

    # a re-run finds everything finished and rewrites nothing
    stamp = (folder / "imagesTr" / "tsfull_v000_0000.nii.gz").stat().st_mtime_ns
    again = runner.invoke(app, _export_args(healthy, raw, "--seed", "7"))
    assert again.exit_code == 0 and "0 case(s) written, 6 already finished" in again.output
    assert (folder / "imagesTr" / "tsfull_v000_0000.nii.gz").stat().st_mtime_ns == stamp


def test_units_seeds_and_shards_are_a_partition() -> None:
    units = make_units(["b", "a", "c"], 3, base_seed=1)
    assert [u.name for u in units[:3]] == ["a_v000", "a_v001", "a_v002"]
    parts = [shard_units(units, i, 4) for i in range(4)]
    assert sorted(u.name for p in parts for u in p) == sorted(u.name for u in units)
    assert len({u.seed for u in units}) == 9
    assert variant_seed(1, "a", 0) == units[0].seed != variant_seed(2, "a", 0)
    assert 0 <= variant_seed(2**40, "a" * 300, 10**6) < 2**63
    assert [u.name for u in make_units(["x"], 0, 0)] == ["x"]


@pytest.mark.parametrize("spec", ["3/2", "0/0", "2/2", "garbage", "1/", "-1/2"])
def test_bad_shard_spec_is_one_line(healthy: Path, tmp_path: Path, spec: str) -> None:
    with pytest.raises(ValueError):
        parse_shard(spec)
    result = runner.invoke(app, _export_args(healthy, tmp_path, "--shard", spec))
    assert result.exit_code == 2
    assert result.output.startswith("error:") and result.output.count("\n") == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("spec", [" 0/2", "0/2 ", "0 / 2", "00/2", "0/02", "+0/2",
                                  "\uff11/2", "\u0661/2", "1/\uff12", "0/2\n", ""])
def test_shard_spec_is_parsed_strictly(spec: str) -> None:
    """One spelling per shard: no blanks, no leading zeros, ASCII digits only."""
    with pytest.raises(ValueError, match="plain digits"):
        parse_shard(spec)


def test_shard_spec_accepts_plain_forms() -> None:
    assert parse_shard("0/2") == (0, 2) and parse_shard("1/2") == (1, 2)
    assert parse_shard("10/16") == (10, 16) and parse_shard("0/1") == (0, 1)


def test_bad_inputs(healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = _sub_datalist(healthy, ["tssmall"], "small.json")
    raw = tmp_path / "raw"

    # a dataset folder holding other content: refused, then replaced with --overwrite
    (raw / "Dataset501_LiverSynth").mkdir(parents=True)
    (raw / "Dataset501_LiverSynth" / "notes.txt").write_text("mine")
    result = runner.invoke(app, _export_args(small, raw, variants=1))
    assert result.exit_code == 2 and "holds other content" in result.output
    assert (raw / "Dataset501_LiverSynth" / "notes.txt").exists()
    result = runner.invoke(app, _export_args(small, raw, "--overwrite", variants=1))
    assert result.exit_code == 0, result.output
    assert not (raw / "Dataset501_LiverSynth" / "notes.txt").exists()

    # the same folder exported with other settings: refused, nothing touched
    result = runner.invoke(app, _export_args(small, raw, "--seed", "3", variants=1))
    assert result.exit_code == 2 and "other settings" in result.output
    # --overwrite with a shard would let parallel shards delete each other's work
    result = runner.invoke(app, _export_args(small, raw, "--overwrite", "--shard", "0/2",
                                             variants=1))
    assert result.exit_code == 2 and "--shard" in result.output

    # dataset id clash, in RAW_DIR and in $nnUNet_raw
    result = runner.invoke(app, _export_args(small, raw, name="Other", variants=1))
    assert result.exit_code == 2 and "already uses dataset id 501" in result.output
    elsewhere = tmp_path / "nnunet_raw"
    (elsewhere / "Dataset777_Taken").mkdir(parents=True)
    monkeypatch.setenv("nnUNet_raw", str(elsewhere))
    result = runner.invoke(app, _export_args(small, raw, dataset_id=777, variants=1))
    assert result.exit_code == 2 and "Dataset777_Taken" in result.output
    assert not (raw / "Dataset777_LiverSynth").exists()

    # a label with real tumors is not a healthy liver
    tumor = tmp_path / "tumor.json"
    tumor.write_text(json.dumps({"training": [
        {"image": str(LITS_CT), "label": str(LITS_LABEL), "case": "lits117"}]}))
    result = runner.invoke(app, _export_args(tumor, raw, dataset_id=502, variants=1))
    assert result.exit_code == 2 and "holds tumor voxels" in result.output
    assert not list((raw / "Dataset502_LiverSynth" / "imagesTr").iterdir())

    # out-of-range id, bad name, missing options
    for args in (_export_args(small, raw, dataset_id=1000), _export_args(small, raw, name="a b"),
                 ["export", "nnunet", str(small), "--out", str(raw)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and result.output.startswith("error:"), result.output


# --------------------------------------------------------------------------------------------
# synthesis in nnU-Net's normalised space


@pytest.fixture(scope="module")
def normalised_patch() -> tuple[np.ndarray, np.ndarray, CTIntensity, np.ndarray]:
    """totalseg_ct (3 mm) normalised as nnU-Net's CTNormalization would, with intensity
    properties measured on its liver like nnU-Net's fingerprint; plus the HU and labels."""
    ct = read_ct(TS_CT)
    liver = read_mask(TS_ORGANS, ct, label=5).array
    fg = ct.array[liver > 0]
    intensity = CTIntensity.from_plans({"0": {
        "mean": float(fg.mean()), "std": float(fg.std()),
        "percentile_00_5": float(np.percentile(fg, 0.5)),
        "percentile_99_5": float(np.percentile(fg, 99.5))}})
    return intensity.from_hu(ct.array), liver.astype(np.int16), intensity, ct.array


def test_synthesis_in_normalised_space(normalised_patch: tuple) -> None:
    image, seg, intensity, hu = normalised_patch
    inside = (seg > 0) & (hu >= intensity.lower) & (hu <= intensity.upper)
    assert inside.sum() > 0.98 * (seg > 0).sum()
    assert np.allclose(intensity.to_hu(image)[inside], hu[inside], atol=1e-3)
    assert np.allclose(intensity.to_hu(image)[(seg > 0) & (hu < intensity.lower)],
                       intensity.lower, atol=1e-3)  # clipped, as nnU-Net's preprocessing does
    img, lab = image.copy(), seg.copy()
    affine = patch_affine((3.0, 3.0, 3.0), cc_axis=2)
    result = synthesize_normalised(img, lab, np.random.default_rng(5), intensity, affine)
    assert result is not None and result.tumors
    tumor = lab == 2
    assert tumor.any() and np.array_equal(lab > 0, seg > 0)
    assert np.array_equal(img[seg == 0], image[seg == 0])  # nothing outside the liver moved
    assert img.min() >= intensity.from_hu(np.float32(intensity.lower)) - 1e-6  # clipped as nnU-Net
    # identical to synthesizing the HU image directly, then normalising
    from synthtumor.synthesis import synthesize

    direct = synthesize(intensity.to_hu(image), (seg > 0).astype(np.uint8),
                        np.random.default_rng(5), affine=affine)
    assert np.array_equal(direct.label == 2, tumor)
    assert np.allclose(intensity.from_hu(direct.ct)[tumor], img[tumor], atol=1e-5)
    assert img[tumor].mean() < image[seg == 1].mean() - 2.0  # > 2 liver std darker
    # measured: how much of the tumor sits at the lower clip (the fingerprint of healthy livers)
    at_clip = float(np.mean(np.isclose(intensity.to_hu(img[tumor]), intensity.lower, atol=0.01)))
    print(f"tumor voxels at the lower clip {intensity.lower:.0f} HU: {at_clip:.1%}")
    # a patch that already holds tumor, or no liver, is left alone
    again = lab.copy()
    assert synthesize_normalised(img, again, np.random.default_rng(1), intensity, affine) is None
    assert np.array_equal(again, lab)
    empty = np.zeros_like(seg)
    assert synthesize_normalised(image.copy(), empty, np.random.default_rng(1), intensity,
                                 affine) is None


def test_transform_is_picklable_reproducible_and_per_worker(normalised_patch: tuple,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import torch

    image, seg, intensity, _ = normalised_patch
    box = (slice(20, 84), slice(20, 84), slice(30, 94))  # a 64^3 patch through the liver

    def run(transform: SynthesisTransform) -> np.ndarray:
        out = transform(image=torch.from_numpy(image[box][None].copy()),
                        segmentation=torch.from_numpy(seg[box][None].copy()))
        return out["segmentation"][0].numpy()

    make = lambda: SynthesisTransform(intensity, (3.0, 3.0, 3.0), 2, seed=11)  # noqa: E731
    first, copy = make(), pickle.loads(pickle.dumps(make()))
    assert copy._rng is None
    a, b = run(first), run(copy)
    assert np.array_equal(a, b) and (a == 2).any() and first.applied == 1
    # another worker process (multiprocessing identity) draws other tumors
    worker = make()
    monkeypatch.setattr(multiprocessing.current_process(), "_identity", (1,))
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert not np.array_equal(run(worker), a)
    never = SynthesisTransform(intensity, (3.0, 3.0, 3.0), 2, probability=0.0)
    assert not (run(never) == 2).any()


# --------------------------------------------------------------------------------------------
# trainer registration and a CPU training run


def test_trainer_registration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from synthtumor.nnunet.install import (
        SHIM_NAME,
        install_trainer,
        nnunet_trainer_dir,
        uninstall_trainer,
    )
    from synthtumor.nnunet.trainer import nnUNetTrainerSynthTumor

    # into a folder named by nnUNet_extTrainer (for read-only installs)
    ext = tmp_path / "ext"
    ext.mkdir()
    result = runner.invoke(app, ["export", "nnunet", "--install-trainer", "--trainer-dir",
                                 str(ext)])
    assert result.exit_code == 0 and (ext / SHIM_NAME).is_file(), result.output
    # nnU-Net's lookup there is this call (find_objects.py, 2.8.1); the full by-name lookup
    # would first import every trainer of nnU-Net's package (see the report on torchvision)
    found = recursive_find_python_class(str(ext), "nnUNetTrainerSynthTumor", None,
                                        base_folder=str(ext),
                                        cleanup_imports_from_base_folder=True)
    assert found is nnUNetTrainerSynthTumor

    # into nnU-Net's own trainer package: found by its default lookup; idempotent; removable
    package = nnunet_trainer_dir()
    if not os.access(package, os.W_OK):
        pytest.skip(f"{package} is read-only")
    was_installed = uninstall_trainer()[1]  # a user's installation is restored at the end
    try:
        assert install_trainer() == (package / SHIM_NAME, True)
        assert install_trainer() == (package / SHIM_NAME, False)
        assert recursive_find_trainer_class_by_name("nnUNetTrainerSynthTumor") \
            is nnUNetTrainerSynthTumor
    finally:
        result = runner.invoke(app, ["export", "nnunet", "--uninstall-trainer"])
        assert not (package / SHIM_NAME).exists()
        if was_installed:
            install_trainer()
    assert result.exit_code == 0 and "removed" in result.output
    # a file of that name that we did not write is never touched
    (ext / SHIM_NAME).write_text("# someone else's\n")
    result = runner.invoke(app, ["export", "nnunet", "--uninstall-trainer", "--trainer-dir",
                                 str(ext)])
    assert result.exit_code == 2 and "not written by synthtumor" in result.output


@pytest.mark.slow
def test_trainer_puts_synthetic_tumors_into_training_batches(
    healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )

    from synthtumor.nnunet.trainer import nnUNetTrainerSynthTumor

    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"),
                     ("nnUNet_results", "res")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # one augmentation worker process
    monkeypatch.setenv("nnUNet_compile", "false")

    # healthy livers only (labels 0/1): every tumor in a batch is synthesized on the fly
    datalist = _sub_datalist(healthy, ["tsfull", "tssmall"], "two.json")
    run_export(ExportSettings(datalist, tmp_path / "raw", 502, "Healthy", variants=0))
    for label in (tmp_path / "raw" / "Dataset502_Healthy" / "labelsTr").iterdir():
        assert set(np.unique(np.asarray(nib.load(label).dataobj))) == {0, 1}
    extract_fingerprint_dataset(502, num_processes=1, verbose=False, show_progress_bar=False)
    plan_experiment_dataset(502)
    preprocess_dataset(502, configurations=["3d_fullres"], num_processes=[1],
                       show_progress_bar=False)

    # shrink the network and patch for a CPU (the preprocessed data does not depend on them)
    plans_file = tmp_path / "pre" / "Dataset502_Healthy" / "nnUNetPlans.json"
    plans = load_json(str(plans_file))
    config = plans["configurations"]["3d_fullres"]
    config.update(patch_size=[32, 48, 48], batch_size=2)
    config["architecture"]["arch_kwargs"]["features_per_stage"] = [4, 8, 16, 32, 32]
    plans["continue_training"] = False
    props = plans["foreground_intensity_properties_per_channel"]["0"]

    class TinyTrainer(nnUNetTrainerSynthTumor):
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cpu")) -> None:  # noqa: B008
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 3, 1
            self.num_epochs = 1
            self.synthesis_probability, self.synthesis_seed = 1.0, 0
            self.samples: list[tuple[str, int, float, float]] = []

        def train_step(self, batch: dict) -> dict:
            target = batch["target"][0] if isinstance(batch["target"], list) else batch["target"]
            for k, key in enumerate(batch["keys"]):
                t, x = target[k, 0], batch["data"][k, 0]
                self.samples.append((str(key), int((t == 2).sum()),
                                     float(x[t == 2].mean()) if (t == 2).any() else np.nan,
                                     float(x[t == 1].mean())))
            return super().train_step(batch)

    dataset_json = load_json(str(tmp_path / "pre" / "Dataset502_Healthy" / "dataset.json"))
    trainer = TinyTrainer(plans, "3d_fullres", "all", dataset_json, torch.device("cpu"))
    trainer.run_training()

    transform = trainer.dataloader_train.generator.transforms.transforms[0]
    assert isinstance(transform, SynthesisTransform)
    assert transform.intensity == CTIntensity.from_plans({"0": props})
    # spacing per patch axis; nnU-Net's readers put the slice (cranio-caudal) axis first
    assert np.allclose(np.linalg.norm(transform.affine[:3, :3], axis=0), config["spacing"])
    assert np.argmax(np.abs(transform.affine[2, :3])) == plans["transpose_forward"].index(0) == 0
    assert len(trainer.samples) == 6 and {s[0] for s in trainer.samples} <= {"tsfull", "tssmall"}
    with_tumor = [s for s in trainer.samples if s[1] > 0]
    # p = 1, but a random (not foreground-forced) patch may miss the liver, and tumors made in
    # the larger pre-rotation patch may fall outside the final crop; 3 of 6 patches are
    # centred on the liver by nnU-Net's oversampling
    assert len(with_tumor) >= 2
    # the tumors are darker than the liver in the network's (normalised) input
    # (blur, noise and low-resolution simulation may wash out a few-voxel fragment, so weigh
    # by size and require it per patch only for tumors of 200+ voxels)
    weights = np.array([s[1] for s in with_tumor], float)
    tumor_mean = np.average([s[2] for s in with_tumor], weights=weights)
    liver_mean = np.average([s[3] for s in with_tumor], weights=weights)
    assert tumor_mean < liver_mean - 1.0, trainer.samples
    assert all(s[2] < s[3] for s in with_tumor if s[1] >= 200), trainer.samples
    assert (tmp_path / "res" / "Dataset502_Healthy" /
            "TinyTrainer__nnUNetPlans__3d_fullres" / "fold_all" / "checkpoint_final.pth").is_file()


def test_export_profile_shapes_the_tumors_and_reaches_the_trainer(healthy: Path,
                                                                  tmp_path: Path) -> None:
    """`export nnunet --profile P`: the exported tumors come from P, and dataset.json carries
    the config that nnUNetTrainerSynthTumor then synthesizes with (--variants 0)."""
    from synthtumor.nnunet.trainer import stored_synthesis
    from synthtumor.synthesis_options import build_config

    profile = tmp_path / "large.json"
    profile.write_text(json.dumps({
        "format": "synthtumor-profile/1",
        "types": {"large": {"probability": 1.0, "classes": [
            {"name": "large", "radius_mm": 24.0, "count": [2, 2], "elastic_sigma_mm": [5, 10],
             "integer_sigma": True}]}},
        "drop_hu": [30.0, 40.0]}))
    wanted = build_config(profile=profile)
    datalist = _sub_datalist(healthy, ["tsfull"], "one.json")
    raw = tmp_path / "raw"
    result = runner.invoke(app, _export_args(datalist, raw, "--profile", str(profile),
                                             variants=1, dataset_id=503, name="Prof"))
    assert result.exit_code == 0, result.output
    folder = raw / "Dataset503_Prof"
    (record_path,) = (folder / "synthtumor").glob("tsfull*.json")
    record = json.loads(record_path.read_text())
    assert record["tumor_type"] == "large" and len(record["tumors"]) == 2
    assert 30.0 <= record["sample"]["drop_hu"] <= 40.0
    assert all(18.0 <= a <= 30.0 for t in record["tumors"] for a in t["semi_axes_mm"])
    dataset = json.loads((folder / "dataset.json").read_text())
    assert stored_synthesis(dataset) == wanted
    assert stored_synthesis({"labels": {}}) == type(wanted)()  # older exports: the reference

    # resuming the export with another config is refused, naming it
    again = runner.invoke(app, _export_args(datalist, raw, variants=1, dataset_id=503,
                                            name="Prof"))
    assert again.exit_code == 2 and "another synthesis config" in again.output
