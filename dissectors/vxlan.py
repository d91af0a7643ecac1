"""VXLAN (RFC 7348 §5): an 8-byte header on UDP port 4789, then an Ethernet frame.

Wireshark fields: ``vxlan.flags``, ``vxlan.vni``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, be32

HEADER_BYTES = 8
UDP_PORT = 4789


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> Layer:
    """Dissect VXLAN headers; returns the layer of the encapsulated Ethernet frames."""
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_header", "vxlan")
    layer = layer.take(whole)
    out.put("vxlan.flags", layer.rows, be16(data, layer.start))
    out.put("vxlan.vni", layer.rows, be32(data, layer.start + 4) >> 8)
    return layer.advance(HEADER_BYTES)
