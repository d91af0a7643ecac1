"""Geneve (RFC 8926 §3.4) on UDP port 6081: 8 bytes, options, then the payload
named by an EtherType (0x6558: Ethernet).

Wireshark fields: ``geneve.proto_type``, ``geneve.vni``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, be32, u8

HEADER_BYTES = 8
UDP_PORT = 6081


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect Geneve headers; returns the payload layer and its ``int64[k]`` EtherTypes."""
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_header", "geneve")
    layer = layer.take(whole)
    options = (u8(data, layer.start) & 0x3F) * 4
    protocol = be16(data, layer.start + 2)
    out.put("geneve.proto_type", layer.rows, protocol)
    out.put("geneve.vni", layer.rows, be32(data, layer.start + 4) >> 8)
    length = HEADER_BYTES + options
    fits = layer.has(length)
    out.flag(layer.rows[~fits], "truncated_header", "geneve")
    return layer.take(fits).advance(length[fits]), protocol[fits]
