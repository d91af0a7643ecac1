"""The compiled pass of :class:`~analyzer.reassembly.ip.FragmentReassembler`: the common case of a batch.

:func:`plan` takes, among a batch's fragment rows, the IPv4 datagrams whose
reassembly it can reproduce exactly without the Python reassembler's state,
and builds them; every other fragment row is left to Python
(``FragmentReassembler._add`` and the rest), which then sees the same state,
in the same order, as if the taken rows had gone through it too.

A datagram (IPv4 key: source, destination, identification, protocol; RFC 791
§3.2) is taken when all the batch's fragments of its key

* parse as IPv4 (header at least 20 bytes, within the stated length), and
  the reassembler holds nothing for the key from earlier batches;
* have no DF (Zeek's ``fragment_with_DF``), the same header length
  (``fragment_protocol_inconsistency``), a payload, at least 64 bytes of IP
  when MF is set (``excessively_small_fragment``) and an end within 64,000
  bytes (``excessively_large_fragment``): Zeek's ``src/Frag.cc`` checks;
* tile ``[0, size)`` exactly once when sorted by offset, the one with MF
  clear last: no overlap (first-wins never decides anything), no size
  inconsistency, and the datagram completes on its last fragment to arrive
  and never before (Zeek's ``BlockInserted``);
* cannot meet the timeout: every fragment row (of any key) between its first
  and last fragment arrives no earlier than the first, and at most
  ``timeout_ns`` after it.  Then the datagram is never expired, and, since
  every datagram created while it is held is no older, it never stops
  ``_expire`` before a datagram that would have been expired.

The caller also leaves the whole batch to Python when the memory cap could
be reached in it (``max_bytes``: eviction order depends on every datagram
held).  The rows left to Python then expire datagrams with
:func:`plan`'s ``expire_at``: the latest time of the rows since the previous
row left to Python, which expires exactly what expiring at each of those
times in turn would (the oldest-first sweep at a later time removes what
the earlier sweeps did, and no more).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numba import njit

from captures.batch import PacketBatch

from .locate import FOUND, big_endian

MIN_ACCEPTABLE_FRAG_SIZE = 64        # Zeek src/Frag.cc
MAX_ACCEPTABLE_FRAG_SIZE = 64000     # Zeek src/Frag.cc
# A datagram whose fragments are spread over more rows than this is left to Python, which keeps the
# timeout check linear in the batch.
MAX_SPAN = 512
NO_TIME = np.iinfo(np.int64).min


class Plan(NamedTuple):
    """What :func:`plan` took and built (``k`` fragment rows, ``d`` datagrams built)."""

    taken: np.ndarray       # bool[k]: row handled by the compiled pass
    expire_at: np.ndarray   # int64[k]: at a row left to Python, the time to expire datagrams at
    tail: int               # time to expire at after the last row left to Python (NO_TIME: none)
    data: np.ndarray        # uint8[b]: the datagrams built, one after the other, in completion order
    offset: np.ndarray      # int64[d]: start of each in ``data``
    length: np.ndarray      # int64[d]
    position: np.ndarray    # int64[d]: index among the k rows of the fragment completing each


def held_keys(keys) -> np.ndarray:
    """``int64[h, 3]``: the IPv4 keys among ``keys`` (the reassembler's) as (source, destination, ident << 8 | protocol)."""
    rows = [(int.from_bytes(key[1], "big"), int.from_bytes(key[2], "big"), key[3] << 8 | key[4])
            for key in keys if key[0] == 4]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 3)


def plan(data: np.ndarray, start: np.ndarray, status: np.ndarray, version: np.ndarray,
         length: np.ndarray, ts: np.ndarray, timeout_ns: int, held: np.ndarray) -> Plan:
    """Take and reassemble the common-case IPv4 datagrams of a batch's fragment rows (module docstring).

    Args:
        data: ``uint8[m]`` the batch's bytes.
        start, status: ``int64[k]`` from :func:`~analyzer.reassembly.locate.header_starts`.
        version, length: ``int64[k]`` the rows' ``_ip.version`` and ``_ip.len`` (bytes).
        ts: ``int64[k]`` the rows' times (ns).
        timeout_ns: the reassembler's timeout (0: none).
        held: ``int64[h, 3]`` from :func:`held_keys`.
    """
    taken, expire_at, tail, out, offset, size, position = _plan(
        data, start.astype(np.int64), status.astype(np.int64), version.astype(np.int64),
        length.astype(np.int64), ts.astype(np.int64), np.int64(timeout_ns), held)
    # Read-only like the buffer PacketBatch.from_frames makes for Python's datagrams.
    out.flags.writeable = False
    return Plan(taken, expire_at, int(tail), out, offset, size, position)


def gather(data: np.ndarray, offset: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``uint8[sum(length)]``: the ``data[offset[i]:offset[i] + length[i]]`` one after the other (read-only)."""
    out = _gather(data, offset.astype(np.int64), length.astype(np.int64))
    out.flags.writeable = False
    return out


@njit(cache=True, nogil=True)
def _gather(data, offset, length):
    out = np.empty(length.sum(), np.uint8)
    at = 0
    for i in range(offset.shape[0]):
        out[at:at + length[i]] = data[offset[i]:offset[i] + length[i]]
        at += length[i]
    return out


@njit(cache=True, nogil=True)
def _plan(data, start, status, version, length, ts, timeout, held):
    k = start.shape[0]
    h = held.shape[0]
    # Parse the IPv4 headers as ip._parse_v4 does; the keys of rows and of held datagrams are sorted together.
    hl = np.zeros(k, np.int64)
    off = np.zeros(k, np.int64)
    flags = np.zeros(k, np.int64)
    entry = np.empty(k + h, np.int64)      # row j, or k + i for held key i
    src = np.empty(k + h, np.int64)
    dst = np.empty(k + h, np.int64)
    rest = np.empty(k + h, np.int64)
    e = 0
    for j in range(k):
        if status[j] != FOUND or version[j] != 4 or length[j] < 20:
            continue
        at = start[j]
        header = (data[at] & 0x0F) * 4
        if header < 20 or header > length[j]:
            continue
        hl[j] = header
        fo = big_endian(data, at + 6, 2)
        off[j] = (fo & 0x1FFF) * 8
        flags[j] = fo >> 13
        entry[e] = j
        src[e] = big_endian(data, at + 12, 4)
        dst[e] = big_endian(data, at + 16, 4)
        rest[e] = big_endian(data, at + 4, 2) << 8 | data[at + 9]
        e += 1
    for i in range(h):
        entry[e] = k + i
        src[e], dst[e], rest[e] = held[i, 0], held[i, 1], held[i, 2]
        e += 1
    order = np.argsort(rest[:e], kind="mergesort")
    order = order[np.argsort(dst[:e][order], kind="mergesort")]
    order = order[np.argsort(src[:e][order], kind="mergesort")]   # stable: rows of a key in row order

    taken = np.zeros(k, np.bool_)
    members = np.empty(e, np.int64)        # rows of the datagrams taken, each sorted by offset
    group_at = np.empty(e + 1, np.int64)
    group_end = np.empty(e, np.int64)      # the completing row
    total = 0
    groups = 0
    used = 0
    g = 0
    while g < e:
        first = order[g]
        n = 1
        while (g + n < e and src[order[g + n]] == src[first] and dst[order[g + n]] == dst[first]
               and rest[order[g + n]] == rest[first]):
            n += 1
        rows = entry[order[g:g + n]]
        g += n
        if rows[n - 1] >= k:               # the reassembler holds this key (held entries sort last)
            continue
        i0, i1 = rows[0], rows[n - 1]
        ok = i1 - i0 <= MAX_SPAN
        last = -1
        covered = 0
        for r in rows:
            payload = length[r] - hl[r]
            more = flags[r] & 1
            if (flags[r] & 2 or hl[r] != hl[i0] or payload <= 0
                    or (more and length[r] < MIN_ACCEPTABLE_FRAG_SIZE)
                    or off[r] + payload > MAX_ACCEPTABLE_FRAG_SIZE):
                ok = False
                break
            if not more:
                if last >= 0:
                    ok = False
                    break
                last = r
            covered += payload
        if not ok or last < 0 or off[last] + length[last] - hl[last] != covered:
            continue
        if timeout != 0:            # as FragmentReassembler._expire: 0 is none, any other value is checked
            for j in range(i0, i1 + 1):
                if ts[j] < ts[i0] or ts[j] - ts[i0] > timeout:
                    ok = False
                    break
            if not ok:
                continue
        by_offset = rows[np.argsort(off[rows])]
        cursor = 0
        for r in by_offset:
            if off[r] != cursor:
                ok = False
                break
            cursor += length[r] - hl[r]
        if not ok or by_offset[n - 1] != last:
            continue
        group_at[groups] = used
        members[used:used + n] = by_offset
        used += n
        group_end[groups] = i1
        groups += 1
        total += hl[i0] + covered
        taken[rows] = True
    group_at[groups] = used

    # Build in completion order, as ip._build would: the offset-0 fragment's header, fixed up.
    out = np.empty(total, np.uint8)
    offset = np.empty(groups, np.int64)
    size = np.empty(groups, np.int64)
    position = np.empty(groups, np.int64)
    at = 0
    for q, d in enumerate(np.argsort(group_end[:groups], kind="mergesort")):
        rows = members[group_at[d]:group_at[d + 1]]
        head = rows[0]
        header = hl[head]
        offset[q] = at
        position[q] = group_end[d]
        out[at:at + header] = data[start[head]:start[head] + header]
        cursor = at + header
        for r in rows:
            part = length[r] - header
            out[cursor:cursor + part] = data[start[r] + header:start[r] + length[r]]
            cursor += part
        whole = cursor - at
        size[q] = whole
        out[at + 2] = whole >> 8
        out[at + 3] = whole & 0xFF
        out[at + 6] &= 0xC0         # keep the reserved bit and DF; clear MF and the offset
        out[at + 7] = 0
        out[at + 10] = 0
        out[at + 11] = 0
        checksum = 0                # RFC 1071 over the header
        for b in range(0, header, 2):
            checksum += out[at + b] << 8 | out[at + b + 1]
        while checksum >> 16:
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
        checksum = ~checksum & 0xFFFF
        out[at + 10] = checksum >> 8
        out[at + 11] = checksum & 0xFF
        at = cursor

    # Rows left to Python expire at the latest time since the previous one (module docstring).
    expire_at = np.empty(k, np.int64)
    latest = NO_TIME
    for j in range(k):
        latest = max(latest, ts[j])
        if not taken[j]:
            expire_at[j] = latest
            latest = NO_TIME
        else:
            expire_at[j] = NO_TIME
    return taken, expire_at, latest, out, offset, size, position


def assemble(batch, rows: np.ndarray, numbers: np.ndarray, frames: list, links: list, positions: list,
             plan: Plan | None):
    """The datagrams completed in a batch, in the order of the fragments completing them.

    Args:
        batch: the fed :class:`~captures.batch.PacketBatch`.
        rows: ``int64[k]`` its fragment rows; ``numbers``: ``int64[k]`` their frame numbers.
        frames, links, positions: the datagrams Python built (``bytes``), their
            link types and the index among the ``k`` rows of the fragment completing each.
        plan: the compiled pass's (None: it did not run).

    Returns:
        ``(datagrams, frames)`` as :meth:`FragmentReassembler.feed`.
    """
    built = 0 if plan is None else len(plan.position)
    if not frames and not built:
        return PacketBatch.from_frames([]), np.zeros(0, dtype=np.int64)
    where = np.asarray(positions, dtype=np.int64)
    if not built:
        result = PacketBatch.from_frames(frames, link_type=links, ts_ns=batch.ts_ns[rows[where]],
                                         first_number=int(numbers[where[0]]))
    else:
        size = np.fromiter((len(f) for f in frames), dtype=np.int64, count=len(frames))
        start = np.cumsum(size) - size + len(plan.data)
        where = np.concatenate([plan.position, where])
        order = np.argsort(where, kind="stable")
        where = where[order]
        size = np.concatenate([plan.length, size])[order]
        link = np.concatenate([np.full(built, 228, dtype=np.int32), np.asarray(links, dtype=np.int32)])[order]
        if frames:
            data = np.concatenate([plan.data, np.frombuffer(b"".join(frames), dtype=np.uint8)])
            data = gather(data, np.concatenate([plan.offset, start])[order], size)
        else:
            data = plan.data
        offset = np.zeros(len(size), dtype=np.int64)
        offset[1:] = np.cumsum(size)[:-1]
        result = PacketBatch(data=data, offset=offset, cap_len=size, wire_len=size.copy(),
                             ts_ns=np.asarray(batch.ts_ns[rows[where]], dtype=np.int64), link_type=link,
                             interface_id=np.zeros(len(size), dtype=np.int32),
                             first_number=int(numbers[where[0]]))
    interface = batch.interface_id[rows[where]].astype(np.int32)
    return dataclasses.replace(result, interface_id=interface), numbers[where]
