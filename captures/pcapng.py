"""pcapng files (draft-ietf-opsawg-pcapng).

A file is a sequence of blocks (§3.1: type, total length, body, total length
again), in sections that each start with a Section Header Block (SHB, §4.1)
giving the byte order of the section.  Interface Description Blocks (IDB,
§4.2) number the interfaces of their section from 0; packets come in
Enhanced Packet Blocks (EPB, §4.3), Simple Packet Blocks (SPB, §4.4) and the
obsolete Packet Block (PB, Appendix A).  Every other block type (NRB, ISB,
DSB, Custom Blocks, unknown ones) is skipped by its length, as §3.1 allows.

Packet blocks are walked by a compiled loop (:func:`walk_blocks`) that also
skips the other block types; it returns to Python only at an SHB or an IDB,
which :class:`PcapngStream` decodes before resuming the walk.
"""

from __future__ import annotations

import struct
from typing import Callable, Iterator, NamedTuple

import numba
import numpy as np

from .pcap import HARD_MAX_CAPLEN, max_caplen

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_PB = 0x00000002      # obsolete Packet Block (Appendix A)
BT_SPB = 0x00000003
BT_EPB = 0x00000006

SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
_BOM_LE = b"\x4d\x3c\x2b\x1a"   # Byte-Order Magic 0x1A2B3C4D (§4.1) as written
_BOM_BE = b"\x1a\x2b\x3c\x4d"   # by little- and big-endian writers

MIN_BLOCK_BYTES = 12            # type + two lengths, empty body (§3.1)
MIN_SHB_BYTES = 28              # + byte-order magic, versions, section length
MIN_IDB_BYTES = 20              # + link type, reserved, snaplen
MIN_EPB_BYTES = 32              # + interface, timestamp, two lengths (PB too)
MIN_SPB_BYTES = 16              # + original length
# No block needs more than the largest packet plus generous room for options;
# a larger length is damage and must not make us allocate it.
MAX_BLOCK_BYTES = HARD_MAX_CAPLEN + (1 << 20)

# IDB options (§4.2).
OPT_ENDOFOPT = 0
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14
DEFAULT_TSRESOL = 6             # 10^-6 s when if_tsresol is absent (§4.2)

# walk_blocks() status codes.
NEED_MORE = 0       # the next block is not complete in the buffer (``need`` bytes)
FULL = 1            # a packet block is next and no output row is left
PY_BLOCK = 2        # an SHB or IDB is next: Python decodes it
BAD_LENGTH = 3      # block total length < 12, not a multiple of 4, or absurd
BAD_TRAILER = 4     # trailing block total length differs from the leading one
BAD_INTERFACE = 5   # packet block names an interface the section has not described
CAPLEN_OVERRUN = 6  # captured length larger than the block holds
TOO_LONG = 7        # captured length beyond the interface's limit
SHORT_BLOCK = 8     # packet block shorter than its fixed fields

# Timestamp conversion modes, one per interface (see _ts_ns).
TS_MUL = 0          # 10^-k, k <= 9: ns = units * 10^(9-k)
TS_DIV = 1          # 10^-k, k > 9: ns = units // 10^(k-9)
TS_POW2 = 2         # 2^-k: ns = units * 10^9 / 2^k, rounded down
TS_ZERO = 3         # 10^-k, k >= 28: every 64-bit count is under 2 ns; use 0

_U64_1E9 = np.uint64(1_000_000_000)


class Idb(NamedTuple):
    """An Interface Description Block (§4.2), decoded.

    Attributes:
        link_type: LINKTYPE_* value.
        snaplen: SnapLen field; 0 means no limit.
        name: ``if_name`` option, or ``None``.
        tsresol: ``if_tsresol`` byte: MSB clear = 10^-value s, MSB set =
            2^-(value & 0x7f) s; 6 (µs) when absent.
        ts_offset: ``if_tsoffset`` option, seconds added to every timestamp.
        local_id: Interface ID within its section (0-based order of IDBs).
    """

    link_type: int
    snaplen: int
    name: str | None
    tsresol: int
    ts_offset: int
    local_id: int


def ts_params(tsresol: int) -> tuple[int, int]:
    """``(mode, parameter)`` for :func:`_ts_ns` from an ``if_tsresol`` byte.

    Powers of ten are converted with integer multiplies or divides only, so
    10^-k timestamps are exact (to the floor for k > 9).
    """
    k = tsresol & 0x7F
    if tsresol & 0x80:
        return TS_POW2, k
    if k <= 9:
        return TS_MUL, 10 ** (9 - k)
    if k - 9 <= 18:         # the divisor must fit the int64 parameter column
        return TS_DIV, 10 ** (k - 9)
    return TS_ZERO, 0       # units / 10^19 or less: under 2 ns for any 64-bit count


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(buf, pos, big):
    b0 = np.int64(buf[pos])
    b1 = np.int64(buf[pos + 1])
    b2 = np.int64(buf[pos + 2])
    b3 = np.int64(buf[pos + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return (b3 << 24) | (b2 << 16) | (b1 << 8) | b0


@numba.njit(cache=True, nogil=True, inline="always")
def _u16(buf, pos, big):
    b0 = np.int64(buf[pos])
    b1 = np.int64(buf[pos + 1])
    if big:
        return (b0 << 8) | b1
    return (b1 << 8) | b0


@numba.njit(cache=True, nogil=True, inline="always")
def _ts_ns(high, low, mode, param, offset_ns):
    """ns since the epoch of a 64-bit timestamp count ``high:low`` (§4.3).

    Arithmetic is unsigned 64-bit and wraps on absurd values instead of
    failing: a damaged timestamp is the file's problem, not an error.
    """
    units = (np.uint64(high) << np.uint64(32)) | np.uint64(low)
    p = np.uint64(param)
    if mode == TS_MUL:
        v = units * p
    elif mode == TS_DIV:
        v = units // p
    elif mode == TS_POW2:
        if param < 64:
            secs = units >> p
            frac = units & ((np.uint64(1) << p) - np.uint64(1))
        else:
            secs = np.uint64(0)
            frac = units
        # frac < 2^k; keep frac * 10^9 within 64 bits by dropping bits below
        # 2^-34 s (under 0.06 ns) when k > 34.
        if param <= 34:
            fns = (frac * _U64_1E9) >> p
        else:
            fns = ((frac >> np.uint64(param - 34)) * _U64_1E9) >> np.uint64(34)
        v = secs * _U64_1E9 + fns
    else:
        v = np.uint64(0)
    return np.int64(v) + offset_ns


@numba.njit(cache=True, nogil=True)
def walk_blocks(buf, pos, end, base, n, big, skip_all,
                if_link, if_gid, if_mode, if_param, if_offset, if_limit, if_snaplen,
                last_ts, out_off, out_cap, out_wire, out_ts, out_link, out_iface):
    """Walk blocks in ``buf[pos:end]``, collecting packets (compiled).

    Args:
        buf: ``uint8[m]`` chunk of the file; ``pos`` is at a block.
        base: index in ``buf`` that output offsets are relative to.
        n: output rows already filled (the walk appends after them).
        big: 1 if the current section is big-endian.
        skip_all: 1 to skip every block up to the next SHB (a section whose
            version we cannot read, §3.4).
        if_link, if_gid: ``int32[k]`` link type and global interface number of
            the section's interfaces, indexed by Interface ID.
        if_mode, if_param: ``int64[k]`` timestamp conversion (:func:`ts_params`).
        if_offset: ``int64[k]`` ``if_tsoffset`` in ns.
        if_limit: ``int64[k]`` largest captured length accepted.
        if_snaplen: ``int64[k]`` SnapLen (0 = none), used by SPBs.
        last_ts: ns timestamp of the previous packet, given to SPBs, which
            carry none (§4.4).
        out_*: output columns (``int64`` offset relative to ``base``,
            cap_len, wire_len, ts_ns; ``int32`` link type, global interface).

    Returns:
        ``(n, pos, status, need, last_ts)``: rows filled, offset of the first
        block not consumed, why the walk stopped (``NEED_MORE`` with ``need``
        the bytes the block needs, ``FULL``, ``PY_BLOCK`` or a damage code),
        and the timestamp of the last packet.
    """
    cap = out_off.shape[0]
    n_if = if_link.shape[0]
    while True:
        if end - pos < 8:
            return n, pos, NEED_MORE, 8, last_ts
        btype = _u32(buf, pos, big)
        if btype == BT_SHB:
            # Its length is in the byte order the SHB itself declares.
            return n, pos, PY_BLOCK, 0, last_ts
        blen = _u32(buf, pos + 4, big)
        if blen < MIN_BLOCK_BYTES or (blen & 3) != 0 or blen > MAX_BLOCK_BYTES:
            return n, pos, BAD_LENGTH, 0, last_ts
        if end - pos < blen:
            return n, pos, NEED_MORE, blen, last_ts
        if _u32(buf, pos + blen - 4, big) != blen:
            return n, pos, BAD_TRAILER, 0, last_ts
        if skip_all:
            pos += blen
            continue
        if btype == BT_IDB:
            return n, pos, PY_BLOCK, 0, last_ts
        if btype == BT_EPB or btype == BT_PB:
            if blen < MIN_EPB_BYTES:
                return n, pos, SHORT_BLOCK, 0, last_ts
            if btype == BT_EPB:
                iface = _u32(buf, pos + 8, big)
            else:
                iface = _u16(buf, pos + 8, big)     # then a 16-bit drops count
            if iface >= n_if:
                return n, pos, BAD_INTERFACE, 0, last_ts
            caplen = _u32(buf, pos + 20, big)
            if caplen > blen - MIN_EPB_BYTES:
                return n, pos, CAPLEN_OVERRUN, 0, last_ts
            if caplen > if_limit[iface]:
                return n, pos, TOO_LONG, 0, last_ts
            if n == cap:
                return n, pos, FULL, 0, last_ts
            ts = _ts_ns(_u32(buf, pos + 12, big), _u32(buf, pos + 16, big),
                        if_mode[iface], if_param[iface], if_offset[iface])
            wire = _u32(buf, pos + 24, big)
            data = pos + 28
        elif btype == BT_SPB:
            if blen < MIN_SPB_BYTES:
                return n, pos, SHORT_BLOCK, 0, last_ts
            iface = 0                                # SPBs belong to interface 0 (§4.4)
            if n_if == 0:
                return n, pos, BAD_INTERFACE, 0, last_ts
            wire = _u32(buf, pos + 8, big)
            # §4.4: captured length is min(original length, SnapLen); the
            # block's room bounds it too since the SPB has no length field.
            caplen = min(wire, blen - MIN_SPB_BYTES)
            if if_snaplen[0] > 0 and caplen > if_snaplen[0]:
                caplen = if_snaplen[0]
            if caplen > if_limit[0]:
                return n, pos, TOO_LONG, 0, last_ts
            if n == cap:
                return n, pos, FULL, 0, last_ts
            ts = last_ts
            data = pos + 12
        else:
            # NRB, ISB, DSB, Custom Blocks, local and unknown types (§3.1).
            pos += blen
            continue
        out_off[n] = data - base
        out_cap[n] = caplen
        out_wire[n] = wire
        out_ts[n] = ts
        out_link[n] = if_link[iface]
        out_iface[n] = if_gid[iface]
        last_ts = ts
        pos += blen
        n += 1


class _Interfaces:
    """Columns describing the current section's interfaces, for the walker.

    Grown by doubling so that a file of many IDBs stays linear.
    """

    def __init__(self):
        self.n = 0
        self._alloc(4)

    def _alloc(self, size):
        old = getattr(self, "cols", None)
        self.cols = [np.zeros(size, np.int32), np.zeros(size, np.int32)] + [
            np.zeros(size, np.int64) for _ in range(5)]
        if old is not None:
            for new, prev in zip(self.cols, old):
                new[:self.n] = prev[:self.n]

    def add(self, link, gid, mode, param, offset_ns, limit, snaplen):
        if self.n == self.cols[0].shape[0]:
            self._alloc(2 * self.n)
        for col, value in zip(self.cols, (link, gid, mode, param, offset_ns, limit, snaplen)):
            col[self.n] = value
        self.n += 1

    def views(self):
        return [c[:self.n] for c in self.cols]


def _clamp_i64(v: int) -> int:
    return max(-(1 << 63), min((1 << 63) - 1, v))


class PcapngStream:
    """Reads the blocks of a pcapng file from the reader's chunk window.

    Args:
        chunks: the reader's chunk window (see :func:`captures.pcap.iter_records`),
            positioned at the first SHB.
        on_interface: ``on_interface(idb, section) -> int`` records an IDB and
            returns its global interface number (index over the whole file).
        stop: ``stop(kind, file_offset, detail)``, called once when reading
            ends early (``kind`` ``"truncated"`` or ``"damaged"``).
        warn: ``warn(message)`` for problems that do not stop reading.

    A Simple Packet Block has no timestamp; its packet gets the timestamp of
    the previous packet of the file (0, the epoch, if it is the first).
    """

    def __init__(self, chunks, on_interface: Callable[[Idb, int], int],
                 stop: Callable[[str, int, str], None], warn: Callable[[str], None]):
        self.chunks = chunks
        self.on_interface = on_interface
        self.stop = stop
        self.warn = warn
        self.section = -1
        self.big = 0
        self.skip_all = 0
        self.last_ts = 0
        self.done = False
        self.first_version = (0, 0)
        self._ifaces = _Interfaces()

    # -- Python-side blocks ------------------------------------------------

    def open(self) -> None:
        """Decode the first SHB.

        Raises:
            ValueError: the file does not start with a complete, sane SHB;
                the message is the reason to show the user.
        """
        problem = self._section_header()
        if problem is not None:
            raise ValueError(f"corrupt pcapng section header block: {problem[1]}")

    def _fmt(self, code: str) -> str:
        return (">" if self.big else "<") + code

    def _section_header(self):
        """Decode the SHB at the window start; ``None`` or ``(kind, detail)``."""
        c = self.chunks
        if not c.ensure(12):
            return self._short("section header block", 12)
        s = c.start
        bom = bytes(c.buf[s + 8:s + 12])
        if bom == _BOM_LE:
            big = 0
        elif bom == _BOM_BE:
            big = 1
        else:
            return "damaged", f"bad byte-order magic 0x{bom.hex()} in section header block"
        fmt = ">" if big else "<"
        blen = struct.unpack_from(fmt + "I", c.buf, s + 4)[0]
        if blen < MIN_SHB_BYTES or blen & 3 or blen > MAX_BLOCK_BYTES:
            return "damaged", f"section header block length {blen} is invalid"
        if not c.ensure(blen):
            return self._short("section header block", blen)
        s = c.start
        trailer = struct.unpack_from(fmt + "I", c.buf, s + blen - 4)[0]
        if trailer != blen:
            return "damaged", (f"trailing block total length {trailer} does not match "
                               f"the leading {blen} (section header block)")
        major, minor = struct.unpack_from(fmt + "HH", c.buf, s + 12)
        self.section += 1
        if self.section == 0:
            self.first_version = (major, minor)
        self.big = big
        self._ifaces = _Interfaces()      # Interface IDs restart in each section (§4.2)
        # §3.4: a section of a version we cannot read is skipped whole.
        self.skip_all = 0 if major == 1 else 1
        if self.skip_all:
            self.warn(f"section {self.section} at byte offset {c.offset(s)} has unsupported "
                      f"pcapng version {major}.{minor}; its blocks were skipped")
        c.start = s + blen
        return None

    def _short(self, what: str, need: int):
        c = self.chunks
        reason = c.eof_reason()
        detail = f"file ends inside a {what} ({c.avail} of {need} bytes present)"
        if reason is not None:
            detail = f"{reason}; {detail}" if c.avail else reason
        return "truncated", detail

    def _interface(self):
        """Decode the IDB at the window start (complete, trailer checked)."""
        c = self.chunks
        s = c.start
        blen = struct.unpack_from(self._fmt("I"), c.buf, s + 4)[0]
        if blen < MIN_IDB_BYTES:
            return "damaged", f"interface description block of {blen} bytes is too short"
        link_type, _reserved, snaplen = struct.unpack_from(self._fmt("HHI"), c.buf, s + 8)
        name, tsresol, ts_offset = None, DEFAULT_TSRESOL, 0
        body = bytes(c.buf[s + 16:s + blen - 4])
        p = 0
        while p + 4 <= len(body):
            code, olen = struct.unpack_from(self._fmt("HH"), body, p)
            if code == OPT_ENDOFOPT:
                break
            if p + 4 + olen > len(body):
                # §3.5: a reader MAY ignore an option of invalid length and go on.
                self.warn(f"malformed option in interface description block at byte offset "
                          f"{c.offset(s)}; its remaining options were ignored")
                break
            value = body[p + 4:p + 4 + olen]
            if code == IF_NAME:
                name = value.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif code == IF_TSRESOL and olen >= 1:
                tsresol = value[0]
            elif code == IF_TSOFFSET and olen == 8:
                ts_offset = struct.unpack(self._fmt("q"), value)[0]
            p += 4 + ((olen + 3) & ~3)
        idb = Idb(link_type, snaplen, name, tsresol, ts_offset, self._ifaces.n)
        gid = self.on_interface(idb, self.section)
        mode, param = ts_params(tsresol)
        self._ifaces.add(link_type, gid, mode, param, _clamp_i64(ts_offset * 1_000_000_000),
                         max_caplen(link_type, snaplen), snaplen)
        c.start = s + blen
        return None

    def _damage(self, status: int, pos: int) -> str:
        """Describe the damaged block at ``pos`` (fields re-read from the buffer)."""
        c = self.chunks
        btype, blen = struct.unpack_from(self._fmt("II"), c.buf, pos)
        if status == BAD_LENGTH:
            return (f"block type 0x{btype:08x} has an invalid total length {blen} "
                    f"(must be a multiple of 4 from {MIN_BLOCK_BYTES} to {MAX_BLOCK_BYTES})")
        if status == BAD_TRAILER:
            trailer = struct.unpack_from(self._fmt("I"), c.buf, pos + blen - 4)[0]
            return (f"trailing block total length {trailer} does not match the leading "
                    f"{blen} (block type 0x{btype:08x})")
        if status == SHORT_BLOCK:
            return f"packet block type {btype} of {blen} bytes is shorter than its fixed fields"
        n_if = self._ifaces.n
        if status == BAD_INTERFACE:
            if btype == BT_SPB:
                return f"simple packet block in section {self.section}, which has no interface 0"
            fmt = "I" if btype == BT_EPB else "H"
            iface = struct.unpack_from(self._fmt(fmt), c.buf, pos + 8)[0]
            return (f"packet block refers to interface {iface}, but section {self.section} "
                    f"describes {n_if} interface(s)")
        if btype == BT_SPB:
            caplen = min(struct.unpack_from(self._fmt("I"), c.buf, pos + 8)[0], blen - MIN_SPB_BYTES)
            iface = 0
        else:
            caplen = struct.unpack_from(self._fmt("I"), c.buf, pos + 20)[0]
            iface = struct.unpack_from(self._fmt("I" if btype == BT_EPB else "H"), c.buf, pos + 8)[0]
        if status == CAPLEN_OVERRUN:
            return f"captured length {caplen} overruns its block of {blen} bytes"
        limit = int(self._ifaces.cols[5][iface])
        return f"captured length {caplen} exceeds the limit of {limit} bytes"

    # -- the walk ------------------------------------------------------------

    def prime(self) -> None:
        """Decode the SHBs and IDBs before the first packet block (at open)."""
        for _ in self._walk(0):
            pass

    def iter_records(self, max_packets: int) -> Iterator[tuple]:
        """Yield ``(data, offset, cap_len, wire_len, ts_ns, link_type, interface_id)``.

        ``data`` is a ``uint8`` view of a chunk that is never written again
        (unless the chunk window reuses its buffers); ``offset`` is
        relative to it.  At most ``max_packets`` rows each.
        """
        yield from self._walk(max_packets)

    def _walk(self, max_packets: int) -> Iterator[tuple]:
        c = self.chunks
        while not self.done:
            # A batch never spans two buffers, so the buffer bounds its rows.
            rows = min(max_packets, (c.buf.shape[0] - c.start) // MIN_SPB_BYTES + 1)
            out = c.arrays(rows, (np.int64,) * 4 + (np.int32,) * 2)
            base = c.start
            n = 0
            while True:
                n, pos, status, need, self.last_ts = walk_blocks(
                    c.buf, c.start, c.end, base, n, self.big, self.skip_all,
                    *self._ifaces.views(), self.last_ts, *out)
                c.start = pos
                # Read on into the same buffer while it has room: the batch can grow.
                if not (status == NEED_MORE and c.fits(need) and c.ensure(need)):
                    break
            if n:
                yield (c.buf[base:pos],) + tuple(a[:n] for a in out)
            if status == FULL:
                if max_packets == 0:
                    return          # priming stops at the first packet block
                continue
            problem = None
            if status == PY_BLOCK:
                btype = struct.unpack_from("<I", c.buf, pos)[0]
                problem = self._section_header() if btype == BT_SHB else self._interface()
            elif status == NEED_MORE:
                if c.ensure(need):
                    continue
                if c.avail == 0 and c.eof_reason() is None:
                    self.done = True        # clean end of file between blocks
                    return
                problem = self._short("block header" if need == 8 else "block", need)
            else:
                problem = "damaged", self._damage(status, pos)
            if problem is not None:
                self.done = True
                self.stop(problem[0], c.offset(c.start), problem[1])
                return
