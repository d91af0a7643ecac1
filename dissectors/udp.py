"""UDP (RFC 768).

Wireshark fields: ``udp.srcport``, ``udp.dstport``, ``udp.length``,
``udp.checksum``.  Fields are read as soon as their bytes are captured
(ports from 4 bytes, ``udp.length`` from 6, as Wireshark), so an ICMP error
quoting 8 bytes, or a cut datagram, still gives them.
"""

from __future__ import annotations

import numba
import numpy as np

from .wire import PREFETCH_AHEAD, Fields, Layer, prefetch
from .wire import put_first as _put, put_last as _put_hidden

HEADER_BYTES = 8

# The columns, in the order they are created; the compiled loop refers to them by index.
_COLUMNS = ("udp.srcport", "udp.dstport", "udp.length", "udp.checksum",
            "_l4.srcport", "_l4.dstport", "_payload.start", "_payload.end")
_SRCPORT, _DSTPORT, _LENGTH, _CHECKSUM, _H_SRCPORT, _H_DSTPORT, _H_START, _H_END = range(len(_COLUMNS))

# Weird bits of the compiled loop (Zeek's rule: src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc,
# CheckHeaderTrunc), in the order the weirds are recorded.
_TRUNCATED, _CUT = 1, 2
_WEIRDS = ((_TRUNCATED, "truncated_header", None), (_CUT, "internally_truncated_header", None))


def dissect(data: np.ndarray, layer: Layer, out: Fields) -> tuple[Layer, np.ndarray, np.ndarray]:
    """Dissect UDP headers; returns the payload layer and its ``int64[k]`` source and destination ports.

    The payload is bounded by ``udp.length`` when that is a sane value (8 up to
    what the IP layer states); weirds: ``truncated_header`` (the stated
    datagram is shorter than the header), ``internally_truncated_header``
    (the header was not all captured).
    """
    # Named columns in their widths on the wire (RFC 768), hidden ones as int64.
    columns = [out.column(name, np.int64 if name[0] == "_" else np.uint16) for name in _COLUMNS]
    count, rows, start, end, stated_end, source, destination, bits, seen = _dissect(
        data, layer.rows, layer.start, layer.end, layer.stated_end,
        tuple(c for c, _ in columns), tuple(v for _, v in columns))
    out.flag_bits(layer.rows, bits, seen, _WEIRDS)
    payload = Layer(rows[:count], start[:count], end[:count], stated_end[:count])
    return payload, source[:count], destination[:count]




@numba.njit(cache=True, nogil=True)
def _dissect(data, rows, start, end, stated_end, columns, valid):
    """One pass over the headers: fields, the payload layer and ports (whole headers only), weird bits."""
    k = rows.shape[0]
    out_rows = np.empty(k, np.int64)
    out_start = np.empty(k, np.int64)
    out_end = np.empty(k, np.int64)
    out_stated = np.empty(k, np.int64)
    out_source = np.empty(k, np.int64)
    out_destination = np.empty(k, np.int64)
    bits = np.zeros(k, np.uint8)
    seen = 0
    count = 0
    for i in range(k):
        if i + PREFETCH_AHEAD < k:
            prefetch(data, start[i + PREFETCH_AHEAD])
        s, e, stated, row = start[i], end[i], stated_end[i], rows[i]
        if s + 4 <= e:
            source = (np.int64(data[s]) << 8) | data[s + 1]
            destination = (np.int64(data[s + 2]) << 8) | data[s + 3]
            _put(columns[_SRCPORT], valid[_SRCPORT], row, source)
            _put(columns[_DSTPORT], valid[_DSTPORT], row, destination)
        if s + 6 <= e:
            _put(columns[_LENGTH], valid[_LENGTH], row, (np.int64(data[s + 4]) << 8) | data[s + 5])
        if s + HEADER_BYTES > e:
            bits[i] = _TRUNCATED if s + HEADER_BYTES > stated else _CUT
            seen |= bits[i]
            continue
        length = (np.int64(data[s + 4]) << 8) | data[s + 5]
        _put(columns[_CHECKSUM], valid[_CHECKSUM], row, (np.int64(data[s + 6]) << 8) | data[s + 7])
        if length < HEADER_BYTES or s + length > stated:
            length = stated - s
        _put_hidden(columns[_H_SRCPORT], valid[_H_SRCPORT], row, source)
        _put_hidden(columns[_H_DSTPORT], valid[_H_DSTPORT], row, destination)
        stop = s + length
        payload_end = min(e, stop)
        _put_hidden(columns[_H_START], valid[_H_START], row, s + HEADER_BYTES)
        _put_hidden(columns[_H_END], valid[_H_END], row, payload_end)
        out_rows[count] = row
        out_start[count] = s + HEADER_BYTES
        out_end[count] = payload_end
        out_stated[count] = min(stated, stop)
        out_source[count] = source
        out_destination[count] = destination
        count += 1
    return count, out_rows, out_start, out_end, out_stated, out_source, out_destination, bits, seen
