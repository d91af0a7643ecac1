"""What TCP reassembly hands the stream readers: :class:`Delivery` objects, or one batch's as columns.

:meth:`.tcp.TcpReassembly.feed` returns a list of :class:`Delivery`
(connection, direction, :class:`~.stream.Chunk`); :meth:`.tcp.TcpReassembly.feed_columns`
returns the same deliveries as a :class:`Deliveries`, in the same order,
without making a Python object per chunk for the segments its compiled pass
took: their bytes stay where they are in the batch's buffer (a zero-copy
view, as Zeek's reassembler hands its analyzers a pointer into the packet),
and a consumer that wants objects asks for them (iteration,
:meth:`Deliveries.wanted`), or reads the columns (:attr:`Deliveries.total_bytes`).
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

import numpy as np

from .stream import Chunk

_tuple_new = tuple.__new__   # builds Chunk and Delivery without their Python-level __new__ (hot loop)


class ConnKey(NamedTuple):
    """A TCP connection, Zeek ``conn_id`` style.

    Attributes:
        orig_h, orig_p, resp_h, resp_p: originator and responder address
            (text) and port.
        uid: the uid given to :meth:`.tcp.TcpReassembly.feed`, or else a serial
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


class CompiledRun:
    """Consecutive deliveries made by the compiled pass, as columns (each ``[r]``).

    ``key`` (object: :class:`ConnKey`), ``connection`` (int64: the same number
    for the same connection within one feed), ``is_orig`` (bool), ``source`` (int64:
    which buffer of :class:`Deliveries` holds the bytes), ``start``/``end``
    (int64 byte offsets in it; ``end == start`` for a marker), ``ts`` (int64
    ns since the epoch), ``gap_before`` (int64 bytes), ``frame`` (int64
    frame number), ``eof`` (bool).
    """

    __slots__ = ("connection", "end", "eof", "frame", "gap_before", "is_orig", "key", "source", "start", "ts")

    def __init__(self, key, connection, is_orig, source, start, end, ts, gap_before, frame, eof):
        self.key, self.connection, self.is_orig = key, connection, is_orig
        self.source, self.start, self.end = source, start, end
        self.ts, self.gap_before, self.frame, self.eof = ts, gap_before, frame, eof

    def __len__(self) -> int:
        return len(self.start)

    def take(self, rows) -> CompiledRun:
        """The rows ``rows`` (a slice: views; a boolean mask: copies)."""
        return CompiledRun(*(getattr(self, name)[rows] for name in _RUN_COLUMNS))

    def objects(self, buffers: list) -> list[Delivery]:
        """The rows as :class:`Delivery` objects (their bytes copied out of ``buffers``)."""
        starts, stops = self.start.tolist(), self.end.tolist()
        if len(buffers) == 1:
            data = buffers[0]
            payloads = [data[a:b].tobytes() if b > a else b"" for a, b in zip(starts, stops)]
        else:
            payloads = [buffers[p][a:b].tobytes() if b > a else b"" for p, a, b in
                        zip(self.source.tolist(), starts, stops)]
        chunks = map(_tuple_new, repeat(Chunk), zip(payloads, self.ts.tolist(), self.gap_before.tolist(),
                                                    self.frame.tolist(), self.eof.tolist()))
        return list(map(_tuple_new, repeat(Delivery), zip(self.key.tolist(), self.is_orig.tolist(), chunks)))


_RUN_COLUMNS = ("key", "connection", "is_orig", "source", "start", "end", "ts", "gap_before", "frame", "eof")


class Deliveries:
    """The deliveries of one :meth:`.tcp.TcpReassembly.feed_columns` call, in order.

    Made of pieces in delivery order: lists of :class:`Delivery` (what the
    Python path made: out-of-order data, gaps, ends of stream, timers) and
    :class:`CompiledRun` columns whose bytes are views of ``buffers`` (the
    batch's data, and that of the datagrams fed with it).  Those views are
    valid as long as the batch's buffer is: read (or copy) them before the
    capture reader refills it (``open_capture(..., reuse_buffers=True)``).

    ``len()`` is the number of deliveries; iterating yields them as
    :class:`Delivery` objects, exactly the list
    :meth:`.tcp.TcpReassembly.feed` returns.
    """

    __slots__ = ("buffers", "pieces")

    def __init__(self, pieces: list, buffers: list):
        self.pieces = pieces
        self.buffers = buffers

    def __len__(self) -> int:
        return sum(len(piece) for piece in self.pieces)

    def __iter__(self):
        return iter(self.to_list())

    def wanted(self, ignores: list):
        """The deliveries piece by piece, less those no reader wants, for several stream readers.

        ``ignores``: per reader, None (it wants everything) or a function
        ``ignores(key) -> bool`` saying whether the reader would now drop every
        delivery of that connection (it gave up on it: not its protocol, done,
        picked up mid-stream) and keep doing so.  It is asked once per
        connection per compiled run, before the run is given.

        Yields ``(objects, readers)`` per piece, in order: ``objects`` a list
        of :class:`Delivery`; ``readers`` None when every reader takes every
        one of them, else per delivery an int whose bit ``i`` says whether
        reader ``i`` is to be given it.  Giving each reader the deliveries it is
        said to want has the same effect as giving it every delivery, with
        fewer objects and calls.
        """
        for piece in self.pieces:
            if piece.__class__ is not CompiledRun:
                if piece:
                    yield piece, None
                continue
            if all(ignore is None for ignore in ignores):
                yield piece.objects(self.buffers), None
                continue
            _, first, inverse = np.unique(piece.connection, return_index=True, return_inverse=True)
            keys = piece.key[first].tolist()
            readers = np.zeros(len(keys), dtype=np.int64)
            for bit, ignore in enumerate(ignores):
                wants = True if ignore is None else ~np.fromiter(map(ignore, keys), dtype=bool, count=len(keys))
                readers |= np.where(wants, 1 << bit, 0)
            readers = readers[inverse]
            anyone = readers != 0
            if anyone.all():
                yield piece.objects(self.buffers), readers.tolist()
            elif anyone.any():
                yield piece.take(anyone).objects(self.buffers), readers[anyone].tolist()

    def to_list(self) -> list[Delivery]:
        """Every delivery as a :class:`Delivery` (what :meth:`.tcp.TcpReassembly.feed` returns)."""
        out: list[Delivery] = []
        for piece in self.pieces:
            out.extend(piece.objects(self.buffers) if piece.__class__ is CompiledRun else piece)
        return out

    @property
    def total_bytes(self) -> int:
        """Stream bytes delivered (the sum of the chunks' data lengths; gaps not counted)."""
        return sum(int((piece.end - piece.start).sum()) if piece.__class__ is CompiledRun
                   else sum(len(delivery.chunk.data) for delivery in piece) for piece in self.pieces)
