"""The HU change that paints one tumor of a drawn ``Look`` (appearance model).

change = w * (-C + A * n) + rim * R (+ the optional effects: capsule, necrotic core), with w
the soft edge (1 inside, 0 beyond 3 edge sigmas), n the unit-std heterogeneity field, R the rim
HU. C and A are set from the look so that what ``realism`` measures comes out as drawn:
- the HU std over the tumor's voxels is std_hu (with ``std_beyond_liver``: sqrt(var(host) +
  std_hu^2), the host's std there plus the drawn heterogeneity in quadrature): the host's own
  texture there and the spread of the deterministic part (edge ramp, rims, cores) add to the
  texture's, so A^2 = (std^2 - var(host + deterministic part)) / mean(w^2), and A = 0 when that
  alone is already as heterogeneous;
- the mean change over the tumor's voxels is -contrast (``match_contrast``, last).
When the host with the deterministic part is already more heterogeneous than std_hu, the
host is first flattened inside the tumor (``flatten_host``): a tumor displaces the vessels and
parenchyma it grows into.
"""

from __future__ import annotations

import numpy as np

from .appearance import Look
from .effects import capsule_rim
from .workspace import Workspace

RIM_WIDTH_MM = 1.2  # the bright rim of rim-enhancing tumors (effects.capsule_rim width)
#: Of a tumor's drawn HU variance, the share kept for its own texture however rough the host
#: it displaces (``flatten_host`` flattens the host down to the rest). 0: the host is flattened
#: only as far as the drawn std requires. 0.5 matched LiTS 117's texture statistics better but
#: trained worse networks in the efficacy benchmark (docs/realism.md).
OWN_TEXTURE_SHARE = 0.0


def base_change(
    weight: np.ndarray, inside: np.ndarray, distance_mm: np.ndarray, look: Look,
    ws: Workspace | None = None,
) -> np.ndarray:
    """The deterministic part of a tumor's HU change: -w C (+ rim), in a workspace buffer.

    weight: soft edge in [0, 1]; inside: bool tumor voxels (clipped to the liver);
    distance_mm: signed surface distance (mm, negative inside); all (nx, ny, nz).
    """
    ws = ws or Workspace()
    delta = ws.get("look_delta", weight.shape)
    w_in = weight[inside]
    mean_w = max(float(w_in.mean()), 0.05) if w_in.size else 1.0
    np.multiply(weight, np.float32(-look.contrast_hu / mean_w), out=delta)
    if look.rim_hu > 0:
        delta += capsule_rim(distance_mm, RIM_WIDTH_MM) * np.float32(look.rim_hu)
    return delta


def flatten_host(
    host: np.ndarray, delta: np.ndarray, weight: np.ndarray, inside: np.ndarray,
    liver: np.ndarray, look: Look,
) -> tuple[np.ndarray, np.ndarray] | None:
    """What a tumor does to the liver structure it displaces (vessels, parenchymal texture):
    when the host plus the deterministic change so far (``delta``: -C w, rims, capsule, core)
    is already more heterogeneous over the tumor's voxels than the share of the drawn variance
    left to it, (1 - ``OWN_TEXTURE_SHARE``) std_hu^2, the host is pulled toward its w-weighted
    mean m there by f w (host - m), with the smallest f in [0, 1] that brings that variance
    down to it (1 if none does). The tumor's own texture then adds the rest of std_hu^2, and
    rims and cores keep their full strength where f < 1.

    host: the CT in the box before this tumor (HU); weight, inside: as ``add_texture``; liver:
    bool, the box's liver voxels. With ``std_beyond_liver`` the drawn std is added to the
    host's, so nothing is flattened. Returns (the flattened host, its change -f w (host - m),
    zero outside the liver), arrays of the box, or None when the host fits as it is (then
    nothing changes). The change sums to zero over the tumor's voxels: the contrast is kept.
    """
    if look.std_beyond_liver or np.count_nonzero(inside) < 2:
        return None
    w_in = weight[inside].astype(np.float64)
    h_in = host[inside].astype(np.float64)
    painted = h_in + delta[inside]
    budget, v_painted = (1.0 - OWN_TEXTURE_SHARE) * look.std_hu**2, float(painted.var())
    if v_painted <= budget or w_in.sum() <= 0:
        return None
    m = float(np.sum(w_in * h_in) / np.sum(w_in))
    g = w_in * (h_in - m)
    v_g = float(g.var())
    cov = float(np.mean((painted - painted.mean()) * (g - g.mean())))
    disc = cov * cov - v_g * (v_painted - budget)  # var(painted - f g) = budget: quadratic in f
    f = 1.0 if v_g <= 0 or disc < 0 else float(np.clip((cov - np.sqrt(disc)) / v_g, 0.0, 1.0))
    if f <= 0.0:
        return None
    change = host - np.float32(m)
    change *= weight
    change *= np.float32(-f)
    change *= liver
    return host + change, change


def rougher_than_drawn(moments: np.ndarray, look: Look) -> bool:
    """``flatten_host``'s test (host + deterministic change more heterogeneous than its share),
    from the sums of ``kernels_look.texture_moments``. At the border the two may disagree by
    rounding, where flattening would change the host by next to nothing (f near 0)."""
    n, sh, sh2, sd, sd2, shd = (float(moments[i]) for i in (0, 3, 4, 6, 7, 8))
    if look.std_beyond_liver or n < 2:
        return False
    mean = (sh + sd) / n
    return (sh2 + 2.0 * shd + sd2) / n - mean * mean > (1.0 - OWN_TEXTURE_SHARE) * look.std_hu**2


def _pattern_scale(base: np.ndarray, pattern: np.ndarray, budget: float) -> float:
    """k in [0, 1] with var(base + k pattern) = budget (1 if it fits as is, 0 if even the
    base alone exceeds it): var = v0 + 2 k c + k^2 vp."""
    vp = float(pattern.var())
    if vp <= 1e-6 * budget:  # no rim, capsule or core: nothing to scale
        return 1.0
    v0 = float(base.var())
    c = float(np.mean((base - base.mean()) * (pattern - pattern.mean())))
    if v0 + 2 * c + vp <= budget:
        return 1.0
    if v0 >= budget:
        return 0.0
    return float(np.clip((-c + np.sqrt(max(c * c - vp * (v0 - budget), 0.0))) / vp, 0.0, 1.0))


def add_texture(
    delta: np.ndarray, weight: np.ndarray, inside: np.ndarray, host: np.ndarray,
    texture: np.ndarray, look: Look,
) -> float:
    """Add w A n to ``delta`` with A set so that the tumor's HU std is ``look.std_hu`` (beyond
    the host's std in quadrature if ``look.std_beyond_liver``).

    host: the CT in the box before this tumor; texture: unit-std field n (overwritten). The
    host's own variance and the variance of ``delta`` so far (edge ramp, rims, cores) count
    towards the std. Rims, capsules and cores (what ``delta`` holds beyond -w C) are scaled
    down when they alone would exceed it: they shape the drawn heterogeneity, not add to it.
    Returns A (HU).
    """
    w_in = weight[inside]
    if w_in.size < 2:
        return 0.0
    budget = look.std_hu**2
    if look.std_beyond_liver:
        budget += float(host[inside].var(dtype=np.float64))
    mean_w = max(float(w_in.mean()), 0.05)
    base_in = host[inside].astype(np.float64) - (look.contrast_hu / mean_w) * w_in
    pattern_in = delta[inside] - (base_in - host[inside])
    k = _pattern_scale(base_in, pattern_in, budget)
    if k < 1.0:
        # delta = base + k (delta - base): scale the pattern part in place, whole box
        base = weight * np.float32(-look.contrast_hu / mean_w)
        delta -= base
        delta *= np.float32(k)
        delta += base
    before = base_in + k * pattern_in
    mean_w2 = max(float(np.mean(np.square(w_in, dtype=np.float64))), 0.05**2)
    amplitude = float(np.sqrt(max(budget - float(before.var()), 0.0) / mean_w2))
    if amplitude > 0:
        texture *= weight
        texture *= np.float32(amplitude)
        delta += texture
    return amplitude


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


def texture_constants(moments: np.ndarray, look: Look) -> np.ndarray:
    """``add_texture`` then ``match_contrast`` as four numbers, from the sums of
    ``kernels_look.texture_moments``: float32 (c, k, A, s) such that the final change is
    b + k (delta - b) + (A n + s) w with b = -c w (the same rule, the same thresholds)."""
    n, sw, sw2, sh, sh2, shw, sd, sd2, shd, swd, swn = (float(v) for v in moments)
    if n < 2:
        raw_mean_w = sw / n if n else 0.0
        shift = 0.0
        if n and raw_mean_w > 0.05:
            shift = (-look.contrast_hu - sd / n) / raw_mean_w
        return np.array([0.0, 1.0, 0.0, shift], np.float32)
    budget = look.std_hu**2
    if look.std_beyond_liver:  # the host's variance over the tumor's voxels
        budget += max(sh2 / n - (sh / n) ** 2, 0.0)
    mean_w = max(sw / n, 0.05)
    c = look.contrast_hu / mean_w
    # base = h - c w, pattern = d + c w (moments of each and of their product)
    b1, p1 = (sh - c * sw) / n, (sd + c * sw) / n
    v0 = (sh2 - 2 * c * shw + c * c * sw2) / n - b1 * b1
    vp = (sd2 + 2 * c * swd + c * c * sw2) / n - p1 * p1
    cov = (shd + c * shw - c * swd - c * c * sw2) / n - b1 * p1
    k = 1.0
    if vp > 1e-6 * budget and v0 + 2 * cov + vp > budget:
        k = 0.0 if v0 >= budget else float(np.clip(
            (-cov + np.sqrt(max(cov * cov - vp * (v0 - budget), 0.0))) / vp, 0.0, 1.0))
    before_var = v0 + 2 * k * cov + k * k * vp
    mean_w2 = max(sw2 / n, 0.05**2)
    amplitude = float(np.sqrt(max(budget - before_var, 0.0) / mean_w2))
    # mean change over the tumor after the texture: -c w + k (d + c w) + A w n
    mean_delta = (-c * sw + k * (sd + c * sw) + amplitude * swn) / n
    raw_mean_w = sw / n
    shift = (-look.contrast_hu - mean_delta) / raw_mean_w if raw_mean_w > 0.05 else 0.0
    return np.array([c, k, amplitude, shift], np.float32)
