"""The protocol stack: which dissector runs on which bytes of a batch.

``dissect(batch)`` is a pure function from a :class:`~captures.batch.PacketBatch`
to record columns.  Link types pick the first dissector; from then on
EtherTypes (and pseudo-EtherTypes for "Ethernet follows" and "IP, version
in the first nibble") and IP protocol numbers pick the next, down to the
transport, through tunnels (IP-in-IP, GRE, VXLAN, Geneve, Teredo, AYIYA,
GTP-U) and into the datagram quoted by ICMP errors, like Wireshark.  Each
step runs once per group of packets, never once per packet.
"""

from __future__ import annotations

import numpy as np

from captures.batch import PacketBatch

from . import (ayiya, ethernet, geneve, gre, gtp, icmp, ipv4, ipv6, loopback, macsec, mpls, nflog,
               ppp, pppoe, sll, tcp, teredo, udp, vlan, vxlan)
from .wire import Fields, Layer, be16, u8

# LINKTYPE_* values (tcpdump.org/linktypes.html).
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_PPP, LINKTYPE_RAW = 0, 1, 9, 101
LINKTYPE_PPP_HDLC, LINKTYPE_C_HDLC, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL = 50, 104, 108, 113
LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_NFLOG, LINKTYPE_LINUX_SLL2 = 228, 229, 239, 276
# DLT_RAW is 12 on most systems and 14 on OpenBSD; files carry either.
RAW_IP_LINKTYPES = (12, 14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6)

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200, 0x9300)
ETHERTYPE_MPLS = (0x8847, 0x8848)
ETHERTYPE_PPPOE_SESSION = 0x8864
ETHERTYPE_MACSEC = 0x88E5
ETHERTYPE_ETHERNET = 0x6558   # transparent Ethernet bridging: an Ethernet frame follows
ETHERTYPE_SNIFF_IP = -2       # pseudo-EtherType: IPv4 or IPv6, by the first nibble

IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP = 1, 4, 6, 17
IPPROTO_IPV6, IPPROTO_GRE, IPPROTO_ICMPV6 = 41, 47, 58
IP_PROTOCOL_ETHERTYPE = {IPPROTO_IPIP: ETHERTYPE_IPV4, IPPROTO_IPV6: ETHERTYPE_IPV6}
MPLS_ETHERTYPE = {mpls.PAYLOAD_IPV4: ETHERTYPE_IPV4, mpls.PAYLOAD_IPV6: ETHERTYPE_IPV6,
                  mpls.PAYLOAD_ETHERNET: ETHERTYPE_ETHERNET}

# Tunnels stacked deeper than this are not followed (Zeek: Tunnel::max_depth = 2;
# we go further, as Wireshark does, but stop a crafted packet from recursing forever).
MAX_DEPTH = 16


def dissect(batch: PacketBatch) -> Fields:
    """Dissect every frame of ``batch`` from its link layer down to the transport.

    Returns a :class:`~dissectors.wire.Fields` of ``len(batch)`` rows whose
    columns are named after Wireshark's display-filter fields (first
    occurrence wins, as in ``tshark -T fields -E occurrence=f``), plus
    ``weird`` rows.  Never raises on packet contents.

    Hidden columns (names starting with ``_``) describe the innermost IP
    packet, for connection tracking and the application dissectors:
    ``_ip.version`` (4/6), ``_ip.src4``/``_ip.dst4`` (uint32),
    ``_ip.src6``/``_ip.dst6`` (``uint8[n, 16]``), ``_ip.len`` (IP bytes),
    ``_ip.proto``, ``_ip.fragment`` (bool), ``_l4.srcport``/``_l4.dstport``,
    ``_tcp.seq``/``_tcp.ack``/``_tcp.flags``/``_tcp.window``/``_tcp.len``,
    ``_icmp.type``/``_icmp.code``, and offsets into ``batch.data``:
    ``_l4.start``, ``_payload.start``, ``_payload.end``.
    """
    n = len(batch)
    out = Fields(n)
    rows = np.arange(n, dtype=np.int64)
    out.put("frame.number", rows, rows + batch.first_number)
    out.put("frame.time_epoch", rows, batch.ts_ns)
    out.put("frame.len", rows, batch.wire_len)
    out.put("frame.cap_len", rows, batch.cap_len)
    out.put("frame.interface_id", rows, batch.interface_id.astype(np.int64))
    end = batch.offset + batch.cap_len
    # A record claiming fewer bytes on the wire than captured is taken at its captured size.
    frames = Layer(rows, batch.offset, end, np.maximum(end, batch.offset + batch.wire_len))
    link_types = batch.link_type
    for link_type in np.unique(link_types):
        _link(batch.data, frames.take(link_types == link_type), int(link_type), out)
    return out


def _link(data: np.ndarray, layer: Layer, link_type: int, out: Fields) -> None:
    if link_type == LINKTYPE_ETHERNET:
        _network(data, layer, np.full(len(layer), ETHERTYPE_ETHERNET), out, 0)
        return
    if link_type in RAW_IP_LINKTYPES:
        ethertype = {LINKTYPE_IPV4: ETHERTYPE_IPV4, LINKTYPE_IPV6: ETHERTYPE_IPV6}.get(link_type, ETHERTYPE_SNIFF_IP)
        _network(data, layer, np.full(len(layer), ethertype), out, 0)
        return
    handlers = {
        LINKTYPE_NULL: lambda: loopback.dissect(data, layer, out, network_order=False),
        LINKTYPE_LOOP: lambda: loopback.dissect(data, layer, out, network_order=True),
        LINKTYPE_LINUX_SLL: lambda: sll.dissect_sll(data, layer, out),
        LINKTYPE_LINUX_SLL2: lambda: sll.dissect_sll2(data, layer, out),
        LINKTYPE_NFLOG: lambda: nflog.dissect(data, layer, out),
        LINKTYPE_PPP: lambda: ppp.dissect(data, layer, out),
        LINKTYPE_PPP_HDLC: lambda: ppp.dissect(data, layer, out),
        # Cisco HDLC: address, control, then an EtherType (RFC 1547 §4.3.1).
        LINKTYPE_C_HDLC: lambda: _chdlc(data, layer, out),
    }
    handler = handlers.get(link_type)
    if handler is None:
        # The frame stays a row with its frame fields; the anomaly is recorded once per frame.
        out.flag(layer.rows, "unknown_link_type", str(link_type))
        return
    payload, ethertype = handler()
    _network(data, payload, ethertype, out, 0)


def _chdlc(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    whole = layer.has(4)
    out.flag(layer.rows[~whole], "truncated_link_header", "chdlc")
    layer = layer.take(whole)
    ethertype = be16(data, layer.start + 2)
    out.put("chdlc.protocol", layer.rows, ethertype)
    return layer.advance(4), ethertype


def _network(data: np.ndarray, layer: Layer, ethertype: np.ndarray, out: Fields, depth: int) -> None:
    """Dispatch ``layer`` on its EtherTypes (``int64[k]``)."""
    if not len(layer):
        return
    if depth > MAX_DEPTH:
        out.flag(layer.rows, "exceeded_tunnel_max_depth")
        return
    sniff = ethertype == ETHERTYPE_SNIFF_IP
    if sniff.any():
        ethertype = ethertype.copy()
        seen = sniff & layer.has(1)
        nibble = np.full(len(layer), -1, dtype=np.int64)
        nibble[seen] = u8(data, layer.start[seen]) >> 4
        ethertype[sniff & (nibble == 4)] = ETHERTYPE_IPV4
        ethertype[sniff & (nibble == 6)] = ETHERTYPE_IPV6
        out.flag(layer.rows[sniff & ~seen], "truncated_IP")
        out.flag(layer.rows[sniff & seen & (nibble != 4) & (nibble != 6)], "unknown_ip_version")
    for match, step in (
        (ethertype == ETHERTYPE_ETHERNET, lambda sub: ethernet.dissect(data, sub, out)),
        (np.isin(ethertype, ETHERTYPE_VLAN), lambda sub: vlan.dissect(data, sub, out)),
        (np.isin(ethertype, ETHERTYPE_MPLS), lambda sub: _mpls(data, sub, out)),
        (ethertype == ETHERTYPE_PPPOE_SESSION, lambda sub: pppoe.dissect(data, sub, out)),
        (ethertype == ETHERTYPE_MACSEC, lambda sub: macsec.dissect(data, sub, out)),
    ):
        if match.any():
            inner, inner_type = step(layer.take(match))
            _network(data, inner, inner_type, out, depth + 1)
    for version, module in ((4, ipv4), (6, ipv6)):
        match = ethertype == (ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6)
        if match.any():
            payload, protocol, first_fragment = module.dissect(data, layer.take(match), out)
            _transport(data, payload, protocol, out, first_fragment, depth)


def _mpls(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray]:
    payload, kind = mpls.dissect(data, layer, out)
    ethertype = np.full(len(kind), -1, dtype=np.int64)
    for payload_kind, value in MPLS_ETHERTYPE.items():
        ethertype[kind == payload_kind] = value
    return payload, ethertype


def _transport(data: np.ndarray, layer: Layer, protocol: np.ndarray, out: Fields,
               first_fragment: np.ndarray, depth: int) -> None:
    """Dispatch IP payloads on their protocol numbers (``int64[k]``).

    ``first_fragment`` (``bool[k]``) marks first fragments dissected as they
    stand (see :func:`dissectors.ipv4.dissect`).
    """
    if not len(layer):
        return
    match = protocol == IPPROTO_TCP
    if match.any():
        tcp.dissect(data, layer.take(match), out, first_fragment[match], quoted=out.quoted)
    match = protocol == IPPROTO_UDP
    if match.any():
        payload, source, destination = udp.dissect(data, layer.take(match), out)
        _udp_tunnels(data, payload, source, destination, out, depth)
    for number, icmp_version, quoted_type in ((IPPROTO_ICMP, 4, ETHERTYPE_IPV4),
                                              (IPPROTO_ICMPV6, 6, ETHERTYPE_IPV6)):
        match = protocol == number
        if match.any():
            quoted = icmp.dissect(data, layer.take(match), out, icmp_version)
            # The quoted datagram is usually cut short: dissect it without weirds.
            _network(data, quoted, np.full(len(quoted), quoted_type), out.quiet(), depth + 1)
    for number, ethertype in IP_PROTOCOL_ETHERTYPE.items():
        match = protocol == number
        if match.any():
            _network(data, layer.take(match), np.full(int(match.sum()), ethertype), out, depth + 1)
    match = protocol == IPPROTO_GRE
    if match.any():
        inner, inner_type = gre.dissect(data, layer.take(match), out)
        _network(data, inner, inner_type, out, depth + 1)


def _udp_tunnels(data: np.ndarray, layer: Layer, source: np.ndarray, destination: np.ndarray,
                 out: Fields, depth: int) -> None:
    """Follow UDP tunnels recognised by port, as Wireshark's default port table does."""
    if not len(layer):
        return

    def on(port: int) -> np.ndarray:
        return (source == port) | (destination == port)

    match = on(vxlan.UDP_PORT)
    if match.any():
        inner = vxlan.dissect(data, layer.take(match), out)
        _network(data, inner, np.full(len(inner), ETHERTYPE_ETHERNET), out, depth + 1)
    match = on(geneve.UDP_PORT)
    if match.any():
        inner, inner_type = geneve.dissect(data, layer.take(match), out)
        _network(data, inner, inner_type, out, depth + 1)
    match = on(teredo.UDP_PORT)
    if match.any():
        inner = teredo.dissect(data, layer.take(match), out)
        _network(data, inner, np.full(len(inner), ETHERTYPE_IPV6), out, depth + 1)
    match = on(ayiya.UDP_PORT)
    if match.any():
        inner, protocol = ayiya.dissect(data, layer.take(match), out)
        ethertype = np.full(len(inner), -1, dtype=np.int64)
        for number, value in IP_PROTOCOL_ETHERTYPE.items():
            ethertype[protocol == number] = value
        _network(data, inner, ethertype, out, depth + 1)
    match = on(gtp.UDP_PORT)
    if match.any():
        inner = gtp.dissect(data, layer.take(match), out)
        _network(data, inner, np.full(len(inner), ETHERTYPE_SNIFF_IP), out, depth + 1)
