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
