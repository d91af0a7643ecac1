"""Linux cooked captures: LINKTYPE_LINUX_SLL (113) and LINKTYPE_LINUX_SLL2 (276).

Layouts from tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html and
LINKTYPE_LINUX_SLL2.html.  Wireshark fields: ``sll.pkttype``, ``sll.hatype``,
``sll.etype``, ``sll.ifindex`` (SLL2 only).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, be32

SLL_BYTES = 16
SLL2_BYTES = 20
# Protocol values that are not EtherTypes (linux/if_ether.h): 802.2 LLC frames
# and raw 802.3 (Novell) frames; we do not follow them.
NO_ETHERTYPE = -1


def dissect_sll(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """SLL v1: packet type, ARPHRD type, address length, 8 address bytes, protocol."""
    whole = layer.has(SLL_BYTES)
    out.flag(layer.rows[~whole], "truncated_Linux_SLL_header")
    layer = layer.take(whole)
    s = layer.start
    out.put("sll.pkttype", layer.rows, be16(data, s))
    out.put("sll.hatype", layer.rows, be16(data, s + 2))
    return _payload(data, layer, out, be16(data, s + 14), SLL_BYTES)


def dissect_sll2(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """SLL v2: protocol, reserved, interface index, ARPHRD type, packet type, address."""
    whole = layer.has(SLL2_BYTES)
    out.flag(layer.rows[~whole], "truncated_Linux_SLL2_header")
    layer = layer.take(whole)
    s = layer.start
    out.put("sll.ifindex", layer.rows, be32(data, s + 4))
    out.put("sll.hatype", layer.rows, be16(data, s + 8))
    out.put("sll.pkttype", layer.rows, data[s + 10].astype(np.int64))
    return _payload(data, layer, out, be16(data, s), SLL2_BYTES)


def _payload(data, layer: Layer, out: Fields, protocol: np.ndarray, header: int):
    # Values below 0x0600 are Linux pseudo-protocols, not EtherTypes.
    is_type = protocol >= 0x0600
    out.put("sll.etype", layer.rows[is_type], protocol[is_type])
    return layer.advance(header), np.where(is_type, protocol, NO_ETHERTYPE)
