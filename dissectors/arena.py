"""Where a :class:`~dissectors.wire.Fields` puts its columns: arenas reused from batch to batch.

A batch's columns take about 800 bytes per packet (tens of MB a batch), written
once and dropped when the batch is done.  Fresh memory costs a page fault per
4 KiB page, which on a virtual machine costs more than dissecting the bytes in
it, and the C heap hands a batch fresh pages again and again once the frames
being built sit between the freed ones.  So a Fields carves its columns out of
an arena that is reused by the next Fields once nothing views it any more
(every numpy view of an arena holds a reference to it, so its reference count
tells).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

#: Fields of fewer rows than this allocate as numpy does (their memory is small).
ARENA_MIN_ROWS = 4096
#: Arenas kept for reuse (a batch's Fields, a scratch Fields beside it, a reassembled datagram's …).
MAX_ARENAS = 3
_ALIGN = 64
_arenas: list[np.ndarray] = []
_arenas_lock = threading.Lock()
# Bytes per row the arena of a Fields should have: grows to what batches have needed.
_bytes_per_row = [1024]


def _free_references() -> int:
    """What ``sys.getrefcount`` reports for an array referenced only by a list, read as in :func:`_take_arena`.

    Measured rather than assumed: interpreters differ in whether local and
    argument references are counted (CPython 3.14 may skip them), while a
    user's view always adds a counted reference from the heap.
    """
    probes = [np.empty(1, np.uint8)]
    for i in range(len(probes)):
        arena = probes[i]
        return sys.getrefcount(arena)
    return -1


_FREE_REFERENCES = _free_references()


def _take_arena(nbytes: int) -> np.ndarray | None:
    """An arena of at least ``nbytes`` bytes that nothing uses, or None when every slot is busy."""
    with _arenas_lock:
        # The smallest free arena that is large enough, else any free one (to be replaced).
        best = None
        for i in range(len(_arenas)):   # not enumerate: its reused tuple would hold a reference
            arena = _arenas[i]
            # A free arena counts what the probe below counts (the list's reference, and the local
            # and argument references as this interpreter counts them); any more is a user.
            if sys.getrefcount(arena) != _FREE_REFERENCES:
                continue
            fits = arena.nbytes >= nbytes
            if best is None or (fits and (_arenas[best].nbytes < nbytes or arena.nbytes < _arenas[best].nbytes)):
                best = i
        if best is not None and _arenas[best].nbytes >= nbytes:
            return _arenas[best]
        # A quarter more than asked: a capture's batches differ a little in size, and replacing an
        # arena for each slightly larger batch would cost fresh pages every time (only the bytes
        # used are ever touched, so the headroom costs address space, not memory).
        arena = np.empty(nbytes + nbytes // 4, np.uint8)
        if best is not None:
            _arenas[best] = arena       # a free arena that is too small: replace it
        elif len(_arenas) < MAX_ARENAS:
            _arenas.append(arena)
        else:
            return None
        return arena


class ColumnMemory:
    """Where the columns of one :class:`~dissectors.wire.Fields` (and its quiet views) are allocated: a reused arena."""

    __slots__ = ("arena", "n", "needed", "sinks", "used")

    def __init__(self, n: int):
        self.n = n
        self.arena = None
        self.used = 0
        self.needed = 0
        self.sinks: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        nbytes = dtype.itemsize
        for size in shape:
            nbytes *= size
        self.needed += -(-nbytes // _ALIGN) * _ALIGN
        if self.n >= ARENA_MIN_ROWS:
            if self.arena is None and not self.used:
                self.arena = _take_arena(self.n * _bytes_per_row[0])
                self.used = -1 if self.arena is None else 0   # -1: no arena, do not ask again
            if self.arena is not None and self.used + nbytes <= self.arena.nbytes:
                block = self.arena[self.used:self.used + nbytes].view(dtype)
                self.used += -(-nbytes // _ALIGN) * _ALIGN
                return block if len(shape) == 1 else block.reshape(shape)
            # Out of arena: the next Fields gets a bigger one.
            _bytes_per_row[0] = max(_bytes_per_row[0], -(-self.needed * 5 // (4 * self.n)))
        return np.empty(shape, dtype)

    def zeros(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A zeroed C-contiguous array of ``shape`` and ``dtype``."""
        array = self.empty(shape, dtype)
        array.fill(0)
        return array

    def sink(self, name: str, dtype, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, valid)`` to write hidden cells into and never read (one pair per name, reused)."""
        key = (name, np.dtype(dtype), width)
        pair = self.sinks.get(key)
        if pair is None:
            pair = self.sinks[key] = (self.empty((self.n, width) if width else (self.n,), dtype),
                                      self.empty((self.n,), np.bool_))
        return pair
