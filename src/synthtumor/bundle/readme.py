"""``docs/README.md`` and the license note of an exported bundle (plain text builders)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthtumor.bundle.configs import HU_MAX, HU_MIN, SW_OVERLAP


def bundle_readme(*, name: str, desc: Mapping[str, Any], train: Mapping[str, Any], step: int,
                  versions: Mapping[str, str]) -> str:
    """User documentation of the bundle: how to run it, what it expects and what it writes."""
    spacing = float(train["spacing"])
    roi = "x".join(str(int(r)) for r in train["roi"])
    arch = "MONAI UNet" if desc["name"] == "unet" else "MONAI SwinUNETR"
    return f"""# {name}

Liver and liver tumor segmentation in abdominal CT: a {arch} trained by synthtumor with
synthetic tumors, the label-free method of Hu et al. (CVPR 2023) ({step} training steps,
`{train.get('mode', 'synthetic')}` mode). Exported by synthtumor {versions['synthtumor']}.

**Research use only.** The tumor class was learnt from synthetic tumors pasted into healthy
livers, not from real tumor annotations. Check its output against real annotations before
relying on it.

## Run inference

Needs MONAI {versions['monai']} or later, PyTorch, nibabel and pytorch-ignite (`fire` for the
command line). synthtumor is **not** needed for inference.

```bash
cd {name}
python -m monai.bundle run --config_file configs/inference.json \\
    --dataset_dir /path/to/ct_folder --output_dir /path/to/predictions
```

- Input: every `*.nii.gz` / `*.nii` file in `dataset_dir` (default `./data`): one CT per file,
  in Hounsfield units, any orientation and spacing. To pick files, override the list:
  `--datalist "['/data/a.nii.gz', '/data/b.nii.gz']"`.
- Output: `<output_dir>/<case>_seg.nii.gz` (default `./eval`), one per input: uint8 labels
  **0 background, 1 liver, 2 tumor**, on the input's own grid (same shape and affine).
- Run from the bundle folder, or pass `--bundle_root /path/to/{name}` (paths of the weights
  and the defaults above are relative to it). Other weights: `--ckpt_path file.pt`.
- Runs on the GPU when one is visible (mixed precision), else on the CPU.

Steps (`configs/inference.json`): load, reorient to RAS, resample to {spacing:g} mm isotropic
(trilinear), clip to [{HU_MIN:g}, {HU_MAX:g}] HU and scale to [0, 1] (exactly the training
preprocessing), sliding-window inference with {roi}-voxel windows (overlap {SW_OVERLAP}, Gaussian
weights), argmax over the 3 classes, then `Invertd` maps the label map back to the input grid
(nearest neighbour) and `SaveImaged` writes it.

From Python:

```python
from monai.bundle import ConfigWorkflow
wf = ConfigWorkflow(config_file="configs/inference.json", workflow_type="inference",
                    bundle_root=".", dataset_dir="ct_folder", output_dir="predictions")
wf.initialize(); wf.run(); wf.finalize()
```

## Train

`configs/train.json` reproduces the label-free training of `synthtumor train` with MONAI
components plus `synthtumor.adapters.monai.RandTumorSynthesisd` (so synthtumor must be
installed): healthy livers only, tumors pasted on the fly into each {roi}-voxel patch with
probability {float(train.get('synth_prob', 0.9)):g}, DiceCE loss, AdamW, warm-up then cosine decay.

```bash
python -m monai.bundle run --config_file configs/train.json \\
    --datalist_file /path/to/healthy.json --num_steps 40000
```

`healthy.json` is an MSD-style datalist whose `training` list pairs CT (HU) with 0/1 liver
masks, as written by `synthtumor data datalist`. Weights go to `models/trained/model.pt`; use
them with `--ckpt_path models/trained/model.pt` at inference.

## Files

- `configs/metadata.json`: versions, inputs/outputs, intended use and references.
- `configs/inference.json`, `configs/train.json`: MONAI bundle configs; `configs/logging.conf`:
  log format of `monai.bundle run`.
- `models/model.pt`: the network's `state_dict` (`torch.load(..., weights_only=True)`).
- `LICENSE`: license of the bundle.

## Reference

Hu Q et al. Label-Free Liver Tumor Segmentation. CVPR 2023. https://arxiv.org/abs/2303.14869
"""


def logging_conf() -> str:
    """``configs/logging.conf``: INFO messages of the MONAI engines to stdout (INI format of
    ``logging.config.fileConfig``; MONAI only allows ``logging`` handler classes here)."""
    return (
        "[loggers]\nkeys=root\n\n[handlers]\nkeys=console\n\n[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=INFO\nhandlers=console\n\n"
        "[handler_console]\nclass=StreamHandler\nlevel=INFO\nformatter=plain\n"
        "args=(sys.stdout,)\n\n"
        "[formatter_plain]\nformat=%(asctime)s %(levelname)s %(name)s: %(message)s\n"
    )


def license_text() -> str:
    """License note of the bundle (the project's own license, Apache-2.0)."""
    return (
        "Copyright the synthtumor authors.\n\n"
        "This bundle (configs, docs and model weights) is licensed under the Apache License,\n"
        "Version 2.0: https://www.apache.org/licenses/LICENSE-2.0\n"
        "SPDX-License-Identifier: Apache-2.0\n\n"
        "The weights were trained on CT data whose own terms may restrict use (for example\n"
        "LiTS: CC BY-NC-SA 4.0). Check the terms of the training data before any use beyond\n"
        "research. Not a medical device; not for diagnostic use.\n"
    )
