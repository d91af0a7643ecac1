"""Zeek's ``base/protocols/smtp/main.zeek`` over the events of one connection: smtp.log records.

:class:`SmtpSession` is the sink of an :class:`~.protocol.SmtpProtocol` (it
receives its events as calls) and keeps Zeek's per-connection state (``SMTP::State``) and the open record
(``SMTP::Info``):

* A record opens at the first SMTP event (``ts`` is then), and again each
  time one is written; ``trans_depth`` is the number of messages finished
  (replies to ``.`` and to the LAST BDAT) plus one.
* It is written when the reply to ``.`` (any reply, any line of it) or the
  last line of the reply to ``BDAT … LAST`` arrives, when MAIL FROM comes
  while it holds client activity (RCPT, MAIL, STARTTLS: the previous
  transaction was not acknowledged, e.g. RSET or a one-sided capture), and
  at the end of the connection if it holds client activity.
* ``last_reply`` is the last reply line before it is written; ``helo``
  carries over from the last HELO/EHLO of the connection.
* Header fields come from the first entity of the message only (Zeek stops
  at the second ``mime_begin_entity`` of the record); ``path`` starts with
  the responder and the originator and adds the address of each Received
  header (the second wrapped IP of the header, else the first).
* Weirds: ``smtp_mail_transaction_invalid`` (``rcpt to missing mail from``,
  ``data missing rcpt to``), after 25 of them
  ``smtp_excessive_invalid_mail_transactions`` and the analyzer is turned
  off; ``smtp_too_many_rcptto_addresses``/``_to_``/``_cc_addresses`` and
  ``smtp_max_path_length_exceeded`` past 1,000 entries.  Like Zeek's weird
  framework, a name is reported once per connection.
"""

from __future__ import annotations

import re

from . import protocol as P
from .message import decode_words, parse_message, text
from .protocol import AUTH, AUTH_ANSWER, BDAT, DATA, EHLO, END_OF_DATA, HELO, MAIL, RCPT
from .text import (
    extract_email_addrs,
    extract_ip_addresses,
    find_address_in_smtp_header,
    rcpt_addresses,
    split_mime_email_addresses,
)

MAX_INVALID_TRANSACTIONS = 25
MAX_ADDRESSES = 1000

# The header fields main.zeek's smtp_header/mime_one_header handlers (and software.zeek) look at.
_SMTP_HEADERS = frozenset({"MESSAGE-ID", "RECEIVED", "IN-REPLY-TO", "SUBJECT", "FROM", "REPLY-TO", "DATE", "TO", "CC",
                           "X-ORIGINATING-IP", "X-MAILER", "USER-AGENT", "X-USER-AGENT"})

# policy/protocols/smtp/software.zeek's webmail_user_agents
WEBMAIL_USER_AGENTS = re.compile(r"^iPlanet Messenger|^Sun Java\(tm\) System Messenger Express|\(IMP\)|"
                                 r"^SquirrelMail|^NeoMail|ZimbraWebClient")


class Record:
    """One ``SMTP::Info`` (the logged fields and the script's bookkeeping)."""

    __slots__ = (
        "attachments",
        "auth_mechanism",
        "cc",
        "cmd_frame",
        "date",
        "entity_count",
        "extensions",
        "first_received",
        "frame",
        "from_",
        "has_client_activity",
        "helo",
        "in_reply_to",
        "is_webmail",
        "last_reply",
        "mailfrom",
        "msg_id",
        "path",
        "process_received_from",
        "process_smtp_headers",
        "rcptto",
        "reply_to",
        "second_received",
        "subject",
        "tls",
        "to",
        "trans_depth",
        "ts",
        "user_agent",
        "x_originating_ip",
    )

    def __init__(self, ts: int, frame: int, trans_depth: int, helo, path: list):
        self.ts = ts
        self.frame = frame
        self.cmd_frame = -1
        self.trans_depth = trans_depth
        self.helo = helo
        self.mailfrom = self.rcptto = self.date = self.from_ = self.to = self.cc = None
        self.reply_to = self.msg_id = self.in_reply_to = self.subject = self.x_originating_ip = None
        self.first_received = self.second_received = self.last_reply = self.user_agent = None
        self.path = path
        self.tls = False
        self.process_received_from = True
        self.has_client_activity = False
        self.process_smtp_headers = True
        self.entity_count = 0
        self.is_webmail = False
        self.attachments: list = []
        self.auth_mechanism = None
        self.extensions = None


class SmtpSession:
    """Records of one connection (see the module docstring).

    Args:
        orig_h, resp_h: the endpoints' addresses (``path`` starts with them).
        decode_headers: decode RFC 2047 encoded words in from, to, cc,
            reply_to and subject (with the :mod:`email` package); Zeek keeps
            them raw (the default).
        extract: called with ``(part, ts, frame, mime_type)`` for each message
            part (:class:`~.message.Part`, whole data); returns the path the
            data was saved to (or None).
        sniff: ``sniff(data) -> mime type or None`` for each part.
        keep_data: hand parts their whole data (needed by ``extract``).

    Attributes:
        records: the records written, in order.
        weirds: ``(frame, name, addl)``, once per name.
        confirmed: the first command was seen (Zeek's analyzer confirmation).
    """

    __slots__ = ("_weird_names", "auth_mechanism", "bdat_last", "confirmed", "decode_headers", "extract", "helo",
                 "info", "invalid", "mail_from_seen", "messages", "orig_h", "protocol", "rcpt_to_seen", "records",
                 "resp_h", "sniff", "weirds")

    def __init__(self, orig_h: str, resp_h: str, decode_headers: bool = False, extract=None, sniff=None,
                 protocol: P.SmtpProtocol | None = None):
        # ``protocol`` is the analyzer feeding this session (its EHLO extensions are copied, and it
        # is turned off after too many invalid transactions); it may be set after construction.
        self.orig_h = orig_h
        self.resp_h = resp_h
        self.decode_headers = decode_headers
        self.extract = extract
        self.sniff = sniff
        self.protocol = protocol
        self.helo = None
        self.messages = 0
        self.mail_from_seen = False
        self.rcpt_to_seen = False
        self.invalid = 0
        self.bdat_last = False
        self.confirmed = False
        self.auth_mechanism = None
        self.info: Record | None = None
        self.records: list[Record] = []
        self.weirds: list = []
        self._weird_names: set = set()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _new(self, ts: int, frame: int) -> Record:
        rec = Record(ts, frame, self.messages + 1, self.helo, [self.resp_h, self.orig_h])
        rec.auth_mechanism = self.auth_mechanism
        if self.protocol is not None:
            rec.extensions = self.protocol.extensions
        self.info = rec
        return rec

    def _session(self, ts: int, frame: int) -> Record:
        return self.info if self.info is not None else self._new(ts, frame)

    def _write(self, rec: Record) -> None:
        """Zeek's ``Log::write`` (``smtp_message`` when the record has client activity)."""
        if self.protocol is not None and rec.extensions is None:
            rec.extensions = self.protocol.extensions
        self.records.append(rec)

    def weird(self, name: str, addl, frame: int) -> None:
        if name not in self._weird_names:
            self._weird_names.add(name)
            self.weirds.append((frame, name, addl))

    def _invalid(self, addl: str, frame: int) -> None:
        self.weird("smtp_mail_transaction_invalid", addl, frame)
        self.invalid += 1
        if self.invalid > MAX_INVALID_TRANSACTIONS and self.confirmed and self.protocol is not None \
                and not self.protocol.disabled:
            self.weird("smtp_excessive_invalid_mail_transactions",
                       f"{self.invalid}/{MAX_INVALID_TRANSACTIONS}", frame)
            self.protocol._disable()

    # -- the protocol's events (SmtpProtocol sink interface) ------------------------------------

    def request(self, code: int, command: bytes, arg: bytes, ts: int, frame: int) -> None:
        """``smtp_request``: ``command`` and ``arg`` as sent (bytes)."""
        self.confirmed = True
        rec = self.info
        if rec is None:
            rec = self._new(ts, frame)
        if rec.cmd_frame < 0 and code >= 0 and code != AUTH_ANSWER:
            rec.cmd_frame = frame
        if code == RCPT:
            if arg[:3].upper() != b"TO:":
                return
            if rec.rcptto is None:
                rec.rcptto = {}
            rcptto = rec.rcptto
            for addr in rcpt_addresses(text(arg)):
                if len(rcptto) >= MAX_ADDRESSES:
                    self.weird("smtp_too_many_rcptto_addresses", None, frame)
                    break
                rcptto[addr] = None
            rec.has_client_activity = True
            self.rcpt_to_seen = True
            if not self.mail_from_seen:
                self._invalid("rcpt to missing mail from", frame)
        elif code == MAIL:
            if arg[:5].upper() != b"FROM:":
                return
            if rec.has_client_activity:
                self._write(rec)
                rec = self._new(ts, frame)
                rec.cmd_frame = frame
            addrs = extract_email_addrs(text(arg))
            if addrs and addrs[0]:
                rec.mailfrom = addrs[0]
            rec.has_client_activity = True
            self.mail_from_seen = True
            self.rcpt_to_seen = False
        elif code == EHLO or code == HELO:
            self.helo = rec.helo = text(arg)
        elif code == DATA or code == BDAT:
            if not self.rcpt_to_seen:
                self._invalid("data missing rcpt to", frame)
            if code == BDAT and arg.endswith(b" LAST"):
                self.mail_from_seen = self.rcpt_to_seen = False
                self.bdat_last = True
        elif code == END_OF_DATA:
            self.mail_from_seen = self.rcpt_to_seen = False
        elif code == AUTH:
            self.auth_mechanism = rec.auth_mechanism = text(arg).upper() or None

    def reply(self, code: int, command: int, msg: bytes, cont: bool, first: bool, ts: int, frame: int) -> None:
        """``smtp_reply`` (one line): ``command`` is the code of the command answered."""
        rec = self.info
        if rec is None:
            rec = self._new(ts, frame)
        rec.last_reply = (code, msg)
        if command == END_OF_DATA or (command == BDAT and not cont and self.bdat_last):
            self.messages += 1
            self.bdat_last = False
            if rec.has_client_activity:
                self._write(rec)
            self._new(ts, frame)

    def starttls(self, ts: int, frame: int) -> None:
        if self.info is not None:
            self.info.tls = True
            self.info.has_client_activity = True

    def message(self, data: bytes | bytearray, stuffed: bool, frames: list, truncated: int, ts: int, frame: int,
                dots: list | None = None) -> None:
        """The MIME events of one message, applied to the open record."""
        rec = self.info
        if rec is None:
            return
        parsed = parse_message(data, stuffed, keep_data=self.extract is not None, dots=dots)
        for name, addl, offset in parsed.weirds:
            self.weird(name, addl, _frame_at(frames, offset, frame))
        rec.entity_count += 1
        if rec.entity_count > 1:
            rec.process_smtp_headers = False
        for name, value in parsed.headers:
            if name in _SMTP_HEADERS:
                self._header(rec, name, value, frame)
        if parsed.entities > 1:
            rec.entity_count += parsed.entities - 1
            rec.process_smtp_headers = False
        if rec.user_agent is not None and parsed.sub_user_agents and WEBMAIL_USER_AGENTS.search(rec.user_agent):
            rec.is_webmail = True
        for part in parsed.parts:
            mime_type = None
            if self.sniff is not None:
                try:
                    mime_type = self.sniff(part.data)
                except Exception:  # noqa: BLE001 - a sniffer failure must not stop the analysis
                    mime_type = None
            path = self.extract(part, ts, frame, mime_type) if self.extract is not None else None
            rec.attachments.append({"filename": part.filename, "content_type": part.content_type,
                                    "mime_type": mime_type, "size": part.size, "path": path})

    def _header(self, rec: Record, name: str, value: str, frame: int) -> None:
        if rec.process_smtp_headers:
            if name == "MESSAGE-ID":
                rec.msg_id = value
            elif name == "RECEIVED":
                if rec.first_received is not None:
                    rec.second_received = rec.first_received
                rec.first_received = value
            elif name == "IN-REPLY-TO":
                rec.in_reply_to = value
            elif name == "SUBJECT":
                rec.subject = decode_words(value) if self.decode_headers else value
            elif name == "FROM":
                rec.from_ = decode_words(value) if self.decode_headers else value
            elif name == "REPLY-TO":
                rec.reply_to = decode_words(value) if self.decode_headers else value
            elif name == "DATE":
                rec.date = value
            elif name == "TO" or name == "CC":
                field = "to" if name == "TO" else "cc"
                current = getattr(rec, field)
                if current is None:
                    current = {}
                    setattr(rec, field, current)
                for part in split_mime_email_addresses(value):
                    if self.decode_headers:
                        part = decode_words(part)
                    if len(current) >= MAX_ADDRESSES:
                        self.weird(f"smtp_too_many_{field}_addresses", None, frame)
                        break
                    current[part] = None
            elif name == "X-ORIGINATING-IP":
                addresses = extract_ip_addresses(value)
                if addresses:
                    rec.x_originating_ip = addresses[0]
            elif name in ("X-MAILER", "USER-AGENT", "X-USER-AGENT"):
                rec.user_agent = value
        if name == "USER-AGENT" and rec.user_agent is not None and WEBMAIL_USER_AGENTS.search(rec.user_agent):
            rec.is_webmail = True
        if name == "RECEIVED" and rec.process_received_from and rec.process_smtp_headers:
            ip = find_address_in_smtp_header(value)
            if ip is not None and rec.path[-1] != ip:
                if len(rec.path) >= MAX_ADDRESSES:
                    self.weird("smtp_max_path_length_exceeded", None, frame)
                else:
                    rec.path.append(ip)

    def finish(self) -> None:
        """The connection is gone: write the open record if it has client activity (``finalize_smtp``)."""
        if self.info is not None and self.info.has_client_activity:
            self._write(self.info)
        self.info = None


def reply_text(last_reply) -> str | None:
    """``last_reply`` as Zeek logs it: ``"<code> <text>"``."""
    if last_reply is None:
        return None
    code, msg = last_reply
    return f"{code} {text(msg)}"


def _frame_at(frames: list, offset: int, default: int) -> int:
    """The frame that carried byte ``offset`` of a message."""
    found = default
    for start, frame in frames:
        if start > offset:
            break
        found = frame
    return found
