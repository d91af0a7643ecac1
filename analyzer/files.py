"""Files carried by application protocols: MIME sniffing and extraction to disk.

Two small, protocol-independent tools (HTTP uses them; SMTP attachments can too):

* :func:`sniff_mime` names the type of a body from its first bytes, the way
  Zeek's file analysis does (``files.log`` ``mime_type``, ``http.log``
  ``resp_mime_types``): Zeek's own text signatures
  (``base/frameworks/files/magic/general.sig``: plain text, HTML, XML, JSON,
  JavaScript …, each with Zeek's strength) and a table of binary magic
  numbers named with Zeek's MIME names (PNG, GIF, JPEG, PDF, ZIP, gzip,
  Windows executables, ELF …); other binary data falls back to
  ``puremagic`` (a pure-Python magic-number database: no system library,
  same answer on every machine).  Only the first :data:`BOF_BYTES` bytes
  are looked at (Zeek's ``default_file_bof_buffer_size``).
* :class:`FileExtractor` saves bodies under a directory, named by their
  SHA-256 (like ``zeek -e 'redef FileExtract::default_limit…'`` with
  ``extract-all-files``, but content-addressed, so a body seen twice is
  stored once), and remembers each file's SHA-1, SHA-256, size, MIME type
  and source in :attr:`FileExtractor.records` (the ``files`` frame).

Example::

    from analyzer.files import FileExtractor, sniff_mime
    sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n....")            # 'image/png'
    sniff_mime(b"<!DOCTYPE html><html>")          # 'text/html'
    extractor = FileExtractor("/tmp/extracted")
    path = extractor.save(body, source="HTTP")     # /tmp/extracted/<sha256>
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd

__all__ = ["BOF_BYTES", "FILES", "FileExtractor", "sniff_mime"]

#: Bytes of a file's beginning that sniffing looks at (Zeek's default_file_bof_buffer_size).
BOF_BYTES = 4096

_BOM = rb"(?:\xef\xbb\xbf)?"
_WS = rb"[\r\n \t]*"
_COMMENTS = rb"(?:" + _WS + rb"(?:<!--.*?-->)?" + _WS + rb")*"
_PROLOGUE = _BOM + _COMMENTS + rb"(?:<\?xml .*?\?>)?" + _COMMENTS

# (strength, pattern, MIME type): Zeek's general.sig text signatures, highest strength wins.
_TEXT_RULES = [
    (250, rb"#![^\n]{1,15}bin/(?:env\s+)?(?:ba|tc|c|z|fa|ae|k)?sh", "text/x-shellscript"),
    (100, _PROLOGUE + rb"<(?:!doctype +html|html|meta +http-equiv)", "text/html"),
    (100, _PROLOGUE + rb"<(?:rss[^>]*xmlns:atom|feed[^>]*xmlns=[\"']?http://www.w3.org/2005/Atom)",
     "text/atom"),
    (90, _PROLOGUE + rb"<rss", "text/rss"),
    (60, rb"#![^\n]{1,15}bin/(?:env\s+)?perl", "text/x-perl"),
    (60, rb"#![^\n]{1,15}bin/(?:env\s+)?ruby", "text/x-ruby"),
    (60, rb"#![^\n]{1,15}bin/(?:env\s+)?python", "text/x-python"),
    (60, rb"#![^\n]{1,15}bin/(?:env\s+)?php", "text/x-php"),
    (60, rb"#![^\n]{1,15}bin/(?:env\s+)?node(?:js)?", "application/javascript"),
    (60, _WS + rb"<script[ \t]+(?:type|language)=['\"]?(?:text/)?javascript", "application/javascript"),
    (60, _WS + rb"for \(;;\);", "application/javascript"),
    (60, _WS + rb"document\.write(?:ln)?[ \t:]?\(", "application/javascript"),
    (60, rb"\(function\(\)[ \t\n]*\{", "application/javascript"),
    (60, _WS + rb"<script>" + _WS + rb"(?:var|function) ", "application/javascript"),
    (49, _PROLOGUE + rb"<!doctype +html", "text/html"),
    (49, _PROLOGUE + rb"<soap(?:-env)?:envelope", "application/soap+xml"),
    (49, _PROLOGUE + rb"<methodresponse>", "application/xml-rpc"),
    (49, _PROLOGUE + rb"<(?:!doctype +)?cross-domain-policy", "text/x-cross-domain-policy"),
    (40, rb"[^\n]*<\?php", "text/x-php"),
    (20, _PROLOGUE + rb"<(?:head|html|title|body)", "text/html"),
    (10, _BOM + _COMMENTS + rb"<\?xml ", "application/xml"),
    (1, _BOM + _WS + rb"\{" + _WS + rb"(?:\"[^\"]+\"|[a-zA-Z][a-zA-Z0-9\\_]*)" + _WS + rb":" + _WS
     + rb"(?:\"|\[|\{|[0-9]|true|false)", "text/json"),
    (1, _BOM + _WS + rb"\[" + _WS + rb"(?:(?:(?:\"[^\"]+\"|[0-9]+(?:\.[0-9]+)?|true|false)" + _WS
     + rb",)|\{|\[)", "text/json"),
    (0, _BOM + _WS + rb"(?:\[\]|\{\})" + _WS + rb"\Z", "text/json"),
    (-20, rb"(?:\xef\xbb\xbf|(?:\x00\x00)?\xfe\xff|\xff\xfe(?:\x00\x00)?)?[\s\x20-\x7e]{10}", "text/plain"),
]
# Zeek spells case-insensitive parts as [hH][tT]…: those rules are compiled with IGNORECASE.
_CASE_SENSITIVE = {"text/x-shellscript", "text/x-perl", "text/x-ruby", "text/x-python", "text/x-php",
                   "text/plain", "application/xml", "application/javascript"}

# (strength, magic prefix or regex, MIME type) for binary formats, with Zeek's names (libmagic.sig,
# image.sig, archive.sig, executable.sig …).
_BINARY_RULES = [
    (110, rb"\x89PNG\r\n\x1a\n", "image/png"),
    (100, rb"GIF8[79]a", "image/gif"),
    (100, rb"\xff\xd8\xff", "image/jpeg"),
    (100, rb"%PDF-", "application/pdf"),
    (100, rb"PK\x03\x04.{1,200}\x14\x00..META-INF/MANIFEST\.MF", "application/java-archive"),
    (70, rb"PK\x03\x04", "application/zip"),
    (100, rb"\x1f\x8b", "application/x-gzip"),
    (100, rb"BZh", "application/x-bzip2"),
    (100, rb"\xfd7zXZ\x00", "application/x-xz"),
    (100, rb"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (100, rb"Rar!\x1a\x07", "application/x-rar"),
    (51, rb"MZ", "application/x-dosexec"),
    (50, rb"\x7fELF[\x01\x02](?:\x01.{10}\x02\x00|\x02.{10}\x00\x02)", "application/x-executable"),
    (50, rb"\x7fELF[\x01\x02](?:\x01.{10}\x03\x00|\x02.{10}\x00\x03)", "application/x-sharedlib"),
    (50, rb"\x7fELF[\x01\x02](?:\x01.{10}\x01\x00|\x02.{10}\x00\x01)", "application/x-object"),
    (71, rb"\xca\xfe\xba\xbe...[\x2d-\x34]", "application/x-java-applet"),
    (100, rb"[\xce\xcf]\xfa\xed\xfe", "application/x-mach-o-executable"),
    (60, rb"(?:F|C|Z)WS", "application/x-shockwave-flash"),
    (100, rb"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/vnd.ms-office"),
    (100, rb"RIFF....WEBP", "image/webp"),
    (100, rb"RIFF....WAVE", "audio/wav"),
    (100, rb"RIFF....AVI ", "video/avi"),
    (100, rb"\x00\x00\x01\x00", "image/x-icon"),
    (100, rb"BM....\x00\x00\x00\x00", "image/bmp"),
    (100, rb"(?:II\*\x00|MM\x00\*)", "image/tiff"),
    (100, rb"ID3", "audio/mpeg"),
    (100, rb"OggS", "application/ogg"),
    (100, rb"\x1aE\xdf\xa3", "video/webm"),
    (100, rb"....ftyp", "video/mp4"),
    (100, rb"wOFF", "application/font-woff"),
    (100, rb"wOF2", "application/font-woff2"),
    (70, rb"(?:\xa1\xb2\xc3\xd4|\xd4\xc3\xb2\xa1)", "application/vnd.tcpdump.pcap"),
    (100, rb"\x0a\x0d\x0d\x0a.{4}(?:\x1a\x2b\x3c\x4d|\x4d\x3c\x2b\x1a)", "application/vnd.tcpdump.pcap"),
    (100, rb"-----BEGIN CERTIFICATE-----", "application/x-pem"),
    (100, rb"\x30\x82..\x30\x82", "application/x-x509-ca-cert"),
]
# All rules in one alternation, strongest first (binary before text at equal strength): the first
# alternative that matches is the strongest match, found with one regex call.
_RULES = sorted([(strength, 0, pattern, mime, False) for strength, pattern, mime in _BINARY_RULES]
                + [(strength, 1, pattern, mime, mime not in _CASE_SENSITIVE)
                   for strength, pattern, mime in _TEXT_RULES], key=lambda rule: (-rule[0], rule[1]))
_MIMES = [rule[3] for rule in _RULES]


def _alternation(keep: list) -> re.Pattern:
    """The rules ``i`` with ``keep[i]`` as one regex, strongest first; group ``r<i>`` is rule ``i`` of _RULES."""
    return re.compile(b"|".join(b"(?P<r%d>%s)" % (i, b"(?i:" + pattern + b")" if insensitive else pattern)
                                for i, (_, _, pattern, _, insensitive) in enumerate(_RULES) if keep[i]),
                      re.DOTALL)


# Most rules can only match when the data, after an optional BOM and whitespace, starts with '<' (the
# XML/HTML prologue ones and '<script'), one only when "<?php" occurs, and the binary ones only when the
# data starts with their first byte.  Data is tried against the rules it can match alone (one regex per
# kind of data, made when first needed): the same first match, as the order is kept, with fewer attempts.
def _needs_angle(pattern: bytes) -> bool:
    return pattern.startswith((_PROLOGUE, _BOM + _COMMENTS + b"<", _WS + b"<"))


def _needs_php(pattern: bytes) -> bool:
    return b"<\\?php" in pattern


def _first_byte(pattern: bytes, insensitive: bool) -> int | None:
    """The byte every match starts with, when the pattern starts with one literal byte (else None)."""
    if insensitive:
        return None
    if pattern[:2] == b"\\x":
        byte, after = int(pattern[2:4], 16), pattern[4:5]
    elif pattern[:1] and pattern[:1] not in b"\\[](){}.*+?^$|":
        byte, after = pattern[0], pattern[1:2]
    else:
        return None
    return None if after and after in b"?*{" else byte


_FIRST_BYTES = [_first_byte(pattern, insensitive) for _, _, pattern, _, insensitive in _RULES]
_LITERAL_STARTS = frozenset(byte for byte in _FIRST_BYTES if byte is not None)
_ANGLE_LEAD = re.compile(_BOM + _WS + b"<")
_BY_KIND: dict = {}


def _rules_for(head: bytes) -> re.Pattern:
    """The alternation of the rules that can match ``head`` (non-empty)."""
    first = head[0] if head[0] in _LITERAL_STARTS else -1
    kind = (first, _ANGLE_LEAD.match(head) is not None, b"<?php" in head)
    pattern = _BY_KIND.get(kind)
    if pattern is None:
        _, angle, php = kind
        keep = [(_FIRST_BYTES[i] in (None, first)) and (angle or not _needs_angle(rule[2]))
                and (php or not _needs_php(rule[2])) for i, rule in enumerate(_RULES)]
        pattern = _BY_KIND[kind] = _alternation(keep)
    return pattern


_TEXTISH = re.compile(rb"[\s\x20-\x7e]*")


def sniff_mime(data: bytes, deep: bool = False) -> str | None:
    """The MIME type of a file whose first bytes are ``data`` (None when nothing matches).

    Text signatures and strengths are Zeek's (``general.sig``); binary formats
    use Zeek's MIME names.  ``deep=True`` also tries ``puremagic``'s database
    on binary data nothing else matched (about 1 ms a call, so off by
    default: the table above is one regex call, over the rules that can
    match data with that start).  Never raises.
    Fewer than 10 printable bytes are not "text/plain", as in Zeek.
    """
    if not data:
        return None
    head = bytes(data[:BOF_BYTES])
    m = _rules_for(head).match(head)
    if m is not None:
        return _MIMES[int(m.lastgroup[1:])]
    if deep and _TEXTISH.match(head[:64]).end() < min(len(head), 64):
        return _puremagic(head)
    return None


def _puremagic(head: bytes) -> str | None:
    try:
        import puremagic
    except ImportError:     # optional: the table above covers the common formats
        return None
    try:
        mime = puremagic.from_string(head, mime=True)
    except Exception:       # puremagic raises PureError (and others on odd input): no match
        return None
    return mime or None


#: Columns of the ``files`` frame made from :attr:`FileExtractor.records`.
FILES = ("ts", "source", "frame.number", "is_orig", "filename", "mime_type", "total_bytes", "sha1", "sha256",
         "extracted")


class FileExtractor:
    """Save file bodies under ``directory``, named by their SHA-256.

    Args:
        directory: created when missing.
        max_bytes: bodies larger than this are cut (Zeek's
            ``FileExtract::default_limit``; 0 for no limit).

    ``save`` writes ``<directory>/<sha256>`` (written once per content: a
    body seen again is not rewritten) and returns its path; ``records``
    keeps one dict per call (the ``files`` frame: :meth:`frame`).
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int = 0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.records: list[dict] = []

    def save(self, data: bytes, source: str = "", **meta) -> Path:
        """Write ``data``; returns the file's path.

        ``source`` names the protocol (``HTTP``, ``SMTP``); other keyword
        arguments (``ts``, ``frame.number`` as ``frame``, ``is_orig``,
        ``filename``, ``mime_type``) go into the record as they are.

        Raises:
            OSError: the file cannot be written.
        """
        if self.max_bytes and len(data) > self.max_bytes:
            data = data[:self.max_bytes]
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.directory / sha256
        if not path.exists():
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(data)
            os.replace(partial, path)
        record = {"ts": meta.get("ts"), "source": source, "frame.number": meta.get("frame"),
                  "is_orig": meta.get("is_orig"), "filename": meta.get("filename"),
                  "mime_type": meta.get("mime_type", sniff_mime(data)), "total_bytes": len(data),
                  "sha1": hashlib.sha1(data).hexdigest(), "sha256": sha256, "extracted": str(path)}
        self.records.append(record)
        return path

    def frame(self) -> pd.DataFrame:
        """One row per saved file (columns :data:`FILES`)."""
        frame = pd.DataFrame(self.records, columns=list(FILES))
        return frame.astype({"ts": "Float64", "source": "string", "frame.number": "Int64", "is_orig": "boolean",
                             "filename": "string", "mime_type": "string", "total_bytes": "Int64",
                             "sha1": "string", "sha256": "string", "extracted": "string"})
