"""AYIYA, "Anything In Anything" (draft-massar-v6ops-ayiya-02 §5), UDP port 5072.

Header: identity length and type, signature length and hash method,
authentication method and opcode, next header (IP protocol number), epoch
(4 bytes), then identity (2**idlen bytes) and signature (4 * siglen bytes).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, u8

UDP_PORT = 5072
FIXED_BYTES = 8


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect AYIYA headers; returns the payload layer and its ``int64[k]`` IP protocol numbers."""
    whole = layer.has(FIXED_BYTES)
    out.flag(layer.rows[~whole], "truncated_header", "ayiya")
    layer = layer.take(whole)
    s = layer.start
    length = FIXED_BYTES + (1 << (u8(data, s) >> 4)) + 4 * (u8(data, s + 1) >> 4)
    protocol = u8(data, s + 3)
    fits = layer.has(length)
    out.flag(layer.rows[~fits], "truncated_header", "ayiya")
    return layer.take(fits).advance(length[fits]), protocol[fits]
