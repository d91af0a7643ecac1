"""The compiled loops of :class:`~analyzer.reassembly.tcp.TcpReassembly`.

:func:`connection_keys` gives each TCP row its connection (unordered
endpoint pair), which :func:`analyzer.grouping.group_rows` groups.  :func:`classify` walks a batch's
segments in capture order over a copy of the state of their connections
(the ``CONN_*`` and ``STREAM_*`` columns, filled by the caller from the
:class:`~analyzer.reassembly.stream.StreamReassembler` objects) and takes every segment whose effect it can reproduce exactly, as
``StreamReassembler.add`` and ``StreamReassembler.ack`` would have: data in
order or partly retransmitted, SYN, FIN, RST, keep-alives, the segment's
acknowledgement (a hole of the peer given up, only when the peer holds no
out-of-order bytes) and the opening of a connection.  It writes the chunks
those segments make as columns (which bytes of the batch, gap, end of
stream).  Any other segment (out of order, a weird, a buffered stream, a
uid it cannot compare) is left to Python, and so is every later segment
of the same connection in the batch, since the copy no longer follows the
real state there.
"""

from __future__ import annotations

import numba
import numpy as np

from .stream import ACK, FIN, HALF, MASK, RST, SYN, WRAP

# Columns of the connection state (one row per connection instance; tcp._restore unpacks them in order).
(CONN_EXISTS, CONN_UID_KNOWN, CONN_UID, CONN_ORIG_LOWER, CONN_CLOSED, CONN_CLOSED_AT, CONN_LAST_TS,
 CONN_TOUCHED) = range(8)
CONN_COLUMNS = 8
# Columns of the stream state (rows 2 * instance: originator, 2 * instance + 1: responder; likewise
# unpacked).  FIN: -1 for none; KNOWN: nothing buffered and not closed, so the copy is the whole
# state; DELIVERED and MISSED count from zero (they are added to the stream's counters).
(STREAM_STARTED, STREAM_SAW_SYN, STREAM_BASE, STREAM_NEXT, STREAM_FIN, STREAM_RESET, STREAM_EOF_SENT,
 STREAM_KNOWN, STREAM_DELIVERED, STREAM_MISSED) = range(10)
STREAM_COLUMNS = 10
# Columns of the chunks made.
CHUNK_ROW, CHUNK_INSTANCE, CHUNK_ORIG, CHUNK_START, CHUNK_END, CHUNK_GAP, CHUNK_EOF = range(7)
CHUNK_COLUMNS = 7
# What a segment needs from Python: nothing, its connection opened first, or everything.
FAST, OPEN, SLOW = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def classify(slot, lower, flags, seq, stated, start, end, ack, uid, ts, instance, slow, conn, stream,
             serial):
    """Take the segments of a batch that need no buffering; see the module docstring.

    Args:
        slot, lower, flags, seq, stated, start, end, ack, uid, ts: ``int64[m]``
            (``lower`` ``bool[m]``) per segment in capture order: connection
            slot, whether the sender is the slot's lower endpoint, TCP flags,
            32-bit sequence number, length stated by the headers, captured
            payload ``start:end`` in the part's data, acknowledgement number
            (-1: none), uid (-1: none), time (ns).
        instance: ``int64[k]`` per slot, the connection instance now on it
            (updated); instances ``0..k-1`` are those the batch started with.
        slow: ``bool[k]`` per slot, left to Python (updated).
        conn: ``int64[k + m, CONN_COLUMNS]``, rows ``0..k-1`` filled (updated;
            the rows of opened instances are written).
        stream: ``int64[2 * (k + m), STREAM_COLUMNS]`` likewise.
        serial: the reassembler's last connection serial.

    Returns:
        ``(code, opened, cut, chunks)``: per segment (``int8[m]``, ``int64[m]``,
        ``int64[m]``) its ``FAST``/``OPEN``/``SLOW`` code, the instance it
        opened (-1: none) and how many chunks precede its own; then
        ``int64[c, CHUNK_COLUMNS]``, the chunks in order: segment, connection
        instance, originator's direction or not, payload ``start:end`` in the
        segment's part (``start == end``: empty), gap before, end of stream.
    """
    m = slot.shape[0]
    code = np.zeros(m, np.int8)
    opened = np.full(m, -1, np.int64)
    cut = np.zeros(m, np.int64)
    chunks = np.empty((4 * m, CHUNK_COLUMNS), np.int64)   # at most: gap and end of the peer, data and end
    count = 0
    fresh = instance.shape[0]
    serial_known = True         # a segment left to Python may have opened a connection (serial + 1)
    for i in range(m):
        cut[i] = count
        u = slot[i]
        if slow[u]:
            code[i] = SLOW
            continue
        f = flags[i]
        t = ts[i]
        current = instance[u]
        has_uid = uid[i] >= 0
        # As TcpReassembly._python_segments: a new connection when there is none, the uid differs,
        # or (no uid) a SYN without ACK comes on a closed one.  A uid it cannot compare, or a
        # serial it does not know, leaves the segment to Python.
        if has_uid and conn[current, CONN_EXISTS] and not conn[current, CONN_UID_KNOWN]:
            opening = True
            taken = False
        else:
            opening = (not conn[current, CONN_EXISTS] or (has_uid and uid[i] != conn[current, CONN_UID])
                       or (not has_uid and f & (SYN | ACK) == SYN and conn[current, CONN_CLOSED]))
            taken = not opening or has_uid or serial_known
        c = current
        if taken and opening:
            c = fresh
            conn[c, :] = 0
            conn[c, CONN_EXISTS] = 1
            conn[c, CONN_UID_KNOWN] = 1
            conn[c, CONN_UID] = uid[i] if has_uid else serial + 1
            # Zeek's flip: the receiver of a SYN-ACK is the originator.
            conn[c, CONN_ORIG_LOWER] = lower[i] if f & (SYN | ACK) != (SYN | ACK) else not lower[i]
            for r in (2 * c, 2 * c + 1):
                stream[r, :] = 0
                stream[r, STREAM_FIN] = -1
                stream[r, STREAM_KNOWN] = 1
        orig_side = lower[i] == conn[c, CONN_ORIG_LOWER]
        s = 2 * c + (0 if orig_side else 1)
        p = 2 * c + (1 if orig_side else 0)

        # The acknowledgement, applied to the peer before the segment (StreamReassembler.ack).
        ack_gap = 0
        ack_eof = False
        peer_next = stream[p, STREAM_NEXT]
        if taken and ack[i] >= 0 and stream[p, STREAM_STARTED]:
            delta = (ack[i] - stream[p, STREAM_BASE] - peer_next) & MASK
            if delta != 0 and delta < HALF:
                if not stream[p, STREAM_KNOWN]:
                    taken = False
                else:
                    target = peer_next + delta
                    peer_fin = stream[p, STREAM_FIN]
                    if peer_fin >= 0 and target > peer_fin:
                        target = peer_fin
                    if target > peer_next:
                        ack_gap = target - peer_next
                        peer_next = target
                    ack_eof = peer_fin >= 0 and peer_next >= peer_fin and not stream[p, STREAM_EOF_SENT]

        # The segment (StreamReassembler.add), on copies of the stream's state.
        started = stream[s, STREAM_STARTED]
        saw_syn = stream[s, STREAM_SAW_SYN]
        base = stream[s, STREAM_BASE]
        nxt = stream[s, STREAM_NEXT]
        fin = stream[s, STREAM_FIN]
        reset = 1 if stream[s, STREAM_RESET] or f & RST else 0
        eof_sent = stream[s, STREAM_EOF_SENT]
        size = end[i] - start[i]
        length = max(stated[i], size)
        data_start = data_end = 0
        eof = False
        if taken and not stream[s, STREAM_KNOWN]:
            taken = False
        if taken and not started:
            if f & SYN:
                base = (seq[i] + 1) & MASK
                saw_syn = 1
                started = 1
            elif length or f & FIN:
                base = seq[i] & MASK
                started = 1
        if taken and started:
            delta = (seq[i] - base - nxt) & MASK
            if delta >= HALF:
                delta -= WRAP
            offset = nxt + delta
            if f & SYN:
                if saw_syn and offset != -1:
                    taken = False           # SYN_seq_jump
                offset += 1
            stop = offset + length
            if offset < -1 and length and not f & RST:
                taken = False               # TCP_seq_underflow_or_misorder
            if f & FIN and fin < 0 and stop >= nxt:
                fin = stop
            if length > size:
                taken = False               # truncated_tcp_payload
            elif size:
                if fin >= 0 and stop > fin:
                    stop = fin
                if stop > nxt and stop > offset:
                    if offset > nxt:
                        taken = False       # out of order: buffered
                    else:
                        data_start = start[i] + nxt - offset
                        data_end = start[i] + stop - offset
                        nxt = stop
            if fin >= 0 and nxt >= fin and not eof_sent:
                eof_sent = 1
                eof = True
        if not taken:
            code[i] = SLOW
            slow[u] = True
            serial_known = False
            continue

        if opening:
            code[i] = OPEN
            opened[i] = c
            instance[u] = c
            fresh += 1
            serial += 1
        conn[c, CONN_TOUCHED] = 1
        conn[c, CONN_LAST_TS] = t
        if ack_gap or ack_eof:
            stream[p, STREAM_MISSED] += ack_gap
            stream[p, STREAM_NEXT] = peer_next
            if ack_gap:
                count = _chunk(chunks, count, i, c, not orig_side, 0, 0, ack_gap, False)
            if ack_eof:
                stream[p, STREAM_EOF_SENT] = 1
                count = _chunk(chunks, count, i, c, not orig_side, 0, 0, 0, True)
        stream[s, STREAM_DELIVERED] += data_end - data_start
        stream[s, STREAM_STARTED] = started
        stream[s, STREAM_SAW_SYN] = saw_syn
        stream[s, STREAM_BASE] = base
        stream[s, STREAM_NEXT] = nxt
        stream[s, STREAM_FIN] = fin
        stream[s, STREAM_RESET] = reset
        stream[s, STREAM_EOF_SENT] = eof_sent
        if data_end > data_start:
            count = _chunk(chunks, count, i, c, orig_side, data_start, data_end, 0, False)
        if eof:
            count = _chunk(chunks, count, i, c, orig_side, 0, 0, 0, True)
        # Closed: a RST, or FIN both ways.
        if f & (FIN | RST) and not conn[c, CONN_CLOSED]:
            first, second = 2 * c, 2 * c + 1
            if stream[first, STREAM_RESET] or stream[second, STREAM_RESET] or (
                    stream[first, STREAM_FIN] >= 0 and stream[second, STREAM_FIN] >= 0):
                conn[c, CONN_CLOSED] = 1
                conn[c, CONN_CLOSED_AT] = t
    return code, opened, cut, chunks[:count]


@numba.njit(cache=True, nogil=True, inline="always")
def _chunk(chunks, count, row, instance, orig, start, end, gap, eof):
    chunks[count, CHUNK_ROW] = row
    chunks[count, CHUNK_INSTANCE] = instance
    chunks[count, CHUNK_ORIG] = orig
    chunks[count, CHUNK_START] = start
    chunks[count, CHUNK_END] = end
    chunks[count, CHUNK_GAP] = gap
    chunks[count, CHUNK_EOF] = eof
    return count + 1


KEY_BYTES = 37          # version, then two endpoints of 16 address bytes and 2 port bytes
KEY_WORDS = 5           # a key in 64-bit words, zero-padded


@numba.njit(cache=True, nogil=True)
def connection_keys(rows, version, src4, dst4, src6, dst6, srcport, dstport, have4, have6):
    """Undirected keys of the rows' connections, and which end sent each row.

    Args:
        rows: ``int64[k]`` rows of the columns.
        version, src4, dst4, srcport, dstport: ``int64[n]`` columns
            (``_ip.version``, ``_ip.src4``, ``_ip.dst4``, ``_l4.srcport``,
            ``_l4.dstport``); src6, dst6: ``uint8[n, 16]``.
        have4, have6: whether the IPv4 (IPv6) address columns exist (the
            addresses of a version without them are zeros).

    Returns:
        ``uint8[k, 8 * KEY_WORDS]``: the IP version, then the lower and the
        higher endpoint (16 address bytes, IPv4 in the first 4, then 2 port
        bytes, compared as byte strings), then zeros; ``bool[k]``: whether
        the row's sender is the lower endpoint (so for both when they are equal).
    """
    k = rows.shape[0]
    keys = np.zeros((k, 8 * KEY_WORDS), np.uint8)
    lower = np.empty(k, np.bool_)
    source = np.empty(18, np.uint8)
    destination = np.empty(18, np.uint8)
    for i in range(k):
        r = rows[i]
        source[:] = 0
        destination[:] = 0
        if version[r] == 4 and have4:
            for b in range(4):
                source[b] = (src4[r] >> (24 - 8 * b)) & 0xFF
                destination[b] = (dst4[r] >> (24 - 8 * b)) & 0xFF
        elif version[r] == 6 and have6:
            source[:16] = src6[r]
            destination[:16] = dst6[r]
        source[16], source[17] = (srcport[r] >> 8) & 0xFF, srcport[r] & 0xFF
        destination[16], destination[17] = (dstport[r] >> 8) & 0xFF, dstport[r] & 0xFF
        is_lower = True
        for b in range(18):
            if source[b] != destination[b]:
                is_lower = source[b] < destination[b]
                break
        lower[i] = is_lower
        keys[i, 0] = version[r] & 0xFF
        keys[i, 1:19] = source if is_lower else destination
        keys[i, 19:37] = destination if is_lower else source
    return keys, lower
