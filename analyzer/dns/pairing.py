"""Query/response pairing with Zeek's rules, in numba.

Follows ``base/protocols/dns/main.zeek`` (``set_session``, ``do_reply``,
``dns_end``, ``finalize_dns``) and the connection life of Zeek's DNS analyzer:

- A connection is a 5-tuple *instance*: the first packet creates it, its
  sender is the originator unless it comes from a likely server port and goes
  to one that is not (Zeek's UDP ``flip_roles``); the first DNS message, if a
  response sent by the originator to a non-multicast address, flips the roles
  (``DNS_Interpreter::ParseMessage``).  A UDP instance ends when its
  ``dns_session_timeout`` timer (10 s, re-armed from the firing time) finds it
  idle for 9 s, as ``DNS_Analyzer::ExpireTimer`` does, at the network time of
  the packet that fires it; the next packet of the 5-tuple starts a new
  instance.  TCP instances end when their stream is closed, and all at the end.
- Per instance: one fast-path pending query, tables of pending queries and
  of pending replies keyed by transaction id, each a FIFO queue; a query takes
  the oldest pending reply with its id, a reply the fast-path query or the
  oldest pending query with its id; otherwise the message starts a new
  session and waits.  A table holding more than ``max_pending_query_ids`` ids
  is written out and cleared when a new id arrives, a queue longer than
  ``max_pending_msgs`` likewise.  Messages to a multicast responder are written
  unpaired.  A session is written when it has seen both a query and a reply;
  pending ones are written when the instance ends.

Writing a session copies its fields into an output row (Zeek's ``Log::write``
takes a copy too) and frees its slot, unless it is still referenced; instance
slots are freed when the instance ends.  So the state holds live sessions and
connections only.  Everything lives in ``int64`` arrays sized by the caller
(nothing grows inside numba) and one typed dict of pending-table entries.
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
 IN_QTAIL, IN_RTAIL, IN_ALIVE, IN_SERIAL, IN_HASQ) = range(15)
NIN = 15
# Pending-table entry columns (one entry per (instance, table, transaction id)).
EN_KEY, EN_HEAD, EN_TAIL, EN_LEN, EN_PREV, EN_NEXT, EN_INST, EN_TABLE = range(8)
NEN = 8
# Session (Zeek's DNS::Info) columns.
(S_INST, S_TS, S_TID, S_RTT, S_QTEXT, S_QOTEXT, S_ATEXT, S_QCLASS, S_QTYPE, S_RCODE, S_FLAGS, S_Z, S_OPCODE,
 S_FRAMEQ, S_FRAMER, S_QNEXT, S_SERIAL, S_INTABLE) = range(18)
NSES = 18
# S_FLAGS bits.
F_AA, F_TC, F_RD, F_RA, F_REJ, F_NETBIOS, F_SAWQ, F_SAWR, F_HASQ = 1, 2, 4, 8, 16, 32, 64, 128, 256
# Output row columns (one per session written).
(RW_TS, RW_TID, RW_RTT, RW_QTEXT, RW_QOTEXT, RW_ATEXT, RW_QCLASS, RW_QTYPE, RW_RCODE, RW_FLAGS, RW_Z,
 RW_OPCODE, RW_FRAME, RW_SERIAL, RW_TUPLE, RW_ORIG_LO) = range(16)
NRW = 16
# Counters.
(C_INST, C_SES, C_ENT, C_HEAP, C_ROW, C_NET, C_FREE_S, C_FREE_I, C_FREE_E, C_SERIAL,
 C_ISERIAL) = range(11)
NC = 11

# Event kinds.
# EV_SKIP: a message Zeek never sees (its packet is dropped, e.g. truncated_IP): kept for the
# Wireshark-view messages table, left out of pairing.
EV_MSG, EV_NODELIVER, EV_CLOSE, EV_TCPMSG, EV_TCPFLUSH, EV_SKIP = range(6)

TABLE_QUERIES, TABLE_REPLIES = 0, 1
DNS_SESSION_TIMEOUT_NS = 10_000_000_000
MAX_PENDING_MSGS = 50
MAX_PENDING_QUERY_IDS = 50


def new_table():
    """An empty typed dict ``int64 -> int64``."""
    return Dict.empty(key_type=types.int64, value_type=types.int64)


class State:
    """The pairing state: arrays and counters (kept by the stage between batches)."""

    def __init__(self):
        self.TUP = np.zeros((256, NTP), dtype=np.int64)
        self.INS = np.zeros((256, NIN), dtype=np.int64)
        self.ENT = np.zeros((256, NEN), dtype=np.int64)
        self.SES = np.zeros((256, NSES), dtype=np.int64)
        self.HEAP = np.zeros((256, 3), dtype=np.int64)
        self.ROWS = np.zeros((256, NRW), dtype=np.int64)
        self.FREE_S = np.zeros(256, dtype=np.int64)
        self.FREE_I = np.zeros(256, dtype=np.int64)
        self.FREE_E = np.zeros(256, dtype=np.int64)
        self.CNT = np.zeros(NC, dtype=np.int64)
        self.CNT[C_NET] = np.iinfo(np.int64).min
        self.table = new_table()

    def live(self, what: str) -> int:
        """Slots in use: ``sessions``, ``instances`` or ``entries``."""
        c = self.CNT
        if what == "sessions":
            return int(c[C_SES] - c[C_FREE_S])
        if what == "instances":
            return int(c[C_INST] - c[C_FREE_I])
        return int(c[C_ENT] - c[C_FREE_E])

    def reserve(self, events: int) -> None:
        """Room for ``events`` more events (each creates at most one session/instance/entry/timer)."""
        c = self.CNT
        self.INS = _grow(self.INS, int(c[C_INST]) + events + 1)
        self.SES = _grow(self.SES, int(c[C_SES]) + events + 1)
        self.ENT = _grow(self.ENT, int(c[C_ENT]) + events + 1)
        self.HEAP = _grow(self.HEAP, int(c[C_HEAP]) + events + 1)
        self.FREE_S = _grow1(self.FREE_S, int(c[C_SES]) + events + 1)
        self.FREE_I = _grow1(self.FREE_I, int(c[C_INST]) + events + 1)
        self.FREE_E = _grow1(self.FREE_E, int(c[C_ENT]) + events + 1)
        self.ROWS = _grow(self.ROWS, int(c[C_ROW]) + self.live("sessions") + 2 * events + 16)

    def take_rows(self) -> np.ndarray:
        """The rows written since the last call, as columns (``int64[NRW, n]``, a copy); the row buffer is emptied."""
        n = int(self.CNT[C_ROW])
        rows = self.ROWS[:n].T.copy()
        self.CNT[C_ROW] = 0
        return rows


def _grow(array: np.ndarray, need: int) -> np.ndarray:
    if need <= array.shape[0]:
        return array
    out = np.zeros((max(need, 2 * array.shape[0]),) + array.shape[1:], dtype=array.dtype)
    out[:array.shape[0]] = array
    return out


def _grow1(array: np.ndarray, need: int) -> np.ndarray:
    return _grow(array, need)


@numba.njit(cache=True, inline="always")
def _key(inst, table, tid):
    return inst * 131072 + table * 65536 + tid


@numba.njit(cache=True)
def _lookup(table, key):
    if key in table:
        return table[key]
    return -1


@numba.njit(cache=True)
def _heap_push(HEAP, CNT, t, inst, serial):
    i = CNT[C_HEAP]
    CNT[C_HEAP] += 1
    HEAP[i, 0] = t
    HEAP[i, 1] = inst
    HEAP[i, 2] = serial
    while i > 0:
        parent = (i - 1) // 2
        if HEAP[parent, 0] <= HEAP[i, 0]:
            break
        for c in range(3):
            tmp = HEAP[parent, c]
            HEAP[parent, c] = HEAP[i, c]
            HEAP[i, c] = tmp
        i = parent


@numba.njit(cache=True)
def _heap_pop(HEAP, CNT):
    inst = HEAP[0, 1]
    serial = HEAP[0, 2]
    n = CNT[C_HEAP] - 1
    CNT[C_HEAP] = n
    for c in range(3):
        HEAP[0, c] = HEAP[n, c]
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
        for c in range(3):
            tmp = HEAP[child, c]
            HEAP[child, c] = HEAP[i, c]
            HEAP[i, c] = tmp
        i = child
    return inst, serial


@numba.njit(cache=True, inline="always")
def _take_slot(FREE, CNT, free_count, used_count):
    """A row of a table: the last one freed (``FREE[:CNT[free_count]]``), else a new one at ``CNT[used_count]``."""
    if CNT[free_count] > 0:
        CNT[free_count] -= 1
        return FREE[CNT[free_count]]
    row = CNT[used_count]
    CNT[used_count] += 1
    return row


@numba.njit(cache=True)
def _new_session(SES, FREE_S, CNT, inst, tid, t):
    s = _take_slot(FREE_S, CNT, C_FREE_S, C_SES)
    for c in range(NSES):
        SES[s, c] = -1
    SES[s, S_INST] = inst
    SES[s, S_TS] = t
    SES[s, S_TID] = tid
    SES[s, S_FLAGS] = 0
    SES[s, S_Z] = 0
    SES[s, S_INTABLE] = 0
    SES[s, S_SERIAL] = CNT[C_SERIAL]
    CNT[C_SERIAL] += 1
    return s


@numba.njit(cache=True)
def _free_session(SES, FREE_S, CNT, s):
    if SES[s, S_INST] >= 0:
        SES[s, S_INST] = -1
        FREE_S[CNT[C_FREE_S]] = s
        CNT[C_FREE_S] += 1


@numba.njit(cache=True)
def _write(INS, SES, ROWS, FREE_S, CNT, s, release):
    """Zeek's Log::write of session ``s`` (a copy), then free its slot if nothing refers to it."""
    r = CNT[C_ROW]
    CNT[C_ROW] += 1
    inst = SES[s, S_INST]
    ROWS[r, RW_TS] = SES[s, S_TS]
    ROWS[r, RW_TID] = SES[s, S_TID]
    ROWS[r, RW_RTT] = SES[s, S_RTT]
    ROWS[r, RW_QTEXT] = SES[s, S_QTEXT]
    ROWS[r, RW_QOTEXT] = SES[s, S_QOTEXT]
    ROWS[r, RW_ATEXT] = SES[s, S_ATEXT]
    ROWS[r, RW_QCLASS] = SES[s, S_QCLASS]
    ROWS[r, RW_QTYPE] = SES[s, S_QTYPE]
    ROWS[r, RW_RCODE] = SES[s, S_RCODE]
    ROWS[r, RW_FLAGS] = SES[s, S_FLAGS]
    ROWS[r, RW_Z] = SES[s, S_Z]
    ROWS[r, RW_OPCODE] = SES[s, S_OPCODE]
    ROWS[r, RW_FRAME] = SES[s, S_FRAMEQ] if SES[s, S_FRAMEQ] >= 0 else SES[s, S_FRAMER]
    ROWS[r, RW_SERIAL] = SES[s, S_SERIAL]
    ROWS[r, RW_TUPLE] = INS[inst, IN_TUPLE]
    ROWS[r, RW_ORIG_LO] = INS[inst, IN_ORIG_LO]
    if release and SES[s, S_INTABLE] == 0 and INS[inst, IN_CUR] != s:
        _free_session(SES, FREE_S, CNT, s)


@numba.njit(cache=True)
def _free_entry(ENT, FREE_E, CNT, e):
    ENT[e, EN_INST] = -1
    FREE_E[CNT[C_FREE_E]] = e
    CNT[C_FREE_E] += 1


@numba.njit(cache=True)
def _unlink_entry(INS, ENT, FREE_E, CNT, table, e):
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
    _free_entry(ENT, FREE_E, CNT, e)


@numba.njit(cache=True)
def _pop(INS, ENT, SES, FREE_E, CNT, table, e):
    s = ENT[e, EN_HEAD]
    ENT[e, EN_HEAD] = SES[s, S_QNEXT]
    SES[s, S_QNEXT] = -1
    SES[s, S_INTABLE] = 0
    ENT[e, EN_LEN] -= 1
    if ENT[e, EN_LEN] == 0:
        ENT[e, EN_TAIL] = -1
        _unlink_entry(INS, ENT, FREE_E, CNT, table, e)
    return s


@numba.njit(cache=True)
def _write_queue(INS, ENT, SES, ROWS, FREE_S, CNT, e):
    s = ENT[e, EN_HEAD]
    while s >= 0:
        nxt = SES[s, S_QNEXT]
        SES[s, S_QNEXT] = -1
        SES[s, S_INTABLE] = 0
        _write(INS, SES, ROWS, FREE_S, CNT, s, True)
        s = nxt
    ENT[e, EN_HEAD] = -1
    ENT[e, EN_TAIL] = -1
    ENT[e, EN_LEN] = 0


@numba.njit(cache=True)
def _write_table(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, tbl):
    e = INS[inst, IN_QHEAD + tbl]
    while e >= 0:
        nxt = ENT[e, EN_NEXT]
        _write_queue(INS, ENT, SES, ROWS, FREE_S, CNT, e)
        table.pop(ENT[e, EN_KEY])
        _free_entry(ENT, FREE_E, CNT, e)
        e = nxt
    INS[inst, IN_QHEAD + tbl] = -1
    INS[inst, IN_QTAIL + tbl] = -1
    INS[inst, IN_QCOUNT + tbl] = 0


@numba.njit(cache=True)
def _enqueue(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, tbl, tid, s, max_ids, max_msgs):
    key = _key(inst, tbl, tid)
    e = _lookup(table, key)
    if e < 0:
        if INS[inst, IN_QCOUNT + tbl] > max_ids:
            _write_table(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, tbl)
        e = _take_slot(FREE_E, CNT, C_FREE_E, C_ENT)
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
        _write_queue(INS, ENT, SES, ROWS, FREE_S, CNT, e)
    tail = ENT[e, EN_TAIL]
    if tail >= 0:
        SES[tail, S_QNEXT] = s
    else:
        ENT[e, EN_HEAD] = s
    ENT[e, EN_TAIL] = s
    SES[s, S_QNEXT] = -1
    SES[s, S_INTABLE] = 1
    ENT[e, EN_LEN] += 1


@numba.njit(cache=True)
def _finalize(TUP, INS, ENT, SES, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, inst):
    """Zeek's finalize_dns (fast-path query, pending queries, pending replies), then free the instance."""
    pq = INS[inst, IN_PQ]
    if pq >= 0:
        SES[pq, S_INTABLE] = 0
        INS[inst, IN_PQ] = -1
        _write(INS, SES, ROWS, FREE_S, CNT, pq, True)
    _write_table(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, TABLE_QUERIES)
    _write_table(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, TABLE_REPLIES)
    cur = INS[inst, IN_CUR]
    INS[inst, IN_CUR] = -1
    if cur >= 0 and SES[cur, S_INST] == inst:
        _free_session(SES, FREE_S, CNT, cur)
    INS[inst, IN_ALIVE] = 0
    tup = INS[inst, IN_TUPLE]
    if TUP[tup, TP_INST] == inst:
        TUP[tup, TP_INST] = -1
    FREE_I[CNT[C_FREE_I]] = inst
    CNT[C_FREE_I] += 1


@numba.njit(cache=True)
def _fire_timers(TUP, INS, ENT, SES, HEAP, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, net, timeout):
    while CNT[C_HEAP] > 0 and HEAP[0, 0] <= net:
        inst, serial = _heap_pop(HEAP, CNT)
        if INS[inst, IN_ALIVE] != 1 or INS[inst, IN_SERIAL] != serial:
            continue
        if net - INS[inst, IN_LAST] >= timeout - 1_000_000_000:
            _finalize(TUP, INS, ENT, SES, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, inst)
        else:
            _heap_push(HEAP, CNT, net + timeout, inst, serial)


@numba.njit(cache=True)
def _set_session(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, mc, qr, tid, rcode, qd, opcode,
                 netbios, t, frame, max_ids, max_msgs):
    is_query = qr == 0
    old = INS[inst, IN_CUR]
    if mc:
        s = _new_session(SES, FREE_S, CNT, inst, tid, t)
        SES[s, S_FLAGS] |= F_SAWQ | F_SAWR
    elif is_query:
        e = _lookup(table, _key(inst, TABLE_REPLIES, tid))
        if e >= 0 and ENT[e, EN_LEN] > 0:
            s = _pop(INS, ENT, SES, FREE_E, CNT, table, e)
        else:
            s = _new_session(SES, FREE_S, CNT, inst, tid, t)
            if INS[inst, IN_PQ] < 0:
                INS[inst, IN_PQ] = s
                SES[s, S_INTABLE] = 1
            else:
                INS[inst, IN_HASQ] = 1
                _enqueue(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, TABLE_QUERIES, tid, s, max_ids,
                         max_msgs)
    else:
        pq = INS[inst, IN_PQ]
        if pq >= 0 and SES[pq, S_TID] == tid:
            s = pq
            INS[inst, IN_PQ] = -1
            SES[s, S_INTABLE] = 0
            if INS[inst, IN_HASQ] == 1:
                e = _lookup(table, _key(inst, TABLE_QUERIES, tid))
                if e < 0 or ENT[e, EN_LEN] == 0:
                    e = INS[inst, IN_QHEAD]          # Zeek picks an arbitrary one: we take the oldest id
                    while e >= 0 and ENT[e, EN_LEN] == 0:
                        e = ENT[e, EN_NEXT]
                if e >= 0:
                    nxt = _pop(INS, ENT, SES, FREE_E, CNT, table, e)
                    INS[inst, IN_PQ] = nxt
                    SES[nxt, S_INTABLE] = 1
        else:
            e = _lookup(table, _key(inst, TABLE_QUERIES, tid))
            if e >= 0 and ENT[e, EN_LEN] > 0:
                s = _pop(INS, ENT, SES, FREE_E, CNT, table, e)
            else:
                s = _new_session(SES, FREE_S, CNT, inst, tid, t)
                _enqueue(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, TABLE_REPLIES, tid, s, max_ids,
                         max_msgs)
    INS[inst, IN_CUR] = s
    if old >= 0 and old != s and SES[old, S_INTABLE] == 0 and SES[old, S_INST] == inst:
        # The previous c$dns was neither written nor pending: Zeek drops it (e.g. a message that
        # never reached dns_end); free its slot.
        _free_session(SES, FREE_S, CNT, old)
    if not is_query:
        SES[s, S_RCODE] = rcode
        if rcode != 0 and qd == 0:
            SES[s, S_FLAGS] |= F_REJ
    SES[s, S_OPCODE] = opcode
    if netbios:
        SES[s, S_FLAGS] |= F_NETBIOS
    else:
        SES[s, S_FLAGS] &= ~F_NETBIOS
    if is_query:
        if SES[s, S_FRAMEQ] < 0:
            SES[s, S_FRAMEQ] = frame
    elif SES[s, S_FRAMER] < 0:
        SES[s, S_FRAMER] = frame


@numba.njit(cache=True)
def _event(TUP, INS, ENT, SES, HEAP, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, hdr, rec, rec_text, rec_serial,
           netbios, m_orig, kind, tup, src_lo, m, t, frame, timeout, max_ids, max_msgs):
    inst = TUP[tup, TP_INST]
    if kind == EV_CLOSE:
        if inst >= 0:
            _finalize(TUP, INS, ENT, SES, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, inst)
        return
    if inst < 0:
        inst = _take_slot(FREE_I, CNT, C_FREE_I, C_INST)
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
        INS[inst, IN_HASQ] = 0
        INS[inst, IN_SERIAL] = CNT[C_ISERIAL]
        CNT[C_ISERIAL] += 1
        TUP[tup, TP_INST] = inst
        if not TUP[tup, TP_TCP]:
            _heap_push(HEAP, CNT, t + timeout, inst, INS[inst, IN_SERIAL])
    INS[inst, IN_LAST] = t
    if kind == EV_NODELIVER:
        return
    is_orig = src_lo == INS[inst, IN_ORIG_LO]
    m_orig[m] = 1 if is_orig else 0
    if hdr[m, wire.H_STATUS] != wire.ST_PARSED:
        return
    qr = hdr[m, wire.H_QR]
    if INS[inst, IN_FIRST] == 1 and qr == 1 and is_orig and kind != EV_TCPFLUSH:
        resp_mc = TUP[tup, TP_HI_MC] if INS[inst, IN_ORIG_LO] == 1 else TUP[tup, TP_LO_MC]
        if not resp_mc:
            INS[inst, IN_ORIG_LO] = 1 - INS[inst, IN_ORIG_LO]
            m_orig[m] = 0
    INS[inst, IN_FIRST] = 0
    opcode = hdr[m, wire.H_OPCODE]
    tracked = opcode == 0 or opcode == 4 or opcode == 5
    flags = hdr[m, wire.H_FLAGS]
    if tracked:
        mc = TUP[tup, TP_HI_MC] if INS[inst, IN_ORIG_LO] == 1 else TUP[tup, TP_LO_MC]
        _set_session(INS, ENT, SES, ROWS, FREE_S, FREE_E, CNT, table, inst, mc, qr, hdr[m, wire.H_ID],
                     hdr[m, wire.H_RCODE], hdr[m, wire.H_QD], opcode, netbios[m], t, frame, max_ids, max_msgs)
    cur = INS[inst, IN_CUR]
    if hdr[m, wire.H_TOO_LARGE] == 0 and cur >= 0:
        no_records = hdr[m, wire.H_AN] == 0 and hdr[m, wire.H_NS] == 0 and hdr[m, wire.H_AR] == 0
        for r in range(hdr[m, wire.H_REC0], hdr[m, wire.H_REC1]):
            if rec[r, wire.R_EVENT] == 0:
                continue
            sect = rec[r, wire.R_SECT]
            if sect == wire.SECT_QUESTION:
                if qr == 0:
                    if tracked:                                      # dns_request
                        f = SES[cur, S_FLAGS] & ~(F_RD | F_TC)
                        f |= F_RD if (flags >> 8) & 1 else 0
                        f |= F_TC if (flags >> 9) & 1 else 0
                        SES[cur, S_FLAGS] = f | F_HASQ
                        SES[cur, S_Z] = (flags >> 4) & 7
                        SES[cur, S_QCLASS] = rec[r, wire.R_CLASS]
                        SES[cur, S_QTYPE] = rec[r, wire.R_TYPE]
                        SES[cur, S_QTEXT] = rec_text[r, 0]
                        SES[cur, S_QOTEXT] = rec_text[r, 1]
                elif no_records:                                     # dns_rejected
                    SES[cur, S_FLAGS] |= F_REJ
                continue
            if qr == 0:
                continue
            if sect == wire.SECT_ANSWER or sect == wire.SECT_PREREQ or sect == wire.SECT_UPDATE:
                if tracked:                                          # DNS::do_reply
                    if SES[cur, S_FLAGS] & F_HASQ == 0 and SES[cur, S_ATEXT] < 0:
                        SES[cur, S_ATEXT] = rec_text[r, 2]
                    f = SES[cur, S_FLAGS] & ~(F_AA | F_RA)
                    f |= F_AA if (flags >> 10) & 1 else 0
                    f |= F_RA if (flags >> 7) & 1 else 0
                    SES[cur, S_FLAGS] = f
                    if SES[cur, S_RTT] < 0:
                        rtt = t - SES[cur, S_TS]
                        if rtt != 0:
                            SES[cur, S_RTT] = rtt
                    rec_serial[r] = SES[cur, S_SERIAL]
            elif opcode == 0:                                        # auth-addl's do_reply
                rec_serial[r] = SES[cur, S_SERIAL]
    if hdr[m, wire.H_NO_END] == 0:                                   # dns_end
        cur = INS[inst, IN_CUR]
        if cur >= 0:
            SES[cur, S_FLAGS] |= F_SAWR if qr == 1 else F_SAWQ
            if SES[cur, S_FLAGS] & F_SAWR and SES[cur, S_FLAGS] & F_SAWQ:
                INS[inst, IN_CUR] = -1
                _write(INS, SES, ROWS, FREE_S, CNT, cur, True)


@numba.njit(cache=True)
def pair(TUP, INS, ENT, SES, HEAP, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, pkt_ts, ev_pkt, ev_kind, ev_tuple,
         ev_src_lo, ev_msg, ev_ts, ev_frame, hdr, rec, rec_text, rec_serial, netbios, m_orig, advance, timeout,
         max_ids, max_msgs):
    """Run a batch of events (sorted by ``ev_pkt``) through the pairing state.

    With ``advance``, ``pkt_ts`` are the times of every packet of the batch:
    network time advances over them and fires session timers before each
    packet, as Zeek's timer manager does; ``ev_pkt`` gives each event's packet.
    Without, events run in order and no timer fires (TCP messages).
    ``rec_text[r]`` holds the text ids (query, original query, owner) a record
    gives a session; ``rec_serial[r]`` receives the serial of the session a
    record's entry belongs to.
    """
    nev = ev_kind.shape[0]
    k = 0
    if advance:
        for p in range(pkt_ts.shape[0]):
            CNT[C_NET] = max(CNT[C_NET], pkt_ts[p])
            if CNT[C_HEAP] > 0 and HEAP[0, 0] <= CNT[C_NET]:
                _fire_timers(TUP, INS, ENT, SES, HEAP, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, CNT[C_NET],
                             timeout)
            while k < nev and ev_pkt[k] == p:
                if ev_kind[k] == EV_SKIP:
                    k += 1
                    continue
                _event(TUP, INS, ENT, SES, HEAP, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, hdr, rec, rec_text,
                       rec_serial, netbios, m_orig, ev_kind[k], ev_tuple[k], ev_src_lo[k], ev_msg[k], ev_ts[k],
                       ev_frame[k], timeout, max_ids, max_msgs)
                k += 1
    else:
        for k in range(nev):
            if ev_kind[k] == EV_SKIP:
                continue
            _event(TUP, INS, ENT, SES, HEAP, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, hdr, rec, rec_text,
                   rec_serial, netbios, m_orig, ev_kind[k], ev_tuple[k], ev_src_lo[k], ev_msg[k], ev_ts[k],
                   ev_frame[k], timeout, max_ids, max_msgs)


@numba.njit(cache=True)
def finish_all(TUP, INS, ENT, SES, ROWS, FREE_S, FREE_I, FREE_E, CNT, table):
    """End every live instance (Zeek's connection removal at termination), in slot order."""
    for inst in range(CNT[C_INST]):
        if INS[inst, IN_ALIVE] == 1:
            _finalize(TUP, INS, ENT, SES, ROWS, FREE_S, FREE_I, FREE_E, CNT, table, inst)


@numba.njit(cache=True, inline="always")
def _tuple_hash(lo0, lo1, hi0, hi1, lo_port, hi_port):
    """A 63-bit hash of (lo address, hi address, lo port, hi port), addresses as two ``uint64`` words each."""
    h = (lo0 * np.uint64(0x9E3779B97F4A7C15)) ^ (lo1 * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= (hi0 * np.uint64(0x165667B19E3779F9)) ^ (hi1 * np.uint64(0xD6E8FEB86659FD93))
    h ^= np.uint64((lo_port << 16) | hi_port) * np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return np.int64(h & np.uint64(0x7FFFFFFFFFFFFFFF))


@numba.njit(cache=True)
def _multicast(a):
    """1 when 16-byte address ``a`` is in 224.0.0.0/4 (IPv4-mapped) or ff00::/8: Zeek's DNS::multicast_subnets."""
    for j in range(10):
        if a[j] != 0:
            return 1 if a[0] == 0xFF else 0
    if a[10] == 0xFF and a[11] == 0xFF:
        return 1 if a[12] >> 4 == 0xE else 0
    return 1 if a[0] == 0xFF else 0


def new_index(capacity: int = 1024) -> np.ndarray:
    """An empty UDP tuple index: ``int32`` slots (a tuple id, -1 empty), a power of two of at least ``capacity``."""
    size = 16
    while size < capacity:
        size *= 2
    return np.full(size, -1, dtype=np.int32)


@numba.njit(cache=True)
def _index_fill(index, words, port, udp):
    mask = index.shape[0] - 1
    for t in range(udp.shape[0]):
        if not udp[t]:                       # TCP tuples are found by connection key, not hashed
            continue
        b = _tuple_hash(words[t, 0, 0], words[t, 0, 1], words[t, 1, 0], words[t, 1, 1], port[t, 0],
                        port[t, 1]) & mask
        while index[b] >= 0:
            b = (b + 1) & mask
        index[b] = t


def reserve_index(index: np.ndarray, addr: np.ndarray, port: np.ndarray, udp: np.ndarray, count: int,
                  more: int) -> np.ndarray:
    """``index`` with room for ``more`` new tuples (load at most 1/2): rebuilt larger when needed.

    ``addr``: ``uint8[n, 2, 16]`` tuple addresses, ``port``: ``int64[n, 2]``;
    ``udp``: ``bool[count]``, which of the ``count`` tuples are in the index.
    """
    used = int(np.count_nonzero(udp[:count]))
    if 2 * (used + more) <= index.shape[0]:
        return index
    out = new_index(4 * (used + more))
    _index_fill(out, addr.view(np.uint64), port, np.ascontiguousarray(udp[:count], dtype=np.bool_))
    return out


@numba.njit(cache=True)
def _lookup_tuples(index, addr, words, port, TUP, likely, count, src, dst, src_words, dst_words, src_is_lo,
                   sport, dport):
    k = sport.shape[0]
    mask = index.shape[0] - 1
    ids = np.empty(k, dtype=np.int64)
    for i in range(k):
        if src_is_lo[i]:
            lo, hi, lw, hw, lp, hp = src[i], dst[i], src_words[i], dst_words[i], sport[i], dport[i]
        else:
            lo, hi, lw, hw, lp, hp = dst[i], src[i], dst_words[i], src_words[i], dport[i], sport[i]
        b = _tuple_hash(lw[0], lw[1], hw[0], hw[1], lp, hp) & mask
        while True:
            t = np.int64(index[b])
            if t < 0:
                t = count
                count += 1
                index[b] = t
                for j in range(16):
                    addr[t, 0, j] = lo[j]
                    addr[t, 1, j] = hi[j]
                port[t, 0] = lp
                port[t, 1] = hp
                for c in range(NTP):
                    TUP[t, c] = 0
                TUP[t, TP_INST] = -1
                TUP[t, TP_LO_MC] = _multicast(lo)
                TUP[t, TP_HI_MC] = _multicast(hi)
                TUP[t, TP_LO_LIKELY] = 1 if likely[lp & 0xFFFF] else 0
                TUP[t, TP_HI_LIKELY] = 1 if likely[hp & 0xFFFF] else 0
                break
            if (port[t, 0] == lp and port[t, 1] == hp and words[t, 0, 0] == lw[0] and words[t, 0, 1] == lw[1]
                    and words[t, 1, 0] == hw[0] and words[t, 1, 1] == hw[1]):
                break
            b = (b + 1) & mask
        ids[i] = t
    return ids, count


def lookup_tuples(index, addr, port, TUP, likely, count, src, dst, sport, dport):
    """Tuple ids of UDP datagrams (new tuples appended); ``(ids, src_is_lo, new count)``.

    A tuple is (lo address, hi address, lo port, hi port), "lo" being the end
    with the smaller address bytes (the smaller port for equal addresses).
    ``index`` is an open-addressing table (:func:`new_index`, kept at most half
    full by :func:`reserve_index`) of tuple ids, placed by a hash of the tuple
    and probed linearly; the tuple's stored addresses and ports are compared.

    Args:
        addr, port, TUP: ``uint8[n, 2, 16]``, ``int64[n, 2]``, ``int64[n, NTP]`` of the
            tuples, with room for ``count + len(sport)``; a new tuple's ``TUP`` row
            is set (no instance, ends in Zeek's DNS::multicast_subnets, ends on a
            likely server port).
        likely: ``bool[65536]``, the likely server ports.
        src, dst: ``uint8[k, 16]`` datagram addresses (IPv4-mapped); sport, dport: ``int64[k]``.
    """
    src = np.ascontiguousarray(src, dtype=np.uint8)
    dst = np.ascontiguousarray(dst, dtype=np.uint8)
    sport = np.ascontiguousarray(sport, dtype=np.int64)
    dport = np.ascontiguousarray(dport, dtype=np.int64)
    s_be, d_be = src.view(">u8"), dst.view(">u8")       # byte order = big-endian word order
    s0, s1, d0, d1 = s_be[:, 0], s_be[:, 1], d_be[:, 0], d_be[:, 1]
    src_is_lo = (s0 < d0) | ((s0 == d0) & ((s1 < d1) | ((s1 == d1) & (sport <= dport))))
    ids, count = _lookup_tuples(index, addr, addr.view(np.uint64), port, TUP, likely, count, src, dst,
                                src.view(np.uint64), dst.view(np.uint64), src_is_lo, sport, dport)
    return ids, src_is_lo.astype(np.int64), count


@numba.njit(cache=True)
def first_answers(hdr, rec):
    """Per response message, its first answer-like record that raised an event (``int64`` record indices).

    That record's owner name is the session's query when no query was seen
    (Zeek's ``DNS::do_reply`` sets ``c$dns$query`` from the first answer).
    Answer-like: the answer, prerequisite and update sections (Zeek's answer events).
    """
    m = hdr.shape[0]
    out = np.empty(m, dtype=np.int64)
    n = 0
    for i in range(m):
        if hdr[i, wire.H_QR] != 1:
            continue
        for r in range(hdr[i, wire.H_REC0], hdr[i, wire.H_REC1]):      # the message's records, in order
            sect = rec[r, wire.R_SECT]
            if rec[r, wire.R_EVENT] == 1 and (sect == wire.SECT_ANSWER or sect == wire.SECT_PREREQ
                                              or sect == wire.SECT_UPDATE):
                out[n] = r
                n += 1
                break
    return out[:n]


@numba.njit(cache=True)
def owned_records(rec, rec_serial):
    """The records :func:`pair` gave to a session, as ``(index, serial, part, key, ttl)`` columns.

    ``index``, ``serial``, ``key``: ``int64`` record index, session serial, render key
    (``R_KEY``); ``ttl``: ``uint32`` seconds.

    ``part``: 0 for Zeek's answers (answer, prerequisite, update sections), 1 for
    the authority section (``auth``), 2 for the additional one (``addl``).
    """
    k = rec.shape[0]
    n = 0
    for r in range(k):
        if rec_serial[r] >= 0:
            n += 1
    index = np.empty(n, dtype=np.int64)
    serial = np.empty(n, dtype=np.int64)
    part = np.empty(n, dtype=np.int8)
    key = np.empty(n, dtype=np.int64)
    ttl = np.empty(n, dtype=np.uint32)
    j = 0
    for r in range(k):
        if rec_serial[r] < 0:
            continue
        sect = rec[r, wire.R_SECT]
        index[j] = r
        serial[j] = rec_serial[r]
        if sect == wire.SECT_ANSWER or sect == wire.SECT_PREREQ or sect == wire.SECT_UPDATE:
            part[j] = 0
        elif sect == wire.SECT_AUTH:
            part[j] = 1
        else:
            part[j] = 2
        key[j] = rec[r, wire.R_KEY]
        ttl[j] = np.uint32(rec[r, wire.R_TTL] & 0xFFFFFFFF)
        j += 1
    return index, serial, part, key, ttl
