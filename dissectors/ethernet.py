"""Ethernet II and IEEE 802.3 with LLC/SNAP (IEEE 802.3 clause 3, RFC 1042).

Wireshark fields: ``eth.dst``, ``eth.src``, ``eth.type`` (Ethernet II only;
an 802.3 frame has a length there instead), ``llc.type`` (SNAP).
"""

from __future__ import annotations

import numba
import numpy as np

from .wire import PREFETCH_AHEAD, Fields, Layer, prefetch
from .wire import put_first as _put

HEADER_BYTES = 14
# IEEE 802.3 clause 3.2.6: a Length/Type value of at most 1500 is a length
# (802.3 frame, LLC follows); at least 0x0600 is an EtherType.
MAX_LENGTH_FIELD = 1500
SNAP_SAP = 0xAA       # RFC 1042: DSAP = SSAP = 0xAA, control 0x03 (UI)
LLC_UI = 0x03
SNAP_BYTES = 8        # LLC (3) + OUI (3) + EtherType (2)
NO_ETHERTYPE = -1

# Weird bits of the compiled loop.
_TRUNCATED = 1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect Ethernet headers of ``layer``.

    Returns the payload layer and ``int64[k]`` EtherTypes of the payload
    (``NO_ETHERTYPE`` where it is plain 802.2 LLC, which we do not follow).
    A frame shorter than 14 bytes gets the weird ``truncated_ethernet_frame``
    (Zeek's name) and no payload.  An 802.3 length bounds the LLC data: what
    follows it is padding (802.3 §3.2.7).
    """
    # Each column in the width of its field on the wire (see Fields.column).
    columns = (out.column("eth.dst", np.uint64) + out.column("eth.src", np.uint64)
               + out.column("eth.type", np.uint16) + out.column("llc.type", np.uint16))
    count, rows, start, end, stated_end, ethertype, bits, seen = _dissect(
        data, layer.rows, layer.start, layer.end, layer.stated_end, *columns)
    out.flag_bits(layer.rows, bits, seen, ((_TRUNCATED, "truncated_ethernet_frame", None),))
    payload = Layer(rows[:count], start[:count], end[:count], stated_end[:count])
    return payload, ethertype[:count]



@numba.njit(cache=True, nogil=True)
def _dissect(data, rows, start, end, stated_end, dst, dst_ok, src, src_ok, etype, etype_ok, llc, llc_ok):
    """One pass over the headers: fields, the payload layer (whole headers only) and weird bits."""
    k = rows.shape[0]
    out_rows = np.empty(k, np.int64)
    out_start = np.empty(k, np.int64)
    out_end = np.empty(k, np.int64)
    out_stated = np.empty(k, np.int64)
    out_type = np.empty(k, np.int64)
    bits = np.zeros(k, np.uint8)
    seen = 0
    count = 0
    for i in range(k):
        if i + PREFETCH_AHEAD < k:
            prefetch(data, start[i + PREFETCH_AHEAD])
        s, e, row = start[i], end[i], rows[i]
        if s + HEADER_BYTES > e:
            bits[i] = _TRUNCATED
            seen |= _TRUNCATED
            continue
        destination = np.int64(0)
        source = np.int64(0)
        for j in range(6):
            destination = (destination << 8) | data[s + j]
            source = (source << 8) | data[s + 6 + j]
        _put(dst, dst_ok, row, destination)
        _put(src, src_ok, row, source)
        type_or_length = (np.int64(data[s + 12]) << 8) | data[s + 13]
        header = HEADER_BYTES
        ethertype = NO_ETHERTYPE
        if type_or_length > MAX_LENGTH_FIELD:
            _put(etype, etype_ok, row, type_or_length)
            ethertype = type_or_length
            stop = stated_end[i]
        else:
            # 802.3 length: LLC header; SNAP (RFC 1042) carries an EtherType after a 3-byte OUI.
            if (s + HEADER_BYTES + SNAP_BYTES <= e and data[s + 14] == SNAP_SAP and data[s + 15] == SNAP_SAP
                    and data[s + 16] == LLC_UI):
                ethertype = (np.int64(data[s + 20]) << 8) | data[s + 21]
                _put(llc, llc_ok, row, ethertype)
                header += SNAP_BYTES
            # The length counts the LLC data from the LLC header on.
            stop = s + HEADER_BYTES + type_or_length
        out_rows[count] = row
        out_start[count] = s + header
        out_end[count] = min(e, stop)
        out_stated[count] = min(stated_end[i], stop)
        out_type[count] = ethertype
        count += 1
    return count, out_rows, out_start, out_end, out_stated, out_type, bits, seen
