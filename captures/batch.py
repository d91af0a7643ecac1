"""The unit of work of netsift: a batch of captured frames over one byte buffer.

Every reader yields :class:`PacketBatch` objects and every dissector consumes
them.  A batch is columns of numbers, never one Python object per packet: this
is what lets dissection run as a handful of numpy operations per field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PacketBatch:
    """``n`` consecutive frames of one capture.

    Attributes:
        data: ``uint8[m]`` buffer holding the captured bytes of the frames
            (often a view into a memory map; never written to).
        offset: ``int64[n]`` index in ``data`` of each frame's first byte.
        cap_len: ``int64[n]`` captured bytes of each frame (Wireshark
            ``frame.cap_len``); ``data[offset[i]:offset[i] + cap_len[i]]`` is
            frame ``i``.
        wire_len: ``int64[n]`` bytes on the wire (``frame.len``), at least
            ``cap_len`` for well-formed files; the reader keeps what the file
            says.
        ts_ns: ``int64[n]`` arrival time, nanoseconds since the Unix epoch
            (UTC) (``frame.time_epoch`` times 10**9).
        link_type: ``int32[n]`` LINKTYPE_* value of the interface that
            captured each frame (tcpdump.org link-layer header types).
        interface_id: ``int32[n]`` pcapng interface index (0 for classic pcap).
        first_number: ``frame.number`` (1-based) of frame 0 of the batch.
    """

    data: np.ndarray
    offset: np.ndarray
    cap_len: np.ndarray
    wire_len: np.ndarray
    ts_ns: np.ndarray
    link_type: np.ndarray
    interface_id: np.ndarray
    first_number: int = 1

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    @property
    def end(self) -> np.ndarray:
        """``int64[n]``: index in ``data`` one past each frame's last captured byte."""
        return self.offset + self.cap_len

    def frame(self, i: int) -> bytes:
        """The captured bytes of frame ``i`` (0-based within the batch)."""
        start = int(self.offset[i])
        return self.data[start:start + int(self.cap_len[i])].tobytes()

    @classmethod
    def from_frames(cls, frames, link_type: int = 1, ts_ns=None, wire_len=None,
                    first_number: int = 1) -> "PacketBatch":
        """Build a batch from a sequence of ``bytes`` (tests, generators, live capture).

        Args:
            frames: sequence of ``bytes``-like frames, link-layer header first.
            link_type: LINKTYPE_* value shared by all frames, or a sequence of one per frame.
            ts_ns: optional ``int64`` timestamps (ns since epoch); default 0, 1, 2… seconds.
            wire_len: optional original lengths; default the captured lengths.
            first_number: ``frame.number`` of the first frame.
        """
        frames = [bytes(f) for f in frames]
        n = len(frames)
        cap = np.fromiter((len(f) for f in frames), dtype=np.int64, count=n)
        offset = np.zeros(n, dtype=np.int64)
        if n:
            offset[1:] = np.cumsum(cap)[:-1]
        data = np.frombuffer(b"".join(frames), dtype=np.uint8) if n else np.zeros(0, np.uint8)
        if ts_ns is None:
            ts_ns = np.arange(n, dtype=np.int64) * 1_000_000_000
        links = np.broadcast_to(np.asarray(link_type, dtype=np.int32), (n,)).copy()
        return cls(
            data=data,
            offset=offset,
            cap_len=cap,
            wire_len=cap.copy() if wire_len is None else np.asarray(wire_len, dtype=np.int64),
            ts_ns=np.asarray(ts_ns, dtype=np.int64),
            link_type=links,
            interface_id=np.zeros(n, dtype=np.int32),
            first_number=first_number,
        )
