"""The end-to-end demo (`synthtumor demo --quick`): every stage runs and the report's numbers
are this run's own (they match the per-case metrics and the predictions on disk)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from synthtumor.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    return out


def test_demo_writes_every_stage(demo_out: Path) -> None:
    summary = json.loads((demo_out / "demo.json").read_text())
    assert summary["preset"] == "quick"
    datalist = json.loads((demo_out / "data" / "datalist.json").read_text())
    assert len(datalist["training"]) == 2 and len(datalist["validation"]) == 2
    # training phantoms are healthy (0/1), test phantoms carry held-out tumors (0/1/2)
    for item in datalist["training"]:
        values = np.unique(np.asarray(nib.load(demo_out / "data" / item["label"]).dataobj))
        assert set(values.tolist()) == {0, 1}
    for item in datalist["validation"]:
        values = np.unique(np.asarray(nib.load(demo_out / "data" / item["label"]).dataobj))
        assert set(values.tolist()) == {0, 1, 2}
    assert (demo_out / "synthesis-example" / "preview.png").stat().st_size > 10_000
    assert (demo_out / "run" / "last.pt").is_file()
    for name in ("report.html", "metrics.csv", "summary.json", "detection_by_size.png"):
        assert (demo_out / "evaluation" / name).is_file(), name


def test_predictions_on_the_test_grids(demo_out: Path) -> None:
    datalist = json.loads((demo_out / "data" / "datalist.json").read_text())
    for item in datalist["validation"]:
        image = nib.load(demo_out / "data" / item["image"])
        pred = nib.load(demo_out / "evaluation" / "predictions" / f"{item['case']}.nii.gz")
        assert pred.shape == image.shape
        np.testing.assert_allclose(pred.affine, image.affine, atol=1e-5)
        assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2}


def test_report_numbers_come_from_the_run(demo_out: Path) -> None:
    summary = json.loads((demo_out / "evaluation" / "summary.json").read_text())
    with (demo_out / "evaluation" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    # the liver Dice the report shows is the mean of the per-case values recomputed here
    datalist = json.loads((demo_out / "data" / "datalist.json").read_text())
    dices = []
    for item in datalist["validation"]:
        truth = np.asarray(nib.load(demo_out / "data" / item["label"]).dataobj) > 0
        pred = np.asarray(nib.load(
            demo_out / "evaluation" / "predictions" / f"{item['case']}.nii.gz").dataobj) > 0
        dices.append(2 * np.sum(truth & pred) / (truth.sum() + pred.sum()))
    html = (demo_out / "evaluation" / "report.html").read_text()
    liver_dice = summary["mean"]["liver_dice"]
    assert f"{liver_dice:.3f}" in html
    np.testing.assert_allclose(summary["mean"]["liver_dice"], np.mean(dices), atol=1e-4)


@pytest.mark.parametrize("extra", [[], ["--synthesis-only"]])
def test_demo_never_deletes_files_it_did_not_write(tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), *extra])
    assert result.exit_code == 2
    assert "holds files the demo did not write" in result.output
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
