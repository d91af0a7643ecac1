"""Where each fragment's innermost IP header starts in its frame: one compiled pass per batch.

The dissectors' hidden columns give the innermost IP header's version,
addresses and length (``_ip.len``), not its offset in the frame.
:func:`locate_headers` finds it again for the fragment rows of a batch: the
first place in the frame where the version nibble, both addresses (IPv4:
bytes 12–19 of the header; IPv6: bytes 8–39) and the length field (IPv4
total length; IPv6 40 + payload length) all match.  An encapsulating IP
header carries the same addresses only with a larger length, and a chance
match of 9 (IPv4) or 35 (IPv6) chosen bytes before the header is not a
concern.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FOUND, MISSING, TRUNCATED, INCOMPLETE = 0, 1, 2, 3


def header_starts(batch, values: dict, valid: dict, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in ``batch.data`` of the innermost IP headers of ``rows``, and a status per row.

    Args:
        batch: the frames (:class:`~captures.batch.PacketBatch`).
        values, valid: the batch's ``dissectors.dissect`` columns (hidden
            ``_ip.version``, ``_ip.len``, ``_ip.src4``/``_ip.dst4`` or
            ``_ip.src6``/``_ip.dst6``).
        rows: ``int64[k]`` rows of fragments.

    Returns:
        ``(start, status)``, ``int64[k]`` each: ``start`` is the header's
        offset in ``batch.data`` where ``status`` is :data:`FOUND` (the
        ``_ip.len`` bytes from it are all captured), :data:`TRUNCATED` (the
        stated length runs past the frame's length on the wire: the
        dissector reported ``truncated_IP``) or :data:`INCOMPLETE` (on the
        wire, but not all captured: Zeek's ``incompletely_captured_fragment``);
        :data:`MISSING`: no header matches, or the columns lack what is needed.
    """
    k = len(rows)

    def column(name, dtype, shape=()):
        if name in values and name in valid:
            return values[name][rows], valid[name][rows]
        return np.zeros((k, *shape), dtype=dtype), np.zeros(k, dtype=bool)

    version, ok_version = column("_ip.version", np.int64)
    ip_len, ok_len = column("_ip.len", np.int64)
    src4, ok_src4 = column("_ip.src4", np.uint32)
    dst4, ok_dst4 = column("_ip.dst4", np.uint32)
    src6, ok_src6 = column("_ip.src6", np.uint8, (16,))
    dst6, ok_dst6 = column("_ip.dst6", np.uint8, (16,))
    usable = ok_version & ok_len & (((version == 4) & ok_src4 & ok_dst4) | ((version == 6) & ok_src6 & ok_dst6))
    start = np.full(k, -1, dtype=np.int64)
    status = np.full(k, MISSING, dtype=np.int64)
    _locate(batch.data, batch.offset[rows].astype(np.int64), batch.cap_len[rows].astype(np.int64),
            batch.wire_len[rows].astype(np.int64), version.astype(np.int64), ip_len.astype(np.int64),
            src4.astype(np.int64), dst4.astype(np.int64), np.ascontiguousarray(src6, dtype=np.uint8),
            np.ascontiguousarray(dst6, dtype=np.uint8), usable, start, status)
    return start, status


@njit(cache=True, nogil=True)
def big_endian(data, at, width):
    """The ``width``-byte big-endian (network order) unsigned integer at ``data[at]``."""
    value = np.int64(0)
    for i in range(width):
        value = (value << 8) | data[at + i]
    return value


@njit(cache=True, nogil=True)
def _locate(data, offset, cap_len, wire_len, version, ip_len, src4, dst4, src6, dst6, usable, start, status):
    for j in range(offset.shape[0]):
        if not usable[j]:
            continue
        frame, captured = offset[j], cap_len[j]
        v4 = version[j] == 4
        # The addresses sit 12 (IPv4) or 8 (IPv6) bytes into the header and span 8 or 32 bytes.
        back, span = (12, 8) if v4 else (8, 32)
        for p in range(0, captured - back - span + 1):
            at = frame + p
            if data[at] >> 4 != version[j]:
                continue
            if v4:
                if (big_endian(data, at + 2, 2) != ip_len[j] or big_endian(data, at + 12, 4) != src4[j]
                        or big_endian(data, at + 16, 4) != dst4[j]):
                    continue
            else:
                if 40 + big_endian(data, at + 4, 2) != ip_len[j]:
                    continue
                same = True
                for i in range(16):
                    if data[at + 8 + i] != src6[j, i] or data[at + 24 + i] != dst6[j, i]:
                        same = False
                        break
                if not same:
                    continue
            start[j] = at
            if p + ip_len[j] > max(wire_len[j], captured):
                status[j] = TRUNCATED
            elif p + ip_len[j] > captured:
                status[j] = INCOMPLETE
            else:
                status[j] = FOUND
            break
