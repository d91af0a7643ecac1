"""Mail messages as Zeek's MIME analyzer sees them: header fields, entities, the data of each leaf.

:func:`parse_message` takes the bytes of one message (DATA content with the
dot-stuffing still in, or BDAT chunks) and returns a :class:`ParsedMessage`:

* ``headers``: the top-level entity's header fields in order, as Zeek's
  ``mime_one_header`` events carry them: the name upper-cased, the value the
  text after the colon with leading white space removed and continuation
  lines joined without a separator (``MIME_Header``); a line without a colon
  is dropped; a field longer than ``max_header_bytes`` (Zeek's
  ``MIME::max_header_bytes``, 65,536) keeps its first lines and gives the weird
  ``exceeded_mime_max_header_bytes`` (addl: the bytes held).
* ``entities``: how many entities began (Zeek's ``mime_begin_entity``: the
  top level, each multipart part, the body of a message/rfc822).
* ``parts``: the leaf entities that carried data, in order, each one
  :class:`Part` (what Zeek hands to the file analysis and lists in
  ``fuids``): declared content type, file name, decoded size, the data.
* ``sub_user_agents``: User-Agent values of nested entities (Zeek's
  software.zeek still looks at them).

Entity rules are Zeek's ``MIME_Entity``: lines end at LF (CRs before it
dropped); a multipart entity splits at lines that start with ``--boundary``
(``--boundary--`` closes it; what follows is ignored); a part inherits its
parent's transfer encoding; base64 and quoted-printable are decoded; for
other encodings the lines are joined with CRLF, and a part of a multipart
loses the CRLF that precedes the next boundary.

The :mod:`email` package is used where Zeek has no equivalent and exact
values are not at stake: file names (RFC 2231 parameters, quotes and
encoded words, via :meth:`email.message.Message.get_filename` and
:func:`email.header.decode_header`) and, on request, decoding encoded words
in header values (:func:`decode_words`).  Parsing whole messages with it
costs 0.05-0.5 ms per message (measured: compat32 56 µs for ten header
fields, policy ``default`` 560 µs with field access), ten times the budget
of the SMTP stage, and would change the values Zeek logs; the header fields
are therefore read here, by Zeek's rules.
"""

from __future__ import annotations

import binascii
import email.message
import email.policy
import re
from email.header import decode_header
from typing import NamedTuple

MAX_HEADER_BYTES = 65536
HEAD_BYTES = 4096          # bytes of a part kept for type sniffing (Zeek's default_file_bof_buffer_size)
_HEADER_FACTORY = email.policy.default.header_factory
MAX_DEPTH = 100

# Content types and encodings as MIME.cc numbers them.
TYPE_MULTIPART, TYPE_MESSAGE, TYPE_TEXT, TYPE_OTHER = 0, 1, 2, 3
ENC_7BIT, ENC_8BIT, ENC_BINARY, ENC_QP, ENC_BASE64, ENC_OTHER = 0, 1, 2, 3, 4, 5
_TYPES = {b"MULTIPART": TYPE_MULTIPART, b"MESSAGE": TYPE_MESSAGE, b"TEXT": TYPE_TEXT}
_ENCODINGS = {b"7BIT": ENC_7BIT, b"8BIT": ENC_8BIT, b"BINARY": ENC_BINARY, b"QUOTED-PRINTABLE": ENC_QP,
              b"BASE64": ENC_BASE64}

# A field name directly followed by the colon: Zeek's rules give the same result as this match.
_FAST_FIELD = re.compile(rb"([!-'*-9;-~][!-9;-~]*):[ \t\r\n\x0b\x0c]*")
_SPACES = b" \t\r\n\x0b\x0c"
_EOL = re.compile(rb"\r*\n")
_BLANK_START = re.compile(rb"\r+\n")
_BLOCK_END = re.compile(rb"\n\r*\n|\n\x00")
_FIELD = rb"([!-'\x29-9;-~][!-9;-~]*+)(?:[ \t]*\r*\n(?=[ \t]))*[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
_FIELD_FIRST = re.compile(_FIELD)
_FIELD_NEXT = re.compile(b"\n" + _FIELD)      # a literal first byte: the engine skips to each line start
# Lines the regex above would not read as Zeek does: one starting with a character that cannot start
# a field name (a comment, a colon, a control or 8-bit byte) or with a CR before text, and a comment
# between a name and its colon.
_ODD_START = re.compile(rb"\n(?:[^!-'\x29-9;-~ \t\r\n]|\r++[^\r\n])")
_ODD_FIRST = re.compile(rb"[^!-'\x29-9;-~\r\n]|\r++[^\r\n]")
_ODD_COMMENT = re.compile(rb"(?:^|\n)[!-'\x29-9;-~][!-9;-~]*+(?:[ \t]*+\r*+\n[ \t])*+[ \t]*+\(", re.MULTILINE)
_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?=')


class Part(NamedTuple):
    """A leaf entity that carried data (one Zeek ``fuid``)."""

    content_type: str          # declared type/subtype, lower case ("text/plain" when none)
    filename: str | None       # from Content-Disposition filename= or Content-Type name=, decoded
    size: int                  # decoded bytes
    data: bytes                # the decoded bytes


class ParsedMessage(NamedTuple):
    headers: list              # [(NAME, value)] of the top-level entity
    entities: int              # entities begun (top level included)
    parts: list                # [Part]
    sub_user_agents: list      # User-Agent values of nested entities
    weirds: list               # [(name, addl, offset in the message)]


class _Entity:
    __slots__ = ("boundary", "ctype", "encoding", "filename_headers", "subtype", "type_name")

    def __init__(self, encoding: int):
        self.ctype = TYPE_TEXT
        self.type_name = b"TEXT"
        self.subtype = b"PLAIN"
        self.encoding = encoding
        self.boundary: bytes | None = None
        self.filename_headers: list = []


def text(raw: bytes) -> str:
    """Header bytes as text: UTF-8 where valid, other bytes as ``\\xNN`` (Zeek's log escapes)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words of ``value`` decoded by the :mod:`email` package (policy ``default``).

    The value is read as an unstructured RFC 5322 field (``email.policy.default``
    header factory), which also decodes words not separated by white space, as
    mail programs write them; on failure the value is returned unchanged.
    """
    if "=?" not in value:
        return value
    try:
        return str(_HEADER_FACTORY("subject", value))
    except Exception:  # noqa: BLE001 - malformed encoded words: try the plain decoder, else keep the raw text
        try:
            return "".join(piece if isinstance(piece, str) else piece.decode(charset or "ascii", "replace")
                           for piece, charset in decode_header(value))
        except Exception:  # noqa: BLE001
            return value


# --- MIME.cc's lexical helpers --------------------------------------------------------------------


def _skip_lws_comments(s: bytes, i: int) -> int:
    n = len(s)
    if i < n and s[i] not in (32, 9, 40):
        return i
    while i < n:
        c = s[i]
        if c == 32 or c == 9:
            i += 1
        elif c == 40:                        # "(": a comment, nested, with quoted pairs
            depth = 0
            while i < n:
                c = s[i]
                if c == 40:
                    depth += 1
                elif c == 41:
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                elif c == 92:
                    i += 1
                i += 1
        else:
            return i
    return n


_TOKEN_RE = re.compile(rb"[!#-'*+\-.0-9A-Z^-~]+")        # RFC 2045 token: no controls, space, tspecials
_BOUNDARY_TOKEN_RE = re.compile(rb"[!#-~]+")             # Zeek's boundary token: anything printable but '"'
_TYPE_SLASH_SUBTYPE = re.compile(rb"([!#-'*+\-.0-9A-Z^-~]+)/([!#-'*+\-.0-9A-Z^-~]+)")   # two tokens, no LWS


def _token(s: bytes, i: int, boundary: bool = False) -> tuple[bytes, int] | None:
    n = len(s)
    if not boundary:
        i = _skip_lws_comments(s, i)
    rx = _BOUNDARY_TOKEN_RE if boundary else _TOKEN_RE
    while i < n:
        m = rx.match(s, i)
        if m is not None:
            return m.group(), m.end()
        j = _skip_lws_comments(s, i) - i
        i += j if j > 0 else 1
    return None


def _value(s: bytes, i: int, boundary: bool = False) -> tuple[bytes, int] | None:
    if not boundary:
        i = _skip_lws_comments(s, i)
    if i < len(s) and s[i] == 34:             # quoted string with quoted pairs
        close = s.find(b'"', i + 1)
        if close >= 0 and s.find(b"\\", i + 1, close) < 0:
            return s[i + 1:close], close + 1  # no quoted pair: the text up to the closing quote
        j = i + 1
        out = bytearray()
        while j < len(s):
            c = s[j]
            if c == 34:
                return bytes(out), j + 1
            if c == 92:
                j += 1
                if j < len(s):
                    out.append(s[j])
            else:
                out.append(c)
            j += 1
        return None
    return _token(s, i, boundary)


def _field(raw: bytes) -> tuple[bytes, bytes] | None:
    """(upper-case name, value) of a joined header field, or None when it has no colon (Zeek's MIME_Header)."""
    m = _FAST_FIELD.match(raw)
    if m is not None:
        return m.group(1).upper(), raw[m.end():]
    if b":" not in raw:
        return None
    n = len(raw)
    i = _skip_lws_comments(raw, 0)
    while i < n:
        c = raw[i]
        if 33 <= c <= 126 and c != 58:
            j = i
            while j < n and 33 <= raw[j] <= 126 and raw[j] != 58:
                j += 1
            name = raw[i:j]
            k = _skip_lws_comments(raw, j)
            if k < n and raw[k] == 58:
                return name.upper(), raw[k + 1:].lstrip(_SPACES)
            return None
        j = _skip_lws_comments(raw, i) - i
        i += j if j > 0 else 1
    return None


def _content_type(entity: _Entity, value: bytes) -> None:
    m = _TYPE_SLASH_SUBTYPE.match(value)
    if m is not None:                         # the usual "type/subtype": what the token walk below finds
        type_name, subtype, i = m.group(1), m.group(2), m.end()
    else:
        first = _token(value, 0)
        if first is None:
            return
        i = _skip_lws_comments(value, first[1])
        if i >= len(value) or value[i] != 47:   # "/"
            return
        second = _token(value, i + 1)
        if second is None:
            return
        type_name, subtype, i = first[0], second[0], second[1]
    entity.type_name = type_name.upper()
    entity.ctype = _TYPES.get(entity.type_name, TYPE_OTHER)
    entity.subtype = subtype.upper()
    if entity.ctype in (TYPE_MULTIPART, TYPE_MESSAGE):
        while True:
            i = _skip_lws_comments(value, i)
            if i >= len(value) or value[i] != 59:    # ";"
                break
            attr = _token(value, i + 1)
            if attr is None:
                break
            i = _skip_lws_comments(value, attr[1])
            if i >= len(value) or value[i] != 61:    # "="
                continue
            is_boundary = entity.ctype == TYPE_MULTIPART and attr[0].lower() == b"boundary"
            got = _value(value, i + 1, is_boundary)
            if got is None:
                continue
            if is_boundary:
                entity.boundary = got[0]
            i = got[1]
    if entity.ctype == TYPE_MULTIPART and entity.boundary is None:
        entity.ctype = TYPE_OTHER


class _Parser:
    """One message: Zeek's MIME_Entity rules over a byte buffer (no per-line work in bodies)."""

    def __init__(self, data: bytes, max_header_bytes: int, keep_data: bool):
        self.data = data
        self.max_header_bytes = max_header_bytes
        self.keep_data = keep_data
        self.entities = 0
        self.parts: list[Part] = []
        self.sub_user_agents: list[str] = []
        self.weirds: list = []

    def headers(self, pos: int, end: int) -> tuple[list, int]:
        """Header fields starting at ``pos``: ``([(NAME bytes, value bytes)], body start)``.

        The common case is done with regular expressions over the whole header
        block; a block with an odd line (one starting with a character that
        cannot start a field name, a comment between name and colon, the first
        line a continuation) or longer than ``max_header_bytes`` goes line by line.
        """
        data = self.data
        if pos >= end:
            return [], end
        first = data[pos]
        if first == 10 or first == 0 or (first == 13 and _BLANK_START.match(data, pos)):
            nl = data.find(b"\n", pos, end)
            return [], end if nl < 0 else nl + 1
        m = _BLOCK_END.search(data, pos, end)
        block_end, body = (end, end) if m is None else (m.start() + 1, m.end())
        if body < end and data[body - 1] == 0:      # a line starting with NUL ends the headers; it is skipped
            nl = data.find(b"\n", body, end)
            body = end if nl < 0 else nl + 1
        if (block_end - pos < (self.max_header_bytes or 1 << 62) and _ODD_FIRST.match(data, pos) is None
                and _ODD_START.search(data, pos, block_end) is None
                and (data.find(b"(", pos, block_end) < 0 or _ODD_COMMENT.search(data, pos, block_end) is None)):
            fields = []
            # No field starts after the line of the last colon: stop the scan there (long runs of
            # colon-less lines, e.g. a body sent without the blank line, cost nothing).
            colon = data.rfind(b":", pos, block_end)
            if colon < 0:
                return fields, body
            stop = data.find(b"\n", colon, block_end)
            while 0 <= stop < block_end - 1 and data[stop + 1] in (32, 9):
                stop = data.find(b"\n", stop + 1, block_end)
            block_end = block_end if stop < 0 else stop
            f = _FIELD_FIRST.match(data, pos, block_end)
            if f is None:
                found = _FIELD_NEXT.findall(data, pos, block_end)
            else:
                found = _FIELD_NEXT.findall(data, f.end(), block_end)      # (name, value) pairs
                found.insert(0, f.groups())
            for name, value in found:
                if b"\n" in value:
                    value = _EOL.sub(b"", value)
                fields.append((name.upper(), value.rstrip(b"\r").lstrip(_SPACES)))
            return fields, body
        return self._headers_by_line(pos, end)

    def _headers_by_line(self, pos: int, end: int) -> tuple[list, int]:
        data = self.data
        limit = self.max_header_bytes
        fields: list = []
        current: list | None = None
        held = 0
        while pos < end:
            nl = data.find(b"\n", pos, end)
            nxt = end if nl < 0 else nl + 1
            e = end if nl < 0 else nl
            while e > pos and data[e - 1] == 13:
                e -= 1
            if e == pos or data[pos] == 0:
                if current is not None:
                    self._finish(current, fields)
                return fields, nxt
            c = data[pos]
            if c == 32 or c == 9:
                if current is None:             # "first header line starts with linear whitespace"
                    start = pos
                    while start < e and data[start] in (32, 9):
                        start += 1
                    if start < e:
                        current, held = [data[start:e]], e - start
                elif limit and held >= limit:
                    self.weirds.append(("exceeded_mime_max_header_bytes", str(held), pos))
                else:
                    current.append(data[pos:e])
                    held += e - pos
            else:
                if current is not None:
                    self._finish(current, fields)
                current, held = [data[pos:e]], e - pos
            pos = nxt
        if current is not None:
            self._finish(current, fields)
        return fields, end

    @staticmethod
    def _finish(lines: list, fields: list) -> None:
        field = _field(lines[0] if len(lines) == 1 else b"".join(lines))
        if field is not None:
            fields.append(field)

    def entity(self, start: int, end: int, encoding: int, parent_type: int | None, depth: int,
               top: bool = False) -> list:
        """Walk one entity on ``data[start:end]``; returns its header fields."""
        self.entities += 1
        fields, body = self.headers(start, end)
        entity = _Entity(encoding)
        for name, value in fields:
            if name == b"CONTENT-TYPE":
                _content_type(entity, value)
                if b"ame" in value or b"AME" in value:
                    entity.filename_headers.append(("Content-Type", value))
            elif name == b"CONTENT-TRANSFER-ENCODING":
                token = _token(value, 0)
                if token is not None:
                    entity.encoding = _ENCODINGS.get(token[0].upper(), ENC_OTHER)
            elif name == b"CONTENT-DISPOSITION":
                entity.filename_headers.append(("Content-Disposition", value))
            elif name == b"USER-AGENT" and not top:
                self.sub_user_agents.append(text(value))
        if body < end:
            self.body(entity, body, end, parent_type, depth)
        return fields

    def body(self, entity: _Entity, start: int, end: int, parent_type: int | None, depth: int) -> None:
        data = self.data
        if entity.ctype == TYPE_MULTIPART and depth < MAX_DEPTH:
            delim = b"--" + entity.boundary
            dl = len(delim)
            pos = start
            child = -1
            while True:
                i = data.find(delim, pos, end)
                if i < 0:
                    break
                if i != start and data[i - 1] != 10:
                    pos = i + 1
                    continue
                nl = data.find(b"\n", i, end)
                nxt = end if nl < 0 else nl + 1
                line_end = end if nl < 0 else nl
                while line_end > i and data[line_end - 1] == 13:
                    line_end -= 1
                if child >= 0:
                    self.entity(child, i, entity.encoding, TYPE_MULTIPART, depth + 1)
                if i + dl + 2 <= line_end and data[i + dl:i + dl + 2] == b"--":
                    child = -1
                    break
                child = nxt
                pos = nxt
            if child >= 0:
                self.entity(child, end, entity.encoding, TYPE_MULTIPART, depth + 1)
            return
        if entity.ctype == TYPE_MESSAGE and depth < MAX_DEPTH:
            self.entity(start, end, entity.encoding, TYPE_MESSAGE, depth + 1)
            return
        if entity.encoding == ENC_BASE64 and not self.keep_data:
            size, decoded = _base64_size(data[start:end])
        else:
            decoded = _decode(data[start:end], entity.encoding, parent_type == TYPE_MULTIPART)
            size = len(decoded)
        if size:
            self.parts.append(Part(_type_text(entity), _filename(entity.filename_headers), size,
                                   decoded if self.keep_data else decoded[:HEAD_BYTES]))


def _type_text(entity: _Entity) -> str:
    return (entity.type_name + b"/" + entity.subtype).decode("ascii", "replace").lower()


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_SPACE = b"\r\n \t"


def _base64_size(seg: bytes) -> tuple[int, bytes]:
    """(decoded size, first HEAD_BYTES decoded bytes) of a base64 body, without decoding all of it.

    "compact" is the body without line breaks, blanks and tabs; it is never made
    whole (one pass that keeps only what is not in the alphabet, a few bytes).
    """
    other = seg.translate(None, _B64_ALPHABET)      # the white space, the pads and anything else
    junk = other.translate(None, _B64_SPACE)
    compact_size = len(seg) - len(other) + len(junk)
    tail = seg[-16:].translate(None, _B64_SPACE)
    if len(tail) < 3:
        tail = seg.translate(None, _B64_SPACE)
    tail = tail[-3:]
    pads = len(tail) - len(tail.rstrip(b"="))        # 3: three or more, too many
    # valid: whole quads of the alphabet, the only "=" being the (at most two) final pads
    if compact_size % 4 == 0 and pads <= 2 and junk == b"=" * pads:
        want = HEAD_BYTES // 3 * 4 + 4
        window = want + want // 8               # enough for lines of 16 characters and more
        head = seg[:window].translate(None, _B64_SPACE)
        if len(head) < want and window < len(seg):
            head = seg.translate(None, _B64_SPACE)
        return compact_size // 4 * 3 - pads, binascii.a2b_base64(head[:want])[:HEAD_BYTES]
    decoded = _decode(seg, ENC_BASE64, False)
    return len(decoded), decoded[:HEAD_BYTES]


_QP_EOL = re.compile(rb"[ \t]*\r*\n")
_QP_ODD = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r*\n)")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _decode(seg: bytes, encoding: int, in_multipart: bool) -> bytes:
    """The bytes Zeek's MIME_Entity submits for a leaf body ``seg`` (the body's lines with their LFs)."""
    if not seg:
        return b""
    if not seg.endswith(b"\n"):
        seg += b"\n"                          # the last line, cut by the end of the message
    if encoding == ENC_BASE64:
        try:
            return binascii.a2b_base64(seg)
        except (binascii.Error, ValueError):
            # Whole 4-character groups of the alphabet only (a gap can leave a partial group).
            clean = re.sub(rb"[^A-Za-z0-9+/]", b"", seg)
            return binascii.a2b_base64(clean[: len(clean) // 4 * 4])
    if encoding == ENC_QP:
        if _QP_ODD.search(seg) is None:
            if (b" \r\n" in seg or b"\t\r\n" in seg or b"\r\r" in seg
                    or seg.count(b"\n") != seg.count(b"\r\n")):
                seg = _QP_EOL.sub(b"\r\n", seg)    # trailing blanks and CRs off, CRLF line ends
            return binascii.a2b_qp(seg)
        return b"".join(_qp_line(line) for line in _EOL.split(seg)[:-1])
    if b"\r\r" not in seg and seg.count(b"\n") == seg.count(b"\r\n"):
        body = seg
    else:
        body = _EOL.sub(b"\r\n", seg)
    return body[:-2] if in_multipart else body


def _qp_line(line: bytes) -> bytes:
    """One line as Zeek's DecodeQuotedPrintable emits it (trailing blanks dropped, ``=`` soft break)."""
    end = len(line) - 1
    while end >= 0 and line[end] in (9, 32):
        end -= 1
    out = bytearray()
    i = 0
    while i <= end:
        c = line[i]
        if c == 61:
            if i == end:
                return bytes(out)              # soft line break: no CRLF
            if i + 2 < len(line) and line[i + 1] in _HEX and line[i + 2] in _HEX:
                out.append(int(line[i + 1:i + 3], 16))
                i += 3
                continue
        out.append(c)
        i += 1
    out += b"\r\n"
    return bytes(out)


_FILENAME = {"Content-Disposition": re.compile(rb'(?i)(?:^|;)[ \t]*filename[ \t]*=[ \t]*(?:"([^"\\]*)"|([^ \t;"]+))'),
             "Content-Type": re.compile(rb'(?i)(?:^|;)[ \t]*name[ \t]*=[ \t]*(?:"([^"\\]*)"|([^ \t;"]+))')}


def _filename(headers: list) -> str | None:
    """File name from Content-Disposition filename= or Content-Type name= (RFC 2231, quotes, encoded words).

    Plain parameters are read here; RFC 2231 (``filename*=``), quoted pairs and
    encoded words go through :meth:`email.message.Message.get_filename`.
    """
    if not headers:
        return None
    for _, value in headers:
        if b"*" in value or b"=?" in value or b"\\" in value:
            break
    else:                                   # plain parameters only (a loop: any() over a generator costs more)
        for wanted in ("Content-Disposition", "Content-Type"):
            for name, value in headers:
                if name == wanted:
                    m = _FILENAME[name].search(value)
                    if m is not None:
                        return text(m.group(1) if m.group(1) is not None else m.group(2))
        return None
    msg = email.message.Message()
    for name, value in headers:
        msg[name] = text(value)
    try:
        name = msg.get_filename()
    except Exception:  # noqa: BLE001 - malformed parameters: no name
        return None
    if name is None:
        return None
    return decode_words(str(name))


def parse_message(data: bytes, stuffed: bool = True, max_header_bytes: int = MAX_HEADER_BYTES,
                  keep_data: bool = False, dots: list | None = None) -> ParsedMessage:
    """Walk one message (see the module docstring).

    Args:
        data: the message bytes (or a bytearray, copied once), lines ending
            in CRLF or LF.
        stuffed: DATA content: a leading ``.`` of each line is removed first.
        max_header_bytes: Zeek's ``MIME::max_header_bytes`` (0: no limit).
        keep_data: keep each part's whole decoded data (else its first 4 KiB,
            for type sniffing).
        dots: with ``stuffed``, the offsets of the dots to remove when the
            caller knows them (:class:`~.protocol.SmtpProtocol` does): no scan.
    """
    if stuffed and dots:
        view = memoryview(data)          # pieces without copies: the join is the only copy
        pieces = []
        prev = 0
        size = len(data)
        for dot in dots:
            if dot < size:
                pieces.append(view[prev:dot])
                prev = dot + 1
        pieces.append(view[prev:])
        data = b"".join(pieces)
    else:
        if type(data) is not bytes:
            data = bytes(data)
        if stuffed and dots is None and data:
            if data[:1] == b".":
                data = data[1:]
            if b"\n." in data:
                data = data.replace(b"\n.", b"\n")
    parser = _Parser(data, max_header_bytes, keep_data)
    fields = parser.entity(0, len(data), ENC_OTHER, None, 0, top=True)
    headers = [(name.decode("ascii", "replace"), text(value)) for name, value in fields]
    return ParsedMessage(headers, parser.entities, parser.parts, parser.sub_user_agents, parser.weirds)
