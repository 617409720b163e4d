"""The HU change that paints one tumor of a drawn ``Look`` (appearance model).

change = w * (-C + A * n) + rim * R, with w the soft edge (1 inside, 0 beyond 3 edge sigmas),
n the unit-std heterogeneity field, R the rim HU. C and A are set from the look so that what
``realism`` measures comes out as drawn:
- the mean change over the tumor's voxels is -contrast (C = contrast / mean w inside: a soft
  edge would otherwise dilute a small tumor's contrast);
- the HU std over the tumor's voxels is std_hu: the host's own std s_h there and the edge
  ramp's spread add to the texture's, so A^2 = (std^2 - s_h^2 - C^2 var(w)) / mean(w^2),
  and A = 0 when the host alone is already as heterogeneous.
"""

from __future__ import annotations

import numpy as np

from .appearance import Look
from .effects import capsule_rim
from .workspace import Workspace

_RIM_WIDTH_MM = 1.2


def look_change(
    weight: np.ndarray,
    inside: np.ndarray,
    host: np.ndarray,
    distance_mm: np.ndarray,
    texture: np.ndarray,
    look: Look,
    ws: Workspace | None = None,
) -> np.ndarray:
    """The HU change (float32, box shape) for one tumor, in a new (workspace) buffer.

    weight: soft edge in [0, 1]; inside: bool tumor voxels (clipped to the liver); host: the CT
    in the box before this tumor; distance_mm: signed surface distance (mm, negative inside);
    texture: unit-std heterogeneity field. All (nx, ny, nz). ``texture`` is overwritten.
    """
    ws = ws or Workspace()
    delta = ws.get("look_delta", weight.shape)
    w_in = weight[inside]
    if w_in.size == 0:
        delta.fill(0.0)
        return delta
    mean_w = max(float(w_in.mean()), 0.05)
    mean_w2 = max(float(np.mean(np.square(w_in, dtype=np.float64))), 0.05**2)
    contrast = look.contrast_hu / mean_w
    host_var = float(host[inside].var()) if w_in.size > 1 else 0.0
    ramp_var = contrast**2 * max(mean_w2 - mean_w**2, 0.0)
    amplitude = float(np.sqrt(max(look.std_hu**2 - host_var - ramp_var, 0.0) / mean_w2))
    texture *= np.float32(amplitude)
    texture -= np.float32(contrast)
    np.multiply(weight, texture, out=delta)
    if look.rim_hu > 0:
        delta += capsule_rim(distance_mm, _RIM_WIDTH_MM) * np.float32(look.rim_hu)
    return delta


def match_contrast(
    delta: np.ndarray, weight: np.ndarray, inside: np.ndarray, contrast_hu: float
) -> None:
    """Shift ``delta`` by a multiple of ``weight`` so that its mean over ``inside`` is
    -``contrast_hu``: rims, cores and capsules change the pattern, not the drawn contrast."""
    w_in = weight[inside]
    if w_in.size == 0:
        return
    mean_w = float(w_in.mean())
    if mean_w <= 0.05:
        return
    shift = (-contrast_hu - float(delta[inside].mean())) / mean_w
    delta += weight * np.float32(shift)
