"""The CT clip range of nnU-Net's normalisation, widened so that tumors keep their contrast.

nnU-Net's ``CTNormalization`` clips every image to the 0.5/99.5 percentiles of the dataset's
foreground, then computes (HU - mean) / std. On a dataset of healthy livers the foreground is
liver parenchyma only, so the clip is about the liver's own range (-32...79 HU on
totalseg_ct): tumors darker than that, synthetic or real, all reach the network as the same
floor value. ``widened`` keeps ``TUMOR_MARGIN_HU`` on either side of the liver's mean HU and
leaves mean and std alone, so contrast inside the old range is unchanged and nothing that
was kept before is clipped now.

Apply it to the plans after ``nnUNetv2_plan_experiment`` and before ``nnUNetv2_preprocess``
(``synthtumor export nnunet --widen-clip PLANS``): preprocessing, the trainer's synthesis and
inference (which reads the plans copied into the results folder) then all use the same range.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError
from synthtumor.files import read_json_file, write_json_atomic

TUMOR_MARGIN_HU = 200.0  # kept below (and above) the mean liver HU; synthetic tumors measured
# down to 118 HU below it (0.5th percentile of the darkest of 6 draws into totalseg_ct)
_KEY = "foreground_intensity_properties_per_channel"


def widened(props: dict[str, Any], margin_hu: float = TUMOR_MARGIN_HU) -> dict[str, Any]:
    """One channel's intensity properties with the clip bounds (percentile_00_5/99_5, HU)
    widened to at least mean -/+ ``margin_hu``; other keys as they were."""
    mean = float(props["mean"])
    out = dict(props)
    out["percentile_00_5"] = min(float(props["percentile_00_5"]), mean - margin_hu)
    out["percentile_99_5"] = max(float(props["percentile_99_5"]), mean + margin_hu)
    return out


def is_widened(props: dict[str, Any], margin_hu: float = TUMOR_MARGIN_HU) -> bool:
    """Whether the clip already keeps ``margin_hu`` on both sides of the mean."""
    wide = widened(props, margin_hu)
    return (wide["percentile_00_5"], wide["percentile_99_5"]) == (
        float(props["percentile_00_5"]), float(props["percentile_99_5"]))


def widen_plans_clip(plans_file: Path, channel: int = 0,
                     margin_hu: float = TUMOR_MARGIN_HU) -> tuple[tuple[float, float],
                                                                  tuple[float, float]]:
    """Widen the CT clip of ``channel`` in an nnU-Net plans JSON, in place (atomic write).

    Returns ((old lower, old upper), (new lower, new upper)) in HU. InputError if the file is
    not a plans file with that channel.
    """
    plans = read_json_file(Path(plans_file), "nnU-Net plans")
    try:
        props = plans[_KEY][str(channel)]
        old = (float(props["percentile_00_5"]), float(props["percentile_99_5"]))
        if not all(math.isfinite(v) for v in (*old, float(props["mean"]))):
            raise ValueError("not finite")
    except (KeyError, TypeError, ValueError):
        raise InputError(plans_file, f"is not an nnU-Net plans file with intensity properties "
                         f"of channel {channel} ({_KEY})") from None
    new_props = widened(props, margin_hu)
    plans[_KEY][str(channel)] = new_props
    if new_props != props:
        write_json_atomic(Path(plans_file), plans)
    return old, (new_props["percentile_00_5"], new_props["percentile_99_5"])
