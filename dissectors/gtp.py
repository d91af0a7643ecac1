"""GTP-U version 1 (3GPP TS 29.281 §5), UDP port 2152: user-plane packets (G-PDU,
message type 255) carry an IP packet.

Wireshark fields: ``gtp.message``, ``gtp.teid``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be32, u8

UDP_PORT = 2152
HEADER_BYTES = 8
G_PDU = 255
MAX_EXTENSIONS = 16


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> Layer:
    """Dissect GTP-U headers and extension headers; returns the layer of G-PDU payloads."""
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_header", "gtp")
    layer = layer.take(whole)
    s = layer.start
    flags = u8(data, s)
    message = u8(data, s + 1)
    out.put("gtp.message", layer.rows, message)
    out.put("gtp.teid", layer.rows, be32(data, s + 4))
    user = ((flags >> 5) == 1) & (message == G_PDU)
    layer, flags = layer.take(user), flags[user]
    # E, S or PN set: 4 more bytes (sequence, N-PDU number, next extension type).
    length = HEADER_BYTES + 4 * ((flags & 0x07) != 0)
    extended = (flags & 0x04) != 0
    for _ in range(MAX_EXTENSIONS):
        readable = extended & layer.has(length)
        if not readable.any():
            break
        next_type = np.zeros(len(layer), dtype=np.int64)
        next_type[readable] = u8(data, layer.start[readable] + length[readable] - 1)
        chained = readable & (next_type != 0) & layer.has(length + 1)
        ext_length = np.zeros(len(layer), dtype=np.int64)
        ext_length[chained] = u8(data, layer.start[chained] + length[chained]) * 4
        bad = chained & (ext_length == 0)
        out.flag(layer.rows[bad], "truncated_header", "gtp")
        extended = chained & ~bad
        length = length + ext_length
        layer = layer.take(~bad)
        length, extended = length[~bad], extended[~bad]
    fits = layer.has(length)
    return layer.take(fits).advance(length[fits])
