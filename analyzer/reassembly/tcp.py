"""TCP stream reassembly for a whole capture: :class:`TcpReassembly` feeds batches to per-direction
:class:`~analyzer.reassembly.stream.StreamReassembler` objects.

A pipeline stage calls :meth:`TcpReassembly.feed` with each batch and its
``dissectors.dissect`` columns, and gets back, in capture order, the
:class:`Delivery` objects (connection, direction, :class:`Chunk`) that the
batch made available; :meth:`TcpReassembly.flush` at the end of the capture
closes every stream.

Per batch, numpy selects the TCP rows (hidden columns of the innermost
packet: ``_tcp.seq``, ``_tcp.flags``, ``_tcp.len``, ``_tcp.ack``,
``_payload.start``/``_payload.end``, ``_l4.srcport``/``_l4.dstport``,
``_ip.version``, ``_ip.src4``/``_ip.dst4`` or ``_ip.src6``/``_ip.dst6``) that
matter: segments with payload, SYN, FIN or RST, and ACKs.  Their
connections (unordered endpoint pairs) are grouped with one ``np.unique``,
so connection lookup is once per connection per batch; only the
per-segment step is Python (with the in-order case inlined).  Segments
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
from typing import NamedTuple

import numpy as np

from .events import Weird
from .stream import ACK, DEFAULT_MAX_BUFFERED, FIN, RST, SYN, Chunk, StreamReassembler

NS = 1_000_000_000
DEFAULT_MAX_TOTAL_BUFFERED = 256 * 1024 * 1024
DEFAULT_INACTIVITY_TIMEOUT_NS = 300 * NS
DEFAULT_CLOSE_DELAY_NS = 5 * NS
SWEEP_INTERVAL_NS = NS
KEY_BYTES = 37      # version, then two endpoints of 16 address bytes and 2 port bytes
_tuple_new = tuple.__new__   # builds Chunk and Delivery without their Python-level __new__ (hot loop)


class ConnKey(NamedTuple):
    """A TCP connection, Zeek ``conn_id`` style.

    Attributes:
        orig_h, orig_p, resp_h, resp_p: originator and responder address
            (text) and port.
        uid: the uid given to :meth:`TcpReassembly.feed`, or else a serial
            number unique to this connection within the reassembler (two
            connections on the same four values differ by it).
    """

    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    uid: object


class Delivery(NamedTuple):
    """Bytes (or a gap, or end-of-stream) of one direction of one connection."""

    key: ConnKey
    is_orig: bool
    chunk: Chunk


class _Conn:
    __slots__ = ("closed_at", "key", "last_ts", "orig_lower", "streams")

    def __init__(self, key: ConnKey, orig_lower: bool, max_buffered: int, ts: int):
        self.key = key
        self.orig_lower = orig_lower        # whether the originator is the canonical key's first endpoint
        self.streams = (StreamReassembler(max_buffered), StreamReassembler(max_buffered))
        self.last_ts = ts
        self.closed_at: int | None = None


def _conn_key(canon: bytes, orig_lower: bool, uid) -> ConnKey:
    """Addresses as text the way ``analyzer.frames`` writes them (inet_ntop)."""
    first, second = canon[1:19], canon[19:37]
    orig, resp = (first, second) if orig_lower else (second, first)
    if canon[0] == 4:
        family, orig_h, resp_h = socket.AF_INET, orig[:4], resp[:4]
    else:
        family, orig_h, resp_h = socket.AF_INET6, orig[:16], resp[:16]
    return ConnKey(socket.inet_ntop(family, orig_h), int.from_bytes(orig[16:18], "big"),
                   socket.inet_ntop(family, resp_h), int.from_bytes(resp[16:18], "big"), uid)


_REQUIRED = ("_tcp.seq", "_tcp.flags", "_tcp.len", "_payload.start", "_payload.end", "_l4.srcport",
             "_l4.dstport", "_ip.version")


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
        out: list[Delivery] = []
        parts = [part for part in [(batch, fields, uid_per_row, frame_numbers), *more] if len(part[0])]
        if not parts:
            return out
        # The loops allocate two small tuples per chunk, all kept: with the cyclic collector
        # on, the generation-2 passes they trigger cost more than the loops themselves.
        # Nothing here makes reference cycles, so the collector is off while they run.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._batch(parts, out)
        finally:
            if collecting:
                gc.enable()
        self.stats["buffered_bytes"] = self._buffered
        return out

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

    def _batch(self, parts, out) -> None:
        selected = [_select(index, *part, self.use_acks) for index, part in enumerate(parts)]
        selected = [columns for columns in selected if columns is not None]
        if selected:
            self._rows(selected, [memoryview(part[0].data) for part in parts], out)
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
            if any(part["uids"] is not None for part in selected):
                uids = [uid for part in selected
                        for uid in (part["uids"] if part["uids"] is not None else [None] * len(part["numbers"]))]
                c["uids"] = [uids[i] for i in order.tolist()]
            else:
                c["uids"] = None
        unique, inverse = np.unique(c["keys"], return_inverse=True)
        canons = [u.tobytes() for u in unique]
        get = self._conns.get
        conns = [get(canon) for canon in canons]
        uids, lower, numbers, ts_all = c["uids"], c["lower"], c["numbers"], c["ts"]

        acking = c["acking"]
        seg = np.flatnonzero(c["segment"])
        if len(seg):
            self._segments(seg.tolist(), c["part"][seg].tolist(), c["start"][seg].tolist(),
                           c["end"][seg].tolist(), datas, c["seq"][seg].tolist(), c["flags"][seg].tolist(),
                           c["stated"][seg].tolist(), ts_all[seg].tolist(), numbers[seg].tolist(),
                           inverse[seg].tolist(), lower[seg].tolist(), uids, canons, conns, out,
                           np.where(acking[seg], c["ack"][seg], -1).tolist())

        if acking.any():
            # The last acknowledgement each endpoint sent, applied to its peer's stream.
            ack_positions = np.flatnonzero(acking)
            last = np.full(2 * len(canons), -1, dtype=np.int64)
            np.maximum.at(last, 2 * inverse[ack_positions] + lower[ack_positions], ack_positions)
            slots = np.flatnonzero(last >= 0)
            js = last[slots]
            for slot, j, ack, t, number, sender_lower in zip(
                    slots.tolist(), js.tolist(), c["ack"][js].tolist(), ts_all[js].tolist(),
                    numbers[js].tolist(), lower[js].tolist()):
                conn = conns[slot >> 1]
                if conn is None or (uids is not None and uids[j] is not None and uids[j] != conn.key.uid):
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

    def _segments(self, positions, part, starts, ends, datas, seqs, flags, stated, ts, numbers, inverse,
                  lower, uids, canons, conns, out, acks) -> None:
        """The per-segment loop (hot: locals only, and StreamReassembler.add's fast path inlined).

        ``acks``: each segment's acknowledgement number (-1: none).  One that
        is ahead of the peer's next expected byte gives up the peer's hole
        before the segment's own bytes are delivered, as Zeek processes a
        packet's ACK before its data (``TCPSessionAdapter::DeliverPacket``):
        otherwise a request whose tail was lost would end only after the
        response that acknowledged it.
        """
        weirds = self._weirds
        append = out.append
        new_tuple = _tuple_new
        chunk_type, delivery_type = Chunk, Delivery
        data = datas[0]
        single = len(datas) == 1
        for j, p, u, f, t, a, b, size, seq, number, sender_lower, ack in zip(
                positions, part, inverse, flags, ts, starts, ends, stated, seqs, numbers, lower, acks):
            if not single:
                data = datas[p]
            conn = conns[u]
            uid = uids[j] if uids is not None else None
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
        self.stats["segments"] += len(positions)

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
        for side, stream in zip((True, False), conn.streams):
            self._buffered -= stream.buffered
            for chunk in stream.close(ts):
                out.append(Delivery(conn.key, side, chunk))
            self.stats["delivered_bytes"] += stream.delivered_bytes
            self.stats["missed_bytes"] += stream.missed_bytes
            stream.weirds.clear()

    def _sweep(self, now: int, out) -> None:
        done = [canon for canon, conn in self._conns.items()
                if (conn.closed_at is not None and now - conn.closed_at > self.close_delay_ns)
                or now - conn.last_ts > self.inactivity_timeout_ns]
        for canon in done:
            self._close(self._conns.pop(canon), now, out)

    def _shed(self, now: int, frame: int, out) -> None:
        streams = [(stream.buffered, side, stream, conn) for conn in self._conns.values()
                   for side, stream in zip((True, False), conn.streams) if stream.buffered]
        streams.sort(key=lambda item: -item[0])
        for buffered, side, stream, conn in streams:
            if self._buffered <= self.max_total_buffered // 2:
                break
            self._weirds.append(Weird(frame, "excessive_data_without_further_acks", "total"))
            for chunk in stream.drain(now):
                out.append(Delivery(conn.key, side, chunk))
            self._buffered -= buffered


def _select(index: int, batch, fields, uid_per_row, frame_numbers, use_acks: bool) -> dict | None:
    """The columns of one part's TCP rows that matter: segments (payload, SYN, FIN, RST) and ACKs."""
    values, valid = fields.values, fields.valid
    if not all(name in values for name in _REQUIRED):
        return None
    rows = np.flatnonzero(valid["_tcp.seq"] & valid["_payload.start"] & valid["_ip.version"]
                          & valid["_tcp.len"])
    if not len(rows):
        return None
    flags = values["_tcp.flags"][rows]
    stated = values["_tcp.len"][rows]
    segment = (stated > 0) | ((flags & (SYN | FIN | RST)) != 0)
    if use_acks and "_tcp.ack" in values:
        acking = ((flags & ACK) != 0) & ((flags & RST) == 0) & valid["_tcp.ack"][rows]
        ack = values["_tcp.ack"][rows]
    else:
        acking = np.zeros(len(rows), dtype=bool)
        ack = np.zeros(len(rows), dtype=np.int64)
    keep = segment | acking
    if uid_per_row is not None:
        # Rows the connection tracker put in no connection (uid None, or a negative serial:
        # e.g. a bad checksum, which Zeek drops) are not reassembled either.
        if isinstance(uid_per_row, np.ndarray) and uid_per_row.dtype.kind in "iu":
            keep &= uid_per_row[rows] >= 0
        else:
            keep &= np.fromiter((uid_per_row[r] is not None for r in rows.tolist()), dtype=bool,
                                count=len(rows))
    if not keep.all():
        rows, flags, stated, segment, acking, ack = (rows[keep], flags[keep], stated[keep], segment[keep],
                                                     acking[keep], ack[keep])
    if not len(rows):
        return None
    keys, lower = _connection_keys(values, rows)
    start = values["_payload.start"][rows]
    numbers = rows + batch.first_number if frame_numbers is None else np.asarray(frame_numbers)[rows]
    return {
        "keys": keys, "lower": lower, "flags": flags, "stated": stated, "segment": segment,
        "acking": acking, "ack": ack, "seq": values["_tcp.seq"][rows], "start": start,
        "end": np.maximum(values["_payload.end"][rows], start), "ts": batch.ts_ns[rows],
        "numbers": numbers.astype(np.int64), "part": np.full(len(rows), index, dtype=np.int64),
        "uids": None if uid_per_row is None else (uid_per_row[rows].tolist() if isinstance(uid_per_row, np.ndarray)
                                                  else [uid_per_row[r] for r in rows.tolist()]),
    }


def _connection_keys(values, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected keys of the rows' connections, and which end sent each row.

    Returns ``void37[k]`` (IP version, then the lower and the higher endpoint,
    each 16 address bytes, IPv4 in the first 4, and 2 port bytes, compared
    as byte strings) and ``bool[k]``: whether the row's sender is the lower
    endpoint.
    """
    k = len(rows)
    source = np.zeros((k, 18), dtype=np.uint8)
    destination = np.zeros((k, 18), dtype=np.uint8)
    version = values["_ip.version"][rows]
    v4 = version == 4
    if v4.any() and "_ip.src4" in values:
        r4 = rows[v4]
        shifts = np.array([24, 16, 8, 0], dtype=np.uint64)
        for column, side in (("_ip.src4", source), ("_ip.dst4", destination)):
            address = values[column][r4].astype(np.uint64)
            side[v4, :4] = ((address[:, None] >> shifts) & 0xFF).astype(np.uint8)
    v6 = version == 6
    if v6.any() and "_ip.src6" in values:
        r6 = rows[v6]
        source[v6, :16] = values["_ip.src6"][r6]
        destination[v6, :16] = values["_ip.dst6"][r6]
    for column, side in (("_l4.srcport", source), ("_l4.dstport", destination)):
        port = values[column][rows]
        side[:, 16] = (port >> 8) & 0xFF
        side[:, 17] = port & 0xFF
    differ = source != destination
    first = differ.argmax(axis=1)
    index = np.arange(k)
    lower = source[index, first] <= destination[index, first]
    keys = np.empty((k, KEY_BYTES), dtype=np.uint8)
    keys[:, 0] = version
    keys[:, 1:19] = np.where(lower[:, None], source, destination)
    keys[:, 19:37] = np.where(lower[:, None], destination, source)
    return keys.view(np.dtype((np.void, KEY_BYTES))).ravel(), lower
