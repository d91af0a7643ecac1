"""Query/response pairing with Zeek's rules, in numba.

Follows ``base/protocols/dns/main.zeek`` (``set_session``, ``do_reply``,
``dns_end``, ``finalize_dns``) and the connection life of Zeek's DNS analyzer:

- A connection is a 5-tuple *instance*: the first packet creates it, its
  sender is the originator unless it comes from a likely server port and goes
  to one that is not (Zeek's UDP ``flip_roles``); the first DNS message, if a
  response sent by the originator to a non-multicast address, flips the roles
  (``DNS_Interpreter::ParseMessage``).  A UDP instance ends when its
  ``dns_session_timeout`` timer (10 s, re-armed from the firing time) finds it
  idle for 9 s, as ``DNS_Analyzer::ExpireTimer`` does, on the network time of
  the packet that fires it; the next packet of the 5-tuple starts a new
  instance.  TCP instances end when their stream is closed, and all at the end.
- Per instance: one fast-path pending query, tables of pending queries and
  of pending replies keyed by transaction id, each a FIFO queue; a query takes
  the oldest pending reply with its id, a reply the fast-path query or the
  oldest pending query with its id; otherwise the message starts a new
  session and waits.  A table holding more than ``max_pending_query_ids`` ids
  is logged and cleared when a new id arrives, a queue longer than
  ``max_pending_msgs`` likewise.  Messages to a multicast responder are logged
  unpaired.  A session is written when it has seen both a query and a reply;
  pending ones are written when the instance ends.

State lives in a few ``int64`` arrays (sized by the caller so that nothing
grows inside numba) and one typed dict; the functions here change them in
place.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.typed import Dict

from dissectors import dns as wire

# Tuple (5-tuple / TCP connection key) columns.
TP_INST, TP_LO_MC, TP_HI_MC, TP_LO_LIKELY, TP_HI_LIKELY, TP_TCP = range(6)
NTP = 6
# Instance (connection) columns.
(IN_TUPLE, IN_ORIG_LO, IN_FIRST, IN_LAST, IN_CUR, IN_PQ, IN_QCOUNT, IN_RCOUNT, IN_QHEAD, IN_RHEAD,
 IN_QTAIL, IN_RTAIL, IN_ALIVE, IN_CREATED, IN_FLIPPED, IN_HASQ) = range(16)
NIN = 16
# Pending-table entry columns (one entry per (instance, table, transaction id)).
EN_KEY, EN_HEAD, EN_TAIL, EN_LEN, EN_PREV, EN_NEXT, EN_INST, EN_TABLE = range(8)
NEN = 8
# Session (Zeek's DNS::Info) columns.
(S_INST, S_TS, S_TID, S_RTT, S_QREC, S_AREC, S_QCLASS, S_QTYPE, S_RCODE, S_AA, S_TC, S_RD, S_RA, S_Z,
 S_REJ, S_OPCODE, S_NETBIOS, S_SAWQ, S_SAWR, S_FRAMEQ, S_FRAMER, S_QNEXT) = range(22)
NSES = 22
# Counters.
C_INST, C_SES, C_ENT, C_HEAP, C_LOG, C_NET = range(6)
NC = 6

# Event kinds.
EV_MSG, EV_NODELIVER, EV_CLOSE, EV_TCPMSG, EV_TCPFLUSH = range(5)

TABLE_QUERIES, TABLE_REPLIES = 0, 1
DNS_SESSION_TIMEOUT_NS = 10_000_000_000
MAX_PENDING_MSGS = 50
MAX_PENDING_QUERY_IDS = 50


def new_table():
    """The typed dict of pending-table entries."""
    return Dict.empty(key_type=types.int64, value_type=types.int64)


@numba.njit(cache=True, inline="always")
def _key(inst, table, tid):
    return inst * 131072 + table * 65536 + tid


@numba.njit(cache=True)
def _log(LOG, CNT, s):
    LOG[CNT[C_LOG]] = s
    CNT[C_LOG] += 1


@numba.njit(cache=True)
def _heap_push(HEAP, CNT, t, inst):
    i = CNT[C_HEAP]
    CNT[C_HEAP] += 1
    HEAP[i, 0] = t
    HEAP[i, 1] = inst
    while i > 0:
        parent = (i - 1) // 2
        if HEAP[parent, 0] <= HEAP[i, 0]:
            break
        for c in range(2):
            tmp = HEAP[parent, c]
            HEAP[parent, c] = HEAP[i, c]
            HEAP[i, c] = tmp
        i = parent


@numba.njit(cache=True)
def _heap_pop(HEAP, CNT):
    t = HEAP[0, 0]
    inst = HEAP[0, 1]
    n = CNT[C_HEAP] - 1
    CNT[C_HEAP] = n
    HEAP[0, 0] = HEAP[n, 0]
    HEAP[0, 1] = HEAP[n, 1]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        child = left
        if left + 1 < n and HEAP[left + 1, 0] < HEAP[left, 0]:
            child = left + 1
        if HEAP[i, 0] <= HEAP[child, 0]:
            break
        for c in range(2):
            tmp = HEAP[child, c]
            HEAP[child, c] = HEAP[i, c]
            HEAP[i, c] = tmp
        i = child
    return t, inst


@numba.njit(cache=True)
def _new_session(SES, CNT, inst, tid, t):
    s = CNT[C_SES]
    CNT[C_SES] += 1
    for c in range(NSES):
        SES[s, c] = 0
    SES[s, S_INST] = inst
    SES[s, S_TS] = t
    SES[s, S_TID] = tid
    SES[s, S_RTT] = -1
    SES[s, S_QREC] = -1
    SES[s, S_AREC] = -1
    SES[s, S_QCLASS] = -1
    SES[s, S_QTYPE] = -1
    SES[s, S_RCODE] = -1
    SES[s, S_OPCODE] = -1
    SES[s, S_FRAMEQ] = -1
    SES[s, S_FRAMER] = -1
    SES[s, S_QNEXT] = -1
    return s


@numba.njit(cache=True)
def _unlink_entry(INS, ENT, table, e):
    inst = ENT[e, EN_INST]
    tbl = ENT[e, EN_TABLE]
    prev = ENT[e, EN_PREV]
    nxt = ENT[e, EN_NEXT]
    if prev >= 0:
        ENT[prev, EN_NEXT] = nxt
    else:
        INS[inst, IN_QHEAD + tbl] = nxt
    if nxt >= 0:
        ENT[nxt, EN_PREV] = prev
    else:
        INS[inst, IN_QTAIL + tbl] = prev
    INS[inst, IN_QCOUNT + tbl] -= 1
    table.pop(ENT[e, EN_KEY])


@numba.njit(cache=True)
def _pop(INS, ENT, SES, table, e):
    s = ENT[e, EN_HEAD]
    ENT[e, EN_HEAD] = SES[s, S_QNEXT]
    SES[s, S_QNEXT] = -1
    ENT[e, EN_LEN] -= 1
    if ENT[e, EN_LEN] == 0:
        ENT[e, EN_TAIL] = -1
        _unlink_entry(INS, ENT, table, e)
    return s


@numba.njit(cache=True)
def _log_queue(ENT, SES, LOG, CNT, e):
    s = ENT[e, EN_HEAD]
    while s >= 0:
        _log(LOG, CNT, s)
        nxt = SES[s, S_QNEXT]
        SES[s, S_QNEXT] = -1
        s = nxt
    ENT[e, EN_HEAD] = -1
    ENT[e, EN_TAIL] = -1
    ENT[e, EN_LEN] = 0


@numba.njit(cache=True)
def _log_table(INS, ENT, SES, LOG, CNT, table, inst, tbl):
    e = INS[inst, IN_QHEAD + tbl]
    while e >= 0:
        nxt = ENT[e, EN_NEXT]
        _log_queue(ENT, SES, LOG, CNT, e)
        table.pop(ENT[e, EN_KEY])
        e = nxt
    INS[inst, IN_QHEAD + tbl] = -1
    INS[inst, IN_QTAIL + tbl] = -1
    INS[inst, IN_QCOUNT + tbl] = 0


@numba.njit(cache=True)
def _enqueue(INS, ENT, SES, LOG, CNT, table, inst, tbl, tid, s, max_ids, max_msgs):
    key = _key(inst, tbl, tid)
    e = table.get(key, -1)
    if e < 0:
        if INS[inst, IN_QCOUNT + tbl] > max_ids:
            _log_table(INS, ENT, SES, LOG, CNT, table, inst, tbl)
        e = CNT[C_ENT]
        CNT[C_ENT] += 1
        ENT[e, EN_KEY] = key
        ENT[e, EN_HEAD] = -1
        ENT[e, EN_TAIL] = -1
        ENT[e, EN_LEN] = 0
        ENT[e, EN_INST] = inst
        ENT[e, EN_TABLE] = tbl
        ENT[e, EN_NEXT] = -1
        tail = INS[inst, IN_QTAIL + tbl]
        ENT[e, EN_PREV] = tail
        if tail >= 0:
            ENT[tail, EN_NEXT] = e
        else:
            INS[inst, IN_QHEAD + tbl] = e
        INS[inst, IN_QTAIL + tbl] = e
        INS[inst, IN_QCOUNT + tbl] += 1
        table[key] = e
    elif ENT[e, EN_LEN] > max_msgs:
        _log_queue(ENT, SES, LOG, CNT, e)
    tail = ENT[e, EN_TAIL]
    if tail >= 0:
        SES[tail, S_QNEXT] = s
    else:
        ENT[e, EN_HEAD] = s
    ENT[e, EN_TAIL] = s
    SES[s, S_QNEXT] = -1
    ENT[e, EN_LEN] += 1


@numba.njit(cache=True)
def _finalize(INS, ENT, SES, LOG, CNT, table, inst):
    """Zeek's finalize_dns: write the fast-path query, then pending queries, then pending replies."""
    if INS[inst, IN_PQ] >= 0:
        _log(LOG, CNT, INS[inst, IN_PQ])
        INS[inst, IN_PQ] = -1
    _log_table(INS, ENT, SES, LOG, CNT, table, inst, TABLE_QUERIES)
    _log_table(INS, ENT, SES, LOG, CNT, table, inst, TABLE_REPLIES)
    INS[inst, IN_ALIVE] = 0
    INS[inst, IN_CUR] = -1


@numba.njit(cache=True)
def _fire_timers(TUP, INS, ENT, SES, HEAP, LOG, CNT, table, net, timeout):
    while CNT[C_HEAP] > 0 and HEAP[0, 0] <= net:
        _, inst = _heap_pop(HEAP, CNT)
        if INS[inst, IN_ALIVE] == 0:
            continue
        if net - INS[inst, IN_LAST] >= timeout - 1_000_000_000:
            _finalize(INS, ENT, SES, LOG, CNT, table, inst)
            tup = INS[inst, IN_TUPLE]
            if TUP[tup, TP_INST] == inst:
                TUP[tup, TP_INST] = -1
        else:
            _heap_push(HEAP, CNT, net + timeout, inst)


@numba.njit(cache=True)
def _set_session(INS, ENT, SES, LOG, CNT, table, inst, mc, qr, tid, rcode, qd, opcode, netbios, t, frame,
                 max_ids, max_msgs):
    is_query = qr == 0
    if mc:
        s = _new_session(SES, CNT, inst, tid, t)
        SES[s, S_SAWQ] = 1
        SES[s, S_SAWR] = 1
    elif is_query:
        e = table.get(_key(inst, TABLE_REPLIES, tid), -1)
        if e >= 0 and ENT[e, EN_LEN] > 0:
            s = _pop(INS, ENT, SES, table, e)
        else:
            s = _new_session(SES, CNT, inst, tid, t)
            if INS[inst, IN_PQ] < 0:
                INS[inst, IN_PQ] = s
            else:
                INS[inst, IN_HASQ] = 1
                _enqueue(INS, ENT, SES, LOG, CNT, table, inst, TABLE_QUERIES, tid, s, max_ids, max_msgs)
    else:
        pq = INS[inst, IN_PQ]
        if pq >= 0 and SES[pq, S_TID] == tid:
            s = pq
            INS[inst, IN_PQ] = -1
            if INS[inst, IN_HASQ]:
                e = table.get(_key(inst, TABLE_QUERIES, tid), -1)
                if e >= 0 and ENT[e, EN_LEN] > 0:
                    INS[inst, IN_PQ] = _pop(INS, ENT, SES, table, e)
                else:
                    e = INS[inst, IN_QHEAD]
                    while e >= 0 and ENT[e, EN_LEN] == 0:
                        e = ENT[e, EN_NEXT]
                    if e >= 0:
                        INS[inst, IN_PQ] = _pop(INS, ENT, SES, table, e)
        else:
            e = table.get(_key(inst, TABLE_QUERIES, tid), -1)
            if e >= 0 and ENT[e, EN_LEN] > 0:
                s = _pop(INS, ENT, SES, table, e)
            else:
                s = _new_session(SES, CNT, inst, tid, t)
                _enqueue(INS, ENT, SES, LOG, CNT, table, inst, TABLE_REPLIES, tid, s, max_ids, max_msgs)
    INS[inst, IN_CUR] = s
    if not is_query:
        SES[s, S_RCODE] = rcode
        if rcode != 0 and qd == 0:
            SES[s, S_REJ] = 1
    SES[s, S_OPCODE] = opcode
    SES[s, S_NETBIOS] = 1 if netbios else 0
    if is_query:
        if SES[s, S_FRAMEQ] < 0:
            SES[s, S_FRAMEQ] = frame
    elif SES[s, S_FRAMER] < 0:
        SES[s, S_FRAMER] = frame


@numba.njit(cache=True)
def _event(TUP, INS, ENT, SES, HEAP, LOG, CNT, table, rec_session, hdr, rec, netbios, rec_off, m_inst, m_orig,
           kind, tup, src_lo, m, t, frame, timeout, max_ids, max_msgs):
    inst = TUP[tup, TP_INST]
    if inst >= 0 and INS[inst, IN_ALIVE] == 0:
        inst = -1
    if kind == EV_CLOSE:
        if inst >= 0:
            _finalize(INS, ENT, SES, LOG, CNT, table, inst)
            TUP[tup, TP_INST] = -1
        return
    if inst < 0:
        inst = CNT[C_INST]
        CNT[C_INST] += 1
        for c in range(NIN):
            INS[inst, c] = -1
        INS[inst, IN_TUPLE] = tup
        if TUP[tup, TP_TCP]:
            orig_lo = 1
        else:
            src_likely = TUP[tup, TP_LO_LIKELY] if src_lo else TUP[tup, TP_HI_LIKELY]
            dst_likely = TUP[tup, TP_HI_LIKELY] if src_lo else TUP[tup, TP_LO_LIKELY]
            orig_lo = src_lo
            if src_likely and not dst_likely:
                orig_lo = 1 - src_lo
        INS[inst, IN_ORIG_LO] = orig_lo
        INS[inst, IN_FIRST] = 1
        INS[inst, IN_QCOUNT] = 0
        INS[inst, IN_RCOUNT] = 0
        INS[inst, IN_ALIVE] = 1
        INS[inst, IN_CREATED] = t
        INS[inst, IN_FLIPPED] = 0
        INS[inst, IN_HASQ] = 0
        TUP[tup, TP_INST] = inst
        if not TUP[tup, TP_TCP]:
            _heap_push(HEAP, CNT, t + timeout, inst)
    INS[inst, IN_LAST] = t
    if kind == EV_NODELIVER:
        return
    is_orig = src_lo == INS[inst, IN_ORIG_LO]
    m_inst[m] = inst
    m_orig[m] = 1 if is_orig else 0
    if hdr[m, wire.H_STATUS] != wire.ST_PARSED:
        return
    qr = hdr[m, wire.H_QR]
    if INS[inst, IN_FIRST] == 1 and qr == 1 and is_orig and kind != EV_TCPFLUSH:
        resp_mc = TUP[tup, TP_HI_MC] if INS[inst, IN_ORIG_LO] == 1 else TUP[tup, TP_LO_MC]
        if not resp_mc:
            INS[inst, IN_ORIG_LO] = 1 - INS[inst, IN_ORIG_LO]
            INS[inst, IN_FLIPPED] = 1
            is_orig = False
            m_orig[m] = 0
    INS[inst, IN_FIRST] = 0
    opcode = hdr[m, wire.H_OPCODE]
    tracked = opcode == 0 or opcode == 4 or opcode == 5
    flags = hdr[m, wire.H_FLAGS]
    tid = hdr[m, wire.H_ID]
    if tracked:
        mc = TUP[tup, TP_HI_MC] if INS[inst, IN_ORIG_LO] == 1 else TUP[tup, TP_LO_MC]
        _set_session(INS, ENT, SES, LOG, CNT, table, inst, mc, qr, tid, hdr[m, wire.H_RCODE], hdr[m, wire.H_QD],
                     opcode, netbios[m], t, frame, max_ids, max_msgs)
    cur = INS[inst, IN_CUR]
    if hdr[m, wire.H_TOO_LARGE] == 0:
        no_records = hdr[m, wire.H_AN] == 0 and hdr[m, wire.H_NS] == 0 and hdr[m, wire.H_AR] == 0
        for r in range(hdr[m, wire.H_REC0], hdr[m, wire.H_REC1]):
            if rec[r, wire.R_EVENT] == 0:
                continue
            sect = rec[r, wire.R_SECT]
            if sect == wire.SECT_QUESTION:
                if qr == 0:
                    if tracked and cur >= 0:      # dns_request
                        SES[cur, S_RD] = (flags >> 8) & 1
                        SES[cur, S_TC] = (flags >> 9) & 1
                        SES[cur, S_Z] = (flags >> 4) & 7
                        SES[cur, S_QCLASS] = rec[r, wire.R_CLASS]
                        SES[cur, S_QTYPE] = rec[r, wire.R_TYPE]
                        SES[cur, S_QREC] = rec_off + r
                elif no_records and cur >= 0:    # dns_rejected
                    SES[cur, S_REJ] = 1
                continue
            if qr == 0 or cur < 0:
                continue
            if sect == wire.SECT_ANSWER or sect == wire.SECT_PREREQ or sect == wire.SECT_UPDATE:
                if tracked:                       # DNS::do_reply
                    if SES[cur, S_QREC] < 0 and SES[cur, S_AREC] < 0:
                        SES[cur, S_AREC] = rec_off + r
                    SES[cur, S_AA] = (flags >> 10) & 1
                    SES[cur, S_RA] = (flags >> 7) & 1
                    if SES[cur, S_RTT] < 0:
                        rtt = t - SES[cur, S_TS]
                        if rtt != 0:
                            SES[cur, S_RTT] = rtt
                    rec_session[rec_off + r] = cur
            elif opcode == 0:                     # auth-addl's do_reply
                rec_session[rec_off + r] = cur
    if hdr[m, wire.H_NO_END] == 0:                # dns_end
        cur = INS[inst, IN_CUR]
        if cur >= 0:
            if qr == 1:
                SES[cur, S_SAWR] = 1
            else:
                SES[cur, S_SAWQ] = 1
            if SES[cur, S_SAWR] == 1 and SES[cur, S_SAWQ] == 1:
                _log(LOG, CNT, cur)
                INS[inst, IN_CUR] = -1


@numba.njit(cache=True)
def pair(TUP, INS, ENT, SES, HEAP, LOG, CNT, table, rec_session, pkt_ts, ev_pkt, ev_kind, ev_tuple, ev_src_lo,
         ev_msg, ev_ts, ev_frame, hdr, rec, netbios, rec_off, m_inst, m_orig, advance, timeout, max_ids,
         max_msgs):
    """Run a batch of events (sorted by ``ev_pkt``) through the pairing state.

    With ``advance``, ``pkt_ts`` are the times of every packet of the batch:
    network time advances over them and fires session timers before each
    packet, as Zeek's timer manager does; ``ev_pkt`` gives each event's packet.
    Without, events run in order and no timer fires (TCP messages).
    """
    nev = ev_kind.shape[0]
    k = 0
    if advance:
        for p in range(pkt_ts.shape[0]):
            if pkt_ts[p] > CNT[C_NET]:
                CNT[C_NET] = pkt_ts[p]
            _fire_timers(TUP, INS, ENT, SES, HEAP, LOG, CNT, table, CNT[C_NET], timeout)
            while k < nev and ev_pkt[k] == p:
                _event(TUP, INS, ENT, SES, HEAP, LOG, CNT, table, rec_session, hdr, rec, netbios, rec_off, m_inst,
                       m_orig, ev_kind[k], ev_tuple[k], ev_src_lo[k], ev_msg[k], ev_ts[k], ev_frame[k], timeout,
                       max_ids, max_msgs)
                k += 1
    else:
        for k in range(nev):
            _event(TUP, INS, ENT, SES, HEAP, LOG, CNT, table, rec_session, hdr, rec, netbios, rec_off, m_inst,
                   m_orig, ev_kind[k], ev_tuple[k], ev_src_lo[k], ev_msg[k], ev_ts[k], ev_frame[k], timeout,
                   max_ids, max_msgs)


@numba.njit(cache=True)
def finish_all(TUP, INS, ENT, SES, LOG, CNT, table):
    """End every live instance (Zeek's connection removal at termination), in creation order."""
    for inst in range(CNT[C_INST]):
        if INS[inst, IN_ALIVE] == 1:
            _finalize(INS, ENT, SES, LOG, CNT, table, inst)
            tup = INS[inst, IN_TUPLE]
            if TUP[tup, TP_INST] == inst:
                TUP[tup, TP_INST] = -1
