"""IPv6 (RFC 8200 §3) and its extension headers (§4): hop-by-hop options (0),
routing (43), fragment (44), destination options (60), authentication header
(51, RFC 4302 §2.2).

Wireshark fields: ``ipv6.version``, ``ipv6.tclass``, ``ipv6.flow``,
``ipv6.plen``, ``ipv6.nxt`` (the fixed header's Next Header, as Wireshark),
``ipv6.hlim``, ``ipv6.src``, ``ipv6.dst``, ``ipv6.fraghdr.offset`` (8-byte
units), ``ipv6.fraghdr.more``, ``ipv6.fraghdr.ident``.  ``ip_proto`` (Zeek's
conn.log name) is the upper-layer protocol after the extension headers.
"""

from __future__ import annotations

import numba
import numpy as np

from .wire import PREFETCH_AHEAD, Fields, Layer, prefetch
from .wire import put_first as _put, put_last as _put_hidden, read_be as _be

HEADER_BYTES = 40
HOP_BY_HOP, ROUTING, FRAGMENT, DESTINATION, AUTHENTICATION = 0, 43, 44, 60, 51
NO_PROTOCOL = -1
HOME_ADDRESS_OPTION = 0xC9   # RFC 6275 §6.3
ADDRESS_BYTES = 16

# The columns of the fixed header, in the order they are created; the compiled loop refers to them by index.
_NAMED = ("ipv6.version", "ipv6.tclass", "ipv6.flow", "ipv6.plen", "ipv6.nxt", "ipv6.hlim")
_WIDTHS = (np.uint8, np.uint8, np.uint32, np.uint16, np.uint8, np.uint8)   # on the wire (RFC 8200 §3)
_VERSION, _TCLASS, _FLOW, _PLEN, _NXT, _HLIM = range(len(_NAMED))
_FRAGMENT_HEADER = ("ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident")
_FRAGMENT_WIDTHS = (np.uint16, np.uint8, np.uint32)   # RFC 8200 §4.5
_F_OFFSET, _F_MORE, _F_IDENT = range(len(_FRAGMENT_HEADER))

# Weird bits of the compiled loop, in the order the weirds are recorded.
_TRUNCATED, _UNKNOWN_VERSION, _BEYOND, _CHAIN_CUT, _CHAIN_TOO_LONG = 1, 2, 4, 8, 16
_WEIRDS = ((_TRUNCATED, "truncated_IPv6", None), (_UNKNOWN_VERSION, "unknown_ip_version", None),
           (_BEYOND, "truncated_IPv6", None), (_CHAIN_CUT, "internally_truncated_header", None),
           (_CHAIN_TOO_LONG, "invalid_IP_header_size", None))


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray, np.ndarray]:
    """Dissect IPv6 headers and walk the extension header chain.

    Returns the upper-layer payload layer (bounded by the payload length),
    ``int64[k]`` upper-layer protocol numbers (``NO_PROTOCOL`` for a fragment,
    offset non-zero or more-fragments set, or a broken chain) and ``bool[k]``
    first fragments dissected as they stand (always false for IPv6; see
    :func:`dissectors.ipv4.dissect`).  Header fields are filled as far as
    they were captured, as Wireshark does.  Weirds (Zeek's names):
    ``truncated_IPv6`` (fewer than 40 bytes, or the payload runs past the
    frame on the wire), ``unknown_ip_version``,
    ``internally_truncated_header`` (extension header not captured),
    ``invalid_IP_header_size`` (chain longer than the payload length).
    The payload layer keeps the order of ``layer``.  The ``ipv6.fraghdr.*``
    columns exist once a packet with a whole header has an extension header.
    """
    named = [out.column(name, width) for name, width in zip(_NAMED, _WIDTHS)]
    src, src_set = out.column("ipv6.src", np.uint8, ADDRESS_BYTES)
    dst, dst_set = out.column("ipv6.dst", np.uint8, ADDRESS_BYTES)
    version, version_set = out.column("_ip.version", np.int64)
    src6, src6_set = out.column("_ip.src6", np.uint8, ADDRESS_BYTES)
    dst6, dst6_set = out.column("_ip.dst6", np.uint8, ADDRESS_BYTES)
    length, length_set = out.column("_ip.len", np.int64)
    new_fragment_columns = [name for name in _FRAGMENT_HEADER if name not in out.values]
    fragment_header = [out.column(name, width) for name, width in zip(_FRAGMENT_HEADER, _FRAGMENT_WIDTHS)]
    ip_proto, ip_proto_set = out.column("ip_proto", np.uint8)
    proto, proto_set = out.column("_ip.proto", np.int64)
    fragment, fragment_set = out.column("_ip.fragment", np.bool_)
    l4_start, l4_start_set = out.column("_l4.start", np.int64)
    count, rows, start, end, stated_end, protocol, extensions, bits, seen = _dissect(
        data, layer.rows, layer.start, layer.end, layer.stated_end,
        tuple(c for c, _ in named), tuple(v for _, v in named), src, src_set, dst, dst_set,
        version, version_set, src6, src6_set, dst6, dst6_set, length, length_set,
        tuple(c for c, _ in fragment_header), tuple(v for _, v in fragment_header),
        ip_proto, ip_proto_set, proto, proto_set, fragment, fragment_set, l4_start, l4_start_set)
    if not extensions:
        out.discard(new_fragment_columns)   # no chain walked: no fragment header columns
    out.flag_bits(layer.rows, bits, seen, _WEIRDS)
    # Unlike IPv4, Wireshark (packet-ipv6.c) never dissects the payload of a
    # first fragment it cannot reassemble: no payload here is a partial first fragment.
    return (Layer(rows[:count], start[:count], end[:count], stated_end[:count]), protocol[:count],
            np.zeros(count, dtype=bool))




@numba.njit(cache=True, nogil=True)
def _put_address(column, valid, row, data, position, hidden):
    """Copy 16 address bytes into a ``uint8[n, 16]`` column (first occurrence wins unless ``hidden``)."""
    keep = valid[row] and not hidden
    for j in range(ADDRESS_BYTES):
        column[row, j] = column[row, j] if keep else data[position + j]
    valid[row] = True



@numba.njit(cache=True, nogil=True)
def _is_extension(next_header):
    return (next_header == HOP_BY_HOP or next_header == ROUTING or next_header == FRAGMENT
            or next_header == DESTINATION or next_header == AUTHENTICATION)


@numba.njit(cache=True, nogil=True)
def _dissect(data, rows, start, end, stated_end, named, named_set, src, src_set, dst, dst_set,
             version_column, version_set, src6, src6_set, dst6, dst6_set, length, length_set,
             fragment_header, fragment_header_set, ip_proto, ip_proto_set, proto, proto_set,
             fragment_column, fragment_set, l4_start, l4_start_set):
    """One pass: fixed header fields, the extension header chain, the upper-layer layer and weird bits."""
    k = rows.shape[0]
    out_rows = np.empty(k, np.int64)
    out_start = np.empty(k, np.int64)
    out_end = np.empty(k, np.int64)
    out_stated = np.empty(k, np.int64)
    out_protocol = np.empty(k, np.int64)
    bits = np.zeros(k, np.uint8)
    seen = 0
    extensions = False
    count = 0
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
        whole = s + HEADER_BYTES <= e
        if not whole:
            bits[i] = _TRUNCATED
        elif version != 6:
            bits[i] = _UNKNOWN_VERSION
        seen |= bits[i]
        if version != 6:
            continue
        # Header fields as far as they were captured (``ipv6.src`` from 24 bytes), as Wireshark.
        if s + 4 <= e:
            word = _be(data, s, 4)
            _put(named[_TCLASS], named_set[_TCLASS], row, (word >> 20) & 0xFF)
            _put(named[_FLOW], named_set[_FLOW], row, word & 0xFFFFF)
        if s + 6 <= e:
            _put(named[_PLEN], named_set[_PLEN], row, _be(data, s + 4, 2))
        if s + 7 <= e:
            _put(named[_NXT], named_set[_NXT], row, np.int64(data[s + 6]))
        if s + 8 <= e:
            _put(named[_HLIM], named_set[_HLIM], row, np.int64(data[s + 7]))
        if s + 24 <= e:
            _put_address(src, src_set, row, data, s + 8, False)
        if not whole:
            continue
        _put_address(dst, dst_set, row, data, s + 24, False)
        payload_length = _be(data, s + 4, 2)
        next_header = np.int64(data[s + 6])
        _put_hidden(version_column, version_set, row, 6)
        _put_address(src6, src6_set, row, data, s + 8, True)
        _put_address(dst6, dst6_set, row, data, s + 24, True)
        # Jumbograms (RFC 2675) have payload length 0; treat the rest of the frame as payload.
        if payload_length == 0:
            payload_length = stated - s - HEADER_BYTES
        _put_hidden(length, length_set, row, HEADER_BYTES + payload_length)
        if s + HEADER_BYTES + payload_length > stated:
            bits[i] |= _BEYOND
            seen |= _BEYOND
        # The payload, bounded by the payload length.
        stop = s + HEADER_BYTES + payload_length
        position = s + HEADER_BYTES
        e = min(e, stop)
        stated = min(stated, stop)
        # Follow extension headers to the upper layer; each is at least 8 bytes long, so this ends.
        extensions |= _is_extension(next_header)
        is_fragment = False
        broken = False
        while _is_extension(next_header):
            size = np.int64(8)
            if position + 2 <= e and next_header != FRAGMENT:
                if next_header == AUTHENTICATION:
                    size = (np.int64(data[position + 1]) + 2) * 4   # RFC 4302 §2.2: in 4-byte units, minus 2
                else:
                    size = (np.int64(data[position + 1]) + 1) * 8
            if position + size > e:
                # Zeek: a chain longer than the payload length is a bad header size; one
                # that the payload length covers but the capture cut is internally truncated.
                bits[i] |= _CHAIN_CUT if position + size <= stated else _CHAIN_TOO_LONG
                seen |= bits[i]
                broken = True
                break
            # RFC 8200 §4.2: the options of a hop-by-hop or destination options header
            # are TLVs within it; past one that runs over the header's end, the
            # chain is not followed (Wireshark: malformed; Zeek: bad_ipv6_dest_opt_len).
            if ((next_header == HOP_BY_HOP or next_header == DESTINATION)
                    and not _options_fit(data, position + 2, position + size)):
                broken = True
                break
            if next_header == FRAGMENT:
                offset_flags = _be(data, position + 2, 2)
                _put(fragment_header[_F_OFFSET], fragment_header_set[_F_OFFSET], row, offset_flags >> 3)
                _put(fragment_header[_F_MORE], fragment_header_set[_F_MORE], row, offset_flags & 1)
                _put(fragment_header[_F_IDENT], fragment_header_set[_F_IDENT], row, _be(data, position + 4, 4))
                # RFC 8200 §4.5: offset 0 with M clear is an atomic fragment, a whole datagram.
                is_fragment |= (offset_flags & 0xFFF9) != 0
            next_header = np.int64(data[position])
            position += size
        if broken:
            continue
        out_rows[count] = row
        out_start[count] = position
        out_end[count] = e
        out_stated[count] = stated
        out_protocol[count] = NO_PROTOCOL if is_fragment else next_header
        count += 1
        _put(ip_proto, ip_proto_set, row, next_header)
        _put_hidden(proto, proto_set, row, next_header)
        _put_hidden(fragment_column, fragment_set, row, is_fragment)
        if not is_fragment:
            _put_hidden(l4_start, l4_start_set, row, position)
    return count, out_rows, out_start, out_end, out_stated, out_protocol, extensions, bits, seen


@numba.njit(cache=True, nogil=True)
def _options_fit(data, position, stop):
    """Whether the options from ``position`` to ``stop`` (captured) are whole TLVs.

    RFC 8200 §4.2: Pad1 (type 0) is one byte; every other option is type,
    length, then that many bytes, except that the Home Address option
    (RFC 6275 §6.3), whose length is fixed, always spans its 16-byte address
    (Wireshark reads it so whatever the length field says).
    """
    while position < stop:
        kind = data[position]
        if kind == 0:
            position += 1
            continue
        if position + 1 >= stop:
            return False
        size = np.int64(data[position + 1]) + 2
        if kind == HOME_ADDRESS_OPTION:
            size = 2 + ADDRESS_BYTES
        if position + size > stop:
            return False
        position += size
    return True
