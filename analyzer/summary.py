"""capinfos-style figures for a capture, computed from batches as they stream by.

Field meanings follow Wireshark's capinfos: packets, data size (bytes on the
wire), first/last packet time, duration, rates, snaplen and frames cut by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from captures import CaptureInfo
from captures.batch import PacketBatch

# tcpdump.org/linktypes.html names, for display.
LINK_TYPE_NAMES = {
    0: "BSD loopback (NULL)", 1: "Ethernet", 9: "PPP", 12: "Raw IP", 14: "Raw IP", 50: "PPP in HDLC framing",
    101: "Raw IP", 104: "Cisco HDLC", 105: "IEEE 802.11", 107: "Frame Relay", 108: "OpenBSD loopback (LOOP)",
    113: "Linux cooked capture (SLL)", 127: "IEEE 802.11 radiotap", 228: "Raw IPv4", 229: "Raw IPv6",
    239: "Linux netfilter log (NFLOG)", 276: "Linux cooked capture v2 (SLL2)",
}


def link_type_name(link_type: int) -> str:
    """Human name of a LINKTYPE_* value, e.g. ``Ethernet (1)``."""
    return f"{LINK_TYPE_NAMES.get(link_type, 'unknown')} ({link_type})"


def _snaplen(info: CaptureInfo) -> str:
    """The file's snaplen; for pcapng the largest interface snaplen (0 there means no limit)."""
    if info.snaplen is not None:
        return str(info.snaplen)
    lengths = {interface.snaplen for interface in info.interfaces}
    return ", ".join(str(n) if n else "no limit" for n in sorted(lengths)) or "n/a"


@dataclass
class CaptureStats:
    """Running capinfos figures; :meth:`update` with each batch.

    Attributes:
        packets: frames read.
        data_bytes: sum of ``frame.len`` (bytes on the wire).
        captured_bytes: sum of ``frame.cap_len``.
        cut_frames: frames with fewer bytes captured than on the wire (snaplen).
        first_ns, last_ns: earliest and latest arrival, ns since the epoch (None if no frames).
    """

    packets: int = 0
    data_bytes: int = 0
    captured_bytes: int = 0
    cut_frames: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def update(self, batch: PacketBatch) -> None:
        """Fold one batch into the figures."""
        if not len(batch):
            return
        self.packets += len(batch)
        self.data_bytes += int(batch.wire_len.sum())
        self.captured_bytes += int(batch.cap_len.sum())
        self.cut_frames += int((batch.cap_len < batch.wire_len).sum())
        low, high = int(batch.ts_ns.min()), int(batch.ts_ns.max())
        self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
        self.last_ns = high if self.last_ns is None else max(self.last_ns, high)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame (0 with fewer than two)."""
        if self.first_ns is None:
            return 0.0
        return (self.last_ns - self.first_ns) / 1e9

    def rows(self, info: CaptureInfo, warnings: list[str] = ()) -> list[tuple[str, str]]:
        """``(label, value)`` pairs in capinfos's order, for printing."""
        from datetime import datetime, timezone

        def when(ns):
            if ns is None:
                return "n/a"
            return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="microseconds")

        duration = self.duration
        rate = (lambda x: f"{x / duration:,.1f}") if duration > 0 else (lambda x: "n/a")
        format_name = info.file_format + (" (gzip)" if info.compressed else "")
        rows = [
            ("File name", str(info.path)),
            ("File format", format_name),
            ("Encapsulation", ", ".join(link_type_name(t) for t in info.link_types) or "none"),
            ("Snapshot length", _snaplen(info)),
            ("Number of packets", f"{self.packets:,}"),
            ("Data size (bytes on the wire)", f"{self.data_bytes:,}"),
            ("Captured bytes", f"{self.captured_bytes:,}"),
            ("Frames cut by the snaplen", f"{self.cut_frames:,}"),
            ("First packet time (UTC)", when(self.first_ns)),
            ("Last packet time (UTC)", when(self.last_ns)),
            ("Capture duration (seconds)", f"{duration:.6f}"),
            ("Data byte rate (bytes/s)", rate(self.data_bytes)),
            ("Average packet rate (packets/s)", rate(self.packets)),
            ("Average packet size (bytes)",
             f"{self.data_bytes / self.packets:.2f}" if self.packets else "n/a"),
        ]
        rows += [("Warning", message) for message in warnings]
        return rows
