"""GRE (RFC 2784, key and sequence number extensions RFC 2890) and the enhanced
GRE of PPTP (RFC 2637 §4.1, version 1), with ERSPAN types II and III.

Wireshark fields: ``gre.flags_and_version``, ``gre.proto``.
"""

from __future__ import annotations

import numpy as np

from . import ppp
from .wire import Fields, Layer, be16, concat_layers, u8

HEADER_BYTES = 4
CHECKSUM, KEY, SEQUENCE, ACKNOWLEDGMENT = 0x8000, 0x2000, 0x1000, 0x0080
PPP_PROTOCOL = 0x880B
ERSPAN_II, ERSPAN_III = 0x88BE, 0x22EB
TRANSPARENT_ETHERNET = 0x6558


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect GRE headers; returns the payload layer and its ``int64[k]`` EtherTypes.

    ERSPAN payloads are returned as EtherType 0x6558 (Ethernet follows), PPTP's
    PPP payload with the EtherType of its PPP protocol.  A short header gets
    Zeek's ``truncated_GRE``.
    """
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_GRE")
    layer = layer.take(whole)
    flags = be16(data, layer.start)
    protocol = be16(data, layer.start + 2)
    out.put("gre.flags_and_version", layer.rows, flags)
    out.put("gre.proto", layer.rows, protocol)
    # Optional fields follow in order, 4 bytes each (RFC 2784 §2.1, RFC 2890 §2).
    length = HEADER_BYTES + 4 * (((flags & CHECKSUM) != 0).astype(np.int64)
                                 + ((flags & KEY) != 0) + ((flags & SEQUENCE) != 0))
    version_1 = (flags & 7) == 1
    length = length + 4 * (version_1 & ((flags & ACKNOWLEDGMENT) != 0))
    erspan_length = np.select([protocol == ERSPAN_II, protocol == ERSPAN_III], [8, 12], 0)
    length = length + erspan_length
    fits = layer.has(length)
    out.flag(layer.rows[~fits], "truncated_GRE")
    layer, protocol, length = layer.take(fits), protocol[fits], length[fits]
    erspan_length = erspan_length[fits]
    # ERSPAN III: an optional 8-byte platform sub-header when the O bit (last bit of word 3) is set.
    optional = (protocol == ERSPAN_III) & layer.has(length)
    optional[optional] = (u8(data, layer.start[optional] + length[optional] - 1) & 1) == 1
    length = length + 8 * optional
    ethertype = np.where(erspan_length > 0, TRANSPARENT_ETHERNET, protocol)
    payload = layer.advance(length)
    pptp = protocol == PPP_PROTOCOL
    if pptp.any():
        ppp_payload, ppp_ethertype = ppp.dissect(data, payload.take(pptp), out)
        payload = concat_layers([payload.take(~pptp), ppp_payload])
        ethertype = np.concatenate([ethertype[~pptp], ppp_ethertype])
    return payload, ethertype
