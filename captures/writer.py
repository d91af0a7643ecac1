"""Write frames to classic pcap or pcapng files.

pcap files are written as draft-ietf-opsawg-pcap §4-§5 (version 2.4);
pcapng files as one section (draft-ietf-opsawg-pcapng §4.1) with one
Interface Description Block per link type (§4.2, ``if_tsresol`` = 9 for ns
files) and Enhanced Packet Blocks (§4.3).  Every record stores
``cap_len = min(len(frame), snaplen)`` bytes and ``wire_len`` as given
(default ``len(frame)``).  Timestamps are ``int64`` ns since the epoch;
µs files round them down to the µs.

Batches are packed into the output by a compiled loop, so writing a million
frames from :class:`PacketBatch` objects takes well under a second.  A path
ending in ``.gz`` is written gzip-compressed.
"""

from __future__ import annotations

import gzip
import itertools
import os
import struct

import numba
import numpy as np

from .batch import PacketBatch

_GROUP = 65536          # frames packed per output buffer
_NS = 1_000_000_000
_U32_MAX = 0xFFFFFFFF


@numba.njit(cache=True, nogil=True, inline="always")
def _put32(out, p, v, big):
    if big:
        out[p] = (v >> 24) & 0xFF
        out[p + 1] = (v >> 16) & 0xFF
        out[p + 2] = (v >> 8) & 0xFF
        out[p + 3] = v & 0xFF
    else:
        out[p] = v & 0xFF
        out[p + 1] = (v >> 8) & 0xFF
        out[p + 2] = (v >> 16) & 0xFF
        out[p + 3] = (v >> 24) & 0xFF


@numba.njit(cache=True, nogil=True)
def _pack_pcap(data, off, cap, wire, sec, frac, big, out):
    """Pack Packet Records (pcap draft §5) into ``out``; return bytes used."""
    p = 0
    for i in range(off.shape[0]):
        _put32(out, p, sec[i], big)
        _put32(out, p + 4, frac[i], big)
        _put32(out, p + 8, cap[i], big)
        _put32(out, p + 12, wire[i], big)
        p += 16
        out[p:p + cap[i]] = data[off[i]:off[i] + cap[i]]
        p += cap[i]
    return p


@numba.njit(cache=True, nogil=True)
def _pack_epb(data, off, cap, wire, units, iface, big, out):
    """Pack Enhanced Packet Blocks (pcapng draft §4.3) into ``out``; return bytes used."""
    p = 0
    for i in range(off.shape[0]):
        c = cap[i]
        padded = (c + 3) & ~3
        blen = 32 + padded
        _put32(out, p, 6, big)
        _put32(out, p + 4, blen, big)
        _put32(out, p + 8, iface[i], big)
        _put32(out, p + 12, units[i] >> 32, big)
        _put32(out, p + 16, units[i] & 0xFFFFFFFF, big)
        _put32(out, p + 20, c, big)
        _put32(out, p + 24, wire[i], big)
        out[p + 28:p + 28 + c] = data[off[i]:off[i] + c]
        out[p + 28 + c:p + 28 + padded] = 0        # padding must be zero (§3.6.2)
        _put32(out, p + 28 + padded, blen, big)
        p += blen
    return p


class PcapWriter:
    """Write frames one by one or a batch at a time.

    Args:
        path_or_fileobj: file name (``.gz`` = gzip-compressed) or a binary
            file object (left open by :meth:`close`).
        link_type: LINKTYPE_* of the frames (0..65535).
        snaplen: bytes kept per frame (at least 1), written in the header.
        nanosecond: ns timestamps (pcap magic 0xA1B23C4D / pcapng
            ``if_tsresol`` 9) instead of µs.
        pcapng: write pcapng instead of classic pcap.
        big_endian: write big-endian numbers (default little-endian).

    Raises:
        ValueError: bad arguments, or (at write time) a timestamp before the
            epoch or past what the format holds, a length over 2^32 - 1, or
            in pcap a frame whose link type differs from the file's.
    """

    def __init__(self, path_or_fileobj, link_type: int = 1, snaplen: int = 262144,
                 nanosecond: bool = False, *, pcapng: bool = False, big_endian: bool = False):
        if not 0 <= link_type <= 0xFFFF:
            raise ValueError(f"link_type {link_type} is not a 16-bit value")
        if not 1 <= snaplen <= _U32_MAX:
            raise ValueError(f"snaplen {snaplen} must be from 1 to 2^32-1")
        self.link_type = int(link_type)
        self.snaplen = int(snaplen)
        self.nanosecond = bool(nanosecond)
        self.pcapng = bool(pcapng)
        self.big_endian = bool(big_endian)
        self.count = 0
        self._e = ">" if big_endian else "<"
        self._interfaces: dict[int, int] = {}     # pcapng: link type -> Interface ID
        if isinstance(path_or_fileobj, (str, bytes, os.PathLike)):
            name = os.fsdecode(path_or_fileobj)
            self._file = gzip.open(name, "wb") if name.endswith(".gz") else open(name, "wb")
            self._own = True
        else:
            self._file = path_or_fileobj
            self._own = False
        if self.pcapng:
            # SHB (§4.1): version 1.0, section length -1 (not specified).
            self._file.write(struct.pack(self._e + "IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D,
                                         1, 0, -1, 28))
            self._interface(self.link_type)
        else:
            self._interfaces[self.link_type] = 0
            magic = 0xA1B23C4D if self.nanosecond else 0xA1B2C3D4
            self._file.write(struct.pack(self._e + "IHHiIII", magic, 2, 4, 0, 0,
                                         self.snaplen, self.link_type))

    def _interface(self, link_type: int) -> int:
        """Interface ID for ``link_type``, writing its IDB (§4.2) the first time."""
        iface = self._interfaces.get(link_type)
        if iface is None:
            if not self.pcapng:
                raise ValueError(f"a pcap file holds one link type ({self.link_type}), "
                                 f"not {link_type}")
            if not 0 <= link_type <= 0xFFFF:
                raise ValueError(f"link_type {link_type} is not a 16-bit value")
            options = b""
            if self.nanosecond:
                options = struct.pack(self._e + "HHB3x", 9, 1, 9)    # if_tsresol = 10^-9
            options += struct.pack(self._e + "HH", 0, 0)             # opt_endofopt
            blen = 20 + len(options)
            self._file.write(struct.pack(self._e + "IIHHI", 1, blen, link_type, 0, self.snaplen)
                             + options + struct.pack(self._e + "I", blen))
            iface = self._interfaces[link_type] = len(self._interfaces)
        return iface

    def write(self, frame, ts_ns: int, wire_len: int | None = None,
              link_type: int | None = None) -> None:
        """Write one frame (``bytes``-like) captured at ``ts_ns`` ns since the epoch."""
        frame = bytes(frame)
        wire = len(frame) if wire_len is None else int(wire_len)
        cap = min(len(frame), self.snaplen)
        iface = self._interface(self.link_type if link_type is None else int(link_type))
        ts_ns = int(ts_ns)
        if ts_ns < 0:
            raise ValueError(f"timestamp {ts_ns} ns is before the epoch")
        if not 0 <= wire <= _U32_MAX:
            raise ValueError(f"wire length {wire} does not fit 32 bits")
        if self.pcapng:
            units = ts_ns if self.nanosecond else ts_ns // 1000
            if units >> 64:
                raise ValueError(f"timestamp {ts_ns} ns does not fit 64 bits")
            padded = (cap + 3) & ~3
            blen = 32 + padded
            record = (struct.pack(self._e + "IIIIIII", 6, blen, iface, units >> 32,
                                  units & _U32_MAX, cap, wire)
                      + frame[:cap] + bytes(padded - cap) + struct.pack(self._e + "I", blen))
        else:
            sec, frac = divmod(ts_ns, _NS)
            if sec > _U32_MAX:
                raise ValueError(f"timestamp {ts_ns} ns is past what pcap holds (2106)")
            if not self.nanosecond:
                frac //= 1000
            record = struct.pack(self._e + "IIII", sec, frac, cap, wire) + frame[:cap]
        self._file.write(record)
        self.count += 1

    def write_batch(self, batch: PacketBatch) -> None:
        """Write every frame of ``batch`` with its timestamps and wire lengths."""
        n = len(batch)
        if n == 0:
            return
        ts = np.asarray(batch.ts_ns, np.int64)
        wire = np.asarray(batch.wire_len, np.int64)
        if ts.min() < 0:
            raise ValueError("timestamp before the epoch")
        if wire.min() < 0 or wire.max() > _U32_MAX:
            raise ValueError("wire length does not fit 32 bits")
        links = np.asarray(batch.link_type, np.int64)
        iface = np.zeros(n, np.int64)
        for lt in np.unique(links):
            iface[links == lt] = self._interface(int(lt))
        cap = np.minimum(np.asarray(batch.cap_len, np.int64), self.snaplen)
        off = np.asarray(batch.offset, np.int64)
        data = np.ascontiguousarray(batch.data, dtype=np.uint8)
        big = 1 if self.big_endian else 0
        if self.pcapng:
            units = ts if self.nanosecond else ts // 1000
        else:
            sec, frac = np.divmod(ts, _NS)
            if sec.max() > _U32_MAX:
                raise ValueError("timestamp past what pcap holds (2106)")
            if not self.nanosecond:
                frac //= 1000
        for lo in range(0, n, _GROUP):
            hi = min(n, lo + _GROUP)
            part = slice(lo, hi)
            if self.pcapng:
                size = int(((cap[part] + 3) & ~3).sum()) + 32 * (hi - lo)
                out = np.empty(size, np.uint8)
                used = _pack_epb(data, off[part], cap[part], wire[part], units[part],
                                 iface[part], big, out)
            else:
                size = int(cap[part].sum()) + 16 * (hi - lo)
                out = np.empty(size, np.uint8)
                used = _pack_pcap(data, off[part], cap[part], wire[part], sec[part],
                                  frac[part], big, out)
            self._file.write(memoryview(out)[:used])
        self.count += n

    def close(self) -> None:
        """Flush; close the file if this writer opened it."""
        if self._file is None:
            return
        if self._own:
            self._file.close()
        else:
            self._file.flush()
        self._file = None

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write(path_or_fileobj, frames, ts_ns, link_type, snaplen, nanosecond, pcapng,
           big_endian) -> int:
    with PcapWriter(path_or_fileobj, link_type, snaplen, nanosecond, pcapng=pcapng,
                    big_endian=big_endian) as w:
        if isinstance(frames, PacketBatch):
            w.write_batch(frames)
            return w.count
        ts_all = None if ts_ns is None else np.asarray(ts_ns, np.int64)
        it = iter(frames)
        done = 0
        while True:
            group = list(itertools.islice(it, _GROUP))
            if not group:
                return w.count
            k = len(group)
            ts = (np.arange(done, done + k, dtype=np.int64) * _NS if ts_all is None
                  else ts_all[done:done + k])
            if ts.shape[0] != k:
                raise ValueError("fewer timestamps than frames")
            w.write_batch(PacketBatch.from_frames(group, link_type=link_type, ts_ns=ts))
            done += k


def write_pcap(path_or_fileobj, frames, ts_ns=None, link_type: int = 1, snaplen: int = 262144,
               nanosecond: bool = False, *, big_endian: bool = False) -> int:
    """Write a classic pcap file; return the number of frames written.

    Args:
        path_or_fileobj: see :class:`PcapWriter`.
        frames: iterable of ``bytes``-like frames, or a :class:`PacketBatch`
            (whose own timestamps and wire lengths are then used).
        ts_ns: ``int64`` ns since the epoch per frame; default 0, 1, 2… s.
        link_type, snaplen, nanosecond, big_endian: see :class:`PcapWriter`.
    """
    return _write(path_or_fileobj, frames, ts_ns, link_type, snaplen, nanosecond, False,
                  big_endian)


def write_pcapng(path_or_fileobj, frames, ts_ns=None, link_type: int = 1, snaplen: int = 262144,
                 nanosecond: bool = False, *, big_endian: bool = False) -> int:
    """Write a pcapng file (one SHB, IDBs, EPBs); same arguments as :func:`write_pcap`."""
    return _write(path_or_fileobj, frames, ts_ns, link_type, snaplen, nanosecond, True,
                  big_endian)
