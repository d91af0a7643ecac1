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
from numba import njit

from . import state as S
from .state import (V_ACK, V_BCAST, V_CHKOK, V_DHI, V_DLO, V_DNSQR, V_DPORT, V_FLAGS, V_FRAME, V_FULL, V_IPLEN,
                    V_IPPROTO, V_ONEWAY, V_OUTER, V_PA, V_PB, V_PKIND, V_PLEN, V_PROTO, V_ROW, V_SEQ, V_SHI,
                    V_SLO, V_SPORT, V_TS, V_VER, V_WIN)

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
def _sum16(data, words, start, length):
    """A number congruent, modulo 0xFFFF, to the sum of the big-endian 16-bit words of
    ``data[start:start+length]`` (odd tail zero-padded): what a one's complement checksum needs.

    ``words`` is ``data`` viewed as native (little-endian) 16-bit words.  Summing those
    whole words lets the loop be vectorised; the byte order is fixed at the end (RFC 1071
    §2(B): swapping the bytes of a 16-bit word multiplies it by 256, modulo 0xFFFF).  A
    range starting at an odd offset takes its first byte alone, after which the aligned
    words pair its bytes the other way round, which needs no fixing.
    """
    end = start + length
    total = np.int64(0)
    i = start
    odd_start = (i & 1) == 1 and i < end
    if odd_start:
        total += np.int64(data[i]) << 8
        i += 1
    first = i >> 1
    words_sum = np.int64(0)
    for k in range(first, first + ((end - i) >> 1)):
        words_sum += words[k]
    total += words_sum if odd_start else words_sum << 8
    if (end - i) & 1:
        # The last byte: the high byte of a word when it is an even number of bytes into the range.
        last = np.int64(data[end - 1])
        total += (last << 8) if ((end - 1 - start) & 1) == 0 else last
    return total


@njit(cache=True)
def inspect_l4(data, words, frame_end, frame_whole, l4s, ver, iplen, ipproto, src4, tcp_hdr, udp_len,
               validate, pay_len, ip_ok, l4_ok, l4_full):
    """Find each innermost IP header, its payload length, and validate checksums as Zeek does.

    ``tcp_hdr`` is the TCP header length (or -1), ``udp_len`` the UDP length field (or -1).
    Writes ``pay_len`` (IP payload bytes, -1 if the header was not found), ``ip_ok``
    (IPv4 header checksum), ``l4_ok`` (transport checksum), ``l4_full`` (transport
    segment entirely captured).
    """
    n = l4s.shape[0]
    for i in range(n):
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
                    if validate and _sum16(data, words, p, 4 * k) % 0xFFFF != 0:
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
            total = _sum16(data, words, s, L)
        else:
            total = _sum16(data, words, s, L) + L + proto
            if ver[i] == 4:
                total += _sum16(data, words, start + 12, 8)
            else:
                total += _sum16(data, words, start + 8, 32)
        if total % 0xFFFF != 0:
            l4_ok[i] = False


# Weirds after which Zeek drops the packet before any connection sees it: the IP
# layer (IPAnalyzer: caplen below the total length) and CheckHeaderTrunc of the
# transport analyzers (src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc).  Tunnel
# dissectors flag truncated_header with their name in addl; those are not drops.
DROPPING_WEIRDS = ("truncated_IP", "truncated_IPv6", "truncated_header", "internally_truncated_header")


def dropped_rows(fields) -> np.ndarray | None:
    """``int64[k]`` rows of a dissected batch that Zeek drops (see :data:`DROPPING_WEIRDS`), or None."""
    drop = [rows for rows, name, addl in fields.weird if name in DROPPING_WEIRDS and addl is None]
    return np.concatenate(drop) if drop else None


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
    # The DNS header's QR bit (RFC 1035 §4.1.1: bit 7 of byte 2), where a UDP payload holds a header.
    dns_qr = np.full(n, -1, dtype=np.int64)
    if is_udp.any():
        u = np.flatnonzero(is_udp & ok_pstart & (pend - pstart >= 12) & (udp_len - 8 >= 12))
        dns_qr[u] = data[pstart[u] + 2] >> 7
    pay_len = np.empty(n, dtype=np.int64)
    ip_ok = np.empty(n, dtype=np.bool_)
    l4_ok = np.empty(n, dtype=np.bool_)
    l4_full = np.empty(n, dtype=np.bool_)
    frame_whole = batch.wire_len <= batch.cap_len
    # The same bytes as 16-bit words, for the checksums (a view: the batch buffer is word-aligned).
    words = data[:len(data) & ~1].view(np.uint16)
    inspect_l4(data, words, frame_end, frame_whole, l4, version, iplen, proto, src4, tcp_hdr, udp_len,
               validate, pay_len, ip_ok, l4_ok, l4_full)
    inner &= ip_ok

    # Tunnels: outer addresses differ from the innermost ones.
    ohs, ols, ohd, old, ok_outer = _outer_addresses(fields)
    usp, ok_usp = _col(fields, "udp.srcport")
    udp_dport, _ = _col(fields, "udp.dstport")
    outer_proto, ok_op = _col(fields, "ip_proto")
    ulen_field, ok_ulen = _col(fields, "udp.length")
    outer_udp_candidate = ok_usp & ok_ulen & ok_op & (outer_proto == 17) & ok_outer
    if drop_rows is not None and len(drop_rows):
        outer_udp_candidate[drop_rows] = False
    ok4 = _col(fields, "ip.src")[1]
    v4len, okv4len = _col(fields, "ip.len")
    v6plen, _ = _col(fields, "ipv6.plen")
    outer_iplen = np.where(okv4len, v4len, v6plen + 40)
    events = np.empty((int(inner.sum()) + int(outer_udp_candidate.sum()), EV_N), dtype=np.int64)
    k = _assemble(events, batch.ts_ns, np.int64(batch.first_number), inner, is_tcp, is_udp, ok_ip,
                  proto, version, shi, slo, dhi, dlo, iplen, l4_ok, sport, dport,
                  _col(fields, "_tcp.seq")[0], _col(fields, "_tcp.ack")[0], flags,
                  _col(fields, "_tcp.window")[0], tlen, pend - pstart, udp_len, itype, icode,
                  frame_end - l4s, pay_len, dns_qr, ICMP4_COUNTERPART, ICMP6_COUNTERPART,
                  ohs, ols, ohd, old, ok_outer, outer_udp_candidate, usp, udp_dport, ulen_field, ok4,
                  outer_iplen)
    return events[:k]


@njit(cache=True)
def _assemble(ev, ts, first_number, inner, is_tcp, is_udp, ok_ip, proto, version, shi, slo, dhi, dlo,
              iplen, l4_ok, sport, dport, seq, ack, flags, window, tlen, payload_captured, udp_len, itype,
              icode, l4_captured, pay_len, dns_qr, icmp4_counterpart, icmp6_counterpart, ohs, ols, ohd, old,
              ok_outer, outer_udp_candidate, usp, udp_dport, ulen_field, ok4, outer_iplen):
    """Write the events of one batch into ``ev`` in processing order; returns how many.

    Per frame: first the event of a UDP tunnel's outer connection (``V_OUTER``
    1), then the innermost transport event.  ``V_PKIND``: 0 not tunnelled, 1
    tunnelled in UDP (the parent is the outer event's connection), 2 other IP
    tunnels (the parent is a synthetic uid of the outer address pair, in
    ``V_PA``/``V_PB``).
    """
    n = ts.shape[0]
    k = 0
    for i in range(n):
        tunneled = ok_ip[i] and ok_outer[i] and (ohs[i] != shi[i] or ols[i] != slo[i]
                                                 or ohd[i] != dhi[i] or old[i] != dlo[i])
        outer_udp = outer_udp_candidate[i] and (tunneled or (ok_ip[i] and (
            sport[i] != usp[i] or dport[i] != udp_dport[i] or proto[i] != 17 or not inner[i])))
        if outer_udp:
            e = ev[k]
            e[:] = 0
            e[V_ROW] = i
            e[V_TS] = ts[i]
            e[V_FRAME] = first_number + i
            e[V_PROTO] = S.UDP
            e[V_IPPROTO] = 17
            e[V_VER] = 4 if ok4[i] else 6
            e[V_SHI], e[V_SLO], e[V_DHI], e[V_DLO] = ohs[i], ols[i], ohd[i], old[i]
            e[V_SPORT] = usp[i]
            e[V_DPORT] = udp_dport[i]
            e[V_IPLEN] = outer_iplen[i]
            e[V_PLEN] = ulen_field[i] - 8
            e[V_FULL] = 1
            e[V_CHKOK] = 1
            e[V_BCAST] = old[i] == (IPV4_MAPPED | 0xFFFFFFFF)
            e[V_OUTER] = 1
            e[V_DNSQR] = -1
            k += 1
        if not inner[i]:
            continue
        e = ev[k]
        e[:] = 0
        e[V_ROW] = i
        e[V_TS] = ts[i]
        e[V_FRAME] = first_number + i
        e[V_IPPROTO] = proto[i]
        e[V_VER] = version[i]
        e[V_SHI], e[V_SLO], e[V_DHI], e[V_DLO] = shi[i], slo[i], dhi[i], dlo[i]
        e[V_IPLEN] = iplen[i]
        e[V_CHKOK] = l4_ok[i]
        e[V_BCAST] = dlo[i] == (IPV4_MAPPED | 0xFFFFFFFF)
        e[V_DNSQR] = dns_qr[i]
        if is_tcp[i]:
            e[V_PROTO] = S.TCP
            e[V_SPORT] = sport[i]
            e[V_DPORT] = dport[i]
            e[V_SEQ] = seq[i]
            e[V_ACK] = ack[i]
            e[V_FLAGS] = flags[i]
            e[V_WIN] = window[i]
            e[V_PLEN] = tlen[i]
            e[V_FULL] = payload_captured[i] >= tlen[i]
        elif is_udp[i]:
            # Payload bytes as the UDP length field states them (Zeek's ulen - 8).
            e[V_PROTO] = S.UDP
            e[V_SPORT] = sport[i]
            e[V_DPORT] = dport[i]
            e[V_PLEN] = udp_len[i] - 8 if udp_len[i] >= 0 else 0
            e[V_FULL] = 1
        else:
            e[V_PROTO] = S.ICMP
            kind = itype[i]
            counterpart = icmp4_counterpart[kind] if proto[i] == 1 else icmp6_counterpart[kind]
            e[V_SPORT] = kind
            e[V_DPORT] = icode[i] if counterpart < 0 else counterpart
            e[V_ONEWAY] = counterpart < 0
            plen = pay_len[i] if pay_len[i] >= 0 else l4_captured[i]
            e[V_PLEN] = plen - 8
            e[V_FULL] = l4_captured[i] >= plen
        if tunneled:
            e[V_PKIND] = 1 if outer_udp else 2
            if not outer_udp:
                a_hi, a_lo, b_hi, b_lo = ohs[i], ols[i], ohd[i], old[i]
                if not (a_hi < b_hi or (a_hi == b_hi and a_lo <= b_lo)):
                    a_hi, a_lo, b_hi, b_lo = b_hi, b_lo, a_hi, a_lo
                h = S._mix(S._mix(S._mix(S._mix(np.int64(0x7475), a_hi), a_lo), b_hi), b_lo)
                e[V_PA] = h
                e[V_PB] = S._mix(h, np.int64(0x5DEECE66D)) & S.M32
        k += 1
    return k
