"""Equal rows of a table grouped in one compiled pass (a hash table with open addressing)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def group_rows(words):
    """Equal rows of ``uint64[n, w]`` grouped (a hash table): ``(int64[n] group of each row,
    int64[g] first row of each group)``, groups numbered in order of first appearance."""
    n, width = words.shape
    size = 16
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, np.int64)
    group = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        h = np.uint64(0)
        for w in range(width):
            h = (h ^ words[i, w]) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
        j = np.int64(h & np.uint64(size - 1))
        while True:
            g = table[j]
            if g < 0:
                table[j] = count
                first[count] = i
                group[i] = count
                count += 1
                break
            same = True
            for w in range(width):
                if words[first[g], w] != words[i, w]:
                    same = False
                    break
            if same:
                group[i] = g
                break
            j = (j + 1) & (size - 1)
    return group, first[:count]


def group_values(values: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal values grouped, numbered as ``pandas.factorize`` numbers them, in a table sized by the distinct values.

    ``values``: ``uint32[n]`` or ``uint64[n]``; ``null``: ``bool[n]`` (True:
    no value).  Returns ``(int32[n] group of each value, -1 where null,
    [g] the distinct values in order of first appearance)``.  The hash table
    starts small and doubles at half full, so with few distinct values (the
    addresses of a capture) it stays in cache, unlike a table sized by ``n``.
    """
    n = len(values)
    group = np.empty(n, np.int32)
    size = 1024
    table = np.full(size, -1, np.int32)
    distinct = np.empty(size // 2, values.dtype)
    done = count = 0
    while True:
        done, count = _group_values(values, null, done, group, table, distinct, count)
        if done == n:
            return group, distinct[:count]
        # Half full: a table twice the size, every distinct value in it again.
        size *= 2
        table = np.full(size, -1, np.int32)
        distinct = np.concatenate([distinct[:count], np.empty(size // 2 - count, values.dtype)])
        _group_values(distinct[:count].copy(), np.zeros(count, np.bool_), 0, np.empty(count, np.int32),
                      table, distinct, 0)


@numba.njit(cache=True, nogil=True)
def _group_values(values, null, start, group, table, distinct, count):
    """Group ``values[start:]`` into ``table``/``distinct`` until the table is half full; ``(rows done, count)``."""
    size = table.shape[0]
    mask = np.uint64(size - 1)
    for i in range(start, values.shape[0]):
        if null[i]:
            group[i] = -1
            continue
        value = values[i]
        j = np.int64(((np.uint64(value) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask)
        g = table[j]
        while g >= 0 and distinct[g] != value:
            j = (j + 1) & (size - 1)
            g = table[j]
        if g < 0:
            if 2 * (count + 1) > size:
                return i, count
            g = count
            table[j] = g
            distinct[g] = value
            count += 1
        group[i] = g
    return values.shape[0], count


def factorize_sorted(values: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pandas.factorize(..., sort=True)`` of unsigned integers with nulls, in two compiled passes.

    ``values``: ``uint32[n]`` or ``uint64[n]``; ``null``: ``bool[n]``.
    Returns ``(codes, distinct)``: the distinct values in ascending order and
    each row's index into them (-1 where null), ``codes`` in the smallest
    signed dtype that holds them, as ``pandas.Categorical`` keeps its codes
    (so wrapping them copies nothing).
    """
    group, distinct = group_values(values, null)
    order = np.argsort(distinct)   # distinct values: any sort is stable
    return renumbered(group, order), distinct[order]


def renumbered(group: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Groups renumbered by rank: ``order`` (``int[g]``) lists the groups in their new order.

    ``group``: ``int[n]`` group of each row, -1 where none.  Returns each
    row's rank (-1 kept) in the smallest signed dtype that holds ``g`` codes,
    the dtype ``pandas.Categorical`` keeps its codes in.
    """
    dtype = np.int8 if len(order) < 127 else np.int16 if len(order) < 32767 else np.int32
    # One entry more, -1, which a group of -1 picks as the last entry.
    rank = np.empty(len(order) + 1, dtype)
    rank[order] = np.arange(len(order))
    rank[-1] = -1
    return rank.take(group)
