"""TCP stream reassembly for a whole capture: :class:`TcpReassembly` feeds batches to per-direction
:class:`~analyzer.reassembly.stream.StreamReassembler` objects.

A pipeline stage calls :meth:`TcpReassembly.feed` with each batch and its
``dissectors.dissect`` columns, and gets back, in capture order, the
:class:`Delivery` objects (connection, direction, :class:`Chunk`) that the
batch made available (:meth:`TcpReassembly.feed_columns`: the same as a
:class:`~.deliveries.Deliveries`, without an object per chunk); :meth:`TcpReassembly.flush` at the end of the capture
closes every stream.

Per batch, numpy selects the TCP rows (hidden columns of the innermost
packet: ``_tcp.seq``, ``_tcp.flags``, ``_tcp.len``, ``_tcp.ack``,
``_payload.start``/``_payload.end``, ``_l4.srcport``/``_l4.dstport``,
``_ip.version``, ``_ip.src4``/``_ip.dst4`` or ``_ip.src6``/``_ip.dst6``) that
matter: segments with payload, SYN, FIN or RST, and ACKs.  Their
connections (unordered endpoint pairs) are grouped by a compiled hash
table (:mod:`.kernels`), so connection lookup is once per connection per
batch.  With integer uids (or none), a compiled pass
(:func:`.kernels.classify`) takes the segments that need no buffering (in
order data, SYN, FIN, RST, keep-alives, the ACK gaps of a peer holding
nothing, new connections); Python takes the others (and every later one of
their connection in the batch) one by one, opens the connections the pass
found, then makes the pass's deliveries in bulk and merges them in capture
order.  The result is the same as the Python loop alone.  Segments
fragmented at the IP layer come back from
:class:`~analyzer.reassembly.ip.FragmentReassembler` as a batch of their
own, to be passed with the batch that completed them (``more=``), so that
they are taken in frame order with it.

Connections:

* Keyed by the unordered pair of endpoints.  The originator is the sender
  of the first segment seen, except that a SYN-ACK makes its receiver the
  originator (Zeek's flip).  A pure ACK never creates a connection.
* With ``uid_per_row`` (the connection tracker's uid of each row), a row
  whose uid differs from the connection's starts a new connection (the old
  one is closed first).  Without it, a SYN (no ACK) on a closed connection
  starts a new one.
* Closed (FIN both ways, or a RST) connections stay ``close_delay_ns``
  (5 s, Zeek's ``tcp_close_delay``) of capture time, to absorb
  retransmissions, then both streams are closed and the state dropped.
  Connections idle for ``inactivity_timeout_ns`` (5 min, Zeek's
  ``tcp_inactivity_timeout``) are closed the same way.  Timers are checked
  at most once per second of capture time, at the end of a batch.
* Acknowledgements (``use_acks``, default on): after each batch, the last
  ACK each endpoint sent in it is applied to its peer's stream
  (:meth:`StreamReassembler.ack`), so holes the receiver acknowledged are
  given up as gaps, as Zeek does.  Applying them per batch rather than per
  packet means a segment that arrives after an ACK covering it, in the same
  batch, is still used; except that the ACK of a segment (data, SYN or FIN)
  is applied to the peer before that segment's bytes, so the peer's gap comes
  before them in the deliveries, as in Zeek.

Memory: each direction buffers at most ``max_buffered`` (10 MiB) of
out-of-order bytes (see :mod:`analyzer.reassembly.stream`); all connections
together at most ``max_total_buffered`` (256 MiB): over it, the directions
holding the most skip ahead (deliver what they hold, past the holes) until
the total is under half the cap, each with an
``excessive_data_without_further_acks`` weird whose ``addl`` is ``total``.

Weirds (:meth:`TcpReassembly.pop_weirds`, attributed to the frame whose
segment revealed them): ``rexmit_inconsistency``,
``TCP_seq_underflow_or_misorder``, ``truncated_tcp_payload``,
``SYN_seq_jump``, ``excessive_data_without_further_acks``.
"""

from __future__ import annotations

import gc
import socket

import numpy as np

from ..grouping import group_rows
from .deliveries import CompiledRun, ConnKey, Deliveries, Delivery
from .events import Weird
from .kernels import (
    CHUNK_END,
    CHUNK_EOF,
    CHUNK_GAP,
    CHUNK_INSTANCE,
    CHUNK_ORIG,
    CHUNK_ROW,
    CHUNK_START,
    CONN_COLUMNS,
    CONN_EXISTS,
    CONN_ORIG_LOWER,
    CONN_TOUCHED,
    CONN_UID,
    CONN_UID_KNOWN,
    KEY_BYTES,
    STREAM_BASE,
    STREAM_COLUMNS,
    STREAM_EOF_SENT,
    STREAM_FIN,
    STREAM_NEXT,
    STREAM_STARTED,
    classify,
)
from .segments import merged_uids, select, uid_values
from .stream import (
    ACK,
    DEFAULT_MAX_BUFFERED,
    FIN,
    HALF,
    MASK,
    RST,
    SYN,
    Chunk,
    StreamReassembler,
)

NS = 1_000_000_000
DEFAULT_MAX_TOTAL_BUFFERED = 256 * 1024 * 1024
DEFAULT_INACTIVITY_TIMEOUT_NS = 300 * NS
DEFAULT_CLOSE_DELAY_NS = 5 * NS
SWEEP_INTERVAL_NS = NS
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_tuple_new = tuple.__new__   # builds Chunk and Delivery without their Python-level __new__ (hot loop)


# The rows of a stream that has seen nothing (a new StreamReassembler's state).
_UNSTARTED = ((0, 0, 0, 0, -1, 0, 0, 1, 0, 0), (0, 0, 0, 0, -1, 0, 0, 1, 0, 0))


class _Conn:
    """One connection: its key, roles, times and two streams.

    The streams (:class:`StreamReassembler`) are made when the Python path
    first needs them; until then a connection only the compiled pass touched
    holds their state as ``rows`` (two sequences in the order of
    :data:`.kernels.STREAM_COLUMNS`, whose last two are the bytes delivered
    and missed so far; read only while ``_streams`` is None): most
    connections never need the objects.
    """

    __slots__ = ("_streams", "closed_at", "key", "last_ts", "max_buffered", "orig_lower", "rows")

    def __init__(self, key: ConnKey, orig_lower: bool, max_buffered: int, ts: int):
        self.key = key
        self.orig_lower = orig_lower        # whether the originator is the canonical key's first endpoint
        self.max_buffered = max_buffered
        self._streams: tuple[StreamReassembler, StreamReassembler] | None = None
        self.rows = _UNSTARTED
        self.last_ts = ts
        self.closed_at: int | None = None

    @property
    def streams(self) -> tuple[StreamReassembler, StreamReassembler]:
        """(originator's, responder's) stream, made from ``rows`` the first time."""
        if self._streams is None:
            self._streams = (StreamReassembler(self.max_buffered), StreamReassembler(self.max_buffered))
            for stream, row in zip(self._streams, self.rows):
                _set_stream(stream, row)
                stream.delivered_bytes, stream.missed_bytes = row[8], row[9]
        return self._streams


def _conn_key(canon: bytes, orig_lower: bool, uid) -> ConnKey:
    """Addresses as text the way ``analyzer.frames`` writes them (inet_ntop)."""
    first, second = canon[1:19], canon[19:37]
    orig, resp = (first, second) if orig_lower else (second, first)
    if canon[0] == 4:
        family, orig_h, resp_h = socket.AF_INET, orig[:4], resp[:4]
    else:
        family, orig_h, resp_h = socket.AF_INET6, orig[:16], resp[:16]
    return _tuple_new(ConnKey, (socket.inet_ntop(family, orig_h), int.from_bytes(orig[16:18], "big"),
                                socket.inet_ntop(family, resp_h), int.from_bytes(resp[16:18], "big"), uid))



class TcpReassembly:
    """Every TCP connection of a capture, reassembled per direction.

    Args:
        max_buffered: out-of-order bytes one direction may hold.
        max_total_buffered: out-of-order bytes all directions together may hold.
        inactivity_timeout_ns: close a connection idle this long (capture time).
        close_delay_ns: keep a closed connection this long before dropping it.
        use_acks: give up holes that the peer acknowledged.

    Attributes:
        stats: ``segments`` (fed to streams), ``connections`` (created),
            ``delivered_bytes``, ``missed_bytes`` (of closed connections),
            ``buffered_bytes`` (now).
    """

    def __init__(self, max_buffered: int = DEFAULT_MAX_BUFFERED,
                 max_total_buffered: int = DEFAULT_MAX_TOTAL_BUFFERED,
                 inactivity_timeout_ns: int = DEFAULT_INACTIVITY_TIMEOUT_NS,
                 close_delay_ns: int = DEFAULT_CLOSE_DELAY_NS, use_acks: bool = True):
        self.max_buffered = max_buffered
        self.max_total_buffered = max_total_buffered
        self.inactivity_timeout_ns = inactivity_timeout_ns
        self.close_delay_ns = close_delay_ns
        self.use_acks = use_acks
        self._conns: dict[bytes, _Conn] = {}
        self._serial = 0
        self._buffered = 0
        self._last_sweep: int | None = None
        self._now: int | None = None
        self._weirds: list[Weird] = []
        self.stats = {"segments": 0, "connections": 0, "delivered_bytes": 0, "missed_bytes": 0,
                      "buffered_bytes": 0}

    @property
    def connections(self) -> int:
        """Connections currently held."""
        return len(self._conns)

    def pop_weirds(self) -> list[Weird]:
        """The weirds found since the last call."""
        weirds, self._weirds = self._weirds, []
        return weirds

    def feed(self, batch, fields, uid_per_row=None, frame_numbers: np.ndarray | None = None,
             more=()) -> list[Delivery]:
        """Reassemble the TCP segments of one batch.

        Args:
            batch: the frames (:class:`~captures.batch.PacketBatch`).
            fields: ``dissectors.dissect(batch)``.
            uid_per_row: optional sequence of ``len(batch)`` connection uids
                (any hashable values, e.g. ``ConnStage.batch_serial``); rows of
                one connection share one.  Rows whose uid is None (or negative,
                in an integer array) belong to no connection and are skipped.
            frame_numbers: optional ``int64[n]`` frame numbers of the rows
                (default ``batch.first_number + row``).
            more: further parts to handle together with this batch, each a
                tuple ``(batch, fields, uid_per_row, frame_numbers)``: the
                datagrams :class:`~analyzer.reassembly.ip.FragmentReassembler`
                completed from this batch (with the frame numbers it
                returned).  Segments of all parts are taken in frame-number
                order, and acknowledgements after all of them, so a segment
                that was fragmented is not mistaken for a late arrival.

        Returns:
            The deliveries made available, in capture order per direction
            (data first, then the gaps that the batch's acknowledgements and
            timers gave up).  ``Chunk.ts`` is in ns since the epoch and
            ``Chunk.frame`` is the frame number that carried the bytes
            (-1 for a marker made by a timer or :meth:`flush`).
        """
        return self.feed_columns(batch, fields, uid_per_row, frame_numbers, more).to_list()

    def feed_columns(self, batch, fields, uid_per_row=None, frame_numbers: np.ndarray | None = None,
                     more=()) -> Deliveries:
        """:meth:`feed`, with the deliveries as a :class:`~.deliveries.Deliveries`.

        The same deliveries in the same order, but those of the segments the
        compiled pass took stay columns whose bytes are views of the batch's
        buffers (valid until the capture reader refills them): no Python
        object per chunk unless the consumer iterates.
        """
        out: list = []
        parts = [part for part in [(batch, fields, uid_per_row, frame_numbers), *more] if len(part[0])]
        if not parts:
            return Deliveries([], [])
        datas = [memoryview(part[0].data) for part in parts]
        # The loops allocate two small tuples per chunk, all kept: with the cyclic collector
        # on, the generation-2 passes they trigger cost more than the loops themselves.
        # Nothing here makes reference cycles, so the collector is off while they run.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._batch(parts, datas, out)
        finally:
            if collecting:
                gc.enable()
        self.stats["buffered_bytes"] = self._buffered
        # Runs of the Python path's Delivery objects between the compiled runs.
        pieces: list = []
        current: list = []
        for item in out:
            if item.__class__ is CompiledRun:
                if current:
                    pieces.append(current)
                    current = []
                pieces.append(item)
            else:
                current.append(item)
        if current:
            pieces.append(current)
        return Deliveries(pieces, datas)

    def flush(self, ts_ns: int | None = None) -> list[Delivery]:
        """End of capture: close every stream (holes become gaps) and forget every connection.

        Markers made here carry ``ts_ns`` (default: the latest packet time fed).
        """
        out: list[Delivery] = []
        if ts_ns is None:
            ts_ns = self._now
        for conn in self._conns.values():
            self._close(conn, ts_ns, out)
        self._conns.clear()
        self._buffered = 0
        self.stats["buffered_bytes"] = 0
        return out

    # -- internals ----------------------------------------------------------------------------

    def _batch(self, parts, datas: list[memoryview], out) -> None:
        selected = [select(index, *part, self.use_acks) for index, part in enumerate(parts)]
        selected = [columns for columns in selected if columns is not None]
        if selected:
            self._rows(selected, datas, out)
        now = max(int(part[0].ts_ns.max()) for part in parts)
        if self._now is None or now > self._now:
            self._now = now
        if self._last_sweep is None:
            self._last_sweep = now
        elif now - self._last_sweep >= SWEEP_INTERVAL_NS:
            self._last_sweep = now
            self._sweep(now, out)
        if self._buffered > self.max_total_buffered:
            batch, _, _, frame_numbers = parts[0]
            self._shed(now, batch.first_number + len(batch) - 1 if frame_numbers is None
                       else int(frame_numbers[-1]), out)

    def _rows(self, selected: list[dict], datas: list[memoryview], out) -> None:
        if len(selected) == 1:
            c = selected[0]
        else:
            c = {name: np.concatenate([part[name] for part in selected]) for name in selected[0]
                 if name != "uids"}
            order = np.argsort(c["numbers"], kind="stable")
            c = {name: column[order] for name, column in c.items()}
            c["uids"] = merged_uids([part["uids"] for part in selected], [len(part["numbers"]) for part in selected],
                                     order)
        # Connections: the keys grouped, numbered in byte order (the order of the end-of-batch ACKs).
        group, first = group_rows(c["keys"].view(np.uint64))
        unique = np.ascontiguousarray(c["keys"][first, :KEY_BYTES]).view(np.dtype((np.void, KEY_BYTES))).ravel()
        order = np.argsort(unique)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        inverse = rank[group]
        blob = unique[order].tobytes()
        canons = [blob[i:i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES)]
        get = self._conns.get
        conns = [get(canon) for canon in canons]
        uids, lower, numbers, ts_all = c["uids"], c["lower"], c["numbers"], c["ts"]

        acking = c["acking"]
        seg = np.flatnonzero(c["segment"])
        # With integer uids (or none) the compiled pass can follow the connections' state.
        state = _gather(conns, len(seg)) if uids is None or isinstance(uids, np.ndarray) else None
        if len(seg):
            self._segments(seg, c, inverse, datas, uids, canons, conns, out, state)

        if acking.any():
            # The last acknowledgement each endpoint sent, applied to its peer's stream.
            ack_positions = np.flatnonzero(acking)
            last = np.full(2 * len(canons), -1, dtype=np.int64)
            np.maximum.at(last, 2 * inverse[ack_positions] + lower[ack_positions], ack_positions)
            slots = np.flatnonzero(last >= 0)
            js = last[slots]
            if state is not None:
                needed = _acks_with_effect(state, slots, uids[js] if uids is not None else np.full(len(js), -1),
                                           lower[js], c["ack"][js])
                slots, js = slots[needed], js[needed]
            for slot, uid, ack, t, number, sender_lower in zip(
                    slots.tolist(), uid_values(uids, js), c["ack"][js].tolist(), ts_all[js].tolist(),
                    numbers[js].tolist(), lower[js].tolist()):
                conn = conns[slot >> 1]
                if conn is None or (uid is not None and uid != conn.key.uid):
                    continue
                peer_is_orig = sender_lower != conn.orig_lower
                peer = conn.streams[0] if peer_is_orig else conn.streams[1]
                if not peer.started:
                    continue
                before = peer.buffered
                chunks = peer.ack(ack, t, number)
                self._buffered += peer.buffered - before
                for chunk in chunks:
                    out.append(Delivery(conn.key, peer_is_orig, chunk))

    def _segments(self, seg: np.ndarray, c: dict, inverse: np.ndarray, datas, uids, canons, conns, out,
                  state) -> None:
        """The segments (rows ``seg`` of the columns ``c``), in capture order.

        With ``state`` (from :func:`_gather`), :func:`.kernels.classify` takes those it
        can reproduce and Python the others (and opens the connections it
        found), in capture order; then the compiled ones' deliveries are made
        in bulk and the two merged, so ``out`` is as if every segment had
        gone through :meth:`_python_segments`.
        """
        m = len(seg)
        acks = np.where(c["acking"][seg], c["ack"][seg], -1)
        slot = inverse[seg]
        chunks = keys = None
        if state is not None:
            uid = np.full(m, -1, dtype=np.int64) if uids is None else uids[seg]
            k = len(conns)
            instance, slow, conn_state, stream_state = state
            code, opened, cut, chunks = classify(
                slot, c["lower"][seg], c["flags"][seg], c["seq"][seg], c["stated"][seg], c["start"][seg],
                c["end"][seg], acks, uid, c["ts"][seg], instance, slow, conn_state, stream_state, self._serial)
            keys = np.empty(len(conn_state), dtype=object)
            for u in np.flatnonzero(conn_state[:k, CONN_EXISTS]).tolist():
                keys[u] = conns[u].key
            touched = np.flatnonzero(conn_state[:k, CONN_TOUCHED]).tolist()
            for u, conn_row, orig_row, resp_row in zip(touched, conn_state[touched].tolist(),
                                                      stream_state[0::2][touched].tolist(),
                                                      stream_state[1::2][touched].tolist()):
                _restore(conns[u], conn_row, orig_row, resp_row)
            events = np.flatnonzero(code)
            new = opened[events]
            restores = [None] * len(events)
            for e, i, conn_row, orig_row, resp_row in zip(
                    np.flatnonzero(new >= 0).tolist(), new[new >= 0].tolist(), conn_state[new[new >= 0]].tolist(),
                    stream_state[2 * new[new >= 0]].tolist(), stream_state[2 * new[new >= 0] + 1].tolist()):
                restores[e] = (i, conn_row, orig_row, resp_row)
            segment_uids = uid_values(uid, events)
        else:
            events = np.arange(m)
            restores = [None] * m
            segment_uids = [uids[j] for j in seg.tolist()]
        rows = seg[events]
        made: list[Delivery] = []
        ends: list[int] = []
        self._python_segments(
            c["part"][rows].tolist(), c["start"][rows].tolist(), c["end"][rows].tolist(), datas,
            c["seq"][rows].tolist(), c["flags"][rows].tolist(), c["stated"][rows].tolist(), c["ts"][rows].tolist(),
            c["numbers"][rows].tolist(), inverse[rows].tolist(), c["lower"][rows].tolist(), segment_uids,
            canons, conns, made, acks[events].tolist(), restores, keys, ends)
        self.stats["segments"] += m
        if chunks is None or not len(chunks):
            out.extend(made)
            return
        # The compiled segments' deliveries as columns, merged with Python's at their segments.
        at = seg[chunks[:, CHUNK_ROW]]
        instance = chunks[:, CHUNK_INSTANCE]
        run = CompiledRun(keys[instance], instance, chunks[:, CHUNK_ORIG] != 0, c["part"][at], chunks[:, CHUNK_START],
                          chunks[:, CHUNK_END], c["ts"][at], chunks[:, CHUNK_GAP], c["numbers"][at],
                          chunks[:, CHUNK_EOF] != 0)
        if not made:
            out.append(run)
            return
        # Python's deliveries of each segment go before the compiled ones of the same segment (its
        # connection's opening closed the one before) and after those of earlier segments.
        last = np.asarray(ends, dtype=np.int64)
        first = np.concatenate(([0], last[:-1]))
        some = last > first
        taken = 0
        for before, a, b in zip(cut[events][some].tolist(), first[some].tolist(), last[some].tolist()):
            if before > taken:
                out.append(run.take(slice(taken, before)))
            out.extend(made[a:b])
            taken = before
        if taken < len(run):
            out.append(run.take(slice(taken, len(run))))

    def _python_segments(self, part, starts, ends, datas, seqs, flags, stated, ts, numbers, inverse, lower, uids,
                         canons, conns, out, acks, restores, keys, marks) -> None:
        """The per-segment loop in Python (StreamReassembler.add's fast path inlined).

        ``acks``: each segment's acknowledgement number (-1: none).  One that
        is ahead of the peer's next expected byte gives up the peer's hole
        before the segment's own bytes are delivered, as Zeek processes a
        packet's ACK before its data (``TCPSessionAdapter::DeliverPacket``):
        otherwise a request whose tail was lost would end only after the
        response that acknowledged it.

        ``restores``: per segment None, or ``(instance, connection state,
        originator's stream state, responder's)`` for one that
        :func:`.kernels.classify` took: only its connection is opened here
        (its key stored in ``keys[instance]``) and given the state the
        compiled segments left.  ``marks`` gets ``len(out)`` after each segment.
        """
        weirds = self._weirds
        append = out.append
        mark = marks.append
        new_tuple = _tuple_new
        chunk_type, delivery_type = Chunk, Delivery
        data = datas[0]
        single = len(datas) == 1
        for p, u, f, t, a, b, size, seq, number, sender_lower, ack, uid, restore in zip(
                part, inverse, flags, ts, starts, ends, stated, seqs, numbers, lower, acks, uids, restores):
            if restore is not None:
                conn = conns[u] = self._open(conns[u], canons[u], sender_lower, f, t, uid, out)
                instance, conn_row, orig_row, resp_row = restore
                keys[instance] = conn.key
                _restore(conn, conn_row, orig_row, resp_row)
                mark(len(out))
                continue
            if not single:
                data = datas[p]
            conn = conns[u]
            # A new connection: none yet, another uid, or (no uids given) a SYN (0x12: SYN | ACK;
            # 0x02: SYN) on a closed one.
            if conn is None or (uid is not None and uid != conn.key.uid) or (
                    uid is None and f & 0x12 == 0x02 and conn.closed_at is not None):
                conn = self._open(conn, canons[u], sender_lower, f, t, uid, out)
                conns[u] = conn
            orig_side = sender_lower == conn.orig_lower
            stream = conn.streams[0] if orig_side else conn.streams[1]
            conn.last_ts = t
            if ack >= 0:
                peer = conn.streams[1] if orig_side else conn.streams[0]
                if peer.started and (ack - peer._base - peer._next) & 0xFFFFFFFF:
                    before = peer.buffered
                    for chunk in peer.ack(ack, t, number):
                        append(delivery_type(conn.key, not orig_side, chunk))
                    self._buffered += peer.buffered - before
            # 0x07: FIN | SYN | RST.
            if (not f & 0x07 and size == b - a and not stream._blocks and stream.started
                    and stream.fin is None and not (seq - stream._base - stream._next) & 0xFFFFFFFF):
                # In-order data on a stream with nothing buffered: StreamReassembler.add's fast path.
                stream._next += size
                stream.delivered_bytes += size
                append(new_tuple(delivery_type, (conn.key, orig_side,
                                                 new_tuple(chunk_type, (data[a:b].tobytes(), t, 0, number,
                                                                        False)))))
                mark(len(out))
                continue
            before = stream.buffered
            chunks = stream.add(seq, data[a:b] if b > a else b"", t, f, number, size)
            if stream.buffered != before:
                self._buffered += stream.buffered - before
            if chunks:
                key = conn.key
                for chunk in chunks:
                    append(delivery_type(key, orig_side, chunk))
            if stream.weirds:
                for name, addl in stream.weirds:
                    weirds.append(Weird(number, name, addl))
                stream.weirds.clear()
            if f & (FIN | RST) and conn.closed_at is None:
                first, second = conn.streams
                if first.reset or second.reset or (first.fin is not None and second.fin is not None):
                    conn.closed_at = t
            mark(len(out))

    def _open(self, old, canon: bytes, sender_lower: bool, f: int, t: int, uid, out) -> _Conn:
        """A new connection (closing ``old`` first when it is being replaced)."""
        if old is not None:
            self._close(old, t, out)
        # The sender is the originator, unless it answers a SYN (Zeek flips the connection).
        orig_lower = sender_lower if f & (SYN | ACK) != (SYN | ACK) else not sender_lower
        self._serial += 1
        conn = _Conn(_conn_key(canon, orig_lower, uid if uid is not None else self._serial), orig_lower,
                     self.max_buffered, t)
        self.stats["connections"] += 1
        self._conns[canon] = conn
        return conn

    def _close(self, conn: _Conn, ts, out) -> None:
        if conn._streams is None:
            self._close_rows(conn, ts, out)
            return
        for side, stream in zip((True, False), conn.streams):
            self._buffered -= stream.buffered
            for chunk in stream.close(ts):
                out.append(Delivery(conn.key, side, chunk))
            self.stats["delivered_bytes"] += stream.delivered_bytes
            self.stats["missed_bytes"] += stream.missed_bytes
            stream.weirds.clear()

    def _close_rows(self, conn: _Conn, ts, out) -> None:
        """:meth:`_close` of a connection without stream objects: what
        :meth:`StreamReassembler.close` does for a stream holding no blocks."""
        for side, row in zip((True, False), conn.rows):
            started, _, _, next_offset, fin, _, eof_sent, _, delivered, missed = row
            if started:
                if fin > next_offset:
                    # A FIN beyond the bytes delivered: the rest is a gap (StreamReassembler._skip_to).
                    missed += fin - next_offset
                    out.append(Delivery(conn.key, side, Chunk(b"", ts, fin - next_offset, -1)))
                if not eof_sent:
                    out.append(Delivery(conn.key, side, Chunk(b"", ts, 0, -1, True)))
            self.stats["delivered_bytes"] += delivered
            self.stats["missed_bytes"] += missed

    def _sweep(self, now: int, out) -> None:
        done = [canon for canon, conn in self._conns.items()
                if (conn.closed_at is not None and now - conn.closed_at > self.close_delay_ns)
                or now - conn.last_ts > self.inactivity_timeout_ns]
        for canon in done:
            self._close(self._conns.pop(canon), now, out)

    def _shed(self, now: int, frame: int, out) -> None:
        # A connection without stream objects holds no out-of-order bytes.
        streams = [(stream.buffered, side, stream, conn) for conn in self._conns.values() if conn._streams is not None
                   for side, stream in zip((True, False), conn._streams) if stream.buffered]
        streams.sort(key=lambda item: -item[0])
        for buffered, side, stream, conn in streams:
            if self._buffered <= self.max_total_buffered // 2:
                break
            self._weirds.append(Weird(frame, "excessive_data_without_further_acks", "total"))
            for chunk in stream.drain(now):
                out.append(Delivery(conn.key, side, chunk))
            self._buffered -= buffered


def _gather(conns: list, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The state of the batch's connections for :func:`.kernels.classify`, with room for ``m`` more.

    Returns its ``instance`` (``int64[k]``, ``k = len(conns)``), ``slow``
    (``bool[k]``), ``conn`` (``int64[k + m, CONN_COLUMNS]``; a None
    connection is a row of zeros: none exists) and ``stream``
    (``int64[2 * (k + m), STREAM_COLUMNS]``) arguments.
    """
    k = len(conns)
    conn_state = np.zeros((k + m, CONN_COLUMNS), dtype=np.int64)
    stream_state = np.zeros((2 * (k + m), STREAM_COLUMNS), dtype=np.int64)
    present = [u for u, conn in enumerate(conns) if conn is not None]
    if present:
        conn_state[present] = [_conn_row(conns[u]) for u in present]
        rows = np.asarray(present, dtype=np.int64)
        stream_state[np.stack([2 * rows, 2 * rows + 1], axis=1).ravel()] = [
            row for u in present for row in _stream_rows(conns[u])]
    return np.arange(k, dtype=np.int64), np.zeros(k, dtype=bool), conn_state, stream_state


def _acks_with_effect(state, slots: np.ndarray, uids: np.ndarray, lower: np.ndarray, acks: np.ndarray) -> np.ndarray:
    """Which of the end-of-batch acknowledgements (``slots``: 2 * slot + sender is lower) may do
    something: those of connections left to Python, and those ahead of a started peer's next byte.

    ``state`` is what :func:`.kernels.classify` left (the connections' state now, except for
    those left to Python); ``uids``: ``int64`` (-1: none).  Returns ``bool[len(slots)]``.
    """
    instance, slow, conn_state, stream_state = state
    u = slots >> 1
    current = conn_state[instance[u]]
    exists = current[:, CONN_EXISTS] != 0
    known = current[:, CONN_UID_KNOWN] != 0
    has_uid = uids >= 0
    other = has_uid & known & (uids != current[:, CONN_UID])
    peer = stream_state[2 * instance[u] + (lower == (current[:, CONN_ORIG_LOWER] != 0))]
    ahead = (acks - peer[:, STREAM_BASE] - peer[:, STREAM_NEXT]) & MASK
    # An acknowledgement past every byte up to a FIN already delivered, with the end of stream
    # sent (typically the ACK of the FIN, whose sequence number is no data), changes nothing.
    fin, next_offset = peer[:, STREAM_FIN], peer[:, STREAM_NEXT]
    open_end = (fin < 0) | (next_offset < fin) | (peer[:, STREAM_EOF_SENT] == 0)
    return slow[u] | (exists & has_uid & ~known) | (
        exists & ~other & (peer[:, STREAM_STARTED] != 0) & (ahead != 0) & (ahead < HALF) & open_end)


def _conn_row(conn: _Conn) -> tuple:
    # A uid the compiled pass cannot compare (not an int64) leaves the connection to Python.
    uid = conn.key.uid
    known = type(uid) is int and _INT64_MIN <= uid <= _INT64_MAX
    return 1, known, uid if known else 0, conn.orig_lower, conn.closed_at is not None, 0, 0, 0


def _stream_rows(conn: _Conn) -> tuple:
    """The connection's two stream rows for :func:`.kernels.classify` (bytes delivered and missed: 0)."""
    if conn._streams is None:
        return tuple((*row[:7], 1, 0, 0) for row in conn.rows)
    return tuple((stream.started, stream.saw_syn, stream._base, stream._next, -1 if stream.fin is None else stream.fin,
                  stream.reset, stream.eof_sent, not stream._blocks and not stream.closed, 0, 0)
                 for stream in conn._streams)


def _restore(conn: _Conn, conn_row: list, orig_row: list, resp_row: list) -> None:
    """Give a connection the state :func:`.kernels.classify` left (rows as lists, unpacked in column order;
    their bytes delivered and missed are this batch's)."""
    _, _, _, _, closed, closed_at, conn.last_ts, _ = conn_row
    if closed and conn.closed_at is None:
        conn.closed_at = closed_at
    if conn._streams is None:
        for row, before in zip((orig_row, resp_row), conn.rows):
            row[8] += before[8]
            row[9] += before[9]
        conn.rows = (orig_row, resp_row)
        return
    for stream, row in ((conn._streams[0], orig_row), (conn._streams[1], resp_row)):
        _set_stream(stream, row)
        stream.delivered_bytes += row[8]
        stream.missed_bytes += row[9]


def _set_stream(stream: StreamReassembler, row: list) -> None:
    started, saw_syn, stream._base, stream._next, fin, reset, eof_sent = row[:7]
    stream.started = started != 0
    stream.saw_syn = saw_syn != 0
    stream.fin = None if fin < 0 else fin
    stream.reset = reset != 0
    stream.eof_sent = eof_sent != 0
