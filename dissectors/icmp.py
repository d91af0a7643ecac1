"""ICMP for IPv4 (RFC 792) and ICMPv6 (RFC 4443 §2.1).

Wireshark fields: ``icmp.type``, ``icmp.code``, ``icmp.checksum``,
``icmpv6.type``, ``icmpv6.code``, ``icmpv6.checksum``.  Error messages quote
the offending datagram after their 8-byte header (RFC 792: destination
unreachable 3, source quench 4, redirect 5, time exceeded 11, parameter
problem 12; RFC 4443 §3: types 1–4); it is returned so that the stack can
dissect it as Wireshark does (the quoted header's fields are later
occurrences of ``ip.src`` and so on, so the outer packet's values stay first).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, u8

HEADER_BYTES = 8
ICMP_ERRORS = (3, 4, 5, 11, 12)
ICMPV6_ERRORS = (1, 2, 3, 4)


def dissect(data: np.ndarray, layer: Layer, out: Fields, version: int) -> Layer:
    """Dissect ICMP (``version`` 4) or ICMPv6 (``version`` 6) headers.

    Returns the layer of the quoted datagram of error messages (empty for
    other types).  A header cut before type and code gets ``truncated_header``
    or ``internally_truncated_header``.
    """
    prefix = "icmp" if version == 4 else "icmpv6"
    captured, stated = layer.has(4), layer.start + 4 <= layer.stated_end
    out.flag(layer.rows[~stated], "truncated_header")
    out.flag(layer.rows[stated & ~captured], "internally_truncated_header")
    layer = layer.take(captured)
    kind = u8(data, layer.start)
    out.put(f"{prefix}.type", layer.rows, kind)
    out.put(f"{prefix}.code", layer.rows, u8(data, layer.start + 1))
    out.put(f"{prefix}.checksum", layer.rows, be16(data, layer.start + 2))
    out.put("_icmp.type", layer.rows, kind)
    out.put("_icmp.code", layer.rows, u8(data, layer.start + 1))
    errors = np.isin(kind, ICMP_ERRORS if version == 4 else ICMPV6_ERRORS) & layer.has(HEADER_BYTES)
    return layer.take(errors).advance(HEADER_BYTES)
