"""The documented route to ``nnUNetv2_train -tr nnUNetTrainerSynthTumor``: the shim written by
``--install-trainer`` into nnU-Net's trainer folder is found by nnU-Net's own lookup
(``recursive_find_trainer_class_by_name``, what nnUNetv2_train calls), in a fresh process,
before nnU-Net imports its sub-packages (whose primus trainers need torchvision). Run on a copy
of the installed nnunetv2 package, so the environment is left untouched."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from synthtumor.cli import app

_LOOKUP = """
import sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
cls = recursive_find_trainer_class_by_name("nnUNetTrainerSynthTumor")
from synthtumor.nnunet.trainer import nnUNetTrainerSynthTumor
assert cls is nnUNetTrainerSynthTumor, cls
import nnunetv2
print(nnunetv2.__file__)
print("torchvision imported:", "torchvision" in sys.modules)
"""


def test_default_install_route_finds_the_trainer(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("nnunetv2")
    assert spec is not None and spec.submodule_search_locations
    copy = tmp_path / "site" / "nnunetv2"
    shutil.copytree(list(spec.submodule_search_locations)[0], copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    trainers = copy / "training" / "nnUNetTrainer"
    result = CliRunner().invoke(app, ["export", "nnunet", "--install-trainer", "--trainer-dir",
                                      str(trainers)])
    assert result.exit_code == 0, result.output
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path])}
    env.pop("nnUNet_extTrainer", None)
    proc = subprocess.run([sys.executable, "-c", _LOOKUP], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(str(copy))  # nnU-Net's lookup ran on the copy with the shim
    assert lines[1] == "torchvision imported: False"
