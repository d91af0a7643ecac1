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

import numba
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

# Dispatch tables: which key goes to which group, groups in the order they are dissected.
_NETWORK_KEYS = np.array([ETHERTYPE_ETHERNET, *ETHERTYPE_VLAN, *ETHERTYPE_MPLS, ETHERTYPE_PPPOE_SESSION,
                          ETHERTYPE_MACSEC, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_SNIFF_IP], dtype=np.int64)
_ETHERNET, _VLAN, _MPLS, _PPPOE, _MACSEC, _IPV4, _IPV6, _SNIFF = range(8)
_NETWORK_GROUPS = np.array([_ETHERNET, *[_VLAN] * len(ETHERTYPE_VLAN), *[_MPLS] * len(ETHERTYPE_MPLS), _PPPOE,
                            _MACSEC, _IPV4, _IPV6, _SNIFF], dtype=np.int64)
_TRANSPORT_KEYS = np.array([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_IPV6,
                            IPPROTO_GRE], dtype=np.int64)
_TCP, _UDP, _ICMP, _ICMPV6, _IPIP, _IPV6_IN_IP, _GRE = range(7)
_TRANSPORT_GROUPS = np.arange(len(_TRANSPORT_KEYS), dtype=np.int64)
# UDP tunnels by port, in the order they are followed (a datagram may match several).
_TUNNEL_PORTS = np.array([vxlan.UDP_PORT, geneve.UDP_PORT, teredo.UDP_PORT, ayiya.UDP_PORT, gtp.UDP_PORT],
                         dtype=np.int64)
_VXLAN, _GENEVE, _TEREDO, _AYIYA, _GTP = range(len(_TUNNEL_PORTS))
# Whether a port is one of them, by port number: two lookups per datagram instead of np.isin's scans.
_IS_TUNNEL_PORT = np.zeros(1 << 16, dtype=bool)
_IS_TUNNEL_PORT[_TUNNEL_PORTS] = True
#: Zeek's analyzer names, the ``service`` its conn.log gives a tunnel's outer UDP connection,
#: indexed by the hidden column ``_tunnel.service`` (the outermost UDP tunnel decoded).
TUNNEL_SERVICES = ("vxlan", "geneve", "teredo", "ayiya", "gtpv1")

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
    out.fill("frame.number", rows + batch.first_number)
    out.fill("frame.time_epoch", batch.ts_ns)
    out.fill("frame.len", batch.wire_len)
    out.fill("frame.cap_len", batch.cap_len)
    out.fill("frame.interface_id", batch.interface_id.astype(np.int64))
    end = batch.offset + batch.cap_len
    # A record claiming fewer bytes on the wire than captured is taken at its captured size.
    frames = Layer(rows, batch.offset, end, np.maximum(end, batch.offset + batch.wire_len))
    link_types = batch.link_type
    if n and (link_types == link_types[0]).all():
        # One link type (nearly every file): no need to sort the frames by it.
        _link(batch.data, frames, int(link_types[0]), out)
    else:
        for link_type in np.unique(link_types):
            _link(batch.data, frames.take(link_types == link_type), int(link_type), out)
    return out


@numba.njit(cache=True, nogil=True)
def _split(keys, table_keys, table_groups, groups, rows, start, end, stated_end, extra):
    """Rows per group (a key's group: its entry's in ``table_groups``; ``groups`` if in none), and,
    unless one group has every row, the rows (and ``extra``) in group order, each group in its
    original order, with the index where each group starts."""
    k = keys.shape[0]
    code = np.empty(k, np.int64)
    counts = np.zeros(groups + 1, np.int64)
    for i in range(k):
        key = keys[i]
        group = groups
        for j in range(table_keys.shape[0]):
            if key == table_keys[j]:
                group = table_groups[j]
                break
        code[i] = group
        counts[group] += 1
    first = np.zeros(groups + 2, np.int64)
    gathered = False
    for group in range(groups + 1):
        first[group + 1] = first[group] + counts[group]
        gathered |= 0 < counts[group] < k
    size = k if gathered else 0
    out_rows = np.empty(size, np.int64)
    out_start = np.empty(size, np.int64)
    out_end = np.empty(size, np.int64)
    out_stated = np.empty(size, np.int64)
    out_extra = np.empty(extra.shape[0] if gathered else 0, extra.dtype)
    if gathered:
        at = np.empty(groups + 1, np.int64)
        for group in range(groups + 1):
            at[group] = first[group]
        for i in range(k):
            j = at[code[i]]
            at[code[i]] = j + 1
            out_rows[j] = rows[i]
            out_start[j] = start[i]
            out_end[j] = end[i]
            out_stated[j] = stated_end[i]
            if extra.shape[0]:
                out_extra[j] = extra[i]
    return counts, gathered, first, out_rows, out_start, out_end, out_stated, out_extra


def _groups(layer: Layer, keys: np.ndarray, table_keys: np.ndarray, table_groups: np.ndarray, groups: int,
            extra: np.ndarray | None = None) -> list[tuple[Layer, np.ndarray | None] | None]:
    """Split ``layer`` by ``keys`` (``int64[k]``): per group, its sub-layer and ``extra`` (or ``None``: no rows).

    Like ``layer.take(key in group)`` for each group, in one pass.
    """
    counts, gathered, first, rows, start, end, stated_end, moved = _split(
        keys, table_keys, table_groups, groups, layer.rows, layer.start, layer.end, layer.stated_end,
        np.zeros(0, np.bool_) if extra is None else extra)
    if not gathered:
        # Every row in one group (the usual case), or none: that group is the layer itself.
        return [(layer, extra) if count else None for count in counts[:groups]]
    result = []
    for group in range(groups):
        if not counts[group]:
            result.append(None)
            continue
        part = slice(first[group], first[group + 1])
        result.append((Layer(rows[part], start[part], end[part], stated_end[part]),
                       None if extra is None else moved[part]))
    return result


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
    groups = _groups(layer, ethertype, _NETWORK_KEYS, _NETWORK_GROUPS, _SNIFF + 1)
    if groups[_SNIFF] is not None:
        sniff = ethertype == ETHERTYPE_SNIFF_IP
        ethertype = ethertype.copy()
        seen = sniff & layer.has(1)
        nibble = np.full(len(layer), -1, dtype=np.int64)
        nibble[seen] = u8(data, layer.start[seen]) >> 4
        ethertype[sniff & (nibble == 4)] = ETHERTYPE_IPV4
        ethertype[sniff & (nibble == 6)] = ETHERTYPE_IPV6
        out.flag(layer.rows[sniff & ~seen], "truncated_IP")
        out.flag(layer.rows[sniff & seen & (nibble != 4) & (nibble != 6)], "unknown_ip_version")
        groups = _groups(layer, ethertype, _NETWORK_KEYS, _NETWORK_GROUPS, _SNIFF + 1)
    for group, step in (
        (_ETHERNET, lambda sub: ethernet.dissect(data, sub, out)),
        (_VLAN, lambda sub: vlan.dissect(data, sub, out)),
        (_MPLS, lambda sub: _mpls(data, sub, out)),
        (_PPPOE, lambda sub: pppoe.dissect(data, sub, out)),
        (_MACSEC, lambda sub: macsec.dissect(data, sub, out)),
    ):
        if groups[group] is not None:
            inner, inner_type = step(groups[group][0])
            _network(data, inner, inner_type, out, depth + 1)
    for group, module in ((_IPV4, ipv4), (_IPV6, ipv6)):
        if groups[group] is not None:
            payload, protocol, first_fragment = module.dissect(data, groups[group][0], out)
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
    groups = _groups(layer, protocol, _TRANSPORT_KEYS, _TRANSPORT_GROUPS, len(_TRANSPORT_KEYS),
                     extra=first_fragment)
    if groups[_TCP] is not None:
        sub, first = groups[_TCP]
        tcp.dissect(data, sub, out, first, quoted=out.quoted)
    if groups[_UDP] is not None:
        payload, source, destination = udp.dissect(data, groups[_UDP][0], out)
        _udp_tunnels(data, payload, source, destination, out, depth)
    for group, quoted_type in ((_ICMP, ETHERTYPE_IPV4), (_ICMPV6, ETHERTYPE_IPV6)):
        if groups[group] is not None:
            quoted = icmp.dissect(data, groups[group][0], out, 4 if group == _ICMP else 6)
            # The quoted datagram is usually cut short: dissect it without weirds.
            _network(data, quoted, np.full(len(quoted), quoted_type), out.quiet(), depth + 1)
    for group, ethertype in ((_IPIP, ETHERTYPE_IPV4), (_IPV6_IN_IP, ETHERTYPE_IPV6)):
        if groups[group] is not None:
            sub = groups[group][0]
            _network(data, sub, np.full(len(sub), ethertype), out, depth + 1)
    if groups[_GRE] is not None:
        inner, inner_type = gre.dissect(data, groups[_GRE][0], out)
        _network(data, inner, inner_type, out, depth + 1)


def _udp_tunnels(data: np.ndarray, layer: Layer, source: np.ndarray, destination: np.ndarray,
                 out: Fields, depth: int) -> None:
    """Follow UDP tunnels recognised by port, as Wireshark's default port table does.

    Teredo is also recognised by content on other ports, as Zeek does, but
    only for the hidden columns (see :func:`_teredo_by_content`).
    """
    if not len(layer):
        return
    tunnelled = _IS_TUNNEL_PORT[source] | _IS_TUNNEL_PORT[destination]
    if not out.quoted and not tunnelled.all():
        _teredo_by_content(data, layer.take(~tunnelled), out, depth)
    if not tunnelled.any():
        return

    def on(tunnel: int) -> np.ndarray | None:
        port = _TUNNEL_PORTS[tunnel]
        match = tunnelled & ((source == port) | (destination == port))
        return match if match.any() else None

    match = on(_VXLAN)
    if match is not None:
        inner = vxlan.dissect(data, layer.take(match), out)
        _mark_tunnel(out, inner.rows, _VXLAN)
        _network(data, inner, np.full(len(inner), ETHERTYPE_ETHERNET), out, depth + 1)
    match = on(_GENEVE)
    if match is not None:
        inner, inner_type = geneve.dissect(data, layer.take(match), out)
        _mark_tunnel(out, inner.rows, _GENEVE)
        _network(data, inner, inner_type, out, depth + 1)
    match = on(_TEREDO)
    if match is not None:
        inner = teredo.dissect(data, layer.take(match), out)
        _mark_tunnel(out, inner.rows, _TEREDO)
        _network(data, inner, np.full(len(inner), ETHERTYPE_IPV6), out, depth + 1)
    match = on(_AYIYA)
    if match is not None:
        inner, protocol = ayiya.dissect(data, layer.take(match), out)
        _mark_tunnel(out, inner.rows, _AYIYA)
        ethertype = np.full(len(inner), -1, dtype=np.int64)
        for number, value in IP_PROTOCOL_ETHERTYPE.items():
            ethertype[protocol == number] = value
        _network(data, inner, ethertype, out, depth + 1)
    match = on(_GTP)
    if match is not None:
        inner = gtp.dissect(data, layer.take(match), out)
        _mark_tunnel(out, inner.rows, _GTP)
        _network(data, inner, np.full(len(inner), ETHERTYPE_SNIFF_IP), out, depth + 1)


def _mark_tunnel(out: Fields, rows: np.ndarray, tunnel: int) -> None:
    """Hidden ``_tunnel.service``: index into :data:`TUNNEL_SERVICES` of the outermost UDP tunnel decoded."""
    if out.quoted or not len(rows):
        return
    rows = rows[~out.is_set("_tunnel.service", rows)]
    out.put("_tunnel.service", rows, np.full(len(rows), tunnel, dtype=np.int64))


def _teredo_by_content(data: np.ndarray, layer: Layer, out: Fields, depth: int) -> None:
    """Teredo on a port other than 3544, recognised by content as Zeek's protocol detection does.

    Wireshark does not decode these datagrams (its Teredo heuristic is off by
    default), so the inner packet is dissected into a scratch
    :class:`~dissectors.wire.Fields` and only its hidden columns (connection
    tracking, application stages) and weirds are kept: the ``packets`` frame
    still shows the datagram as tshark does, while ``conn`` gets the inner
    connection and its tunnel parent like Zeek's conn.log.
    """
    match = teredo.looks_like_teredo(data, layer)
    if not match.any():
        return
    candidates = layer.take(match)
    # Scratch rows 0..k-1 stand for the k candidates (rows ``candidates.rows`` of the batch).
    scratch = Fields(len(candidates))
    local = Layer(np.arange(len(candidates), dtype=np.int64), candidates.start, candidates.end,
                  candidates.stated_end)
    inner = teredo.dissect(data, local, scratch)
    if not len(inner):
        return
    _network(data, inner, np.full(len(inner), ETHERTYPE_IPV6), scratch, depth + 1)
    out.merge_hidden(scratch, candidates.rows)
    _mark_tunnel(out, candidates.rows[inner.rows], _TEREDO)
