"""Atomic checkpoints that load with ``torch.load(weights_only=True)``, and RNG state capture.

A checkpoint is a dict of tensors and plain Python types only:

- ``format``: ``"synthtumor-train/1"``; ``step``: optimizer steps done (int);
- ``model``: the network's ``state_dict`` (unwrapped from DDP); ``model_desc``: ``describe()``;
- ``optimizer``, ``scheduler``, ``scaler`` (None without AMP): their ``state_dict``s;
- ``rng``: python ``random``, numpy global, torch CPU (+ CUDA) states, and the states of the
  training transforms' own ``RandomState``s (``transforms``, one per randomizable transform);
- ``config``: the run configuration (JSON-able dict); ``best``: best validation score so far
  (float or None); ``world_size``: processes that trained it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from synthtumor.errors import InputError
from synthtumor.files import remove_stale, replaced_atomically

FORMAT = "synthtumor-train/1"
LAST = "last.pt"
PREV = "last.prev.pt"
BEST = "best.pt"
_REQUIRED = ("format", "step", "model", "optimizer", "scheduler", "rng", "model_desc")


def numpy_state_to_plain(state: tuple[Any, ...] | dict[str, Any]) -> list[Any]:
    """``RandomState.get_state()`` as [name, int64 tensor of keys, pos, has_gauss, gauss]."""
    # get_state()'s default (legacy=True) is the 5-tuple; numpy's stubs also allow the dict form
    name, keys, pos, has_gauss, gauss = cast("tuple[Any, ...]", state)
    return [str(name), torch.from_numpy(np.asarray(keys, np.int64)), int(pos), int(has_gauss),
            float(gauss)]


def numpy_state_from_plain(state: Sequence[Any]) -> tuple[Any, ...]:
    name, keys, pos, has_gauss, gauss = state
    return (name, np.asarray(torch.as_tensor(keys).numpy(), np.uint32), int(pos), int(has_gauss),
            float(gauss))


def capture_rng(transform_states: Sequence[np.random.RandomState] = ()) -> dict[str, Any]:
    """Every RNG state the training draws from, in weights_only-safe types."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [int(version), list(internal), gauss],
        "numpy": numpy_state_to_plain(np.random.get_state()),  # noqa: NPY002 (global legacy RNG)
        "torch": torch.get_rng_state(),
        "transforms": [numpy_state_to_plain(r.get_state()) for r in transform_states],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], transform_states: Sequence[np.random.RandomState] = ()
                ) -> None:
    """Undo :func:`capture_rng` (transform states only when the counts match)."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    np.random.set_state(numpy_state_from_plain(state["numpy"]))  # noqa: NPY002
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    saved = state.get("transforms", [])
    if len(saved) == len(transform_states):
        for r, s in zip(transform_states, saved):
            r.set_state(numpy_state_from_plain(s))


def save_atomic(obj: dict[str, Any], path: Path, keep_previous: bool = False) -> None:
    """Write ``obj`` to ``path`` so that a reader (or a crash) only ever sees a whole file.

    The bytes go to a temporary file in the same folder, are fsynced, and replace ``path`` with
    ``os.replace``. With ``keep_previous`` the old ``path`` is first hard-linked (copied where
    links are unsupported) to ``last.prev.pt``, so a valid ``path`` exists at every moment.
    """
    path = Path(path)
    with replaced_atomically(path) as tmp:
        # 0o666 under the umask, as for any file the user writes (mkstemp's would be private)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            _keep_copy(path, path.with_name(PREV))
    _fsync_dir(path.parent)


def remove_stale_writes(folder: Path) -> list[Path]:
    """Delete temporary files of checkpoint and log writes in a run folder left by a killed
    run (see ``files.remove_stale``); returns them."""
    names = (LAST, PREV, BEST, "config.json", "log.csv")
    return [p for name in names for p in remove_stale(Path(folder), name)]


def _keep_copy(src: Path, dst: Path) -> None:
    with replaced_atomically(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. some network FS)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True; raises on any damage."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or any(k not in obj for k in _REQUIRED):
        raise ValueError("not a synthtumor training checkpoint")
    if obj["format"] != FORMAT:
        raise ValueError(f"unknown checkpoint format {obj['format']!r}")
    return obj


def is_valid(path: Path) -> int | None:
    """The step of a readable checkpoint at ``path``, else None."""
    try:
        return int(_read(Path(path))["step"])
    except Exception:  # any failure means "not usable"
        return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint for ``--resume``; never modifies or deletes any file.

    Raises:
        InputError: missing, or corrupt/incomplete (naming a good ``last.prev.pt`` if any).
    """
    path = Path(path)
    if not path.is_file():
        hint = ""
        prev = path.with_name(PREV)
        if path.name == LAST and (step := is_valid(prev)) is not None:
            hint = f"; {prev} (step {step}) is good: pass --resume-from {prev}"
        raise InputError(path, f"no checkpoint to resume from{hint}")
    try:
        return _read(path)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, KeyError, TypeError, AttributeError) as err:
        hint = " and no good last.prev.pt beside it"
        prev = path.with_name(PREV)
        if prev != path and (step := is_valid(prev)) is not None:
            hint = f"; {prev} (step {step}) is good: pass --resume-from {prev}"
        reason = " ".join(str(err).split())[:120]
        raise InputError(
            path, f"is corrupt or incomplete ({type(err).__name__}: {reason}); left untouched"
            f"{hint}",
        ) from None


def check_model(ckpt: dict[str, Any], desc: dict[str, Any], path: Path) -> None:
    """InputError when the checkpoint's network differs from the one this run builds."""
    saved = ckpt.get("model_desc")
    if saved != desc:
        raise InputError(
            path, f"holds a different network ({_brief(saved)}) than this run builds "
            f"({_brief(desc)}); pass the matching --model/--feature-size or another RUN_DIR",
        )


def _brief(desc: Any) -> str:
    if not isinstance(desc, dict):
        return repr(desc)
    return ", ".join(f"{k}={v}" for k, v in desc.items())


# --------------------------------------------------------------------------------------------
# using a trained network (evaluation, bundle export): last.pt or best.pt, weights only


def read_trained(path: Path, expect_model: str | None = None) -> dict[str, Any]:
    """A ``synthtumor train`` checkpoint (``last.pt`` or ``best.pt``) whose network is used.

    Checked: readable with ``weights_only``; a training checkpoint with weights, network
    description and run configuration; the network is one this version builds (``describe``)
    for ``expect_model`` (default: the checkpoint's own architecture) with
    :data:`~synthtumor.train.models.NUM_CLASSES` classes; the configuration holds the training
    ``spacing`` (mm) and ``roi`` (three voxel counts).

    Raises:
        InputError: one line naming the file and the problem (both networks when they differ).
    """
    from synthtumor.train.models import MODEL_NAMES, NUM_CLASSES, describe

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found: the file does not exist"
                         if not path.exists()
                         else "is not a file; pass best.pt or last.pt of a training run")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or foreign files
        reason = " ".join(str(err).split())[:120]
        raise InputError(path, f"is not a readable checkpoint (corrupt or not a PyTorch file; "
                         f"{type(err).__name__}: {reason})") from None
    if (not isinstance(obj, dict) or not str(obj.get("format", "")).startswith(FORMAT)
            or not isinstance(obj.get("model"), dict) or "model_desc" not in obj):
        raise InputError(path, "is not a checkpoint of `synthtumor train` (best.pt or last.pt)")
    saved = obj["model_desc"]
    name = saved.get("name") if isinstance(saved, dict) else None
    if name not in MODEL_NAMES:
        raise InputError(path, f"holds an unknown network architecture {name!r} "
                         f"({_brief(saved)}); expected one of {', '.join(MODEL_NAMES)} with "
                         f"{NUM_CLASSES} classes")
    expected = describe(expect_model or name, int(saved.get("feature_size", 48)))
    if saved != expected:
        what = ("" if saved.get("out_channels") == NUM_CLASSES else
                f" ({saved.get('out_channels')} classes instead of {NUM_CLASSES})")
        raise InputError(path, f"holds a different network{what}: checkpoint has "
                         f"{_brief(saved)}; expected {_brief(expected)}")
    _check_grid(obj.get("config"), name, path)
    return obj


_SPACING_MM = (0.1, 100.0)  # any CT grid a network is trained on lies well inside this


def _check_grid(config: Any, name: str, path: Path) -> None:
    """InputError unless the configuration holds a usable training spacing (mm) and ROI
    (three voxel counts the network takes): a crafted 0, negative or NaN would divide by zero
    or resample to an endless grid later."""
    from synthtumor.train.models import check_roi

    try:
        spacing = float(config["spacing"])
        roi = [r if isinstance(r, int) else float(r) for r in config["roi"]]
    except (KeyError, TypeError, ValueError):
        raise InputError(path, "has no training configuration (spacing, roi)") from None
    if not _SPACING_MM[0] <= spacing <= _SPACING_MM[1]:  # False for NaN too
        raise InputError(path, f"has an unusable training spacing {spacing!r} mm (expected "
                         f"{_SPACING_MM[0]:g}..{_SPACING_MM[1]:g})")
    if len(roi) != 3 or not all(isinstance(r, int) and not isinstance(r, bool) for r in roi):
        raise InputError(path, f"has an unusable training roi {roi!r} (expected three whole "
                         "voxel counts)")
    try:
        check_roi(name, [int(r) for r in roi])  # all int (checked above): int() only narrows
    except ValueError as err:
        raise InputError(path, f"has an unusable training roi {roi}: "
                         f"{str(err).replace('--roi ', '')}") from None


def trained_model(obj: dict[str, Any], path: Path) -> torch.nn.Module:
    """The network of a checkpoint from :func:`read_trained`, weights loaded, on the CPU.

    Raises:
        InputError: weights that do not fit the described network.
    """
    from synthtumor.train.models import build_model

    desc = obj["model_desc"]
    model = build_model(desc["name"], int(desc.get("feature_size", 48)))
    try:
        model.load_state_dict(obj["model"])
    except (RuntimeError, KeyError, TypeError) as err:
        reason = " ".join(str(err).split())[:160]
        raise InputError(path, f"weights do not fit the {desc['name']} network "
                         f"({_brief(desc)}): {reason}") from None
    return model
