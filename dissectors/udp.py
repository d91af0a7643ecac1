"""UDP (RFC 768).

Wireshark fields: ``udp.srcport``, ``udp.dstport``, ``udp.length``,
``udp.checksum``.  Fields are read as soon as their bytes are captured
(ports from 4 bytes, ``udp.length`` from 6, as Wireshark), so an ICMP error
quoting 8 bytes, or a cut datagram, still gives them.
"""

from __future__ import annotations

import numpy as np

from .transport import header_present
from .wire import Fields, Layer, be16

HEADER_BYTES = 8


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray, np.ndarray]:
    """Dissect UDP headers; returns the payload layer and its ``int64[k]`` source and destination ports.

    The payload is bounded by ``udp.length`` when that is a sane value (8 up to
    what the IP layer states); weirds: ``truncated_header``,
    ``internally_truncated_header``.
    """
    ports = layer.has(4)
    out.put("udp.srcport", layer.rows[ports], be16(data, layer.start[ports]))
    out.put("udp.dstport", layer.rows[ports], be16(data, layer.start[ports] + 2))
    part = layer.has(6)
    out.put("udp.length", layer.rows[part], be16(data, layer.start[part] + 4))
    whole = header_present(layer, HEADER_BYTES, out)
    layer = layer.take(whole)
    s = layer.start
    source, destination, length = be16(data, s), be16(data, s + 2), be16(data, s + 4)
    out.put("udp.checksum", layer.rows, be16(data, s + 6))
    sane = (length >= HEADER_BYTES) & (s + length <= layer.stated_end)
    length = np.where(sane, length, layer.stated_end - s)
    out.put("_l4.srcport", layer.rows, source)
    out.put("_l4.dstport", layer.rows, destination)
    payload = layer.bound(length).advance(HEADER_BYTES)
    out.put("_payload.start", payload.rows, payload.start)
    out.put("_payload.end", payload.rows, payload.end)
    return payload, source, destination
