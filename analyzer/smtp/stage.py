"""``SmtpStage``: the pipeline stage that turns reassembled TCP streams into the ``smtp`` frame.

Per connection (keyed by ``ConnKey.uid``, the connection's serial in
``ConnStage``) the stage decides whether it is SMTP, then runs an
:class:`~.protocol.SmtpProtocol` (bytes to events) and an
:class:`~.session.SmtpSession` (events to Zeek records):

* Responder port 25 or 587 (Zeek's ``SMTP::ports``): SMTP from the first byte.
* Any other port: Zeek's DPD signatures, on the first KiB of each side: the
  responder's data starts with ``220`` followed by a space or ``-`` (after
  optional white space), and a line of the originator's starts with HELO or
  EHLO (any case).  When both hold, the buffered data is replayed to the
  analyzer.  An ``HTTP CONNECT`` exchange with a 2xx answer at the start is
  skipped first (a proxy tunnel, as Zeek's HTTP analyzer hands it on).
* The connection's service becomes ``smtp`` (``ConnStage.set_service``) at the
  first client command, as Zeek confirms the analyzer there.

``finish()`` ends every connection still open (Zeek's end of input) and
returns ``{"smtp": frame}`` (with ``commands=True`` also ``smtp_commands``:
one row per client command and per server reply, Wireshark's smtp fields).
Anomalies are in :attr:`SmtpStage.weirds` as ``(frame.number, name, addl)``.
"""

from __future__ import annotations

import re
from operator import attrgetter

import numpy as np
import pandas as pd

try:
    import pyarrow as pa
except ImportError:  # pragma: no cover - pandas then stores strings as Python objects
    pa = None

from . import protocol as P
from .message import text
from .schema import SMTP, SMTP_COMMANDS
from .session import SmtpSession, reply_text

try:
    from analyzer.files import FileExtractor, sniff_mime
except ImportError:  # pragma: no cover - analyzer.files is part of netsift; kept optional for old trees
    FileExtractor = None
    sniff_mime = None

SMTP_PORTS = (25, 587)
DPD_BUFFER = 1024
_SERVER_SIG = re.compile(rb"[ \t\r\n\x0b\x0c]*220[ \t\r\n\x0b\x0c-]")
_CLIENT_SIG = re.compile(rb"(?:^|[\n\r])[ \t\r\n\x0b\x0c]*(?:helo|ehlo)", re.IGNORECASE)
_HTTP_OK = re.compile(rb"HTTP/\d\.\d[ \t]+2\d\d")
_MISSING = object()


class _Conn:
    """An SMTP connection being analysed."""

    __slots__ = ("confirmed", "eof", "key", "protocol", "session")

    def __init__(self, key, protocol, session):
        self.key = key
        self.protocol = protocol
        self.session = session
        self.eof = [False, False]
        self.confirmed = False


class _Probe:
    """Deliveries of a connection on another port, held until the DPD signatures decide."""

    __slots__ = ("client_ok", "connect", "connect_skip", "data", "held", "server_ok")

    def __init__(self):
        self.connect_skip = [0, 0]
        self.held: list = []
        self.data = [b"", b""]
        self.server_ok = None
        self.client_ok = False
        self.connect = None          # None: undecided, False: no CONNECT, True: CONNECT seen


class SmtpStage:
    """Zeek's smtp.log as a frame, from the TCP streams of the pipeline.

    Args:
        connections: the pipeline's ``ConnStage`` (service ``smtp`` is set
            on it); None to skip that.
        extract_dir: save each message part there (``analyzer.files``
            ``FileExtractor``, named by SHA-256); ``attachments[i]["path"]``;
            ``finish`` then also returns the ``files`` frame.
        extractor: an existing ``FileExtractor`` to save parts with (share the
            HTTP stage's, so that one ``files`` frame lists both); ``finish``
            then leaves the ``files`` frame to its owner.
        ports: responder ports analysed from the first byte.
        detect: run the DPD signatures on other ports.
        commands: also build ``smtp_commands``.
        decode_headers: decode RFC 2047 encoded words in from/to/cc/reply_to/
            subject (Zeek keeps them raw).
        sniff: name each part's type (``analyzer.files.sniff_mime``).
        max_message_bytes: message bytes kept per message (the rest is
            counted but not parsed).

    Attributes:
        weirds: ``(frame.number, name, addl)`` of every anomaly, in order.
        extractor: the ``FileExtractor`` (None without ``extract_dir``); its
            ``frame()`` is a ``files`` table of what was saved.
        stats: ``connections`` analysed as SMTP, ``transactions`` written.

    Weirds are collected per connection (a name once per connection, as Zeek's
    weird framework logs them) and move to :attr:`weirds` when the
    connection ends; all of them are there after :meth:`finish`.
    """

    def __init__(self, connections=None, extract_dir=None, *, extractor=None, ports=SMTP_PORTS, detect: bool = True,
                 commands: bool = False, decode_headers: bool = False, sniff: bool = True,
                 max_message_bytes: int = P.DEFAULT_MAX_MESSAGE_BYTES):
        self.connections = connections
        self.ports = frozenset(ports)
        self.detect = detect
        self.commands = commands
        self.decode_headers = decode_headers
        self.max_message_bytes = max_message_bytes
        self.sniff = sniff_mime if sniff else None
        self.extractor = extractor
        self._own_extractor = False
        if extractor is None and extract_dir is not None:
            self.extractor = FileExtractor(extract_dir) if FileExtractor is not None else _FallbackExtractor(
                extract_dir)
            self._own_extractor = True
        self._conns: dict = {}
        self._records: list = []        # (conn key, Record) in write order
        self._command_rows: list = []
        self.weirds: list = []
        self.stats = {"connections": 0, "transactions": 0}

    # -- pipeline interface --------------------------------------------------------------------

    def feed(self, batch, fields) -> None:
        """Packets are not needed: SMTP comes from the reassembled streams."""

    def ignores(self, key) -> bool:
        """Whether :meth:`feed_stream` drops every delivery of this connection, now and from now on
        (it is not SMTP, or done; ``key``: a :class:`~analyzer.reassembly.ConnKey`)."""
        uid = key[4]
        return self._conns.get(key if uid is None else uid, _MISSING) is None

    def feed_stream(self, delivery) -> None:
        """One :class:`~analyzer.reassembly.Delivery` (bytes, gap or end of one direction)."""
        key, is_orig, chunk = delivery
        uid = key[4]
        if uid is None:
            uid = key
        conn = self._conns.get(uid, _MISSING)
        if type(conn) is not _Conn:                  # one test on the way of an analysed connection's bytes
            if conn is None:
                return
            if conn is _MISSING:
                if key[3] in self.ports:
                    conn = self._start(uid, key)
                elif self.detect and chunk[0] and not chunk[2]:
                    conn = self._conns[uid] = _Probe()
                else:
                    self._conns[uid] = None
                    return
            if type(conn) is _Probe:
                self._probe(uid, key, conn, is_orig, chunk)
                return
        data, ts, gap, frame, eof = chunk
        if gap or eof:
            self._deliver(conn, is_orig, chunk)
            return
        conn.protocol.deliver_stream(is_orig, data, ts, frame)
        if not conn.confirmed and conn.session.confirmed:
            self._confirm(conn, ts)

    def finish(self) -> dict[str, pd.DataFrame]:
        """End every open connection; ``{"smtp": frame}`` (and ``smtp_commands`` when asked for)."""
        for uid, conn in list(self._conns.items()):
            if type(conn) is _Conn:
                self._close(uid, conn, None)
        self._conns = {}
        tables = {"smtp": self._frame()}
        if self.commands:
            tables["smtp_commands"] = self._commands_frame()
        if self._own_extractor and hasattr(self.extractor, "frame"):
            tables["files"] = self.extractor.frame()
        return tables

    def pop_weirds(self) -> list:
        """The weirds found since the last call, as ``(frame.number, name, addl)``."""
        weirds, self.weirds = self.weirds, []
        return weirds

    # -- connections ---------------------------------------------------------------------------

    def _start(self, uid, key) -> _Conn:
        extract = None
        if self.extractor is not None:
            extractor = self.extractor

            def extract(part, ts, frame, mime_type):
                return str(extractor.save(part.data, "SMTP", ts=ts / 1e9, frame=frame, is_orig=True,
                                          filename=part.filename, mime_type=mime_type))
        session = SmtpSession(key.orig_h, key.resp_h, self.decode_headers, extract, self.sniff)
        conn = _Conn(key, None, session)
        sink = _CommandSink(session, conn, key, self._command_rows) if self.commands else session
        conn.protocol = session.protocol = P.SmtpProtocol(sink, self.max_message_bytes)
        self._conns[uid] = conn
        self.stats["connections"] += 1
        return conn

    def _deliver(self, conn: _Conn, is_orig: bool, chunk) -> None:
        protocol = conn.protocol
        data, ts, gap, frame, eof = chunk
        if gap:
            protocol.gap(is_orig, gap, ts, frame)
        if data:
            protocol.deliver_stream(is_orig, data, ts, frame)
        if not conn.confirmed and conn.session.confirmed:
            self._confirm(conn, ts)
        if eof:
            side = 1 if is_orig else 0
            conn.eof[side] = True
            protocol.eof(is_orig, ts, frame)
            if conn.eof[1 - side]:
                self._close(conn.key.uid if conn.key.uid is not None else conn.key, conn, frame, ts)

    def _confirm(self, conn: _Conn, ts: int | None = None) -> None:
        conn.confirmed = True
        if self.connections is not None and conn.key.uid is not None:
            self.connections.set_service(conn.key.uid, "smtp", ts)

    def _close(self, uid, conn: _Conn, frame, ts=None) -> None:
        conn.protocol.close(ts or 0, frame if frame is not None else -1)
        if not conn.confirmed and conn.session.confirmed:
            self._confirm(conn, ts)
        session = conn.session
        session.finish()
        key = conn.key
        for rec in session.records:
            self._records.append((key, rec))
        self.stats["transactions"] += len(session.records)
        for frame_number, name, addl in session.weirds:
            self.weirds.append((frame_number, name, addl))
        self._conns[uid] = None

    # -- protocol detection (Zeek's dpd.sig) ---------------------------------------------------

    def _probe(self, uid, key, probe: _Probe, is_orig: bool, chunk) -> None:
        data, _, gap, _, eof = chunk
        if gap:
            self._conns[uid] = None
            return
        probe.held.append((is_orig, chunk))
        side = 1 if is_orig else 0
        if data:
            probe.data[side] = (probe.data[side] + data)[:4 * DPD_BUFFER]
        decided = self._decide(probe)
        if decided is None:
            if eof or len(probe.held) > 64:
                self._conns[uid] = None
            return
        if not decided:
            self._conns[uid] = None
            return
        conn = self._start(uid, key)
        skip = [probe.connect_skip[0], probe.connect_skip[1]] if probe.connect else [0, 0]
        for held_orig, held in probe.held:
            s = 1 if held_orig else 0
            if skip[s]:
                cut = min(skip[s], len(held.data))
                skip[s] -= cut
                held = held._replace(data=held.data[cut:])
                if not held.data and not held.eof:
                    continue
            self._deliver(conn, held_orig, held)
            if self._conns.get(uid) is not conn:
                return

    def _decide(self, probe: _Probe):
        """True: SMTP; False: not; None: not yet known."""
        client, server = probe.data[1], probe.data[0]
        offset = [0, 0]
        if probe.connect is None and client:
            if client[:8].upper() == b"CONNECT "[:len(client[:8])]:
                if len(client) < 8:
                    return None
                probe.connect = True
            else:
                probe.connect = False
        if probe.connect:
            req_end = client.find(b"\r\n\r\n")
            resp_end = server.find(b"\r\n\r\n")
            if req_end < 0 or resp_end < 0:
                return None if len(client) < DPD_BUFFER and len(server) < DPD_BUFFER else False
            if not _HTTP_OK.match(server):
                return False
            offset = [resp_end + 4, req_end + 4]
            probe.connect_skip = offset
        server = server[offset[0]:]
        client = client[offset[1]:]
        stripped = server.lstrip(b" \t\r\n\x0b\x0c")
        if probe.server_ok is None and len(stripped) >= 4:
            probe.server_ok = _SERVER_SIG.match(server) is not None
        if probe.server_ok is False:
            return False
        if not probe.client_ok:
            head = client[:DPD_BUFFER]
            lower = head.lower()
            # every match holds "helo" or "ehlo" (any case): a cheap test first, the regex tries every position
            probe.client_ok = (b"helo" in lower or b"ehlo" in lower) and _CLIENT_SIG.search(head) is not None
            if not probe.client_ok and len(client) >= DPD_BUFFER:
                return False
        if probe.server_ok and probe.client_ok:
            return True
        if len(server) >= DPD_BUFFER and probe.server_ok is None:
            return False
        return None

    # -- smtp_commands ---------------------------------------------------------------------------

    def _commands_frame(self) -> pd.DataFrame:
        rows = sorted(self._command_rows, key=lambda r: r[0])
        names = [c.name for c in SMTP_COMMANDS]
        data = {
            "frame.number": pd.array([r[0] for r in rows], dtype="Int64"),
            "ts": pd.array([r[1] / 1e9 for r in rows], dtype="Float64"),
            "uid": pd.array([None] * len(rows), dtype="string"),
            "is_orig": pd.array([r[2] for r in rows], dtype="boolean"),
            "smtp.req.command": pd.array([r[3] for r in rows], dtype="string"),
            "smtp.req.parameter": pd.array([r[4] for r in rows], dtype="string"),
            "smtp.response.code": pd.array([r[5] for r in rows], dtype="Int64"),
            "smtp.response": pd.array([r[6] for r in rows], dtype="string"),
        }
        return pd.DataFrame(data, columns=names)

    # -- the smtp frame ------------------------------------------------------------------------

    def _frame(self) -> pd.DataFrame:
        recs = self._records
        keys = [k for k, _ in recs]
        rows = [r for _, r in recs]

        def field(name):
            return list(map(attrgetter(name), rows))

        data = {
            "ts": _floats([r.ts / 1e9 for r in rows]),
            "uid": _strings([None] * len(rows)),
            "id.orig_h": _strings([k.orig_h for k in keys]),
            "id.orig_p": pd.array([k.orig_p for k in keys], dtype="UInt16"),
            "id.resp_h": _strings([k.resp_h for k in keys]),
            "id.resp_p": pd.array([k.resp_p for k in keys], dtype="UInt16"),
            "trans_depth": _ints(field("trans_depth")),
            "helo": _strings(field("helo")),
            "mailfrom": _strings(field("mailfrom")),
            "rcptto": _lists(field("rcptto")),
            "date": _strings(field("date")),
            "from": _strings(field("from_")),
            "to": _lists(field("to")),
            "cc": _lists(field("cc")),
            "reply_to": _strings(field("reply_to")),
            "msg_id": _strings(field("msg_id")),
            "in_reply_to": _strings(field("in_reply_to")),
            "subject": _strings(field("subject")),
            "x_originating_ip": _strings(field("x_originating_ip")),
            "first_received": _strings(field("first_received")),
            "second_received": _strings(field("second_received")),
            "last_reply": _strings([reply_text(r.last_reply) for r in rows]),
            "path": _lists(field("path")),
            "user_agent": _strings(field("user_agent")),
            "tls": pd.array(field("tls"), dtype="boolean"),
            "attachments": _lists(field("attachments")),
            "is_webmail": pd.array(field("is_webmail"), dtype="boolean"),
            "auth_mechanism": _strings(field("auth_mechanism")),
            "extensions": _lists(field("extensions")),
            "frame.number": _ints([r.cmd_frame if r.cmd_frame >= 0 else r.frame for r in rows]),
        }
        frame = pd.DataFrame(data, columns=[c.name for c in SMTP])
        if len(frame):
            # Capture order, as the http frame: not the order transactions ended in, which depends on
            # where the batches were cut.
            order = np.lexsort((frame["trans_depth"].to_numpy(dtype=np.int64, na_value=-1),
                                frame["frame.number"].to_numpy(dtype=np.int64, na_value=-1)))
            frame = frame.iloc[order].reset_index(drop=True)
        return frame


# -- frame columns from Python lists (pd.array's generic conversion costs 5-10x more per value) ------


def _strings(values: list) -> pd.api.extensions.ExtensionArray:
    """``string`` column of str/None values (None: NA), in the storage pandas picks for ``dtype="string"``."""
    dtype = pd.StringDtype()
    if pa is not None and dtype.storage == "pyarrow" and dtype.na_value is pd.NA:
        return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
    return pd.array(values, dtype=dtype)


def _ints(values: list) -> pd.api.extensions.ExtensionArray:
    """``Int64`` column of Python ints (no NA)."""
    return pd.arrays.IntegerArray(np.array(values, dtype=np.int64), np.zeros(len(values), dtype=bool))


def _floats(values: list) -> pd.api.extensions.ExtensionArray:
    """``Float64`` column of Python floats (no NA)."""
    return pd.arrays.FloatingArray(np.array(values, dtype=np.float64), np.zeros(len(values), dtype=bool))


def _lists(values: list) -> pd.api.extensions.ExtensionArray:
    """``object`` column of lists: each set/dict/list value as a new list (its keys, in order), None kept."""
    # fromiter stores each list as one object (np.array would make a 2-D array of lists of equal length)
    column = np.fromiter([None if value is None else list(value) for value in values], dtype=object,
                         count=len(values))
    return pd.arrays.NumpyExtensionArray(column)


class _CommandSink:
    """Forwards the protocol's events to the session and keeps the rows of ``smtp_commands``."""

    __slots__ = ("code", "conn", "key", "lines", "rows", "session")

    def __init__(self, session: SmtpSession, conn: _Conn, key, rows: list):
        self.session = session
        self.conn = conn
        self.key = key
        self.rows = rows
        self.lines: list = []
        self.code = None

    def request(self, code, command, arg, ts, frame):
        if code >= 0 and code not in (P.AUTH_ANSWER, P.END_OF_DATA):
            self.rows.append((frame, ts, True, command.decode("ascii", "replace"), text(arg), None, None, self.key))
        self.session.request(code, command, arg, ts, frame)

    def reply(self, code, command, msg, cont, first, ts, frame):
        if first:
            self.lines = []
            self.code = code
        self.lines.append(text(msg))
        if not cont:
            self.rows.append((frame, ts, False, None, None, self.code, "\n".join(self.lines), self.key))
            self.lines = []
        self.session.reply(code, command, msg, cont, first, ts, frame)

    def message(self, *args):
        self.session.message(*args)

    def starttls(self, ts, frame):
        self.session.starttls(ts, frame)

    def weird(self, name, addl, frame):
        self.session.weird(name, addl, frame)


class _FallbackExtractor:
    """Used only when analyzer.files is missing: saves parts as ``<directory>/<sha256>`` (no files frame)."""

    def __init__(self, directory):
        import os
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.records: list = []

    def save(self, data: bytes, source: str = "", **meta):
        import hashlib
        import os
        path = os.path.join(self.directory, hashlib.sha256(data).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as out:
                out.write(data)
        return path
