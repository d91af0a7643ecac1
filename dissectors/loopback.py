"""BSD loopback encapsulation: LINKTYPE_NULL (0) and LINKTYPE_LOOP (108).

tcpdump.org/linktypes/LINKTYPE_NULL.html: a 4-byte address family, in the
byte order of the machine that captured for NULL, in network order for LOOP.
AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD/BSD/OS), 28 (FreeBSD,
DragonFly), 30 (macOS) or 10 (Linux).  Wireshark field: ``null.family``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be32, le32

HEADER_BYTES = 4
AF_INET = 2
AF_INET6 = (10, 24, 28, 30)
NO_ETHERTYPE = -1


def dissect(data: np.ndarray, layer: Layer, out: Fields, network_order: bool) -> tuple[Layer, np.ndarray]:
    """Dissect the 4-byte family; returns the payload layer and its ``int64[k]`` EtherTypes.

    ``network_order`` is true for LOOP.  For NULL the byte order is guessed per
    packet as Wireshark does: a family fits in the low 16 bits, so the byte
    order that gives a small value is the right one.
    """
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_link_header", "null")
    layer = layer.take(whole)
    big = be32(data, layer.start)
    if network_order:
        family = big
    else:
        family = np.where(big <= 0xFFFF, big, le32(data, layer.start))
    out.put("null.family", layer.rows, family)
    ethertype = np.full(len(layer), NO_ETHERTYPE, dtype=np.int64)
    ethertype[family == AF_INET] = 0x0800
    ethertype[np.isin(family, AF_INET6)] = 0x86DD
    return layer.advance(HEADER_BYTES), ethertype
