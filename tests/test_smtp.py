"""SMTP: the ``smtp`` frame (Zeek smtp.log semantics) from real, generated and hand-made conversations.

The round trip runs a real ``smtplib`` client against a real ``aiosmtpd``
server on 127.0.0.1 (free port chosen at run time) through a recording
proxy, and turns the recorded bytes into a capture (TCP handshake, segments
with consistent seq/ack, teardown): the rows must come out field for field
as sent.  ``aiosmtpd`` is a test dependency (``pip install aiosmtpd``); those
tests skip without it.
"""

from __future__ import annotations

import base64
import os
import random
import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from analyzer.verify.stage import run_stage
from analyzer.reassembly import Chunk, ConnKey, Delivery
from analyzer.smtp import SMTP, SmtpProtocol, SmtpStage, parse_message
from analyzer.smtp import protocol as P
from analyzer.smtp.message import _base64_size, _content_type, _decode, _Entity, _Parser, decode_words
from analyzer.smtp.text import (
    extract_email_addrs,
    extract_ip_addresses,
    rcpt_addresses,
    split_mime_email_addresses,
)
from captures.synthetic import generate, read_jsonl
from captures.writer import write_pcap

REPO = Path(__file__).resolve().parent.parent


# -- helpers -----------------------------------------------------------------------------------------


def analyze_capture(path, validate_checksums: bool = True, **options):
    """The pipeline with an SmtpStage over a capture: ``(tables, stage)``."""
    return run_stage(path, SmtpStage, validate_checksums, **options)


def conversation_frames(exchanges, client=("10.1.0.1", 40001), server=("10.1.0.2", 25), segment=None,
                        t0=1_700_000_000_000_000_000):
    """Ethernet frames of one TCP connection carrying ``exchanges`` ((from_client, bytes), in order).

    ``segment``: None for 1400-byte segments, an int for that size, "random" for 1-40 bytes.
    Each data segment is acknowledged by the peer; the client closes first.
    """
    rng = random.Random(7)
    frames, times = [], []
    seq = {True: 1000, False: 5000}
    now = [t0]

    def put(from_client, flags, payload=b""):
        src, dst = (client, server) if from_client else (server, client)
        pkt = (Ether() / IP(src=src[0], dst=dst[0]) /
               TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq[from_client], ack=seq[not from_client],
                   window=65535))
        if payload:
            pkt = pkt / Raw(payload)
        frames.append(raw(pkt))
        now[0] += 1_000_000
        times.append(now[0])
        seq[from_client] = (seq[from_client] + len(payload) + (1 if flags in ("S", "SA", "FA") else 0)) % 2**32

    put(True, "S")
    put(False, "SA")
    put(True, "A")
    for from_client, data in exchanges:
        pos = 0
        while pos < len(data):
            if segment == "random":
                size = rng.randint(1, 40)
            else:
                size = segment or 1400
            put(from_client, "PA", data[pos:pos + size])
            put(not from_client, "A")
            pos += size
    put(True, "FA")
    put(False, "FA")
    put(True, "A")
    return frames, times


def run_exchanges(exchanges, tmp_path, name="conv.pcap", **kwargs):
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in ("commands", "extract_dir", "decode_headers")}
    frames, times = conversation_frames(exchanges, **kwargs)
    path = tmp_path / name
    write_pcap(str(path), frames, times)
    return analyze_capture(path, **options)


def rows(tables):
    return tables["smtp"].to_dict("records")


def feed(stage, pieces, key=None):
    """Feed (is_orig, data[, gap]) pieces to a stage directly, then finish."""
    key = key or ConnKey("10.9.0.1", 40000, "10.9.0.2", 25, 1)
    for frame, piece in enumerate(pieces, 1):
        is_orig, data = piece[0], piece[1]
        gap = piece[2] if len(piece) > 2 else 0
        stage.feed_stream(Delivery(key, is_orig, Chunk(data, frame * 1000, gap, frame, False)))
    return stage.finish()


GREETING = (False, b"220 mx.example.org ESMTP ready\r\n")
EHLO = [(True, b"EHLO client.example\r\n"),
        (False, b"250-mx.example.org\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-STARTTLS\r\n250 8BITMIME\r\n")]


# -- text helpers and the MIME rules -----------------------------------------------------------------


def test_zeek_address_helpers():
    assert extract_email_addrs("FROM:<robin@icir.org> size=9030") == ["robin@icir.org"]
    assert extract_email_addrs(": <gurpartap@patriots.in>") == ["gurpartap@patriots.in"]
    assert extract_email_addrs("FROM:<>") == []
    # the delimiters go wherever they are in a match, not only at its ends (Zeek's gsub over the match)
    assert extract_email_addrs("TO:<a>b@x.example>") == ["ab@x.example"]
    assert extract_email_addrs("FROM:<a;b@c:d.example> SIZE=1") == ["ab@cd.example"]
    assert extract_email_addrs("a@b<c@d.example") == ["a@bc@d.example"]
    assert extract_email_addrs("<p@q.example>,<r@s.example>") == ["p@q.example", "r@s.example"]
    assert rcpt_addresses("TO:<a@b.example> ORCPT=rfc822;c@d.example") == ["a@b.example", "c@d.example"]
    assert split_mime_email_addresses('"Smith, J" <j@x.example>, b@y.example,') == \
        ['"Smith, J" <j@x.example>', "b@y.example"]
    received = "from mail.iosphere.net (mail.iosphere.net [216.58.97.33]) by mail.netsync.net with esmtp"
    assert extract_ip_addresses(received, True) == ["216.58.97.33"]
    assert extract_ip_addresses("by x (8.14.7/8.14.7) id 1.2.3.4;", True) == []       # not wrapped
    assert extract_ip_addresses("[2001:db8::1] and 192.0.2.300") == ["2001:db8::1", "192.0.2.30"]


def test_bdat_argument_like_zeek():
    assert P.parse_bdat_arg(b"86 LAST") == (86, True, None)
    assert P.parse_bdat_arg(b"86 last") == (86, True, None)
    assert P.parse_bdat_arg(b"86") == (86, False, None)
    assert P.parse_bdat_arg(b" 86 LAST")[2] == "BDAT not followed by a valid chunk-size"
    assert P.parse_bdat_arg(b"-42 LAST")[2] == "BDAT not followed by a valid chunk-size"
    assert P.parse_bdat_arg(b"86LAST")[2] == "BDAT chunk-size not valid"
    assert P.parse_bdat_arg(b"86 SCRAMBLE")[2] == "BDAT chunk-size followed by junk"
    assert P.parse_bdat_arg(b"86 LASTSCRAMBLE")[2] == "BDAT chunk-size followed by junk"
    assert P.parse_bdat_arg(b"15555555557777777777") == (15555555557777777777, False, None)
    assert P.parse_bdat_arg(b"184467440737095516150")[2] == "BDAT chunk-size too large"
    assert P.parse_bdat_arg(b"184467440737095516150 LAST")[2] == "BDAT argument bad length"
    assert P.parse_bdat_arg(b"18446744073709551615 LAST") == (18446744073709551615, True, None)


def test_headers_values_and_parts():
    msg = (b'From: "Gurpartap Singh" <g@patriots.in>\r\nTo: <r@y.in>\r\nSubject: =?utf-8?q?caf=C3=A9?=  \r\n'
           b"Cc: a@x.example,\r\n b@x.example\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"B1\"\r\n\r\n"
           b"preamble\r\n--B1\r\nContent-Type: text/plain\r\n\r\nhello\r\n\r\n--B1\r\n"
           b"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p a=3D\"1\">x=\r\ny</p>\r\n"
           b"--B1\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename*=UTF-8''caf%C3%A9.bin\r\n\r\nQUJD\r\nREVG\r\n--B1--\r\nepilogue\r\n")
    parsed = parse_message(msg, stuffed=False, keep_data=True)
    headers = dict(parsed.headers)
    assert headers["SUBJECT"] == "=?utf-8?q?caf=C3=A9?=  "         # raw, trailing blanks kept (Zeek)
    assert headers["CC"] == "a@x.example, b@x.example"               # continuation joined without CRLF
    assert parsed.entities == 4
    assert [(p.content_type, p.filename, p.size, p.data) for p in parsed.parts] == [
        ("text/plain", None, 7, b"hello\r\n"),                       # the CRLF before the boundary is dropped
        ("text/html", None, 17, b'<p a="1">xy</p>\r\n'),
        ("application/octet-stream", "café.bin", 6, b"ABCDEF")]
    assert decode_words(headers["SUBJECT"]) == "café  "


def _qp_reference(seg: bytes) -> bytes:
    """Zeek's DecodeQuotedPrintable, line by line."""
    out = bytearray()
    lines = seg.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in (x.rstrip(b"\r") for x in lines):
        end = len(line) - 1
        while end >= 0 and line[end] in (9, 32):
            end -= 1
        i, soft = 0, False
        while i <= end:
            c = line[i]
            if c == 61 and i == end:
                soft = True
            elif c == 61 and i + 2 < len(line) and all(x in b"0123456789abcdefABCDEF" for x in line[i + 1:i + 3]):
                out.append(int(line[i + 1:i + 3], 16))
                i += 2
            else:
                out.append(c)
            i += 1
        if not soft:
            out += b"\r\n"
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"=", b"3D", b"0F", b"\r", b"\n", b"\r\n", b" ", b"\t", b"z"]),
                min_size=1, max_size=20))
def test_quoted_printable_matches_zeek(pieces):
    seg = b"".join(pieces)
    assert _decode(seg, 3, False) == _qp_reference(seg)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"Subject", b"X(y)", b"(c)", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"a",
                                 b"b: c", b"\x00", b"\xc3\xa9", b"Foo (c) ", b"\r\n ", b"\r\n\t", b"To: x, y"]),
                min_size=1, max_size=16))
def test_header_fast_path_equals_line_by_line(pieces):
    data = b"".join(pieces)
    assert _Parser(data, 65536, False).headers(0, len(data)) == \
        _Parser(data, 65536, False)._headers_by_line(0, len(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=6000), st.sampled_from([1, 3, 4, 16, 76, 1000]),
       st.sampled_from([b"\r\n", b"\n", b" ", b"\r\n\t", b"\r\r\n"]),
       st.sampled_from([b"", b"\r\n", b"=", b"==\r\n", b"=A", b"*\r\n", b"\r\n=\r\n="]))
def test_base64_size_equals_decoding(raw, width, separator, tail):
    # the size and head read without decoding the body are those of the decoded body (Zeek decodes it)
    encoded = base64.b64encode(raw)
    seg = separator.join(encoded[i:i + width] for i in range(0, len(encoded), width)) + tail
    decoded = _decode(seg, 4, False)
    assert _base64_size(seg) == (len(decoded), decoded[:4096])


def test_content_type_fast_path_and_token_walk():
    def parsed(value):
        entity = _Entity(0)
        _content_type(entity, value)
        return entity.ctype, entity.type_name, entity.subtype, entity.boundary
    assert parsed(b'multipart/Mixed; boundary="B 1"') == (0, b"MULTIPART", b"MIXED", b"B 1")
    # blanks and comments around the slash: MIME.cc's token walk, same answer
    assert parsed(b"(c) text / plain") == parsed(b"text/plain") == (2, b"TEXT", b"PLAIN", None)
    assert parsed(b"multipart/mixed (x); boundary=b") == (0, b"MULTIPART", b"MIXED", b"b")
    assert parsed(b"multipart/mixed") == (3, b"MULTIPART", b"MIXED", None)      # no boundary: not multipart
    assert parsed(b"text") == parsed(b"/plain") == (2, b"TEXT", b"PLAIN", None)    # no type: the default


# -- the state machine (sans-I/O) --------------------------------------------------------------------


def test_protocol_events_pipelining_and_dot_unstuffing():
    proto = SmtpProtocol()
    events = proto.receive(False, b"220 mx ready\r\n")
    assert [(e.code, e.command) for e in events] == [(220, ">")]
    proto.receive(True, b"EHLO c\r\n")
    proto.receive(False, b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    assert proto.extensions == ["PIPELINING", "CHUNKING"]
    events = proto.receive(True, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@z>\r\nDATA\r\n")
    assert [e.command for e in events] == ["MAIL", "RCPT", "RCPT", "DATA"]
    events = proto.receive(False, b"250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n")
    assert [(e.code, e.command) for e in events] == [(250, "MAIL"), (250, "RCPT"), (550, "RCPT"), (354, "DATA")]
    events = proto.receive(True, b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
    message = next(e for e in events if isinstance(e, P.Message))
    assert type(message.data) is bytes and message.dots == [15]         # the dot of "..dot"
    assert parse_message(message.data, message.stuffed, dots=message.dots, keep_data=True).parts[0].data == \
        b".dot\r\n"
    assert [e.command for e in events if isinstance(e, P.Request)] == [".", "QUIT"]
    events = proto.receive(False, b"250 queued\r\n221 bye\r\n")
    assert [(e.code, e.command) for e in events] == [(250, "."), (221, "QUIT")]


def test_protocol_auth_never_keeps_credentials():
    proto = SmtpProtocol()
    proto.receive(False, b"220 x\r\n")
    proto.receive(True, b"EHLO c\r\n")
    proto.receive(False, b"250 x\r\n")
    events = proto.receive(True, b"AUTH PLAIN AGZvbwBzZWNyZXQ=\r\n")
    assert [(e.command, e.arg) for e in events] == [("AUTH", "PLAIN")]
    proto.receive(False, b"334 VXNlcm5hbWU6\r\n")
    events = proto.receive(True, b"c2VjcmV0\r\n")
    assert [(e.command, e.arg) for e in events] == [("**", "")]


def test_every_byte_gives_the_same_events():
    script = [(False, b"220 mx\r\n"), (True, b"EHLO c\r\n"), (False, b"250-mx\r\n250 CHUNKING\r\n"),
              (True, b"MAIL FROM:<a@x>\r\n"), (False, b"250 ok\r\n"), (True, b"RCPT TO:<b@y>\r\n"),
              (False, b"250 ok\r\n"), (True, b"BDAT 20\r\nSubject: one\r\n\r\nbody"), (False, b"250 ok\r\n"),
              (True, b"BDAT 5 LAST\r\n tail"), (False, b"250 done\r\n"), (True, b"QUIT\r\n"),
              (False, b"221 bye\r\n")]

    def run(split):
        proto = SmtpProtocol()
        out = []
        for is_orig, data in script:
            pieces = [data[i:i + 1] for i in range(len(data))] if split else [data]
            for piece in pieces:
                out += [e._replace(ts=0, frame=0) if hasattr(e, "frame") else e
                        for e in proto.receive(is_orig, piece)]
        return [e._replace(frames=[]) if isinstance(e, P.Message) else e for e in out]

    assert run(True) == run(False)


# -- the stage over captures ---------------------------------------------------------------------


def test_transaction_rows_and_pipelining(tmp_path):
    exchanges = [GREETING] + EHLO + [
        (True, (b"MAIL FROM:<alice@a.example> SIZE=100\r\nRCPT TO:<bob@b.example>\r\n"
                b"RCPT TO:<carol@c.example>\r\nDATA\r\n")),
        (False, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n"),
        (True, (b"From: Alice <alice@a.example>\r\nTo: bob@b.example, \"Carol C\" <carol@c.example>\r\n"
                b"Subject: pipelined\r\nMessage-ID: <1@a.example>\r\nReceived: from x ([192.0.2.7]) by y\r\n"
                b"X-Originating-IP: [198.51.100.9]\r\nUser-Agent: SquirrelMail/1.4\r\n\r\n..hello\r\n.\r\n")),
        (False, b"250 2.0.0 Ok: queued\r\n"),
        (True, b"RSET\r\n"), (False, b"250 reset\r\n"),
        (True, b"MAIL FROM:<alice@a.example>\r\nRCPT TO:<dave@d.example>\r\n"),
        (False, b"250 Ok\r\n250 Ok\r\n"),
        (True, b"RSET\r\n"), (False, b"250 reset\r\n"),
        (True, b"MAIL FROM:<alice@a.example>\r\n"), (False, b"250 Ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 Bye\r\n")]
    tables, _ = run_exchanges(exchanges, tmp_path)
    got = rows(tables)
    assert len(got) == 3
    first, second, third = got
    assert first["trans_depth"] == 1 and first["helo"] == "client.example"
    assert first["mailfrom"] == "alice@a.example"
    assert first["rcptto"] == ["bob@b.example", "carol@c.example"]
    assert first["from"] == "Alice <alice@a.example>"
    assert first["to"] == ["bob@b.example", '"Carol C" <carol@c.example>']
    assert first["subject"] == "pipelined" and first["msg_id"] == "<1@a.example>"
    assert first["x_originating_ip"] == "198.51.100.9"
    assert first["path"] == ["10.1.0.2", "10.1.0.1", "192.0.2.7"]
    assert first["first_received"] == "from x ([192.0.2.7]) by y"
    assert first["user_agent"] == "SquirrelMail/1.4" and first["is_webmail"]
    assert first["last_reply"] == "250 2.0.0 Ok: queued"
    assert [a["size"] for a in first["attachments"]] == [8]            # ".hello\r\n": unstuffed
    assert first["extensions"] == ["PIPELINING", "CHUNKING", "STARTTLS", "8BITMIME"]
    # RSET abandons the second transaction: it is written when the next MAIL FROM comes (Zeek)
    assert second["trans_depth"] == 2 and second["rcptto"] == ["dave@d.example"]
    assert second["last_reply"] == "250 reset" and second["date"] is None
    assert third["trans_depth"] == 2 and third["rcptto"] is None and third["last_reply"] == "221 Bye"
    conn = tables["conn"]
    assert conn["service"].tolist() == ["smtp"]
    assert tables["smtp"]["uid"].tolist() == conn["uid"].tolist() * 3
    assert list(tables["smtp"].columns) == [c.name for c in SMTP]


@pytest.mark.parametrize("segment", [1, "random", None])
def test_segmentation_does_not_change_rows(tmp_path, segment):
    exchanges = [GREETING] + EHLO + [
        (True, b"MAIL FROM:<a@a.example>\r\n"), (False, b"250 Ok\r\n"),
        (True, b"RCPT TO:<b@b.example>\r\n"), (False, b"250 Ok\r\n"),
        (True, b"DATA\r\n"), (False, b"354 go\r\n"),
        (True, b"Subject: split\r\nTo: b@b.example\r\n\r\nline\r\n.line2\r\n.\r\n"), (False, b"250 queued\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 Bye\r\n")]
    tables, _ = run_exchanges(exchanges, tmp_path, segment=segment)
    (row,) = rows(tables)
    assert (row["subject"], row["to"], row["last_reply"]) == ("split", ["b@b.example"], "250 queued")
    assert row["attachments"][0]["size"] == len(b"line\r\nline2\r\n")


def test_bdat_chunks_last_and_bad_sizes(tmp_path):
    body = b"Subject: chunked\r\nFrom: a@a.example\r\n\r\n" + b"x" * 3000 + b"\r\n"
    exchanges = [GREETING] + EHLO + [
        (True, b"MAIL FROM:<a@a.example>\r\nRCPT TO:<b@b.example>\r\n"), (False, b"250 Ok\r\n250 Ok\r\n"),
        (True, b"BDAT 1000\r\n" + body[:1000]), (False, b"250 1000 octets\r\n"),
        (True, b"BDAT %d LAST\r\n" % (len(body) - 1000) + body[1000:]), (False, b"250 queued\r\n"),
        (True, b"MAIL FROM:<a@a.example>\r\nRCPT TO:<c@c.example>\r\nBDAT 0 LAST\r\n"),
        (False, b"250 Ok\r\n250 Ok\r\n250 empty\r\n"),
        (True, b"MAIL FROM:<a@a.example>\r\nRCPT TO:<d@d.example>\r\nBDAT -1 LAST\r\n"),
        (False, b"250 Ok\r\n250 Ok\r\n521 Syntax\r\n"),
        (True, b"MAIL FROM:<a@a.example>\r\nRCPT TO:<e@e.example>\r\nBDAT 15555555557777777777 LAST\r\n"),
        (False, b"250 Ok\r\n250 Ok\r\n521 Syntax\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 Bye\r\n")]
    tables, stage = run_exchanges(exchanges, tmp_path)
    got = rows(tables)
    assert [r["trans_depth"] for r in got] == [1, 2, 3, 4]
    assert got[0]["subject"] == "chunked" and got[0]["attachments"][0]["size"] == 3002
    assert got[1]["last_reply"] == "250 empty" and got[1]["attachments"] == []
    assert got[2]["last_reply"] == "521 Syntax" and got[3]["last_reply"] == "521 Syntax"
    names = {(name, addl) for _, name, addl in stage.weirds}
    assert ("smtp_invalid_bdat_command", "BDAT not followed by a valid chunk-size") in names
    assert ("smtp_huge_bdat_chunk", "15555555557777777777") in names


def test_bdat_without_last_then_mail_is_a_weird():
    stage = SmtpStage()
    feed(stage, [GREETING, *EHLO, (True, b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"),
                 (False, b"250 ok\r\n250 ok\r\n"), (True, b"BDAT 4\r\nabcd"), (False, b"250 ok\r\n"),
                 (True, b"MAIL FROM:<c@x.example>\r\n"), (False, b"250 ok\r\n")])
    assert [w[1] for w in stage.weirds] == ["smtp_missing_bdat_last_chunk"]


def test_starttls_stops_parsing(tmp_path):
    exchanges = [GREETING] + EHLO + [(True, b"STARTTLS\r\n"), (False, b"220 2.0.0 Ready to start TLS\r\n"),
                                     (True, b"\x16\x03\x01\x00\x05hello MAIL FROM:<x@y>\r\n"),
                                     (False, b"\x16\x03\x03 220 garbage\r\n")]
    tables, _ = run_exchanges(exchanges, tmp_path)
    (row,) = rows(tables)
    assert row["tls"] and row["helo"] == "client.example" and row["mailfrom"] is None
    assert row["last_reply"] == "220 2.0.0 Ready to start TLS"


def test_detection_on_another_port_and_not_on_http(tmp_path):
    exchanges = [GREETING] + EHLO + [(True, b"MAIL FROM:<a@a.example>\r\n"), (False, b"250 Ok\r\n"),
                                     (True, b"QUIT\r\n"), (False, b"221 Bye\r\n")]
    tables, _ = run_exchanges(exchanges, tmp_path, server=("10.1.0.2", 2525))
    assert [r["mailfrom"] for r in rows(tables)] == ["a@a.example"]
    assert tables["conn"]["service"].tolist() == ["smtp"]
    http = [(True, b"GET / HTTP/1.1\r\nHost: helo.example\r\n\r\n"), (False, b"HTTP/1.1 220 OK\r\n\r\n")]
    tables, _ = run_exchanges(http, tmp_path, name="http.pcap", server=("10.1.0.2", 8080))
    assert rows(tables) == []


def test_bad_input_is_a_weird_at_most():
    # a server that never answers; a client that talks before the greeting; 8-bit data; a gap
    stage = SmtpStage()
    tables = feed(stage, [(True, b"EHLO early\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"),
                          (True, b"Subject: caf\xe9 \xff\r\n\r\n\x00\x80\x81 8-bit\r\n.\r\n"),
                          (True, b"MAIL FROM:<c@x.example>\r\n")])
    got = rows(tables)
    assert [r["mailfrom"] for r in got] == ["a@x.example", "c@x.example"]
    assert got[0]["subject"] == "caf\\xe9 \\xff" and got[0]["last_reply"] is None
    assert got[0]["attachments"][0]["size"] == len(b"\x00\x80\x81 8-bit\r\n")
    stage = SmtpStage()
    tables = feed(stage, [GREETING, *EHLO, (True, b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"),
                          (False, b"250 ok\r\n250 ok\r\n354 go\r\n"), (True, b"Subject: gap\r\n\r\nbody\r\n"),
                          (True, b"tail\r\n.\r\n", 500), (False, b"250 queued\r\n"),
                          (True, b"MAIL FROM:<z@x.example>\r\n"), (False, b"250 ok\r\n")])
    got = rows(tables)
    assert got[0]["subject"] == "gap"                          # the message ended at the gap (Zeek)
    assert got[0]["last_reply"] == "250 queued" and got[1]["mailfrom"] == "z@x.example"


def test_header_block_over_the_limit():
    stage = SmtpStage()
    long_header = b"Subject: big\r\n" + b" x\r\n" * 40000
    tables = feed(stage, [GREETING, *EHLO, (True, b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"),
                          (False, b"250 ok\r\n250 ok\r\n354 go\r\n"),
                          (True, long_header + b"From: after@x.example\r\n\r\nbody\r\n.\r\n"),
                          (False, b"250 queued\r\n")])
    (row,) = rows(tables)
    assert row["from"] == "after@x.example" and row["subject"].startswith("big x x")
    assert [(w[1], w[2]) for w in stage.weirds] == [("exceeded_mime_max_header_bytes", "65536")]


def test_mail_transaction_invalid_once_per_connection():
    stage = SmtpStage()
    feed(stage, [GREETING, *EHLO, (True, b"RCPT TO:<a@x.example>\r\n"), (False, b"503 no\r\n"),
                 (True, b"DATA\r\n"), (False, b"503 no\r\n"), (True, b"DATA\r\n"), (False, b"503 no\r\n")])
    assert [(w[1], w[2]) for w in stage.weirds] == [("smtp_mail_transaction_invalid", "rcpt to missing mail from")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(),
                          st.one_of(st.binary(max_size=60),
                                    st.sampled_from([b"220 x\r\n", b"EHLO a\r\n", b"250-x\r\n", b"250 x\r\n",
                                                     b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n",
                                                     b"354 go\r\n", b".\r\n", b"BDAT 3\r\n", b"BDAT 0 LAST\r\n",
                                                     b"AUTH LOGIN\r\n", b"334 x\r\n", b"STARTTLS\r\n",
                                                     b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
                                                     b"BDAT -1\r\n", b"RSET\r\n", b"TURN\r\n", b"\r\n"])),
                          st.integers(0, 3)), max_size=40))
def test_random_bytes_never_raise(pieces):
    stage = SmtpStage(commands=True)
    feed(stage, [(o, d, 100 if g == 3 else 0) for o, d, g in pieces])
    stage2 = SmtpStage()
    feed(stage2, [(o, d) for o, d, _ in pieces], key=ConnKey("10.9.0.1", 40000, "10.9.0.2", 2525, 1))


# -- generated captures with truth records -------------------------------------------------------------


@pytest.mark.parametrize("segment", ["mss", "random", "every-byte"])
def test_generator_truth(tmp_path, segment):
    path, truth_path = tmp_path / "g.pcap", tmp_path / "g.jsonl"
    generate("smtp", str(path), seed=11, count=25 if segment != "every-byte" else 12, segment=segment,
             truth_path=str(truth_path))
    truth = [r for r in read_jsonl(str(truth_path)) if r.get("table") == "smtp"]
    tables, stage = analyze_capture(path)
    got = rows(tables)
    assert len(got) == len(truth) and stage.weirds == []
    mine: dict = {}
    for r in got:
        mine.setdefault((r["id.orig_p"], r["trans_depth"]), []).append(r)
    for t in truth:
        r = mine[(t["id.orig_p"], t["trans_depth"])].pop(0)
        for field, value in t.items():
            if field == "table":
                continue
            if isinstance(value, list):
                assert sorted(r[field]) == sorted(value), field
            else:
                assert r[field] == value, field


# -- real client and server (smtplib -> aiosmtpd) through a recording proxy ----------------------------


class _Recorder:
    """A TCP proxy on 127.0.0.1 that records what each side sent, in order."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.log: list = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _pump(self, src, dst, from_client):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.log.append((from_client, data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _serve(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        pumps = [threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
                 threading.Thread(target=self._pump, args=(server, client, False), daemon=True)]
        for t in pumps:
            t.start()
        for t in pumps:
            t.join(10)
        client.close()
        server.close()
        self.listener.close()


def _self_signed(tmp_path):
    pytest.importorskip("cryptography", reason="cryptography not installed (makes the STARTTLS certificate)")
    from captures.loopback.tls import self_signed_context
    return self_signed_context()


def _round_trip(tmp_path, send):
    controller_module = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd not installed "
                                            "(pip install aiosmtpd)")

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 Message accepted for delivery"

    context = _self_signed(tmp_path)               # STARTTLS is offered
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))                       # a free port, chosen now
    port = probe.getsockname()[1]
    probe.close()
    controller = controller_module.Controller(Sink(), hostname="127.0.0.1", port=port, tls_context=context,
                                              require_starttls=False, server_hostname="mx.test.example")
    controller.start()
    recorder = _Recorder(port)
    try:
        with smtplib.SMTP("127.0.0.1", recorder.port, local_hostname="client.test.example", timeout=10) as client:
            send(client)
        recorder.thread.join(10)
    finally:
        controller.stop()
    frames, times = conversation_frames(recorder.log, client=("127.0.0.1", 51000),
                                        server=("127.0.0.1", 25))
    path = tmp_path / "roundtrip.pcap"
    write_pcap(str(path), frames, times)
    return analyze_capture(path, commands=True, extract_dir=tmp_path / "files")


def test_round_trip_smtplib_to_aiosmtpd(tmp_path):
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@client.test.example>"
    msg["To"] = "bob@mx.test.example, carol@mx.test.example"
    msg["Cc"] = "dave@mx.test.example"
    msg["Subject"] = "Quarterly report"
    msg["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
    msg["Message-ID"] = "<report-1@client.test.example>"
    msg["X-Mailer"] = "netsift-test/1.0"
    msg.set_content("Hello,\n.leading dot line\nsee attached.\n")
    attachment = os.urandom(5000)
    msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="report.bin")
    recipients = ["bob@mx.test.example", "carol@mx.test.example", "dave@mx.test.example"]

    tables, _ = _round_trip(tmp_path, lambda c: c.send_message(msg, from_addr="alice@client.test.example",
                                                                    to_addrs=recipients))
    (row,) = rows(tables)
    assert row["helo"] == "client.test.example"
    assert row["mailfrom"] == "alice@client.test.example"
    assert row["rcptto"] == recipients
    assert row["from"] == msg["From"] and row["subject"] == msg["Subject"] and row["date"] == msg["Date"]
    assert row["to"] == ["bob@mx.test.example", "carol@mx.test.example"] and row["cc"] == ["dave@mx.test.example"]
    assert row["msg_id"] == msg["Message-ID"] and row["user_agent"] == "netsift-test/1.0"
    assert row["last_reply"] == "250 Message accepted for delivery" and not row["tls"]
    assert "STARTTLS" in row["extensions"]
    text_part, file_part = row["attachments"]
    assert text_part["content_type"] == "text/plain"
    assert text_part["size"] == len("Hello,\r\n.leading dot line\r\nsee attached.\r\n")
    assert (file_part["filename"], file_part["size"]) == ("report.bin", len(attachment))
    assert Path(file_part["path"]).read_bytes() == attachment
    files = tables["files"]
    assert files["source"].tolist() == ["SMTP", "SMTP"] and files["filename"].tolist()[1] == "report.bin"
    assert files["total_bytes"].tolist() == [text_part["size"], len(attachment)]
    commands = tables["smtp_commands"]
    assert [c.upper() for c in commands["smtp.req.command"].dropna()] == ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT",
                                                                         "DATA", "QUIT"]
    assert commands["smtp.response.code"].dropna().tolist() == [220, 250, 250, 250, 250, 250, 354, 250, 221]
    assert tables["conn"]["service"].tolist() == ["smtp"]


def test_round_trip_starttls(tmp_path):
    def send(client):
        client.ehlo()
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo()
        client.sendmail("alice@client.test.example", ["bob@mx.test.example"], "Subject: secret\r\n\r\nhidden\r\n")

    tables, _ = _round_trip(tmp_path, send)
    (row,) = rows(tables)
    assert row["tls"] and row["last_reply"].startswith("220") and row["mailfrom"] is None
    assert row["subject"] is None


# -- the corpus -----------------------------------------------------------------------------------------


def _corpus():
    if os.environ.get("NETSIFT_CORPUS"):
        return Path(os.environ["NETSIFT_CORPUS"])
    return REPO.parent / "shared" / "corpus"


@pytest.mark.skipif(not (_corpus() / "zeek").is_dir(), reason="shared corpus not found (../shared/corpus or "
                                                               "$NETSIFT_CORPUS)")
def test_corpus_conformance():
    import importlib.util
    spec = importlib.util.spec_from_file_location("smtp_conformance", REPO / "bench" / "smtp_conformance.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(_corpus(), tshark=True)
    assert result["overall"] >= 0.999, result["top"][:5]          # 360/360 cells
    assert result["missing"] == 0 and result["extra"] == 0
    assert result["weirds"][0] == result["weirds"][1] == result["weirds"][2]
    assert result["tshark_unexplained"] == 0, result["tshark_top"][:5]


def test_encoded_words_raw_like_zeek_or_decoded_on_request(tmp_path):
    exchanges = [GREETING] + EHLO + [
        (True, b"MAIL FROM:<a@a.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n"),
        (False, b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
        (True, (b"From: =?utf-8?q?Ren=C3=A9?= <rene@a.example>\r\n"
                b"To: =?utf-8?b?w4lsaXNl?= <e@b.example>, x@b.example\r\n"
                b"Subject: =?utf-8?q?caf=C3=A9?= au lait\r\n\r\nbody\r\n.\r\n")),
        (False, b"250 queued\r\n"), (True, b"QUIT\r\n"), (False, b"221 Bye\r\n")]
    (raw_row,) = rows(run_exchanges(exchanges, tmp_path, name="raw.pcap")[0])
    assert raw_row["subject"] == "=?utf-8?q?caf=C3=A9?= au lait"
    (row,) = rows(run_exchanges(exchanges, tmp_path, name="dec.pcap", decode_headers=True)[0])
    assert row["subject"] == "café au lait" and row["from"] == "René <rene@a.example>"
    assert row["to"] == ["Élise <e@b.example>", "x@b.example"]


def test_auth_mechanism_column_and_commands_frame_keep_no_credentials(tmp_path):
    exchanges = [GREETING] + EHLO + [
        (True, b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"), (False, b"235 2.7.0 Authentication successful\r\n"),
        (True, b"AUTH LOGIN\r\n"), (False, b"334 VXNlcm5hbWU6\r\n"), (True, b"YWxpY2U=\r\n"),
        (False, b"334 UGFzc3dvcmQ6\r\n"), (True, b"c2VjcmV0\r\n"), (False, b"235 ok\r\n"),
        (True, b"MAIL FROM:<a@a.example>\r\n"), (False, b"250 Ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 Bye\r\n")]
    tables, _ = run_exchanges(exchanges, tmp_path, commands=True)
    (row,) = rows(tables)
    assert row["auth_mechanism"] == "LOGIN" and row["mailfrom"] == "a@a.example"
    text = tables["smtp_commands"].astype(str).to_string() + str(row)
    for secret in ("AGFsaWNlAHNlY3JldA==", "YWxpY2U=", "c2VjcmV0"):
        assert secret not in text
    assert tables["smtp_commands"]["smtp.req.parameter"].dropna().tolist()[:3] == ["client.example", "PLAIN",
                                                                                     "LOGIN"]
