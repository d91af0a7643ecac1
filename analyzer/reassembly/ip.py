"""IP fragment reassembly: RFC 791 §3.2 (IPv4) and RFC 8200 §4.5 (IPv6), Zeek's policy.

Pure and sans-I/O: :class:`FragmentReassembler` is fed the batches a reader
produced (with their :func:`dissectors.dissect` columns) and returns the
completed datagrams as a new :class:`~captures.batch.PacketBatch` of raw IP
packets, which the caller dissects like any other batch.

What it does, and where it follows Zeek (``src/Frag.cc``) or the RFCs:

* Fragments are the rows whose hidden ``_ip.fragment`` column is true (the
  innermost IP header is a fragment: IPv4 MF set or offset non-zero; IPv6
  fragment header with M set or offset non-zero; atomic fragments are whole
  datagrams and never come here), plus IPv6 rows whose ``ipv6.fraghdr``
  fields say fragment (the dissector can lose ``_ip.fragment`` on a
  non-first fragment, see :meth:`FragmentReassembler.feed`).  Each
  fragment's IP header is found again in the frame bytes
  (:func:`~analyzer.reassembly.locate.header_starts`, one compiled pass per
  batch).  The IPv4 datagrams whose fragments all arrive in one batch and
  need none of the rules below (no overlap, weird, timeout or memory cap)
  are then reassembled by a compiled pass (:mod:`.fragments`); every other
  fragment is parsed and handled here in Python, with the same result as
  if all had been.
* Reassembled datagrams can hold fragments in turn (a fragmented tunnel
  whose inner packet was fragmented too): dissect the returned batch and
  feed it back with ``frame_numbers``.
* Datagrams are keyed by (source, destination, identification, protocol)
  for IPv4 (RFC 791; Zeek leaves the protocol out) and by (source,
  destination, identification) for IPv6 (RFC 8200).
* Overlaps are resolved first-wins, as Zeek's reassembler does: bytes
  already held are kept, a later fragment only fills holes.  Each fragment
  that overlaps held bytes gives ``fragment_overlap`` (same bytes: a
  duplicate) or ``fragment_inconsistency`` (different bytes).  RFC 5722
  would have an IPv6 datagram with overlapping fragments discarded whole;
  ``ipv6_overlaps="rfc5722"`` does that (exact duplicates are then dropped,
  as RFC 8200 §4.5 allows), the default ``"zeek"`` does not.
* The reassembled header is the offset-0 fragment's (RFC 791, RFC 8200; Zeek
  takes the first fragment to arrive), fixed up: IPv4 total length, MF and
  offset cleared (DF and the reserved bit kept), header checksum
  recomputed; IPv6 payload length, fragment header removed and its Next
  Header written into the header that pointed at it.
* Zeek's size logic is kept: the last fragment (MF clear) fixes the size;
  a later fragment reaching beyond it, or a second last fragment
  disagreeing, gives ``fragment_size_inconsistency`` and the larger size
  wins; a complete run of data up to the size followed by a hole, or
  contiguous data beyond the size, also gives it, and the datagram is then
  delivered with the contiguous data.
* A fragment whose captured bytes are fewer than its stated length gives
  ``incompletely_captured_fragment`` and is not reassembled (Zeek).  One
  whose stated length runs past the frame's length on the wire was already
  reported ``truncated_IP`` by the dissector and is skipped silently.

Weird names: ``fragment_overlap``, ``fragment_inconsistency``,
``fragment_size_inconsistency``, ``fragment_protocol_inconsistency``
(header length or next protocol differs from the datagram's first fragment;
total length below the header length), ``fragment_with_DF``,
``excessively_small_fragment`` (a non-last fragment shorter than 64 bytes
of IP), ``excessively_large_fragment`` (the fragment ends beyond 64,000
bytes of payload), ``incompletely_captured_fragment`` — all Zeek's — and
one of netsift's own: ``fragment_reassembly_memory_exceeded`` (a datagram
dropped because the reassembler held more than ``max_bytes``; ``addl`` is
the bytes it held).

Limits:

* A datagram's payload cannot exceed what its length field can state
  (65,535 bytes less the IPv4 header, or less the IPv6 extension headers
  before the fragment header): a fragment reaching beyond is dropped (and
  reported ``excessively_large_fragment``).  So a datagram holds at most
  65,535 bytes plus its header.
* ``timeout_ns`` (default 60 s, RFC 8200 §4.5's reassembly timeout): a
  datagram whose first fragment arrived more than this before the current
  fragment is dropped silently.  Zeek has no weird for this: its
  ``frag_timeout`` is 0 (never) in bare mode and 5 min with
  ``tuning/defaults``, and expiry is silent.
* ``max_bytes`` (default 64 MiB) held in total, counting each datagram's
  bytes plus 256 for its bookkeeping: over it, the oldest datagrams are
  dropped, each with a ``fragment_reassembly_memory_exceeded`` weird on the
  fragment that went over.

Incomplete datagrams at the end of the capture are dropped without a weird
(:meth:`FragmentReassembler.flush`), as Zeek does.
"""

from __future__ import annotations

import dataclasses
import struct
from bisect import bisect_left, bisect_right
from collections import OrderedDict

import numpy as np

from captures.batch import PacketBatch

from . import fragments
from .events import Weird
from .locate import FOUND, INCOMPLETE, header_starts

LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229
DEFAULT_TIMEOUT_NS = 60 * 1_000_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DATAGRAM_OVERHEAD = 256
MIN_ACCEPTABLE_FRAG_SIZE = 64        # Zeek src/Frag.cc
MAX_ACCEPTABLE_FRAG_SIZE = 64000     # Zeek src/Frag.cc
MAX_IP_LENGTH = 65535
IPV4_MIN_HEADER = 20
IPV6_HEADER = 40
IPV6_FRAGMENT = 44
# Extension headers that may come before the fragment header (RFC 8200 §4.1, §4.5).
IPV6_UNFRAGMENTABLE = (0, 43, 60)
MEMORY_WEIRD = "fragment_reassembly_memory_exceeded"
# The compiled pass (:mod:`.fragments`) takes the common-case IPv4 datagrams; False leaves all to Python.
COMPILED = True


@dataclasses.dataclass(slots=True)
class _Fragment:
    """One fragment as parsed from the frame bytes."""

    version: int
    key: tuple
    header: bytes          # IPv4 header, or IPv6 unfragmentable part (fixed header + extensions)
    next_patch: int        # IPv6: index in header of the Next Header byte that said 44
    next_proto: int        # IPv4 protocol, or the fragment header's Next Header
    hdr_len: int           # Zeek's HdrLen(): IPv4 header; IPv6 headers through the fragment header
    total: int             # Zeek's TotalLen(): IPv4 total length; IPv6 40 + payload length
    offset: int            # bytes
    more: bool
    dont_fragment: bool
    payload: bytes


@dataclasses.dataclass(slots=True)
class _Datagram:
    version: int
    first_ts: int
    hdr_len: int                       # of the first fragment to arrive (Zeek's consistency check)
    next_proto: int                    # Zeek: the first fragment's, then the offset-0 fragment's
    limit: int                         # largest payload the length field can state
    header: bytes | None = None        # offset-0 fragment's header (first wins)
    next_patch: int = 0
    frag_size: int | None = None       # payload length, once a last fragment (MF clear) was seen
    starts: list = dataclasses.field(default_factory=list)
    blocks: list = dataclasses.field(default_factory=list)   # (start, bytes), sorted, disjoint
    held: int = DATAGRAM_OVERHEAD
    poisoned: bool = False             # RFC 5722 mode: overlapping IPv6 fragments, discard all


class FragmentReassembler:
    """Reassembles IPv4 and IPv6 fragments across the batches of one capture.

    Args:
        timeout_ns: drop a datagram whose first fragment is older than this
            (at the time of the fragment being added); 0 keeps datagrams forever.
        max_bytes: total bytes held (payload plus per-datagram overhead) above
            which the oldest datagrams are dropped.
        ipv6_overlaps: ``"zeek"`` (first-wins, default) or ``"rfc5722"``
            (discard an IPv6 datagram any of whose fragments overlap, apart
            from exact duplicates).

    Attributes:
        stats: counters: ``fragments`` (accepted for reassembly),
            ``datagrams`` (completed), ``expired``, ``evicted``
            (memory cap), ``discarded`` (RFC 5722), ``held_bytes`` (now).
    """

    def __init__(self, timeout_ns: int = DEFAULT_TIMEOUT_NS, max_bytes: int = DEFAULT_MAX_BYTES,
                 ipv6_overlaps: str = "zeek"):
        if ipv6_overlaps not in ("zeek", "rfc5722"):
            raise ValueError("ipv6_overlaps must be 'zeek' or 'rfc5722'")
        self.timeout_ns = int(timeout_ns)
        self.max_bytes = int(max_bytes)
        self.ipv6_overlaps = ipv6_overlaps
        self._datagrams: OrderedDict[tuple, _Datagram] = OrderedDict()
        self._held = 0
        self._weirds: list[Weird] = []
        self.stats = {"fragments": 0, "datagrams": 0, "expired": 0, "evicted": 0, "discarded": 0,
                      "held_bytes": 0}

    # -- public API ---------------------------------------------------------------------------

    def feed(self, batch: PacketBatch, fields, frame_numbers: np.ndarray | None = None
             ) -> tuple[PacketBatch, np.ndarray]:
        """Add the fragments of ``batch`` (rows where ``_ip.fragment`` is true).

        Args:
            batch: the frames.
            fields: ``dissectors.dissect(batch)``.
            frame_numbers: ``int64[n]`` global frame numbers of the rows, when
                they are not ``batch.first_number + row`` (a batch of
                reassembled datagrams fed back in: pass the frames array this
                method returned for it).

        Returns:
            ``(datagrams, frames)``: a :class:`PacketBatch` of the datagrams
            completed by this batch, one raw IP packet each (link type 228 for
            IPv4, 229 for IPv6; ``ts_ns``, ``interface_id`` of the completing
            fragment; ``first_number`` is meaningless, use ``frames``), and
            ``int64[k]``: the frame number of the fragment that completed
            each.  Weirds wait in :meth:`pop_weirds`.
        """
        values, valid = fields.values, fields.valid
        column = values.get("_ip.fragment")
        if column is None:
            chosen = np.zeros(len(batch), dtype=bool)
        else:
            chosen = valid["_ip.fragment"] & column.astype(bool)
        offset6, more6 = values.get("ipv6.fraghdr.offset"), values.get("ipv6.fraghdr.more")
        if offset6 is not None and more6 is not None and "_ip.version" in values:
            # Work-around: dissectors.ipv6 walks on past the fragment header of a non-first
            # fragment, into its data, and may drop the row (and ``_ip.fragment``) when those
            # bytes look like a broken extension header.  Take IPv6 fragments from the
            # fragment header fields as well; the header chain is parsed again from the frame anyway.
            chosen = chosen | (valid["ipv6.fraghdr.offset"] & ((offset6 != 0) | (more6 != 0))
                               & valid["_ip.version"] & (values["_ip.version"] == 6))
        rows = np.flatnonzero(chosen)
        if not len(rows):
            return PacketBatch.from_frames([]), np.zeros(0, dtype=np.int64)
        starts, statuses = header_starts(batch, values, valid, rows)
        numbers = (np.asarray(frame_numbers)[rows] if frame_numbers is not None
                   else rows + batch.first_number).astype(np.int64)
        # Where these columns are missing every status is MISSING and the zeros are never read.
        versions, lengths = (values[name][rows] if name in values else np.zeros(len(rows), dtype=np.int64)
                             for name in ("_ip.version", "_ip.len"))
        times = batch.ts_ns[rows]
        plan = None
        # Each fragment adds at most its bytes and one datagram's overhead: when even that cannot reach
        # max_bytes, nothing is evicted in this batch and the compiled pass may take datagrams.
        if COMPILED and self._held + int(lengths[statuses == FOUND].sum()) + DATAGRAM_OVERHEAD * len(rows) \
                <= self.max_bytes:
            plan = fragments.plan(batch.data, starts, statuses, versions, lengths, times, self.timeout_ns,
                                  fragments.held_keys(self._datagrams))
            self.stats["fragments"] += int(plan.taken.sum())
            self.stats["datagrams"] += len(plan.position)
        left = np.arange(len(rows)) if plan is None else np.flatnonzero(~plan.taken)
        expire_at = times if plan is None else plan.expire_at
        out_frames: list[bytes] = []
        out_links: list[int] = []
        out_positions: list[int] = []
        data = batch.data
        for position, number, ts, when, start, status, version, length in zip(
                left.tolist(), numbers[left].tolist(), times[left].tolist(), expire_at[left].tolist(),
                starts[left].tolist(), statuses[left].tolist(), versions[left].tolist(), lengths[left].tolist()):
            self._expire(when)
            if status != FOUND:
                if status == INCOMPLETE:
                    self._weird(number, "incompletely_captured_fragment")
                continue
            packet = data[start:start + length].tobytes()
            fragment = _parse_v4(packet) if version == 4 else _parse_v6(packet)
            if fragment is None:
                continue
            datagram = self._add(fragment, ts, number)
            if datagram is not None:
                out_frames.append(datagram)
                out_links.append(LINKTYPE_IPV4 if fragment.version == 4 else LINKTYPE_IPV6)
                out_positions.append(position)
        if plan is not None and plan.tail != fragments.NO_TIME:
            self._expire(plan.tail)
        self.stats["held_bytes"] = self._held
        return fragments.assemble(batch, rows, numbers, out_frames, out_links, out_positions, plan)

    def pop_weirds(self) -> list[Weird]:
        """The weirds found since the last call, in the order found."""
        weirds, self._weirds = self._weirds, []
        return weirds

    def flush(self) -> list[Weird]:
        """End of capture: drop incomplete datagrams (silently, as Zeek) and return pending weirds."""
        self._datagrams.clear()
        self._held = 0
        self.stats["held_bytes"] = 0
        return self.pop_weirds()

    @property
    def pending(self) -> int:
        """Datagrams waiting for fragments."""
        return len(self._datagrams)

    # -- internals ----------------------------------------------------------------------------

    def _weird(self, number: int, name: str, addl: str | None = None) -> None:
        self._weirds.append(Weird(number, name, addl))

    def _expire(self, now: int) -> None:
        if not self.timeout_ns:
            return
        datagrams = self._datagrams
        while datagrams:
            key, datagram = next(iter(datagrams.items()))
            if now - datagram.first_ts <= self.timeout_ns:
                break
            del datagrams[key]
            self._held -= datagram.held
            self.stats["expired"] += 1

    def _add(self, f: _Fragment, ts: int, number: int) -> bytes | None:
        """Zeek's FragReassembler::AddFragment and BlockInserted, RFC fixes noted in the module doc."""
        datagram = self._datagrams.get(f.key)
        if datagram is None:
            unfragmentable = len(f.header) - IPV6_HEADER if f.version == 6 else len(f.header)
            datagram = _Datagram(version=f.version, first_ts=ts, hdr_len=f.hdr_len,
                                 next_proto=f.next_proto, limit=MAX_IP_LENGTH - unfragmentable)
            self._datagrams[f.key] = datagram
            self._held += datagram.held
        elif f.hdr_len != datagram.hdr_len or (f.version == 6 and f.next_proto != datagram.next_proto):
            self._weird(number, "fragment_protocol_inconsistency")
        if f.dont_fragment:
            self._weird(number, "fragment_with_DF")
        if f.total < f.hdr_len:
            self._weird(number, "fragment_protocol_inconsistency")
            return None
        self.stats["fragments"] += 1
        upper = f.offset + len(f.payload)
        if upper > datagram.limit:
            # Beyond what the reassembled datagram's length field can state.
            self._weird(number, "excessively_large_fragment")
            return None
        if f.offset == 0:
            datagram.next_proto = f.next_proto
            if datagram.header is None:
                datagram.header, datagram.next_patch = f.header, f.next_patch
        if not f.more:
            if datagram.frag_size is None:
                datagram.frag_size = upper
            elif upper != datagram.frag_size:
                self._weird(number, "fragment_size_inconsistency")
                datagram.frag_size = max(datagram.frag_size, upper)
        elif f.total < MIN_ACCEPTABLE_FRAG_SIZE:
            self._weird(number, "excessively_small_fragment")
        if upper > MAX_ACCEPTABLE_FRAG_SIZE:
            self._weird(number, "excessively_large_fragment")
        if datagram.frag_size is not None and upper > datagram.frag_size:
            self._weird(number, "fragment_size_inconsistency")
            datagram.frag_size = upper
        if datagram.poisoned:
            return None
        added = self._insert(datagram, f, number)
        if datagram.poisoned:
            return None
        if added:
            datagram.held += added
            self._held += added
            if self._held > self.max_bytes:
                self._evict(number)
                if f.key not in self._datagrams:
                    return None
        payload = _complete(datagram, self._weirds, number)
        if payload is None:
            return None
        del self._datagrams[f.key]
        self._held -= datagram.held
        unfragmentable = len(datagram.header) - (IPV6_HEADER if f.version == 6 else 0)
        if unfragmentable + len(payload) > MAX_IP_LENGTH:
            # The offset-0 header is longer than the one the size limit was set from.
            self._weird(number, "excessively_large_fragment")
            return None
        self.stats["datagrams"] += 1
        return _build(datagram, payload)

    def _insert(self, d: _Datagram, f: _Fragment, number: int) -> int:
        """Store the parts of ``f`` not held yet (first wins); returns the bytes added."""
        data, start = f.payload, f.offset
        end = start + len(data)
        if end == start:
            return 0
        starts, blocks = d.starts, d.blocks
        i = bisect_right(starts, start) - 1
        if i < 0 or blocks[i][0] + len(blocks[i][1]) <= start:
            i += 1
        pieces = []
        cursor = start
        same = different = False
        exact = False
        while i < len(blocks) and blocks[i][0] < end:
            b_start, b_data = blocks[i]
            b_end = b_start + len(b_data)
            if b_start > cursor:
                pieces.append((cursor, b_start))
            lo, hi = max(cursor, b_start), min(end, b_end)
            if hi > lo:
                if data[lo - start:hi - start] == b_data[lo - b_start:hi - b_start]:
                    same = True
                    exact = exact or (b_start == start and b_end == end)
                else:
                    different = True
            cursor = max(cursor, b_end)
            i += 1
        if cursor < end:
            pieces.append((cursor, end))
        if different:
            self._weird(number, "fragment_inconsistency")
        if same:
            self._weird(number, "fragment_overlap")
        if (same or different) and d.version == 6 and self.ipv6_overlaps == "rfc5722" and not (
                exact and not different):
            # RFC 5722 §4 / RFC 8200 §4.5: abandon the datagram, and ignore its later fragments.
            d.poisoned = True
            released = d.held - DATAGRAM_OVERHEAD
            d.starts, d.blocks, d.held = [], [], DATAGRAM_OVERHEAD
            self._held -= released
            self.stats["discarded"] += 1
            return 0
        added = 0
        for lo, hi in pieces:
            at = bisect_left(starts, lo)
            starts.insert(at, lo)
            blocks.insert(at, (lo, data[lo - start:hi - start]))
            added += hi - lo
        return added

    def _evict(self, number: int) -> None:
        while self._held > self.max_bytes and self._datagrams:
            _, oldest = self._datagrams.popitem(last=False)
            self._held -= oldest.held
            self.stats["evicted"] += 1
            self._weird(number, MEMORY_WEIRD, str(oldest.held))


def _complete(d: _Datagram, weirds: list, number: int) -> bytes | None:
    """The payload if ``d`` is complete (Zeek's BlockInserted), else None."""
    if d.frag_size is None or d.header is None:
        return None
    covered = 0
    hole = False
    for b_start, b_data in d.blocks:
        if b_start > covered:
            hole = True
            break
        covered = b_start + len(b_data)
    if covered < d.frag_size:
        return None
    if hole or covered > d.frag_size:
        # Zeek: contiguous through the expected end with more beyond it (or a longer
        # contiguous run): deliver the contiguous part.
        weirds.append(Weird(number, "fragment_size_inconsistency"))
        d.frag_size = covered
    parts = []
    for b_start, b_data in d.blocks:
        if b_start >= covered:
            break
        parts.append(b_data)
    return b"".join(parts)


def _build(d: _Datagram, payload: bytes) -> bytes:
    header = bytearray(d.header)
    if d.version == 4:
        total = len(header) + len(payload)
        header[2:4] = total.to_bytes(2, "big")
        header[6] &= 0xC0           # keep the reserved bit and DF; clear MF and the offset
        header[7] = 0
        header[10:12] = b"\0\0"
        header[10:12] = _checksum(header).to_bytes(2, "big")
    else:
        header[d.next_patch] = d.next_proto
        header[4:6] = (len(header) - IPV6_HEADER + len(payload)).to_bytes(2, "big")
    return bytes(header) + payload


def _checksum(header: bytes | bytearray) -> int:
    """RFC 1071 Internet checksum of an IPv4 header (even length)."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _parse_v4(packet: bytes) -> _Fragment | None:
    if len(packet) < IPV4_MIN_HEADER:
        return None
    header_length = (packet[0] & 0x0F) * 4
    total = len(packet)
    if header_length < 20 or header_length > total:
        return None
    flags_offset = int.from_bytes(packet[6:8], "big")
    ident = int.from_bytes(packet[4:6], "big")
    protocol = packet[9]
    key = (4, packet[12:16], packet[16:20], ident, protocol)
    return _Fragment(version=4, key=key, header=packet[:header_length], next_patch=0,
                     next_proto=protocol, hdr_len=header_length, total=total,
                     offset=(flags_offset & 0x1FFF) * 8, more=bool(flags_offset & 0x2000),
                     dont_fragment=bool(flags_offset & 0x4000), payload=packet[header_length:])


def _parse_v6(packet: bytes) -> _Fragment | None:
    """Walk the extension headers before the fragment header (RFC 8200 §4.5's unfragmentable part)."""
    total = len(packet)
    if total < IPV6_HEADER:
        return None
    patch, next_header, position = 6, packet[6], IPV6_HEADER
    while next_header in IPV6_UNFRAGMENTABLE:
        if position + 2 > total:
            return None
        length = (packet[position + 1] + 1) * 8
        patch, next_header = position, packet[position]
        position += length
    if next_header != IPV6_FRAGMENT or position + 8 > total:
        return None
    offset_flags = int.from_bytes(packet[position + 2:position + 4], "big")
    ident = int.from_bytes(packet[position + 4:position + 8], "big")
    key = (6, packet[8:24], packet[24:40], ident)
    return _Fragment(version=6, key=key, header=packet[:position], next_patch=patch,
                     next_proto=packet[position], hdr_len=position + 8, total=total,
                     offset=(offset_flags >> 3) * 8, more=bool(offset_flags & 1),
                     dont_fragment=False, payload=packet[position + 8:])
