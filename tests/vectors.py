"""Byte vectors shared by the dissector tests: (name, link type, frame bytes, expected fields).

Frames are built with scapy (an independent implementation of the same
RFCs) or written out by hand where scapy has no layer; expected values are
written out literally.
"""

from __future__ import annotations

import struct

from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.contrib.mpls import MPLS
from scapy.packet import Raw, raw

MAC_A, MAC_B = "00:11:22:33:44:55", "66:77:88:99:aa:bb"
ETH = Ether(src=MAC_A, dst=MAC_B)

TCP_SYN = TCP(sport=43210, dport=80, seq=0x01020304, ack=0, flags="S", window=64240,
              options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None),
                       ("WScale", 7)])


def _udp_ipv4(payload=b"hello"):
    # Ports of no application netsift dissects: these vectors test L2-L4 only.
    return IP(src="10.0.0.1", dst="10.0.0.2", ttl=33) / UDP(sport=40000, dport=9999) / Raw(payload)


def _sll(protocol: int, payload: bytes) -> bytes:
    # LINKTYPE_LINUX_SLL: pkttype 0 (to us), ARPHRD_ETHER, address length 6, address, protocol.
    return struct.pack("!HHH8sH", 0, 1, 6, bytes.fromhex("001122334455") + b"\0\0", protocol) + payload


def _sll2(protocol: int, payload: bytes) -> bytes:
    # LINKTYPE_LINUX_SLL2: protocol, reserved, ifindex, ARPHRD type, pkttype, address length, address.
    return struct.pack("!HHIHBB8s", protocol, 0, 3, 1, 4, 6, bytes(8)) + payload


def _snap(ip_packet: bytes) -> bytes:
    # IEEE 802.3 frame: a length, then LLC (AA AA 03) and SNAP (OUI 0, EtherType IPv4); 6 padding bytes.
    llc = bytes.fromhex("aaaa03000000") + b"\x08\x00" + ip_packet
    return bytes.fromhex("66778899aabb001122334455") + struct.pack("!H", len(llc)) + llc + bytes(6)


def _nflog(family: int, payload: bytes) -> bytes:
    # Header, then a prefix TLV (type 10, "abc\0") and the payload TLV (type 9), little-endian TLVs.
    prefix = struct.pack("<HH", 8, 10) + b"abc\0"
    body = struct.pack("<HH", 4 + len(payload), 9) + payload
    return struct.pack("!BBH", family, 0, 0) + prefix + body + b"\0" * (-len(body) % 4)


VECTORS = [
    ("ethernet-ipv4-tcp-syn", 1, raw(ETH / IP(src="192.0.2.1", dst="198.51.100.2", ttl=64, id=7) / TCP_SYN), {
        "eth.src": MAC_A, "eth.dst": MAC_B, "eth.type": 0x0800, "ip.version": 4, "ip.hdr_len": 20,
        "ip.src": "192.0.2.1", "ip.dst": "198.51.100.2", "ip.ttl": 64, "ip.id": 7, "ip.proto": 6,
        "ip_proto": 6, "ip.flags.mf": 0, "ip.frag_offset": 0, "tcp.srcport": 43210, "tcp.dstport": 80,
        "tcp.seq_raw": 0x01020304, "tcp.ack_raw": 0, "tcp.flags": 0x002, "tcp.window_size_value": 64240,
        "tcp.hdr_len": 40, "tcp.len": 0, "tcp.options.mss_val": 1460, "tcp.options.sack_perm": True,
        "tcp.options.timestamp.tsval": 123456, "tcp.options.timestamp.tsecr": 0,
        "tcp.options.wscale.shift": 7, "udp.srcport": None, "vlan.id": None}),
    ("qinq-ipv4-udp", 1, raw(ETH / Dot1AD(vlan=100, prio=5) / Dot1Q(vlan=200) / _udp_ipv4()), {
        "eth.type": 0x88A8, "vlan.id": 100, "vlan.priority": 5, "vlan.etype": 0x8100, "ip.src": "10.0.0.1",
        "udp.srcport": 40000, "udp.dstport": 9999, "udp.length": 13, "tcp.srcport": None}),
    ("mpls-ipv4-icmp", 1, raw(ETH / MPLS(label=1000, s=0, ttl=9) / MPLS(label=2000, s=1)
                              / IP(src="10.1.1.1", dst="10.2.2.2") / ICMP(type=8, code=0)), {
        "eth.type": 0x8847, "mpls.label": 1000, "mpls.ttl": 9, "ip.src": "10.1.1.1", "icmp.type": 8,
        "icmp.code": 0}),
    ("pppoe-ipv6-udp", 1, raw(ETH / PPPoE(sessionid=0x1234) / PPP(proto=0x0057)
                              / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=3) / UDP(sport=1, dport=2)), {
        "eth.type": 0x8864, "pppoes.session_id": 0x1234, "ppp.protocol": 0x0057, "ipv6.src": "2001:db8::1",
        "ipv6.dst": "2001:db8::2", "ipv6.hlim": 3, "ipv6.nxt": 17, "ip_proto": 17, "udp.dstport": 2}),
    ("snap-ipv4-tcp", 1, _snap(raw(IP(src="10.9.9.9", dst="10.8.8.8") / TCP(sport=1, dport=2, flags="A"))), {
        "eth.type": None, "llc.type": 0x0800, "ip.src": "10.9.9.9", "tcp.flags": 0x010}),
    ("ipv6-hbh-dstopt-tcp", 101, raw(IPv6(src="fe80::1", dst="ff02::1") / IPv6ExtHdrHopByHop()
                                     / IPv6ExtHdrDestOpt() / TCP(sport=22, dport=2222, flags="PA") / b"xyz"), {
        "ipv6.nxt": 0, "ip_proto": 6, "tcp.srcport": 22, "tcp.len": 3, "tcp.flags": 0x018, "ip.src": None}),
    ("ipv6-fragment-nonfirst", 229, raw(IPv6(src="2001:db8::a", dst="2001:db8::b")
                                        / IPv6ExtHdrFragment(offset=10, m=1, id=0xABCDEF, nh=17) / (b"u" * 16)), {
        "ipv6.nxt": 44, "ip_proto": 17, "ipv6.fraghdr.offset": 10, "ipv6.fraghdr.more": 1,
        "ipv6.fraghdr.ident": 0xABCDEF, "udp.srcport": None}),
    ("ipv4-first-fragment", 228, raw(IP(src="10.0.0.5", dst="10.0.0.6", flags="MF", frag=0, proto=17)
                                     / UDP(sport=9, dport=9) / (b"f" * 88)), {
        "ip.flags.mf": 1, "ip.frag_offset": 0, "ip.proto": 17, "udp.srcport": None}),
    ("ipv4-later-fragment", 12, raw(IP(src="10.0.0.5", dst="10.0.0.6", frag=185, proto=17) / (b"f" * 24)), {
        "ip.flags.mf": 0, "ip.frag_offset": 185, "udp.srcport": None}),
    ("sll-ipv4-udp", 113, _sll(0x0800, raw(_udp_ipv4())), {
        "sll.pkttype": 0, "sll.hatype": 1, "sll.etype": 0x0800, "ip.dst": "10.0.0.2", "udp.dstport": 9999,
        "eth.src": None}),
    ("sll2-ipv6-icmpv6", 276, _sll2(0x86DD, raw(IPv6(src="::1", dst="::2", nh=58) / bytes([128, 0, 0, 0, 0, 1, 0, 1]))), {
        "sll.ifindex": 3, "sll.pkttype": 4, "sll.etype": 0x86DD, "ipv6.src": "::1", "icmpv6.type": 128,
        "icmpv6.code": 0}),
    ("null-little-endian-ipv4", 0, struct.pack("<I", 2) + raw(_udp_ipv4()), {
        "null.family": 2, "ip.src": "10.0.0.1", "udp.srcport": 40000}),
    ("null-big-endian-ipv6", 0, struct.pack(">I", 30) + raw(IPv6(src="::5", dst="::6") / UDP(sport=7, dport=8)), {
        "null.family": 30, "ipv6.dst": "::6", "udp.srcport": 7}),
    ("loop-ipv4", 108, struct.pack(">I", 2) + raw(_udp_ipv4()), {"null.family": 2, "udp.dstport": 9999}),
    ("nflog-ipv4-udp", 239, _nflog(2, raw(_udp_ipv4(b"x" * 7))), {
        "nflog.family": 2, "ip.src": "10.0.0.1", "udp.length": 15}),
    ("gre-ipv4-tcp", 1, raw(ETH / IP(src="1.1.1.1", dst="2.2.2.2") / GRE(proto=0x0800, key_present=1, key=5)
                            / IP(src="10.0.0.7", dst="10.0.0.8", ttl=5) / TCP(sport=1000, dport=25)), {
        "ip.src": "1.1.1.1", "ip.proto": 47, "gre.proto": 0x0800, "tcp.srcport": 1000, "tcp.dstport": 25}),
    ("vxlan-ethernet-ipv6-udp", 1, raw(ETH / IP(src="3.3.3.3", dst="4.4.4.4") / UDP(sport=40000, dport=4789)
                                       / VXLAN(vni=42) / Ether(src=MAC_B, dst=MAC_A)
                                       / IPv6(src="2001:db8::7", dst="2001:db8::8") / UDP(sport=7000, dport=1053)), {
        "eth.src": MAC_A, "ip.src": "3.3.3.3", "udp.srcport": 40000, "vxlan.vni": 42,
        "ipv6.src": "2001:db8::7", "ip_proto": 17}),
    ("ipv6-in-ipv4", 1, raw(ETH / IP(src="5.5.5.5", dst="6.6.6.6", proto=41)
                            / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=80, dport=8080, flags="SA")), {
        "ip.proto": 41, "ip_proto": 41, "ipv6.src": "2001:db8::1", "tcp.flags": 0x012}),
    ("icmp-error-quoting-udp", 1, raw(ETH / IP(src="10.0.0.254", dst="10.0.0.1") / ICMP(type=3, code=3)
                                      / raw(_udp_ipv4())[:28]), {
        "ip.src": "10.0.0.254", "icmp.type": 3, "icmp.code": 3, "udp.srcport": 40000, "udp.dstport": 9999}),
]

LINK_TYPES = sorted({link for _, link, _, _ in VECTORS} | {9, 50, 104, 14, 147})
