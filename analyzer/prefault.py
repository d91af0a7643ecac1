"""Backing fresh memory before it is written, on another core.

A frame's columns are fresh anonymous memory: the kernel backs each 4 KiB
page at its first write, with a page fault that zeroes it.  For a frame of a
million packets that is about 300 MB, a tenth of the time it takes to build.
``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14) backs a whole range in one
system call; called through ctypes it runs without the GIL, so
:class:`Ahead` can back the rows of the next batch on a helper thread while
the current batch is dissected.  Where the advice is unknown (older kernels,
other systems) nothing is done and pages are faulted in as they are written.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import sys
import threading

# madvise(2) advice that backs a range of pages, writable, in one system call (<linux/mman.h>).
MADV_POPULATE_WRITE = 23


def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


_MADVISE = [_madvise()]   # a list, so that a refusal turns it off for good


def populate(ranges, owners=()) -> None:
    """Back the pages of ``ranges`` (``(address, nbytes)`` pairs of writable private memory), ready to write.

    ``owners``: the objects that own the memory, held until the ranges are
    backed.  The ranges are widened to whole pages.  Never raises: a kernel
    that does not know the advice (``EINVAL``) turns it off, and pages are
    faulted in on first write as usual.
    """
    for address, nbytes in ranges:
        madvise = _MADVISE[0]
        if madvise is None or nbytes <= 0:
            continue
        start = address // mmap.PAGESIZE * mmap.PAGESIZE
        if madvise(start, address + nbytes - start, MADV_POPULATE_WRITE) != 0 and ctypes.get_errno() == errno.EINVAL:
            _MADVISE[0] = None


class Ahead:
    """One helper thread at a time backing ranges of memory while the caller goes on.

    Call :meth:`wait` before the memory is unmapped or moved (``mremap``);
    writing to it meanwhile is safe (the kernel serialises the faults).
    """

    def __init__(self):
        self._thread: threading.Thread | None = None

    def start(self, ranges: list[tuple[int, int]], owners=()) -> None:
        """Back ``ranges`` on a helper thread (after waiting for the previous one); see :func:`populate`."""
        self.wait()
        if _MADVISE[0] is None or not ranges:
            return
        self._thread = threading.Thread(target=populate, args=(ranges, owners), name="netsift-prefault",
                                        daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Return once the helper thread, if any, is done."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
