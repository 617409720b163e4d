"""PNG slices for the reader study: every image of one size has the same byte layout.

Pillow with fixed settings: 8-bit greyscale, compression level 0 (stored deflate blocks, so the
byte count depends only on the image size, never on the pixels), no optimisation pass and no
metadata (no text, time, dpi or colour chunks). Two slices of the same size are therefore the
same number of bytes with the same chunk layout, and differ only in pixel values and checksums:
file size and metadata cannot tell real from synthetic cases.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the only settings given to Pillow: content-independent size, nothing but pixels
PNG_SETTINGS: dict[str, Any] = {"format": "PNG", "compress_level": 0, "optimize": False}


def encode_gray_png(image: np.ndarray) -> bytes:
    """Encode a 2-D uint8 image (rows, columns) as a greyscale PNG without metadata."""
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8 or img.size == 0:
        raise ValueError(f"need a non-empty 2-D uint8 image, got {img.dtype} {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, **PNG_SETTINGS)  # uint8 2-D: mode L
    return buf.getvalue()


def chunk_layout(data: bytes) -> list[tuple[str, int]]:
    """(type, length) of every chunk of a PNG, in order; ValueError if it is not a PNG."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    pos, out = len(SIGNATURE), []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8].decode("latin-1"), int(length)))
        pos += 12 + length
    return out
