"""``HttpStage``: the pipeline stage that turns reassembled TCP streams into Zeek's http.log.

Per connection (the ``uid`` of the deliveries is the connection's serial in
:class:`~analyzer.conn.ConnStage`):

* **Detection.**  A connection is analysed when it is HTTP by Zeek's rules:
  its responder port is one of Zeek's ``HTTP::ports`` (80, 81, 631, 1080,
  3128, 8000, 8080, 8888), or, on any other port, its first bytes are a
  request line (a known method, then whitespace: Zeek's ``dpd_http_client``
  signature) or a status line (``HTTP/`` and a digit: ``dpd_http_server``).
  As in Zeek, a connection whose first packet is not a SYN (one picked up
  mid-stream: Zeek's "partial" connections) is not analysed.  The service
  ``http`` is set on the connection (``ConnStage.set_service``) once a
  request or a reply to one parsed.
* **Parsing** is :class:`~analyzer.http.parser.HttpSession` (Zeek's HTTP
  analyzer semantics; see that module).
* **Output.**  Rows are made when a transaction completes and when a
  connection ends (both directions at end of stream, or :meth:`finish`).
  Memory: one session per open HTTP connection (a few hundred bytes, plus
  the first 4 KiB of bodies being sniffed, plus whole bodies only when
  extracting).
"""

from __future__ import annotations

import operator
import re

import numpy as np
import pandas as pd

from ..files import FileExtractor
from ..reassembly import Chunk, Delivery
from .parser import HTTP_METHODS, HttpSession
from .schema import HTTP

__all__ = ["HTTP_PORTS", "HttpStage"]

#: Zeek's HTTP::ports: connections to these are HTTP whatever their first bytes.
HTTP_PORTS = frozenset((80, 81, 631, 1080, 3128, 8000, 8080, 8888))

_CLIENT = re.compile(rb"\s*(?:" + b"|".join(sorted(HTTP_METHODS, key=len, reverse=True)) + rb")\s")
_SERVER = re.compile(rb"HTTP/[0-9]")
_UNSEEN = object()          # feed_stream: a connection without an entry in HttpStage._sessions
_DECIDE_BYTES = 16          # bytes of a direction needed to recognise it (fewer when it ends)
_UNDECIDED_MAX = 64         # deliveries kept while undecided


class _Undecided:
    __slots__ = ("deliveries", "orig", "resp")

    def __init__(self):
        self.deliveries = []
        self.orig = b""
        self.resp = b""


class HttpStage:
    """Zeek's http.log from the reassembled TCP streams of a pipeline.

    Args:
        connections: the pipeline's :class:`~analyzer.conn.ConnStage` (for
            ``set_service``); None in unit tests.
        capture_passwords: keep Basic-auth passwords (Zeek's
            ``HTTP::default_capture_password``; usernames are always kept).
        extract_dir: save every body (de-chunked, decompressed) under this
            directory, named by SHA-256 (:class:`analyzer.files.FileExtractor`);
            ``finish`` then also returns a ``files`` frame.
        resync: after a gap outside a body, resume at the next start line
            (False: stop that direction, as Zeek does).
        on_tunnel: called with a :class:`~analyzer.reassembly.Delivery` for
            every byte after a CONNECT 200 or an Upgrade 101 (to hand the
            tunnel to another stream stage, e.g. SMTP).

    Attributes:
        weirds: ``(frame.number, name, addl)`` anomalies, Zeek's names.
    """

    def __init__(self, connections=None, capture_passwords: bool = False, extract_dir=None, resync: bool = True,
                 on_tunnel=None):
        self.connections = connections
        self.capture_passwords = capture_passwords
        self.extractor = FileExtractor(extract_dir) if extract_dir is not None else None
        self.resync = resync
        self.on_tunnel = on_tunnel
        self.weirds: list[tuple[int, str, str | None]] = []
        self._sessions: dict = {}           # uid -> HttpSession | _Undecided | None (not HTTP)
        self._eofs: dict = {}               # uid -> directions ended
        # Per connection serial: 0 not seen yet, 1 first packet a SYN, 2 picked up mid-stream ("partial"),
        # 3 done with (not HTTP, or finished): the dict above then forgets it, so memory follows open sessions.
        self._start_codes = bytearray()     # read per chunk (a bytearray item is a plain int) …
        self._start = np.frombuffer(self._start_codes, dtype=np.int8)     # … written per batch (the same bytes)
        self._confirmed = set()
        self._columns = {name: [] for name in _ROW_FIELDS}
        self._pending: list = []            # (key, record values, proxied) not yet in _columns
        self._text_cache: dict = {None: None}
        self.transactions = 0

    # -- pipeline interface ------------------------------------------------------------------------------

    #: The pipeline hands :meth:`feed` the datagrams reassembled from each batch's fragments.
    sees_datagrams = True

    def feed(self, batch, fields, datagrams=()) -> None:
        """Note which connections started with a SYN (the others are "partial" for Zeek's HTTP analyzer).

        ``datagrams``: ``(batch, fields, rows, frame numbers)`` of the IP
        datagrams reassembled from this batch's fragments, datagram ``i`` seen
        at the fragment that completed it (batch row ``rows[i]``, which
        carries its connection): a connection's first packet may be one,
        whichever batch its next packets fall in.
        """
        serial = getattr(self.connections, "batch_serial", None)
        if serial is None or len(serial) != len(batch):
            return
        found_rows, found_flags = [], []
        for part_fields, part_rows in [(fields, None)] + [(f, rows) for _, f, rows, _ in datagrams]:
            if "_tcp.flags" not in part_fields.values:
                continue
            at = np.flatnonzero(part_fields.valid["_tcp.flags"])
            found_flags.append(part_fields.values["_tcp.flags"][at])
            found_rows.append(at if part_rows is None else part_rows[at])
        if not found_rows:
            return
        rows, all_flags = np.concatenate(found_rows), np.concatenate(found_flags)
        order = np.argsort(rows, kind="stable")    # capture order; the batch's own packet first within a row
        rows, all_flags = rows[order], all_flags[order]
        keep = serial[rows] >= 0
        rows, all_flags = rows[keep], all_flags[keep]
        if not len(rows):
            return
        serials = serial[rows]
        top = int(serials.max()) + 1
        if top > len(self._start):
            grown = bytearray(max(top, 2 * len(self._start_codes), 1024))
            grown[:len(self._start_codes)] = self._start_codes
            self._start_codes, self._start = grown, np.frombuffer(grown, dtype=np.int8)
        uids, first = np.unique(serials, return_index=True)
        new = self._start[uids] == 0
        if new.any():
            flags = all_flags[first[new]]
            # A first packet with SYN (a SYN-ACK too: Zeek flips the roles): a full connection;
            # anything else: picked up mid-stream.
            self._start[uids[new]] = np.where((flags & 0x02) != 0, 1, 2)

    def ignores(self, key) -> bool:
        """Whether :meth:`feed_stream` drops every delivery of this connection, now and from now on:
        done with it, not HTTP, or picked up mid-stream (``key``: a :class:`~analyzer.reassembly.ConnKey`)."""
        uid = key.uid
        session = self._sessions.get(uid, _UNSEEN)
        if session is None:
            return True
        codes = self._start_codes
        return session is _UNSEEN and uid.__class__ is int and 0 <= uid < len(codes) and codes[uid] >= 2

    def feed_stream(self, delivery: Delivery) -> None:
        """One reassembled chunk (data, gap or end of stream) of one direction."""
        key, is_orig, chunk = delivery
        uid = key.uid
        session = self._sessions.get(uid, _UNSEEN)
        if session.__class__ is HttpSession:
            data, ts, gap_before, frame, eof = chunk
            if gap_before or eof or not data:
                self._feed(session, delivery)
                return
            session.deliver(is_orig, data, ts, frame)     # (_feed for a chunk of data only)
            if session.rows or session.weirds:
                self._collect(session)
            return
        if session is None:
            return
        if session is _UNSEEN:
            codes = self._start_codes
            if uid.__class__ is int and 0 <= uid < len(codes) and codes[uid] >= 2:
                return                         # done with (3), or picked up mid-stream (2: Zeek skips it)
            if key.resp_p in HTTP_PORTS:
                session = self._new(key)
                self._feed(session, delivery)
                return
            session = self._sessions[uid] = _Undecided()
        self._undecided(uid, session, delivery)

    def finish(self) -> dict[str, pd.DataFrame]:
        """End of capture: every session is closed; returns ``{"http": …}`` (and ``"files"`` when extracting)."""
        for uid, session in list(self._sessions.items()):
            if session.__class__ is _Undecided:
                session = self._decide(uid, session, force=True)
            if session.__class__ is HttpSession:
                self._close(session)
        self._sessions.clear()
        tables = {"http": self.frame()}
        if self.extractor is not None:
            tables["files"] = self.extractor.frame()
        return tables

    # -- sessions ----------------------------------------------------------------------------------------

    def _new(self, key) -> HttpSession:
        tunnel = None if self.on_tunnel is None else _tunnel_to(self.on_tunnel, key)
        session = HttpSession(key, self.capture_passwords, self.resync, self.extractor is not None, tunnel)
        self._sessions[key.uid] = session
        return session

    def _feed(self, session: HttpSession, delivery: Delivery) -> None:
        chunk = delivery.chunk
        is_orig = delivery.is_orig
        if chunk.gap_before:
            session.gap(is_orig, chunk.gap_before, chunk.ts, chunk.frame)
        if chunk.data:
            session.deliver(is_orig, chunk.data, chunk.ts, chunk.frame)
        if chunk.eof:
            session.eof(is_orig, chunk.ts, chunk.frame)
            uid = delivery.key.uid
            ended = self._eofs.get(uid, 0) | (1 if is_orig else 2)
            self._eofs[uid] = ended
            if ended == 3:
                self._close(session)
                self._forget(uid)
                del self._eofs[uid]
                return
        if session.rows or session.weirds:
            self._collect(session)

    def _undecided(self, uid, pending: _Undecided, delivery: Delivery) -> None:
        pending.deliveries.append(delivery)
        chunk = delivery.chunk
        if delivery.is_orig:
            if len(pending.orig) < _DECIDE_BYTES:
                pending.orig += chunk.data[:_DECIDE_BYTES]
        elif len(pending.resp) < _DECIDE_BYTES:
            pending.resp += chunk.data[:_DECIDE_BYTES]
        self._decide(uid, pending, force=chunk.eof or len(pending.deliveries) >= _UNDECIDED_MAX)

    def _decide(self, uid, pending: _Undecided, force: bool):
        """HTTP (replay the kept deliveries), not HTTP, or not yet (None)."""
        verdict = None
        for data, pattern in ((pending.orig, _CLIENT), (pending.resp, _SERVER)):
            if not data:
                continue
            if pattern.match(data):
                verdict = True
                break
            if len(data) >= _DECIDE_BYTES or b"\n" in data or force:
                verdict = False
                break
        if verdict is None and force:
            verdict = False
        if verdict is None:
            return None
        if not verdict:
            self._forget(uid)
            return None
        session = self._new(pending.deliveries[0].key)
        for delivery in pending.deliveries:
            if self._sessions.get(uid) is not session:
                break
            self._feed(session, delivery)
        return session

    def _forget(self, uid) -> None:
        """Done with a connection: a mark in the serial array where possible, else a None in the dict."""
        if uid.__class__ is int and 0 <= uid < len(self._start_codes):
            self._start_codes[uid] = 3
            self._sessions.pop(uid, None)
        else:
            self._sessions[uid] = None

    def _close(self, session: HttpSession) -> None:
        session.close()
        self._collect(session)

    def _collect(self, session: HttpSession) -> None:
        if session.confirmed and session.key.uid not in self._confirmed:
            self._confirmed.add(session.key.uid)
            if self.connections is not None:
                self.connections.set_service(session.key.uid, "http", session.confirmed_ts)
        if session.service_removed and self.connections is not None:
            self.connections.remove_service(session.key.uid, "http")
        if session.rows:
            self._append_rows(session.key, session.rows)
            self.transactions += len(session.rows)
            session.rows.clear()
        if session.weirds:
            self.weirds.extend(session.weirds)
            session.weirds.clear()
        if session.files:
            for file, info, mime in session.files:
                if file.data:
                    self.extractor.save(bytes(file.data), "HTTP", ts=None if info is None else _seconds(info.ts),
                                        frame=None if info is None else info.frame, is_orig=file.is_orig,
                                        filename=_text(file.filename), mime_type=mime)
            session.files.clear()

    # -- output ------------------------------------------------------------------------------------------

    def _append_rows(self, key, rows) -> None:
        """The values of finished records, taken now (a record may still change once logged, as in Zeek's
        scripts, and the log keeps what it had), wait (at most _PENDING_ROWS) to become column values."""
        pending = self._pending
        for info in rows:
            # One C call takes every value; the filename/MIME lists are replaced, never changed in place,
            # the proxied set is changed in place (so copied).
            pending.append((key, _RECORD_VALUES(info), None if info.proxied is None else tuple(info.proxied)))
        if len(pending) >= _PENDING_ROWS:
            self._convert_pending()

    def _convert_pending(self) -> None:
        """Waiting values become column values, a column at a time (text decoded and interned: memory is the
        frame's, not the records')."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        columns, cache = self._columns, self._text_cache

        def text(value):
            out = cache.get(value)
            if out is None and value is not None:
                out = _text(value)
                if len(cache) < 1_000_000:
                    cache[value] = out
            return out

        for index, name in enumerate(("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")):
            columns[name] += [key[index] for key, _, _ in pending]
        values = [record for _, record, _ in pending]
        for index, name in enumerate(_RECORD_FIELDS):
            column = [record[index] for record in values]
            if name == "ts":
                column = [None if ts is None else ts / 1e9 for ts in column]
            elif name == "depth":
                name = "trans_depth"
            elif name == "frame":
                name, column = "frame.number", [None if frame is None or frame < 0 else frame for frame in column]
            elif name in _TEXT_FIELDS:
                column = [cache[value] if value in cache else text(value) for value in column]
            elif name in _LIST_FIELDS:
                column = [[text(v) for v in value] if value else None for value in column]
            columns[name] += column
        columns["proxied"] += [sorted(text(p) for p in proxied) if proxied else None for _, _, proxied in pending]

    def frame(self) -> pd.DataFrame:
        """The ``http`` frame of the rows made so far (columns :data:`analyzer.http.HTTP`), by frame.number."""
        self._convert_pending()
        c = self._columns
        n = len(c["ts"])
        data = {"ts": pd.array(c["ts"], dtype="Float64"), "uid": pd.array([None] * n, dtype="string")}
        for name, dtype in (("id.orig_h", "string"), ("id.orig_p", "UInt16"), ("id.resp_h", "string"),
                            ("id.resp_p", "UInt16"), ("trans_depth", "UInt32")):
            data[name] = pd.array(c[name], dtype=dtype)
        for name in _TEXT_FIELDS:
            data[name] = pd.array(c[name], dtype="string")
        for name in _COUNT_FIELDS:
            data[name] = pd.array(c[name], dtype=_COUNT_FIELDS[name])
        data["tags"] = _objects([[] for _ in range(n)])
        for name in ("proxied",) + _LIST_FIELDS:
            data[name] = _objects(c[name])
        data["frame.number"] = pd.array(c["frame.number"], dtype="Int64")
        frame = pd.DataFrame(data)[[column.name for column in HTTP]]
        if n:
            order = np.lexsort((frame["trans_depth"].to_numpy(dtype=np.int64),
                                frame["frame.number"].to_numpy(dtype=np.int64, na_value=-1)))
            frame = frame.iloc[order].reset_index(drop=True)
        return frame


_TEXT_FIELDS = ("method", "host", "uri", "referrer", "version", "user_agent", "origin", "status_msg", "info_msg",
                "username", "password")
_COUNT_FIELDS = {"request_body_len": "UInt64", "response_body_len": "UInt64", "status_code": "UInt16",
                 "info_code": "UInt16"}
_LIST_FIELDS = ("orig_filenames", "orig_mime_types", "resp_filenames", "resp_mime_types")
_RECORD_FIELDS = ("ts", "depth") + _TEXT_FIELDS + tuple(_COUNT_FIELDS) + _LIST_FIELDS + ("frame",)
_RECORD_VALUES = operator.attrgetter(*_RECORD_FIELDS)
_PENDING_ROWS = 4096       # records converted to column values together (a bound on the records kept)
_ROW_FIELDS = (("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth") + _TEXT_FIELDS
               + tuple(_COUNT_FIELDS) + ("proxied",) + _LIST_FIELDS + ("frame.number",))


def _tunnel_to(handler, key):
    """HttpSession's on_tunnel(is_orig, data, ts, frame) as Delivery objects for another stream stage."""
    def tunnel(is_orig, data, ts, frame):
        handler(Delivery(key, is_orig, Chunk(data, ts, 0, frame, False)))
    return tunnel


def _objects(values: list):
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _seconds(ts):
    return None if ts is None else ts / 1e9


def _text(value):
    """Log text: UTF-8 where valid, other bytes as ``\\xNN`` (as Zeek's writer escapes them)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return bytes(value).decode("utf-8", "backslashreplace")
