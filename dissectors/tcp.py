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

from .transport import header_present
from .wire import Fields, Layer, be16, be32, u8

MIN_HEADER_BYTES = 20
MAX_OPTION_BYTES = 40
EOL, NOP, MSS, WINDOW_SCALE, SACK_PERMITTED, TIMESTAMPS = 0, 1, 2, 3, 4, 8


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
    names): ``truncated_header``, ``internally_truncated_header`` (header or
    options not captured), ``bad_TCP_header_len`` (data offset below 5 or
    beyond the segment).
    """
    for size, name, offset, read in ((4, "tcp.srcport", 0, be16), (4, "tcp.dstport", 2, be16),
                                     (8, "tcp.seq_raw", 4, be32)):
        if not (quoted and name == "tcp.seq_raw"):
            part = layer.has(size)
            out.put(name, layer.rows[part], read(data, layer.start[part] + offset))
    offset_known = layer.has(14)
    known = layer.take(offset_known)
    header = (u8(data, known.start + 12) >> 4) * 4
    out.put("tcp.hdr_len", known.rows, header)
    sane = header >= MIN_HEADER_BYTES
    out.put("tcp.ack_raw", known.rows[sane], be32(data, known.start[sane] + 8))
    out.put("tcp.flags", known.rows[sane], be16(data, known.start[sane] + 12) & 0x0FFF)
    if not quoted:
        segment = known.stated_end - known.start
        with_length = segment >= header
        if first_fragment is not None:
            with_length &= ~first_fragment[offset_known]
        out.put("tcp.len", known.rows[with_length], (segment - header)[with_length])
    layer = layer.take(header_present(layer, MIN_HEADER_BYTES, out))
    rows, s = layer.rows, layer.start
    header = (u8(data, s + 12) >> 4) * 4
    out.put("tcp.window_size_value", rows, be16(data, s + 14))
    out.put("tcp.checksum", rows, be16(data, s + 16))
    out.put("tcp.urgent_pointer", rows, be16(data, s + 18))
    bogus = (header < MIN_HEADER_BYTES) | (s + header > layer.stated_end)
    out.flag(rows[bogus], "bad_TCP_header_len")
    layer, header = layer.take(~bogus), header[~bogus]
    # Innermost copies for connection tracking (hidden: the last occurrence wins).
    s = layer.start
    for name, value in (("_l4.srcport", be16(data, s)), ("_l4.dstport", be16(data, s + 2)),
                        ("_tcp.seq", be32(data, s + 4)), ("_tcp.ack", be32(data, s + 8)),
                        ("_tcp.flags", be16(data, s + 12) & 0x0FFF), ("_tcp.window", be16(data, s + 14)),
                        ("_tcp.len", layer.stated_end - s - header)):
        out.put(name, layer.rows, value)
    captured = layer.has(header)
    out.flag(layer.rows[~captured], "internally_truncated_header")
    layer, header = layer.take(captured), header[captured]
    _options(data, layer.take(header > MIN_HEADER_BYTES), header[header > MIN_HEADER_BYTES], out)
    payload = layer.advance(header)
    out.put("_payload.start", payload.rows, payload.start)
    out.put("_payload.end", payload.rows, payload.end)
    return payload


def _options(data: np.ndarray, layer: Layer, header: np.ndarray, out: Fields) -> None:
    """Walk the option lists (RFC 9293 §3.1): kind, length, value; EOL ends, NOP is one byte.

    A length below 2 or past the header ends the walk (Wireshark: malformed
    option).  The first occurrence of an option in a header wins.
    """
    found, values = _walk_options(data, layer.start + MIN_HEADER_BYTES, layer.start + header)
    for column, name in enumerate(("tcp.options.mss_val", "tcp.options.wscale.shift",
                                   "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr")):
        present = found[:, column]
        if present.any():
            out.put(name, layer.rows[present], values[present, column])
    sack = found[:, 4]
    if sack.any():
        out.put("tcp.options.sack_perm", layer.rows[sack], np.ones(int(sack.sum()), dtype=bool))


@numba.njit(cache=True, nogil=True)
def _walk_options(data, start, stop):
    """Per header: found ``bool[k, 5]`` and values ``int64[k, 4]`` (MSS, window scale, TSval, TSecr; SACK-permitted)."""
    k = start.shape[0]
    found = np.zeros((k, 5), dtype=np.bool_)
    values = np.zeros((k, 4), dtype=np.int64)
    for i in range(k):
        position, end = start[i], stop[i]
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
            if kind == MSS and length == 4 and not found[i, 0]:
                found[i, 0] = True
                values[i, 0] = (np.int64(data[position + 2]) << 8) | data[position + 3]
            elif kind == WINDOW_SCALE and length == 3 and not found[i, 1]:
                found[i, 1] = True
                values[i, 1] = data[position + 2]
            elif kind == TIMESTAMPS and length == 10 and not found[i, 2]:
                found[i, 2] = found[i, 3] = True
                tsval = np.int64(0)
                tsecr = np.int64(0)
                for j in range(4):
                    tsval = (tsval << 8) | data[position + 2 + j]
                    tsecr = (tsecr << 8) | data[position + 6 + j]
                values[i, 2], values[i, 3] = tsval, tsecr
            elif kind == SACK_PERMITTED:
                found[i, 4] = True
            position += length
    return found, values
