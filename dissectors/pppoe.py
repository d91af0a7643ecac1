"""PPPoE session stage (RFC 2516 §4 and §6), EtherType 0x8864.

Wireshark fields: ``pppoes.code``, ``pppoes.session_id``; the PPP protocol
number follows the 6-byte header (``ppp.protocol``).
"""

from __future__ import annotations

import numpy as np

from . import ppp
from .wire import Fields, Layer, be16

HEADER_BYTES = 6


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect a PPPoE session header and its PPP protocol field.

    Returns the PPP payload layer and its ``int64[k]`` EtherTypes.  Short
    headers get Zeek's weird ``truncated_pppoe_header``.
    """
    whole = layer.has(HEADER_BYTES + 2)
    out.flag(layer.rows[~whole], "truncated_pppoe_header")
    layer = layer.take(whole)
    s = layer.start
    out.put("pppoes.code", layer.rows, data[s + 1].astype(np.int64))
    out.put("pppoes.session_id", layer.rows, be16(data, s + 2))
    # RFC 2516 §4: the LENGTH field (PPP protocol included) bounds the payload.
    length = be16(data, s + 4)
    protocol = be16(data, s + HEADER_BYTES)
    out.put("ppp.protocol", layer.rows, protocol)
    return layer.advance(HEADER_BYTES).bound(length).advance(2), ppp.to_ethertype(protocol)
