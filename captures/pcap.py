"""Classic libpcap files (draft-ietf-opsawg-pcap).

Layout (draft §4, §5): a 24-byte File Header, then Packet Records of a
16-byte header (seconds, micro- or nanoseconds, captured length, original
length) followed by the captured bytes, unpadded.  Every number is in the
byte order of the writer, which the magic number tells.

The record walk is a compiled loop over one chunk of the file
(:func:`walk_records`); :func:`iter_records` drives it over the chunk
window that :mod:`captures.reader` provides.
"""

from __future__ import annotations

import struct
from typing import Iterator, NamedTuple

import numba
import numpy as np

FILE_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16

# Magic numbers as the first four bytes of the file (draft §4).
MAGIC_US_BE = b"\xa1\xb2\xc3\xd4"
MAGIC_US_LE = b"\xd4\xc3\xb2\xa1"
MAGIC_NS_BE = b"\xa1\xb2\x3c\x4d"
MAGIC_NS_LE = b"\x4d\x3c\xb2\xa1"
MAGICS = (MAGIC_US_BE, MAGIC_US_LE, MAGIC_NS_BE, MAGIC_NS_LE)

# Bounds on one record's captured length.  libpcap and Wireshark refuse
# records longer than 262144 bytes (MAXIMUM_SNAPLEN / WTAP_MAX_PACKET_SIZE_STANDARD)
# except for link types whose packets are legitimately huge; a larger file
# snaplen raises the bound, but never past the hard limit: a length beyond it
# is damage, not data, and we will not allocate for it.
STANDARD_MAX_CAPLEN = 0x40000
HARD_MAX_CAPLEN = 256 * 1024 * 1024
# LINKTYPE_DBUS (231), LINKTYPE_USBPCAP (249), LINKTYPE_EBHSCR (279):
# Wireshark allows these up to 128 MiB / 128 MiB / 8 MiB; we allow the hard limit.
LARGE_PACKET_LINK_TYPES = frozenset({231, 249, 279})

# LinkType and additional information field (draft §4, figure 2), bit 0 = MSB.
_LT_LINK_TYPE = 0x0000FFFF
_LT_FCS_LEN_SHIFT = 28          # bits 0-3: FCS length in 16-bit words
_LT_FCS_PRESENT = 0x04000000    # bit 5 ("P"): the FCS length is meaningful
_LT_RESERVED = 0x0BFF0000       # bit 4 ("R") and bits 6-15 ("Reserved3")

# walk_records() status codes.
NEED_MORE = 0   # the next record is not complete in the buffer
FULL = 1        # the output arrays are full
TOO_LONG = 2    # the next record's captured length is beyond max_caplen


def max_caplen(link_type: int, snaplen: int) -> int:
    """Largest captured length we accept for one record, in bytes.

    ``max(snaplen, 262144)`` capped at ``HARD_MAX_CAPLEN`` (256 MiB); the
    hard limit itself for the link types in ``LARGE_PACKET_LINK_TYPES``.
    """
    if link_type in LARGE_PACKET_LINK_TYPES:
        return HARD_MAX_CAPLEN
    return min(HARD_MAX_CAPLEN, max(int(snaplen), STANDARD_MAX_CAPLEN))


class PcapHeader(NamedTuple):
    """The File Header (draft §4), decoded.

    Attributes:
        big_endian: the file's byte order.
        nanosecond: the fraction field counts ns (magic 0xA1B23C4D), else µs.
        version: ``(major, minor)``; 2.4 in every file written since 1998.
        snaplen: the SnapLen field (unsigned).
        link_type: low 16 bits of the LinkType field (LINKTYPE_*).
        fcs_len: bytes of FCS at the end of every frame when the P bit says
            the FCS length field is meaningful, else ``None`` (unknown).
        reserved_bits: the R and Reserved3 bits of the LinkType field, which
            writers must leave 0 (non-zero makes the reader warn).
    """

    big_endian: bool
    nanosecond: bool
    version: tuple[int, int]
    snaplen: int
    link_type: int
    fcs_len: int | None
    reserved_bits: int


def parse_header(header: bytes) -> PcapHeader:
    """Decode a File Header.

    Args:
        header: the first 24 bytes of the file (more is ignored).

    Raises:
        ValueError: fewer than 24 bytes, or not a pcap magic number; the
            message is the reason to show the user.
    """
    magic = bytes(header[:4])
    if magic not in MAGICS:
        raise ValueError(f"not a pcap capture (magic 0x{magic.hex()})")
    if len(header) < FILE_HEADER_BYTES:
        raise ValueError(
            f"corrupt pcap file header: file ends after {len(header)} of {FILE_HEADER_BYTES} bytes")
    big = magic in (MAGIC_US_BE, MAGIC_NS_BE)
    major, minor, _res1, _res2, snaplen, lt_field = struct.unpack(
        (">" if big else "<") + "HHIIII", header[4:FILE_HEADER_BYTES])
    fcs_len = 2 * (lt_field >> _LT_FCS_LEN_SHIFT) if lt_field & _LT_FCS_PRESENT else None
    return PcapHeader(
        big_endian=big,
        nanosecond=magic in (MAGIC_NS_BE, MAGIC_NS_LE),
        version=(major, minor),
        snaplen=snaplen,
        link_type=lt_field & _LT_LINK_TYPE,
        fcs_len=fcs_len,
        reserved_bits=lt_field & _LT_RESERVED,
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(buf, pos, big):
    b0 = np.int64(buf[pos])
    b1 = np.int64(buf[pos + 1])
    b2 = np.int64(buf[pos + 2])
    b3 = np.int64(buf[pos + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return (b3 << 24) | (b2 << 16) | (b1 << 8) | b0


@numba.njit(cache=True, nogil=True)
def walk_records(buf, pos, end, base, n, big, frac_ns, limit, out_off, out_cap, out_wire, out_ts):
    """Walk Packet Records in ``buf[pos:end]`` (compiled).

    Args:
        buf: ``uint8[m]`` chunk of the file.
        pos, end: byte range of ``buf`` to walk; ``pos`` is at a record header.
        base: index in ``buf`` that output offsets are relative to.
        n: output rows already filled (the walk appends after them).
        big: 1 if the file is big-endian.
        frac_ns: nanoseconds per unit of the fraction field (1000 or 1).
        limit: largest captured length accepted (:func:`max_caplen`).
        out_off, out_cap, out_wire, out_ts: ``int64[k]`` outputs: start of
            the frame's bytes relative to ``base``, captured length,
            original length, ns since the epoch.

    Returns:
        ``(n, pos, status)``: rows filled, offset in ``buf`` of the first
        record not walked, and why the walk stopped (``NEED_MORE``, ``FULL``
        or ``TOO_LONG``).
    """
    cap = out_off.shape[0]
    while True:
        if n == cap:
            return n, pos, FULL
        if end - pos < RECORD_HEADER_BYTES:
            return n, pos, NEED_MORE
        caplen = _u32(buf, pos + 8, big)
        if caplen > limit:
            return n, pos, TOO_LONG
        if end - pos - RECORD_HEADER_BYTES < caplen:
            return n, pos, NEED_MORE
        # Seconds are unsigned 32-bit (draft §5), so dates past 2038 stay
        # positive.  A fraction of a second >= 1 s is kept as the file says
        # (Wireshark does the same), carrying into the seconds.
        out_ts[n] = _u32(buf, pos, big) * 1_000_000_000 + _u32(buf, pos + 4, big) * frac_ns
        out_off[n] = pos + RECORD_HEADER_BYTES - base
        out_cap[n] = caplen
        out_wire[n] = _u32(buf, pos + 12, big)
        pos += RECORD_HEADER_BYTES + caplen
        n += 1


def iter_records(chunks, header: PcapHeader, max_packets: int, stop) -> Iterator[tuple]:
    """Yield the records after the File Header as column tuples.

    Args:
        chunks: the reader's chunk window (``buf``, ``start``, ``end``,
            ``avail``, ``offset(i)``, ``fits(n)``, ``ensure(n) -> bool``,
            ``eof_reason()``, ``arrays(rows, dtypes)``; see
            ``captures.reader._Chunks``), positioned at the first record.
        header: the decoded File Header.
        max_packets: most rows per yielded tuple.
        stop: ``stop(kind, file_offset, detail)`` is called once when the walk
            ends early, ``kind`` being ``"truncated"`` or ``"damaged"``.

    Yields:
        ``(data, offset, cap_len, wire_len, ts_ns)``: ``data`` a ``uint8``
        view of the chunk (never written again unless the chunk window
        reuses its buffers), the rest ``int64[n]`` with ``offset`` relative
        to ``data``.
    """
    big = 1 if header.big_endian else 0
    frac_ns = 1 if header.nanosecond else 1000
    limit = max_caplen(header.link_type, header.snaplen)
    fmt = ">I" if header.big_endian else "<I"
    while True:
        # A batch never spans two buffers, so the buffer bounds its rows.
        rows = min(max_packets, (chunks.buf.shape[0] - chunks.start) // RECORD_HEADER_BYTES + 1)
        out = chunks.arrays(rows, (np.int64,) * 4)
        base = chunks.start
        n = 0
        while True:
            n, pos, status = walk_records(chunks.buf, chunks.start, chunks.end, base, n, big,
                                          frac_ns, limit, *out)
            chunks.start = pos
            if status != NEED_MORE:
                break
            need = RECORD_HEADER_BYTES
            if chunks.avail >= RECORD_HEADER_BYTES:
                need += struct.unpack_from(fmt, chunks.buf, pos + 8)[0]
            # Read on into the same buffer while it has room: the batch can grow.
            if not (chunks.fits(need) and chunks.ensure(need)):
                break
        if n:
            yield (chunks.buf[base:pos],) + tuple(a[:n] for a in out)
        if status == FULL:
            continue
        if status == TOO_LONG:
            caplen = struct.unpack_from(fmt, chunks.buf, pos + 8)[0]
            stop("damaged", chunks.offset(pos),
                 f"captured length {caplen} exceeds the limit of {limit} bytes")
            return
        # NEED_MORE: the record does not fit this buffer (or the data ended).
        if chunks.ensure(need):
            continue
        have = chunks.avail
        reason = chunks.eof_reason()
        if have == 0 and reason is None:
            return      # clean end of file on a record boundary
        what = "record header" if need == RECORD_HEADER_BYTES else "packet record"
        detail = f"file ends inside a {what} ({have} of {need} bytes present)"
        if reason is not None:
            detail = f"{reason}; {detail}" if have else reason
        stop("truncated", chunks.offset(chunks.start), detail)
        return
