"""The one builder of SynthesisConfig from command-line options, and its use by the commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthtumor.cli import app
from synthtumor.errors import InputError
from synthtumor.synthesis import PROFILES, SynthesisConfig
from synthtumor.synthesis_options import build_config, parse_tumor_probs

LARGE_ONLY = {
    "format": "synthtumor-profile/1",
    "types": {"large": {"probability": 1.0, "classes": [
        {"name": "large", "radius_mm": 30.0, "count": [1, 1], "elastic_sigma_mm": [5, 10],
         "integer_sigma": True}]}},
    "drop_hu": [30.0, 40.0],
}


def write_profile(path: Path, data: dict = LARGE_ONLY) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_tumor_probs_are_parsed_strictly() -> None:
    assert parse_tumor_probs("tiny=0.2,large=0.8") == {"tiny": 0.2, "large": 0.8}
    assert parse_tumor_probs("mix=1") == {"mix": 1.0}
    for bad in ("tiny=0.2, large=0.8", "tiny=0.2,tiny=0.3", "huge=1", "tiny", "tiny=-1",
                "tiny=nan", "tiny=inf", "tiny=0", "tiny=１", "tiny=+1", "", "tiny=1,"):
        with pytest.raises(InputError, match="--tumor-probs") as err:
            parse_tumor_probs(bad)
        assert "\n" not in str(err.value)


def test_build_config_layers_options_in_one_order(tmp_path: Path) -> None:
    assert build_config() == SynthesisConfig()
    assert build_config(realistic=True, tumor_type="small", count=2) == \
        SynthesisConfig.realistic(tumor_type="small", count=2)
    probs = build_config(tumor_probs="large=3,tiny=1")
    assert probs.tumor_type is None and probs.tumor_probs == {"large": 3.0, "tiny": 1.0}

    profile = write_profile(tmp_path / "p.json")
    config = build_config(profile=profile, realistic=True)
    assert config.mass_effect and config.drop_hu == (30.0, 40.0)
    assert config.profiles["large"][0].radius_mm == 30.0
    assert config.tumor_probs["large"] == 1.0 and config.tumor_probs["tiny"] == 0.0
    assert config.profiles["tiny"] == PROFILES["tiny"]
    # --tumor-probs overrides the profile's type probabilities, not its size classes
    both = build_config(profile=profile, tumor_probs="tiny=1")
    assert both.tumor_probs == {"tiny": 1.0} and both.profiles["large"][0].radius_mm == 30.0


def test_bad_options_are_one_line_naming_the_option_or_file(tmp_path: Path) -> None:
    cases = [
        (dict(tumor_type="small", tumor_probs="tiny=1"), "--type or --tumor-probs"),
        (dict(tumor_type="huge"), "--type"),
        (dict(count=0), "--count"),
        (dict(profile=tmp_path / "missing.json"), "missing.json"),
        (dict(profile=write_profile(tmp_path / "bad.json", {"format": "x"})), "bad.json"),
    ]
    for kwargs, named in cases:
        with pytest.raises(InputError, match=named) as err:
            build_config(**kwargs)
        assert "\n" not in str(err.value)


def _error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    ["synthesize", "ct.nii.gz", "liver.nii.gz", "-o", "OUT"],
    ["demo", "--synthesis-only", "-o", "OUT"],
    ["realism", "--synthesize-into", "healthy.json", "-o", "OUT"],
    ["export", "nnunet", "healthy.json", "-o", "OUT", "--dataset-id", "5", "--name", "X",
     "--variants", "0"],
    ["turing", "build", "--real", "r.json", "--healthy", "h.json", "-o", "OUT"],
    ["train", "--data", "d.json", "-o", "OUT"],
])
def test_every_command_refuses_bad_synthesis_options_before_reading(
    command: list[str], tmp_path: Path
) -> None:
    """Same options, same validation, same one-line error, nothing written, in every command."""
    runner = CliRunner()
    out = tmp_path / "out"
    args = [str(out) if a == "OUT" else str(tmp_path / a) if "." in a else a for a in command]
    line = _error(runner.invoke(app, [*args, "--tumor-probs", "tiny=0.5,tiny=0.5"]))
    assert "--tumor-probs" in line and "twice" in line
    line = _error(runner.invoke(app, [*args, "--type", "small", "--tumor-probs", "tiny=1"]))
    assert "--type or --tumor-probs" in line
    line = _error(runner.invoke(app, [*args, "--profile", str(tmp_path / "nope.json")]))
    assert "nope.json" in line and "does not exist" in line
    assert not out.exists()
