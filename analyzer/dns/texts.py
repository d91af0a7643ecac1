"""Text ids by 64-bit key: which distinct name or RDATA text a record has, looked up in compiled code.

:func:`dissectors.dns.parse` gives every record a 64-bit key (an FNV-1a hash of
the text Zeek would make, see ``R_KEY``/``R_OKEY``/``R_QKEY``); the stage makes
each distinct text once (:func:`dissectors.dns_rdata.render`) and refers to it
by an id.  :class:`KeyIndex` maps keys to those ids with an open-addressing
table in ``numpy`` arrays, so a batch's records are looked up in one compiled
pass and Python only runs for keys not seen before.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["KeyIndex"]


@numba.njit(cache=True, inline="always")
def _slot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h ^ (h >> np.uint64(31))) & np.uint64(mask))


@numba.njit(cache=True)
def _find(keys, ids, query):
    mask = keys.shape[0] - 1
    out = np.empty(query.shape[0], dtype=np.int64)
    for i in range(query.shape[0]):
        key = query[i]
        b = _slot(key, mask)
        found = -1
        while ids[b] >= 0:
            if keys[b] == key:
                found = ids[b]
                break
            b = (b + 1) & mask
        out[i] = found
    return out


@numba.njit(cache=True)
def _put(keys, ids, new_keys, new_ids):
    mask = keys.shape[0] - 1
    for i in range(new_keys.shape[0]):
        b = _slot(new_keys[i], mask)
        while ids[b] >= 0 and keys[b] != new_keys[i]:
            b = (b + 1) & mask
        keys[b] = new_keys[i]
        ids[b] = new_ids[i]


class KeyIndex:
    """``int64`` key → ``int64`` id (>= 0), kept at most half full."""

    def __init__(self, capacity: int = 1024):
        size = 16
        while size < 2 * capacity:
            size *= 2
        self._keys = np.zeros(size, dtype=np.int64)
        self._ids = np.full(size, -1, dtype=np.int64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def find(self, keys: np.ndarray) -> np.ndarray:
        """``int64[k]``: the id of each key, -1 for keys not added."""
        return _find(self._keys, self._ids, np.ascontiguousarray(keys, dtype=np.int64))

    def add(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Add distinct ``keys`` (``int64[k]``, not yet present) with their ``ids`` (``int64[k]``)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if 2 * (self._count + len(keys)) > len(self._keys):
            used = self._ids >= 0
            old_keys, old_ids = self._keys[used], self._ids[used]
            size = len(self._keys)
            while size < 4 * (self._count + len(keys)):
                size *= 2
            self._keys = np.zeros(size, dtype=np.int64)
            self._ids = np.full(size, -1, dtype=np.int64)
            _put(self._keys, self._ids, old_keys, old_ids)
        _put(self._keys, self._ids, keys, ids)
        self._count += len(keys)
