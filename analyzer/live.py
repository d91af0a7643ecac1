"""Live analysis: a capture on an interface through the same stages as a file, with a terminal dashboard.

``analyze_live("eth0", "tcp port 80", duration=30)`` captures (via
:mod:`captures.live`), optionally writes the frames to a file or a ring buffer
of files (:mod:`captures.ring`), feeds every batch to the pipeline's stages
(``packets``, ``weird``, ``conn``, and whatever else the pipeline runs), and
returns the same :class:`~analyzer.pipeline.AnalysisResult` as
:func:`analyzer.analyze` does for a file.

While it runs, a rich dashboard on stderr (refreshed every second) shows
packets/s, bytes/s, the transport mix (tcp/udp/icmp/other), the top talkers
by bytes (``ip.src``/``ipv6.src``), the latest DNS queries and HTTP requests
seen, and the kernel's drops.

Ctrl-C (SIGINT) or SIGTERM stops the capture cleanly: the frames the kernel
has already captured are taken, the file is flushed and closed, and the result
is returned as if the capture had ended by itself.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from typing import Callable

import numpy as np

from captures import CaptureInfo, InterfaceInfo
from captures.batch import PacketBatch
from captures.live import (BATCH_INTERVAL, BATCH_PACKETS, DEFAULT_BUFFER_MB, DEFAULT_SNAPLEN, LiveCapture,
                           LiveStats, stop_on_signals)
from captures.ring import Autostop, CaptureFileWriter, RingBuffer
from dissectors import Fields

from .pipeline import AnalysisResult, Pipeline

DNS_PORTS = (53, 5353, 5355)
HTTP_METHODS = (b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC")
DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
             35: "NAPTR", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
_MAX_TALKERS = 100_000


# ---------------------------------------------------------------------------
# Peeking at application payloads for the dashboard (a few per batch, never all)


def _column(fields: Fields, name: str):
    values = fields.values.get(name)
    if values is None:
        return None, None
    return values, fields.valid[name]


def _payload_rows(fields: Fields, proto: int, ports=None):
    """Rows (and payload bounds) of ``proto`` packets with a payload, optionally to/from ``ports``."""
    ip_proto, ip_ok = _column(fields, "_ip.proto")
    start, start_ok = _column(fields, "_payload.start")
    end, _ = _column(fields, "_payload.end")
    if ip_proto is None or start is None or end is None:
        return None
    mask = ip_ok & start_ok & (ip_proto == proto) & (end > start)
    if ports is not None:
        dport, dport_ok = _column(fields, "_l4.dstport")
        if dport is None:
            return None
        mask &= dport_ok & np.isin(dport, ports)
    rows = np.flatnonzero(mask)
    return rows, start, end


def _source(fields: Fields, row: int) -> str:
    for name, version in (("ip.src", 4), ("ipv6.src", 6)):
        values, valid = _column(fields, name)
        if values is not None and valid[row]:
            if version == 4:
                return str(ipaddress.IPv4Address(int(values[row])))
            return str(ipaddress.IPv6Address(bytes(values[row])))
    return "?"


def dns_question(payload: bytes) -> tuple[str, str] | None:
    """``(name, type)`` of the first question of a DNS query message, or None (a response, or damaged)."""
    if len(payload) < 17 or payload[2] & 0x80 or int.from_bytes(payload[4:6], "big") == 0:
        return None
    labels, p = [], 12
    while True:
        if p >= len(payload):
            return None
        length = payload[p]
        if length == 0:
            p += 1
            break
        if length & 0xC0 or p + 1 + length > len(payload) or len(labels) > 127:
            return None
        labels.append(payload[p + 1:p + 1 + length].decode("ascii", "backslashreplace"))
        p += 1 + length
    if p + 2 > len(payload):
        return None
    qtype = int.from_bytes(payload[p:p + 2], "big")
    return (".".join(labels) or "."), DNS_TYPES.get(qtype, f"TYPE{qtype}")


def http_request(payload: bytes) -> tuple[str, str, str] | None:
    """``(method, host, target)`` of an HTTP/1.x request head, or None."""
    line_end = payload.find(b"\r\n")
    line = payload if line_end < 0 else payload[:line_end]
    parts = line.split(b" ")
    if len(parts) < 2 or not parts[0].isalpha() or not parts[0].isupper():
        return None
    if len(parts) >= 3 and not parts[-1].startswith(b"HTTP/"):
        return None
    host = ""
    for header in payload[line_end + 2:].split(b"\r\n") if line_end >= 0 else ():
        if not header:
            break
        name, sep, value = header.partition(b":")
        if sep and name.strip().lower() == b"host":
            host = value.strip().decode("latin-1")
            break
    return (parts[0].decode("ascii"), host, parts[1].decode("latin-1", "replace"))


def _first_words(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Big-endian uint32 of the first 4 payload bytes (0 where there are fewer)."""
    ok = end - start >= 4
    words = np.zeros(start.shape[0], np.uint32)
    s = start[ok]
    words[ok] = ((data[s].astype(np.uint32) << 24) | (data[s + 1].astype(np.uint32) << 16)
                 | (data[s + 2].astype(np.uint32) << 8) | data[s + 3].astype(np.uint32))
    return words


_METHOD_WORDS = np.array([int.from_bytes(m, "big") for m in HTTP_METHODS], np.uint32)


# ---------------------------------------------------------------------------
# The dashboard


def _human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


class Dashboard:
    """Rolling figures of a live capture, rendered with rich.

    :meth:`update` with each batch and its dissected fields; :meth:`render`
    gives the current view (rates over the time since the previous render).

    Args:
        iface, bpf: shown in the title.
        top: rows of the talkers table; latest: rows of the DNS and HTTP tables.
    """

    def __init__(self, iface: str = "", bpf: str | None = None, top: int = 8, latest: int = 8):
        self.iface, self.bpf, self.top = iface, bpf, top
        self.started = time.monotonic()
        self.packets = 0
        self.bytes = 0
        self.protocols = {name: [0, 0] for name in ("tcp", "udp", "icmp", "other")}
        self.talkers: dict[tuple[int, object], list[int]] = {}
        self.dns: deque = deque(maxlen=latest)
        self.http: deque = deque(maxlen=latest)
        self.latest = latest
        self.stats = LiveStats()
        self._mark = (self.started, 0, 0)
        self._rates = (0.0, 0.0)

    # -- accumulating -----------------------------------------------------

    def update(self, batch: PacketBatch, fields: Fields) -> None:
        n = len(batch)
        if not n:
            return
        wire = np.asarray(batch.wire_len, np.int64)
        self.packets += n
        self.bytes += int(wire.sum())
        self._protocols(fields, wire, n)
        self._talkers(fields, wire)
        self._dns(batch, fields)
        self._http(batch, fields)

    def _valid(self, fields: Fields, name: str, n: int) -> np.ndarray:
        valid = fields.valid.get(name)
        return np.zeros(n, bool) if valid is None else valid

    def _protocols(self, fields: Fields, wire: np.ndarray, n: int) -> None:
        icmp = self._valid(fields, "icmp.type", n) | self._valid(fields, "icmpv6.type", n)
        tcp = self._valid(fields, "tcp.srcport", n) & ~icmp
        udp = self._valid(fields, "udp.srcport", n) & ~icmp & ~tcp
        other = ~(icmp | tcp | udp)
        for name, mask in (("tcp", tcp), ("udp", udp), ("icmp", icmp), ("other", other)):
            self.protocols[name][0] += int(mask.sum())
            self.protocols[name][1] += int(wire[mask].sum())

    def _talkers(self, fields: Fields, wire: np.ndarray) -> None:
        for name, version in (("ip.src", 4), ("ipv6.src", 6)):
            values, valid = _column(fields, name)
            if values is None or not valid.any():
                continue
            values, weights = values[valid], wire[valid]
            if version == 6:
                values = np.ascontiguousarray(values, np.uint8).view("V16").reshape(-1)
            keys, inverse = np.unique(values, return_inverse=True)
            counts = np.bincount(inverse, minlength=len(keys))
            sums = np.bincount(inverse, weights=weights, minlength=len(keys))
            for key, count, total in zip(keys.tolist(), counts.tolist(), sums.tolist()):
                entry = self.talkers.setdefault((version, key), [0, 0])
                entry[0] += count
                entry[1] += int(total)
        if len(self.talkers) > _MAX_TALKERS:
            keep = sorted(self.talkers.items(), key=lambda item: -item[1][1])[:_MAX_TALKERS // 10]
            self.talkers = dict(keep)

    def _dns(self, batch: PacketBatch, fields: Fields) -> None:
        found = _payload_rows(fields, 17, DNS_PORTS)
        if found is None:
            return
        rows, start, end = found
        for row in rows[-self.latest:].tolist():
            question = dns_question(batch.data[start[row]:min(end[row], start[row] + 512)].tobytes())
            if question is not None:
                self.dns.append((int(batch.ts_ns[row]), _source(fields, row)) + question)

    def _http(self, batch: PacketBatch, fields: Fields) -> None:
        found = _payload_rows(fields, 6)
        if found is None:
            return
        rows, start, end = found
        if not len(rows):
            return
        words = _first_words(batch.data, start[rows], end[rows])
        rows = rows[np.isin(words, _METHOD_WORDS)]
        for row in rows[-self.latest:].tolist():
            request = http_request(batch.data[start[row]:min(end[row], start[row] + 4096)].tobytes())
            if request is not None:
                self.http.append((int(batch.ts_ns[row]), _source(fields, row)) + request)

    def set_stats(self, stats: LiveStats) -> None:
        self.stats = stats

    # -- rendering --------------------------------------------------------

    def rates(self) -> tuple[float, float]:
        """Packets/s and bytes/s since the previous call."""
        now = time.monotonic()
        then, packets, nbytes = self._mark
        if now - then >= 0.2:
            self._rates = ((self.packets - packets) / (now - then), (self.bytes - nbytes) / (now - then))
            self._mark = (now, self.packets, self.bytes)
        return self._rates

    def top_talkers(self) -> list[tuple[str, int, int]]:
        """``(address, packets, bytes)`` of the top sources by bytes."""
        best = sorted(self.talkers.items(), key=lambda item: -item[1][1])[:self.top]
        out = []
        for (version, key), (count, total) in best:
            address = ipaddress.IPv4Address(int(key)) if version == 4 else ipaddress.IPv6Address(bytes(key))
            out.append((str(address), count, total))
        return out

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        pps, bps = self.rates()
        elapsed = time.monotonic() - self.started
        title = Text.assemble(("netsift live", "bold"), f" on {self.iface}",
                              (f"  filter: {self.bpf}" if self.bpf else ""),
                              f"  {int(elapsed) // 3600:02d}:{int(elapsed) % 3600 // 60:02d}:{int(elapsed) % 60:02d}")
        head = Table.grid(padding=(0, 3))
        for _ in range(4):
            head.add_column()
        drop_style = "bold red" if self.stats.dropped or self.stats.if_dropped else ""
        head.add_row(f"packets {self.packets:,}", f"{pps:,.0f} pkt/s", f"bytes {_human_bytes(self.bytes)}",
                     f"{_human_bytes(bps)}/s")
        head.add_row(f"received by filter {self.stats.received:,}",
                     Text(f"dropped by kernel {self.stats.dropped:,}", style=drop_style),
                     Text(f"dropped by interface {self.stats.if_dropped:,}", style=drop_style), "")

        protocols = Table(title="protocols", title_justify="left", expand=False)
        for name, justify in (("proto", "left"), ("packets", "right"), ("bytes", "right"), ("%", "right")):
            protocols.add_column(name, justify=justify)
        for name, (count, total) in self.protocols.items():
            share = 100 * count / self.packets if self.packets else 0.0
            protocols.add_row(name, f"{count:,}", _human_bytes(total), f"{share:.1f}")

        talkers = Table(title="top talkers (ip.src by bytes)", title_justify="left")
        for name, justify in (("source", "left"), ("packets", "right"), ("bytes", "right")):
            talkers.add_column(name, justify=justify)
        for address, count, total in self.top_talkers():
            talkers.add_row(address, f"{count:,}", _human_bytes(total))

        side = Table.grid(padding=(0, 2))
        side.add_row(protocols, talkers)
        parts = [title, head, side]
        if self.dns:
            dns = Table(title="latest DNS queries", title_justify="left")
            for name in ("time", "client", "query", "type"):
                dns.add_column(name)
            for ts, client, name, kind in reversed(self.dns):
                dns.add_row(_clock(ts), client, name, kind)
            parts.append(dns)
        if self.http:
            http = Table(title="latest HTTP requests", title_justify="left")
            for name in ("time", "client", "method", "host", "target"):
                http.add_column(name, overflow="fold")
            for ts, client, method, host, target in reversed(self.http):
                http.add_row(_clock(ts), client, method, host, target)
            parts.append(http)
        return Group(*parts)


def _clock(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts_ns / 1e9)) + f".{ts_ns % 1_000_000_000 // 1_000_000:03d}"


# ---------------------------------------------------------------------------
# Live analysis


def _head(batch: PacketBatch, n: int) -> PacketBatch:
    return PacketBatch(batch.data, batch.offset[:n], batch.cap_len[:n], batch.wire_len[:n], batch.ts_ns[:n],
                       batch.link_type[:n], batch.interface_id[:n], batch.first_number)


def analyze_live(iface: str | int, bpf: str | None = None, count: int | None = None,
                 duration: float | None = None, write: str | None = None, dashboard: bool = True, *,
                 snaplen: int = DEFAULT_SNAPLEN, promisc: bool = True, buffer_mb: int = DEFAULT_BUFFER_MB,
                 ring: RingBuffer | None = None, autostop: Autostop | None = None, pcapng: bool | None = None,
                 console=None, handle_signals: bool = True,
                 on_ready: Callable[[LiveCapture], None] | None = None,
                 on_file: Callable[[str], None] | None = None,
                 on_batch: Callable[[PacketBatch, Fields], None] | None = None,
                 batch_interval: float = BATCH_INTERVAL, batch_packets: int = BATCH_PACKETS,
                 validate_checksums: bool = False) -> AnalysisResult:
    """Capture on ``iface`` and analyse the frames as :func:`analyzer.analyze` analyses a file.

    Args:
        iface: interface name (or its number in ``netsift interfaces``).
        bpf: capture filter, compiled by libpcap.
        count: stop after this many frames (``-c``).
        duration: stop after this many seconds (``-a duration:S``).
        write: also write the frames to this file (pcapng if the name ends
            ``.pcapng``, else pcap), or to a ring buffer of files (``ring``).
        dashboard: show the rich dashboard on stderr (only on a terminal,
            unless ``console`` is given).
        snaplen, promisc, buffer_mb: see :class:`captures.live.LiveCapture`.
        ring, autostop: ``-b``/``-a`` conditions (:mod:`captures.ring`);
            ``autostop.packets``/``duration`` combine with ``count``/``duration``
            (the first reached stops).
        console: the rich Console for the dashboard (default: stderr).
        handle_signals: stop cleanly on SIGINT/SIGTERM (main thread only).
        on_ready: called with the capture once it is listening.
        on_file: called with each capture file's name as it is created.
        on_batch: called with each batch and its dissected fields.
        validate_checksums: leave packets with bad checksums out of connection
            tracking, as :func:`analyzer.analyze` does by default.  Off by
            default here: a capture on the sending host sees the checksums
            the NIC (or loopback) has not filled in yet (Zeek's ``-C``).

    Returns:
        :class:`~analyzer.pipeline.AnalysisResult` (built by the same
        :class:`~analyzer.pipeline.Pipeline` as for files); ``result.capture.path`` is
        the file written (or the interface), ``result.live_stats`` the
        :class:`captures.live.LiveStats`; kernel drops are also a warning.

    Raises:
        captures.live.LiveCaptureError: unknown interface, no privileges, bad filter, libpcap failure.
        captures.ring.OptionError, OSError: bad ring buffer options, unwritable file.
    """
    stop = autostop or Autostop()
    limits = [v for v in (count, stop.packets) if v is not None and v > 0]
    times = [v for v in (duration, stop.duration) if v is not None]
    capture = LiveCapture(iface, bpf, snaplen, promisc=promisc, buffer_mb=buffer_mb,
                          count=min(limits) if limits else None, duration=min(times) if times else None,
                          batch_interval=batch_interval, batch_packets=batch_packets)
    writer = None
    board = None
    live_display = None
    pipeline = Pipeline(validate_checksums=validate_checksums)
    try:
        if write is not None:
            writer = CaptureFileWriter(write, capture.link_type, capture.snaplen, pcapng=pcapng, ring=ring,
                                       autostop=stop, on_file=on_file)
        if dashboard:
            from rich.console import Console
            from rich.live import Live
            console = console if console is not None else Console(stderr=True)
            if console.is_terminal or console.record:
                board = Dashboard(capture.iface, bpf)
                live_display = Live(board.render(), console=console, auto_refresh=False, transient=False)
        heartbeat = 0.25 if board is not None or (writer is not None and writer.ring is not None) else None
        with stop_on_signals(capture.stop, enabled=handle_signals):
            if live_display is not None:
                live_display.start()
            if on_ready is not None:
                on_ready(capture)
            next_refresh = time.monotonic() + 1.0
            for batch in capture.batches(heartbeat=heartbeat):
                full = False
                if len(batch):
                    if writer is not None:
                        taken = writer.write_batch(batch)
                        if taken < len(batch):
                            batch, full = _head(batch, taken), True
                    if len(batch):
                        fields = pipeline.feed(batch)
                        if board is not None:
                            board.update(batch, fields)
                        if on_batch is not None:
                            on_batch(batch, fields)
                elif writer is not None:
                    writer.tick()
                if board is not None and time.monotonic() >= next_refresh:
                    board.set_stats(capture.stats())
                    live_display.update(board.render(), refresh=True)
                    next_refresh = time.monotonic() + 1.0
                if full or (writer is not None and writer.full):
                    break
    finally:
        if writer is not None:
            writer.close()
        capture.close()
        if live_display is not None:
            board.set_stats(capture.stats())
            live_display.update(board.render(), refresh=True)
            live_display.stop()
    stats = capture.stats()
    stats.captured = pipeline.stats.packets
    warnings = []
    if stats.dropped or stats.if_dropped:
        warnings.append(f"{stats.dropped} packets dropped by the kernel and {stats.if_dropped} by the "
                        f"interface on {capture.iface} (raise the buffer with -B, or narrow the filter)")
    path = writer.current if writer is not None else capture.iface
    file_format = "live" if writer is None else ("pcapng" if writer.pcapng else "pcap")
    info = CaptureInfo(path=str(path), file_format=file_format, compressed=str(path).lower().endswith(".gz"),
                       snaplen=capture.snaplen,
                       interfaces=[InterfaceInfo(link_type=capture.link_type, snaplen=capture.snaplen,
                                                 name=capture.iface, tsresol=9 if capture.nanosecond else 6)])
    tables = pipeline.finish()
    offloading = pipeline.connections.checksum_offloading()
    if offloading:
        warnings.append(offloading)    # e.g. on lo: the kernel leaves sent checksums to the NIC
    result = AnalysisResult(capture=info, tables=tables, warnings=warnings, stats=pipeline.stats)
    result.live_stats = stats
    result.files = list(writer.paths) if writer is not None else []
    return result
