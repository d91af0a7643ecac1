"""IEEE 802.1AE MACsec, EtherType 0x88E5 (IEEE 802.1AE-2018 §9, the SecTAG).

After the EtherType comes the SecTAG: TCI/AN (1 byte: version V, ES, SC,
SCB, E, C, then the 2-bit association number), SL, the short length (low 6
bits), the 4-byte packet number, and the 8-byte SCI when SC is set (§9.3).
When E (confidentiality) is clear the Secure Data is plaintext and starts
with the EtherType of the user data; the ICV ends the frame: 16 bytes for
the default cipher suites, none known when C is set without E (§9.5, §14).
SL is the length of the Secure Data when that is below 48 bytes, else 0
(§9.7).  Encrypted frames (E set) and frames of a version other than 0 are
not followed.

Wireshark fields: ``macsec.TCI``, ``macsec.AN``, ``macsec.SL``,
``macsec.PN``, ``macsec.etype``.
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, be32, u8

SECTAG_BYTES, SCI_BYTES, ICV_BYTES = 6, 8, 16
TCI_V, TCI_SC, TCI_E, TCI_C = 0x80, 0x20, 0x08, 0x04
NO_ETHERTYPE = -1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    """Dissect MACsec SecTAGs; returns the user data layer and its ``int64[k]`` EtherTypes.

    The EtherType is ``NO_ETHERTYPE`` for encrypted frames and version 1+.
    A SecTAG (or the user data's EtherType) cut by the capture gets the weird
    ``truncated_link_header`` with ``macsec``.
    """
    readable = layer.has(1)
    tci = np.zeros(len(layer), dtype=np.int64)
    tci[readable] = u8(data, layer.start[readable])
    sectag = np.where(tci & TCI_SC, SECTAG_BYTES + SCI_BYTES, SECTAG_BYTES)
    whole = readable & layer.has(sectag)
    out.flag(layer.rows[~whole], "truncated_link_header", "macsec")
    layer, tci, sectag = layer.take(whole), tci[whole], sectag[whole]
    s = layer.start
    short_length = u8(data, s + 1) & 0x3F
    out.put("macsec.TCI", layer.rows, tci & 0xFC)
    out.put("macsec.AN", layer.rows, tci & 0x03)
    out.put("macsec.SL", layer.rows, short_length)
    out.put("macsec.PN", layer.rows, be32(data, s + 2))

    plain = (tci & (TCI_V | TCI_E)) == 0
    typed = plain & layer.has(sectag + 2)
    out.flag(layer.rows[plain & ~typed], "truncated_link_header", "macsec")
    layer, sectag, short_length, tci = layer.take(typed), sectag[typed], short_length[typed], tci[typed]
    ethertype = be16(data, layer.start + sectag)
    out.put("macsec.etype", layer.rows, ethertype)
    icv = np.where(tci & TCI_C, 0, ICV_BYTES)
    secure_data = np.where(short_length > 0, short_length,
                           np.maximum(layer.stated_end - layer.start - sectag - icv, 2))
    return layer.advance(sectag).bound(secure_data).advance(2), ethertype
