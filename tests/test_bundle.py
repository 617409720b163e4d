"""MONAI bundle export: layout and metadata, MONAI's own checks, the inference config run with
``python -m monai.bundle run`` on real CT against a direct Python prediction, the training
config on the real TotalSegmentator case, and bad input.

The checkpoint comes from a tiny real training run (5 mm grid, 32^3 patches, 3 steps) on the
TotalSegmentator case, so every check sees weights written by ``synthtumor train``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import LITS_CT, TS_CT, TS_LIVER, TS_ORGANS
from typer.testing import CliRunner

from synthtumor.bundle.export import export_bundle
from synthtumor.cli import app
from synthtumor.errors import InputError
from synthtumor.imaging import Volume
from synthtumor.imaging.resample import resample_nearest
from synthtumor.train import transforms as train_tf
from synthtumor.train.models import build_model, describe

# Coarse grid (fast on 2 cores). 5 mm, not 6: the 3 mm and 1 mm test CTs then have no voxel
# centre exactly halfway between two 5 mm centres, where nearest-neighbour tie-breaking differs
# (torch rounds halves to even, synthtumor's resampler rounds them up).
SPACING_MM = 5.0
pytestmark = pytest.mark.xdist_group("bundle")  # one worker: the run and the bundle are built once
ROI = (32, 32, 32)
runner = CliRunner()
# Required by MONAI's metadata schema meta_schema_20240725.json (key -> JSON type).
SCHEMA_REQUIRED = {
    "schema": str, "version": str, "monai_version": str, "pytorch_version": str,
    "numpy_version": str, "required_packages_version": dict, "task": str, "description": str,
    "authors": str, "copyright": str, "network_data_format": dict,
}
TENSOR_REQUIRED = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range")


@pytest.fixture(scope="module")
def datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """healthy.json: the TotalSegmentator CT with its liver (label 5) as a 0/1 mask."""
    d = tmp_path_factory.mktemp("bundle_data")
    organs = nib.load(TS_ORGANS)
    liver = (np.asarray(organs.dataobj) == TS_LIVER).astype(np.uint8)
    nib.save(nib.Nifti1Image(liver, organs.affine), d / "liver.nii.gz")
    path = d / "healthy.json"
    path.write_text(json.dumps({"training": [{"image": str(TS_CT), "label": "liver.nii.gz"}]}))
    return path


@pytest.fixture(scope="module")
def run_dir(datalist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 3-step `synthtumor train` run: last.pt, plus best.pt from the training's writer."""
    from synthtumor.train.loop import TrainConfig, save_best, train

    run = tmp_path_factory.mktemp("bundle_run") / "run"
    config = TrainConfig(data=datalist, out=run, roi=ROI, spacing=SPACING_MM, batch_size=2,
                         steps=3, warmup=2, lr=4e-3, workers=0, progress=False)
    train(config)
    state = torch.load(run / "last.pt", weights_only=True)
    model = build_model("unet")
    model.load_state_dict(state["model"])
    save_best(model, describe("unet"), config, 3, 0.5, run)
    return run


@pytest.fixture(scope="module")
def bundle(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(run_dir / "last.pt", tmp_path_factory.mktemp("bundles") / "liver_ct")


@pytest.fixture(scope="module")
def predictions(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m monai.bundle run` on a folder linking two real CTs (read in place)."""
    cts = tmp_path_factory.mktemp("cts")
    for ct in (TS_CT, LITS_CT):
        (cts / ct.name).symlink_to(ct)
    out = tmp_path_factory.mktemp("pred")
    cmd = [sys.executable, "-W", "ignore", "-m", "monai.bundle", "run",
           "--config_file", "configs/inference.json", "--dataset_dir", str(cts),
           "--output_dir", str(out)]
    done = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _python_prediction(ct: Path, weights: dict[str, torch.Tensor]) -> np.ndarray:
    """The same network and training preprocessing, run directly; labels mapped back to the
    CT grid in world space (synthtumor's own nearest-neighbour resampler, not MONAI's Invertd).
    """
    from monai.inferers import sliding_window_inference
    from monai.transforms import (
        EnsureChannelFirst,
        LoadImage,
        Orientation,
        ScaleIntensityRange,
        Spacing,
    )

    img = EnsureChannelFirst()(LoadImage(image_only=True)(str(ct)))
    img = Orientation(axcodes="RAS", labels=train_tf.RAS_LABELS)(img)
    img = Spacing(pixdim=(SPACING_MM,) * 3, mode="bilinear")(img)
    img = ScaleIntensityRange(train_tf.HU_MIN, train_tf.HU_MAX, 0.0, 1.0, clip=True)(img)
    model = build_model("unet")
    model.load_state_dict(weights)
    model.eval()
    with torch.no_grad():
        logits = sliding_window_inference(img[None].float(), ROI, 2, model, overlap=0.5,
                                          mode="gaussian")
    pred = logits.argmax(1)[0].numpy().astype(np.uint8)
    src = nib.load(ct)
    return resample_nearest(Volume(pred, np.asarray(img.affine, np.float64)), src.affine,
                            src.shape)


# ----------------------------------------------------------------------------- layout


def test_layout_metadata_and_weights(bundle: Path, run_dir: Path) -> None:
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert files == ["LICENSE", "configs/inference.json", "configs/logging.conf",
                     "configs/metadata.json", "configs/train.json", "docs/README.md",
                     "models/model.pt"]
    assert not list(bundle.parent.glob(".liver_ct.*"))  # the temporary folder is gone

    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    for key, kind in SCHEMA_REQUIRED.items():
        assert isinstance(meta[key], kind), key
    import monai
    import numpy

    from synthtumor import __version__
    assert meta["monai_version"] == monai.__version__
    assert meta["pytorch_version"] == torch.__version__.split("+")[0]
    assert meta["numpy_version"] == numpy.__version__
    assert meta["required_packages_version"]["synthtumor"] == __version__
    assert {"nibabel", "pytorch-ignite"} <= set(meta["required_packages_version"])
    assert "optional_packages_version" not in meta  # MONAI >= 1.5 would overwrite required
    assert meta["synthtumor_needed_by"]["configs/inference.json"] is False
    assert meta["synthtumor_needed_by"]["configs/train.json"] is True
    assert meta["name"] == "liver_ct" and meta["version"] in meta["changelog"]
    assert "last.pt (step 3)" in meta["changelog"][meta["version"]]
    assert any("Label-Free Liver Tumor Segmentation" in r and "2303.14869" in r
               for r in meta["references"])
    assert "synthetic" in meta["intended_use"] and "not for clinical" in meta["intended_use"]

    io = meta["network_data_format"]
    image, pred = io["inputs"]["image"], io["outputs"]["pred"]
    for tensor in (image, pred, io["post_processed_outputs"]["pred"]):
        assert all(k in tensor for k in TENSOR_REQUIRED)
    assert (image["modality"], image["format"], image["num_channels"]) == ("CT", "hounsfield", 1)
    assert image["spatial_shape"] == list(ROI)
    assert pred["num_channels"] == 3
    assert pred["channel_def"] == {"0": "background", "1": "liver", "2": "tumor"}
    post = io["post_processed_outputs"]["pred"]
    assert (post["dtype"], post["value_range"], post["num_channels"]) == ("uint8", [0, 2], 1)
    assert meta["training"]["spacing_mm"] == SPACING_MM and meta["training"]["steps"] == 3

    weights = torch.load(bundle / "models" / "model.pt", weights_only=True)
    trained = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    assert weights.keys() == trained.keys()
    assert all(torch.equal(weights[k], trained[k]) for k in weights)

    readme = (bundle / "docs" / "README.md").read_text()
    assert "python -m monai.bundle run --config_file configs/inference.json" in readme
    assert "0 background, 1 liver, 2 tumor" in readme
    assert "Apache" in (bundle / "LICENSE").read_text()


def test_configs_mirror_training(bundle: Path) -> None:
    """Same constants as synthtumor.train.transforms, and the checkpoint's grid and ROI."""
    infer = json.loads((bundle / "configs" / "inference.json").read_text())
    train = json.loads((bundle / "configs" / "train.json").read_text())
    for cfg in (infer, train):
        assert cfg["hu_window"] == [train_tf.HU_MIN, train_tf.HU_MAX]
        assert cfg["spacing_mm"] == [SPACING_MM] * 3 and cfg["roi_size"] == list(ROI)
        assert cfg["network_def"]["channels"] == list(describe("unet")["channels"])
    orient = [t for t in infer["preprocessing"]["transforms"] if t["_target_"] == "Orientationd"]
    assert orient[0]["labels"] == [list(p) for p in train_tf.RAS_LABELS]
    assert infer["inferer"]["mode"] == "gaussian"
    targets = [t["_target_"] for t in train["train"]["preprocessing"]["transforms"]]
    assert "synthtumor.adapters.monai.RandTumorSynthesisd" in targets
    # synthesis on HU, before the window (as in train/transforms.py)
    assert targets.index("synthtumor.adapters.monai.RandTumorSynthesisd") < targets.index(
        "ScaleIntensityRanged")
    assert not any(str(t).startswith("synthtumor") for t in _targets(infer))


def _targets(cfg: object) -> list[str]:
    if isinstance(cfg, dict):
        own = [cfg["_target_"]] if "_target_" in cfg else []
        return own + [t for v in cfg.values() for t in _targets(v)]
    if isinstance(cfg, list):
        return [t for v in cfg for t in _targets(v)]
    return []


def test_monai_checks_properties_and_network(bundle: Path, datalist: Path) -> None:
    """MONAI's own checks, offline: bundle properties of both workflows and the network's
    input/output against metadata. (``verify_metadata`` downloads the schema from its URL,
    which this machine cannot do; its required fields are checked in the layout test.)"""
    from monai.bundle import ConfigWorkflow, verify_net_in_out

    configs = bundle / "configs"
    for name, kind in (("inference.json", "inference"), ("train.json", "train")):
        wf = ConfigWorkflow(config_file=str(configs / name), workflow_type=kind,
                            logging_file=False,  # keep the test process's logging as it is
                            bundle_root=str(bundle), datalist_file=str(datalist))
        wf.initialize()
        assert wf.check_properties() == [], name
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), device="cpu")


def test_swin_unetr_checkpoint(tmp_path: Path) -> None:
    """A Swin UNETR best.pt (fresh weights, written by the training code's writer) exports to a
    bundle whose network_def rebuilds the same network and loads model.pt strictly."""
    from monai.bundle import ConfigParser, verify_net_in_out

    from synthtumor.train.loop import TrainConfig, save_best

    config = TrainConfig(data=tmp_path / "unused.json", out=tmp_path, model="swin_unetr",
                         feature_size=12, roi=(64, 64, 64), spacing=1.5)
    torch.manual_seed(0)
    model = build_model("swin_unetr", 12)
    save_best(model, describe("swin_unetr", 12), config, 7, 0.1, tmp_path)
    bundle = export_bundle(tmp_path / "best.pt", tmp_path / "swin")
    configs = bundle / "configs"
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    net = parser.get_parsed_content("network_def")
    assert type(net).__name__ == "SwinUNETR"
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 model.state_dict().values()))
    meta = json.loads((configs / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [64, 64, 64]
    assert parser["spacing_mm"] == [1.5] * 3
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), device="cpu")


# ----------------------------------------------------------------------------- inference


@pytest.mark.parametrize("ct", [TS_CT, LITS_CT], ids=["totalseg", "lits117"])
def test_bundle_inference_matches_python(ct: Path, predictions: Path, bundle: Path) -> None:
    out = predictions / ct.name.replace(".nii.gz", "_seg.nii.gz")
    assert out.is_file(), sorted(p.name for p in predictions.iterdir())
    src, seg = nib.load(ct), nib.load(out)
    assert seg.shape == src.shape
    np.testing.assert_allclose(seg.affine, src.affine, atol=1e-5)
    assert seg.get_data_dtype() == np.uint8
    labels = np.asarray(seg.dataobj)
    assert set(np.unique(labels).tolist()) <= {0, 1, 2}

    weights = torch.load(bundle / "models" / "model.pt", weights_only=True)
    expected = _python_prediction(ct, weights)
    assert len(np.unique(expected)) >= 2  # not a constant map: the comparison means something
    agreement = float(np.mean(labels == expected))
    assert agreement >= 0.999, agreement


# ----------------------------------------------------------------------------- training


def test_train_config_runs_with_synthesis(bundle: Path, datalist: Path, tmp_path: Path) -> None:
    """train.json on the real case: tumors are pasted into the liver (label 2 appears in the
    0/1 case), and two optimizer steps run and save weights the bundle's network loads."""
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(
        config_file=str(bundle / "configs" / "train.json"), workflow_type="train",
        logging_file=False, bundle_root=str(bundle), datalist_file=str(datalist),
        ckpt_dir=str(tmp_path), num_steps=2, batch_size=1, synth_prob=1.0,
    )
    wf.initialize()
    item = wf.parser.get_parsed_content("train#datalist")[0]
    pre = wf.parser.get_parsed_content("train#preprocessing")
    pre.set_random_state(seed=3)
    sample = pre(dict(item))[0]
    assert sample["image"].shape == (1, *ROI) and sample["label"].dtype == torch.uint8
    assert int((sample["label"] == 2).sum()) > 0
    # HU window to [0, 1], then intensity jitter (scale ±10 %, shift ±0.1)
    assert -0.2 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.3

    wf.run()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 2
    assert np.isfinite(float(trainer.state.output[0]["loss"]))
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    model = build_model("unet")
    model.load_state_dict(saved.get("model", saved))
    wf.finalize()


# ----------------------------------------------------------------------------- CLI and bad input


def _error_line(result: object) -> str:
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_cli_best_pt_name_and_overwrite(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    args = ["export", "bundle", "--checkpoint", str(run_dir / "best.pt"), "--out", str(out)]
    result = runner.invoke(app, [*args, "--name", "synt_unet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "configs" / "metadata.json").read_text())["name"] == "synt_unet"
    weights = torch.load(out / "models" / "model.pt", weights_only=True)
    best = torch.load(run_dir / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(weights[k], best[k]) for k in best)

    before = (out / "configs" / "metadata.json").read_text()
    line = _error_line(runner.invoke(app, args))
    assert str(out) in line and "--overwrite" in line
    assert (out / "configs" / "metadata.json").read_text() == before  # untouched

    (out / "stale.txt").write_text("old")
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists()  # replaced whole
    assert json.loads((out / "configs" / "metadata.json").read_text())["name"] == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary folders left


def test_bad_checkpoints(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nope.pt"
    line = _error_line(runner.invoke(
        app, ["export", "bundle", "-c", str(missing), "-o", str(out)]))
    assert str(missing) in line and "not found" in line

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((run_dir / "last.pt").read_bytes()[:5000])
    line = _error_line(runner.invoke(
        app, ["export", "bundle", "-c", str(truncated), "-o", str(out)]))
    assert str(truncated) in line and "corrupt" in line

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not a checkpoint of `synthtumor train`"):
        export_bundle(foreign, out)

    state = torch.load(run_dir / "best.pt", weights_only=True)
    state["model_desc"] = {"name": "resnet50", "in_channels": 1, "out_channels": 3}
    alien = tmp_path / "alien.pt"
    torch.save(state, alien)
    line = _error_line(runner.invoke(app, ["export", "bundle", "-c", str(alien), "-o", str(out)]))
    assert str(alien) in line and "unknown network architecture 'resnet50'" in line

    state = torch.load(run_dir / "best.pt", weights_only=True)
    state["model"] = {k: v for k, v in state["model"].items() if "model.0." not in k}
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(InputError, match="weights do not fit the unet network"):
        export_bundle(partial, out)

    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
