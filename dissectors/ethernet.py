"""Ethernet II and IEEE 802.3 with LLC/SNAP (IEEE 802.3 clause 3, RFC 1042).

Wireshark fields: ``eth.dst``, ``eth.src``, ``eth.type`` (Ethernet II only;
an 802.3 frame has a length there instead), ``llc.type`` (SNAP).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, be48, u8

HEADER_BYTES = 14
# IEEE 802.3 clause 3.2.6: a Length/Type value of at most 1500 is a length
# (802.3 frame, LLC follows); at least 0x0600 is an EtherType.
MAX_LENGTH_FIELD = 1500
SNAP_SAP = 0xAA       # RFC 1042: DSAP = SSAP = 0xAA, control 0x03 (UI)
LLC_UI = 0x03
NO_ETHERTYPE = -1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect Ethernet headers of ``layer``.

    Returns the payload layer and ``int64[k]`` EtherTypes of the payload
    (``NO_ETHERTYPE`` where it is plain 802.2 LLC, which we do not follow).
    A frame shorter than 14 bytes gets the weird ``truncated_ethernet_frame``
    (Zeek's name) and no payload.
    """
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_ethernet_frame")
    layer = layer.take(whole)
    s = layer.start
    out.put("eth.dst", layer.rows, be48(data, s))
    out.put("eth.src", layer.rows, be48(data, s + 6))
    type_or_length = be16(data, s + 12)
    is_type = type_or_length > MAX_LENGTH_FIELD
    out.put("eth.type", layer.rows[is_type], type_or_length[is_type])

    ethertype = np.where(is_type, type_or_length, NO_ETHERTYPE)
    header = np.full(len(layer), HEADER_BYTES, dtype=np.int64)
    # 802.3 length: LLC header; SNAP (RFC 1042) carries an EtherType after a 3-byte OUI.
    snap = ~is_type & layer.has(HEADER_BYTES + 8)
    snap[snap] = (
        (u8(data, s[snap] + 14) == SNAP_SAP)
        & (u8(data, s[snap] + 15) == SNAP_SAP)
        & (u8(data, s[snap] + 16) == LLC_UI)
    )
    snap_type = be16(data, s[snap] + 20)
    out.put("llc.type", layer.rows[snap], snap_type)
    ethertype[snap] = snap_type
    header[snap] = HEADER_BYTES + 8
    payload = layer.advance(header)
    # An 802.3 length bounds the LLC data: what follows it is padding (802.3 §3.2.7).
    length = np.where(is_type, payload.stated_end - payload.start, type_or_length - (header - HEADER_BYTES))
    return payload.bound(length), ethertype
