"""Protocol hierarchy, like ``tshark -q -z io,phs``: frames and bytes per protocol path.

Each frame gets a path of layer names (``eth:ip:tcp``, ``eth:vlan:ip:udp:vxlan:tcp``,
…), built from which columns of the ``packets`` frame are non-null, in slots:

1. link, from the frame's interface link type (``eth``, ``sll``, ``null``, ``ppp``, …; none for
   raw IP and NFLOG, as in tshark's output);
2. encapsulations: ``vlan`` (``vlan.id``; ``vlan:vlan`` when ``vlan.etype`` is
   another tag's TPID: deeper tags have no columns), ``mpls`` (``mpls.label``),
   ``pppoes:ppp`` (``pppoes.session_id``), ``llc`` (802.3 frames: Ethernet
   without ``eth.type``);
3. network: ``ip`` (``ip.version``) or ``ipv6`` (``ipv6.version``), or, for
   non-IP frames, the EtherType's name (``arp``, ``lldp``, …; unknown ones
   as ``ethertype-0x88b5``);
4. transport, from ``ip_proto`` of the outer IP header and only when the
   protocol's columns are set (``tcp`` needs ``tcp.srcport``…): a fragment
   or a truncated header stops the path at ``ip``, as tshark's does; an ICMP
   error counts as ``icmp`` (not as the quoted datagram);
5. tunnel and inner layers: ``gre`` (inner from ``gre.proto``), ``vxlan`` and
   ``geneve`` (inner ``eth``), ``gtp`` (G-PDU), ``teredo`` (UDP 3544) and
   ``ayiya`` (UDP 5072) to an inner ``ipv6``, IP-in-IP; then the inner
   transport as far as the packets frame has columns for it (its transport
   columns hold the innermost TCP, ICMP, ICMPv6; inner UDP only where the
   outer transport is not UDP);
6. application: the connection's Zeek ``service`` (conn.log, joined on the
   packets' ``uid``), split at commas (``smtp:ssl``).  This is Zeek's
   per-connection view: every frame of a connection whose service is
   ``http`` counts under ``http``, where tshark counts only the frames
   that carry HTTP data.

A node's figures include its descendants' (phs's convention): ``eth:ip``
counts every frame whose path starts with ``eth:ip``.  Frames are grouped on
small integer codes per slot, so the cost is a few vectorised passes over the
packets frame plus Python work per distinct path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._util import int_array, present

# Link layers as tshark's phs names them; raw IP and NFLOG have no layer of their own there (the
# path starts at ip/ipv6), so they have none here either.
LINK_LABELS = {
    0: "null", 1: "eth", 9: "ppp", 12: "", 14: "", 50: "ppp", 101: "", 104: "chdlc", 108: "loop",
    113: "sll", 228: "", 229: "", 239: "", 276: "sll",
}

ETHERTYPE_LABELS = {
    0x0806: "arp", 0x8035: "rarp", 0x88CC: "lldp", 0x888E: "eapol", 0x88F7: "ptp", 0x8809: "slow",
    0x9000: "loop", 0x8863: "pppoed", 0x88E5: "macsec", 0x893A: "ieee1905", 0x0842: "wol", 0x8915: "roce",
    0x88B8: "goose", 0x88BA: "sv", 0x8892: "pn_rt", 0x88A4: "ecat", 0x22F0: "avtp", 0x8906: "fcoe",
    0x8914: "fip",
}

PPP_LABELS = {0xC021: "lcp", 0x8021: "ipcp", 0x8057: "ipv6cp", 0xC023: "pap", 0xC223: "chap", 0x80FD: "ccp"}

IP_PROTO_LABELS = {
    1: "icmp", 2: "igmp", 4: "ip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah",
    58: "icmpv6", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp", 136: "udplite", 115: "l2tp",
}


class _Vocabulary:
    """Layer labels to small integer codes (0 means: no layer in this slot)."""

    def __init__(self):
        self.labels = [""]
        self.codes = {"": 0}

    def code(self, label: str) -> int:
        if label not in self.codes:
            self.codes[label] = len(self.labels)
            self.labels.append(label)
        return self.codes[label]


def _labelled(values: np.ndarray, valid: np.ndarray, names: dict[int, str], vocab: _Vocabulary,
              unknown: str) -> np.ndarray:
    """Codes for integer ``values`` (where ``valid``) named by ``names``, else ``unknown.format(value)``."""
    out = np.zeros(len(values), dtype=np.int32)
    if not valid.any():
        return out
    distinct = np.unique(values[valid])
    for value in distinct:
        label = names.get(int(value))
        label = unknown.format(int(value)) if label is None else label
        out[valid & (values == value)] = vocab.code(label)
    return out


def frame_paths(packets: pd.DataFrame, link_types: list[int] | dict[int, int],
                conn: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per-frame layer codes, one column per slot, and the vocabulary that names the codes.

    Args:
        packets: the packets frame.
        link_types: link type per interface id (a list indexed by ``frame.interface_id``).
        conn: the conn frame, for the application slot (``service``).
    """
    n = len(packets)
    vocab = _Vocabulary()
    col = lambda name: int_array(packets[name]) if name in packets.columns else np.full(n, -1, np.int64)
    slots: dict[str, np.ndarray] = {}

    # 1. link
    interface = col("frame.interface_id")
    interface = np.where(interface < 0, 0, interface)
    table = dict(enumerate(link_types)) if isinstance(link_types, list) else dict(link_types)
    link_type = np.full(n, -1, dtype=np.int64)
    for iface, link in table.items():
        link_type[interface == iface] = link
    link = _labelled(link_type, link_type >= 0, LINK_LABELS, vocab, "linktype-{}")
    slots["link"] = link

    # 2. encapsulations
    is_eth = link_type == 1
    # Only the outermost tag has columns; a second one shows as vlan.etype being a tag's TPID.
    stacked = np.isin(col("vlan.etype"), (0x8100, 0x88A8, 0x9100))
    vlan = present(packets, "vlan.id")
    slots["vlan"] = np.where(vlan & stacked, vocab.code("vlan:vlan"),
                             np.where(vlan, vocab.code("vlan"), 0)).astype(np.int32)
    slots["mpls"] = np.where(present(packets, "mpls.label"), vocab.code("mpls"), 0).astype(np.int32)
    slots["pppoe"] = np.where(present(packets, "pppoes.session_id"), vocab.code("pppoes:ppp"), 0).astype(np.int32)
    eth_type = col("eth.type")
    is_8023 = is_eth & (eth_type < 0) & present(packets, "eth.src")
    slots["llc"] = np.where(is_8023, vocab.code("llc"), 0).astype(np.int32)

    # 3. network
    has_ip = present(packets, "ip.version") | present(packets, "ip.src")
    has_ip6 = present(packets, "ipv6.version") | present(packets, "ipv6.src")
    ip_proto = col("ip_proto")
    ip4_proto = col("ip.proto")
    # Both present: IPv4 is the outer header unless the outer protocol is IPv4-in-IPv6.
    v6_outer = has_ip6 & (~has_ip | ((ip_proto == 4) & (ip4_proto != 4)))
    v4_outer = has_ip & ~v6_outer
    ethertype = np.where(present(packets, "vlan.etype") & ~stacked, col("vlan.etype"), -1)
    for name in ("llc.type", "sll.etype", "chdlc.protocol", "eth.type"):
        ethertype = np.where(ethertype < 0, col(name), ethertype)
    ethertype[vlan & stacked] = -1      # behind a tag without columns: unknown
    non_ip = ~has_ip & ~has_ip6
    network = np.zeros(n, dtype=np.int32)
    network[v4_outer] = vocab.code("ip")
    network[v6_outer] = vocab.code("ipv6")
    network |= _labelled(ethertype, non_ip & (ethertype >= 0), ETHERTYPE_LABELS, vocab, "ethertype-0x{:04x}")
    ppp_protocol = col("ppp.protocol")
    rest = non_ip & (ethertype < 0) & (ppp_protocol >= 0)
    network |= _labelled(ppp_protocol, rest, PPP_LABELS, vocab, "ppp-0x{:04x}")
    slots["network"] = network

    # 4. outer transport (needs the protocol's own columns)
    has_tcp, has_udp = present(packets, "tcp.srcport"), present(packets, "udp.srcport")
    has_icmp, has_icmp6 = present(packets, "icmp.type"), present(packets, "icmpv6.type")
    has_gre = present(packets, "gre.proto")
    is_ip = v4_outer | v6_outer
    transport = np.zeros(n, dtype=np.int32)
    rules = ((6, has_tcp), (17, has_udp), (1, has_icmp), (58, has_icmp6), (47, has_gre),
             (41, has_ip & has_ip6), (4, np.ones(n, dtype=bool)))
    ruled = np.zeros(n, dtype=bool)
    for number, needed in rules:
        hit = is_ip & (ip_proto == number)
        ruled |= hit
        transport[hit & needed] = vocab.code(IP_PROTO_LABELS[number])
    other = is_ip & ~ruled & (ip_proto >= 0)
    transport |= _labelled(ip_proto, other, IP_PROTO_LABELS, vocab, "ip_proto-{}")
    slots["transport"] = transport

    # 5. tunnels and inner layers
    outer_udp = transport == vocab.codes.get("udp", -1)
    tunnel = np.zeros(n, dtype=np.int32)
    inner_net = np.zeros(n, dtype=np.int32)
    ports = np.stack([col("udp.srcport"), col("udp.dstport")])
    vxlan = outer_udp & present(packets, "vxlan.vni")
    geneve = outer_udp & present(packets, "geneve.vni") & ~vxlan
    gtp = outer_udp & present(packets, "gtp.teid") & ~vxlan & ~geneve
    v6_over_udp = outer_udp & v4_outer & has_ip6 & ~vxlan & ~geneve & ~gtp
    teredo = v6_over_udp & (ports == 3544).any(axis=0)
    ayiya = outer_udp & v4_outer & ~vxlan & ~geneve & ~gtp & ~teredo & (ports == 5072).any(axis=0)
    other_udp_tunnel = v6_over_udp & ~teredo & ~ayiya
    gre = transport == vocab.codes.get("gre", -1)
    in_ip4 = transport == vocab.codes.get("ip", -1)
    in_ip6 = transport == vocab.codes.get("ipv6", -1)
    for mask, label in ((vxlan, "vxlan"), (geneve, "geneve"), (gtp, "gtp"), (teredo, "teredo"),
                        (ayiya, "ayiya"), (other_udp_tunnel, "udp-tunnel")):
        tunnel[mask] = vocab.code(label) if mask.any() else 0
    # inner network layer
    inner_v6 = has_ip6 & v4_outer
    inner_transport_seen = has_tcp | has_icmp | has_icmp6 | (has_udp & ~outer_udp)
    geneve_type = col("geneve.proto_type")
    gre_type = col("gre.proto")
    ether_in = vxlan | (geneve & (geneve_type == 0x6558)) | (gre & (gre_type == 0x6558))
    for mask, label in (
            (ether_in & inner_transport_seen & ~inner_v6, "eth:ip"),
            (ether_in & inner_transport_seen & inner_v6, "eth:ipv6"),
            (ether_in & ~inner_transport_seen, "eth"),
            (gtp & inner_transport_seen & ~inner_v6, "ip"), (gtp & inner_v6, "ipv6"),
            (geneve & (geneve_type == 0x0800), "ip"), (geneve & (geneve_type == 0x86DD), "ipv6"),
            (gre & (gre_type == 0x0800), "ip"), (gre & (gre_type == 0x86DD), "ipv6"),
            ((teredo | ayiya | other_udp_tunnel) & has_ip6, "ipv6")):
        if mask.any():
            inner_net[mask & (inner_net == 0)] = vocab.code(label)
    inner_ip6 = ((inner_net == vocab.codes.get("ipv6", -1)) | (inner_net == vocab.codes.get("eth:ipv6", -1))
                 | in_ip6)
    has_inner = (inner_net > 0) | in_ip4 | in_ip6
    inner_transport = np.zeros(n, dtype=np.int32)
    v6_next = col("ipv6.nxt")
    inner_udp = has_inner & (has_udp & ~outer_udp | (outer_udp & inner_ip6 & (v6_next == 17)))
    for mask, label in ((has_inner & has_icmp, "icmp"), (has_inner & has_icmp6, "icmpv6"),
                        (has_inner & has_tcp, "tcp"), (inner_udp, "udp")):
        if mask.any():
            inner_transport[mask & (inner_transport == 0)] = vocab.code(label)
    slots["tunnel"] = tunnel
    slots["inner_network"] = inner_net
    slots["inner_transport"] = inner_transport

    # 6. application, from the connection's service
    app = np.zeros(n, dtype=np.int32)
    if conn is not None and "uid" in packets.columns and {"uid", "service"} <= set(conn.columns) and len(conn):
        services = conn.loc[conn["service"].notna(), ["uid", "service"]]
        if len(services):
            uid = packets["uid"]
            if not isinstance(uid.dtype, pd.CategoricalDtype):
                uid = uid.astype("category")
            unique = services.drop_duplicates("uid")
            per_uid = pd.Series(unique["service"].astype(str).to_numpy(dtype=object),
                                index=unique["uid"].astype(str).to_numpy(dtype=object))
            per_category = per_uid.reindex(uid.cat.categories.astype(str))
            labels = per_category.astype(object).where(per_category.notna(), "").map(
                lambda s: ":".join(part.strip() for part in str(s).split(",") if part.strip()))
            category_codes = np.array([vocab.code(label) if label else 0 for label in labels], dtype=np.int32)
            codes = uid.cat.codes.to_numpy().astype(np.int64)
            if len(category_codes):
                app = np.where(codes >= 0, category_codes[np.maximum(codes, 0)], 0).astype(np.int32)
            app[(transport == 0) & (inner_transport == 0)] = 0
    slots["application"] = app
    return pd.DataFrame(slots), vocab.labels


def protocol_hierarchy(packets: pd.DataFrame, link_types, conn: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per node of the hierarchy, in tree order (children by frames, most first).

    Columns: ``protocol`` (the path, ``eth:ip:tcp``), ``layer`` (its last name),
    ``depth`` (0 for the link layer), ``frames``, ``frames %``, ``bytes``
    (``frame.len``), ``bytes %`` (of all frames).
    """
    columns = ["protocol", "layer", "depth", "frames", "frames %", "bytes", "bytes %"]
    if not len(packets):
        return pd.DataFrame({name: [] for name in columns})
    slots, labels = frame_paths(packets, link_types, conn)
    slots["_bytes"] = int_array(packets["frame.len"], 0)
    names = [name for name in slots.columns if name != "_bytes"]
    grouped = slots.groupby(names, sort=False)["_bytes"].agg(["size", "sum"])
    nodes: dict[tuple[str, ...], list[int]] = {}
    for key, (frames, size) in zip(grouped.index, grouped.to_numpy()):
        key = key if isinstance(key, tuple) else (key,)
        path: list[str] = []
        for code in key:
            if code:
                path.extend(labels[code].split(":"))
        for depth in range(1, len(path) + 1):
            figures = nodes.setdefault(tuple(path[:depth]), [0, 0])
            figures[0] += int(frames)
            figures[1] += int(size)
    total_frames = len(packets)
    total_bytes = int(slots["_bytes"].sum())
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for path in nodes:
        children.setdefault(path[:-1], []).append(path)
    rows = []

    def visit(parent):
        for path in sorted(children.get(parent, ()), key=lambda p: (-nodes[p][0], -nodes[p][1], p)):
            frames, size = nodes[path]
            rows.append((":".join(path), path[-1], len(path) - 1, frames,
                         round(100.0 * frames / total_frames, 2), size,
                         round(100.0 * size / total_bytes, 2) if total_bytes else 0.0))
            visit(path)

    visit(())
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({"depth": np.int64, "frames": np.int64, "bytes": np.int64})
