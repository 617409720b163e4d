"""Intensity and geometry effects around one tumor, each a pure function on box arrays.

``soft_edge`` is the reference's blurred tumor mask. The others are options beyond the reference
(the paper's reader-study post-processing plus two common appearances of liver lesions); their
amplitudes are our choices, stated in ``EffectParams``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workspace import Workspace

_SQRT_2_OVER_PI = np.float32(np.sqrt(2.0 / np.pi))
_TRUNCATE = np.float32(3.0)


def _normal_cdf(t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Phi(t) to about 1e-3 (tanh form; erf is ten times slower on large boxes).

    ``out`` may be ``t`` itself (in place) or another buffer of its shape.
    """
    if out is None:
        out = np.empty_like(t)
    if out is not t:
        np.multiply(t, t, out=out)
    else:
        t = t.copy()  # rare path: the polynomial needs t after out is overwritten
        np.multiply(t, t, out=out)
    out *= np.float32(0.044715)
    out += np.float32(1.0)
    out *= t
    out *= _SQRT_2_OVER_PI
    np.tanh(out, out=out)
    out += np.float32(1.0)
    out *= np.float32(0.5)
    return out


_CDF_FLOOR = float(_normal_cdf(np.array([-3.0], dtype=np.float32))[0])


def _truncated_step(t: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Phi(-t) rescaled to be exactly 1 for t <= -3 and exactly 0 for t >= 3; ``t`` is
    overwritten (clipped and negated), the result goes to ``out`` (float32)."""
    np.clip(t, -_TRUNCATE, _TRUNCATE, out=t)
    np.negative(t, out=t)
    _normal_cdf(t, out=out)
    out -= np.float32(_CDF_FLOOR)
    out *= np.float32(1.0 / (1.0 - 2.0 * _CDF_FLOOR))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def soft_edge(
    distance_mm: np.ndarray, sigma_mm: float, ws: Workspace | None = None
) -> np.ndarray:
    """The tumor mask blurred by a Gaussian of ``sigma_mm``, from the signed surface distance.

    Blurring a smooth binary shape gives Phi(-distance / sigma) across its surface. Like a
    truncated Gaussian filter, the profile is exactly 1 deeper than 3 sigma inside and exactly 0
    beyond 3 sigma outside, so the CT is untouched away from the tumor. Returns float32 in [0, 1].
    """
    ws = ws or Workspace()
    t = ws.get("scratch1", distance_mm.shape)
    np.multiply(distance_mm, np.float32(1.0 / sigma_mm), out=t)
    return _truncated_step(t, ws.get("edge", distance_mm.shape))


def soft_edge_ball(
    distance_mm: np.ndarray, radius_mm: float, sigma_mm: float, ws: Workspace | None = None
) -> np.ndarray:
    """The blurred mask of a small tumor, modelled as a ball of ``radius_mm``.

    For tumors only a few sigma across the flat-surface profile of ``soft_edge`` is too bright:
    blurring also lowers the core (a 4 mm ball blurred by 2 mm peaks at 0.74). This is the exact
    blur of a ball, evaluated at r = radius + distance to the surface, so that it follows the
    distorted shape; it is 0 beyond 3 sigma outside the surface. Returns float32 in [0, 1].
    """
    ws = ws or Workspace()
    shape = distance_mm.shape
    inv = np.float32(1.0 / sigma_mm)
    r = ws.get("scratch1", shape)
    np.add(distance_mm, np.float32(radius_mm), out=r)
    # Floor r where the curvature term's difference of exponentials would cancel out: there
    # (x = R r / sigma^2 < 0.05) it is within 1e-3 of its r -> 0 limit.
    np.maximum(r, np.float32(0.05 * sigma_mm**2 / radius_mm), out=r)
    near = ws.get("scratch2", shape)
    far = ws.get("scratch3", shape)
    np.subtract(np.float32(radius_mm), r, out=near)
    near *= inv
    np.add(np.float32(radius_mm), r, out=far)
    far *= -inv
    g = ws.get("edge", shape)
    _normal_cdf(near, out=g)
    tmp = ws.get("scratch4", shape)
    g -= _normal_cdf(far, out=tmp)
    # Curvature term: sigma / (r sqrt(2 pi)) * (exp(-near^2 / 2) - exp(-far^2 / 2)).
    np.multiply(near, near, out=near)
    near *= np.float32(-0.5)
    np.exp(near, out=near)
    np.multiply(far, far, out=far)
    far *= np.float32(-0.5)
    np.exp(far, out=far)
    near -= far
    near /= r
    near *= np.float32(sigma_mm / np.sqrt(2.0 * np.pi))
    g -= near
    np.clip(g, 0.0, 1.0, out=g)
    beyond = ws.get("mask", shape, np.bool_)
    np.greater(r, np.float32(radius_mm + _TRUNCATE * sigma_mm), out=beyond)
    np.copyto(g, np.float32(0.0), where=beyond)
    return g


def capsule_rim(distance_mm: np.ndarray, width_mm: float) -> np.ndarray:
    """A thin shell just inside the tumor surface: peak one ``width_mm`` inside, Gaussian
    fall-off of ``width_mm``, exactly 0 beyond 1.5 widths outside (float32 in [0, 1])."""
    t = (distance_mm + np.float32(width_mm)) * np.float32(1.0 / width_mm)
    rim = np.exp(-0.5 * t * t)
    rim[np.abs(t) > 2.5] = 0.0
    return rim.astype(np.float32, copy=False)


def necrotic_core(norm_radius_sq: np.ndarray, core_fraction: float) -> np.ndarray:
    """A soft central core: 1 inside ``core_fraction`` of the tumor radius, exactly 0 beyond
    core_fraction + 0.375 (so nothing outside the tumor changes)."""
    rho = np.sqrt(norm_radius_sq)
    rho -= np.float32(core_fraction)
    rho *= np.float32(8.0)  # the core's edge spans about +/- 0.1 of the tumor radius
    return _truncated_step(rho, np.empty_like(rho))


@dataclass(frozen=True)
class EffectParams:
    """Amplitudes of the optional effects (our choices; HU and mm)."""

    capsule_hu: tuple[float, float] = (15.0, 35.0)  # rim brightening of HCC-like capsules
    capsule_width_mm: tuple[float, float] = (0.8, 1.5)
    necrosis_min_radius_mm: float = 20.0  # only tumors this large get a necrotic core
    necrosis_hu: tuple[float, float] = (20.0, 45.0)  # extra darkening of the core
    necrosis_fraction: tuple[float, float] = (0.35, 0.6)
    bright_hu: tuple[float, float] = (20.0, 60.0)  # hyper-attenuating tumors: HU added
    mass_effect_strength: tuple[float, float] = (0.08, 0.2)  # surface push / semi-axis
    mass_effect_reach: float = 2.5  # the push fades to zero at this many semi-axes


def mass_effect_warp(
    image: np.ndarray,
    labels: np.ndarray,
    centre_vox: np.ndarray,
    semi_axes_mm: np.ndarray,
    spacing_mm: tuple[float, float, float],
    strength: float,
    reach: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Push tissue outwards from a tumor: a radial warp applied to image and labels alike.

    A point at normalised ellipsoidal radius rho samples the input at rho * (1 - strength * w(rho)),
    w = 1 inside the tumor and fading smoothly to 0 at ``reach``: tissue near the surface moves out
    by about ``strength`` semi-axes, tissue beyond ``reach`` stays. The map stays monotonic for
    strength <= 0.2 at reach 2.5. image (float) is interpolated linearly, labels by nearest
    neighbour. Arrays are a box (x, y, z) and centre_vox is in box voxel coordinates.
    The reference implementation: the compiled backend runs ``kernels_warp.mass_effect_pass``,
    which gives the same labels and HU in one pass.
    """
    from scipy import ndimage as ndi  # here: the compiled path never loads it (0.1-0.2 s)

    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in image.shape], indexing="ij")
    rel = [
        (g - np.float32(c)) * np.float32(s) / np.float32(a)
        for g, c, s, a in zip(grids, centre_vox, spacing_mm, semi_axes_mm)
    ]
    rho = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)
    fade = np.clip((rho - 1.0) / (reach - 1.0), 0.0, 1.0)
    scale = 1.0 - strength * (1.0 - fade**2) ** 2
    coords = [np.float32(c) + (g - np.float32(c)) * scale for g, c in zip(grids, centre_vox)]
    warped_image = ndi.map_coordinates(image, coords, order=1, mode="nearest")
    warped_labels = ndi.map_coordinates(labels, coords, order=0, mode="nearest")
    return warped_image.astype(image.dtype, copy=False), warped_labels.astype(labels.dtype)
