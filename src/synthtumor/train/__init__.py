"""Training: liver/tumor segmentation on synthetic, real or mixed tumors (MONAI, DDP, AMP).

Python API: ``train(TrainConfig(data=..., out=...)) -> RunResult``. The names are loaded on
first use, so that the ``synthtumor`` command line starts without importing torch and MONAI.
"""

from typing import Any

__all__ = ["RunResult", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from synthtumor.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'synthtumor.train' has no attribute {name!r}")
