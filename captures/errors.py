"""The one exception the capture readers and writers raise for bad input."""

from __future__ import annotations

import os


class CaptureError(Exception):
    """A capture file that cannot be opened or read at all.

    Damage *after* a readable header is not an error: readers stop there and
    record a warning instead (see :class:`captures.reader.CaptureReader`).

    Attributes:
        path: the file as the caller named it (``str``).
        reason: one line saying what is wrong, e.g.
            ``"not a pcap or pcapng capture (magic 0x7f454c46)"``.

    ``str(error)`` is ``f"{path}: {reason}"``, one line, which the CLI prints
    verbatim as its error line.
    """

    def __init__(self, path, reason: str):
        # Pass both to Exception so the error pickles (multiprocessing workers).
        super().__init__(path, reason)
        self.path = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        # The CLI prints one line per error: never let a newline through.
        self.reason = " ".join(str(reason).split())

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
