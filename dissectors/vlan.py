"""IEEE 802.1Q VLAN tags, 802.1ad (QinQ) service tags and deeper stacks.

Wireshark fields: ``vlan.id``, ``vlan.priority``, ``vlan.dei`` (outermost tag),
``vlan.etype``.  Each tag is 4 bytes: TCI (PCP 3 bits, DEI 1 bit, VID 12 bits)
then the EtherType of what follows (IEEE 802.1Q-2018 §9.6).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16

TAG_BYTES = 4


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect one VLAN tag; returns the layer after it and the inner EtherType (``int64[k]``).

    A tag cut short by the capture gets Zeek's weird ``truncated_link_header``.
    The stack calls this again for a further tag, so QinQ and deeper work.
    """
    whole = layer.has(TAG_BYTES)
    out.flag(layer.rows[~whole], "truncated_link_header", "vlan")
    layer = layer.take(whole)
    tci = be16(data, layer.start)
    out.put("vlan.priority", layer.rows, tci >> 13)
    out.put("vlan.dei", layer.rows, (tci >> 12) & 1)
    out.put("vlan.id", layer.rows, tci & 0x0FFF)
    ethertype = be16(data, layer.start + 2)
    out.put("vlan.etype", layer.rows, ethertype)
    return layer.advance(TAG_BYTES), ethertype
