"""A minimal PNG writer for the reader study: every image has the same bytes layout.

Why not matplotlib or Pillow: they add text chunks (software, date) and choose compression by
content, so file sizes and metadata could tell real from synthetic cases. Here every slice is
8-bit greyscale, one IHDR, one IDAT of *stored* (uncompressed) deflate blocks and one IEND; two
images of the same pixel size are therefore exactly the same number of bytes, with the same
chunk layout, and differ only in pixel values and checksums.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_gray_png(image: np.ndarray) -> bytes:
    """Encode a 2-D uint8 image (rows, columns) as a greyscale PNG without metadata.

    Compression level 0 (stored deflate blocks): the byte length depends only on the shape.
    """
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8 or img.size == 0:
        raise ValueError(f"need a non-empty 2-D uint8 image, got {img.dtype} {img.shape}")
    rows, cols = img.shape
    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    # each scanline starts with filter type 0 (none), so the layout never depends on content
    raw = np.concatenate([np.zeros((rows, 1), np.uint8), img], axis=1).tobytes()
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 0)) + _chunk(
        b"IEND", b""
    )


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
