"""Teredo (RFC 4380 §5.1.1): IPv6 in UDP (port 3544), optionally preceded by an
authentication indicator or an origin indication.

Wireshark fields: ``teredo.auth``, ``teredo.orig`` are not kept; the IPv6
packet inside is dissected like any other.  Wireshark recognises Teredo by
port and by the IPv6 version nibble; so do we.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, u8

UDP_PORT = 3544
AUTHENTICATION, ORIGIN = 0x0001, 0x0000
ORIGIN_BYTES = 8


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> Layer:
    """Skip Teredo's optional headers; returns the layer of the payloads that look like IPv6."""
    offset = np.zeros(len(layer), dtype=np.int64)
    for _ in range(2):  # RFC 4380 §5.1.1: authentication first, then origin indication
        readable = layer.has(offset + 2)
        indicator = np.full(len(layer), -1, dtype=np.int64)
        indicator[readable] = be16(data, layer.start[readable] + offset[readable])
        auth = (indicator == AUTHENTICATION) & layer.has(offset + 4)
        auth_length = np.zeros(len(layer), dtype=np.int64)
        position = layer.start[auth] + offset[auth]
        # id length, auth length, then nonce (8 bytes) and confirmation (1 byte).
        auth_length[auth] = 4 + u8(data, position + 2) + u8(data, position + 3) + 9
        origin = indicator == ORIGIN
        offset = offset + auth_length + np.where(origin, ORIGIN_BYTES, 0)
    payload = layer.advance(offset)
    looks_ipv6 = payload.has(40)
    looks_ipv6[looks_ipv6] = (u8(data, payload.start[looks_ipv6]) >> 4) == 6
    return payload.take(looks_ipv6)
