"""Write a MONAI bundle for a checkpoint of ``synthtumor train`` (``best.pt`` or ``last.pt``).

Layout of ``out``::

    configs/metadata.json  configs/inference.json  configs/train.json  configs/logging.conf
    models/model.pt        docs/README.md          LICENSE

The folder is built under a hidden temporary name beside ``out`` and renamed into place at the
end, so a failure never leaves a partial bundle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError
from synthtumor.files import check_output_folder, staged_folder

# pytorch-ignite is needed by the inference config's evaluator; MONAI's own minimum version.
IGNITE_MIN = "0.4.11"


@dataclass(frozen=True)
class TrainedNetwork:
    """What a bundle needs from a checkpoint.

    Attributes:
        weights: the network's ``state_dict`` (CPU tensors).
        desc: ``train.models.describe()`` of the network.
        train: the run configuration (``TrainConfig.to_dict()``; spacing in mm, roi in voxels).
        step: optimizer steps trained.
    """

    weights: dict[str, Any]
    desc: dict[str, Any]
    train: dict[str, Any]
    step: int


def read_trained_network(path: Path) -> TrainedNetwork:
    """Read and check a training checkpoint; the weights must fit the described network.

    Raises:
        InputError: missing file, unreadable/corrupt file, not a synthtumor checkpoint,
            unknown architecture, no spacing/roi in its configuration, or weights that do not
            fit the network.
    """
    from synthtumor.train.checkpoint import read_trained, trained_model

    obj = read_trained(path)
    model = trained_model(obj, path)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return TrainedNetwork(weights, dict(obj["model_desc"]), dict(obj["config"]),
                          int(obj.get("step", 0)))


def installed_versions() -> dict[str, str]:
    """Versions written into metadata.json (public part only, e.g. ``2.13.0`` for torch)."""
    import monai
    import numpy
    import torch

    from synthtumor import __version__
    from synthtumor.bundle.metadata import public_version

    versions = {
        "monai": public_version(monai.__version__),
        "torch": public_version(torch.__version__),
        "numpy": public_version(numpy.__version__),
        "synthtumor": __version__,
    }
    for dist, fallback in (("nibabel", "5.0.0"), ("pytorch-ignite", IGNITE_MIN)):
        try:
            versions[dist] = public_version(pkg_metadata.version(dist))
        except pkg_metadata.PackageNotFoundError:
            versions[dist] = fallback  # not installed here: state the minimum known to work
    return versions


def build_bundle(folder: Path, network: TrainedNetwork, name: str, source: str,
                 versions: Mapping[str, str]) -> None:
    """Write every bundle file into the existing, empty ``folder``."""
    import torch

    from synthtumor.bundle.configs import inference_config, train_config
    from synthtumor.bundle.metadata import metadata
    from synthtumor.bundle.readme import bundle_readme, license_text, logging_conf

    for sub in ("configs", "models", "docs"):
        (folder / sub).mkdir()
    spacing, roi = float(network.train["spacing"]), network.train["roi"]
    files = {
        "configs/metadata.json": metadata(name=name, desc=network.desc, train=network.train,
                                          step=network.step, source=source, versions=versions),
        "configs/inference.json": inference_config(network.desc, spacing, roi),
        "configs/train.json": train_config(network.desc, network.train),
    }
    for rel, content in files.items():
        (folder / rel).write_text(json.dumps(content, indent=4) + "\n")
    (folder / "configs" / "logging.conf").write_text(logging_conf())
    torch.save(network.weights, folder / "models" / "model.pt")
    (folder / "docs" / "README.md").write_text(bundle_readme(
        name=name, desc=network.desc, train=network.train, step=network.step, versions=versions))
    (folder / "LICENSE").write_text(license_text())


def export_bundle(checkpoint: Path, out: Path, name: str | None = None, overwrite: bool = False,
                  *, step: Callable[[str], None] | None = None) -> Path:
    """Export ``checkpoint`` (``best.pt``/``last.pt`` of ``synthtumor train``) as a MONAI bundle.

    Args:
        checkpoint: the training checkpoint.
        out: bundle folder to write (refused when it exists and is not empty, unless
            ``overwrite``; then replaced whole).
        name: bundle name in metadata and docs (default: ``out``'s folder name).
        step: called with a short message before each stage (progress display).

    Returns:
        ``out``.

    Raises:
        InputError: bad checkpoint (see :func:`read_trained_network`), ``out`` not a folder or
            not empty without ``overwrite``, or not writable.
    """
    say = step or (lambda _msg: None)
    checkpoint, out = Path(checkpoint), Path(out)
    check_output_folder(out, overwrite, [checkpoint])
    say("reading the checkpoint")
    network = read_trained_network(checkpoint)
    bundle_name = name or out.resolve().name
    say("writing the bundle")
    try:
        with staged_folder(out) as tmp:
            build_bundle(tmp, network, bundle_name, checkpoint.name, installed_versions())
    except OSError as err:
        raise InputError(out, f"cannot be written: {err.strerror or err}") from None
    return out
