"""Linux netfilter log messages: LINKTYPE_NFLOG (239).

tcpdump.org/linktypes/LINKTYPE_NFLOG.html: a 4-byte header (address family,
version, resource id) then TLVs, each ``length`` (including its 4-byte
header) and ``type`` in the capturing host's byte order, padded to 4 bytes.
The packet is the value of TLV type NFULA_PAYLOAD (9).  Wireshark field:
``nflog.family``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, concat_layers, le16, u8

HEADER_BYTES = 4
TLV_HEADER_BYTES = 4
NFULA_PAYLOAD = 9
AF_INET, AF_INET6 = 2, 10
NO_ETHERTYPE = -1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Find the NFULA_PAYLOAD TLV; returns it as a layer and its ``int64[k]`` EtherTypes.

    A packet whose TLVs end without a payload TLV yields no payload; one whose
    TLV lengths are impossible gets ``truncated_link_header``.
    """
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_link_header", "nflog")
    layer = layer.take(whole)
    family = u8(data, layer.start)
    out.put("nflog.family", layer.rows, family)
    # Host byte order: a little-endian host is the common case; a TLV length
    # read as little-endian that is below the TLV header size means big-endian.
    first = layer.advance(HEADER_BYTES)
    readable = first.has(TLV_HEADER_BYTES)
    little = np.ones(len(layer), dtype=bool)
    little[readable] = le16(data, first.start[readable]) >= TLV_HEADER_BYTES

    found: list[Layer] = []
    found_family: list[np.ndarray] = []
    tlv = first
    cursor_little, cursor_family = little, family
    while len(tlv):
        readable = tlv.has(TLV_HEADER_BYTES)
        tlv, cursor_little, cursor_family = tlv.take(readable), cursor_little[readable], cursor_family[readable]
        s = tlv.start
        length = np.where(cursor_little, le16(data, s), be16(data, s))
        kind = np.where(cursor_little, le16(data, s + 2), be16(data, s + 2))
        bad = (length < TLV_HEADER_BYTES) | ~tlv.has(length)
        out.flag(tlv.rows[bad], "truncated_link_header", "nflog")
        payload = ~bad & (kind == NFULA_PAYLOAD)
        found.append(tlv.take(payload).bound(length[payload]).advance(TLV_HEADER_BYTES))
        found_family.append(cursor_family[payload])
        more = ~bad & ~payload
        padded = (length[more] + 3) & ~3
        tlv = tlv.take(more).advance(padded)
        cursor_little, cursor_family = cursor_little[more], cursor_family[more]
    payload = concat_layers(found)
    families = np.concatenate(found_family) if found_family else np.zeros(0, np.int64)
    ethertype = np.full(len(payload), NO_ETHERTYPE, dtype=np.int64)
    ethertype[families == AF_INET] = 0x0800
    ethertype[families == AF_INET6] = 0x86DD
    return payload, ethertype
