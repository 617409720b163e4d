"""Make ``nnUNetTrainerSynthTumor`` findable by ``nnUNetv2_train -tr``.

nnU-Net 2.8.1 has no plugin entry point for trainers: ``recursive_find_trainer_class_by_name``
imports every module under ``nnunetv2/training/nnUNetTrainer`` looking for the class name, and
only then the folders listed in ``$nnUNet_extTrainer``. So we write a two-line shim module that
imports our class into one of those folders (nnU-Net's own by default). The shim swallows an
ImportError, so a broken synthtumor install never breaks nnU-Net's lookup of other trainers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from synthtumor.errors import InputError
from synthtumor.files import write_text_atomic

TRAINER = "nnUNetTrainerSynthTumor"
SHIM_NAME = f"{TRAINER}.py"
_MARKER = "# synthtumor trainer shim"
SHIM = f'''{_MARKER}: lets nnUNetv2_train find -tr {TRAINER}.
# Written by `synthtumor export nnunet --install-trainer`; remove with --uninstall-trainer.
try:
    from synthtumor.nnunet.trainer import {TRAINER}  # noqa: F401
except ImportError:  # synthtumor missing from this environment: leave nnU-Net usable
    pass
'''


def nnunet_trainer_dir() -> Path:
    """nnU-Net's own trainer package folder (where ``-tr`` names are looked up first)."""
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(None, "nnunetv2 is not installed; pip install 'synthtumor[nnunet]'")
    return Path(list(spec.submodule_search_locations)[0]) / "training" / "nnUNetTrainer"


def install_trainer(folder: Path | None = None) -> tuple[Path, bool]:
    """Write the shim into ``folder`` (default: nnU-Net's trainer package).

    Returns (shim path, whether it was written now); an existing identical shim is left alone.
    Raises InputError if the folder is missing or unwritable, or holds a different file of the
    shim's name.
    """
    folder = folder or nnunet_trainer_dir()
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    path = folder / SHIM_NAME
    if path.is_file():
        text = path.read_text()
        if text == SHIM:
            return path, False
        if not text.startswith(_MARKER):
            raise InputError(path, "exists and was not written by synthtumor; not replacing it")
    write_text_atomic(path, SHIM)
    return path, True


def uninstall_trainer(folder: Path | None = None) -> tuple[Path, bool]:
    """Remove the shim (and its bytecode) from ``folder``; returns (path, whether removed).
    A file of that name that synthtumor did not write is left alone (InputError)."""
    folder = folder or nnunet_trainer_dir()
    path = folder / SHIM_NAME
    if not path.is_file():
        return path, False
    if not path.read_text().startswith(_MARKER):
        raise InputError(path, "was not written by synthtumor; not removing it")
    try:
        path.unlink()
        for pyc in (folder / "__pycache__").glob(f"{TRAINER}.*.pyc"):
            pyc.unlink()
    except OSError as err:
        raise InputError(path, f"cannot be removed: {err.strerror or err}") from None
    return path, True
