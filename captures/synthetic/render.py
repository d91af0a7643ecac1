"""Turn packet tuples into Ethernet frames: scapy templates patched by a compiled loop.

One template per packet shape (IPv4/IPv6 x TCP / TCP SYN with options / UDP /
ICMP echo, with the capture's VLAN tags) is built once with scapy.  The
numba kernel copies a template per packet, patches MACs, addresses, ports,
lengths, IP ID, TTL, seq/ack, flags, window and payload, and computes the IPv4
header checksum and the TCP/UDP/ICMP(v6) checksums (pseudo-header included)
as one's-complement sums.  A million frames render in about a second.
"""

from __future__ import annotations

import numba
import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from .model import K_ICMP, K_TCP, K_TCP_SYN, K_UDP

WINDOW = (64240, 65160)         # advertised TCP window per direction


def vlan_layers(vlan: tuple[int, ...]):
    """Scapy tag layers: one tag is 802.1Q; with more, the outer one is 802.1ad (0x88a8)."""
    layers = []
    for i, vid in enumerate(vlan):
        if len(vlan) > 1 and i == 0:
            layers.append(Dot1AD(vlan=vid))
        else:
            layers.append(Dot1Q(vlan=vid))
    return layers


def build_templates(vlan: tuple[int, ...]):
    """Templates for the 8 shapes (index ``v6 * 4 + kind``).

    Returns ``(data, off, length, l3)``: the concatenated template bytes,
    each template's offset and length, and the (shared) offset of the IP header.
    """
    shapes = []
    for v6 in (False, True):
        mss = 1440 if v6 else 1460
        l3 = IPv6(hlim=64) if v6 else IP(ttl=64, id=0, flags=0)
        syn_opts = [("MSS", mss), ("NOP", None), ("NOP", None), ("SAckOK", b"")]
        l4s = {
            K_TCP: TCP(sport=1, dport=1, seq=0, ack=0, flags=0, window=0, options=[]),
            K_TCP_SYN: TCP(sport=1, dport=1, seq=0, ack=0, flags="S", window=0,
                           options=syn_opts),
            K_UDP: UDP(sport=1, dport=1),
            K_ICMP: ICMPv6EchoRequest(id=0, seq=0) if v6 else ICMP(type=8, id=0, seq=0),
        }
        for kind in (K_TCP, K_TCP_SYN, K_UDP, K_ICMP):
            pkt = Ether(dst="00:00:00:00:00:00", src="00:00:00:00:00:00")
            for layer in vlan_layers(vlan):
                pkt = pkt / layer
            pkt = pkt / l3.copy() / l4s[kind]
            shapes.append(bytes(pkt))
    lengths = np.array([len(s) for s in shapes], np.int64)
    offsets = np.zeros(len(shapes), np.int64)
    offsets[1:] = np.cumsum(lengths)[:-1]
    data = np.frombuffer(b"".join(shapes), np.uint8).copy()
    return data, offsets, lengths, 14 + 4 * len(vlan)


@numba.njit(cache=True, inline="always")
def _sum16(buf, start, end, acc):
    i = start
    while i + 1 < end:
        acc += (np.int64(buf[i]) << 8) | np.int64(buf[i + 1])
        i += 2
    if i < end:
        acc += np.int64(buf[i]) << 8
    return acc


@numba.njit(cache=True, inline="always")
def _fold(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return (~acc) & 0xFFFF


@numba.njit(cache=True, inline="always")
def _put16(buf, p, v):
    buf[p] = (v >> 8) & 0xFF
    buf[p + 1] = v & 0xFF


@numba.njit(cache=True, inline="always")
def _put32(buf, p, v):
    buf[p] = (v >> 24) & 0xFF
    buf[p + 1] = (v >> 16) & 0xFF
    buf[p + 2] = (v >> 8) & 0xFF
    buf[p + 3] = v & 0xFF


@numba.njit(cache=True)
def _render(tpl, tpl_off, tpl_len, l3,
            p_flow, p_dir, p_kind, p_flags, p_seq, p_ack, p_off, p_len, arena,
            f_v6, f_addr, f_port, f_mac, f_ttl, ipid, win0, win1, out, out_off):
    n = p_flow.shape[0]
    for i in range(n):
        fl = p_flow[i]
        d = p_dir[i]
        e = 1 - d
        k = p_kind[i]
        v6 = f_v6[fl]
        t = v6 * 4 + k
        o = out_off[i]
        tl = tpl_len[t]
        to = tpl_off[t]
        out[o:o + tl] = tpl[to:to + tl]
        out[o:o + 6] = f_mac[fl, e]
        out[o + 6:o + 12] = f_mac[fl, d]
        plen = p_len[i]
        out[o + tl:o + tl + plen] = arena[p_off[i]:p_off[i] + plen]
        ip = o + l3
        if v6:
            l4 = ip + 40
        else:
            l4 = ip + 20
        l4len = o + tl + plen - l4
        acc = np.int64(0)
        if v6:
            _put16(out, ip + 4, l4len)
            out[ip + 7] = f_ttl[fl, d]
            out[ip + 8:ip + 24] = f_addr[fl, d]
            out[ip + 24:ip + 40] = f_addr[fl, e]
            acc = _sum16(out, ip + 8, ip + 40, acc)
            acc += l4len + np.int64(out[ip + 6])
        else:
            _put16(out, ip + 2, 20 + l4len)
            j = fl * 2 + d
            _put16(out, ip + 4, ipid[j])
            ipid[j] = (ipid[j] + 1) & 0xFFFF
            out[ip + 8] = f_ttl[fl, d]
            out[ip + 12:ip + 16] = f_addr[fl, d, 0:4]
            out[ip + 16:ip + 20] = f_addr[fl, e, 0:4]
            out[ip + 10] = 0
            out[ip + 11] = 0
            _put16(out, ip + 10, _fold(_sum16(out, ip, ip + 20, np.int64(0))))
            if k != 3:      # ICMPv4 has no pseudo-header
                acc = _sum16(out, ip + 12, ip + 20, acc)
                acc += l4len + np.int64(out[ip + 9])
        if k <= 1:          # TCP
            _put16(out, l4, f_port[fl, d])
            _put16(out, l4 + 2, f_port[fl, e])
            _put32(out, l4 + 4, p_seq[i] & 0xFFFFFFFF)
            _put32(out, l4 + 8, p_ack[i] & 0xFFFFFFFF)
            out[l4 + 13] = p_flags[i]
            _put16(out, l4 + 14, win0 if d == 0 else win1)
            out[l4 + 16] = 0
            out[l4 + 17] = 0
            _put16(out, l4 + 16, _fold(_sum16(out, l4, l4 + l4len, acc)))
        elif k == 2:        # UDP
            _put16(out, l4, f_port[fl, d])
            _put16(out, l4 + 2, f_port[fl, e])
            _put16(out, l4 + 4, l4len)
            out[l4 + 6] = 0
            out[l4 + 7] = 0
            c = _fold(_sum16(out, l4, l4 + l4len, acc))
            if c == 0:
                c = 0xFFFF
            _put16(out, l4 + 6, c)
        else:               # ICMP / ICMPv6 echo
            out[l4] = p_flags[i]
            out[l4 + 1] = 0
            out[l4 + 2] = 0
            out[l4 + 3] = 0
            _put16(out, l4 + 4, p_ack[i] & 0xFFFF)     # identifier
            _put16(out, l4 + 6, p_seq[i] & 0xFFFF)
            _put16(out, l4 + 2, _fold(_sum16(out, l4, l4 + l4len, acc)))


def render(packets: np.ndarray, arena: bytes, flows, vlan: tuple[int, ...], ipid_seed: np.ndarray):
    """Frames for ``packets`` (``int64[n, 9]`` in :data:`PKT_FIELDS` order).

    Returns ``(data uint8[m], offset int64[n], length int64[n], l3)``.
    """
    tpl, tpl_off, tpl_len, l3 = build_templates(vlan)
    nf = len(flows)
    f_v6 = np.fromiter((f.v6 for f in flows), np.int64, nf)
    f_addr = np.zeros((nf, 2, 16), np.uint8)
    f_mac = np.zeros((nf, 2, 6), np.uint8)
    f_port = np.zeros((nf, 2), np.int64)
    f_ttl = np.zeros((nf, 2), np.uint8)
    for i, f in enumerate(flows):
        for d in (0, 1):
            a = f.addr[d]
            f_addr[i, d, :len(a)] = np.frombuffer(a, np.uint8)
            f_mac[i, d] = np.frombuffer(f.mac[d], np.uint8)
        f_port[i] = f.port
        f_ttl[i] = f.ttl
    kind = packets[:, 3]
    flow = packets[:, 1]
    hdr = tpl_len[f_v6[flow] * 4 + kind]
    length = hdr + packets[:, 8]
    offset = np.zeros(len(packets), np.int64)
    if len(packets):
        offset[1:] = np.cumsum(length)[:-1]
    out = np.empty(int(length.sum()), np.uint8)
    arena_np = np.frombuffer(bytes(arena), np.uint8) if len(arena) else np.zeros(1, np.uint8)
    ipid = ipid_seed.astype(np.int64).copy()
    _render(tpl, tpl_off, tpl_len, l3,
            np.ascontiguousarray(flow), np.ascontiguousarray(packets[:, 2]),
            np.ascontiguousarray(kind), np.ascontiguousarray(packets[:, 4]),
            np.ascontiguousarray(packets[:, 5]), np.ascontiguousarray(packets[:, 6]),
            np.ascontiguousarray(packets[:, 7]), np.ascontiguousarray(packets[:, 8]), arena_np,
            f_v6, f_addr, f_port, f_mac, f_ttl, ipid, WINDOW[0], WINDOW[1], out, offset)
    return out, offset, length, l3
