"""The pipeline: drives a capture's batches through the dissectors into frames.

``analyze(path)`` reads a capture in batches; a :class:`Pipeline` runs
:func:`dissectors.dissect` on each batch and hands the batch and its columns
to every stage (the ``packets``/``weird`` builder, connection tracking;
application dissectors hook in the same way: a ``feed(batch, fields)`` per
batch and a ``finish()`` that returns frames).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import warnings as warnings_module
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from captures import CaptureInfo, open_capture
from captures.batch import PacketBatch
from dissectors import Fields, dissect

from . import schema
from .conn import CONN, LIMIT_REACHED_WEIRDS, ConnStage
from .dns import DNS, DnsStage
from .http import HTTP, HttpStage
from .smtp import SMTP, SmtpStage
from .frames import TableBuilder
from .reassembly import Deliveries, FragmentReassembler, TcpReassembly, Weird
from .summary import CaptureStats
from .weird import WeirdCollector

DEFAULT_BATCH_PACKETS = 65536
SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "captures", "samples",
                      "mixed.pcap")


# Every table netsift builds, with its schema (the exports and the CLI read this).
SCHEMAS = {"packets": schema.PACKETS, "weird": schema.WEIRD, "conn": CONN, "dns": DNS, "http": HTTP,
           "smtp": SMTP}
TABLE_ORDER = ("packets", "conn", "dns", "http", "smtp", "files", "weird")


class CaptureWarning(UserWarning):
    """A capture was only partly readable (truncated or damaged); the readable part was analysed."""


@dataclass
class AnalysisResult:
    """What :func:`analyze` found in one capture.

    Attributes:
        capture: the reader's metadata (file format, interfaces and link
            types, snaplen, …).
        packets: one row per frame, in file order (schema
            :data:`analyzer.schema.PACKETS`).
        weird: one row per anomaly (Zeek weird.log fields plus ``frame.number``).
        warnings: reader warnings (truncation, damage) and the checksum-offloading
            warning (most transport checksums bad), each one line.
        conn: one row per connection (Zeek conn.log fields, :data:`analyzer.conn.CONN`).
        tables: every frame by table name (``packets``, ``weird``, ``conn``, …).
        stats: capinfos-style figures (packets, bytes, first/last time).
    """

    capture: CaptureInfo
    tables: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)
    stats: CaptureStats = field(default_factory=CaptureStats)

    @property
    def packets(self) -> pd.DataFrame:
        return self.tables["packets"]

    @property
    def weird(self) -> pd.DataFrame:
        return self.tables["weird"]

    @property
    def conn(self) -> pd.DataFrame:
        """One row per connection, Zeek conn.log fields plus ``community_id``."""
        return self.tables["conn"]

    @property
    def http(self) -> pd.DataFrame:
        """One row per HTTP request/response pair, Zeek http.log fields."""
        return self.tables["http"]

    @property
    def smtp(self) -> pd.DataFrame:
        """One row per SMTP mail transaction, Zeek smtp.log fields (+ attachments)."""
        return self.tables["smtp"]

    @property
    def dns(self) -> pd.DataFrame:
        """One row per DNS query/response pair, Zeek dns.log fields (``answers``/``TTLs`` are lists)."""
        return self.tables["dns"]

    def report(self, top: int = 20):
        """The protocol report of this analysis (:class:`analyzer.report.Report`).

        ``report().sections`` holds each section as DataFrames
        (``{section: {table: DataFrame}}``); ``to_html``/``to_markdown``/``to_json`` write it.
        """
        from .report import build_report
        return build_report(self, top=top)

    @property
    def packet_count(self) -> int:
        """Frames read."""
        return len(self.packets)

    @property
    def first_time(self) -> float | None:
        """Epoch seconds of the earliest frame (None when there are none)."""
        times = self.packets["frame.time_epoch"]
        return None if times.empty else float(times.min())

    @property
    def last_time(self) -> float | None:
        """Epoch seconds of the latest frame (None when there are none)."""
        times = self.packets["frame.time_epoch"]
        return None if times.empty else float(times.max())


class PacketsStage:
    """Builds the ``packets`` and ``weird`` tables."""

    def __init__(self):
        self.packets = TableBuilder(schema.PACKETS, aliases={"ts": "frame.time_epoch"})
        self.weird = WeirdCollector()

    def feed(self, batch: PacketBatch, fields: Fields) -> None:
        self.weird.add(self.packets.rows, fields.weird)
        self.packets.add(len(batch), fields.values, fields.valid)

    def finish(self) -> dict[str, pd.DataFrame]:
        packets = self.packets.frame()
        return {"packets": packets, "weird": self.weird.frame(packets)}


class Pipeline:
    """Batches in, frames out: the same path for files, live capture and in-memory batches.

    ``feed(batch)`` dissects a batch, reassembles IP fragments (the datagram
    is dissected like any packet; as in Wireshark, its transport fields go on
    the row of the fragment that completed it, and connection tracking counts
    it once), reassembles TCP streams for the stages that read them, and hands
    everything to the stages; ``finish()`` returns the tables, with each
    packet and weird row joined to its connection's uid.  Feed batches in
    capture order.

    ``validate_checksums``: connection tracking ignores packets with a bad
    IPv4/TCP/UDP/ICMP checksum, as Zeek does by default (False: ``zeek -C``,
    for captures made with checksum offload).  ``extract_dir``: save HTTP
    (and SMTP) bodies there, named by SHA-256, and build a ``files`` table.
    ``capture_passwords``: log HTTP Basic-auth passwords (Zeek's
    ``HTTP::default_capture_password``).

    A stage has ``feed(batch, fields)`` and ``finish() -> dict of frames``; a
    stage that reads TCP streams also has ``feed_stream(delivery)``
    (:class:`analyzer.reassembly.Delivery`), and TCP reassembly runs only
    when such a stage is present.
    """

    # Tunnels inside reassembled datagrams may be fragmented again; follow a few levels.
    MAX_FRAGMENT_NESTING = 4

    def __init__(self, stages: list | None = None, validate_checksums: bool = True,
                 extract_dir: str | os.PathLike | None = None, capture_passwords: bool = False):
        self.stats = CaptureStats()
        self.packets = PacketsStage()
        self.connections = ConnStage(validate_checksums=validate_checksums)
        http = HttpStage(self.connections, capture_passwords=capture_passwords, extract_dir=extract_dir)
        applications = [
            DnsStage(connections=self.connections, ignore_checksums=not validate_checksums),
            http,
            # One extractor for HTTP bodies and SMTP attachments: one files table.
            SmtpStage(self.connections, extractor=http.extractor),
        ]
        self.stages = [self.packets, self.connections] + applications + list(stages or ())
        # Stages that read reassembled IP datagrams on their own, after the batch (those that see them
        # with the batch, ``sees_datagrams``, take them in capture order themselves).
        self.datagram_readers = _datagram_readers(self.stages)
        self.fragments = FragmentReassembler()
        self.stream_readers = [stage for stage in self.stages if hasattr(stage, "feed_stream")]
        self.streams = TcpReassembly() if self.stream_readers else None
        self.frames_fed = 0

    def replace(self, stage) -> None:
        """Use ``stage`` instead of the pipeline's stage of the same type (e.g. an HttpStage with other
        options built on ``self.connections``); appended when there is none.  Call before feeding."""
        kept = [s for s in self.stages if type(s) is not type(stage)]
        self.stages = kept + [stage]
        self.stream_readers = [s for s in self.stages if hasattr(s, "feed_stream")]
        self.datagram_readers = _datagram_readers(self.stages)
        if self.stream_readers and self.streams is None:
            self.streams = TcpReassembly()

    def feed(self, batch: PacketBatch) -> Fields:
        """Dissect ``batch`` and feed it to the stages; returns its dissected columns."""
        self.stats.update(batch)
        fields = dissect(batch)
        datagrams = self._reassemble_fragments(batch, fields)
        # Connection tracking takes each datagram at its completing fragment, in capture order.
        self.connections.feed(batch, fields, datagrams=[(b, f, rows) for b, f, rows, _ in datagrams])
        for stage in self.stages:
            if getattr(stage, "sees_datagrams", False):
                stage.feed(batch, fields, datagrams=datagrams)
            elif stage is not self.packets and stage is not self.connections:
                stage.feed(batch, fields)
        for datagram_batch, datagram_fields, rows, numbers in datagrams:
            for stage in self.datagram_readers:
                stage.feed(datagram_batch, datagram_fields, frame_numbers=numbers)
        # Only the packets table shows a datagram's fields on its completing fragment,
        # as Wireshark does; every other stage sees each datagram once, on its own.
        for _, datagram_fields, rows, _ in datagrams:
            _fill_rows(fields, datagram_fields, rows)
        self.packets.feed(batch, fields)
        if self.streams is not None:
            # Segments with a bad checksum never reach reassembly (Zeek drops them in the TCP analyzer).
            serial = np.where(self.connections.batch_checksum_ok, self.connections.batch_serial, -1)
            # A datagram's connection is the one connection tracking gave the fragment that completed it.
            more = [(b, f, self.connections.batch_serial[rows], numbers) for b, f, rows, numbers in datagrams]
            self._deliver(self.streams.feed_columns(batch, fields, uid_per_row=serial, more=more))
        self.frames_fed += len(batch)
        self._weirds(self.fragments.pop_weirds() + (self.streams.pop_weirds() if self.streams else []))
        return fields

    def _reassemble_fragments(self, batch: PacketBatch, fields: Fields) -> list:
        """Complete IP datagrams: ``(batch, fields, completing rows, frame numbers)`` per nesting level."""
        found = []
        datagrams, numbers = self.fragments.feed(batch, fields)
        for _ in range(self.MAX_FRAGMENT_NESTING):
            if not len(datagrams):
                break
            inner = dissect(datagrams)
            found.append((datagrams, inner, numbers - batch.first_number, numbers))
            datagrams, numbers = self.fragments.feed(datagrams, inner, frame_numbers=numbers)
        return found

    def _deliver(self, deliveries: Deliveries) -> None:
        """Every delivery to every stream reader, in order, less the connections a reader gave up on.

        A reader with ``ignores(key)`` is asked per connection whether it
        drops everything of it now (see :meth:`Deliveries.wanted`); its
        deliveries then need no Python object for that reader.
        """
        feeds = [stage.feed_stream for stage in self.stream_readers]
        ignores = [getattr(stage, "ignores", None) for stage in self.stream_readers]
        chosen: dict[int, list] = {}        # a bit set of readers -> their feed_stream methods
        for objects, readers in deliveries.wanted(ignores):
            if readers is None:
                for delivery in objects:
                    for feed in feeds:
                        feed(delivery)
                continue
            for bits in set(readers) - chosen.keys():
                chosen[bits] = [feed for i, feed in enumerate(feeds) if bits >> i & 1]
            for delivery, bits in zip(objects, readers):
                for feed in chosen[bits]:
                    feed(delivery)

    def _weirds(self, weirds: list[Weird]) -> None:
        """Reassembly anomalies become weird rows of the frame they name (the last frame for timers)."""
        if weirds:
            rows = np.fromiter((w.frame - 1 if w.frame > 0 else self.frames_fed - 1 for w in weirds),
                               dtype=np.int64, count=len(weirds))
            self.packets.weird.add_each(rows, [w.name for w in weirds], [w.addl for w in weirds])

    def finish(self) -> dict[str, pd.DataFrame]:
        """Every table by name (``packets``, ``weird``, ``conn`` …).

        Application stages finish first (they confirm connection services and
        report weirds as ``(frame number, name, addl)`` in their ``weirds``),
        then connections, then packets and weird.
        """
        if self.streams is not None:
            self._deliver(Deliveries([self.streams.flush()], []))
        self._weirds(self.fragments.flush() + (self.streams.pop_weirds() if self.streams else []))
        tables: dict[str, pd.DataFrame] = {}
        for stage in reversed(self.stages):
            if stage is self.connections:
                self.connections.mark_partial(entry[0] for other in self.stages
                                              for entry in getattr(other, "weirds", ())
                                              if entry[1] in LIMIT_REACHED_WEIRDS)
            if stage is self.packets:
                self._weirds([Weird(*entry) for other in self.stages for entry in getattr(other, "weirds", ())])
            tables.update(stage.finish())
        _join_uids(tables, self.connections.packet_uid)
        return dict(sorted(tables.items(), key=lambda item: TABLE_ORDER.index(item[0])
                           if item[0] in TABLE_ORDER else len(TABLE_ORDER)))


def analyze_batch(batch: PacketBatch) -> dict[str, pd.DataFrame]:
    """Every table of one in-memory batch (generators, tests).

    Example: ``analyze_batch(PacketBatch.from_frames([frame_bytes]))["packets"]``.
    """
    pipeline = Pipeline()
    pipeline.feed(batch)
    return pipeline.finish()


def analyze(path: str | os.PathLike = SAMPLE, batch_packets: int = DEFAULT_BATCH_PACKETS,
            progress: Callable[[int], None] | None = None, validate_checksums: bool = True,
            extract_dir: str | os.PathLike | None = None, capture_passwords: bool = False) -> AnalysisResult:
    """Analyse a pcap or pcapng file (optionally gzip-compressed).

    Args:
        path: the capture; default the bundled sample ``captures/samples/mixed.pcap``.
        batch_packets: frames per batch (memory per batch grows with it).
        progress: called after each batch with the number of frames read so far.
        validate_checksums: as Zeek, leave packets with bad checksums out of
            connection tracking (False: like ``zeek -C``).
        extract_dir: save HTTP/SMTP bodies and attachments here (``files`` table).
        capture_passwords: keep HTTP Basic-auth passwords in ``http.password``.

    Returns:
        :class:`AnalysisResult` with the ``packets``, ``weird`` and ``conn`` frames.

    Raises:
        captures.CaptureError: the file is missing, unreadable, not a capture,
            or has a corrupt file header.  A file damaged later is analysed up
            to the damage; the reader's warning is in ``result.warnings`` and
            is also issued as a :class:`CaptureWarning`.
    """
    pipeline = Pipeline(validate_checksums=validate_checksums, extract_dir=extract_dir,
                        capture_passwords=capture_passwords)
    with fewer_collections(), open_capture(path) as reader:
        for batch in reader.batches(max_packets=batch_packets):
            pipeline.feed(batch)
            if progress is not None:
                progress(reader.packets)
        info, reader_warnings = reader.info, list(reader.warnings)
        tables = pipeline.finish()
    offloading = pipeline.connections.checksum_offloading()
    if offloading:
        reader_warnings.append(offloading)
    for message in reader_warnings:
        warnings_module.warn(message, CaptureWarning, stacklevel=2)
    return AnalysisResult(capture=info, tables=tables, warnings=reader_warnings, stats=pipeline.stats)


@contextlib.contextmanager
def fewer_collections(threshold: int = 200_000):
    """Run the cyclic garbage collector less often while a capture is analysed (restored after).

    The stages keep many small, long-lived objects (stream chunks, records of
    open connections, rows) and make few reference cycles, so with Python's
    default thresholds the collector spends a quarter of an HTTP-heavy run
    re-scanning them (``bench/http_speed.py``).  ``threshold``: allocations
    between two young-generation collections (Python's default: 700).
    """
    before = gc.get_threshold()
    gc.set_threshold(threshold, 20, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _datagram_readers(stages) -> list:
    return [stage for stage in stages[2:] if not getattr(stage, "sees_datagrams", False)
            and "frame_numbers" in inspect.signature(stage.feed).parameters]


def _fill_rows(fields: Fields, datagram_fields: Fields, rows: np.ndarray) -> None:
    """Put a datagram's public fields and weirds on the rows of its completing fragments (first write wins)."""
    for name, values in datagram_fields.values.items():
        if not name.startswith(("_", "frame.")):
            present = datagram_fields.valid[name]
            fields.put(name, rows[present], values[present])
    fields.weird.extend((rows[weird_rows], name, addl) for weird_rows, name, addl in datagram_fields.weird)


def _join_uids(tables: dict[str, pd.DataFrame], packet_uid) -> None:
    """Give every packet, and every row of a table with a ``frame.number``, the uid of its connection.

    Rows of the application tables and of weird name the frame they come
    from; its connection's uid fills their ``uid`` column (null where the
    frame belongs to no connection).
    """
    if packet_uid is None or len(packet_uid) != len(tables["packets"]):
        return
    uids = pd.Series(packet_uid, dtype="category")
    tables["packets"]["uid"] = uids.array
    first = tables["packets"]["frame.number"].iloc[0] if len(uids) else 1
    for name, table in tables.items():
        if name in ("packets", "conn") or not len(table) or not {"uid", "frame.number"} <= set(table.columns):
            continue
        rows = table["frame.number"].to_numpy(dtype=np.int64, na_value=-1) - first
        known = (rows >= 0) & (rows < len(uids))
        filled = np.full(len(table), None, dtype=object)
        filled[known] = uids.iloc[rows[known]].astype(object).to_numpy()
        table["uid"] = pd.array(filled, dtype="string")


def capture_stats(path: str | os.PathLike, batch_packets: int = DEFAULT_BATCH_PACKETS
                  ) -> tuple[CaptureInfo, CaptureStats, list[str]]:
    """capinfos figures of a capture without dissecting it (reads every record once).

    Raises:
        captures.CaptureError: as :func:`analyze`.
    """
    stats = CaptureStats()
    with open_capture(path) as reader:
        for batch in reader.batches(max_packets=batch_packets):
            stats.update(batch)
        return reader.info, stats, list(reader.warnings)
