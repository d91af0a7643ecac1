"""Per-packet transport events for connection tracking, built with numpy from a batch's columns.

:func:`build_events` turns a :class:`~captures.batch.PacketBatch` and its
:class:`~dissectors.wire.Fields` into the ``int64[n, EV_N]`` event matrix that
:func:`analyzer.conn.state.process_events` consumes: one event per packet with an
innermost TCP, UDP, ICMP or ICMPv6 header (Zeek tracks the innermost connection of
a tunnel), plus, before it, one event for the outer UDP connection of a UDP tunnel
(Teredo, AYIYA, VXLAN, Geneve, GTP-U: Zeek logs those too, and names them in the
inner connection's ``tunnel_parents``).

IP fragments are not events (the reassembled datagram, fed later as its own
batch, is).  Checksums are validated as Zeek does by default (IPv4 header,
TCP, UDP unless 0 over IPv4, ICMP, ICMPv6), in a numba loop; ``validate=False``
is Zeek's ``-C``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import state as S

# ICMP "ports" (Zeek's ICMP4_counterpart / ICMP6_counterpart): a request/reply type maps to
# its counterpart, anything else is one-way with the code as responder port.
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
                139: 140, 140: 139, 144: 145, 145: 144}


def _counterpart_table(pairs):
    table = np.full(256, -1, dtype=np.int64)
    for k, v in pairs.items():
        table[k] = v
    return table


ICMP4_COUNTERPART = _counterpart_table(_ICMP4_PAIRS)
ICMP6_COUNTERPART = _counterpart_table(_ICMP6_PAIRS)
IPV4_MAPPED = np.int64(0xFFFF00000000)


def _col(fields, name, dtype=np.int64):
    values = fields.values.get(name)
    if values is None:
        return np.zeros(fields.n, dtype=dtype), np.zeros(fields.n, dtype=bool)
    return values.astype(dtype, copy=False), fields.valid[name]


def _addresses(fields, prefix4, prefix6):
    """(hi, lo, valid) int64 address halves: IPv4 as IPv4-mapped IPv6, IPv6 as two big-endian words."""
    n = fields.n
    hi = np.zeros(n, dtype=np.int64)
    lo = np.zeros(n, dtype=np.int64)
    v4, ok4 = _col(fields, prefix4)
    lo[ok4] = IPV4_MAPPED | v4[ok4]
    raw6 = fields.values.get(prefix6)
    ok6 = np.zeros(n, dtype=bool)
    if raw6 is not None:
        ok6 = fields.valid[prefix6]
        words = np.ascontiguousarray(raw6).view(">u8").reshape(n, 2).astype(np.uint64).view(np.int64)
        hi[ok6] = words[ok6, 0]
        lo[ok6] = words[ok6, 1]
    return hi, lo, ok4 | ok6


def _outer_addresses(fields):
    """Outermost IP addresses from the public columns (first occurrence)."""
    n = fields.n
    hi_s = np.zeros(n, dtype=np.int64)
    lo_s = np.zeros(n, dtype=np.int64)
    hi_d = np.zeros(n, dtype=np.int64)
    lo_d = np.zeros(n, dtype=np.int64)
    s4, oks = _col(fields, "ip.src")
    d4, okd = _col(fields, "ip.dst")
    v4 = oks & okd
    lo_s[v4] = IPV4_MAPPED | s4[v4]
    lo_d[v4] = IPV4_MAPPED | d4[v4]
    ok = v4.copy()
    for name, hi, lo in (("ipv6.src", hi_s, lo_s), ("ipv6.dst", hi_d, lo_d)):
        raw = fields.values.get(name)
        if raw is None:
            continue
        valid = fields.valid[name] & ~v4
        words = np.ascontiguousarray(raw).view(">u8").reshape(n, 2).astype(np.uint64).view(np.int64)
        hi[valid] = words[valid, 0]
        lo[valid] = words[valid, 1]
        ok |= valid
    return hi_s, lo_s, hi_d, lo_d, ok


@njit(cache=True)
def _be16(data, p):
    return (np.int64(data[p]) << 8) | data[p + 1]


@njit(cache=True)
def _sum16(data, start, length):
    """Sum of the big-endian 16-bit words of ``data[start:start+length]`` (odd tail zero-padded)."""
    even = np.int64(0)
    odd = np.int64(0)
    end = start + length
    i = start
    while i + 1 < end:
        even += data[i]
        odd += data[i + 1]
        i += 2
    if i < end:
        even += data[i]
    return (even << 8) + odd


@njit(cache=True, parallel=True)
def inspect_l4(data, frame_end, frame_whole, l4s, ver, iplen, ipproto, src4, tcp_hdr, udp_len,
               validate, pay_len, ip_ok, l4_ok, l4_full):
    """Find each innermost IP header, its payload length, and validate checksums as Zeek does.

    ``tcp_hdr`` is the TCP header length (or -1), ``udp_len`` the UDP length field (or -1).
    Writes ``pay_len`` (IP payload bytes, -1 if the header was not found), ``ip_ok``
    (IPv4 header checksum), ``l4_ok`` (transport checksum), ``l4_full`` (transport
    segment entirely captured).
    """
    n = l4s.shape[0]
    for i in prange(n):
        pay_len[i] = -1
        ip_ok[i] = True
        l4_ok[i] = True
        l4_full[i] = False
        s = l4s[i]
        if s < 0:
            continue
        start = -1
        if ver[i] == 4:
            for k in range(5, 16):
                p = s - 4 * k
                if p < 0:
                    break
                if data[p] == (0x40 | k) and _be16(data, p + 2) == iplen[i] and \
                        ((_be16(data, p + 12) << 16) | _be16(data, p + 14)) == src4[i]:
                    start = p
                    pay_len[i] = iplen[i] - 4 * k
                    if validate and _sum16(data, p, 4 * k) % 0xFFFF != 0:
                        ip_ok[i] = False
                    break
        else:
            for e in range(0, 520, 8):
                p = s - 40 - e
                if p < 0:
                    break
                if (data[p] >> 4) == 6 and _be16(data, p + 4) + 40 == iplen[i]:
                    start = p
                    pay_len[i] = iplen[i] - 40 - e
                    break
        if start < 0:
            continue
        L = pay_len[i]
        proto = ipproto[i]
        if proto == 17 and udp_len[i] >= 8 and udp_len[i] <= L:
            L = udp_len[i]
        if proto == 6 and tcp_hdr[i] >= 0:
            pass
        full = s + L <= frame_end[i]
        l4_full[i] = full
        if not validate or not full or L <= 0:
            continue
        if proto == 17:
            if not frame_whole[i]:
                continue
            if ver[i] == 4 and _be16(data, s + 6) == 0:
                continue
        if proto == 1:
            total = _sum16(data, s, L)
        else:
            total = _sum16(data, s, L) + L + proto
            if ver[i] == 4:
                total += _sum16(data, start + 12, 8)
            else:
                total += _sum16(data, start + 8, 32)
        if total % 0xFFFF != 0:
            l4_ok[i] = False


def build_events(batch, fields, validate: bool = True, drop_rows=None) -> np.ndarray:
    """The event matrix (``int64[k, EV_N]``) of one batch, in processing order."""
    n = fields.n
    EV_N = S.EV_N
    if n == 0:
        return np.zeros((0, EV_N), dtype=np.int64)
    version, ok_ip = _col(fields, "_ip.version")
    frag, ok_frag = _col(fields, "_ip.fragment", np.bool_)
    proto, ok_proto = _col(fields, "_ip.proto")
    usable = ok_ip & ok_proto & ~(frag & ok_frag)
    if drop_rows is not None and len(drop_rows):
        usable[drop_rows] = False
    shi, slo, ok_s = _addresses(fields, "_ip.src4", "_ip.src6")
    dhi, dlo, ok_d = _addresses(fields, "_ip.dst4", "_ip.dst6")
    usable &= ok_s & ok_d
    l4s, ok_l4 = _col(fields, "_l4.start")
    sport, ok_sp = _col(fields, "_l4.srcport")
    dport, _ = _col(fields, "_l4.dstport")
    flags, ok_flags = _col(fields, "_tcp.flags")
    pstart, ok_pstart = _col(fields, "_payload.start")
    pend, _ = _col(fields, "_payload.end")
    tlen, _ = _col(fields, "_tcp.len")
    itype, ok_itype = _col(fields, "_icmp.type")
    icode, _ = _col(fields, "_icmp.code")
    frame_end = batch.offset + batch.cap_len
    is_tcp = usable & (proto == 6) & ok_flags & ok_pstart & ok_l4
    is_udp = usable & (proto == 17) & ok_sp & ok_l4 & ~ok_flags
    is_icmp = usable & ((proto == 1) | (proto == 58)) & ok_itype & ok_l4 & (l4s + 8 <= frame_end)
    inner = is_tcp | is_udp | is_icmp
    iplen, _ = _col(fields, "_ip.len")
    src4, _ = _col(fields, "_ip.src4")

    data = batch.data
    l4 = np.where(inner, l4s, -1)
    tcp_hdr = np.where(is_tcp, pstart - l4s, -1)
    udp_len = np.full(n, -1, dtype=np.int64)
    if is_udp.any():
        u = np.flatnonzero(is_udp & (l4s + 6 <= frame_end))
        udp_len[u] = (data[l4s[u] + 4].astype(np.int64) << 8) | data[l4s[u] + 5]
    pay_len = np.empty(n, dtype=np.int64)
    ip_ok = np.empty(n, dtype=np.bool_)
    l4_ok = np.empty(n, dtype=np.bool_)
    l4_full = np.empty(n, dtype=np.bool_)
    frame_whole = batch.wire_len <= batch.cap_len
    inspect_l4(data, frame_end, frame_whole, l4, version, iplen, proto, src4, tcp_hdr, udp_len,
               validate, pay_len, ip_ok, l4_ok, l4_full)
    inner &= ip_ok

    ts = batch.ts_ns
    numbers = np.arange(n, dtype=np.int64) + batch.first_number
    ev = np.zeros((n, EV_N), dtype=np.int64)
    ev[:, S.V_ROW] = np.arange(n)
    ev[:, S.V_TS] = ts
    ev[:, S.V_FRAME] = numbers
    ev[:, S.V_IPPROTO] = proto
    ev[:, S.V_VER] = version
    ev[:, S.V_SHI], ev[:, S.V_SLO], ev[:, S.V_DHI], ev[:, S.V_DLO] = shi, slo, dhi, dlo
    ev[:, S.V_IPLEN] = iplen
    ev[:, S.V_CHKOK] = l4_ok
    ev[:, S.V_BCAST] = dlo == (IPV4_MAPPED | 0xFFFFFFFF)
    # TCP
    t = is_tcp
    ev[t, S.V_PROTO] = S.TCP
    ev[t, S.V_SPORT] = sport[t]
    ev[t, S.V_DPORT] = dport[t]
    ev[t, S.V_SEQ] = _col(fields, "_tcp.seq")[0][t]
    ev[t, S.V_ACK] = _col(fields, "_tcp.ack")[0][t]
    ev[t, S.V_FLAGS] = flags[t]
    ev[t, S.V_WIN] = _col(fields, "_tcp.window")[0][t]
    ev[t, S.V_PLEN] = tlen[t]
    ev[t, S.V_FULL] = (pend - pstart)[t] >= tlen[t]
    # UDP: payload bytes as the UDP length field states them (Zeek's ulen - 8)
    u = is_udp
    ev[u, S.V_PROTO] = S.UDP
    ev[u, S.V_SPORT] = sport[u]
    ev[u, S.V_DPORT] = dport[u]
    ev[u, S.V_PLEN] = np.where(udp_len[u] >= 0, udp_len[u] - 8, 0)
    ev[u, S.V_FULL] = 1
    # ICMP
    c = is_icmp
    ev[c, S.V_PROTO] = S.ICMP
    kind = itype[c]
    table = np.where(proto[c] == 1, ICMP4_COUNTERPART[kind], ICMP6_COUNTERPART[kind])
    oneway = table < 0
    ev[c, S.V_SPORT] = kind
    ev[c, S.V_DPORT] = np.where(oneway, icode[c], table)
    ev[c, S.V_ONEWAY] = oneway
    captured_payload = frame_end[c] - l4s[c]
    plen = np.where(pay_len[c] >= 0, pay_len[c], captured_payload)
    ev[c, S.V_PLEN] = plen - 8
    ev[c, S.V_FULL] = captured_payload >= plen

    # Tunnels: outer addresses differ from the innermost ones.
    ohs, ols, ohd, old, ok_outer = _outer_addresses(fields)
    tunneled = ok_ip & ok_outer & ((ohs != shi) | (ols != slo) | (ohd != dhi) | (old != dlo))
    usp, ok_usp = _col(fields, "udp.srcport")
    udp_dport, _ = _col(fields, "udp.dstport")
    outer_proto, ok_op = _col(fields, "ip_proto")
    ulen_field, ok_ulen = _col(fields, "udp.length")
    outer_udp_candidate = ok_usp & ok_ulen & ok_op & (outer_proto == 17) & ok_outer
    outer_udp = outer_udp_candidate & (tunneled | (ok_ip & ((sport != usp) | (dport != udp_dport)
                                                           | (proto != 17) | ~inner)))
    if drop_rows is not None and len(drop_rows):
        outer_udp[drop_rows] = False
    ev[:, S.V_PKIND] = np.where(inner & tunneled, 2, 0)
    ev[inner & tunneled & outer_udp, S.V_PKIND] = 1
    ip_tunnel = inner & tunneled & ~outer_udp
    if ip_tunnel.any():
        from .state import _mix_np
        ev[ip_tunnel, S.V_PA], ev[ip_tunnel, S.V_PB] = _mix_np(ohs[ip_tunnel], ols[ip_tunnel],
                                                               ohd[ip_tunnel], old[ip_tunnel])
    events = ev[inner]
    if outer_udp.any():
        o = np.flatnonzero(outer_udp)
        outer = np.zeros((len(o), EV_N), dtype=np.int64)
        outer[:, S.V_ROW] = o
        outer[:, S.V_TS] = ts[o]
        outer[:, S.V_FRAME] = numbers[o]
        outer[:, S.V_PROTO] = S.UDP
        outer[:, S.V_IPPROTO] = 17
        s4, ok4 = _col(fields, "ip.src")
        outer[:, S.V_VER] = np.where(ok4[o], 4, 6)
        outer[:, S.V_SHI], outer[:, S.V_SLO] = ohs[o], ols[o]
        outer[:, S.V_DHI], outer[:, S.V_DLO] = ohd[o], old[o]
        outer[:, S.V_SPORT] = usp[o]
        outer[:, S.V_DPORT] = udp_dport[o]
        v4len, okv4len = _col(fields, "ip.len")
        v6plen, _ = _col(fields, "ipv6.plen")
        outer[:, S.V_IPLEN] = np.where(okv4len[o], v4len[o], v6plen[o] + 40)
        outer[:, S.V_PLEN] = ulen_field[o] - 8
        outer[:, S.V_FULL] = 1
        outer[:, S.V_CHKOK] = 1
        outer[:, S.V_BCAST] = old[o] == (IPV4_MAPPED | 0xFFFFFFFF)
        outer[:, S.V_OUTER] = 1
        events = np.concatenate([outer, events])
        order = np.argsort(events[:, S.V_ROW] * 2 + (1 - events[:, S.V_OUTER]), kind="stable")
        events = events[order]
    return np.ascontiguousarray(events)
