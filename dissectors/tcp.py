"""TCP (RFC 9293 §3.1) with the options of RFC 9293 §3.2 (MSS), RFC 7323 (window
scale, timestamps) and RFC 2018 (SACK permitted).

Wireshark fields: ``tcp.srcport``, ``tcp.dstport``, ``tcp.seq_raw``,
``tcp.ack_raw``, ``tcp.hdr_len`` (bytes), ``tcp.flags`` (12 bits),
``tcp.window_size_value`` (unscaled), ``tcp.checksum``,
``tcp.urgent_pointer``, ``tcp.len`` (payload bytes as the IP length states
them, captured or not), ``tcp.options.mss_val``,
``tcp.options.wscale.shift``, ``tcp.options.sack_perm``,
``tcp.options.timestamp.tsval``, ``tcp.options.timestamp.tsecr``.
"""

from __future__ import annotations

import numba
import numpy as np

from .wire import PREFETCH_AHEAD, Fields, Layer, prefetch
from .wire import put_first as _put, put_last as _put_hidden, read_be as _be

MIN_HEADER_BYTES = 20
MAX_OPTION_BYTES = 40
EOL, NOP, MSS, WINDOW_SCALE, SACK_PERMITTED, TIMESTAMPS = 0, 1, 2, 3, 4, 8

# The columns, in the order they are created; the compiled loop refers to them by index.
_NAMED = ("tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.hdr_len", "tcp.ack_raw", "tcp.flags", "tcp.len",
          "tcp.window_size_value", "tcp.checksum", "tcp.urgent_pointer")
_SRCPORT, _DSTPORT, _SEQ, _HDR_LEN, _ACK, _FLAGS, _LEN, _WINDOW, _CHECKSUM, _URGENT = range(len(_NAMED))
# Their widths on the wire (RFC 9293 §3.1); tcp.len is computed, and a segment whose IP total length
# is 0 (TCP segmentation offload) takes its captured length, which may pass 16 bits.
_WIDTHS = (np.uint16, np.uint16, np.uint32, np.uint8, np.uint32, np.uint16, np.int64,
           np.uint16, np.uint16, np.uint16)
_NOT_QUOTED = ("tcp.seq_raw", "tcp.len")   # not filled in the datagram quoted by an ICMP error
# Hidden columns (the innermost packet: the last occurrence wins), for connection tracking.
_HIDDEN = ("_l4.srcport", "_l4.dstport", "_tcp.seq", "_tcp.ack", "_tcp.flags", "_tcp.window", "_tcp.len")
_PAYLOAD = ("_payload.start", "_payload.end")
_H_SRCPORT, _H_DSTPORT, _H_SEQ, _H_ACK, _H_FLAGS, _H_WINDOW, _H_LEN, _H_START, _H_END = range(
    len(_HIDDEN) + len(_PAYLOAD))
# Options: the first occurrence in a header wins; a column exists once a header has the option.
_OPTIONS = ("tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
            "tcp.options.timestamp.tsecr", "tcp.options.sack_perm")
_O_MSS, _O_WSCALE, _O_TSVAL, _O_TSECR, _O_SACK = range(len(_OPTIONS))
_OPTION_WIDTHS = (np.uint16, np.uint8, np.uint32, np.uint32, np.bool_)   # RFC 9293 §3.2, RFC 7323, RFC 2018

# Weird bits of the compiled loop, in the order the weirds are recorded.
_TRUNCATED, _CUT, _BAD_LENGTH, _OPTIONS_CUT = 1, 2, 4, 8
_WEIRDS = ((_TRUNCATED, "truncated_header", None), (_CUT, "internally_truncated_header", None),
           (_BAD_LENGTH, "bad_TCP_header_len", None), (_OPTIONS_CUT, "internally_truncated_header", None))


def dissect(data: np.ndarray, layer: Layer, out: Fields, first_fragment: np.ndarray | None = None,
            quoted: bool = False) -> Layer:
    """Dissect TCP headers and options; returns the payload layer.

    Fields are filled as far as the captured bytes go (ports from 4 bytes,
    ``tcp.seq_raw`` from 8, ``tcp.ack_raw`` from 12, the data offset,
    ``tcp.hdr_len`` and ``tcp.flags`` from 14).  ``tcp.len`` is the stated
    segment length less the data offset wherever the segment is at least
    that long, even for a data offset below 5 (as Wireshark).  As in
    Wireshark (packet-tcp.c), ``tcp.len`` is left unset where the segment's
    length is unknown: in a first fragment (``first_fragment``, ``bool[k]``,
    see :func:`dissectors.ipv4.dissect`) and in the datagram ``quoted`` by an
    ICMP error (RFC 792), which also gets no ``tcp.seq_raw``; ``tcp.ack_raw``
    and ``tcp.flags`` need a data offset of at least 5.  Weirds (Zeek's
    names): ``truncated_header`` (Zeek's rule: the stated segment is shorter
    than 20 bytes), ``internally_truncated_header`` (header or options not
    captured), ``bad_TCP_header_len`` (data offset below 5 or beyond the
    segment).  Options (RFC 9293 §3.1): kind, length, value; EOL ends, NOP
    is one byte; a length below 2 or past the header ends the walk
    (Wireshark: malformed option); the first occurrence of an option in a
    header wins.
    """
    # Empty stand-ins of the same dtypes for the columns a quoted datagram does not fill: one compiled
    # signature for both cases.
    named = [(np.zeros(0, width), np.zeros(0, np.bool_)) if quoted and name in _NOT_QUOTED
             else out.column(name, width) for name, width in zip(_NAMED, _WIDTHS)]
    new_payload_columns = [name for name in _PAYLOAD if name not in out.values]
    hidden = [out.column(name, np.int64) for name in _HIDDEN + _PAYLOAD]
    if first_fragment is None:
        first_fragment = np.zeros(len(layer), dtype=bool)
    (count, rows, start, end, stated_end, option_rows, option_values, option_counts, bits, seen) = _dissect(
        data, layer.rows, layer.start, layer.end, layer.stated_end, first_fragment, quoted,
        tuple(c for c, _ in named), tuple(v for _, v in named),
        tuple(c for c, _ in hidden), tuple(v for _, v in hidden))
    out.flag_bits(layer.rows, bits, seen, _WEIRDS)
    for option, name in enumerate(_OPTIONS):
        found = option_counts[option]
        if found:
            out.put(name, option_rows[option, :found], option_values[option, :found].astype(_OPTION_WIDTHS[option]))
    # The payload offsets were written above, but their columns come after the options' (creation order).
    out.move_to_end(new_payload_columns)
    return Layer(rows[:count], start[:count], end[:count], stated_end[:count])





@numba.njit(cache=True, nogil=True)
def _dissect(data, rows, start, end, stated_end, first_fragment, quoted, named, named_set, hidden, hidden_set):
    """One pass over the headers: fields, options found, the payload layer and weird bits."""
    k = rows.shape[0]
    out_rows = np.empty(k, np.int64)
    out_start = np.empty(k, np.int64)
    out_end = np.empty(k, np.int64)
    out_stated = np.empty(k, np.int64)
    option_rows = np.empty((len(_OPTIONS), k), np.int64)
    option_values = np.empty((len(_OPTIONS), k), np.int64)
    option_counts = np.zeros(len(_OPTIONS), np.int64)
    bits = np.zeros(k, np.uint8)
    seen = 0
    count = 0
    for i in range(k):
        if i + PREFETCH_AHEAD < k:
            prefetch(data, start[i + PREFETCH_AHEAD])
        s, e, stated, row = start[i], end[i], stated_end[i], rows[i]
        if s + 4 <= e:
            _put(named[_SRCPORT], named_set[_SRCPORT], row, _be(data, s, 2))
            _put(named[_DSTPORT], named_set[_DSTPORT], row, _be(data, s + 2, 2))
        if s + 8 <= e and not quoted:
            _put(named[_SEQ], named_set[_SEQ], row, _be(data, s + 4, 4))
        if s + 14 <= e:
            header = (np.int64(data[s + 12]) >> 4) * 4
            _put(named[_HDR_LEN], named_set[_HDR_LEN], row, header)
            if header >= MIN_HEADER_BYTES:
                _put(named[_ACK], named_set[_ACK], row, _be(data, s + 8, 4))
                _put(named[_FLAGS], named_set[_FLAGS], row, _be(data, s + 12, 2) & 0x0FFF)
            segment = stated - s
            if not quoted and segment >= header and not first_fragment[i]:
                _put(named[_LEN], named_set[_LEN], row, segment - header)
        # Zeek's rule (src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc, CheckHeaderTrunc).
        if s + MIN_HEADER_BYTES > e:
            bits[i] = _TRUNCATED if s + MIN_HEADER_BYTES > stated else _CUT
            seen |= bits[i]
            continue
        _put(named[_WINDOW], named_set[_WINDOW], row, _be(data, s + 14, 2))
        _put(named[_CHECKSUM], named_set[_CHECKSUM], row, _be(data, s + 16, 2))
        _put(named[_URGENT], named_set[_URGENT], row, _be(data, s + 18, 2))
        if header < MIN_HEADER_BYTES or s + header > stated:
            bits[i] = _BAD_LENGTH
            seen |= _BAD_LENGTH
            continue
        # Innermost copies for connection tracking (hidden: the last occurrence wins).
        _put_hidden(hidden[_H_SRCPORT], hidden_set[_H_SRCPORT], row, _be(data, s, 2))
        _put_hidden(hidden[_H_DSTPORT], hidden_set[_H_DSTPORT], row, _be(data, s + 2, 2))
        _put_hidden(hidden[_H_SEQ], hidden_set[_H_SEQ], row, _be(data, s + 4, 4))
        _put_hidden(hidden[_H_ACK], hidden_set[_H_ACK], row, _be(data, s + 8, 4))
        _put_hidden(hidden[_H_FLAGS], hidden_set[_H_FLAGS], row, _be(data, s + 12, 2) & 0x0FFF)
        _put_hidden(hidden[_H_WINDOW], hidden_set[_H_WINDOW], row, _be(data, s + 14, 2))
        _put_hidden(hidden[_H_LEN], hidden_set[_H_LEN], row, stated - s - header)
        if s + header > e:
            bits[i] = _OPTIONS_CUT
            seen |= _OPTIONS_CUT
            continue
        if header > MIN_HEADER_BYTES:
            _walk_options(data, s + MIN_HEADER_BYTES, s + header, row, option_rows, option_values, option_counts)
        _put_hidden(hidden[_H_START], hidden_set[_H_START], row, s + header)
        _put_hidden(hidden[_H_END], hidden_set[_H_END], row, e)
        out_rows[count] = row
        out_start[count] = s + header
        out_end[count] = e
        out_stated[count] = stated
        count += 1
    return count, out_rows, out_start, out_end, out_stated, option_rows, option_values, option_counts, bits, seen


@numba.njit(cache=True, nogil=True)
def _found(option, row, value, option_rows, option_values, option_counts):
    j = option_counts[option]
    option_rows[option, j] = row
    option_values[option, j] = value
    option_counts[option] = j + 1


@numba.njit(cache=True, nogil=True)
def _walk_options(data, position, end, row, option_rows, option_values, option_counts):
    """Walk one option list; appends ``(row, value)`` to the options found (first of each kind)."""
    mss = window_scale = timestamps = sack = False
    while position < end:
        kind = data[position]
        if kind == NOP:
            position += 1
            continue
        if kind == EOL or position + 1 >= end:
            break
        length = np.int64(data[position + 1])
        if length < 2 or position + length > end:
            break
        if kind == MSS and length == 4 and not mss:
            mss = True
            _found(_O_MSS, row, _be(data, position + 2, 2), option_rows, option_values, option_counts)
        elif kind == WINDOW_SCALE and length == 3 and not window_scale:
            window_scale = True
            _found(_O_WSCALE, row, np.int64(data[position + 2]), option_rows, option_values, option_counts)
        elif kind == TIMESTAMPS and length == 10 and not timestamps:
            timestamps = True
            _found(_O_TSVAL, row, _be(data, position + 2, 4), option_rows, option_values, option_counts)
            _found(_O_TSECR, row, _be(data, position + 6, 4), option_rows, option_values, option_counts)
        elif kind == SACK_PERMITTED and not sack:
            sack = True
            _found(_O_SACK, row, 1, option_rows, option_values, option_counts)
        position += length
