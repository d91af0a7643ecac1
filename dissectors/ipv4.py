"""IPv4 (RFC 791 §3.1).

Wireshark fields: ``ip.version``, ``ip.hdr_len`` (bytes), ``ip.dsfield``,
``ip.len``, ``ip.id``, ``ip.flags`` (the 3 flag bits), ``ip.flags.df``,
``ip.flags.mf``, ``ip.frag_offset`` (the 13-bit field, in units of 8 bytes,
as tshark prints it), ``ip.ttl``, ``ip.proto``, ``ip.checksum``, ``ip.src``,
``ip.dst``.  Anomalies use Zeek's weird names (src/packet_analysis/protocol/ip).
"""

from __future__ import annotations

import numpy as np

from .wire import Fields, Layer, be16, be32, u8

MIN_HEADER_BYTES = 20
NO_PROTOCOL = -1


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray, np.ndarray]:
    """Dissect IPv4 headers.

    Returns the payload layer (bounded by the total length) and ``int64[k]``
    protocol numbers; ``NO_PROTOCOL`` where the payload is not to be
    dissected statelessly: a fragment (MF set or offset non-zero; its
    transport header belongs to the reassembled datagram) or a bad header.
    A first fragment whose payload was not all captured is dissected, as
    Wireshark does (it cannot reassemble it either); the third value,
    ``bool[k]``, marks these first fragments (their transport length is
    unknown, so ``tcp.len`` stays unset).
    Weirds: ``truncated_IP`` (fewer than 20 bytes, or the total length runs
    past the frame's length on the wire), ``unknown_ip_version``,
    ``IPv4_min_header_size``, ``internally_truncated_header`` (options not
    captured), ``ip_hdr_len_zero``, ``invalid_IP_header_size`` (total length
    below the header length).
    """
    whole = layer.has(MIN_HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_IP")
    layer = layer.take(whole)
    rows, s = layer.rows, layer.start
    first = u8(data, s)
    version = first >> 4
    out.put("ip.version", rows, version)
    is_v4 = version == 4
    out.flag(rows[~is_v4], "unknown_ip_version")
    layer, first = layer.take(is_v4), first[is_v4]
    rows, s = layer.rows, layer.start

    header = (first & 0x0F) * 4
    total = be16(data, s + 2)
    flags_offset = be16(data, s + 6)
    out.put("ip.hdr_len", rows, header)
    out.put("ip.dsfield", rows, u8(data, s + 1))
    out.put("ip.len", rows, total)
    out.put("ip.id", rows, be16(data, s + 4))
    out.put("ip.flags", rows, flags_offset >> 13)
    out.put("ip.flags.df", rows, (flags_offset >> 14) & 1)
    out.put("ip.flags.mf", rows, (flags_offset >> 13) & 1)
    out.put("ip.frag_offset", rows, flags_offset & 0x1FFF)
    out.put("ip.ttl", rows, u8(data, s + 8))
    protocol = protocol_number = u8(data, s + 9)
    out.put("ip.proto", rows, protocol)
    out.put("ip_proto", rows, protocol)
    out.put("ip.checksum", rows, be16(data, s + 10))
    out.put("ip.src", rows, be32(data, s + 12))
    out.put("ip.dst", rows, be32(data, s + 16))

    usable = np.ones(len(layer), dtype=bool)
    too_small = header < MIN_HEADER_BYTES
    out.flag(rows[too_small], "IPv4_min_header_size")
    usable &= ~too_small
    options_cut = usable & ~layer.has(header)
    out.flag(rows[options_cut], "internally_truncated_header")
    usable &= ~options_cut
    # TCP segmentation offload leaves a total length of 0: use what was captured (as Zeek does).
    zero = usable & (total == 0)
    out.flag(rows[zero], "ip_hdr_len_zero")
    total = np.where(zero, layer.stated_end - s, total)
    short_total = usable & (total < header)
    out.flag(rows[short_total], "invalid_IP_header_size")
    usable &= ~short_total
    beyond = usable & (s + total > layer.stated_end)
    out.flag(rows[beyond], "truncated_IP")

    # A fragment's transport header belongs to the reassembled datagram, except as
    # Wireshark (packet-ip.c) has it: a fragment is only reassembled when its whole
    # payload was captured; a first fragment (offset 0) cut by the snaplen has its
    # payload dissected as it stands (RFC 791 §2.3: the first fragment carries the
    # transport header).
    fragment = (flags_offset & 0x3FFF) != 0
    first_cut = fragment & ((flags_offset & 0x1FFF) == 0) & ((total <= header) | (s + total > layer.end))
    fragment &= ~first_cut
    payload = layer.bound(total).advance(header)
    protocol = np.where(usable & ~fragment, protocol, NO_PROTOCOL)
    inner = payload.rows[usable]
    out.put("_l4.start", inner, payload.start[usable])
    out.put("_ip.version", rows, np.full(len(rows), 4, dtype=np.int64))
    out.put("_ip.src4", rows, be32(data, s + 12))
    out.put("_ip.dst4", rows, be32(data, s + 16))
    out.put("_ip.len", rows, total)
    out.put("_ip.proto", rows, protocol_number)
    out.put("_ip.fragment", rows, fragment)
    return payload, protocol, first_cut
