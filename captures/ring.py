"""Capture output as dumpcap writes it: one file, or a ring buffer of files, with autostop conditions.

Option syntax and semantics follow dumpcap (``-b``/``--ring-buffer`` and
``-a``/``--autostop``, each given several times or as a comma-separated list):

- ``-b filesize:KB``: switch to the next file once the current one holds KB
  kilobytes (1 kB = 1000 bytes, headers included); ``-b duration:S``: after
  S seconds; ``-b interval:S``: when the time is an exact multiple of S
  seconds; ``-b packets:N``: after N packets; ``-b files:N``: keep only the
  last N files (older ones are deleted).
- ``-a duration:S``: stop after S seconds; ``-a filesize:KB``: stop once the
  file (in a ring buffer: the current file) holds KB kilobytes; ``-a files:N``:
  stop after N files; ``-a packets:N``: stop after N packets.

Ring buffer files are named as dumpcap names them:
``PREFIX_NNNNN_YYYYMMDDHHMMSS.EXT``, where ``out.pcapng`` gives the prefix
``out`` and the extension ``.pcapng``, NNNNN counts files from 00001 and the
time is the local time the file was created.

Every file is complete at every batch boundary (whole records only) and is
closed properly by :meth:`CaptureFileWriter.close`.
"""

from __future__ import annotations

import gzip
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .batch import PacketBatch
from .writer import PcapWriter

_NS = 1_000_000_000
_MAX_FILE_NUMBER = 100000          # dumpcap's RINGBUFFER_MAX_NUM_FILES: numbers wrap after 99999


class OptionError(ValueError):
    """A bad ``-a``/``-b`` option (one line, for the CLI)."""


@dataclass
class RingBuffer:
    """``-b`` conditions (None = not set)."""

    filesize_kb: int | None = None
    duration: float | None = None
    interval: float | None = None
    packets: int | None = None
    files: int | None = None

    @property
    def switches(self) -> bool:
        """Whether any condition switches files (``files`` alone does not)."""
        return any(v is not None for v in (self.filesize_kb, self.duration, self.interval, self.packets))

    @property
    def enabled(self) -> bool:
        return self.switches or self.files is not None


@dataclass
class Autostop:
    """``-a`` conditions (None = not set); ``packets`` also takes ``-c``."""

    duration: float | None = None
    filesize_kb: int | None = None
    files: int | None = None
    packets: int | None = None


def _split(values) -> list[tuple[str, str]]:
    items = []
    for value in values or ():
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, number = part.partition(":")
            if not sep or not number.strip():
                raise OptionError(f"{part!r} is not KEY:VALUE")
            items.append((key.strip().lower(), number.strip()))
    return items


def _number(key: str, text: str, kind=int, positive: bool = True):
    try:
        value = kind(text)
    except ValueError:
        raise OptionError(f"{key}:{text}: {text!r} is not a {'whole ' if kind is int else ''}number")
    if math.isnan(value) or math.isinf(value) or value < 0 or (positive and value == 0):
        raise OptionError(f"{key}:{text}: must be {'positive' if positive else 'zero or more'}")
    return value


def parse_ring_buffer(values) -> RingBuffer:
    """Parse ``-b`` values (``["filesize:1000", "files:5"]`` or ``["filesize:1000,files:5"]``)."""
    ring = RingBuffer()
    for key, text in _split(values):
        if key == "filesize":
            ring.filesize_kb = _number(key, text)
        elif key == "duration":
            ring.duration = _number(key, text, float)
        elif key == "interval":
            ring.interval = _number(key, text, float)
        elif key == "packets":
            ring.packets = _number(key, text)
        elif key == "files":
            ring.files = _number(key, text)
        elif key == "printname":
            raise OptionError("-b printname is not supported")
        else:
            raise OptionError(f"unknown ring buffer option {key!r} "
                              "(filesize, duration, interval, packets, files)")
    return ring


def parse_autostop(values, count: int | None = None) -> Autostop:
    """Parse ``-a`` values; ``count`` is ``-c`` (the smaller of it and ``packets:`` wins)."""
    stop = Autostop()
    for key, text in _split(values):
        if key == "duration":
            stop.duration = _number(key, text, float)
        elif key == "filesize":
            stop.filesize_kb = _number(key, text)
        elif key == "files":
            stop.files = _number(key, text)
        elif key == "packets":
            stop.packets = _number(key, text)
        else:
            raise OptionError(f"unknown autostop condition {key!r} (duration, filesize, files, packets)")
    if count is not None:
        if count < 0:
            raise OptionError(f"packet count {count} is negative")
        if count > 0:       # dumpcap/tcpdump: -c 0 means no limit
            stop.packets = count if stop.packets is None else min(stop.packets, count)
    return stop


def is_pcapng_name(path: str) -> bool:
    """Whether a file name asks for pcapng (``.pcapng``, ``.ntar``, optionally ``.gz``)."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith((".pcapng", ".ntar", ".scap"))


def ring_name_parts(path: str) -> tuple[str, str]:
    """(prefix, extension) of a ring buffer base name, as dumpcap splits it (``out.pcap.gz`` -> ``out``, ``.pcap.gz``)."""
    directory, base = os.path.split(path)
    suffix = ""
    if base.lower().endswith(".gz"):
        base, suffix = base[:-3], base[-3:]
    stem, dot, ext = base.rpartition(".")
    if dot and stem:
        return os.path.join(directory, stem), "." + ext + suffix
    return os.path.join(directory, base), suffix


def ring_file_name(path: str, number: int, when: float | None = None) -> str:
    """The name of ring buffer file ``number`` (1-based) created at ``when`` (epoch seconds, local time)."""
    prefix, ext = ring_name_parts(path)
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(time.time() if when is None else when))
    return f"{prefix}_{number % _MAX_FILE_NUMBER:05d}_{stamp}{ext}"


class _Counted:
    """A binary file wrapper counting the bytes written (the file size, header included)."""

    def __init__(self, raw):
        self.raw = raw
        self.size = 0

    def write(self, data) -> int:
        written = self.raw.write(data)
        self.size += memoryview(data).nbytes
        return written

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()


class CaptureFileWriter:
    """Write a live capture to ``path`` (``"-"`` = stdout), or to a dumpcap-style ring of files.

    Args:
        path: output file; with a ring buffer, the base name of the files.
        link_type, snaplen: of the capture.
        pcapng: pcapng instead of pcap; default: by the file name (``.pcapng``).
        nanosecond: ns timestamps; default: for pcapng files only (tcpdump
            and dumpcap's defaults).
        ring: ``-b`` conditions.
        autostop: ``-a`` conditions on files (``filesize``, ``files``).
        on_file: called with each new file's name.

    Attributes:
        full: an autostop condition is met: no more packets are taken.
        packets: packets written in all; files_created: files created in all;
        paths: the files still on disk, oldest first.
    """

    def __init__(self, path: str, link_type: int, snaplen: int, *, pcapng: bool | None = None,
                 nanosecond: bool | None = None, ring: RingBuffer | None = None,
                 autostop: Autostop | None = None, on_file=None):
        self.path = os.fspath(path)
        self.link_type = int(link_type)
        self.snaplen = int(snaplen)
        self.pcapng = is_pcapng_name(self.path) if pcapng is None else bool(pcapng)
        self.nanosecond = self.pcapng if nanosecond is None else bool(nanosecond)
        self.ring = ring if ring is not None and ring.enabled else None
        self.autostop = autostop or Autostop()
        self.on_file = on_file
        if self.ring is not None and not self.ring.switches:
            raise OptionError("ring buffer requested, but no filesize, duration, interval or packets "
                              "condition to switch files")
        if self.ring is not None and self.path == "-":
            raise OptionError("a ring buffer needs a file name (-w FILE), not standard output")
        self.full = False
        self.packets = 0
        self.files_created = 0
        self.paths: list[str] = []
        self._file: _Counted | None = None
        self._writer: PcapWriter | None = None
        self._file_packets = 0
        self._file_opened = 0.0
        self._open_next(time.time())

    # -- files ------------------------------------------------------------

    @property
    def current(self) -> str | None:
        """The file being written."""
        return self.paths[-1] if self.paths else None

    def _open_next(self, when: float) -> bool:
        """Close the current file and open the next; False (and ``full``) when ``-a files`` forbids it."""
        if self._writer is not None:
            if self.autostop.files is not None and self.files_created >= self.autostop.files:
                self.full = True
                return False
            self._close_file()
        self.files_created += 1
        if self.path == "-":
            name, raw = "-", sys.stdout.buffer
        else:
            name = ring_file_name(self.path, self.files_created, when) if self.ring else self.path
            raw = gzip.open(name, "wb") if name.lower().endswith(".gz") else open(name, "wb")
        self._file = _Counted(raw)
        self._writer = PcapWriter(self._file, self.link_type, self.snaplen, self.nanosecond, pcapng=self.pcapng)
        self._file.flush()
        self._file_packets = 0
        self._file_opened = when
        self.paths.append(name)
        if self.ring is not None and self.ring.files is not None:
            while len(self.paths) > self.ring.files:
                old = self.paths.pop(0)
                try:
                    os.remove(old)
                except OSError:
                    pass
        if self.on_file is not None:
            self.on_file(name)
        return True

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()          # flushes; the file object is ours to close
            if self.path != "-":
                self._file.close()
            else:
                self._file.flush()
        self._writer = None
        self._file = None

    # -- packets ----------------------------------------------------------

    def _record_sizes(self, batch: PacketBatch) -> np.ndarray:
        cap = np.minimum(np.asarray(batch.cap_len, np.int64), self.snaplen)
        return 32 + ((cap + 3) & ~3) if self.pcapng else 16 + cap

    def _take(self, batch: PacketBatch, lo: int, hi: int) -> PacketBatch:
        if lo == 0 and hi == len(batch):
            return batch
        return PacketBatch(batch.data, batch.offset[lo:hi], batch.cap_len[lo:hi], batch.wire_len[lo:hi],
                           batch.ts_ns[lo:hi], batch.link_type[lo:hi], batch.interface_id[lo:hi],
                           batch.first_number + lo)

    def _time_boundary(self) -> float | None:
        """Epoch seconds at which the current file must end by time (None: no time condition)."""
        bounds = []
        if self.ring is not None and self.ring.duration is not None:
            bounds.append(self._file_opened + self.ring.duration)
        if self.ring is not None and self.ring.interval is not None:
            step = self.ring.interval
            bounds.append((int(self._file_opened // step) + 1) * step)
        return min(bounds) if bounds else None

    def _switch_time(self, now: float) -> float:
        """When the file switched to at ``now`` by time counts as opened (``interval``: the multiple reached)."""
        if self.ring.interval is not None and self.ring.duration is None:
            step = self.ring.interval
            return max(self._file_opened, (now // step) * step)
        return now

    def write_batch(self, batch: PacketBatch) -> int:
        """Write ``batch``, switching files where the conditions say; return the packets taken.

        Fewer than ``len(batch)`` are taken only when an autostop condition is
        met (``full`` is then true).
        """
        n = len(batch)
        done = 0
        if self.full or n == 0:
            return 0
        sizes = None
        while done < n:
            stop = n
            # Switch by time: the first packet stamped at or after the boundary opens the next file.
            boundary = self._time_boundary()
            if boundary is not None:
                first_late = done + int(np.searchsorted(batch.ts_ns[done:n], int(boundary * _NS), "left"))
                if first_late == done:
                    if not self._open_next(self._switch_time(int(batch.ts_ns[done]) / _NS)):
                        break
                    continue
                stop = min(stop, first_late)
            if self.ring is not None and self.ring.packets is not None:
                stop = min(stop, done + self.ring.packets - self._file_packets)
            limits = []
            if self.ring is not None and self.ring.filesize_kb is not None:
                limits.append(self.ring.filesize_kb * 1000)
            if self.autostop.filesize_kb is not None:
                limits.append(self.autostop.filesize_kb * 1000)
            switch_after = False
            if limits:
                if sizes is None:
                    sizes = self._record_sizes(batch)
                room = min(limits) - self._file.size
                ends = np.cumsum(sizes[done:stop])
                # The packet that makes the file reach the limit is the last one in it.
                reach = int(np.searchsorted(ends, room, "left"))
                if reach < stop - done:
                    stop = done + reach + 1
                    switch_after = True
            part = self._take(batch, done, stop)
            self._writer.write_batch(part)
            self._file_packets += stop - done
            self.packets += stop - done
            done = stop
            if self.autostop.filesize_kb is not None and self._file.size >= self.autostop.filesize_kb * 1000:
                self.full = True
                break
            packets_full = (self.ring is not None and self.ring.packets is not None
                            and self._file_packets >= self.ring.packets)
            size_full = (switch_after and self.ring is not None and self.ring.filesize_kb is not None
                         and self._file.size >= self.ring.filesize_kb * 1000)
            if packets_full or size_full:
                if not self._open_next(time.time()):
                    break
        if self._file is not None:
            self._file.flush()
        return done

    def tick(self, now: float | None = None) -> None:
        """Switch files by time while no packets come (``-b duration``/``interval``)."""
        if self.full or self.ring is None:
            return
        now = time.time() if now is None else now
        boundary = self._time_boundary()
        if boundary is not None and now >= boundary:
            self._open_next(self._switch_time(now))

    def close(self) -> None:
        """Flush and close the current file (idempotent)."""
        self._close_file()

    def __enter__(self) -> "CaptureFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
