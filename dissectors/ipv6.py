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

import numpy as np

from .wire import Fields, Layer, be16, be32, concat_layers, octets, u8

HEADER_BYTES = 40
HOP_BY_HOP, ROUTING, FRAGMENT, DESTINATION, AUTHENTICATION = 0, 43, 44, 60, 51
NO_PROTOCOL = -1
HOME_ADDRESS_OPTION = 0xC9   # RFC 6275 §6.3


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
    """
    readable = layer.has(1)
    version = np.full(len(layer), -1, dtype=np.int64)
    version[readable] = u8(data, layer.start[readable]) >> 4
    out.put("ipv6.version", layer.rows[readable], version[readable])
    whole = layer.has(HEADER_BYTES)
    out.flag(layer.rows[~whole], "truncated_IPv6")
    out.flag(layer.rows[whole & (version != 6)], "unknown_ip_version")
    # Header fields as far as they were captured (``ipv6.src`` from 24 bytes), as Wireshark.
    layer = layer.take(version == 6)
    for size, name, read in (
            (4, "ipv6.tclass", lambda s: (be32(data, s) >> 20) & 0xFF),
            (4, "ipv6.flow", lambda s: be32(data, s) & 0xFFFFF),
            (6, "ipv6.plen", lambda s: be16(data, s + 4)),
            (7, "ipv6.nxt", lambda s: u8(data, s + 6)),
            (8, "ipv6.hlim", lambda s: u8(data, s + 7)),
            (24, "ipv6.src", lambda s: octets(data, s + 8, 16)),
            (HEADER_BYTES, "ipv6.dst", lambda s: octets(data, s + 24, 16))):
        part = layer.has(size)
        out.put(name, layer.rows[part], read(layer.start[part]))
    layer = layer.take(layer.has(HEADER_BYTES))
    rows, s = layer.rows, layer.start
    payload_length = be16(data, s + 4)
    next_header = u8(data, s + 6)
    out.put("_ip.version", rows, np.full(len(rows), 6, dtype=np.int64))
    out.put("_ip.src6", rows, octets(data, s + 8, 16))
    out.put("_ip.dst6", rows, octets(data, s + 24, 16))
    # Jumbograms (RFC 2675) have payload length 0; treat the rest of the frame as payload.
    payload_length = np.where(payload_length == 0, layer.stated_end - s - HEADER_BYTES, payload_length)
    out.put("_ip.len", rows, HEADER_BYTES + payload_length)
    beyond = s + HEADER_BYTES + payload_length > layer.stated_end
    out.flag(rows[beyond], "truncated_IPv6")
    payload = layer.advance(HEADER_BYTES).bound(payload_length)
    payload, protocol = _walk_chain(data, payload, next_header, out)
    # Unlike IPv4, Wireshark (packet-ipv6.c) never dissects the payload of a
    # first fragment it cannot reassemble: no payload here is a partial first fragment.
    return payload, protocol, np.zeros(len(payload), dtype=bool)


def _walk_chain(data, layer: Layer, next_header: np.ndarray, out: Fields) -> tuple[Layer, np.ndarray]:
    """Follow extension headers to the upper layer; each is at least 8 bytes long, so this ends."""
    done_layers, done_protocols, done_fragment = [], [], []
    fragment = np.zeros(len(layer), dtype=bool)
    while len(layer):
        extension = np.isin(next_header, (HOP_BY_HOP, ROUTING, FRAGMENT, DESTINATION, AUTHENTICATION))
        done_layers.append(layer.take(~extension))
        done_protocols.append(next_header[~extension])
        done_fragment.append(fragment[~extension])
        layer, next_header, fragment = layer.take(extension), next_header[extension], fragment[extension]
        if not len(layer):
            break
        s = layer.start
        readable = layer.has(2)
        length = np.full(len(layer), 8, dtype=np.int64)
        generic = readable & (next_header != FRAGMENT)
        length[generic] = (u8(data, s[generic] + 1) + 1) * 8
        auth = readable & (next_header == AUTHENTICATION)
        length[auth] = (u8(data, s[auth] + 1) + 2) * 4   # RFC 4302 §2.2: in 4-byte units, minus 2
        fits = layer.has(length)
        # Zeek: a chain longer than the payload length is a bad header size; one
        # that the payload length covers but the capture cut is internally truncated.
        stated = s + length <= layer.stated_end
        out.flag(layer.rows[~fits & stated], "internally_truncated_header")
        out.flag(layer.rows[~fits & ~stated], "invalid_IP_header_size")
        layer, next_header, fragment, length = layer.take(fits), next_header[fits], fragment[fits], length[fits]
        # RFC 8200 §4.2: the options of a hop-by-hop or destination options header
        # are TLVs within it; past one that runs over the header's end, the
        # chain is not followed (Wireshark: malformed; Zeek: bad_ipv6_dest_opt_len).
        with_options = (next_header == HOP_BY_HOP) | (next_header == DESTINATION)
        if with_options.any():
            fit = np.ones(len(layer), dtype=bool)
            s = layer.start[with_options]
            fit[with_options] = _options_fit(data, s + 2, s + length[with_options])
            layer, next_header, fragment, length = layer.take(fit), next_header[fit], fragment[fit], length[fit]
        s = layer.start
        is_fragment = next_header == FRAGMENT
        offset_flags = be16(data, s[is_fragment] + 2)
        fragment_rows = layer.rows[is_fragment]
        out.put("ipv6.fraghdr.offset", fragment_rows, offset_flags >> 3)
        out.put("ipv6.fraghdr.more", fragment_rows, offset_flags & 1)
        out.put("ipv6.fraghdr.ident", fragment_rows, be32(data, s[is_fragment] + 4))
        # RFC 8200 §4.5: offset 0 with M clear is an atomic fragment, a whole datagram.
        fragment[is_fragment] |= (offset_flags & 0xFFF9) != 0
        next_header = u8(data, s)
        layer = layer.advance(length)
    payload = concat_layers(done_layers)
    protocol = np.concatenate(done_protocols) if done_protocols else np.zeros(0, np.int64)
    fragment = np.concatenate(done_fragment) if done_fragment else np.zeros(0, bool)
    out.put("ip_proto", payload.rows, protocol)
    out.put("_ip.proto", payload.rows, protocol)
    out.put("_ip.fragment", payload.rows, fragment)
    out.put("_l4.start", payload.rows[~fragment], payload.start[~fragment])
    return payload, np.where(fragment, NO_PROTOCOL, protocol)


def _options_fit(data: np.ndarray, position: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``bool[k]``: whether the options from ``position`` to ``stop`` (captured) are whole TLVs.

    RFC 8200 §4.2: Pad1 (type 0) is one byte; every other option is type,
    length, then that many bytes, except that the Home Address option
    (RFC 6275 §6.3), whose length is fixed, always spans its 16-byte address
    (Wireshark reads it so whatever the length field says).
    """
    fits = np.ones(len(position), dtype=bool)
    index = np.arange(len(position))
    while len(index):
        active = position < stop
        index, position, stop = index[active], position[active], stop[active]
        kind = u8(data, position)
        pad1 = kind == 0
        with_length = ~pad1 & (position + 1 < stop)
        size = np.ones(len(index), dtype=np.int64)
        size[with_length] = u8(data, position[with_length] + 1) + 2
        size[with_length & (kind == HOME_ADDRESS_OPTION)] = 2 + 16
        whole = with_length & (position + size <= stop)
        fits[index[~pad1 & ~whole]] = False
        going = pad1 | whole
        index, position, stop = index[going], (position + size)[going], stop[going]
    return fits
