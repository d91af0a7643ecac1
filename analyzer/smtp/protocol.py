"""The SMTP command/reply state machine of one connection: bytes in, events out, no I/O (h11 style).

:class:`SmtpProtocol` is given each direction's bytes in stream order
(:meth:`~SmtpProtocol.receive`), the gaps (:meth:`~SmtpProtocol.gap`) and the
ends (:meth:`~SmtpProtocol.eof`, :meth:`~SmtpProtocol.close`), and returns
the events they complete:

* :class:`Request`: a client command Zeek knows (RFC 5321 verbs, STARTTLS,
  AUTH, BDAT, ETRN, …), with its argument (for AUTH only the mechanism: the
  initial response and the later credential lines are never kept), plus the
  pseudo-commands ``.`` (end of data), ``**`` (an AUTH continuation line)
  and ``(UNKNOWN)`` (the first reply after a gap).
* :class:`Reply`: one reply line, with its code, the command it answers
  (pipelined commands are queued, RFC 2920) and whether more lines follow.
* :class:`Message`: the bytes of a mail message, when its end is known (the
  ``.`` line, the last BDAT chunk, a gap, the end of the connection).
* :class:`StartTls`: the 220 reply to STARTTLS; everything after is TLS and
  is ignored.
* :class:`Weird`: an anomaly, named as Zeek names it
  (``smtp_invalid_bdat_command``, ``smtp_huge_bdat_chunk``,
  ``smtp_missing_bdat_last_chunk``, ``smtp_nested_mail_transaction``,
  ``smtp_unmatched_end_of_data``, ``smtp_excessive_pending_cmds``).

Events are returned as objects by default; a *sink* given to the constructor
(an object with the methods of :class:`EventSink`) receives them as calls
instead, with bytes for arguments and reply texts (a message's data as bytes
or as a bytearray the sink may keep, no longer used by the protocol) and
command codes rather than names: this is how :class:`~.session.SmtpSession`
is driven, without an object per event.

Semantics follow Zeek's ``SMTP_Analyzer`` (``src/analyzer/protocol/smtp``):
lines end at LF and lose their trailing CRs; the state changes on each
(command, reply) pair exactly as its ``UpdateState``; DATA switches to data
mode as soon as the command is sent (the reply may come later, pipelining);
the message ends at a line that is only ``.``; a leading dot of other lines is
removed (dot-unstuffing, done by :mod:`.message`); BDAT takes exactly the
announced number of bytes (RFC 3030), the LAST chunk ends the message; a
size that is not a number, or negative, gives ``smtp_invalid_bdat_command``
and one beyond 2**63-1 ``smtp_huge_bdat_chunk``, and then no chunk is taken
(as Zeek); after a gap the client's lines are ignored until the next reply.
Reply lines whose code is not 100-599 are protocol violations; more than
:attr:`SmtpProtocol.max_violations` of them in the first 10 KiB turn the
analyzer off (Zeek's DPD).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from .message import text

# Zeek's SMTP_cmd.def, in order.
WORDS = ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "QUIT", "RSET", "VRFY", "EXPN", "HELP", "NOOP", "STARTTLS",
         "X_ANONYMOUSTLS", "CONN_ESTABLISHMENT", "END_OF_DATA", "SEND", "SOML", "SAML", "TURN", "BDAT",
         "ETRN", "AUTH", "AUTH_ANSWER")
(EHLO, HELO, MAIL, RCPT, DATA, QUIT, RSET, VRFY, EXPN, HELP, NOOP, STARTTLS, X_ANONYMOUSTLS,
 CONN_ESTABLISHMENT, END_OF_DATA, SEND, SOML, SAML, TURN, BDAT, ETRN, AUTH, AUTH_ANSWER) = range(len(WORDS))
_PARSE = {w.encode(): i for i, w in enumerate(WORDS)}
_PARSE[b"X-ANONYMOUSTLS"] = X_ANONYMOUSTLS

# Zeek's SMTP_State.
(CONNECTED, INITIATED, NOT_AVAILABLE, READY, MAIL_OK, RCPT_OK, IN_DATA, AFTER_DATA, IN_AUTH, IN_TLS, QUIT_STATE,
 AFTER_GAP, GAP_RECOVERY, IN_BDAT) = range(14)

INT64_MAX = (1 << 63) - 1
MAX_PENDING = 1000
MAX_LINE = 1 << 20            # a line longer than this is processed in pieces
DEFAULT_MAX_MESSAGE_BYTES = 32 << 20
_WS = b" \t\r\n\x0b\x0c"
_DIGITS = frozenset(b"0123456789")
# Reply codes by their three bytes: RFC 5321 section 4.2 codes are three digits; Zeek takes 100-599.
_REPLY_CODES = {b"%d" % code: code for code in range(100, 600)}
_NO_EVENTS: list = []              # returned (never filled) when a sink takes the events
# (command, reply) pairs on which UpdateState changes nothing (the usual successful replies), as
# command * 1000 + reply (an int hashes faster than a tuple; replies are below 1000).
_REPLY_NOOPS = frozenset(cmd * 1000 + reply for cmd, reply in (
    (CONN_ESTABLISHMENT, 220), (EHLO, 250), (HELO, 250), (MAIL, 250), (RCPT, 250), (RCPT, 251), (DATA, 354),
    (BDAT, 250), (QUIT, 221), (RSET, 250), (VRFY, 250), (NOOP, 250), (HELP, 214), (ETRN, 250)))


class Request(NamedTuple):
    code: int           # command code (WORDS index; -1 for "(UNKNOWN)")
    command: str        # as sent (".", "**", "(UNKNOWN)" for the pseudo-commands)
    arg: str
    ts: int
    frame: int


class Reply(NamedTuple):
    code: int
    command: str        # Zeek's name of the command answered: ">" (greeting), ".", "(UNKNOWN)", or a verb
    msg: str
    cont: bool          # more lines of this reply follow
    first: bool         # first line of the reply
    ts: int
    frame: int


class Message(NamedTuple):
    data: bytes
    stuffed: bool       # DATA content (dot-stuffed), not BDAT
    frames: list        # [(offset in data, frame)] where each piece started
    truncated: int      # bytes dropped beyond max_message_bytes
    ts: int
    frame: int
    dots: list | None = None   # offsets in data of the stuffing dots (lines starting with "."), if known


class StartTls(NamedTuple):
    ts: int
    frame: int


class Weird(NamedTuple):
    name: str
    addl: str | None
    frame: int


def command_name(code: int) -> str:
    """Zeek's name of a command code in ``smtp_reply`` (``>`` for the greeting, ``.`` for end of data)."""
    if code == CONN_ESTABLISHMENT:
        return ">"
    if code == END_OF_DATA:
        return "."
    return WORDS[code] if code >= 0 else "(UNKNOWN)"


class EventSink:
    """Collects the events as objects (the default sink); :attr:`events` is emptied by each input call."""

    def __init__(self):
        self.events: list = []

    def request(self, code: int, command: bytes, arg: bytes, ts: int, frame: int) -> None:
        self.events.append(Request(code, command.decode("ascii", "replace"), text(arg), ts, frame))

    def reply(self, code: int, command: int, msg: bytes, cont: bool, first: bool, ts: int, frame: int) -> None:
        self.events.append(Reply(code, command_name(command), text(msg), cont, first, ts, frame))

    def message(self, data: bytes | bytearray, stuffed: bool, frames: list, truncated: int, ts: int, frame: int,
                dots: list | None = None) -> None:
        self.events.append(Message(bytes(data), stuffed, frames, truncated, ts, frame, dots))

    def starttls(self, ts: int, frame: int) -> None:
        self.events.append(StartTls(ts, frame))

    def weird(self, name: str, addl, frame: int) -> None:
        self.events.append(Weird(name, addl, frame))


def parse_bdat_arg(arg: bytes) -> tuple[int, bool, str | None]:
    """(chunk size, LAST, error) of a BDAT argument, Zeek's ``parse_bdat_arg``."""
    if not 0 < len(arg) <= 25:
        return 0, False, "BDAT argument bad length"
    if arg[0] not in _DIGITS:
        return 0, False, "BDAT not followed by a valid chunk-size"
    end = 1
    while end < len(arg) and arg[end] in _DIGITS:
        end += 1
    if end < len(arg) and arg[end] != 32 and arg[end] != 0:
        return 0, False, "BDAT chunk-size not valid"
    size = int(arg[:end])
    if size > 0xFFFFFFFFFFFFFFFF:
        return 0, False, "BDAT chunk-size too large"
    if end < len(arg):
        last = arg[end:end + 5].upper() == b" LAST"
        if not last or end + 5 != len(arg):
            return size, last, "BDAT chunk-size followed by junk"
        return size, True, None
    return size, False, None


class SmtpProtocol:
    """One SMTP connection's analyzer (see the module docstring).

    Args:
        sink: receives the events as calls (see :class:`EventSink`); by
            default they are collected and returned by each input method.
        max_message_bytes: message bytes kept per message; the rest is
            counted in :attr:`Message.truncated` and dropped (the end of
            the message is still found).
        max_violations: invalid reply lines tolerated before the analyzer
            turns itself off (only within the first ``violation_window``
            bytes of the connection, as Zeek's DPD).

    Attributes:
        state: Zeek's ``SMTP_State`` number.
        disabled: the analyzer gave up (violations, or :meth:`disable`).
        extensions: EHLO keywords of the server's last 250 reply to EHLO.
    """

    __slots__ = ("_bdat_last", "_bdat_left", "_buf", "_collect", "_dots", "_msg", "_msg_dropped", "_msg_frames",
                 "_msg_kept", "_msg_stuffed", "_scan", "_skip", "bdat", "disabled", "extensions", "first_cmd",
                 "last_replied", "mail", "max_message_bytes", "max_violations", "pending", "pending_reply",
                 "seen_bytes", "sender_side", "sink", "state", "violation_window", "violations")

    def __init__(self, sink=None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_violations: int = 5,
                 violation_window: int = 10240):
        self._collect = sink is None
        self.sink = EventSink() if sink is None else sink
        self.max_message_bytes = max_message_bytes
        self.max_violations = max_violations
        self.violation_window = violation_window
        self.state = INITIATED            # Zeek's constructor: UpdateState(CONN_ESTABLISHMENT, 0)
        self.first_cmd = CONN_ESTABLISHMENT
        self.pending: deque = deque()
        self.last_replied = -1
        self.pending_reply = 0
        self.sender_side = 1              # the client's side (1: originator); TURN swaps it
        self.disabled = False             # also set in IN_TLS: nothing more is read
        self.violations = 0
        self.seen_bytes = 0
        self.extensions: list[str] | None = None
        self._buf = [b"", b""]            # partial line per side (index 1: originator)
        self._skip = [False, False]       # skip to the next line end (after a gap)
        self.mail = False
        self._msg = bytearray()
        self._msg_frames: list = []
        self._msg_kept: bytes | None = None
        self._msg_dropped = 0
        self._msg_stuffed = True
        self._scan = 0
        self._dots: list = []
        self.bdat = False
        self._bdat_left = 0
        self._bdat_last = False

    def _events(self):
        if self._collect:
            events = self.sink.events
            self.sink.events = []
            return events
        return _NO_EVENTS

    # -- input ---------------------------------------------------------------------------------

    def receive(self, is_orig: bool, data: bytes, ts: int = 0, frame: int = -1) -> list:
        """Bytes of one direction, in stream order; returns the events they complete."""
        self.deliver_stream(is_orig, data, ts, frame)
        return self._events()

    def deliver_stream(self, is_orig: bool, data: bytes, ts: int = 0, frame: int = -1) -> None:
        """:meth:`receive` for a sink (Zeek's ``DeliverStream``): the events go to the sink only.

        ``data``: bytes of one direction in stream order; ``ts``: ns since the
        epoch; ``frame``: the frame that carried them.  Never raises on bad input.
        """
        side = 1 if is_orig else 0
        if self.state == IN_DATA and self.mail and side == self.sender_side and data:
            # the bulk of a message: straight to the message buffer (no partial line is held in DATA)
            self.seen_bytes += len(data)
            end = self._data(data, 0, ts, frame)
            if end < len(data):
                self._client_data(data, side, ts, frame, end)
            return
        if self.disabled or not data:
            return
        self.seen_bytes += len(data)
        buf = self._buf
        if buf[side]:
            data = buf[side] + data
            buf[side] = b""
        if self._skip[side]:
            nl = data.find(b"\n")
            if nl < 0:
                return
            data = data[nl + 1:]
            self._skip[side] = False
        if side == self.sender_side:
            if data[-1:] == b"\n" and data.find(b"\n") == len(data) - 1 and not self._bdat_left \
                    and self.state != IN_DATA:
                # one whole command line (the usual command segment): no loop over lines
                line = data[:-1]
                if line[-1:] == b"\r":
                    line = line.rstrip(b"\r")
                self._client_line(line, ts, frame)
                return
            self._client_data(data, side, ts, frame)
            return
        server_line = self._server_line
        nl = data.find(b"\n")
        if 0 <= nl == len(data) - 1:
            # one whole line (the usual reply segment): no list of lines
            line = data[:-1]
            if line[-1:] == b"\r":
                line = line.rstrip(b"\r")
            server_line(line, ts, frame)
            return
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line[-1:] == b"\r":
                line = line.rstrip(b"\r")
            server_line(line, ts, frame)
            if self.disabled:
                return
        if rest:
            if len(rest) <= MAX_LINE:
                buf[side] = rest
            else:
                server_line(rest, ts, frame)

    def _client_data(self, data: bytes, side: int, ts: int, frame: int, pos: int = 0) -> None:
        n = len(data)
        while pos < n:
            if self.state == IN_DATA:
                if not self.mail:
                    self._begin_data(ts, frame)
                pos = self._data(data, pos, ts, frame)
                continue
            if self._bdat_left:
                take = min(self._bdat_left, n - pos)
                self._msg_add(data[pos:pos + take] if pos or take < n else data, frame)
                self._bdat_left -= take
                pos += take
                if not self._bdat_left:
                    self._bdat_chunk_done(ts, frame)
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                if n - pos <= MAX_LINE:
                    self._buf[side] = data[pos:] if pos else data
                    return
                nl = n
            line = data[pos:nl]
            pos = nl + 1
            if line[-1:] == b"\r":
                line = line.rstrip(b"\r")
            self._client_line(line, ts, frame)
            if self.disabled:
                return

    def gap(self, is_orig: bool, length: int, ts: int = 0, frame: int = -1) -> list:
        """``length`` bytes of one direction were not captured (Zeek's ``Undelivered``)."""
        if length <= 0 or self.disabled:
            return self._events()
        side = 1 if is_orig else 0
        if self.state in (IN_DATA, IN_BDAT) or self.bdat:
            self._end_data(ts, frame)
        self._reset_bdat()
        self._buf[side] = b""
        self._skip[side] = True
        self.pending.clear()
        self.first_cmd = self.last_replied = -1
        self.pending_reply = 0
        self.state = AFTER_GAP
        return self._events()

    def eof(self, is_orig: bool, ts: int = 0, frame: int = -1) -> list:
        """One direction ended: its last line, if unterminated, is processed (Zeek's ContentLine at EOF)."""
        side = 1 if is_orig else 0
        if self._buf[side] and not self.disabled:
            rest, self._buf[side] = self._buf[side], b""
            return self.receive(is_orig, rest + b"\n", ts, frame)
        return self._events()

    def close(self, ts: int = 0, frame: int = -1) -> list:
        """The connection is over: both directions' last lines, then an unfinished message."""
        collected = self.eof(True, ts, frame) + self.eof(False, ts, frame)
        if self.mail:
            self._end_data(ts, frame)
        return collected + self._events()

    def disable(self) -> list:
        """Stop analysing (Zeek's ``disable_analyzer``): a message under way ends here."""
        self._disable()
        return self._events()

    def _disable(self) -> None:
        if self.mail:
            self._emit_message(0, -1)
        self.disabled = True
        self._buf = [b"", b""]
        self._msg = bytearray()

    # -- client --------------------------------------------------------------------------------

    def _client_line(self, line: bytes, ts: int, frame: int) -> None:
        state = self.state
        if state == AFTER_GAP:
            return
        if state == IN_AUTH:
            self._new_cmd(AUTH_ANSWER)
            self.sink.request(AUTH_ANSWER, b"**", b"", ts, frame)     # the credentials are not passed on
            self._update(AUTH_ANSWER, 0, ts, frame)
            return
        sp = line.find(b" ")
        if sp < 0:
            word, arg = line, b""
        else:
            word, arg = line[:sp], line[sp + 1:].lstrip(_WS)
        if not word.isalpha() and (b"\t" in word or b"\x00" in word or b"\x0b" in word or b"\x0c" in word
                                   or b"\r" in word):
            n = len(word)
            cut = 0
            while cut < n and word[cut] not in _WS and word[cut] != 0:
                cut += 1
            arg = line[cut:].lstrip(_WS)
            word = line[:cut]
        code = _PARSE.get(word)                               # commands are mostly sent in upper case
        if code is None:
            code = _PARSE.get(word.upper(), -1)
            if code < 0:
                return                                        # "unknown command": no event
        if self.first_cmd < 0:                                # _new_cmd's usual case, inline
            self.first_cmd = code
        else:
            self._new_cmd(code)
        if code == END_OF_DATA:
            self._update(code, 0, ts, frame)
        if word or arg:
            if code == AUTH:
                arg = arg.split(None, 1)[0] if arg.strip() else b""   # the mechanism, never credentials
            self.sink.request(code, word, arg, ts, frame)
        if code == BDAT:
            if self._bdat_arg(arg, ts, frame):
                self._update(code, 0, ts, frame)
            return
        if self.bdat:
            self.sink.weird("smtp_missing_bdat_last_chunk", None, frame)
            self._end_data(ts, frame)
            self._reset_bdat()
        if code != END_OF_DATA:
            self._update(code, 0, ts, frame)

    def _new_cmd(self, code: int) -> None:
        if self.first_cmd < 0:
            self.first_cmd = code
        else:
            if len(self.pending) == MAX_PENDING:
                self.sink.weird("smtp_excessive_pending_cmds", None, -1)
                self.pending.clear()
            self.pending.append(code)

    def _bdat_arg(self, arg: bytes, ts: int, frame: int) -> bool:
        size, last, error = parse_bdat_arg(arg)
        if error is not None:
            self.sink.weird("smtp_invalid_bdat_command", error, frame)
            return False
        if size > INT64_MAX:
            self.sink.weird("smtp_huge_bdat_chunk", str(size), frame)
            return False
        if not self.bdat:
            self._begin_data(ts, frame, IN_BDAT)
            self._msg_stuffed = False
            self.bdat = True
        self._bdat_left = size
        self._bdat_last = last
        if size == 0:
            self._bdat_chunk_done(ts, frame)
        return True

    def _bdat_chunk_done(self, ts: int, frame: int) -> None:
        if self._bdat_last:
            self._end_data(ts, frame)
            self._reset_bdat()

    def _reset_bdat(self) -> None:
        self.bdat = False
        self._bdat_left = 0
        self._bdat_last = False

    # -- message data --------------------------------------------------------------------------

    def _begin_data(self, ts: int, frame: int, state: int = IN_DATA) -> None:
        self.state = state
        if self.mail:
            self.sink.weird("smtp_nested_mail_transaction", None, frame)
            self._emit_message(ts, frame)
        self.mail = True
        self._msg = bytearray(b"\n")      # a virtual line end: the first line starts after it
        self._msg_frames = []
        self._msg_kept = None
        self._msg_dropped = 0
        self._msg_stuffed = True
        self._dots = []
        self._scan = 0

    def _end_data(self, ts: int, frame: int) -> None:
        if not self.mail:
            self.sink.weird("smtp_unmatched_end_of_data", None, frame)
            return
        self._emit_message(ts, frame)

    def _emit_message(self, ts: int, frame: int) -> None:
        self.mail = False
        dropped = self._msg_dropped
        if self._msg_kept is not None:
            data = self._msg_kept
        else:
            data = self._msg
            del data[:1]                  # the virtual line end (O(1) at the front of a bytearray)
            # The buffer itself goes to the sink (a new one is made below): the session copies it
            # once, unstuffing it at the same time (parse_message), instead of bytes() and then a join.
            if len(data) > self.max_message_bytes:
                dropped = len(data) - self.max_message_bytes
                data = data[:self.max_message_bytes]
        frames = self._msg_frames
        dots = self._dots if self._msg_stuffed else None
        self._msg = bytearray()
        self._msg_frames = []
        self._msg_kept = None
        self._dots = []
        self.sink.message(data, self._msg_stuffed, frames, dropped, ts, frame, dots)

    def _msg_add(self, piece: bytes, frame: int) -> None:
        """Add BDAT chunk bytes (no end marker to look for)."""
        if self._msg_kept is None:
            self._msg_frames.append((len(self._msg) - 1, frame))
            self._msg += piece
            if len(self._msg) - 1 > self.max_message_bytes:
                self._freeze()
                self._msg = bytearray(b"\n")
        else:
            self._msg_dropped += len(piece)

    def _freeze(self) -> None:
        """Keep the first max_message_bytes; the rest of the message is only counted."""
        msg = self._msg
        cap = self.max_message_bytes
        self._msg_kept = bytes(msg[1:cap + 1])
        self._msg_dropped = len(msg) - 1 - cap

    def _data(self, data: bytes, pos: int, ts: int, frame: int) -> int:
        """Add DATA content from ``data[pos:]``; at the ``.`` line, end the message. Returns the new position."""
        msg = self._msg
        base = len(msg)
        msg += data[pos:] if pos else data
        if self._msg_kept is None:
            self._msg_frames.append((base - 1, frame))
        else:
            self._msg_dropped += len(msg) - base
        scan = self._scan
        find = msg.find
        size = len(msg)
        while True:
            i = find(b"\n.", scan)
            if i < 0:
                self._scan = size - 1
                if size > self.max_message_bytes:
                    self._bound(size - 1)
                return len(data)
            j = i + 2
            while j < size and msg[j] == 13:
                j += 1
            if j == size:
                self._scan = i
                if size > self.max_message_bytes:
                    self._bound(i)
                return len(data)
            if msg[j] == 10:
                break
            if self._msg_kept is None:
                self._dots.append(i)              # a stuffed line: its first dot is at offset i of the message
            scan = i + 1
        consumed = j + 1 - base                   # bytes of data[pos:] up to the end of the "." line
        if self._msg_kept is None:
            del msg[i + 1:]
        else:
            self._msg_dropped = max(0, self._msg_dropped - (size - (i + 1)))
        self._new_cmd(END_OF_DATA)
        self._update(END_OF_DATA, 0, ts, frame)
        self.sink.request(END_OF_DATA, b".", b"", ts, frame)
        return pos + consumed

    def _bound(self, keep_from: int) -> None:
        """Over max_message_bytes: keep the head once, then hold only the bytes from ``keep_from`` on."""
        msg = self._msg
        if self._msg_kept is None:
            if len(msg) - 1 <= self.max_message_bytes:
                return
            self._freeze()
        if keep_from > 0:
            del msg[:keep_from]
            self._scan -= keep_from

    # -- server --------------------------------------------------------------------------------

    def _server_line(self, line: bytes, ts: int, frame: int) -> None:
        code = _REPLY_CODES.get(line[:3], -1)
        if code < 0:
            self.violations += 1
            if self.violations > self.max_violations and self.seen_bytes <= self.violation_window:
                self._disable()
            return
        first = code != self.pending_reply            # (0: no reply pending, never a code)
        if first:                                     # Zeek's NewReply
            if self.state == AFTER_GAP:
                self.state = GAP_RECOVERY
                self.sink.request(-1, b"(UNKNOWN)", b"", ts, frame)
            cmd = self.first_cmd
            self.last_replied = cmd
            pending = self.pending
            self.first_cmd = pending.popleft() if pending else -1
            if cmd * 1000 + code not in _REPLY_NOOPS:
                self._update(cmd, code, ts, frame)
        cont = line[3:4] == b"-"                     # more lines follow
        self.pending_reply = code if cont else 0
        msg = (line[4:] if cont else line[3:]).lstrip(_WS)
        last = self.last_replied
        self.sink.reply(code, last, msg, cont, first, ts, frame)
        if last == EHLO and code == 250:
            if first:
                self.extensions = []
            elif self.extensions is not None:
                word = msg.split(None, 1)
                if word:
                    self.extensions.append(word[0].decode("ascii", "replace").upper())

    # -- Zeek's UpdateState --------------------------------------------------------------------

    def _update(self, cmd: int, reply: int, ts: int, frame: int) -> None:
        st = self.state
        if cmd == CONN_ESTABLISHMENT:
            if reply == 0:
                self.state = INITIATED
            elif reply in (421, 554):
                self.state = NOT_AVAILABLE
        elif cmd == EHLO or cmd == HELO:
            if reply == 0:
                self.state = READY
            elif reply in (421, 500, 501, 504, 550):
                self.state = INITIATED
        elif cmd in (MAIL, SEND, SOML, SAML):
            if reply == 0:
                self.state = MAIL_OK
            elif reply in (421, 451, 452, 500, 501, 503, 550, 552, 553) and st != IN_DATA:
                self.state = READY
        elif cmd == RCPT:
            if reply == 0:
                self.state = RCPT_OK
        elif cmd == DATA:
            if reply == 0:
                self._begin_data(ts, frame)
            elif reply != 354:
                if st == IN_DATA:
                    self._end_data(ts, frame)
                self.state = QUIT_STATE if reply == 421 else READY
        elif cmd == BDAT:
            if reply == 0:
                self.state = IN_BDAT
        elif cmd == END_OF_DATA:
            if reply == 0:
                self._end_data(ts, frame)
                self.state = AFTER_DATA
            else:
                self.state = READY
        elif cmd == RSET:
            if reply == 0:
                self.state = READY
        elif cmd == QUIT:
            if reply == 0:
                self.state = QUIT_STATE
        elif cmd == AUTH or cmd == AUTH_ANSWER:
            if reply == 334:
                self.state = IN_AUTH
            elif reply != 0:
                self.state = INITIATED
        elif cmd == TURN:
            if reply == 250:
                self.sender_side = 1 - self.sender_side
                self.state = CONNECTED
        elif cmd == STARTTLS or cmd == X_ANONYMOUSTLS:
            if reply == 220:
                self.state = IN_TLS
                self.disabled = True
                self._buf = [b"", b""]
                self.sink.starttls(ts, frame)
        elif st == GAP_RECOVERY and reply == 354:
            self._begin_data(ts, frame)
