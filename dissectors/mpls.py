"""MPLS label stacks (RFC 3032 §2.1).

Wireshark fields: ``mpls.label``, ``mpls.exp`` (traffic class), ``mpls.ttl``
of the outermost entry.  Each entry is 4 bytes: label 20 bits, TC 3 bits,
bottom-of-stack 1 bit, TTL 8 bits.  What follows the bottom entry is not
named on the wire (RFC 3032 §2.2); like Wireshark we look at the first
nibble: 4 is IPv4, 6 is IPv6, 0 is a pseudowire control word (RFC 4385)
followed by Ethernet.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be32, concat_layers, u8

ENTRY_BYTES = 4
CONTROL_WORD_BYTES = 4
# Sentinel payload types returned to the stack.
PAYLOAD_IPV4, PAYLOAD_IPV6, PAYLOAD_ETHERNET, PAYLOAD_UNKNOWN = 4, 6, 0, -1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Walk the label stack; returns the payload layer and ``int64[k]`` payload kinds (``PAYLOAD_*``).

    A stack that runs past the captured bytes gets ``truncated_link_header``.
    """
    rows_done = []
    first = True
    while len(layer):
        whole = layer.has(ENTRY_BYTES)
        out.flag(layer.rows[~whole], "truncated_link_header", "mpls")
        layer = layer.take(whole)
        entry = be32(data, layer.start)
        if first:
            out.put("mpls.label", layer.rows, entry >> 12)
            out.put("mpls.exp", layer.rows, (entry >> 9) & 7)
            out.put("mpls.ttl", layer.rows, entry & 0xFF)
            first = False
        layer = layer.advance(ENTRY_BYTES)
        bottom = (entry >> 8) & 1 == 1
        done = layer.take(bottom)
        rows_done.append(done)
        layer = layer.take(~bottom)
    if not rows_done:
        return layer, np.zeros(0, dtype=np.int64)
    payload = concat_layers(rows_done)
    kind = np.full(len(payload), PAYLOAD_UNKNOWN, dtype=np.int64)
    seen = payload.has(1)
    nibble = np.full(len(payload), -1, dtype=np.int64)
    nibble[seen] = u8(data, payload.start[seen]) >> 4
    kind[nibble == 4] = PAYLOAD_IPV4
    kind[nibble == 6] = PAYLOAD_IPV6
    kind[nibble == 0] = PAYLOAD_ETHERNET
    return payload.advance(np.where(kind == PAYLOAD_ETHERNET, CONTROL_WORD_BYTES, 0)), kind

