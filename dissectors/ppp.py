"""PPP framing (RFC 1661 §2, RFC 1662 §3) for link types PPP (9) and PPP_HDLC (50), and
the PPP protocol numbers used by PPPoE.

Wireshark field: ``ppp.protocol``.  The address/control bytes ``FF 03`` may be
present (HDLC-like framing) or compressed away (RFC 1661 §6.6); a protocol
field whose first byte is odd is a compressed 1-byte field (RFC 1661 §6.5).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, u8

# PPP protocol number -> EtherType of the same payload (IANA PPP DLL numbers).
PPP_TO_ETHERTYPE = {0x0021: 0x0800, 0x0057: 0x86DD, 0x0281: 0x8847, 0x0283: 0x8848}
NO_ETHERTYPE = -1


def to_ethertype(protocol: np.ndarray) -> np.ndarray:
    """``int64[k]`` EtherTypes for PPP protocol numbers (``NO_ETHERTYPE`` where none)."""
    result = np.full(len(protocol), NO_ETHERTYPE, dtype=np.int64)
    for ppp_protocol, ethertype in PPP_TO_ETHERTYPE.items():
        result[protocol == ppp_protocol] = ethertype
    return result


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect a PPP header; returns the payload layer and its ``int64[k]`` EtherTypes."""
    whole = layer.has(2)
    out.flag(layer.rows[~whole], "truncated_link_header", "ppp")
    layer = layer.take(whole)
    framed = (u8(data, layer.start) == 0xFF) & (u8(data, layer.start + 1) == 0x03)
    layer = layer.advance(2 * framed)
    whole = layer.has(1)
    out.flag(layer.rows[~whole], "truncated_link_header", "ppp")
    layer = layer.take(whole)
    first = u8(data, layer.start)
    compressed = (first & 1) == 1
    two = ~compressed & layer.has(2)
    protocol = first.copy()
    protocol[two] = be16(data, layer.start[two])
    cut = ~compressed & ~two
    out.flag(layer.rows[cut], "truncated_link_header", "ppp")
    keep = ~cut
    layer, protocol, compressed = layer.take(keep), protocol[keep], compressed[keep]
    out.put("ppp.protocol", layer.rows, protocol)
    return layer.advance(np.where(compressed, 1, 2)), to_ethertype(protocol)
