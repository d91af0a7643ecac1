"""Deterministic Zeek-style connection uids.

Zeek draws a random 96-bit uid and writes it in base 62 after a ``C``.  netsift
derives the 96 bits instead from a hash of the connection's first packet's
frame number and its 5-tuple (computed in :mod:`analyzer.conn.state`), so the
same capture gives the same uids on every run: 64 bits as 11 base-62 digits and
32 bits as 6, so every uid is ``C`` plus 17 characters.
"""

from __future__ import annotations

import numpy as np

ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), dtype=np.uint8)
    v = values.astype(np.uint64)
    for i in range(width - 1, -1, -1):
        out[:, i] = ALPHABET[(v % np.uint64(62)).astype(np.int64)]
        v //= np.uint64(62)
    return out


def encode_chars(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uids as rows of ASCII bytes (``uint8[n, 18]``) for uid hashes ``a`` (int64, 64 bits) and ``b`` (32 bits)."""
    n = len(a)
    chars = np.empty((n, 18), dtype=np.uint8)
    chars[:, 0] = ord("C")
    chars[:, 1:12] = _digits(np.asarray(a, dtype=np.int64).view(np.uint64), 11)
    chars[:, 12:18] = _digits(np.asarray(b, dtype=np.int64) & 0xFFFFFFFF, 6)
    return chars


def encode(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uid strings (numpy ``object`` array) for uid hashes ``a`` (int64, 64 bits) and ``b`` (32 bits)."""
    return encode_chars(a, b).view("S18").reshape(len(a)).astype(str).astype(object)
