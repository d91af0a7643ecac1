"""One HTTP/1.x connection, both directions, with Zeek's HTTP analyzer semantics (sans-I/O).

:class:`HttpSession` is given the reassembled bytes of each direction in the
order they were captured (:meth:`HttpSession.deliver`), gaps
(:meth:`HttpSession.gap`) and ends of stream (:meth:`HttpSession.eof`), and
produces :class:`Transaction` records (one http.log row each) and weirds.

The layers follow Zeek's (``src/analyzer/protocol/http/HTTP.cc``,
``tcp/ContentLine.cc``, ``mime/MIME.cc`` and ``base/protocols/http/main.zeek``
/ ``entities.zeek``), because http.log is defined by what they do with
imperfect traffic, not by RFC 9112 alone:

* **Content lines** (:class:`_Side`): a line ends at CRLF, a lone CR or a lone
  LF; a CR ending one delivery swallows an LF starting the next.  A body of
  known length is taken "plainly" (bytes, not lines).  A partial line at the
  end of the stream is delivered as a line.
* **Start lines**: a request line is a token method, whitespace, a URI of RFC
  3986 characters and ``HTTP/x.y`` anywhere after it (none: HTTP/0.9, which
  needs a 3-character method and a URI; the reply is then raw bytes until
  the connection closes).  A line that does not parse gives
  ``bad_HTTP_request`` (or ``bad_HTTP_request_with_version``) and stops the
  requests of the connection, unless a request was already seen on a
  keep-alive connection.  A status line is ``HTTP/x.y`` (any case: lower
  case gives ``lowercase_HTTP_keyword``), whitespace, 3 digits, reason.
* **Headers**: ``name: value`` lines, continuation lines folded in
  (``HTTP_obsolete_line_folding``), names case-insensitive; the first token of
  the value decides (``Transfer-Encoding: chunked, identity`` is chunked with
  ``HTTP_chunked_multi``).
* **Bodies**: chunked (HTTP/1.1 only; chunk sizes read like Zeek's
  ``atoi_n``: a bad or overflowing size gives ``HTTP_bad_chunk_size`` and ends
  the body; trailers are read), else Content-Length (bad, negative or
  overflowing: ``HTTP_bad_content_length``, length 0; both present:
  ``HTTP_content_length_and_chunked``, chunked wins), else until the
  connection closes for responses (and for requests after a
  ``Connection: close`` reply, or with gzip/deflate).  HEAD responses, 1xx,
  204 and 304 have none.  206 responses take their length from
  Content-Range.  gzip/x-gzip/deflate bodies are decompressed and lengths
  count decompressed bytes.  multipart bodies are split into parts (each a
  file with its own filename and MIME type).
* **Pairing** (the script layer): each request opens a record
  (``trans_depth`` = 1, 2, …); each final response fills the oldest record
  without one, so pipelined responses pair in order; 1xx responses set
  ``info_code``/``info_msg`` and wait for the final one; a response
  before any request opens its own record (weird
  ``HTTP_response_before_request`` when the request then comes).  A record
  is written when its response ends, the rest when the connection ends.
* **CONNECT** (200 reply) and **Upgrade** (101 with ``Connection: upgrade``
  and an ``Upgrade`` header) stop HTTP parsing; the bytes that follow go to
  ``on_tunnel`` when given.
* **Gaps**: a gap inside a body of known length is counted in the body and
  parsing goes on (as Zeek).  Elsewhere Zeek stops parsing that direction;
  with ``resync=True`` (the default) netsift instead skips to the next line
  that is a request line (``METHOD target HTTP/1.x`` with a known method) or
  a status line (``HTTP/1.x nnn``) and goes on from there (weird
  ``HTTP_content_gap``, netsift's, either way).

Weird names are Zeek's, except ``HTTP_content_gap``.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections import deque

from ..files import BOF_BYTES, sniff_mime

# -- constants ------------------------------------------------------------------------------------------

INT_MAX = 2**31 - 1
INFINITE = 1 << 62
MAX_LINE = 1 << 20             # a longer line is cut (weird contentline_size_exceeded)
INT64_MAX = 2**63 - 1

# request_state / reply_state
EXPECT_LINE, EXPECT_MESSAGE, EXPECT_NOTHING, EXPECT_HTTP09 = 0, 1, 3, 4
# expect_body
BODY_NOT_EXPECTED, BODY_MAYBE, BODY_EXPECTED = 0, 1, 2
# chunked transfer states
NON_CHUNKED, BEFORE_CHUNK, CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_CRLF, CHUNK_TRAILER, CHUNK_NOTHING = range(7)
# encodings
IDENTITY, GZIP, DEFLATE = 0, 1, 2
# MIME content types that Zeek parses as nested entities
CT_OTHER, CT_MULTIPART, CT_MESSAGE = 0, 1, 2

#: Zeek's HTTP::http_methods (others give unknown_HTTP_method).
HTTP_METHODS = frozenset((b"GET", b"POST", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE", b"CONNECT",
                          b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"POLL",
                          b"REPORT", b"SUBSCRIBE", b"BMOVE", b"SEARCH", b"QUERY"))
#: Zeek's HTTP::proxy_headers.
PROXY_HEADERS = frozenset((b"FORWARDED", b"X-FORWARDED-FOR", b"X-FORWARDED-FROM", b"CLIENT-IP", b"VIA",
                           b"XROXY-CONNECTION", b"PROXY-CONNECTION"))

#: Header names that change parsing state or http.log fields; others are read and dropped.
INTERESTING_HEADERS = frozenset((b"CONTENT-LENGTH", b"CONTENT-RANGE", b"TRANSFER-ENCODING", b"CONTENT-ENCODING",
                                 b"EXPECT", b"CONTENT-TYPE", b"CONTENT-DISPOSITION", b"CONNECTION", b"UPGRADE",
                                 b"REFERER", b"HOST", b"ORIGIN", b"USER-AGENT", b"AUTHORIZATION",
                                 b"PROXY-AUTHORIZATION")) | PROXY_HEADERS

#: Request headers that only fill a field of the record (HttpSession.header), by name.
_REQUEST_FIELDS = {b"HOST": "host", b"USER-AGENT": "user_agent", b"REFERER": "referrer", b"ORIGIN": "origin"}

_EOL = re.compile(rb"[\r\n]")
# RFC 2616 token characters (Zeek's is_HTTP_token_char).
_TOKEN_CHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = re.compile(_TOKEN_CHARS + rb"*")
# RFC 3986 reserved + unreserved + '%' (Zeek's URI characters).
_URI_CHARS = rb"[:/?#\[\]@!$&'()*+,;=A-Za-z0-9\-_.~%]"
_URI = re.compile(_URI_CHARS + rb"*")
# The common request line, ``METHOD SP URI SP HTTP/1.x`` (a URI not itself starting with "http/"): what
# _parse_request makes of it without a weird.  Anything else takes the general path.
_SIMPLE_REQUEST = re.compile(rb"(" + _TOKEN_CHARS + rb"+) (?![hH][tT][tT][pP]/)(" + _URI_CHARS
                             + rb"+) HTTP/1\.[0-9]\Z")
# The common status line, ``HTTP/x.y SP nnn [SP reason]``: what _reply_line makes of it.
_SIMPLE_STATUS = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([^ \t][\s\S]*))?\Z")
_WHITESPACE = re.compile(rb"[ \t]*")
_LWS = b" \t"
# MIME token characters (not tspecials, space or controls).
_MIME_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`{|}~0-9A-Za-z\x80-\xff]+")
_MIME_LWS = re.compile(rb"[ \t\r\n]*")
_BASIC = re.compile(rb"[bB][aA][sS][iI][cC] ")
_BASIC_STRIP = re.compile(rb"[bB][aA][sS][iI][cC][ \t]+")
_FILENAME = re.compile(rb"[fF][iI][lL][eE][nN][aA][mM][eE]")
_NAME_EQ = re.compile(rb"[nN][aA][mM][eE][ \t]*=")
_CD_FILENAME = re.compile(rb"""[fF][iI][lL][eE][nN][aA][mM][eE]\*?[ \t]*=[ \t]*(?:"([^"]*)"|([^;]*))""")
_BOUNDARY = re.compile(rb"""boundary[ \t]*=[ \t]*(?:"([^"]*)"|([^; \t]*))""", re.IGNORECASE)
# Resynchronisation after a gap: a request line with a known method, or a status line.
_RESYNC_REQUEST = re.compile(rb"(?:" + b"|".join(sorted(HTTP_METHODS)) + rb") +\S+ +HTTP/1\.[01]\s*\Z")
_RESYNC_REPLY = re.compile(rb"HTTP/1\.[01] +[0-9]{3}(?: |\Z)")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = re.compile(rb"[0-9]+")
_HEX_DIGITS = re.compile(rb"[0-9a-fA-F]+")


def atoi(data: bytes, base: int) -> int | None:
    """Zeek's ``util::atoi_n``: optional '-', digits up to the first non-digit (none at all: None).

    ``base``: 10 or 16.  A value that does not fit a signed 64-bit integer is
    None too (Zeek's overflow check: a 2**64 chunk size is a bad chunk size).
    """
    negative = data[:1] == b"-"
    m = (_HEX_DIGITS if base == 16 else _DIGITS).match(data, 1 if negative else 0)
    if m is None:
        return None
    digits = m.group().lstrip(b"0")
    # More significant digits than INT64_MAX has (19 decimal, 16 hex) overflow; (int() is not given them:
    # Python refuses to convert over 4300 decimal digits).
    if len(digits) > (16 if base == 16 else 19):
        return None
    n = int(digits, base) if digits else 0
    if n > INT64_MAX:
        return None
    return -n if negative else n


def unescape_uri(uri: bytes, weird=None) -> bytes:
    """Zeek's ``unescape_URI``: %XX and %uXXXX decoded; odd escapes kept, each with Zeek's weird."""
    if b"%" not in uri:
        return uri
    out = bytearray()
    i, n = 0, len(uri)
    while i < n:
        c = uri[i]
        if c != 37:
            out.append(c)
            i += 1
            continue
        i += 1
        if i == n:
            out.append(37)
            if weird:
                weird("illegal_%_at_end_of_URI")
            break
        if i + 1 == n:
            out += b"%" + uri[i:i + 1]
            if weird:
                weird("partial_escape_at_end_of_URI")
            break
        if uri[i] == 37:
            if weird:
                weird("double_%_in_URI")
            continue            # the first '%' is dropped, the second starts an escape
        if uri[i] in _HEX and uri[i + 1] in _HEX:
            out.append(int(uri[i:i + 2], 16))
            i += 2
            continue
        if n - i >= 5 and uri[i] == 117 and all(x in _HEX for x in uri[i + 1:i + 5]):
            if uri[i + 1:i + 3] != b"00":
                out.append(int(uri[i + 1:i + 3], 16))
            out.append(int(uri[i + 3:i + 5], 16))
            i += 5
            continue
        if weird:
            weird("unescaped_%_in_URI")
        out += b"%" + uri[i:i + 1]
        i += 1
    return bytes(out)


def _value_token(value: bytes) -> tuple[bytes | None, bytes]:
    """MIME ``get_value_token``/``get_value_after_token``: the first token of a header value, and what follows."""
    m = _MIME_TOKEN.match(value)
    if m is not None:                   # (no leading whitespace: the usual case)
        return m.group(), value[m.end():]
    start = _MIME_LWS.match(value).end()
    m = _MIME_TOKEN.match(value, start)
    if m is None:
        if value[start:start + 1] == b'"':
            end = value.find(b'"', start + 1)
            end = len(value) if end < 0 else end + 1
            return value[start + 1:end - 1], value[end:]
        return None, value[start:]
    return m.group(), value[m.end():]


# -- records --------------------------------------------------------------------------------------------

class Transaction:
    """One http.log record (Zeek's ``HTTP::Info``); text fields are raw bytes until the frame is built."""

    __slots__ = ("current_entity", "depth", "frame", "host", "info_code", "info_msg", "method", "orig_filenames",
                 "orig_mime_types", "origin", "password", "proxied", "referrer", "request_body_len",
                 "resp_filenames", "resp_mime_types", "response_body_len", "status_code", "status_msg", "ts", "uri",
                 "user_agent", "username", "version")

    def __init__(self, depth: int, ts, frame: int):
        self.ts = ts
        self.frame = frame
        self.depth = depth
        self.method = self.host = self.uri = self.referrer = self.version = self.user_agent = None
        self.origin = self.status_code = self.status_msg = self.info_code = self.info_msg = None
        self.username = self.password = self.proxied = None
        self.request_body_len = self.response_body_len = 0
        self.orig_filenames = self.orig_mime_types = self.resp_filenames = self.resp_mime_types = None
        self.current_entity = None        # [filename or None] of the entity being read (entities.zeek)


class _Entity:
    """A MIME entity's file: the first bytes (for sniffing) and, when extracting, the whole body."""

    __slots__ = ("bof", "data", "filename", "info", "is_orig", "size", "started")

    def __init__(self, is_orig: bool):
        self.is_orig = is_orig
        self.bof = b""
        self.data = None
        self.size = 0
        self.started = False
        self.info = None
        self.filename = None


class _Part:
    """A multipart part or message/* inner entity: header lines, then body lines to its file."""

    __slots__ = ("file", "header", "headers_done", "lines")

    def __init__(self, is_orig: bool):
        self.header = None
        self.headers_done = False
        self.file = _Entity(is_orig)
        self.lines = 0


class _Message:
    """An HTTP message and its top-level entity (Zeek's HTTP_Message + HTTP_Entity)."""

    __slots__ = ("body_length", "boundary", "chunked", "content_length", "content_type", "encoding", "end_of_data",
                 "expect_100", "expect_body", "expect_data_length", "file", "finished", "folds", "header",
                 "in_header", "is_orig", "is_partial_content", "part", "plain_identity", "range_length", "session",
                 "zip")

    def __init__(self, session: "HttpSession", is_orig: bool, expect_body: int):
        self.session = session
        self.is_orig = is_orig
        self.expect_body = expect_body
        self.in_header = True
        self.header = None            # the header being read (folded lines joined)
        self.folds = 0
        self.content_length = -1
        self.range_length = -1
        self.chunked = NON_CHUNKED
        self.expect_data_length = 0
        self.body_length = 0
        self.encoding = IDENTITY
        self.zip = None
        self.content_type = CT_OTHER
        self.boundary = None
        self.part = None
        self.is_partial_content = False
        self.expect_100 = False
        self.end_of_data = False
        self.finished = False
        self.file = None
        # Reading a Content-Length body without content coding (set by _all_headers, cleared by eod): deliver()
        # then only counts the bytes and keeps the first BOF_BYTES for sniffing, without going through the tests
        # of the other kinds of body (none of which can change until eod).
        self.plain_identity = False

    # -- lines and bytes in ------------------------------------------------------------------------

    def deliver(self, data: bytes, crlf: bool) -> None:
        """HTTP_Entity::Deliver: a line (``crlf``) or plain bytes."""
        if self.plain_identity and data:
            self._identity_body(data)
            self.expect_data_length -= len(data)
            if self.expect_data_length <= 0:
                self.session.set_plain(self.is_orig, 0)
                self.eod()
            return
        if self.end_of_data:
            return
        if self.in_header:
            if not crlf:
                self.session.weird("http_no_crlf_in_header_list")
            self._header_line(data)
            return
        if self.content_type != CT_OTHER:
            self._body(data, crlf)
            if self.content_length > 0:
                self.expect_data_length -= len(data) + (2 if crlf else 0)
                if self.expect_data_length <= 0:
                    self.session.set_plain(self.is_orig, 0)
                    self.eod()
        elif self.chunked != NON_CHUNKED:
            state = self.chunked
            if state == CHUNK_SIZE:
                size = atoi(data, 16)
                if size is None:
                    self.session.weird("HTTP_bad_chunk_size", data)
                    size = 0
                if size > 0:
                    self.chunked = CHUNK_DATA
                    self.expect_data_length = size
                    self.session.set_plain(self.is_orig, size)
                else:
                    self.in_header = True
                    self.chunked = CHUNK_TRAILER
            elif state == CHUNK_DATA:
                self.expect_data_length -= len(data)
                if self.expect_data_length <= 0:
                    self.session.set_plain(self.is_orig, 0)
                    self.chunked = CHUNK_DATA_CRLF
                self._body(data, False)
            elif state == CHUNK_DATA_CRLF:
                self.chunked = CHUNK_SIZE        # data before the CRLF is an http_event only
        elif self.content_length >= 0:
            if self.encoding == IDENTITY and data:
                self._identity_body(data)
            else:
                self._body(data, False)
            self.expect_data_length -= len(data)
            if self.expect_data_length <= 0:
                self.session.set_plain(self.is_orig, 0)
                self.eod()
        else:
            self._body(data, crlf)

    def header_block(self, block: bytes) -> None:
        """Header lines (``block``: CRLF-separated, no empty line, no lone CR or LF) taken at once.

        The same as :meth:`_header_line` on each line.  Without folded lines
        (none starts with SP or HT) every line is a whole header, so each is
        finished at once (``_finish_header`` inlined: only the names in
        :data:`INTERESTING_HEADERS` go further, and without folding the
        others give no weird).
        """
        lines = block.split(b"\r\n")
        if block[0] in (32, 9) or b"\n " in block or b"\n\t" in block:
            self._folded_block(lines)
            return
        if self.header is not None:
            self._finish_header()           # a header left open by the previous delivery
        self.folds = 1
        is_orig = self.is_orig
        info = self.session._set_state(is_orig)
        submit = self._submit_header
        for line in lines:
            name, colon, value = line.partition(b":")
            name = name.rstrip(b" \t").upper()        # (no leading SP/HT: that would be a folded line)
            if name in INTERESTING_HEADERS and colon:
                field = _REQUEST_FIELDS.get(name)
                if field is None:
                    submit(name, value.lstrip(b" \t"), info)
                elif is_orig:                         # (what header() does with these, and all it does)
                    setattr(info, field, value.lstrip(b" \t"))

    def _folded_block(self, lines: list) -> None:
        for line in lines:
            if line and line[0] in (32, 9):
                if self.header is not None:
                    self.header += line
                    self.folds += 1
            else:
                if self.header is not None:
                    self._finish_header()
                self.header = line
                self.folds = 1
        self.session.current = self.session._set_state(self.is_orig)

    def _identity_body(self, data: bytes) -> None:
        """Bytes of a body without content coding: counted, and the start kept for sniffing (all when kept)."""
        n = len(data)
        self.body_length += n
        file = self.file
        if file is None or not file.started:
            self._clear_start(data)
        else:
            if len(file.bof) < BOF_BYTES:
                file.bof += data[:BOF_BYTES - len(file.bof)]
            if file.data is not None:
                file.data += data
            file.size += n

    def end_headers(self) -> None:
        """The empty line ending the headers (in a header, not yet at end of data)."""
        self._finish_header()
        self.in_header = False
        self._all_headers()

    def _header_line(self, line: bytes) -> None:
        if not line:
            self.end_headers()
        elif line[0] in (32, 9):
            if self.header is not None:
                self.header += line
                self.folds += 1
        else:
            self._finish_header()
            self.header = line
            self.folds = 1

    def _finish_header(self) -> None:
        line = self.header
        if line is None:
            return
        self.header = None
        name, colon, value = line.partition(b":")
        if not colon:
            return
        name = name.strip(b" \t").upper()
        if name not in INTERESTING_HEADERS:
            if self.folds > 1:
                self.session.weird("HTTP_obsolete_line_folding", name)
            return
        if b" " in name or b"\t" in name:
            return
        self._submit_header(name, value.lstrip(b" \t\r\n"))

    def _submit_header(self, name: bytes, value: bytes, info=None) -> None:
        """HTTP_Entity::SubmitHeader and MIME_Entity::SubmitHeader for one header (name upper-cased).

        ``info``: the message's record when the caller has it (else found again).
        """
        session = self.session
        if self.folds > 1:
            session.weird("HTTP_obsolete_line_folding", name)
        if name == b"CONTENT-LENGTH":
            if self.chunked != NON_CHUNKED:
                session.weird("HTTP_content_length_and_chunked")
            token, _ = _value_token(value)
            if token is not None:
                n = atoi(token, 10)
                if n is not None and n >= 0:
                    if n > 0 and token[:1] == b"0":
                        session.weird("HTTP_content_length_leading_zeros", token)
                    self.content_length = n
                    if self.is_partial_content and self.range_length != n:
                        session.weird("HTTP_range_not_matching_len")
                        if self.range_length > n:
                            self.content_length = self.range_length
                    if self.content_length == 0 and self.expect_100:
                        session.weird("HTTP_content_length_0_and_expect_100_cont")
                else:
                    session.weird("HTTP_bad_content_length", token)
                    self.content_length = 0
        elif name == b"CONTENT-RANGE" and session.reply_code == 206 and not self.is_orig:
            self._content_range(value)
        elif name == b"TRANSFER-ENCODING":
            version = session.request_version if session.request_ongoing else session.reply_version
            token, rest = _value_token(value)
            if token is not None and token.lower() == b"chunked" and version == (1, 1):
                self.chunked = BEFORE_CHUNK
                if rest:
                    session.weird("HTTP_chunked_multi", rest)
                if self.content_length >= 0:
                    session.weird("HTTP_content_length_and_chunked")
        elif name == b"CONTENT-ENCODING":
            token, _ = _value_token(value)
            if token is not None:
                token = token.lower()
                if token in (b"gzip", b"x-gzip"):
                    self.encoding = GZIP
                elif token == b"deflate":
                    self.encoding = DEFLATE
        elif name == b"EXPECT":
            token, _ = _value_token(value)
            if token is None or token.lower() != b"100-continue":
                session.weird("HTTP_expect_not_100_continue", token)
            self.expect_100 = True
            if self.content_length == 0:
                session.weird("HTTP_content_length_0_and_expect_100_cont")
        elif name == b"CONTENT-TYPE":
            token, rest = _value_token(value)
            if token is not None:
                kind = token.lower()
                if kind == b"multipart" and rest[:1] == b"/":
                    m = _BOUNDARY.search(rest)
                    if m:
                        self.content_type = CT_MULTIPART
                        self.boundary = b"--" + (m.group(1) if m.group(1) is not None else m.group(2))
                elif kind == b"message" and rest[:1] == b"/":
                    sub, _ = _value_token(rest[1:])
                    if sub is not None and sub.lower() in (b"rfc822", b"news"):
                        self.content_type = CT_MESSAGE
        session.header(self.is_orig, name, value, info)

    def _content_range(self, value: bytes) -> None:
        session = self.session
        unit, rest = _value_token(value)
        spec = rest.replace(b" ", b"")
        if unit != b"bytes":
            session.weird("HTTP_content_range_unknown_byte_unit")
            return
        slash = spec.find(b"/")
        if slash < 0:
            session.weird("HTTP_content_range_cannot_parse")
            return
        resp_spec, instance = spec[:slash], spec[slash + 1:]
        dash = resp_spec.find(b"-")
        if dash < 0:
            session.weird("HTTP_content_range_cannot_parse")
            return
        first, last = atoi(resp_spec[:dash], 10), atoi(resp_spec[dash + 1:], 10)
        if first is None or last is None:
            session.weird("HTTP_content_range_cannot_parse", spec)
            return
        if first < 0 or last < 0:
            session.weird("HTTP_content_range_invalid", spec)
            return
        if last < first:
            session.weird("HTTP_non_positive_content_range", spec)
            return
        if last - first > INT64_MAX - 1:
            session.weird("HTTP_content_range_overflow", spec)
            return
        length = last - first + 1
        if instance != b"*" and atoi(instance, 10) is None:
            session.weird("HTTP_content_range_invalid_instance", spec)
        self.is_partial_content = True
        self.range_length = length
        if self.content_length > 0:
            if self.content_length != length:
                session.weird("HTTP_range_not_matching_len")
                if length > self.content_length:
                    self.content_length = length
        else:
            self.content_length = length

    def _all_headers(self) -> None:
        """HTTP_Entity::SubmitAllHeaders: decide how the body is delimited."""
        session = self.session
        if self.chunked == CHUNK_TRAILER:
            self.chunked = CHUNK_NOTHING
            self.eod()
            return
        if self.expect_body == BODY_NOT_EXPECTED:
            self.eod()
            return
        if self.content_type != CT_OTHER:
            if self.chunked != NON_CHUNKED:
                session.weird("HTTP_chunked_transfer_for_multipart_message")
            if self.content_length >= 0:
                if self.content_length > 0:
                    self.expect_data_length = self.content_length
                else:
                    self.eod()
        elif self.chunked != NON_CHUNKED:
            self.chunked = CHUNK_SIZE
        elif self.content_length >= 0:
            if self.content_length > 0:
                self.expect_data_length = self.content_length
                self.plain_identity = self.encoding == IDENTITY
                session.set_plain(self.is_orig, self.content_length)
            else:
                self.eod()
        elif session.connection_close or self.encoding != IDENTITY:
            self.expect_data_length = INT_MAX
            session.set_plain(self.is_orig, INFINITE)
        elif self.expect_body != BODY_EXPECTED:
            self.eod()

    # -- body --------------------------------------------------------------------------------------

    def _body(self, data: bytes, crlf: bool) -> None:
        """HTTP_Entity::DeliverBody: decompress when encoded, then count and hand to the entity."""
        if self.encoding != IDENTITY:
            if self.zip is None:
                self.zip = zlib.decompressobj(47 if self.encoding == GZIP else 15)
            if self.zip is False:
                return
            try:
                out = self.zip.decompress(data)
            except zlib.error:
                if self.encoding == DEFLATE and not self.body_length and self.zip.unused_data == b"":
                    # Zeek's deflate: zlib-wrapped first, raw deflate when that fails.
                    self.zip = zlib.decompressobj(-15)
                    try:
                        out = self.zip.decompress(data)
                    except zlib.error:
                        self.zip = False
                        return
                else:
                    self.zip = False
                    return
            if out:
                self._clear(out, False)
        else:
            self._clear(data, crlf)

    def _clear_start(self, data: bytes) -> None:
        """The first bytes of a plain identity body (DeliverBodyClear without the count)."""
        file = self.file
        if file is None:
            file = self.file = self.session.new_file(self.is_orig)
        self.session.file_start(file)
        file.bof = data[:BOF_BYTES]
        if file.data is not None:
            file.data += data
        file.size += len(data)

    def _clear(self, data: bytes, crlf: bool) -> None:
        """HTTP_Entity::DeliverBodyClear."""
        n = len(data)
        self.body_length += n + 2 if crlf else n
        if self.content_type != CT_OTHER:
            self._mime_line(data, crlf)
            return
        if n:
            file = self.file
            if file is None:
                file = self.file = self.session.new_file(self.is_orig)
            if not file.started:
                self.session.file_start(file)
            if len(file.bof) < BOF_BYTES:
                file.bof += data[:BOF_BYTES - len(file.bof)]
            if file.data is not None:
                file.data += data
            file.size += n

    def _mime_line(self, line: bytes, crlf: bool) -> None:
        """A body line of a multipart or message/* entity: part boundaries, part headers, part data."""
        session = self.session
        if self.content_type == CT_MULTIPART:
            boundary = self.boundary
            if line.startswith(boundary):
                if self.part is not None:
                    self._end_part()
                if line[len(boundary):len(boundary) + 2] == b"--":
                    self.part = None
                    self.content_type = CT_MULTIPART   # epilogue follows: ignored
                    self.boundary = b"\x00no more parts\x00"
                else:
                    self.part = _Part(self.is_orig)
                    session.begin_entity(self.is_orig)
                return
        elif self.part is None:
            self.part = _Part(self.is_orig)
        part = self.part
        if part is None:
            return                                   # preamble
        if not part.headers_done:
            if not line:
                if part.header is not None:
                    self._part_header(part)
                part.headers_done = True
                if self.content_type == CT_MULTIPART:
                    session.crlf_only(self.is_orig, True)
            elif line[0] in (32, 9) and part.header is not None:
                part.header += line
            else:
                if part.header is not None:
                    self._part_header(part)
                part.header = line
            return
        file = part.file
        if part.lines:
            data = b"\r\n" + line
        else:
            data = line
        part.lines += 1
        if data:
            if not file.started:
                session.file_start(file)
            if len(file.bof) < BOF_BYTES:
                file.bof += data[:BOF_BYTES - len(file.bof)]
            if file.data is not None:
                file.data += data
            file.size += len(data)

    def _part_header(self, part: _Part) -> None:
        line, part.header = part.header, None
        colon = line.find(b":")
        if colon <= 0:
            return
        name = line[:colon].strip(b" \t").upper()
        value = line[colon + 1:].lstrip(b" \t")
        if name == b"TRANSFER-ENCODING":
            self.session.weird("HTTP_nested_transfer_encoding_header")
        self.session.header(self.is_orig, name, value)

    def _end_part(self) -> None:
        part, self.part = self.part, None
        self.session.crlf_only(self.is_orig, False)
        if part.file.started:
            self.session.file_end(part.file)
        self.session.end_entity(self.is_orig)

    # -- end ---------------------------------------------------------------------------------------

    def eod(self) -> None:
        """HTTP_Entity::EndOfData: the entity is complete (flushes the decompressor, ends the message)."""
        if self.end_of_data:
            return
        self.plain_identity = False
        if self.zip:
            try:
                out = self.zip.flush()
            except zlib.error:
                out = b""
            self.zip = None
            if out:
                self._clear(out, False)
        self.end_of_data = True
        if self.in_header:
            self._finish_header()
            self.in_header = False
            self._all_headers()
        if self.part is not None:
            self._end_part()
        info = self.session._set_state(self.is_orig)       # (HttpSession.end_entity)
        info.current_entity = None
        if not self.finished:
            self.finished = True
            self._message_done(info)

    def done(self) -> None:
        """HTTP_Message::Done: the entity ends (eod) first, then file end, http_message_done and the analyzer's
        RequestMade/ReplyMade (``_message_done``, which eod() calls once the entity is ended)."""
        if self.finished:
            return
        if not self.end_of_data:
            self.eod()
            return
        self.finished = True
        self._message_done(self.session._set_state(self.is_orig))

    def _message_done(self, info: Transaction) -> None:
        """The rest of HTTP_Message::Done; ``info``: the message's record (``_set_state``), the entity ended."""
        file = self.file
        if file is not None and file.started:
            self.session.file_end(file)
        self.session.message_done(self.is_orig, self.body_length, info)

    def undelivered(self, length: int) -> bool:
        """HTTP_Entity::Undelivered: a gap of ``length`` bytes; True when it fell inside a body of known length."""
        if (self.end_of_data and self.in_header) or self.body_length == 0:
            return False
        if self.chunked != NON_CHUNKED:
            if self.chunked == CHUNK_DATA and self.expect_data_length >= length:
                self.body_length += length
                self.expect_data_length -= length
                self.session.set_plain(self.is_orig, self.expect_data_length)
                if self.expect_data_length == 0:
                    self.chunked = CHUNK_DATA_CRLF
                return True
            return False
        if self.content_length >= 0 and self.expect_data_length >= length:
            self.body_length += length
            self.expect_data_length -= length
            self.session.set_plain(self.is_orig, self.expect_data_length)
            if self.expect_data_length <= 0:
                self.eod()
            return True
        return False


class _Side:
    """One direction's content-line state (Zeek's ContentLine_Analyzer)."""

    __slots__ = ("buf", "buf_frame", "crlf_only", "last_cr", "plain", "resync", "skip")

    def __init__(self):
        self.buf = b""          # partial line
        self.buf_frame = -1     # frame of its first byte
        self.last_cr = False    # the last byte taken in line mode was a CR ending a line
        self.plain = 0          # bytes to take plainly (INFINITE: until the end)
        self.skip = False       # direction no longer parsed
        self.resync = False     # after a gap: looking for the next start line
        self.crlf_only = False  # inside a multipart part's body only CRLF ends a line (Zeek's SetCRLFAsEOL(0))

    def keep(self, data: bytes, pos: int, frame: int) -> None:
        """Buffer ``data[pos:]``, a line not ended in this delivery (its first frame remembered)."""
        if not self.buf:
            self.buf_frame = frame
            self.buf = data if pos == 0 else data[pos:]
        else:
            self.buf += data[pos:]

    def take(self, data: bytes, pos: int, end: int, frame: int) -> tuple[bytes, int]:
        """The line ending at ``end`` (buffered start included) and the frame of its first byte."""
        if self.buf:
            line, self.buf = self.buf + data[pos:end], b""
            return line, self.buf_frame
        return data[pos:end], frame


class HttpSession:
    """The HTTP analysis of one TCP connection.

    Args:
        key: the connection (``ConnKey``; used for tunnels and messages).
        capture_passwords: keep Basic-auth passwords (Zeek's
            ``HTTP::default_capture_password``).
        resync: after a gap outside a body, skip to the next start line
            instead of giving up the direction (Zeek gives up).
        keep_bodies: keep whole bodies of files (for extraction), not only
            their first :data:`~analyzer.files.BOF_BYTES`.
        on_tunnel: called as ``on_tunnel(is_orig, data, ts, frame)`` with
            the bytes after a CONNECT 200 or an Upgrade 101.

    Attributes:
        rows: finished :class:`Transaction` records, in the order Zeek writes them.
        weirds: ``(frame, name, addl)`` anomalies.
        files: finished files ``(entity, transaction)`` when ``keep_bodies``.
        confirmed: a request (or a reply to one) was parsed: the connection is HTTP.
        confirmed_ts: when (ns since the epoch) it was first confirmed.
        service_removed: a violation came after the confirmation (Zeek then drops the service).
    """

    # Slots: read on every chunk, and more attributes than CPython keeps in a compact instance dict (30).
    __slots__ = ("_remaining", "capture_passwords", "closed", "confirmed", "confirmed_ts", "connect_request",
                 "connection_close", "current", "current_request", "current_response", "files", "frame", "keep_alive",
                 "keep_bodies", "key", "line_frame", "line_ts", "num_replies", "num_requests", "on_tunnel", "orig",
                 "pending", "reply_code", "reply_msg", "reply_ongoing", "reply_reason", "reply_state",
                 "reply_version", "request_method", "request_msg", "request_ongoing", "request_state",
                 "request_version", "resp", "resync_enabled", "rows", "service_removed", "start_frame",
                 "trans_depth", "ts", "tunnel", "unanswered", "upgrade_connection", "upgrade_protocol", "upgraded",
                 "weirds")

    def __init__(self, key=None, capture_passwords: bool = False, resync: bool = True, keep_bodies: bool = False,
                 on_tunnel=None):
        self.key = key
        self.capture_passwords = capture_passwords
        self.resync_enabled = resync
        self.keep_bodies = keep_bodies
        self.on_tunnel = on_tunnel
        self.rows: list[Transaction] = []
        self.weirds: list[tuple[int, str, str | None]] = []
        self.files: list = []
        self.confirmed = False
        self.confirmed_ts = None
        self.service_removed = False
        self.orig, self.resp = _Side(), _Side()
        # analyzer state (HTTP_Analyzer)
        self.request_state = EXPECT_LINE
        self.reply_state = EXPECT_LINE
        self.num_requests = self.num_replies = 0
        self.keep_alive = False
        self.connection_close = False
        self.request_ongoing = self.reply_ongoing = False
        self.request_msg: _Message | None = None
        self.reply_msg: _Message | None = None
        self.request_method = None
        self.request_version = None
        self.reply_version = None
        self.reply_code = 0
        self.reply_reason = None
        self.unanswered: deque = deque()
        self.connect_request = False
        self.tunnel = False
        self.upgraded = False
        self.upgrade_connection = False
        self.upgrade_protocol = b""
        # script state (HTTP::State)
        self.pending: dict[int, Transaction] = {}
        self.current_request = 0
        self.current_response = 0
        self.trans_depth = 0
        self.current: Transaction | None = None
        # where we are
        self.ts = None
        self.frame = -1
        self.line_frame = -1    # frame of the first byte of the line being handled
        self.start_frame = -1   # … of the last start line (a new record's frame.number)
        self.line_ts = None
        self._remaining = b""
        self.closed = False

    # -- input -------------------------------------------------------------------------------------------

    def deliver(self, is_orig: bool, data: bytes, ts, frame: int) -> None:
        """Bytes of one direction, in stream order."""
        side = self.orig if is_orig else self.resp
        plain = side.plain
        if plain >= len(data) and not (side.last_cr or side.skip or self.closed or self.tunnel or self.upgraded) \
                and data and (is_orig or self.reply_state != EXPECT_HTTP09):
            # Body bytes all inside the current message (the common case): what the loop below does with them.
            self.ts, self.frame = ts, frame
            if plain != INFINITE:
                side.plain = plain - len(data)
            self._body_bytes(is_orig, data)
            return
        if self.closed or not data:
            return
        self.ts, self.frame = ts, frame
        if self.tunnel or self.upgraded:
            if self.on_tunnel is not None:
                self.on_tunnel(is_orig, data, ts, frame)
            return
        side = self.orig if is_orig else self.resp
        if side.skip:
            return
        if not is_orig and self.reply_state == EXPECT_HTTP09:
            self._http09_reply(data)
            return
        pos, n = 0, len(data)
        while pos < n:
            if side.skip or self.tunnel or self.upgraded:
                if (self.tunnel or self.upgraded) and self.on_tunnel is not None:
                    self.on_tunnel(is_orig, data[pos:], ts, frame)
                return
            if not is_orig and self.reply_state == EXPECT_HTTP09:
                self._http09_reply(data[pos:])
                return
            if side.last_cr:
                side.last_cr = False
                if data[pos] == 10:
                    pos += 1
                    continue
            if side.plain:
                take = n - pos if side.plain >= n - pos else side.plain
                chunk = data[pos:pos + take] if take != n or pos else data
                pos += take
                if side.plain != INFINITE:
                    side.plain -= take
                self._body_bytes(is_orig, chunk)
                continue
            if not side.buf and not side.resync:
                msg = self.request_msg if is_orig else self.reply_msg
                if (msg is not None and msg.in_header and not msg.end_of_data
                        and (self.request_state if is_orig else self.reply_state) == EXPECT_MESSAGE):
                    end = data.find(b"\r\n\r\n", pos)
                    if end > pos and data[pos] != 13:      # (a first empty line ends the headers: slow path)
                        block = data[pos:end]
                        crlfs = block.count(b"\r\n")
                        if block.count(b"\r") == crlfs and block.count(b"\n") == crlfs:
                            self.line_frame = frame
                            msg.header_block(block)
                            pos = end + 4
                            self._remaining = data[pos:] if (self.connect_request or self.upgrade_connection) else b""
                            msg.end_headers()              # the empty line (_line in EXPECT_MESSAGE)
                            if not is_orig and self.connect_request:
                                self._start_tunnel("protocol_data_with_HTTP_CONNECT_reply")
                            continue
            if side.crlf_only:
                if side.buf[-1:] == b"\r" and data[pos] == 10:
                    line, side.buf = side.buf[:-1], b""
                    self.line_frame = side.buf_frame
                    pos += 1
                    self._line(is_orig, side, line)
                    continue
                end = data.find(b"\r\n", pos)
                if end < 0:
                    side.keep(data, pos, frame)
                    break
                line, self.line_frame = side.take(data, pos, end, frame)
                pos = end + 2
                self._line(is_orig, side, line)
                continue
            m = _EOL.search(data, pos)
            if m is None:
                side.keep(data, pos, frame)
                if len(side.buf) >= MAX_LINE:
                    self.weird("contentline_size_exceeded")
                    line, side.buf = side.buf, b""
                    self.line_frame = side.buf_frame
                    self._line(is_orig, side, line)
                break
            end = m.start()
            if side.buf:
                line, self.line_frame = side.take(data, pos, end, frame)
            else:
                line, self.line_frame = data[pos:end], frame
            if data[end] == 13:
                if end + 1 < n:
                    pos = end + 2 if data[end + 1] == 10 else end + 1
                else:
                    pos = end + 1
                    side.last_cr = True
            else:
                pos = end + 1
            self._remaining = data[pos:] if (self.connect_request or self.upgrade_connection) else b""
            self._line(is_orig, side, line)

    def _body_bytes(self, is_orig: bool, data: bytes) -> None:
        """Bytes the current message of the direction reads as body (a weird when there is none)."""
        msg = self.request_msg if is_orig else self.reply_msg
        if msg is not None:
            msg.deliver(data, False)
        else:
            self.weird("unexpected_client_HTTP_data" if is_orig else "unexpected_server_HTTP_data")

    def gap(self, is_orig: bool, length: int, ts, frame: int) -> None:
        """``length`` bytes of the direction are missing (HTTP_Analyzer::Undelivered)."""
        if self.closed or self.tunnel or self.upgraded:
            return
        self.ts, self.frame = ts, frame
        side = self.orig if is_orig else self.resp
        if side.skip:
            return
        msg = self.request_msg if is_orig else self.reply_msg
        if msg is not None and not msg.finished and msg.undelivered(length):
            return
        self.weird("HTTP_content_gap", f"len={length}")
        side.buf = b""
        side.plain = 0
        if is_orig:
            self.request_made(True)
            self.reply_made(True)
        else:
            self.reply_made(True)
        if self.resync_enabled:
            side.resync = True
            if is_orig:
                self.request_state = EXPECT_LINE
            else:
                self.reply_state = EXPECT_LINE
        else:
            side.skip = True

    def eof(self, is_orig: bool, ts, frame: int) -> None:
        """The direction ended (FIN, or end of capture): partial line delivered, message ended."""
        if self.closed:
            return
        self.ts, self.frame = ts, frame
        side = self.orig if is_orig else self.resp
        if side.buf and not side.plain and not side.skip and not self.tunnel and not self.upgraded:
            self.deliver(is_orig, b"\n", ts, frame)
        if is_orig:
            self.request_made(False)
        else:
            self.reply_made(False)

    def close(self) -> None:
        """The connection is over (HTTP_Analyzer::Done, then finalize_http): every pending record is written."""
        if self.closed:
            return
        self.request_made(True)
        self.reply_made(True)
        for depth in sorted(self.pending):
            if depth != 0:
                self.rows.append(self.pending[depth])
        self.pending.clear()
        self.closed = True

    # -- lines -------------------------------------------------------------------------------------------

    def _line(self, is_orig: bool, side: _Side, line: bytes) -> None:
        if side.resync:
            pattern = _RESYNC_REQUEST if is_orig else _RESYNC_REPLY
            if not pattern.match(line):
                return
            side.resync = False
        if is_orig:
            state = self.request_state
            if state == EXPECT_MESSAGE:
                self.request_msg.deliver(line, True)
            elif state == EXPECT_LINE:
                self._request_line(line)
        else:
            state = self.reply_state
            if state == EXPECT_MESSAGE:
                self.reply_msg.deliver(line, True)
                if self.connect_request and not line:
                    self._start_tunnel("protocol_data_with_HTTP_CONNECT_reply")
            elif state == EXPECT_LINE:
                if self._reply_line(line):
                    self.num_replies += 1
                    if self.unanswered:
                        self._confirm()
                    self.reply_state = EXPECT_MESSAGE
                    self.reply_ongoing = True
                    self.ev_reply()
                    if self.connect_request and self.reply_code != 200:
                        self.connect_request = False
                    self.reply_msg = self._new_message(self.reply_msg, False, self._expect_reply_body())
                elif line:
                    self._violation(False)

    def _request_line(self, line: bytes) -> None:
        self.start_frame, self.line_ts = self.line_frame, self.ts
        parsed = self._parse_request(line)
        if parsed is None:
            if not (self.num_requests == 0 or self.keep_alive):
                return                      # crud after a request: an http_event only
            if not line:
                self.weird("empty_http_request")
            else:
                self._violation(True)
            return
        method, uri, version = parsed
        self.num_requests += 1
        if not self.keep_alive and self.num_requests > 1:
            self.weird("unexpected_multiple_HTTP_requests")
        self.request_state = EXPECT_MESSAGE
        self.request_ongoing = True
        self.unanswered.append(method)
        self.request_method = method
        if not self.confirmed:
            self.confirmed_ts = self.ts
            self.confirmed = True
        if method != b"GET" and b"CONNECT".startswith(method.upper()):
            self.connect_request = True      # Zeek: strncasecmp(method, "CONNECT", len(method))
        self.ev_request(method, uri, version)
        self.request_msg = self._new_message(self.request_msg, True, BODY_MAYBE)
        if version == (0, 9):
            if method != b"GET":
                self.weird("invalid_http_09_request_method", method)
            if self.reply_msg is not None and not self.reply_msg.finished:
                self.weird("http_09_reply_before_request")
                self.reply_msg.done()
            self.reply_msg = None
            self.reply_state = EXPECT_HTTP09

    def _parse_request(self, line: bytes):
        """HTTP_RequestLine + ParseRequest: (method, URI, version) or None (with the weird)."""
        m = _SIMPLE_REQUEST.match(line)
        if m is not None:
            version = self._set_version(True, (1, line[-1] - 48))
            return m.group(1), unescape_uri(m.group(2), self.weird), version
        end_method = _TOKEN.match(line).end()
        n = len(line)
        if end_method == 0:
            if n >= 9 and line[n - 9:n - 3].lower() == b" http/":
                self.weird("bad_HTTP_request_with_version")
            else:
                self.weird("bad_HTTP_request")
            return None
        rest = _WHITESPACE.match(line, end_method).end()
        if rest == end_method:
            self.weird("bad_HTTP_request")
            return None
        end_uri = _URI.match(line, rest).end()
        starts_http = line[rest:rest + 5]
        match = starts_http == b"HTTP/"
        if not match and starts_http.lower() == b"http/":
            self.weird("lowercase_HTTP_keyword")
            match = True
        if end_uri >= n and match:
            self.weird("missing_HTTP_uri")
            end_uri = rest
        version_start = end_uri
        found = False
        while version_start < n:
            end_uri = version_start
            version_start = _WHITESPACE.match(line, version_start).end()
            word = line[version_start:version_start + 5]
            if word == b"HTTP/":
                found = True
                break
            if word.lower() == b"http/":
                self.weird("lowercase_HTTP_keyword")
                found = True
                break
            version_start += 1
        if not found:
            version = self._set_version(True, (0, 9))
        elif version_start + 8 <= n:
            version = self._set_version(True, self._version(line[version_start + 5:]))
        else:
            version = self.request_version if self.request_version is not None else (0, 0)
        uri = line[rest:end_uri]
        if version == (0, 9) and (end_method < 3 or not uri):
            self.weird("bad_HTTP_request")
            return None
        return line[:end_method], unescape_uri(uri, self.weird), version

    @staticmethod
    def _version(text: bytes):
        if len(text) >= 3 and 48 <= text[0] <= 57 and text[1] == 46 and 48 <= text[2] <= 57:
            return (text[0] - 48, text[2] - 48)
        return (0, 0)

    def _set_version(self, is_orig: bool, new):
        """Zeek's SetVersion: the first version is taken; a different one later gives HTTP_version_mismatch."""
        old = self.request_version if is_orig else self.reply_version
        if old is not None and old != (0, 0) and old != new:
            self.weird("HTTP_version_mismatch")
        if is_orig:
            self.request_version = new
        else:
            self.reply_version = new
        if new[0] > 1 or (new[0] == 1 and new[1] > 0):
            self.keep_alive = True
        return new

    def _reply_line(self, line: bytes) -> bool:
        """HTTP_ReplyLine: sets reply_code and reply_reason; False when not a status line."""
        self.start_frame, self.line_ts = self.line_frame, self.ts
        m = _SIMPLE_STATUS.match(line)
        if m is not None:
            self._set_version(False, (line[5] - 48, line[7] - 48))
            self.reply_code = int(m.group(3))
            self.reply_reason = m.group(4)
            return True
        head = line[:5]
        if head != b"HTTP/":
            if head.lower() != b"http/":
                return False
            self.weird("lowercase_HTTP_keyword")
        self._set_version(False, self._version(line[5:]))
        n = len(line)
        rest = 5
        while rest < n and line[rest] not in (32, 9):
            rest += 1
        if rest >= n:
            return False
        rest = _WHITESPACE.match(line, rest).end()
        if rest + 3 > n:
            return False
        code = line[rest:rest + 3]
        self.reply_code = int(code) if code.isdigit() else 0
        rest += 3
        while rest < n and line[rest] not in (32, 9):
            rest += 1
        if rest >= n:
            self.reply_reason = None
            return True
        rest = _WHITESPACE.match(line, rest).end()
        self.reply_reason = line[rest:]
        return True

    def _expect_reply_body(self) -> int:
        method = self.unanswered[0] if self.unanswered else None
        if method is not None and b"HEAD".startswith(method.upper()):
            return BODY_NOT_EXPECTED         # strncasecmp(method, "HEAD", len(method))
        code = self.reply_code
        if 100 <= code < 200 or code == 204 or code == 304:
            return BODY_NOT_EXPECTED
        return BODY_EXPECTED

    def _new_message(self, old: _Message | None, is_orig: bool, expect_body: int) -> _Message:
        if old is not None and not old.finished:
            self.weird("HTTP_overlapping_messages")
        self._set_state(is_orig).current_entity = [None]      # begin_entity
        return _Message(self, is_orig, expect_body)

    def _http09_reply(self, data: bytes) -> None:
        if self.reply_msg is None:
            self._set_version(False, (0, 9))
            if self.unanswered:
                self._confirm()
                self.unanswered.popleft()
            self.connection_close = True
            self.reply_ongoing = True
            self.reply_code = 0
            self.reply_reason = None
            self.start_frame, self.line_ts = self.frame, self.ts
            self.ev_reply()
            self.reply_msg = self._new_message(None, False, self._expect_reply_body())
            self.reply_msg.deliver(b"", True)
        self.reply_msg.deliver(data, False)

    def _violation(self, is_orig: bool) -> None:
        """AnalyzerViolation: that direction stops; a confirmed connection's analyzer is removed (both stop).

        (Zeek's baselines show both: after a bad first request line the replies
        are still logged; after a bad line that follows good requests, nothing is.)
        """
        if is_orig:
            self.request_state = EXPECT_NOTHING
        else:
            self.reply_state = EXPECT_NOTHING
        if self.confirmed:
            self.orig.skip = self.resp.skip = True
            # Zeek's dpd framework removes a confirmed analyzer's service on a violation.
            self.service_removed = True

    def crlf_only(self, is_orig: bool, on: bool) -> None:
        (self.orig if is_orig else self.resp).crlf_only = on

    def set_plain(self, is_orig: bool, length: int) -> None:
        (self.orig if is_orig else self.resp).plain = length

    def _confirm(self) -> None:
        if not self.confirmed:
            self.confirmed_ts = self.ts
        self.confirmed = True

    # -- messages done -----------------------------------------------------------------------------------

    def request_made(self, interrupted: bool) -> None:
        if not self.request_ongoing:
            return
        self.request_ongoing = False
        if self.request_msg is not None:
            self.request_msg.done()
        self.request_method = None
        self.request_state = EXPECT_NOTHING if interrupted else EXPECT_LINE

    def reply_made(self, interrupted: bool) -> None:
        if not self.reply_ongoing:
            return
        self.reply_ongoing = False
        if self.reply_msg is not None:
            self.reply_msg.done()
        code = self.reply_code
        if (code < 100 or code >= 200) and self.unanswered:
            self.unanswered.popleft()
        self.reply_reason = None
        if code == 101 and len(self.unanswered) == 1 and self.upgrade_connection and self.upgrade_protocol:
            self._start_tunnel("protocol_data_with_HTTP_upgrade_reply")
            self.upgraded = True
        self.reply_code = 0
        self.upgrade_connection = False
        self.upgrade_protocol = b""
        self.reply_state = EXPECT_NOTHING if interrupted or self.upgraded else EXPECT_LINE

    def message_done(self, is_orig: bool, body_length: int, info: Transaction) -> None:
        """http_message_done (both priorities), then HTTP_MessageDone; ``info``: ``_set_state(is_orig)``."""
        if is_orig:
            info.request_body_len = body_length
        else:
            info.response_body_len = body_length
            if not (info.status_code is not None and 100 <= info.status_code <= 199):
                self.rows.append(info)
                self.pending.pop(self.current_response, None)
        if is_orig:
            self.request_made(False)
        else:
            self.reply_made(False)

    def _start_tunnel(self, weird_name: str) -> None:
        remaining, self._remaining = self._remaining, b""
        if remaining:
            self.weird(weird_name, str(len(remaining)))
        self.tunnel = True      # deliver() hands what follows (this delivery's rest included) to on_tunnel

    # -- the script layer (base/protocols/http/main.zeek, entities.zeek) ---------------------------------

    def _new_info(self) -> Transaction:
        self.trans_depth += 1
        frame = self.start_frame if self.start_frame >= 0 else self.frame
        return Transaction(self.trans_depth, self.line_ts if self.line_ts is not None else self.ts, frame)

    def _set_state(self, is_orig: bool) -> Transaction:
        index = self.current_request if is_orig else self.current_response
        info = self.pending.get(index)
        if info is None:
            info = self.pending[index] = self._new_info()
        self.current = info
        return info

    def ev_request(self, method: bytes, uri: bytes, version) -> None:
        if self.current_request < self.current_response:
            self.weird("HTTP_response_before_request")
            self.current_request = self.current_response
        if len(self.pending) > 100:
            self.weird("HTTP_excessive_pipelining")
            if self.current_response == 0:
                self.current_response += 1
            while self.current_response < self.current_request:
                info = self.pending.pop(self.current_response, None)
                if info is not None:
                    self.rows.append(info)
                self.current_response += 1
        self.current_request += 1
        info = self._set_state(True)
        info.method = method
        info.uri = uri
        if method not in HTTP_METHODS:
            self.weird("unknown_HTTP_method", method)

    def ev_reply(self) -> None:
        info = self.pending.get(self.current_response)
        if info is None or (info.status_code is not None and not 100 <= info.status_code <= 199):
            self.current_response += 1
        info = self._set_state(False)
        code = self.reply_code
        reason = self.reply_reason if self.reply_reason is not None else b"<empty>"
        version = self.reply_version or (0, 0)
        info.status_code = code
        info.status_msg = reason
        info.version = b"%d.%d" % version
        if 100 <= code <= 199:
            info.info_code = code
            info.info_msg = reason

    def header(self, is_orig: bool, name: bytes, value: bytes, info: Transaction | None = None) -> None:
        """HTTP_Header (keep-alive, close, upgrade) and the http_header event.

        ``info``: the record of the message (``_set_state(is_orig)``), when the caller has it already.
        """
        if name == b"CONNECTION":
            token, _ = _value_token(value)
            token = token.lower() if token is not None else b""
            if is_orig:
                if token == b"keep-alive":
                    self.keep_alive = True
            elif token == b"close":
                self.connection_close = True
            elif token == b"upgrade":
                self.upgrade_connection = True
        elif name == b"UPGRADE" and not is_orig:
            token, _ = _value_token(value)
            self.upgrade_protocol = token or b""
        if info is None:
            info = self._set_state(is_orig)
        if is_orig:
            if name == b"REFERER":
                info.referrer = value
            elif name == b"HOST":
                info.host = value
            elif name == b"ORIGIN":
                info.origin = value
            elif name == b"USER-AGENT":
                info.user_agent = value
            elif name in PROXY_HEADERS:
                if info.proxied is None:
                    info.proxied = set()
                info.proxied.add(name + b" -> " + value)
            elif name in (b"AUTHORIZATION", b"PROXY-AUTHORIZATION"):
                if _BASIC.match(value):
                    encoded = _BASIC_STRIP.sub(b"", value, count=1)
                    try:
                        userpass = base64.b64decode(encoded + b"===")
                    except ValueError:
                        userpass = b""
                    user, colon, password = userpass.partition(b":")
                    if colon:
                        info.username = user
                        if self.capture_passwords:
                            info.password = password
                    else:
                        info.username = b"<problem-decoding> (" + value + b")"
                        if self.capture_passwords:
                            info.password = userpass
        if name == b"CONTENT-DISPOSITION" and _FILENAME.search(value) or \
                name == b"CONTENT-TYPE" and _NAME_EQ.search(value):
            if info.current_entity is not None:
                info.current_entity[0] = _filename(value)

    def begin_entity(self, is_orig: bool) -> None:
        info = self._set_state(is_orig)
        info.current_entity = [None]

    def end_entity(self, is_orig: bool) -> None:
        info = self._set_state(is_orig)
        info.current_entity = None

    def new_file(self, is_orig: bool) -> _Entity:
        return _Entity(is_orig)

    def file_start(self, file: _Entity) -> None:
        """file_over_new_connection: the file belongs to the record current now (Zeek's c$http)."""
        file.started = True
        if self.keep_bodies:
            file.data = bytearray()
        info = self.current if self.current is not None else self._set_state(file.is_orig)
        file.info = info
        entity = info.current_entity
        if entity is not None and entity[0] is not None:
            file.filename = entity[0]
            if file.is_orig:
                info.orig_filenames = (info.orig_filenames or []) + [entity[0]]
            else:
                info.resp_filenames = (info.resp_filenames or []) + [entity[0]]

    def file_end(self, file: _Entity) -> None:
        """End of file: sniff its MIME type (file_sniff) into the record it belongs to."""
        mime = sniff_mime(file.bof)
        info = file.info
        if mime is not None and info is not None:
            if file.is_orig:
                info.orig_mime_types = (info.orig_mime_types or []) + [mime]
            else:
                info.resp_mime_types = (info.resp_mime_types or []) + [mime]
        if self.keep_bodies:
            self.files.append((file, info, mime))
        file.started = False

    def weird(self, name: str, addl=None) -> None:
        if isinstance(addl, (bytes, bytearray)):
            addl = bytes(addl).decode("utf-8", "backslashreplace")
        self.weirds.append((self.frame, name, addl))


def _filename(value: bytes) -> bytes:
    """Zeek's extract_filename_from_content_disposition (filename= or filename*=, quotes removed)."""
    m = _CD_FILENAME.search(value)
    if m is None:
        m = re.search(rb"""[nN][aA][mM][eE][ \t]*=[ \t]*(?:"([^"]*)"|([^;]*))""", value)
        if m is None:
            return value
    name = m.group(1) if m.group(1) is not None else m.group(2).strip()
    if b"''" in name:          # RFC 5987 charset''value
        name = name.split(b"''", 1)[1]
    return name
