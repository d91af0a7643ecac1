"""One direction of a TCP connection put back in order: a pure, sans-I/O reassembler.

:class:`StreamReassembler` is given the segments one endpoint sent, in the
order they were captured, and hands back the byte stream in order as
:class:`Chunk` objects.  It never reads packets or clocks itself: whoever
feeds it (``analyzer.reassembly.tcp.TcpReassembly``, or a test) says what
arrived and when.

Behaviour (Zeek's ``TCP_Reassembler`` where it has one):

* Sequence numbers: a SYN sets the stream start to ISN + 1; without one the
  first segment with data (or a FIN) sets it (a mid-stream start).  Each
  32-bit sequence number is read as the stream offset nearest to the next
  expected byte (modular arithmetic, so wrap-around past 2**32 is seamless).
* In order data is delivered at once.  Out-of-order data is buffered until
  the hole before it is filled.  Data already delivered (retransmissions,
  keep-alives) is dropped; the part of a segment that is new is kept.
* Overlaps are first-wins, as in Zeek: bytes already buffered are kept and a
  later segment only fills holes.  Overlapping bytes that differ give a
  ``rexmit_inconsistency`` weird (Zeek raises an event of that name; it has
  no weird for it).  Only undelivered (buffered) bytes are compared.
* Data below the stream start is dropped; when it starts before the octet
  before the stream (the SYN's, or the one Zeek imagines for a mid-stream
  start, where keep-alives probe) it gives ``TCP_seq_underflow_or_misorder``
  (not for RST segments, as Zeek).
* A segment whose payload was not all captured (``length`` beyond the
  bytes given) gives ``truncated_tcp_payload`` and its data is not used,
  as in Zeek; its length still places a FIN.
* A second SYN with another ISN gives ``SYN_seq_jump`` and is ignored.
* Gaps: a hole is given up on (a) when the peer acknowledges bytes beyond it
  (:meth:`ack`: Zeek's ack-driven gaps), (b) when the buffered out-of-order
  bytes exceed ``max_buffered`` (default 10 MiB, Zeek's
  ``tcp_excessive_data_without_further_acks``; weird
  ``excessive_data_without_further_acks``; the stream skips ahead, hole by
  hole, until it is under the cap again), (c) at :meth:`close` (FIN, RST,
  end of capture, timeout: everything buffered is delivered, and a hole
  before a FIN is given up too).  A gap is reported as ``gap_before`` on the
  next chunk, or as a chunk with empty data when nothing follows; its
  length is added to :attr:`missed_bytes`.
* End of stream: when the bytes up to a FIN have all been delivered (or at
  :meth:`close`) a chunk with ``eof=True`` and empty data follows the last
  one.  Data beyond the first FIN is ignored.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple

MASK = 0xFFFFFFFF
HALF = 1 << 31
WRAP = 1 << 32
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
DEFAULT_MAX_BUFFERED = 10 * 1024 * 1024


class Chunk(NamedTuple):
    """A piece of one direction's byte stream, in stream order.

    Attributes:
        data: the bytes (may be empty for a gap or end-of-stream marker).
        ts: the time of the segment that carried them, as given to
            :meth:`StreamReassembler.add` (``TcpReassembly`` gives ns since
            the epoch); for an empty marker, the time of the call that made it.
        gap_before: bytes missing from the stream just before ``data``
            (0 for none).
        frame: the frame number given with the segment (-1 when none).
        eof: True on the last chunk of the stream (FIN reached, or closed).
    """

    data: bytes
    ts: object
    gap_before: int = 0
    frame: int = -1
    eof: bool = False


class StreamReassembler:
    """The in-order byte stream of one TCP direction.

    Args:
        max_buffered: out-of-order bytes held before skipping ahead.

    Attributes:
        delivered_bytes: bytes handed out in chunks.
        missed_bytes: bytes given up as gaps (Zeek's ``missed_bytes`` for
            this direction, but see the module docstring for when).
        buffered: out-of-order bytes held now.
        weirds: ``(name, addl)`` anomalies not yet taken by the caller.
        fin: stream offset of the FIN, or None.
        reset: whether a RST was seen.
        closed: whether :meth:`close` was called.
    """

    __slots__ = (
        "_base",
        "_blocks",
        "_next",
        "_starts",
        "buffered",
        "closed",
        "delivered_bytes",
        "eof_sent",
        "fin",
        "max_buffered",
        "missed_bytes",
        "reset",
        "saw_syn",
        "started",
        "weirds",
    )

    def __init__(self, max_buffered: int = DEFAULT_MAX_BUFFERED):
        self.max_buffered = max_buffered
        self.started = False
        self.saw_syn = False
        self._base = 0          # 32-bit sequence number of stream offset 0
        self._next = 0          # stream offset of the next byte to deliver
        self._starts: list[int] = []
        self._blocks: list[tuple[int, bytes, object, int]] = []   # (offset, data, ts, frame)
        self.buffered = 0
        self.fin: int | None = None
        self.reset = False
        self.closed = False
        self.eof_sent = False
        self.delivered_bytes = 0
        self.missed_bytes = 0
        self.weirds: list[tuple[str, str | None]] = []

    @property
    def next_seq(self) -> int | None:
        """The 32-bit sequence number of the next byte expected, or None before the start."""
        return (self._base + self._next) & MASK if self.started else None

    @property
    def offset(self) -> int:
        """Stream offset of the next byte to deliver (bytes delivered plus gaps)."""
        return self._next

    def add(self, seq: int, payload, ts, flags: int = 0, frame: int = -1,
            length: int | None = None) -> list[Chunk]:
        """One captured segment: returns the chunks it made deliverable (often one, often none).

        Args:
            seq: the 32-bit sequence number.
            payload: the captured payload (``bytes`` or a buffer).
            ts: arrival time (any type; copied into the chunks).
            flags: TCP flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
            frame: frame number, copied into the chunks.
            length: the segment's length as the headers state it, when more
                than ``len(payload)`` (the capture cut it).
        """
        out: list[Chunk] = []
        if self.closed:
            return out
        if flags & RST:
            self.reset = True
        size = len(payload)
        if length is None or length < size:
            length = size
        if not self.started:
            if flags & SYN:
                self._base = (seq + 1) & MASK
                self.saw_syn = True
            elif length or flags & FIN:
                self._base = seq & MASK
            else:
                return out
            self.started = True
        delta = (seq - self._base - self._next) & MASK
        if delta >= HALF:
            delta -= WRAP
        offset = self._next + delta
        if flags & SYN:
            if self.saw_syn and offset != -1:
                self.weirds.append(("SYN_seq_jump", None))
                return out
            offset += 1
        end = offset + length
        # Zeek's underflow: before the octet a SYN occupies (or, mid-stream, the one Zeek
        # pretends a SYN occupied); a keep-alive at that octet is not one.
        if offset < -1 and length and not flags & RST:
            self.weirds.append(("TCP_seq_underflow_or_misorder", None))
        if flags & FIN and self.fin is None and end >= self._next:
            self.fin = end
        if length > size:
            self.weirds.append(("truncated_tcp_payload", None))
        elif size:
            if self.fin is not None and end > self.fin:
                end = self.fin                  # nothing follows a FIN
            if end > self._next and end > offset:
                data = bytes(payload)
                if offset < self._next:
                    data = data[self._next - offset:end - offset]
                    offset = self._next
                elif end - offset < size:
                    data = data[:end - offset]
                if offset == self._next and not self._blocks:
                    self._next = end
                    self.delivered_bytes += end - offset
                    out.append(Chunk(data, ts, 0, frame))
                else:
                    self._insert(offset, data, ts, frame)
                    if self._blocks[0][0] == self._next:
                        self._deliver_run(out)
                    if self.buffered > self.max_buffered:
                        self.weirds.append(("excessive_data_without_further_acks", None))
                        while self.buffered > self.max_buffered:
                            self._skip_to(self._blocks[0][0] + 1, ts, frame, out)
        if self.fin is not None and self._next >= self.fin and not self.eof_sent:
            self.eof_sent = True
            out.append(Chunk(b"", ts, 0, frame, True))
        return out

    def ack(self, ack: int, ts, frame: int = -1) -> list[Chunk]:
        """The peer acknowledged up to 32-bit sequence ``ack``: give up holes below it.

        Acknowledgements behind the next expected byte, or more than 2**31
        ahead, change nothing.  The FIN's sequence number is not data.
        """
        if not self.started or self.closed:
            return []
        delta = (ack - self._base - self._next) & MASK
        if delta == 0 or delta >= HALF:
            return []
        target = self._next + delta
        if self.fin is not None and target > self.fin:
            target = self.fin
        out: list[Chunk] = []
        if target > self._next:
            self._skip_to(target, ts, frame, out)
        if self.fin is not None and self._next >= self.fin and not self.eof_sent:
            self.eof_sent = True
            out.append(Chunk(b"", ts, 0, frame, True))
        return out

    def drain(self, ts=None, frame: int = -1) -> list[Chunk]:
        """Give up the holes below the buffered bytes and deliver them all (memory pressure)."""
        out: list[Chunk] = []
        if self._blocks and not self.closed:
            last_offset, last_data = self._blocks[-1][0], self._blocks[-1][1]
            self._skip_to(last_offset + len(last_data), ts, frame, out)
            if self.fin is not None and self._next >= self.fin and not self.eof_sent:
                self.eof_sent = True
                out.append(Chunk(b"", ts, 0, frame, True))
        return out

    def close(self, ts=None, frame: int = -1) -> list[Chunk]:
        """The stream is over: deliver everything buffered (past holes), then end-of-stream.

        A stream that never started (nothing but pure ACKs or a lone RST) gives no chunks.
        """
        if self.closed:
            return []
        out: list[Chunk] = []
        if self.started:
            target = self._next
            if self._blocks:
                last_offset, last_data = self._blocks[-1][0], self._blocks[-1][1]
                target = last_offset + len(last_data)
            if self.fin is not None:
                target = max(target, self.fin)
            if target > self._next:
                self._skip_to(target, ts, frame, out)
        if self.started and not self.eof_sent:
            self.eof_sent = True
            out.append(Chunk(b"", ts, 0, frame, True))
        self.closed = True
        return out

    # -- internals ----------------------------------------------------------------------------

    def _insert(self, offset: int, data: bytes, ts, frame: int) -> None:
        """Buffer the parts of ``data`` (at stream ``offset``, all beyond the next byte) not held yet."""
        end = offset + len(data)
        starts, blocks = self._starts, self._blocks
        i = bisect_right(starts, offset) - 1
        if i < 0 or blocks[i][0] + len(blocks[i][1]) <= offset:
            i += 1
        if i == len(blocks) or blocks[i][0] >= end:
            starts.insert(i, offset)
            blocks.insert(i, (offset, data, ts, frame))
            self.buffered += end - offset
            return
        pieces = []
        cursor = offset
        differs = False
        while i < len(blocks) and blocks[i][0] < end:
            b_start, b_data = blocks[i][0], blocks[i][1]
            b_end = b_start + len(b_data)
            if b_start > cursor:
                pieces.append((cursor, b_start))
            lo, hi = max(cursor, b_start), min(end, b_end)
            if hi > lo and not differs and data[lo - offset:hi - offset] != b_data[lo - b_start:hi - b_start]:
                differs = True
            cursor = max(cursor, b_end)
            i += 1
        if cursor < end:
            pieces.append((cursor, end))
        if differs:
            self.weirds.append(("rexmit_inconsistency", None))
        for lo, hi in pieces:
            at = bisect_left(starts, lo)
            starts.insert(at, lo)
            blocks.insert(at, (lo, data[lo - offset:hi - offset], ts, frame))
            self.buffered += hi - lo

    def _deliver_run(self, out: list[Chunk]) -> None:
        """Deliver the buffered blocks that continue the stream without a hole."""
        blocks = self._blocks
        taken = 0
        count = len(blocks)
        position = self._next
        while taken < count and blocks[taken][0] == position:
            _, b_data, b_ts, b_frame = blocks[taken]
            position += len(b_data)
            out.append(Chunk(b_data, b_ts, 0, b_frame))
            taken += 1
        if taken:
            moved = position - self._next
            self.delivered_bytes += moved
            self.buffered -= moved
            self._next = position
            del blocks[:taken]
            del self._starts[:taken]

    def _skip_to(self, target: int, ts, frame: int, out: list[Chunk]) -> None:
        """Deliver everything buffered below ``target``, giving up the holes between as gaps."""
        blocks = self._blocks
        while True:
            if blocks and blocks[0][0] == self._next:
                self._deliver_run(out)
            if self._next >= target:
                return
            if blocks and blocks[0][0] < target:
                b_start, b_data, b_ts, b_frame = blocks[0]
                gap = b_start - self._next
                self.missed_bytes += gap
                self.delivered_bytes += len(b_data)
                self.buffered -= len(b_data)
                self._next = b_start + len(b_data)
                del blocks[0]
                del self._starts[0]
                out.append(Chunk(b_data, b_ts, gap, b_frame))
            else:
                gap = target - self._next
                self.missed_bytes += gap
                self._next = target
                out.append(Chunk(b"", ts, gap, frame))
                if blocks and blocks[0][0] == target:
                    self._deliver_run(out)
                return
