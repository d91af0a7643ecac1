"""The per-packet connection state machine (Zeek's TCP/UDP/ICMP session semantics), in numba.

One call of :func:`process_events` runs every transport event of a batch in file
order (Zeek's order) over a table of live connections:

* ``C``: ``int64[capacity, NF]``, one row per connection slot (columns ``K_*``
  below, then two blocks of ``EF`` endpoint columns ``E_*``; endpoint 0 is the
  first packet's sender, ``K_ORIG`` says which endpoint is the originator now,
  so a role flip is one toggle, as Zeek swaps its endpoint pointers);
* ``H``: ``uint8[capacity, HSTRIDE]``: ``HMAX`` history letters, then the
  frame number of each letter (4 bytes little-endian, the low 32 bits), so
  letters an application stage adds later (Zeek's ``X``) go in frame order;
* ``table``: a numba typed dict from a 64-bit hash of the canonical 5-tuple to
  the slot (open addressing on collision, the full key is verified).

What is modelled, after Zeek's ``TCPSessionAdapter``/``TCP_Endpoint``/
``TCP_Reassembler``, ``UDP``/``ICMP`` analyzers, ``Connection`` and the
``ConnSize`` analyzer (learnt from their behaviour and documentation, not
copied): endpoint states (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL,
ESTABLISHED, CLOSED, RESET) and their transitions; history letters with the
once-per-direction masks, the sequence-number rule for repeated S/H/F/R, and the
10, 100, 1000… rule for C/T/W/G; relative sequence numbers with wrap-around;
endpoint sizes from sequence numbers; a reassembly model for content gaps (``g``
and ``missed_bytes``) holding up to ``NBLK`` out-of-order blocks, so each hole an
acknowledgement passes counts, as in Zeek's ``TCP_Reassembler::Undelivered``; role flips (``^``) at creation (likely server
ports, SYN-ACK first), on a SYN/SYN-ACK reversal, and when the first DNS message on
a DNS port is a response from the originator (Zeek's DNS analyzer); connection reuse on a new
SYN; removal after the close delay, the attempt timer, linger, and inactivity
timeouts; bad checksums (dropped as Zeek does, with ``C``/``c``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

# ---- connection columns -------------------------------------------------------
K_KEY, K_SERIAL, K_PROTO, K_IPPROTO = 0, 1, 2, 3
K_OHI, K_OLO, K_RHI, K_RLO, K_OPORT, K_RPORT = 4, 5, 6, 7, 8, 9
K_START, K_LAST, K_FRAME, K_UIDA, K_UIDB = 10, 11, 12, 13, 14
K_HSEEN, K_HLEN, K_ORIG, K_PARTIAL, K_CLOSEDEL, K_ATTEMPT = 15, 16, 17, 18, 19, 20
K_NPAR, K_P1A, K_P1B, K_P2A, K_P2B, K_MISSED, K_INUSE = 21, 22, 23, 24, 25, 26, 27
K_CK0 = 28           # 6 columns of canonical key: a_hi, a_lo, b_hi, b_lo, ports, proto|oneway
K_VER = 34
K_FIRSTACK = 35
K_DNS = 36           # UDP connection to a DNS port: 0 no, 1 no DNS message yet, 2 after the first one
K_CUR = 37           # frame number of the packet being processed (stamps history letters)
E_BASE = 38
# ---- endpoint columns (offset E_BASE + endpoint * EF) ----------------------------
E_ST, E_PREV, E_SSEQ, E_LSEQ, E_ASEQ, E_SW, E_AW = 0, 1, 2, 3, 4, 5, 6
E_FINC, E_RSTC, E_FINSEQ, E_HSYN, E_HFIN, E_HRST, E_DIDC = 7, 8, 9, 10, 11, 12, 13
E_PKTS, E_IPB, E_SIZE, E_RXC, E_RXT, E_W0C, E_W0T = 14, 15, 16, 17, 18, 19, 20
E_GC, E_GT, E_CC, E_CT, E_REAS, E_TRIM, E_SEEN, E_NBLK = 21, 22, 23, 24, 25, 26, 27, 28
# Out-of-order data held by the reassembly model: up to NBLK disjoint [start, end) blocks,
# sorted, from E_BLK (start) and E_BLK + 1 (end) on, E_NBLK of them in use (room for one
# more while a block is inserted).
NBLK = 8
E_BLK = 29
EF = E_BLK + 2 * (NBLK + 1)
NF = E_BASE + 2 * EF
HMAX = 48            # history letters kept per connection (Zeek has no cap; real ones stay far below)
HSTRIDE = 5 * HMAX   # letters, then a uint32 frame number per letter

# TCP endpoint states, in Zeek's order.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = 0, 1, 2, 3, 4, 5, 6
# Transport classes.
TCP, UDP, ICMP = 0, 1, 2
# Flags.
F_FIN, F_SYN, F_RST, F_ACK = 0x01, 0x02, 0x04, 0x10
# History masks (orig in the low 16 bits, resp shifted by 16).
HM_SYN, HM_FIN, HM_RST, HM_FINRST, HM_DATA, HM_ACK, HM_MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40
UDP_ORIG_DATA, UDP_RESP_DATA = 0x1, 0x2

NS = 1_000_000_000
TCP_INACTIVITY = 300 * NS      # tcp_inactivity_timeout
UDP_INACTIVITY = 60 * NS       # udp_inactivity_timeout
ICMP_INACTIVITY = 60 * NS      # icmp_inactivity_timeout
TCP_CLOSE_DELAY = 5 * NS       # tcp_close_delay
TCP_ATTEMPT_DELAY = 5 * NS     # tcp_attempt_delay
TCP_LINGER = 5 * NS            # tcp_connection_linger
DNS_SESSION_TIMEOUT = 10 * NS  # dns_session_timeout
TOO_LARGE_SEQ_DELTA = 1048576
M32 = 0xFFFFFFFF

# Event columns (int64[n_events, EV_N]).
V_ROW, V_TS, V_FRAME, V_PROTO, V_IPPROTO, V_VER, V_SHI, V_SLO, V_DHI, V_DLO = range(10)
V_SPORT, V_DPORT, V_ONEWAY, V_IPLEN, V_SEQ, V_ACK, V_FLAGS, V_WIN, V_PLEN = range(10, 19)
V_FULL, V_CHKOK, V_PKIND, V_PA, V_PB, V_BCAST, V_OUTER = range(19, 26)
V_DNSQR = 26         # QR bit of a UDP payload that holds a DNS header (12 bytes or more), else -1
EV_N = 27


def new_table():
    """An empty flow table (hash of the canonical 5-tuple -> slot)."""
    return Dict.empty(key_type=types.int64, value_type=types.int64)


@njit(cache=True, inline="always")
def _mix(h, v):
    h ^= v + np.int64(0x9E3779B97F4A7C15) + (h << 6) + (h >> 2)
    h ^= h >> 31
    h *= np.int64(0x7FB5D329728EA185)
    h ^= h >> 27
    return h


@njit(cache=True)
def _seq_delta(a, b):
    """int32(a - b) for 32-bit sequence numbers."""
    d = (a - b) & M32
    if d >= 0x80000000:
        d -= 0x100000000
    return d


@njit(cache=True, inline="always")
def _eb(ep):
    return E_BASE + ep * EF


@njit(cache=True)
def _is_orig(C, s, ep):
    return C[s, K_ORIG] == ep


@njit(cache=True)
def _add_hist(C, H, s, code):
    n = C[s, K_HLEN]
    if n < HMAX:
        H[s, n] = code
        frame = C[s, K_CUR]
        p = HMAX + 4 * n
        H[s, p] = frame & 0xFF
        H[s, p + 1] = (frame >> 8) & 0xFF
        H[s, p + 2] = (frame >> 16) & 0xFF
        H[s, p + 3] = (frame >> 24) & 0xFF
        C[s, K_HLEN] = n + 1


@njit(cache=True)
def _check_hist(C, H, s, mask, code):
    """Zeek's Connection::CheckHistory: log ``code`` the first time ``mask`` is seen; True if seen before."""
    if C[s, K_HSEEN] & mask:
        return True
    C[s, K_HSEEN] |= mask
    _add_hist(C, H, s, code)
    return False


@njit(cache=True)
def _ep_check_hist(C, H, s, ep, mask, code):
    if not _is_orig(C, s, ep):
        mask <<= 16
        code += 32   # lower case
    return _check_hist(C, H, s, mask, code)


@njit(cache=True)
def _ep_add_hist(C, H, s, ep, code):
    if not _is_orig(C, s, ep):
        code += 32
    _add_hist(C, H, s, code)


@njit(cache=True)
def _scaled(C, H, s, ep, cnt_col, thr_col, code):
    """Zeek's ScaledHistoryEntry: the letter at the 1st, 10th, 100th… occurrence."""
    b = _eb(ep)
    C[s, b + cnt_col] += 1
    if C[s, b + cnt_col] == C[s, b + thr_col]:
        _ep_add_hist(C, H, s, ep, code)
        C[s, b + thr_col] *= 10


@njit(cache=True)
def _set_state(C, s, ep, new):
    b = _eb(ep)
    if C[s, b + E_ST] != new:
        C[s, b + E_PREV] = C[s, b + E_ST]
        C[s, b + E_ST] = new


@njit(cache=True)
def _full_seq(seq, wraps):
    return (wraps << 32) | seq


@njit(cache=True)
def _rel_seq_space(C, s, ep, seq, wraps):
    return _full_seq(seq, wraps) - C[s, _eb(ep) + E_SSEQ]


@njit(cache=True)
def _update_last_seq_raw(C, s, ep, seq):
    b = _eb(ep)
    if seq < C[s, b + E_LSEQ]:
        C[s, b + E_SW] += 1
    C[s, b + E_LSEQ] = seq


@njit(cache=True)
def _update_ack_seq_raw(C, s, ep, seq):
    b = _eb(ep)
    if seq < C[s, b + E_ASEQ]:
        C[s, b + E_AW] += 1
    C[s, b + E_ASEQ] = seq


@njit(cache=True)
def _init_seqs(C, s, ep, start, ack, last):
    b = _eb(ep)
    C[s, b + E_SSEQ] = start
    C[s, b + E_ASEQ] = ack
    C[s, b + E_LSEQ] = last


@njit(cache=True)
def _relative(C, s, ep, cur, last, wraps):
    """Zeek's get_relative_seq; returns (relative seq, underflow)."""
    delta = _seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d = _seq_delta(cur, C[s, _eb(ep) + E_SSEQ])
        return d, d < 0
    return _rel_seq_space(C, s, ep, cur, wraps), False


@njit(cache=True)
def _no_data_acked(C, s, ep):
    b = _eb(ep)
    ack = _full_seq(C[s, b + E_ASEQ], C[s, b + E_AW])
    start = C[s, b + E_SSEQ]
    return ack == start or ack == start + 1


@njit(cache=True)
def endpoint_size(C, s, ep):
    """Zeek's TCP_Endpoint::Size(): payload bytes from sequence numbers (SYN and FIN octets excluded)."""
    b = _eb(ep)
    pb = _eb(1 - ep)
    if (C[s, b + E_PREV] == SYN_SENT and C[s, b + E_ST] == RESET and C[s, pb + E_ST] == INACTIVE
            and not _no_data_acked(C, s, ep)):
        return 0
    last64 = _full_seq(C[s, b + E_LSEQ], C[s, b + E_SW])
    ack64 = _full_seq(C[s, b + E_ASEQ], C[s, b + E_AW])
    start = C[s, b + E_SSEQ]
    size = (last64 - start) if last64 > ack64 else (ack64 - start)
    if size != 0:
        size -= 1
    if C[s, b + E_FINC] > 0 and size != 0:
        size -= 1
    return size


# ---- reassembly model (content gaps) ----------------------------------------------

@njit(cache=True)
def _is_clean(C, s, ep):
    b = _eb(ep)
    st = C[s, b + E_ST]
    return st == ESTABLISHED or (st == CLOSED and C[s, b + E_PREV] == ESTABLISHED)


@njit(cache=True)
def _gap(C, H, s, ep, length):
    if _is_clean(C, s, ep) and _is_clean(C, s, 1 - ep):
        _scaled(C, H, s, ep, E_GC, E_GT, 71)   # 'G'
        C[s, K_MISSED] += length


@njit(cache=True)
def _drop_blocks(C, s, b, k):
    """Forget the first ``k`` out-of-order blocks of the endpoint at column ``b``."""
    n = C[s, b + E_NBLK]
    for j in range(k, n):
        C[s, b + E_BLK + 2 * (j - k)] = C[s, b + E_BLK + 2 * j]
        C[s, b + E_BLK + 2 * (j - k) + 1] = C[s, b + E_BLK + 2 * j + 1]
    C[s, b + E_NBLK] = n - k


@njit(cache=True)
def _absorb_blocks(C, s, b, reas):
    """Extend the in-order point ``reas`` over the blocks it reaches (and drop them); returns it."""
    n = C[s, b + E_NBLK]
    k = 0
    while k < n and C[s, b + E_BLK + 2 * k] <= reas:
        reas = max(reas, C[s, b + E_BLK + 2 * k + 1])
        k += 1
    if k:
        _drop_blocks(C, s, b, k)
    return reas


@njit(cache=True)
def _insert_block(C, s, b, start, end):
    """Hold ``[start, end)`` out of order: merged with the blocks it overlaps or touches.

    Past NBLK blocks, the two closest ones are joined: the hole between them is
    then never counted (Zeek keeps every block; NBLK holes at once are rare).
    """
    n = C[s, b + E_NBLK]
    j = 0
    while j < n and C[s, b + E_BLK + 2 * j + 1] < start:
        j += 1
    k = j
    while k < n and C[s, b + E_BLK + 2 * k] <= end:
        start = min(start, C[s, b + E_BLK + 2 * k])
        end = max(end, C[s, b + E_BLK + 2 * k + 1])
        k += 1
    # Blocks j..k-1 become the one block [start, end).
    shift = 1 - (k - j)
    if shift > 0:
        for m in range(n - 1, k - 1, -1):
            C[s, b + E_BLK + 2 * (m + 1)] = C[s, b + E_BLK + 2 * m]
            C[s, b + E_BLK + 2 * (m + 1) + 1] = C[s, b + E_BLK + 2 * m + 1]
    elif shift < 0:
        for m in range(k, n):
            C[s, b + E_BLK + 2 * (m + shift)] = C[s, b + E_BLK + 2 * m]
            C[s, b + E_BLK + 2 * (m + shift) + 1] = C[s, b + E_BLK + 2 * m + 1]
    C[s, b + E_BLK + 2 * j] = start
    C[s, b + E_BLK + 2 * j + 1] = end
    n += shift
    if n > NBLK:
        best, at = -1, 0
        for m in range(n - 1):
            hole = C[s, b + E_BLK + 2 * (m + 1)] - C[s, b + E_BLK + 2 * m + 1]
            if best < 0 or hole < best:
                best, at = hole, m
        C[s, b + E_BLK + 2 * at + 1] = C[s, b + E_BLK + 2 * (at + 1) + 1]
        for m in range(at + 2, n):
            C[s, b + E_BLK + 2 * (m - 1)] = C[s, b + E_BLK + 2 * m]
            C[s, b + E_BLK + 2 * (m - 1) + 1] = C[s, b + E_BLK + 2 * m + 1]
        n -= 1
    C[s, b + E_NBLK] = n


@njit(cache=True)
def _undelivered(C, H, s, ep, up_to):
    """Data up to ``up_to`` was acknowledged: each hole before it is a content gap (Zeek's Undelivered)."""
    b = _eb(ep)
    if up_to <= 2 and C[s, K_PARTIAL]:
        return
    reas = C[s, b + E_REAS]
    n = C[s, b + E_NBLK]
    k = 0
    while k < n and C[s, b + E_BLK + 2 * k] < up_to:
        ps, pe = C[s, b + E_BLK + 2 * k], C[s, b + E_BLK + 2 * k + 1]
        if pe > reas:
            if ps > reas:
                _gap(C, H, s, ep, ps - reas)
            reas = pe
        k += 1
    if k:
        _drop_blocks(C, s, b, k)
    if up_to > reas:
        _gap(C, H, s, ep, up_to - reas)
        reas = up_to
    C[s, b + E_REAS] = reas


@njit(cache=True)
def _ack_received(C, H, s, ep, seq):
    """The reassembler of endpoint ``ep`` learns that its data up to ``seq`` was acknowledged."""
    b = _eb(ep)
    if C[s, b + E_FINC] > 0 and seq >= C[s, b + E_FINSEQ]:
        seq = C[s, b + E_FINSEQ] - 1
    if seq <= C[s, b + E_TRIM]:
        return
    if seq > C[s, b + E_REAS]:
        _undelivered(C, H, s, ep, seq)
    C[s, b + E_TRIM] = seq


@njit(cache=True)
def _data_sent(C, s, ep, seq, length):
    b = _eb(ep)
    ack = _rel_seq_space(C, s, ep, C[s, b + E_ASEQ], C[s, b + E_AW])
    upper = seq + length
    if seq < ack:
        if upper <= ack:
            return
        seq = ack
    trim = C[s, b + E_TRIM]
    if upper <= trim:
        return
    if seq < trim:
        seq = trim
    reas = C[s, b + E_REAS]
    if seq <= reas:
        C[s, b + E_REAS] = _absorb_blocks(C, s, b, max(reas, upper))
    else:
        _insert_block(C, s, b, seq, upper)


# ---- TCP ------------------------------------------------------------------------

@njit(cache=True)
def _connection_closed(C, s, ep, t):
    b, pb = _eb(ep), _eb(1 - ep)
    if C[s, b + E_DIDC]:
        return
    C[s, b + E_DIDC] = 1
    complete = C[s, b + E_ST] == RESET or C[s, pb + E_DIDC] or C[s, pb + E_ST] == INACTIVE
    if complete and C[s, K_CLOSEDEL] < 0:
        C[s, K_CLOSEDEL] = C[s, K_LAST] + TCP_CLOSE_DELAY


@njit(cache=True)
def _multicast(hi, lo):
    """Whether the address (``hi``, ``lo``: IPv6, or IPv4-mapped) is multicast: 224.0.0.0/4, ff00::/8."""
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return (lo & 0xF0000000) == 0xE0000000
    return ((hi >> 56) & 0xFF) == 0xFF


@njit(cache=True)
def _flip(C, H, s):
    C[s, K_ORIG] = 1 - C[s, K_ORIG]
    C[s, K_OHI], C[s, K_RHI] = C[s, K_RHI], C[s, K_OHI]
    C[s, K_OLO], C[s, K_RLO] = C[s, K_RLO], C[s, K_OLO]
    C[s, K_OPORT], C[s, K_RPORT] = C[s, K_RPORT], C[s, K_OPORT]
    C[s, K_PARTIAL] = 0
    _add_hist(C, H, s, 94)   # '^'


@njit(cache=True)
def _tcp_packet(C, H, s, ep, t, seq, ack, flags, win, plen, full, iplen, chk_ok):
    peer = 1 - ep
    b, pb = _eb(ep), _eb(peer)
    is_orig = _is_orig(C, s, ep)
    if not chk_ok:
        _scaled(C, H, s, ep, E_CC, E_CT, 67)   # 'C'
        return
    syn, fin, rst, ackf = (flags & F_SYN) != 0, (flags & F_FIN) != 0, (flags & F_RST) != 0, (flags & F_ACK) != 0
    # SetPartialStatus
    if is_orig:
        if not C[s, b + E_SEEN]:
            C[s, K_PARTIAL] = 1 if ((not syn) or ackf) else 0
    else:
        if not C[s, b + E_SEEN] and not C[s, K_PARTIAL]:
            C[s, K_PARTIAL] = 0 if syn else 1
    seg_len = plen
    if syn:
        seg_len += 1
    if fin:
        seg_len += 1
    if rst:
        seg_len -= plen
    past = (seq + seg_len) & M32
    # init_endpoint
    st = C[s, b + E_ST]
    if st == INACTIVE:
        if syn:
            C[s, b + E_ASEQ] = seq
            C[s, b + E_SSEQ] = seq
        else:
            C[s, b + E_ASEQ] = (seq - 1) & M32
            C[s, b + E_SSEQ] = (seq - 1) & M32
        # A partial connection's first packet must not look like a retransmission.
        C[s, b + E_LSEQ] = past if syn else seq
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if syn and seq != C[s, b + E_SSEQ]:
            _init_seqs(C, s, ep, seq, seq, past)
    elif st == ESTABLISHED or st == PARTIAL:
        if syn:
            _init_seqs(C, s, ep, seq, seq, past)
    elif st == RESET:
        if syn and C[s, b + E_PREV] == INACTIVE:
            _init_seqs(C, s, ep, seq, seq, past)
    rel_seq, underflow = _relative(C, s, ep, seq, C[s, b + E_LSEQ], C[s, b + E_SW])
    # update_history
    bits = int(syn) + int(fin) + int(rst)
    if bits > 1:
        if fin and rst:
            _ep_check_hist(C, H, s, ep, HM_FINRST, 73)    # 'I'
        else:
            _ep_check_hist(C, H, s, ep, HM_MULTI, 81)     # 'Q'
    elif bits == 1:
        if syn:
            code = 72 if ackf else 83                      # 'H' / 'S'
            if _ep_check_hist(C, H, s, ep, HM_SYN, code) and rel_seq != C[s, b + E_HSYN]:
                _ep_add_hist(C, H, s, ep, code)
            C[s, b + E_HSYN] = rel_seq
        if fin:
            if _ep_check_hist(C, H, s, ep, HM_FIN, 70) and rel_seq + plen != C[s, b + E_HFIN]:
                _ep_add_hist(C, H, s, ep, 70)
            C[s, b + E_HFIN] = rel_seq + plen
        if rst:
            if _ep_check_hist(C, H, s, ep, HM_RST, 82) and rel_seq != C[s, b + E_HRST]:
                _ep_add_hist(C, H, s, ep, 82)
            C[s, b + E_HRST] = rel_seq
    else:
        if plen:
            _ep_check_hist(C, H, s, ep, HM_DATA, 68)       # 'D'
        elif ackf:
            _ep_check_hist(C, H, s, ep, HM_ACK, 65)        # 'A'
    # update_window: zero windows
    if win == 0 and not rst and C[s, pb + E_ST] != CLOSED and C[s, b + E_ST] != RESET:
        _scaled(C, H, s, ep, E_W0C, E_W0T, 87)             # 'W'
    if not (C[s, b + E_DIDC] and C[s, pb + E_DIDC]):
        C[s, K_LAST] = t
    if fin:
        C[s, b + E_FINC] += 1
        C[s, b + E_FINSEQ] = rel_seq + seg_len
    if rst:
        C[s, b + E_RSTC] += 1
    rel_ack = 0
    if ackf:
        if C[s, pb + E_ST] == INACTIVE:
            rel_ack = 1
            a1 = (ack - 1) & M32
            _init_seqs(C, s, peer, a1, a1, a1)
        else:
            rel_ack, aunder = _relative(C, s, peer, ack, C[s, pb + E_ASEQ], C[s, pb + E_AW])
            if aunder:
                rel_ack = 0
            elif not rst:
                d = _seq_delta(ack, C[s, pb + E_ASEQ])
                if ack == 0 and d > TOO_LARGE_SEQ_DELTA:
                    pass
                elif d > 0:
                    _update_ack_seq_raw(C, s, peer, ack)
    # update_last_seq
    delta_last = _seq_delta(past, C[s, b + E_LSEQ])
    if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and C[s, b + E_LSEQ] == ((C[s, b + E_SSEQ] + 1) & M32):
        _update_last_seq_raw(C, s, ep, past)
    elif C[s, b + E_ST] == RESET:
        pass
    elif delta_last > 0:
        _update_last_seq_raw(C, s, ep, past)
    elif plen > 0:
        _scaled(C, H, s, ep, E_RXC, E_RXT, 84)             # 'T'
    # UpdateStateMachine
    do_close = False
    st = C[s, b + E_ST]
    pst = C[s, pb + E_ST]
    if st == INACTIVE:
        if syn:
            if is_orig:
                if ackf:
                    _set_state(C, s, ep, SYN_ACK_SENT)
                else:
                    _set_state(C, s, ep, SYN_SENT)
                if C[s, K_ATTEMPT] < 0:
                    C[s, K_ATTEMPT] = t + TCP_ATTEMPT_DELAY
            else:
                if ackf:
                    pass
                elif pst == SYN_ACK_SENT and seq == C[s, b + E_SSEQ]:
                    _flip(C, H, s)
                    _set_state(C, s, peer, ESTABLISHED)
                    C[s, b + E_SEEN] = 1
                    is_orig = True
                if C[s, pb + E_ST] == SYN_SENT:
                    _set_state(C, s, peer, ESTABLISHED)
                _set_state(C, s, ep, ESTABLISHED)
        if fin:
            _set_state(C, s, ep, CLOSED)
            do_close = True
        if rst:
            _set_state(C, s, ep, RESET)
            do_close = True
        if C[s, b + E_ST] == INACTIVE:
            if (not is_orig) and plen == 0 and C[s, _eb(C[s, K_ORIG]) + E_ST] == SYN_SENT:
                pass
            elif ackf and C[s, pb + E_ST] == ESTABLISHED:
                _set_state(C, s, ep, ESTABLISHED)
                C[s, K_PARTIAL] = 0
                C[s, b + E_SEEN] = 1
            else:
                _set_state(C, s, ep, PARTIAL)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fin:
            _set_state(C, s, ep, CLOSED)
            do_close = True
        if rst:
            _set_state(C, s, ep, RESET)
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if syn:
            if st == PARTIAL and pst == INACTIVE and not ackf:
                _set_state(C, s, ep, SYN_SENT)
        if fin and not rst:
            _set_state(C, s, ep, CLOSED)
            if C[s, pb + E_ST] == RESET and C[s, pb + E_PREV] == CLOSED:
                _set_state(C, s, peer, CLOSED)
            do_close = True
        if rst:
            _set_state(C, s, ep, RESET)
            do_close = True
    elif st == CLOSED:
        if rst and C[s, pb + E_ST] != CLOSED:
            _set_state(C, s, ep, RESET)
            if not C[s, b + E_DIDC]:
                do_close = True
    # RESET: nothing changes.
    if ackf:
        _ack_received(C, H, s, peer, rel_ack)
    rel_data = rel_seq + 1 if syn else rel_seq
    if plen > 0 and full and not rst and not underflow:
        _data_sent(C, s, ep, rel_data, plen)
    C[s, b + E_SEEN] = 1
    if do_close:
        _connection_closed(C, s, ep, t)
    C[s, b + E_PKTS] += 1
    C[s, b + E_IPB] += iplen


# ---- connection table -----------------------------------------------------------

@njit(cache=True)
def expired(C, s, now):
    """Whether Zeek would have removed connection ``s`` by network time ``now``."""
    proto = C[s, K_PROTO]
    last = C[s, K_LAST]
    if proto == UDP:
        if now >= last + UDP_INACTIVITY:
            return True
        if C[s, K_DNS]:
            # Zeek's DNS analyzer (attached by port) expires an idle UDP session itself: its
            # timer ticks every dns_session_timeout from the start and removes the connection
            # at the first tick at least dns_session_timeout - 1 s after the last packet.
            start = C[s, K_START]
            ticks = (last + DNS_SESSION_TIMEOUT - NS - start + DNS_SESSION_TIMEOUT - 1) // DNS_SESSION_TIMEOUT
            if ticks < 1:
                ticks = 1
            return now >= start + ticks * DNS_SESSION_TIMEOUT
        return False
    if proto == ICMP:
        return now >= last + ICMP_INACTIVITY
    if C[s, K_CLOSEDEL] >= 0 and now >= C[s, K_CLOSEDEL]:
        return True
    o = _eb(C[s, K_ORIG])
    r = _eb(1 - C[s, K_ORIG])
    ost, rst_ = C[s, o + E_ST], C[s, r + E_ST]
    if C[s, K_ATTEMPT] >= 0 and now >= C[s, K_ATTEMPT] and (ost == SYN_SENT or ost == SYN_ACK_SENT) \
            and rst_ == INACTIVE:
        return True
    if now > last + TCP_LINGER:
        if C[s, o + E_DIDC] or C[s, r + E_DIDC]:
            if (C[s, o + E_DIDC] and C[s, r + E_DIDC]) or ost == RESET or rst_ == RESET \
                    or ost == INACTIVE or rst_ == INACTIVE:
                return True
        if ost == INACTIVE and rst_ == INACTIVE:
            return True
    return now >= last + TCP_INACTIVITY


@njit(cache=True)
def _is_reuse(C, s, seq, flags):
    """Zeek's TCP IsReuse for a SYN (or a SYN-ACK of a half connection) on a known tuple."""
    if not (flags & F_SYN):
        return False
    o = C[s, K_ORIG]
    conn_orig = o
    if flags & F_ACK:
        if C[s, _eb(o) + E_ST] != INACTIVE:
            return False
        conn_orig = 1 - o
    closed = C[s, _eb(0) + E_DIDC] or C[s, _eb(1) + E_DIDC]
    if not closed:
        if seq == C[s, _eb(conn_orig) + E_SSEQ]:
            return False
        r = _eb(1 - o)
        if (not (flags & F_ACK)) and C[s, _eb(conn_orig) + E_ST] == SYN_ACK_SENT \
                and C[s, r + E_ST] == INACTIVE and seq == C[s, r + E_SSEQ]:
            return False
    return True


@njit(cache=True)
def _init_slot(C, H, s):
    C[s, :] = 0
    C[s, K_CLOSEDEL] = -1
    C[s, K_ATTEMPT] = -1
    C[s, K_INUSE] = 1
    for ep in range(2):
        b = _eb(ep)
        C[s, b + E_SIZE] = -1
        C[s, b + E_RXT] = 1
        C[s, b + E_W0T] = 1
        C[s, b + E_GT] = 1
        C[s, b + E_CT] = 1
        C[s, b + E_REAS] = 1
        C[s, b + E_TRIM] = 1


@njit(cache=True)
def process_events(EV, EX, pick, start, C, H, table, free, n_free, done, n_done, serial, likely_tcp, likely_udp,
                   uid_seed, out_serial, out_uida, out_uidb):
    """Run the events of ``EV`` and ``EX`` (``int64[., EV_N]`` each) through the connection table.

    The events run in file order: ``pick`` (``int64[n]``, ``n`` = the rows of
    both) names them in that order, ``p >= 0`` row ``p`` of ``EV``, ``p < 0``
    row ``-1 - p`` of ``EX`` (a batch's own events and those of its
    reassembled datagrams, interleaved without copying them into one matrix);
    an empty ``pick`` runs ``EV`` as it is.  Processing starts at position
    ``start`` and stops early, before the event at the returned position, when
    no free slot is left: the caller adds slots and calls again from there
    (an event creates at most one connection, and nothing of an event is done
    before that check), so the table needs room for the live connections only,
    not one slot per event of the batch.

    ``free[:n_free]`` are free slots; slots of connections that ended are
    appended to ``done``.  For the event at position ``i``,
    ``out_serial[i]``/``out_uida[i]``/``out_uidb[i]`` receive its
    connection's serial number and uid hash (serial -1: no connection).
    Returns ``(position reached, n_free, n_done, serial)``.
    """
    n = EV.shape[0] + EX.shape[0]
    for i in range(start, n):
        if n_free == 0:
            return i, n_free, n_done, serial
        if pick.shape[0] == 0:
            ev = EV[i]
        else:
            p = pick[i]
            ev = EV[p] if p >= 0 else EX[-1 - p]
        t = ev[V_TS]
        proto = ev[V_PROTO]
        shi, slo, dhi, dlo = ev[V_SHI], ev[V_SLO], ev[V_DHI], ev[V_DLO]
        sp, dp = ev[V_SPORT], ev[V_DPORT]
        oneway = ev[V_ONEWAY]
        # canonical key
        if oneway or (shi < dhi) or (shi == dhi and (slo < dlo or (slo == dlo and sp <= dp))):
            a_hi, a_lo, b_hi, b_lo, pa, pb = shi, slo, dhi, dlo, sp, dp
        else:
            a_hi, a_lo, b_hi, b_lo, pa, pb = dhi, dlo, shi, slo, dp, sp
        ports = (pa << 16) | pb
        pk = (ev[V_IPPROTO] << 1) | oneway
        h = _mix(_mix(_mix(_mix(_mix(np.int64(pk), a_hi), a_lo), b_hi), b_lo), ports)
        # lookup with probing
        s = -1
        probe = h
        while True:
            if probe in table:
                cand = table[probe]
                if (C[cand, K_CK0] == a_hi and C[cand, K_CK0 + 1] == a_lo and C[cand, K_CK0 + 2] == b_hi
                        and C[cand, K_CK0 + 3] == b_lo and C[cand, K_CK0 + 4] == ports
                        and C[cand, K_CK0 + 5] == pk):
                    s = cand
                    break
                probe = probe + 1
            else:
                break
        if s >= 0:
            new = expired(C, s, t)
            if not new and proto == TCP and _is_reuse(C, s, ev[V_SEQ], ev[V_FLAGS]):
                new = True
            if new:
                done[n_done] = s
                n_done += 1
                C[s, K_INUSE] = 2    # ended, waiting for output
                s = -1
        else:
            probe = h
            while probe in table:
                probe = probe + 1
        if s >= 0:
            C[s, K_CUR] = ev[V_FRAME]
        else:
            n_free -= 1
            s = free[n_free]
            _init_slot(C, H, s)
            C[s, K_CUR] = ev[V_FRAME]
            table[probe] = s
            C[s, K_KEY] = probe
            C[s, K_CK0] = a_hi
            C[s, K_CK0 + 1] = a_lo
            C[s, K_CK0 + 2] = b_hi
            C[s, K_CK0 + 3] = b_lo
            C[s, K_CK0 + 4] = ports
            C[s, K_CK0 + 5] = pk
            C[s, K_SERIAL] = serial
            serial += 1
            C[s, K_PROTO] = proto
            C[s, K_IPPROTO] = ev[V_IPPROTO]
            C[s, K_VER] = ev[V_VER]
            C[s, K_OHI], C[s, K_OLO], C[s, K_RHI], C[s, K_RLO] = shi, slo, dhi, dlo
            C[s, K_OPORT], C[s, K_RPORT] = sp, dp
            C[s, K_START] = t
            C[s, K_LAST] = t
            C[s, K_FRAME] = ev[V_FRAME]
            u = _mix(_mix(h, ev[V_FRAME]), uid_seed)
            C[s, K_UIDA] = u
            C[s, K_UIDB] = _mix(u, np.int64(0x5DEECE66D)) & M32
            C[s, K_ORIG] = 0
            flip = False
            if proto == TCP:
                fl = ev[V_FLAGS]
                if (fl & F_SYN) == 0 or (fl & F_ACK) != 0:
                    if (fl & F_SYN) != 0:
                        flip = True
                    elif likely_tcp[sp]:
                        flip = (not likely_tcp[dp]) or sp < dp
            elif proto == UDP:
                flip = likely_udp[sp] and not likely_udp[dp]
            if flip and not ev[V_BCAST]:
                _flip(C, H, s)
            if proto == UDP:
                rp = C[s, K_RPORT]
                C[s, K_DNS] = rp == 53 or rp == 137 or rp == 5353 or rp == 5355
        # which endpoint sent it
        if shi == C[s, K_OHI] and slo == C[s, K_OLO] and sp == C[s, K_OPORT]:
            ep = C[s, K_ORIG]
        else:
            ep = 1 - C[s, K_ORIG]
        b = _eb(ep)
        if proto == TCP:
            _tcp_packet(C, H, s, ep, t, ev[V_SEQ], ev[V_ACK], ev[V_FLAGS], ev[V_WIN],
                        ev[V_PLEN], ev[V_FULL], ev[V_IPLEN], ev[V_CHKOK])
        elif proto == UDP:
            C[s, b + E_PKTS] += 1
            C[s, b + E_IPB] += ev[V_IPLEN]
            if not ev[V_CHKOK]:
                _scaled(C, H, s, ep, E_CC, E_CT, 67)
            else:
                C[s, K_LAST] = t
                if _is_orig(C, s, ep):
                    _check_hist(C, H, s, UDP_ORIG_DATA, 68)
                else:
                    _check_hist(C, H, s, UDP_RESP_DATA, 100)
                ln = ev[V_PLEN]
                if C[s, b + E_SIZE] < 0:
                    C[s, b + E_SIZE] = ln
                else:
                    C[s, b + E_SIZE] += ln
                if C[s, K_DNS] == 1 and ev[V_DNSQR] >= 0:
                    # Zeek's DNS analyzer: when the first message it parses is a response (QR 1)
                    # sent by the originator, the roles are flipped, unless the responder is a
                    # multicast address (DNS_Interpreter::ParseMessage, first_message).
                    C[s, K_DNS] = 2
                    if ev[V_DNSQR] == 1 and _is_orig(C, s, ep) and not _multicast(C[s, K_RHI],
                                                                                     C[s, K_RLO]):
                        _flip(C, H, s)
        else:
            if ev[V_CHKOK]:
                C[s, K_LAST] = t
                ln = ev[V_PLEN]
                if C[s, b + E_SIZE] < 0:
                    C[s, b + E_SIZE] = ln
                else:
                    C[s, b + E_SIZE] += ln
                if ev[V_FULL]:
                    C[s, b + E_PKTS] += 1
                    C[s, b + E_IPB] += ev[V_IPLEN]
        # tunnel parents
        kind = ev[V_PKIND]
        if kind:
            if kind == 1:
                pa_, pb_ = out_uida[i - 1], out_uidb[i - 1]
            else:
                pa_, pb_ = ev[V_PA], ev[V_PB]
            npar = C[s, K_NPAR]
            if npar == 0:
                C[s, K_P1A], C[s, K_P1B] = pa_, pb_
                C[s, K_NPAR] = 1
            elif npar == 1 and not (C[s, K_P1A] == pa_ and C[s, K_P1B] == pb_):
                C[s, K_P2A], C[s, K_P2B] = pa_, pb_
                C[s, K_NPAR] = 2
        out_serial[i] = C[s, K_SERIAL]
        out_uida[i] = C[s, K_UIDA]
        out_uidb[i] = C[s, K_UIDB]
    return n, n_free, n_done, serial


@njit(cache=True)
def sweep(C, table, now, done, n_done, everything):
    """Move every live connection that has expired by ``now`` (or all, at the end) to ``done``."""
    for s in range(C.shape[0]):
        if C[s, K_INUSE] == 1 and (everything or expired(C, s, now)):
            done[n_done] = s
            n_done += 1
            C[s, K_INUSE] = 2
    return n_done


@njit(cache=True)
def release(C, table, slots, free, n_free):
    """Forget the ended connections in ``slots`` and return their slots to the free list."""
    for j in range(slots.shape[0]):
        s = slots[j]
        key = C[s, K_KEY]
        if key in table and table[key] == s:
            del table[key]
        C[s, K_INUSE] = 0
        free[n_free] = s
        n_free += 1
    return n_free


@njit(cache=True)
def endpoint_summary(C, slots):
    """Per slot: orig/resp size, state, pkts, ip bytes (int64[k, 8])."""
    out = np.zeros((slots.shape[0], 8), dtype=np.int64)
    for j in range(slots.shape[0]):
        s = slots[j]
        o = C[s, K_ORIG]
        for k in range(2):
            ep = o if k == 0 else 1 - o
            b = _eb(ep)
            if C[s, K_PROTO] == TCP:
                out[j, k] = endpoint_size(C, s, ep)
            else:
                out[j, k] = max(C[s, b + E_SIZE], 0)
            out[j, 2 + k] = C[s, b + E_ST] if C[s, K_PROTO] == TCP else (1 if C[s, b + E_SIZE] >= 0 else 0)
            out[j, 4 + k] = C[s, b + E_PKTS]
            out[j, 6 + k] = C[s, b + E_IPB]
    return out


@njit(cache=True)
def _mix_np(a_hi, a_lo, b_hi, b_lo):
    """Synthetic uid hashes (two int64 arrays) for IP tunnels, from their outer address pairs."""
    n = a_hi.shape[0]
    x = np.empty(n, dtype=np.int64)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        if a_hi[i] < b_hi[i] or (a_hi[i] == b_hi[i] and a_lo[i] <= b_lo[i]):
            h = _mix(_mix(_mix(_mix(np.int64(0x7475), a_hi[i]), a_lo[i]), b_hi[i]), b_lo[i])
        else:
            h = _mix(_mix(_mix(_mix(np.int64(0x7475), b_hi[i]), b_lo[i]), a_hi[i]), a_lo[i])
        x[i] = h
        y[i] = _mix(h, np.int64(0x5DEECE66D)) & M32
    return x, y
