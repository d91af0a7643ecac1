"""Column builders for the DNS frames: per-row record lists and address text, in linear time.

The ``dns`` frame has four list columns (``answers``, ``TTLs``, ``auth``,
``addl``: object arrays of Python lists, see :mod:`analyzer.dns.schema`) and
address columns (categoricals of Zeek's address text).  Both are built here
with one compiled pass over the records or addresses; Python work is left to
what only Python can make (one ``list`` per row, one ``str`` per distinct
address, made by Arrow from one buffer).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from ..grouping import group_rows

__all__ = ["address_texts", "group_records", "slice_lists"]


@numba.njit(cache=True)
def _group_records(serials, owner, part, text, ttl, ntexts):
    n = serials.shape[0]
    k = owner.shape[0]
    nserial = 0
    for i in range(n):
        nserial = max(nserial, serials[i] + 1)
    # Which row writes each session; a later row of the same session copies the first one's lists.
    row_of = np.full(nserial, -1, dtype=np.int32)
    same_as = np.full(n, -1, dtype=np.int32)
    for i in range(n):
        s = serials[i]
        if s < 0:
            continue
        if row_of[s] < 0:
            row_of[s] = i
        else:
            same_as[i] = row_of[s]
    # Counting sort of the records by (part, row), stable: records keep their arrival order.
    offsets = np.zeros((3, n + 1), dtype=np.int32)
    for i in range(k):
        s = owner[i]
        if s < nserial and row_of[s] >= 0:
            offsets[part[i], row_of[s] + 1] += 1
    base = np.zeros(4, dtype=np.int64)
    for p in range(3):
        for r in range(n):
            offsets[p, r + 1] += offsets[p, r]
        base[p + 1] = base[p] + offsets[p, n]
    slot = np.empty(base[3], dtype=np.int32)
    cursor = offsets[:, :n].copy()
    for i in range(k):
        s = owner[i]
        if s < nserial and row_of[s] >= 0:
            p = part[i]
            r = row_of[s]
            slot[base[p] + cursor[p, r]] = i
            cursor[p, r] += 1
    # Per (part, row) group, in place: answers drop text 0 (Zeek's empty reply is no entry),
    # auth/addl keep the first record of each text (they are sets).
    ids = np.empty(base[3], dtype=np.int32)
    seconds = np.empty(base[1], dtype=np.float64)
    seen = np.full(ntexts + 1, -1, dtype=np.int64)
    kept = np.zeros(3, dtype=np.int64)
    for p in range(3):
        w = base[p]
        start = base[p] + offsets[p, 0]
        for r in range(n):
            end = base[p] + offsets[p, r + 1]
            stamp = p * n + r
            for j in range(start, end):
                i = slot[j]
                t = text[i]
                if p == 0:
                    if t == 0:
                        continue
                    seconds[w] = ttl[i]
                elif seen[t] == stamp:
                    continue
                else:
                    seen[t] = stamp
                ids[w] = t
                w += 1
            start = end
            offsets[p, r + 1] = w - base[p]
        kept[p] = w - base[p]
    return ids, seconds, base, kept, offsets, same_as


def group_records(serials: np.ndarray, owner: np.ndarray, part: np.ndarray, text: np.ndarray, ttl: np.ndarray,
                  ntexts: int):
    """The records of each row's session, as the ``answers``/``TTLs``/``auth``/``addl`` lists need them.

    Args:
        serials: ``int64[n]`` the session serial of each output row.
        owner: ``int64[k]`` session serial owning each record (records in arrival order).
        part: ``int8[k]`` 0 answers (Zeek's answer, prereq and update sections), 1 auth, 2 addl.
        text: ``int32[k]`` text id of each record (0 is ``""``, ids below ``ntexts``).
        ttl: ``uint32[k]`` TTL of each record, seconds.

    Returns:
        ``(ids, seconds, offsets, same_as)``: for part ``p``, row ``r``'s list holds
        the text ids ``ids[p][offsets[p, r]:offsets[p, r + 1]]`` (``int32``; answers also
        their TTLs, ``seconds``: ``float64``); ``offsets``: ``int32[3, n + 1]``.
        Answers keep every record but those with text ``""``; auth and addl are
        Zeek ``set[string]``s, so only the first record of each text is kept
        (``policy/protocols/dns/auth-addl.zeek``).  ``same_as[r]`` (``int32[n]``) is
        the earlier row of the same session (-1 if none): such a row's lists are
        empty here and are the same as that row's.
    """
    ids, seconds, base, kept, offsets, same_as = _group_records(
        np.ascontiguousarray(serials, dtype=np.int64), np.ascontiguousarray(owner, dtype=np.int64),
        np.ascontiguousarray(part, dtype=np.int8), np.ascontiguousarray(text, dtype=np.int32),
        np.ascontiguousarray(ttl, dtype=np.uint32), int(ntexts))
    parts = [ids[base[p]:base[p] + kept[p]] for p in range(3)]
    return parts, seconds[:kept[0]], offsets, same_as


def slice_lists(values: list, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Object array holding ``values[starts[i]:ends[i]]`` (a new list) per row, ``None`` where it is empty.

    ``starts``/``ends``: ``int64[n]``.  The slices are made by C-level ``map``
    (no Python bytecode per row): the cost is one list object per non-empty row.
    """
    n = len(starts)
    out = np.full(n, None, dtype=object)
    rows = np.flatnonzero(ends > starts)
    if len(rows):
        slices = map(slice, starts[rows].tolist(), ends[rows].tolist())
        out[rows] = np.fromiter(map(values.__getitem__, slices), dtype=object, count=len(rows))
    return out


# ---------------------------------------------------------------------------------------- addresses


@numba.njit(cache=True)
def _put_decimal(buf, pos, v):
    if v >= 100:
        buf[pos] = 48 + v // 100
        pos += 1
    if v >= 10:
        buf[pos] = 48 + (v // 10) % 10
        pos += 1
    buf[pos] = 48 + v % 10
    return pos + 1


@numba.njit(cache=True)
def _put_quad(buf, pos, raw, i, at):
    for j in range(4):
        if j:
            buf[pos] = 46                               # "."
            pos += 1
        pos = _put_decimal(buf, pos, np.int64(raw[i, at + j]))
    return pos


@numba.njit(cache=True)
def _format(raw, mapped):
    """Text of each ``uint8[k, 16]`` address into one buffer: (bytes, ``int32[k + 1]`` offsets)."""
    k = raw.shape[0]
    size = 1
    for i in range(k):
        size += 15 if mapped[i] else 39                  # the longest texts (RFC 5952 §4 allows 39)
    buf = np.empty(size, dtype=np.uint8)
    offsets = np.zeros(k + 1, dtype=np.int32)
    words = np.empty(8, dtype=np.int64)
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    pos = 0
    for i in range(k):
        if mapped[i]:
            pos = _put_quad(buf, pos, raw, i, 12)
            offsets[i + 1] = pos
            continue
        for w in range(8):
            words[w] = (np.int64(raw[i, 2 * w]) << 8) | np.int64(raw[i, 2 * w + 1])
        # The longest run of zero words (the first of equal ones), if 2 words or more, becomes "::"
        # (RFC 5952 §4.2; glibc's inet_ntop6).
        best, best_len, cur, cur_len = -1, 0, -1, 0
        for w in range(8):
            if words[w] == 0:
                if cur < 0:
                    cur, cur_len = w, 1
                else:
                    cur_len += 1
            elif cur >= 0:
                if best < 0 or cur_len > best_len:
                    best, best_len = cur, cur_len
                cur = -1
        if cur >= 0 and (best < 0 or cur_len > best_len):
            best, best_len = cur, cur_len
        if best >= 0 and best_len < 2:
            best = -1
        for w in range(8):
            if best >= 0 and best <= w < best + best_len:
                if w == best:
                    buf[pos] = 58                        # ":"
                    pos += 1
                continue
            if w:
                buf[pos] = 58
                pos += 1
            if w == 6 and best == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
                # IPv4-compatible (and -mapped) forms end in a dotted quad, as inet_ntop writes them.
                pos = _put_quad(buf, pos, raw, i, 12)
                break
            v = words[w]
            started = False
            for shift in (12, 8, 4, 0):
                d = (v >> shift) & 0xF
                if d or started or shift == 0:
                    buf[pos] = hexdigits[d]
                    pos += 1
                    started = True
        if best >= 0 and best + best_len == 8:
            buf[pos] = 58
            pos += 1
        offsets[i + 1] = pos
    return buf[:pos], offsets


_V4_MAPPED_HI = np.uint64(0)
_V4_MAPPED_LO = np.uint64(0xFFFF) << np.uint64(32)


def address_texts(raw: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Text of each distinct ``uint8[k, 16]`` address (IPv4-mapped ones as dotted quads) and each row's index.

    The distinct addresses are ordered IPv4 first by value, then IPv6 by their
    bytes, and written as Zeek writes an ``addr`` (RFC 5952 text, the same as
    ``socket.inet_ntop``; IPv4 dotted-quad).

    Returns:
        ``(texts, codes)``: ``texts`` a ``pyarrow`` string array of the distinct
        addresses, ``codes`` ``int64[k]`` the index of each row's address in it.
    """
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, 16)
    words = raw.view(">u8").astype(np.uint64) if len(raw) else np.zeros((0, 2), dtype=np.uint64)
    hi, lo = np.ascontiguousarray(words[:, 0]), np.ascontiguousarray(words[:, 1])
    inverse, first = group_rows(np.ascontiguousarray(words))
    dhi, dlo = hi[first], lo[first]
    mapped = (dhi == _V4_MAPPED_HI) & ((dlo & (np.uint64(0xFFFFFFFF) << np.uint64(32))) == _V4_MAPPED_LO)
    # IPv4 first by value (the low word holds it), then IPv6 by bytes (high word, low word).
    v4, v6 = np.flatnonzero(mapped), np.flatnonzero(~mapped)
    order = np.concatenate([v4[np.argsort(dlo[v4])], v6[np.lexsort((dlo[v6], dhi[v6]))]])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    buf, offsets = _format(raw[first[order]], mapped[order])
    texts = pa.Array.from_buffers(pa.string(), len(order), [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
    return texts, rank[inverse]
