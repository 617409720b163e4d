"""The synthesis config of a training run: given by options, or kept from the run it resumes.

A run stores its ``SynthesisConfig`` (``to_dict()``, with every size class, so it does not
depend on a profile file) in ``config.json`` and in every checkpoint; a resumed run given no
synthesis options continues with the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError
from synthtumor.synthesis import SynthesisConfig


def adopt_synthesis(config: Any, stored: Mapping[str, Any] | None,
                    source: str | Path | None = None) -> None:
    """Fill ``config.synthesis`` (a ``TrainConfig``) when no option set it: the stored run's
    config (``stored``: the resumed checkpoint's run configuration), else the reference method.

    Raises:
        InputError: the stored synthesis config cannot be read (naming ``source``).
    """
    if config.synthesis is not None:
        return
    data = stored.get("synthesis") if isinstance(stored, Mapping) else None
    if data is None:  # a fresh run, or one stored before runs kept their synthesis config
        config.synthesis = SynthesisConfig()
        return
    try:
        config.synthesis = SynthesisConfig.from_dict(data)
    except (TypeError, ValueError, AttributeError) as err:
        raise InputError(source, f"holds an unreadable synthesis config ({err})") from None
    if config.synthesis_profile is None and isinstance(stored, Mapping):
        config.synthesis_profile = stored.get("synthesis_profile")
