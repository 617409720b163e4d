"""The soft edge of a tumor, compiled (numba): ``effects.soft_edge`` (flat profile) and
``effects.soft_edge_ball`` per voxel, with the normal CDF in the tanh form of
``effects._normal_cdf`` and exp / tanh as inline arithmetic (libm's expf would be a call per
voxel, which keeps a loop from vectorising)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .jit_options import OPTIONS

_LOG2_E = np.float32(1.4426950408889634)
# ln 2 split in two (Cody-Waite): n * _LN2_HI is exact in float32 for |n| < 2^9
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.121944400546905e-4)


@intrinsic
def _float32_bits(typingctx: Any, bits: Any) -> tuple[Any, Any]:
    """The float32 whose IEEE bits are the int32 ``bits`` (a bit cast, no arithmetic)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


@njit(**OPTIONS)
def exp_neg(x: np.float32) -> np.float32:
    """e^x for float32 x <= 0 (2^-126 below -87), to about 2e-7 relative: x = n ln 2 + r,
    |r| <= ln 2 / 2, e^r by its Taylor polynomial to r^7 (truncation < 1e-8). Plain arithmetic
    that the compiler inlines, where libm's expf is a call per voxel. 2^n (n in [-126, 0]) is
    built from its exponent bits: exactly the power of two, and it vectorises, where a table
    of them cost a gather per voxel (the reference change pass took 1.2x as long)."""
    x = max(x, np.float32(-87.0))
    n = np.floor(x * _LOG2_E + np.float32(0.5))
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    power: np.float32 = _float32_bits((np.int32(n) + np.int32(127)) << np.int32(23))  # type: ignore[call-arg]
    result: np.float32 = p * power
    return result


@njit(**OPTIONS)
def tanh(u: np.float32) -> np.float32:
    """tanh(u) = (1 - e) / (1 + e), e = exp(-2 |u|), signed: absolute error about 1e-7
    (exactly +-1 from |u| = 9, where float32 tanh rounds to 1)."""
    e = exp_neg(np.float32(-2.0) * min(abs(u), np.float32(9.0)))
    v = (np.float32(1.0) - e) / (np.float32(1.0) + e)
    return v if u >= np.float32(0.0) else -v


@njit(**OPTIONS)
def normal_cdf(t: np.float32) -> np.float32:
    """Phi(t) in the tanh form of ``effects._normal_cdf`` (float32, same operation order;
    ``tanh`` for NumPy's tanh: the results agree to about 1e-7)."""
    u: np.float32 = t * t
    u *= np.float32(0.044715)
    u += np.float32(1.0)
    u *= t
    u *= np.float32(0.7978845608028654)
    u = tanh(u)
    u += np.float32(1.0)
    u *= np.float32(0.5)
    return u


@njit(**OPTIONS)
def flat_weight(t: np.float32, cdf_floor: np.float32, cdf_scale: np.float32) -> np.float32:
    """``effects.soft_edge`` at t = distance / sigma, for t in [-3, 3] (the caller clamps: it
    is constant below -3 and zero above 3)."""
    w: np.float32 = min(max((normal_cdf(-t) - cdf_floor) * cdf_scale, np.float32(0.0)),
                        np.float32(1.0))
    return w


@njit(**OPTIONS, inline="always")  # a call per voxel would not vectorise
def ball_weight(r: np.float32, radius: np.float32, inv_sigma: np.float32,
                curvature: np.float32) -> np.float32:
    """``effects.soft_edge_ball`` at r = max(distance + radius, floor_r) mm (zero beyond
    r_max: the caller's test)."""
    near = (radius - r) * inv_sigma
    far = (radius + r) * -inv_sigma
    w = normal_cdf(near) - normal_cdf(far)
    bend = exp_neg(near * near * np.float32(-0.5))
    bend -= exp_neg(far * far * np.float32(-0.5))
    bend /= r
    result: np.float32 = min(max(w - bend * curvature, np.float32(0.0)), np.float32(1.0))
    return result


@njit(**OPTIONS)
def weight_at(dist: np.float32, edge: np.ndarray) -> tuple[np.float32, bool]:
    """The soft edge at signed distance ``dist`` (mm) and whether it can be non-zero there
    (``change_pass``'s edge constants); the weight is that of the nearest point of the
    profile's range where it cannot."""
    kind, inv_sigma, radius, floor_r = edge[0], edge[1], edge[2], edge[3]
    three = np.float32(3.0)
    if kind == 0:
        t = dist * inv_sigma
        return flat_weight(min(max(t, -three), three), edge[6], edge[7]), t < three
    r = max(dist + radius, floor_r)
    return ball_weight(min(r, edge[5]), radius, inv_sigma, edge[4]), r <= edge[5]
