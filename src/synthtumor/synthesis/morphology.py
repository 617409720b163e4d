"""Binary morphology on tumor boxes, fast enough for every tumor of every sample."""

from __future__ import annotations

import numpy as np

from .workspace import Workspace


def box_dilate(mask: np.ndarray, reach: tuple[int, ...], ws: Workspace | None = None) -> np.ndarray:
    """Dilate a bool mask by a box: ``reach[i]`` voxels both ways along axis i (L-infinity).

    Same result as a maximum filter of size 2 reach + 1 with zero padding, but made of O(log r)
    whole-array ORs per axis on 1-byte data ("doubling": the OR over a window of w is built from
    windows of 1, 2, 4, ...), several times faster than a generic running-maximum filter.
    With ``ws`` the result is a view of one of its buffers.
    """
    ws = ws or Workspace()
    current = mask
    for axis, r in enumerate(reach):
        if r <= 0:
            continue
        n = mask.shape[axis]
        width = 2 * r + 1

        def part(lo: int, hi: int, axis: int = axis) -> tuple[slice, ...]:
            index = [slice(None)] * mask.ndim
            index[axis] = slice(lo, hi)
            return tuple(index)

        # Trailing windows over the mask padded with r zeros at the end: after the loop
        # a[i] = any(padded[i - width + 1 .. i]), so the centred window of i is a[i + r].
        padded_shape = list(mask.shape)
        padded_shape[axis] = n + r
        a = ws.get(f"dilate_a{axis}", tuple(padded_shape), np.bool_)
        b = ws.get(f"dilate_b{axis}", tuple(padded_shape), np.bool_)
        np.copyto(a[part(0, n)], current)
        a[part(n, n + r)] = False
        span = 1
        while span < width:
            step = min(span, width - span)
            np.copyto(b[part(0, step)], a[part(0, step)])
            np.logical_or(a[part(step, n + r)], a[part(0, n + r - step)], out=b[part(step, n + r)])
            a, b = b, a
            span += step
        out = ws.get(f"dilate_out{axis % 2}", mask.shape, np.bool_)
        np.copyto(out, a[part(r, n + r)])
        current = out
    return current
