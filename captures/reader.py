"""Open a capture file of any supported format and read it as PacketBatches.

:func:`open_capture` recognises the format by its first bytes (never by the
file name): classic pcap (:mod:`captures.pcap`), pcapng
(:mod:`captures.pcapng`), either of them gzip-compressed (``1f 8b``).

Reading streams: the file is read in chunks into fresh buffers (a yielded
batch keeps a view of its chunk, so a chunk is never reused), carrying an
incomplete record over to the next chunk.  Memory is a chunk or two plus
whatever batches the caller keeps, whatever the size of the file.

A caller that is done with each batch before it asks for the next (the
analysis pipeline) can open with ``reuse_buffers=True``: the reader then
reads every chunk into the same buffer and fills the same column arrays,
which saves allocating and page-faulting 32 MB and a few column arrays per
chunk, but a batch's arrays (``data``, ``offset``, ``ts_ns``, …) are only
valid until the next batch is requested.

Damage after the header never raises: reading stops at the first damaged or
incomplete record, keeps everything before it, and records one warning and
the byte offset (:attr:`CaptureReader.warnings`, :attr:`CaptureReader.truncated_at`).

Timestamps are ``int64`` ns since the epoch.  A pcapng Simple Packet Block
carries none: its frame gets the timestamp of the previous frame of the file
(0 if it is the first).
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from . import pcap, pcapng
from .batch import PacketBatch
from .errors import CaptureError

# A batch's worth of records (about 55,000 frames of 600 bytes): the fixed cost of dissecting a batch
# (Python steps per protocol group, column set-up) is spread over more frames than at 16 MB, and its
# columns still fit the reused arenas; 64 MB was no faster (bench/speed.py, mix-1m).
CHUNK_BYTES = 32 * 1024 * 1024
STEP_BYTES = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
# Decompress in small steps: if the gzip stream breaks, only the step that
# failed is lost, so truncated_at is close to where the damage is.
_GZIP_STEP = 1 << 20

_PRECISION_LABELS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


@dataclass(frozen=True)
class InterfaceInfo:
    """One capture interface.

    Classic pcap files have exactly one; pcapng files have one per Interface
    Description Block, numbered over the whole file in order of appearance
    (the ``PacketBatch.interface_id`` value, like Wireshark's
    ``frame.interface_id``).

    Attributes:
        link_type: LINKTYPE_* value.
        snaplen: largest captured length per packet; 0 means no limit (pcapng).
        name: pcapng ``if_name`` option, else ``None``.
        tsresol: timestamp resolution code in pcapng ``if_tsresol`` form: a
            value ``k`` below 128 means 10^-k s, ``0x80 | k`` means 2^-k s
            (6 for pcap µs files, 9 for pcap ns files).
        ts_offset_s: pcapng ``if_tsoffset``: seconds added to every timestamp.
        section: 0-based pcapng section of the interface (0 for pcap).
        fcs_len: bytes of FCS at the end of every frame if the file says
            (pcap LinkType field with the P bit set), else ``None``.
    """

    link_type: int
    snaplen: int
    name: str | None = None
    tsresol: int = 6
    ts_offset_s: int = 0
    section: int = 0
    fcs_len: int | None = None

    @property
    def ts_resolution_ns(self) -> float:
        """Length of one timestamp unit in ns (0.9765625e6 for 2^-10 s)."""
        k = self.tsresol & 0x7F
        return 1e9 / 2 ** k if self.tsresol & 0x80 else 10.0 ** (9 - k)

    @property
    def time_precision(self) -> str:
        """``'s'``, ``'ms'``, ``'us'``, ``'ns'``, else ``'1e-k'`` or ``'2^-k'``."""
        k = self.tsresol & 0x7F
        if self.tsresol & 0x80:
            return f"2^-{k}"
        return _PRECISION_LABELS.get(k, f"1e-{k}")


@dataclass
class CaptureInfo:
    """What the file says about itself.

    Attributes:
        path: the file as named by the caller.
        file_format: ``'pcap'`` or ``'pcapng'``.
        compressed: the file is gzip-compressed.
        snaplen: pcap File Header SnapLen; ``None`` for pcapng (per interface).
        interfaces: see :class:`InterfaceInfo`.  For pcapng this holds the
            IDBs read so far: those before the first packet once opened, all
            of them once the batches are exhausted.
        byte_order: ``'little'`` or ``'big'`` (pcapng: of the first section).
        version: ``(major, minor)`` format version (pcapng: first section).
    """

    path: str
    file_format: str
    compressed: bool
    snaplen: int | None
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    byte_order: str = "little"
    version: tuple[int, int] = (0, 0)

    @property
    def time_precision(self) -> str | tuple[str, ...]:
        """pcap: ``'us'`` or ``'ns'``; pcapng: one label per interface."""
        labels = tuple(i.time_precision for i in self.interfaces)
        if self.file_format == "pcap":
            return labels[0]
        return labels

    @property
    def link_types(self) -> list[int]:
        """Sorted distinct LINKTYPE_* values of the interfaces."""
        return sorted({i.link_type for i in self.interfaces})


class _Chunks:
    """A sliding window over the (decompressed) byte stream.

    ``buf[start:end]`` are the bytes not consumed yet; ``buf[i]`` is byte
    ``base + i`` of the stream.  :meth:`ensure` reads in steps of ``step``
    bytes, appending to ``buf`` while it has room (bytes already in ``buf``
    are never written again, so views of them stay valid) and otherwise
    moving the unconsumed tail to a newly allocated buffer.  Reading in
    small steps lets the record walk find the bytes still in the CPU cache.

    With ``reuse``, the unconsumed tail is moved to the front of the same
    buffer instead (so views of it are overwritten), and :meth:`arrays`
    hands out the same column arrays each time.
    """

    def __init__(self, read_into, chunk_bytes: int, compressed: bool = False,
                 step: int = STEP_BYTES, reuse: bool = False):
        self._read_into = read_into
        self._compressed = compressed
        self._chunk_bytes = chunk_bytes
        self._step = min(step, chunk_bytes)
        self._reuse = reuse
        self._arrays: dict[tuple, list[np.ndarray]] = {}
        self.buf = np.empty(0, np.uint8)
        self.start = 0
        self.end = 0
        self.base = 0
        self._eof = False
        self._error: str | None = None

    @property
    def avail(self) -> int:
        return self.end - self.start

    def offset(self, i: int) -> int:
        """Stream offset of ``buf[i]``."""
        return self.base + i

    def eof_reason(self) -> str | None:
        """Why the stream ended early (corrupt gzip, I/O error), or ``None``."""
        return self._error

    def arrays(self, rows: int, dtypes: tuple) -> list[np.ndarray]:
        """Empty column arrays of ``rows`` rows, one per dtype (the same ones again with ``reuse``)."""
        if not self._reuse:
            return [np.empty(rows, dtype) for dtype in dtypes]
        arrays = self._arrays.get(dtypes)
        if arrays is None or arrays[0].shape[0] < rows:
            arrays = self._arrays[dtypes] = [np.empty(rows, dtype) for dtype in dtypes]
        return [array[:rows] for array in arrays]

    def close(self) -> None:
        """Drop the buffer and report end of data from now on."""
        self._arrays = {}
        self.buf = np.empty(0, np.uint8)
        self.start = self.end = 0
        self._eof = True

    def fits(self, need: int) -> bool:
        """Whether ``ensure(need)`` can keep the current buffer."""
        return self.start + need <= self.buf.shape[0]

    def ensure(self, need: int) -> bool:
        """Make ``need`` bytes available from ``start``; ``False`` at end of data."""
        if self.end - self.start >= need:
            return True
        if self._eof:
            return False
        if not self.fits(need):
            tail = self.end - self.start
            if self._reuse and need <= self.buf.shape[0]:
                # np.copyto handles the overlap (a tail longer than half the buffer).
                new = self.buf
            else:
                new = np.empty(max(self._chunk_bytes, need), np.uint8)
            new[:tail] = self.buf[self.start:self.end]
            self.base += self.start
            self.buf, self.start, self.end = new, 0, tail
        target = min(self.buf.shape[0], max(self.start + need, self.end + self._step))
        view = memoryview(self.buf)
        try:
            while self.end - self.start < need:
                got = self._read_into(view[self.end:target])
                if not got:
                    self._eof = True
                    break
                self.end += got
        except (OSError, EOFError, zlib.error) as exc:
            # gzip.BadGzipFile is an OSError; EOFError is a truncated gzip stream.
            self._eof = True
            what = "corrupt or truncated gzip stream" if self._compressed else "read error"
            self._error = f"{what} ({exc})"
        finally:
            view.release()
        return self.end - self.start >= need


class _Report:
    """Warnings and the damage offset, shared by a reader and its format stream.

    Kept apart from :class:`CaptureReader` so that the stream does not point
    back at the reader: without a reference cycle, a reader dropped without
    ``close()`` frees its buffers at once instead of at the next GC pass.
    """

    def __init__(self, compressed: bool):
        self.compressed = compressed
        self.warnings: list[str] = []
        self.truncated_at: int | None = None

    def stop(self, kind: str, offset: int, detail: str) -> None:
        where = f"byte offset {offset}" + (" (decompressed)" if self.compressed else "")
        head = "file truncated" if kind == "truncated" else "damaged record"
        self.warnings.append(f"{head} at {where}: {detail}")
        self.truncated_at = offset


class CaptureReader:
    """An open capture file; use :func:`open_capture` to make one.

    A context manager.  Read it once, with :meth:`batches`.

    Attributes:
        info: :class:`CaptureInfo`.
        warnings: problems met so far, one line each.  Damage stops reading
            and adds one ``"file truncated at byte offset N: …"`` or
            ``"damaged record at byte offset N: …"`` line.
        packets: frames yielded so far.
        truncated_at: offset of the damage in the (decompressed) file, or
            ``None`` while none was met.
    """

    def __init__(self, info: CaptureInfo, files: list, chunks: _Chunks, report: _Report):
        self.info = info
        self.reuse_buffers = chunks._reuse
        self.packets = 0
        self._report = report
        self._files = files
        self._chunks = chunks
        self._records = None        # callable(max_packets) -> iterator of column tuples
        self._done = False

    @property
    def warnings(self) -> list[str]:
        return self._report.warnings

    @property
    def truncated_at(self) -> int | None:
        return self._report.truncated_at

    def batches(self, max_packets: int = 65536) -> Iterator[PacketBatch]:
        """Yield the frames in file order as :class:`PacketBatch` objects.

        Each batch has at most ``max_packets`` frames (fewer at the end of a
        read chunk); ``first_number`` continues across batches from 1.  A
        batch's arrays stay valid for as long as the caller keeps them, or,
        if the reader was opened with ``reuse_buffers=True``, until the next
        batch is requested.  Calling again resumes where the previous
        iterator stopped.
        """
        if max_packets < 1:
            raise ValueError("max_packets must be at least 1")
        if self._done:
            return
        if not self._files:
            raise ValueError("I/O operation on a closed capture reader")
        for cols in self._records(max_packets):
            data, offset, cap_len, wire_len, ts_ns = cols[:5]
            n = offset.shape[0]
            if len(cols) == 5:      # classic pcap: one interface
                link, iface = self._chunks.arrays(n, (np.int32, np.int32))
                link.fill(self.info.interfaces[0].link_type)
                iface.fill(0)
            else:
                link, iface = cols[5], cols[6]
            batch = PacketBatch(data=data, offset=offset, cap_len=cap_len, wire_len=wire_len,
                                ts_ns=ts_ns, link_type=link, interface_id=iface,
                                first_number=self.packets + 1)
            self.packets += n
            yield batch
        self._done = True

    def __iter__(self) -> Iterator[PacketBatch]:
        return self.batches()

    def close(self) -> None:
        """Close the file; batches already yielded stay valid."""
        for f in reversed(self._files):
            f.close()
        self._files = []
        self._records = None
        self._chunks.close()

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_stream(path):
    """``(files, read_into, compressed)`` for the file, gunzipping if needed."""
    raw = open(path, "rb", buffering=0)
    try:
        head = raw.read(2)
        raw.seek(0)
    except OSError:
        raw.close()
        raise
    if head != GZIP_MAGIC:
        return [raw], raw.readinto, False
    gz = gzip.GzipFile(fileobj=raw, mode="rb")

    def read_into(view):
        data = gz.read1(min(len(view), _GZIP_STEP))
        view[:len(data)] = data
        return len(data)

    return [raw, gz], read_into, True


def open_capture(path, *, chunk_bytes: int = CHUNK_BYTES, reuse_buffers: bool = False) -> CaptureReader:
    """Open a pcap or pcapng file, plain or gzip-compressed.

    Args:
        path: file name (``str`` or path-like).
        chunk_bytes: bytes read at a time (memory use is about two chunks
            plus the batches the caller keeps).
        reuse_buffers: read every chunk into the same buffer and fill the
            same column arrays, for a caller that has finished with each
            batch before it asks for the next: a batch's arrays are then
            only valid until the next batch is requested (copy what must
            outlive it).  Faster (no fresh memory to allocate and fault in
            per chunk) and memory stays at one chunk.  Default: every batch
            stays valid for as long as it is kept.

    Returns:
        a :class:`CaptureReader`; its ``info`` is filled from the header.

    Raises:
        CaptureError: the file cannot be opened (missing, a directory, no
            permission), is empty, is not pcap or pcapng ("not a pcap or
            pcapng capture (magic 0x…)"), or its header is cut short or
            corrupt (including a gzip stream that breaks before it).
    """
    name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    try:
        files, read_into, compressed = _open_stream(path)
    except IsADirectoryError:
        raise CaptureError(name, "is a directory") from None
    except FileNotFoundError:
        raise CaptureError(name, "no such file") from None
    except PermissionError:
        raise CaptureError(name, "permission denied") from None
    except OSError as exc:
        raise CaptureError(name, f"cannot open: {exc.strerror or exc}") from None
    try:
        return _open_reader(name, files, read_into, compressed, chunk_bytes, reuse_buffers)
    except BaseException:
        for f in reversed(files):
            f.close()
        raise


def _open_reader(name, files, read_into, compressed, chunk_bytes, reuse_buffers) -> CaptureReader:
    chunks = _Chunks(read_into, chunk_bytes, compressed, reuse=reuse_buffers)
    chunks.ensure(4)
    head = bytes(chunks.buf[chunks.start:chunks.start + min(chunks.avail, 4)])
    broken = chunks.eof_reason()
    if len(head) < 4:
        if broken is not None:
            raise CaptureError(name, broken)
        if not head:
            raise CaptureError(name, "empty file" + (" (after gzip decompression)" if compressed else ""))
        raise CaptureError(name, f"file too short to be a capture ({len(head)} bytes)")

    if head in pcap.MAGICS:
        chunks.ensure(pcap.FILE_HEADER_BYTES)
        avail = min(chunks.avail, pcap.FILE_HEADER_BYTES)
        if avail < pcap.FILE_HEADER_BYTES and chunks.eof_reason() is not None:
            raise CaptureError(name, chunks.eof_reason())
        try:
            header = pcap.parse_header(bytes(chunks.buf[chunks.start:chunks.start + avail]))
        except ValueError as exc:
            raise CaptureError(name, str(exc)) from None
        chunks.start += pcap.FILE_HEADER_BYTES
        precision = 9 if header.nanosecond else 6
        info = CaptureInfo(
            path=name, file_format="pcap", compressed=compressed, snaplen=header.snaplen,
            interfaces=[InterfaceInfo(header.link_type, header.snaplen, tsresol=precision,
                                      fcs_len=header.fcs_len)],
            byte_order="big" if header.big_endian else "little", version=header.version)
        report = _Report(compressed)
        reader = CaptureReader(info, files, chunks, report)
        if header.version[0] != 2:
            reader.warnings.append(f"unusual pcap version {header.version[0]}.{header.version[1]} "
                                   "(expected 2.4); read as 2.4")
        if header.reserved_bits:
            reader.warnings.append(f"reserved bits 0x{header.reserved_bits:08x} set in the pcap "
                                   "LinkType field; ignored")
        reader._records = functools.partial(pcap.iter_records, chunks, header, stop=report.stop)
        return reader

    if head == pcapng.SHB_MAGIC:
        info = CaptureInfo(path=name, file_format="pcapng", compressed=compressed, snaplen=None)
        report = _Report(compressed)
        reader = CaptureReader(info, files, chunks, report)

        def on_interface(idb: pcapng.Idb, section: int) -> int:
            info.interfaces.append(InterfaceInfo(
                link_type=idb.link_type, snaplen=idb.snaplen, name=idb.name,
                tsresol=idb.tsresol, ts_offset_s=idb.ts_offset, section=section))
            return len(info.interfaces) - 1

        stream = pcapng.PcapngStream(chunks, on_interface, report.stop, report.warnings.append)
        try:
            stream.open()
        except ValueError as exc:
            raise CaptureError(name, str(exc)) from None
        info.byte_order = "big" if stream.big else "little"
        info.version = stream.first_version
        stream.prime()
        reader._records = stream.iter_records
        return reader

    raise CaptureError(name, f"not a pcap or pcapng capture (magic 0x{head.hex()})")
