"""IEEE 802.1Q VLAN tags, 802.1ad (QinQ) service tags and deeper stacks.

Wireshark fields: ``vlan.id``, ``vlan.priority``, ``vlan.dei`` (outermost tag),
``vlan.etype``.  Each tag is 4 bytes: TCI (PCP 3 bits, DEI 1 bit, VID 12 bits)
then the EtherType of what follows (IEEE 802.1Q-2018 §9.6).
"""

from __future__ import annotations

import numba
import numpy as np

from .wire import PREFETCH_AHEAD, Fields, Layer, prefetch
from .wire import put_first as _put

TAG_BYTES = 4

# Weird bits of the compiled loop.
_TRUNCATED = 1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect one VLAN tag; returns the layer after it and the inner EtherType (``int64[k]``).

    A tag cut short by the capture gets Zeek's weird ``truncated_link_header``.
    The stack calls this again for a further tag, so QinQ and deeper work.
    """
    columns = (out.column("vlan.priority", np.uint8) + out.column("vlan.dei", np.uint8)
               + out.column("vlan.id", np.uint16) + out.column("vlan.etype", np.uint16))
    count, rows, start, end, stated_end, ethertype, bits, seen = _dissect(
        data, layer.rows, layer.start, layer.end, layer.stated_end, *columns)
    out.flag_bits(layer.rows, bits, seen, ((_TRUNCATED, "truncated_link_header", "vlan"),))
    return Layer(rows[:count], start[:count], end[:count], stated_end[:count]), ethertype[:count]



@numba.njit(cache=True, nogil=True)
def _dissect(data, rows, start, end, stated_end, priority, priority_ok, dei, dei_ok, vid, vid_ok,
             etype, etype_ok):
    """One pass over the tags: fields, the layer after whole tags and weird bits."""
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
        s, row = start[i], rows[i]
        if s + TAG_BYTES > end[i]:
            bits[i] = _TRUNCATED
            seen |= _TRUNCATED
            continue
        tci = (np.int64(data[s]) << 8) | data[s + 1]
        ethertype = (np.int64(data[s + 2]) << 8) | data[s + 3]
        _put(priority, priority_ok, row, tci >> 13)
        _put(dei, dei_ok, row, (tci >> 12) & 1)
        _put(vid, vid_ok, row, tci & 0x0FFF)
        _put(etype, etype_ok, row, ethertype)
        out_rows[count] = row
        out_start[count] = s + TAG_BYTES
        out_end[count] = end[i]
        out_stated[count] = stated_end[i]
        out_type[count] = ethertype
        count += 1
    return count, out_rows, out_start, out_end, out_stated, out_type, bits, seen
