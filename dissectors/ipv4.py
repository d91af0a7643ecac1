"""IPv4 (RFC 791 §3.1).

Wireshark fields: ``ip.version``, ``ip.hdr_len`` (bytes), ``ip.dsfield``,
``ip.len``, ``ip.id``, ``ip.flags`` (the 3 flag bits), ``ip.flags.df``,
``ip.flags.mf``, ``ip.frag_offset`` (the 13-bit field, in units of 8 bytes,
as tshark prints it), ``ip.ttl``, ``ip.proto``, ``ip.checksum``, ``ip.src``,
``ip.dst``.  Anomalies use Zeek's weird names (src/packet_analysis/protocol/ip).
"""

from __future__ import annotations

import numpy as np

from . import ipv6
from .wire import Fields, Layer, be16, be32, concat_layers, u8

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
    Header fields are filled as far as they were captured (``ip.src`` from
    16 bytes), as Wireshark does, except for a header length below 20 bytes,
    which leaves only ``ip.version`` and ``ip.hdr_len``.  A packet whose
    version nibble is 6 is dissected as IPv6 (Wireshark and Zeek do the same).
    Weirds: ``truncated_IP`` (fewer than 20 bytes, or the total length runs
    past the frame's length on the wire), ``unknown_ip_version``,
    ``IPv4_min_header_size``, ``internally_truncated_header`` (options not
    captured), ``ip_hdr_len_zero``, ``invalid_IP_header_size`` (total length
    below the header length).
    """
    carried = layer
    readable = layer.has(1)
    version = np.full(len(layer), -1, dtype=np.int64)
    version[readable] = u8(data, layer.start[readable]) >> 4
    out.put("ip.version", layer.rows[readable], version[readable])
    # Wireshark (packet-ip.c) and Zeek's IP analyzer both go by the version
    # nibble: an IPv6 packet sent with the IPv4 EtherType is dissected as IPv6.
    six = version == 6
    whole = layer.has(MIN_HEADER_BYTES)
    out.flag(layer.rows[~six & ~whole], "truncated_IP")
    out.flag(layer.rows[~six & whole & (version != 4)], "unknown_ip_version")
    layer = layer.take(version == 4)
    header = (u8(data, layer.start) & 0x0F) * 4
    out.put("ip.hdr_len", layer.rows, header)
    # Header fields as far as they were captured, none of a header shorter
    # than 20 bytes (a bogus header: Wireshark shows only version and length).
    sane = header >= MIN_HEADER_BYTES
    whole = sane & layer.has(MIN_HEADER_BYTES)
    short = sane & ~whole
    whole_rows, whole_start = layer.rows[whole], layer.start[whole]
    for size, names in ((2, ("ip.dsfield",)), (4, ("ip.len",)), (6, ("ip.id",)),
                        (8, ("ip.flags", "ip.flags.df", "ip.flags.mf", "ip.frag_offset")),
                        (9, ("ip.ttl",)), (10, ("ip.proto",)), (12, ("ip.checksum",)),
                        (16, ("ip.src",)), (20, ("ip.dst",))):
        # Whole headers (nearly all) at once, cut ones as far as they were captured.
        parts = [(whole_rows, whole_start)]
        if short.any():
            part = short & layer.has(size)
            parts.append((layer.rows[part], layer.start[part]))
        for rows, s in parts:
            for name in names:
                out.put(name, rows, _FIELDS[name](data, s))
    layer = layer.take(layer.has(MIN_HEADER_BYTES))
    rows, s = layer.rows, layer.start
    header = (u8(data, s) & 0x0F) * 4
    total = be16(data, s + 2)
    flags_offset = be16(data, s + 6)
    protocol = protocol_number = u8(data, s + 9)
    out.put("ip_proto", rows, protocol)

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
    held_back = fragment & ~first_cut   # left to reassembly (``_ip.fragment`` still says fragment)
    payload = layer.bound(total).advance(header)
    protocol = np.where(usable & ~held_back, protocol, NO_PROTOCOL)
    inner = payload.rows[usable]
    out.put("_l4.start", inner, payload.start[usable])
    out.put("_ip.version", rows, np.full(len(rows), 4, dtype=np.int64))
    out.put("_ip.src4", rows, be32(data, s + 12))
    out.put("_ip.dst4", rows, be32(data, s + 16))
    out.put("_ip.len", rows, total)
    out.put("_ip.proto", rows, protocol_number)
    out.put("_ip.fragment", rows, fragment)
    if six.any():
        inner, inner_protocol, inner_first = ipv6.dissect(data, carried.take(six), out)
        payload = concat_layers([payload, inner])
        protocol = np.concatenate([protocol, inner_protocol])
        first_cut = np.concatenate([first_cut, inner_first])
    return payload, protocol, first_cut


_FIELDS = {
    "ip.dsfield": lambda data, s: u8(data, s + 1),
    "ip.len": lambda data, s: be16(data, s + 2),
    "ip.id": lambda data, s: be16(data, s + 4),
    "ip.flags": lambda data, s: be16(data, s + 6) >> 13,
    "ip.flags.df": lambda data, s: (be16(data, s + 6) >> 14) & 1,
    "ip.flags.mf": lambda data, s: (be16(data, s + 6) >> 13) & 1,
    "ip.frag_offset": lambda data, s: be16(data, s + 6) & 0x1FFF,
    "ip.ttl": lambda data, s: u8(data, s + 8),
    "ip.proto": lambda data, s: u8(data, s + 9),
    "ip.checksum": lambda data, s: be16(data, s + 10),
    "ip.src": lambda data, s: be32(data, s + 12),
    "ip.dst": lambda data, s: be32(data, s + 16),
}
