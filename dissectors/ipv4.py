"""IPv4 (RFC 791 §3.1).

Wireshark fields: ``ip.version``, ``ip.hdr_len`` (bytes), ``ip.dsfield``,
``ip.len``, ``ip.id``, ``ip.flags`` (the 3 flag bits), ``ip.flags.df``,
``ip.flags.mf``, ``ip.frag_offset`` (the 13-bit field, in units of 8 bytes,
as tshark prints it), ``ip.ttl``, ``ip.proto``, ``ip.checksum``, ``ip.src``,
``ip.dst``.  Anomalies use Zeek's weird names (src/packet_analysis/protocol/ip).
"""

from __future__ import annotations

import numba
import numpy as np

from . import ipv6
from .wire import PREFETCH_AHEAD, Fields, Layer, concat_layers, prefetch
from .wire import put_first as _put, put_last as _put_hidden, read_be as _be

MIN_HEADER_BYTES = 20
NO_PROTOCOL = -1

# The columns, in the order they are created; the compiled loop refers to them by index.
_NAMED = ("ip.version", "ip.hdr_len", "ip.dsfield", "ip.len", "ip.id", "ip.flags", "ip.flags.df",
          "ip.flags.mf", "ip.frag_offset", "ip.ttl", "ip.proto", "ip.checksum", "ip.src", "ip.dst",
          "ip_proto")
# Their widths on the wire (RFC 791 §3.1; hdr_len in bytes still fits 8 bits).
_WIDTHS = (np.uint8, np.uint8, np.uint8, np.uint16, np.uint16, np.uint8, np.uint8,
           np.uint8, np.uint16, np.uint8, np.uint8, np.uint16, np.uint32, np.uint32,
           np.uint8)
(_VERSION, _HDR_LEN, _DSFIELD, _LEN, _ID, _FLAGS, _DF, _MF, _FRAG_OFFSET, _TTL, _PROTO, _CHECKSUM, _SRC,
 _DST, _IP_PROTO) = range(len(_NAMED))
# Hidden columns (the innermost IP packet: the last occurrence wins).
_HIDDEN = ("_l4.start", "_ip.version", "_ip.src4", "_ip.dst4", "_ip.len", "_ip.proto")
_L4_START, _H_VERSION, _H_SRC, _H_DST, _H_LEN, _H_PROTO = range(len(_HIDDEN))

# Weird bits of the compiled loop, in the order the weirds are recorded.
_TRUNCATED, _UNKNOWN_VERSION, _MIN_HEADER, _OPTIONS_CUT, _LEN_ZERO, _SHORT_TOTAL, _BEYOND = (
    1, 2, 4, 8, 16, 32, 64)
_WEIRDS = ((_TRUNCATED, "truncated_IP", None), (_UNKNOWN_VERSION, "unknown_ip_version", None),
           (_MIN_HEADER, "IPv4_min_header_size", None), (_OPTIONS_CUT, "internally_truncated_header", None),
           (_LEN_ZERO, "ip_hdr_len_zero", None), (_SHORT_TOTAL, "invalid_IP_header_size", None),
           (_BEYOND, "truncated_IP", None))


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

    The payload layer holds every packet with 20 header bytes captured (a
    bad one with ``NO_PROTOCOL``), in the order given, then the IPv6 ones.
    """
    named = [out.column(name, width) for name, width in zip(_NAMED, _WIDTHS)]
    hidden = [out.column(name, np.int64) for name in _HIDDEN]
    fragment, fragment_set = out.column("_ip.fragment", np.bool_)
    (count, rows, start, end, stated_end, protocol, first_cut, six_count, six, bits, seen) = _dissect(
        data, layer.rows, layer.start, layer.end, layer.stated_end,
        tuple(c for c, _ in named), tuple(v for _, v in named),
        tuple(c for c, _ in hidden), tuple(v for _, v in hidden), fragment, fragment_set)
    out.flag_bits(layer.rows, bits, seen, _WEIRDS)
    payload = Layer(rows[:count], start[:count], end[:count], stated_end[:count])
    protocol, first_cut = protocol[:count], first_cut[:count]
    if six_count:
        # Wireshark (packet-ip.c) and Zeek's IP analyzer both go by the version
        # nibble: an IPv6 packet sent with the IPv4 EtherType is dissected as IPv6.
        carried = Layer(layer.rows[six[:six_count]], layer.start[six[:six_count]], layer.end[six[:six_count]],
                        layer.stated_end[six[:six_count]])
        inner, inner_protocol, inner_first = ipv6.dissect(data, carried, out)
        payload = concat_layers([payload, inner])
        protocol = np.concatenate([protocol, inner_protocol])
        first_cut = np.concatenate([first_cut, inner_first])
    return payload, protocol, first_cut





@numba.njit(cache=True, nogil=True)
def _dissect(data, rows, start, end, stated_end, named, named_set, hidden, hidden_set, fragment, fragment_set):
    """One pass over the headers: fields, the payload layer, the IPv6 packets and weird bits."""
    k = rows.shape[0]
    out_rows = np.empty(k, np.int64)
    out_start = np.empty(k, np.int64)
    out_end = np.empty(k, np.int64)
    out_stated = np.empty(k, np.int64)
    out_protocol = np.empty(k, np.int64)
    out_first_cut = np.empty(k, np.bool_)
    six = np.empty(k, np.int64)
    bits = np.zeros(k, np.uint8)
    seen = 0
    count = 0
    six_count = 0
    for i in range(k):
        if i + PREFETCH_AHEAD < k:
            prefetch(data, start[i + PREFETCH_AHEAD])
        s, e, stated, row = start[i], end[i], stated_end[i], rows[i]
        if s + 1 > e:
            bits[i] = _TRUNCATED
            seen |= _TRUNCATED
            continue
        version = np.int64(data[s]) >> 4
        _put(named[_VERSION], named_set[_VERSION], row, version)
        if version == 6:
            six[six_count] = i
            six_count += 1
            continue
        whole = s + MIN_HEADER_BYTES <= e
        if not whole:
            bits[i] |= _TRUNCATED
        elif version != 4:
            bits[i] |= _UNKNOWN_VERSION
        seen |= bits[i]
        if version != 4:
            continue
        header = (np.int64(data[s]) & 0x0F) * 4
        _put(named[_HDR_LEN], named_set[_HDR_LEN], row, header)
        # Header fields as far as they were captured, none of a header shorter
        # than 20 bytes (a bogus header: Wireshark shows only version and length).
        if header >= MIN_HEADER_BYTES:
            if s + 2 <= e:
                _put(named[_DSFIELD], named_set[_DSFIELD], row, np.int64(data[s + 1]))
            if s + 4 <= e:
                _put(named[_LEN], named_set[_LEN], row, _be(data, s + 2, 2))
            if s + 6 <= e:
                _put(named[_ID], named_set[_ID], row, _be(data, s + 4, 2))
            if s + 8 <= e:
                flags_offset = _be(data, s + 6, 2)
                _put(named[_FLAGS], named_set[_FLAGS], row, flags_offset >> 13)
                _put(named[_DF], named_set[_DF], row, (flags_offset >> 14) & 1)
                _put(named[_MF], named_set[_MF], row, (flags_offset >> 13) & 1)
                _put(named[_FRAG_OFFSET], named_set[_FRAG_OFFSET], row, flags_offset & 0x1FFF)
            if s + 9 <= e:
                _put(named[_TTL], named_set[_TTL], row, np.int64(data[s + 8]))
            if s + 10 <= e:
                _put(named[_PROTO], named_set[_PROTO], row, np.int64(data[s + 9]))
            if s + 12 <= e:
                _put(named[_CHECKSUM], named_set[_CHECKSUM], row, _be(data, s + 10, 2))
            if s + 16 <= e:
                _put(named[_SRC], named_set[_SRC], row, _be(data, s + 12, 4))
            if whole:
                _put(named[_DST], named_set[_DST], row, _be(data, s + 16, 4))
        if not whole:
            continue
        total = _be(data, s + 2, 2)
        flags_offset = _be(data, s + 6, 2)
        protocol = np.int64(data[s + 9])
        _put(named[_IP_PROTO], named_set[_IP_PROTO], row, protocol)
        usable = True
        if header < MIN_HEADER_BYTES:
            bits[i] |= _MIN_HEADER
            usable = False
        elif s + header > e:
            bits[i] |= _OPTIONS_CUT
            usable = False
        if usable and total == 0:
            # TCP segmentation offload leaves a total length of 0: use what was captured (as Zeek does).
            bits[i] |= _LEN_ZERO
            total = stated - s
        if usable and total < header:
            bits[i] |= _SHORT_TOTAL
            usable = False
        if usable and s + total > stated:
            bits[i] |= _BEYOND
        seen |= bits[i]
        # A fragment's transport header belongs to the reassembled datagram, except as
        # Wireshark (packet-ip.c) has it: a fragment is only reassembled when its whole
        # payload was captured; a first fragment (offset 0) cut by the snaplen has its
        # payload dissected as it stands (RFC 791 §2.3: the first fragment carries the
        # transport header).
        is_fragment = (flags_offset & 0x3FFF) != 0
        first_cut = is_fragment and (flags_offset & 0x1FFF) == 0 and (total <= header or s + total > e)
        held_back = is_fragment and not first_cut   # left to reassembly (``_ip.fragment`` still says fragment)
        stop = s + total
        out_rows[count] = row
        out_start[count] = s + header
        out_end[count] = min(e, stop)
        out_stated[count] = min(stated, stop)
        out_protocol[count] = protocol if usable and not held_back else NO_PROTOCOL
        out_first_cut[count] = first_cut
        count += 1
        if usable:
            _put_hidden(hidden[_L4_START], hidden_set[_L4_START], row, s + header)
        _put_hidden(hidden[_H_VERSION], hidden_set[_H_VERSION], row, 4)
        _put_hidden(hidden[_H_SRC], hidden_set[_H_SRC], row, _be(data, s + 12, 4))
        _put_hidden(hidden[_H_DST], hidden_set[_H_DST], row, _be(data, s + 16, 4))
        _put_hidden(hidden[_H_LEN], hidden_set[_H_LEN], row, total)
        _put_hidden(hidden[_H_PROTO], hidden_set[_H_PROTO], row, protocol)
        _put_hidden(fragment, fragment_set, row, is_fragment)
    return (count, out_rows, out_start, out_end, out_stated, out_protocol, out_first_cut, six_count, six,
            bits, seen)
