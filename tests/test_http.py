"""HTTP/1.x (analyzer.http) and file sniffing/extraction (analyzer.files).

Byte-level cases go straight to :class:`HttpSession` (sans-I/O); captures
built with scapy or the synthetic generator go through the pipeline.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.files import FileExtractor, sniff_mime
from analyzer.http import HTTP, HttpSession, HttpStage
from analyzer.verify.stage import run_stage
from analyzer.zeek_log import format_value

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ----------------------------------------------------------------------------------------------

def analyse(path, **options):
    """The pipeline with an HttpStage on ``path``: (tables, stage)."""
    return run_stage(path, HttpStage, options.pop("validate_checksums", True), **options)


def session_run(exchanges, split=None, **options):
    """Feed ``[(is_orig, bytes), …]`` to a session (each piece cut into ``split``-byte deliveries); close it."""
    session = HttpSession(**options)
    frame = 0
    for is_orig, data in exchanges:
        if data is None:
            session.eof(is_orig, frame, frame)
            continue
        step = split or len(data) or 1
        for i in range(0, len(data), step):
            frame += 1
            session.deliver(is_orig, data[i:i + step], frame * 1000, frame)
    session.eof(True, frame, frame)
    session.eof(False, frame, frame)
    session.close()
    return session


def rows_of(session):
    return sorted(session.rows, key=lambda r: r.depth)


def weird_names(session):
    return [name for _, name, _ in session.weirds]


def tcp_capture(path, exchanges, sport=40000, dport=80, segment=None, syn=True):
    """A pcap of one TCP connection: handshake, ``[(is_orig, bytes), …]`` in order, FIN both ways."""
    from scapy.all import IP, TCP, Ether, wrpcap

    client, server = "10.1.1.1", "10.2.2.2"
    seq = {True: 1000, False: 5000}
    packets = []
    t = [1700000000.0]

    def add(is_orig, flags, payload=b""):
        src, dst, sp, dp = (client, server, sport, dport) if is_orig else (server, client, dport, sport)
        packet = (Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq[is_orig],
                                                          ack=seq[not is_orig]) / payload)
        packet.time = t[0]
        t[0] += 0.001
        packets.append(packet)
        seq[is_orig] = (seq[is_orig] + len(payload) + (1 if "S" in flags or "F" in flags else 0)) % 2**32

    if syn:
        add(True, "S")
        add(False, "SA")
        add(True, "A")
    for is_orig, data in exchanges:
        step = segment or len(data)
        for i in range(0, len(data), step):
            add(is_orig, "PA", data[i:i + step])
    add(True, "FA")
    add(False, "FA")
    add(True, "A")
    wrpcap(str(path), packets)
    return path


GET = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\nReferer: http://r/\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 26\r\n\r\n<html><body>hi</body></html>"[:-2]


# -- the session: Zeek's semantics byte by byte -----------------------------------------------------------

def test_get_pair():
    rows = rows_of(session_run([(True, GET), (False, OK)]))
    assert len(rows) == 1
    r = rows[0]
    assert (r.method, r.uri, r.host, r.user_agent, r.referrer) == (b"GET", b"/index.html", b"example.com",
                                                                     b"test/1.0", b"http://r/")
    assert (r.version, r.status_code, r.status_msg, r.response_body_len) == (b"1.1", 200, b"OK", 26)
    assert r.resp_mime_types == ["text/html"]


def _summary(session):
    return [(r.depth, r.method, r.uri, r.host, r.status_code, r.status_msg, r.request_body_len,
             r.response_body_len, r.info_code, r.resp_mime_types) for r in rows_of(session)]


@pytest.mark.parametrize("message", ["request", "response"])
def test_segment_boundary_at_every_byte(message):
    """Cutting the stream at any byte (and at every byte) changes nothing."""
    request = GET.replace(b"GET", b"POST").replace(b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\nhello")
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n"
    whole = _summary(session_run([(True, request), (False, response)]))
    assert whole[0][6:8] == (5, 4)
    data = request if message == "request" else response
    for cut in range(1, len(data)):
        pieces = [(message == "request", data[:cut]), (message == "request", data[cut:])]
        other = [(message != "request", response if message == "request" else request)]
        exchanges = pieces + other if message == "request" else other + pieces
        assert _summary(session_run(exchanges)) == whole, cut
    assert _summary(session_run([(True, request), (False, response)], split=1)) == whole


def test_pipelining_depth_10():
    requests = b"".join(b"GET /r%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(10))
    responses = b"".join(b"HTTP/1.1 200 S%d\r\nContent-Length: %d\r\n\r\n%s" % (i, i, b"x" * i)
                         for i in range(10))
    rows = rows_of(session_run([(True, requests), (False, responses)]))
    assert [(r.depth, r.uri, r.status_msg, r.response_body_len) for r in rows] == \
        [(i + 1, b"/r%d" % i, b"S%d" % i, i) for i in range(10)]


def test_chunked_with_trailers_and_extensions():
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;name=value\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n"
                b"HTTP/1.1 204 No Content\r\n\r\n")
    rows = rows_of(session_run([(True, GET + GET), (False, response)]))
    assert [(r.status_code, r.response_body_len) for r in rows] == [(200, 31), (204, 0)]


def test_gzip_and_deflate_bodies_count_decoded_bytes():
    body = b"The quick brown fox jumps over the lazy dog. " * 20
    packed = gzip.compress(body)
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    rows = rows_of(session_run([(True, GET), (False, response)]))
    assert rows[0].response_body_len == len(body)
    assert rows[0].resp_mime_types == ["text/plain"]
    import zlib
    raw = zlib.compress(body)
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw)
    assert rows_of(session_run([(True, GET), (False, response)]))[0].response_body_len == len(body)


def test_http09_request_and_reply():
    session = session_run([(True, b"GET /old\r\n\r\n"), (False, b"<html>plain old reply</html>"), (False, None)])
    r = rows_of(session)[0]
    assert (r.method, r.uri, r.version, r.status_code, r.status_msg) == (b"GET", b"/old", b"0.9", 0, b"<empty>")
    assert r.response_body_len == 28


def test_100_continue_sets_info_code():
    request = b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    session = session_run([(True, request), (False, b"HTTP/1.1 100 Continue\r\n\r\n"), (True, b"abc"),
                           (False, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")])
    r = rows_of(session)[0]
    assert (r.status_code, r.status_msg, r.info_code, r.info_msg, r.request_body_len) == \
        (201, b"Created", 100, b"Continue", 3)


def test_head_204_304_have_no_body():
    requests = (b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" + GET + GET + GET)
    responses = (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"
                 b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
                 b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n" + OK)
    rows = rows_of(session_run([(True, requests), (False, responses)]))
    assert [(r.method, r.status_code, r.response_body_len) for r in rows] == \
        [(b"HEAD", 200, 0), (b"GET", 204, 0), (b"GET", 304, 0), (b"GET", 200, 26)]


def test_connect_stops_parsing_and_hands_over_the_tunnel():
    seen = []
    session = HttpSession(on_tunnel=lambda is_orig, data, ts, frame: seen.append((is_orig, data)))
    session.deliver(True, b"CONNECT mail.example:25 HTTP/1.1\r\nHost: mail.example:25\r\n\r\n", 1, 1)
    session.deliver(False, b"HTTP/1.1 200 Connection established\r\n\r\n220 mail ESMTP\r\n", 2, 2)
    session.deliver(True, b"EHLO me\r\n", 3, 3)
    session.close()
    r = rows_of(session)[0]
    assert (r.method, r.status_code, r.response_body_len) == (b"CONNECT", 200, 0)
    assert seen == [(False, b"220 mail ESMTP\r\n"), (True, b"EHLO me\r\n")]
    assert "protocol_data_with_HTTP_CONNECT_reply" in weird_names(session)


def test_upgrade_101_stops_parsing():
    request = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    reply = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    session = session_run([(True, request), (False, reply), (False, b"\x81\x05hello"),
                           (True, b"GET /not-http HTTP/1.1\r\n\r\n")])
    rows = rows_of(session)
    assert [(r.status_code, r.info_code) for r in rows] == [(101, 101)]


def test_response_without_request_and_request_without_response():
    session = session_run([(False, OK)])
    assert [(r.method, r.status_code) for r in rows_of(session)] == [(None, 200)]
    session = session_run([(True, GET)])
    assert [(r.method, r.status_code) for r in rows_of(session)] == [(b"GET", None)]
    session = session_run([(False, OK), (True, GET), (False, OK)])
    assert "HTTP_response_before_request" in weird_names(session)
    assert [(r.depth, r.method, r.status_code) for r in rows_of(session)] == [(1, None, 200), (2, b"GET", 200)]


@pytest.mark.parametrize("request_bytes, weird", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary garbage\r\n", "bad_HTTP_request"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n\r\n", "HTTP_bad_chunk_size"),
    (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "HTTP_bad_content_length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", "HTTP_bad_content_length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "HTTP_content_length_and_chunked"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
     "HTTP_content_length_and_chunked"),
    (b"FOO / HTTP/1.1\r\n\r\n", "unknown_HTTP_method"),
    (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.0\r\n\r\n", "HTTP_version_mismatch"),
    (b"GET HTTP/1.1\r\n\r\n", "missing_HTTP_uri"),
])
def test_bad_input_gives_weirds(request_bytes, weird):
    session = session_run([(True, request_bytes), (False, OK)])
    assert weird in weird_names(session)


def test_smuggling_takes_chunked_and_sees_the_smuggled_request():
    request = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
    rows = rows_of(session_run([(True, request)]))
    assert [(r.method, r.uri) for r in rows] == [(b"POST", b"/"), (b"GET", b"/smuggled")]


def test_basic_auth_username_always_password_on_request():
    request = b"GET / HTTP/1.1\r\nAuthorization: Basic dGVzdDoxOjM0\r\n\r\n"
    assert (rows_of(session_run([(True, request)]))[0].username,
            rows_of(session_run([(True, request)]))[0].password) == (b"test", None)
    r = rows_of(session_run([(True, request)], capture_passwords=True))[0]
    assert (r.username, r.password) == (b"test", b"1:34")


def test_proxy_headers_and_uri_unescaping():
    request = b"GET /a%20b%u0041 HTTP/1.1\r\nVia: 1.1 proxy\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    r = rows_of(session_run([(True, request)]))[0]
    assert r.uri == b"/a bA"
    assert r.proxied == {b"VIA -> 1.1 proxy", b"X-FORWARDED-FOR -> 1.2.3.4"}


def test_folded_and_repeated_headers():
    request = b"GET / HTTP/1.1\r\nUser-Agent: first\r\nuser-agent: second\r\n  folded\r\nHOST: h\r\n\r\n"
    session = session_run([(True, request)])
    r = rows_of(session)[0]
    assert (r.user_agent, r.host) == (b"second  folded", b"h")
    assert "HTTP_obsolete_line_folding" in weird_names(session)


def test_gap_inside_a_body_is_counted_and_elsewhere_resynchronises():
    session = HttpSession()
    session.deliver(True, GET, 1, 1)
    session.deliver(False, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 10, 2, 2)
    session.gap(False, 50, 3, 3)                       # inside the body: counted, parsing goes on
    session.deliver(False, b"b" * 40, 4, 4)
    session.deliver(True, b"GET /second HTTP/1.1\r\nHo", 5, 5)
    session.gap(True, 30, 6, 6)                        # inside a header block: resynchronise
    session.deliver(True, b"st: lost\r\n\r\nGET /third HTTP/1.1\r\nHost: h\r\n\r\n", 7, 7)
    session.deliver(False, OK, 8, 8)
    session.close()
    rows = rows_of(session)
    assert (rows[0].response_body_len, rows[0].status_code) == (100, 200)
    assert [r.uri for r in rows] == [b"/index.html", b"/second", b"/third"]
    assert "HTTP_content_gap" in weird_names(session)
    # Zeek's behaviour (resync=False): that direction stops.
    session = HttpSession(resync=False)
    session.deliver(True, b"GET /a HTTP/1.1\r\nHo", 1, 1)
    session.gap(True, 30, 2, 2)
    session.deliver(True, b"GET /b HTTP/1.1\r\n\r\n", 3, 3)
    session.close()
    assert [r.uri for r in rows_of(session)] == [b"/a"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["data", "gap", "eof"]),
                          st.binary(max_size=64), st.integers(1, 5000)), max_size=30),
       st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"POST / HTTP/1.1\r\nTransfer-"
                        b"Encoding: chunked\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Type: multipart/x; boundary=b"
                        b"\r\nContent-Length: 40\r\n\r\n--b\r\n"]))
def test_random_bytes_never_raise(steps, prefix):
    session = HttpSession(capture_passwords=True, keep_bodies=True)
    session.deliver(True, prefix, 0, 0)
    for i, (is_orig, kind, data, length) in enumerate(steps):
        if kind == "data":
            session.deliver(is_orig, data, i, i)
        elif kind == "gap":
            session.gap(is_orig, length, i, i)
        else:
            session.eof(is_orig, i, i)
    session.close()
    for row in session.rows:
        assert row.depth >= 1


# -- the stage in the pipeline ----------------------------------------------------------------------------

def test_pipeline_rows_service_and_frame(tmp_path):
    path = tcp_capture(tmp_path / "get.pcap", [(True, GET), (False, OK)], segment=7)
    tables, stage = analyse(path)
    http = tables["http"]
    assert list(http.columns) == [c.name for c in HTTP]
    assert len(http) == 1
    row = http.iloc[0]
    assert (row["id.orig_h"], row["id.orig_p"], row["id.resp_p"], row["method"], row["status_code"]) == \
        ("10.1.1.1", 40000, 80, "GET", 200)
    assert row["frame.number"] == 4                     # the frame with the request's first byte
    assert tables["conn"]["service"].tolist() == ["http"]
    for column in [c for c in HTTP if c.zeek_type]:     # every value formats as Zeek TSV
        format_value(row[column.name] if not isinstance(row[column.name], type(pd.NA)) else None,
                     column.zeek_type)


def test_http_on_any_port_and_not_on_garbage(tmp_path):
    tables, _ = analyse(tcp_capture(tmp_path / "a.pcap", [(True, GET), (False, OK)], dport=4711))
    assert tables["http"]["method"].tolist() == ["GET"]
    assert tables["conn"]["service"].tolist() == ["http"]
    tables, _ = analyse(tcp_capture(tmp_path / "b.pcap", [(True, b"SSH-2.0-x\r\n"), (False, b"SSH-2.0-y\r\n")],
                                    dport=4711))
    assert len(tables["http"]) == 0 and tables["conn"]["service"].isna().all()
    # Garbage on port 80: analysed (Zeek's HTTP port), a weird, no service.
    tables, stage = analyse(tcp_capture(tmp_path / "c.pcap", [(True, b"\x00\x01garbage\r\n"), (False, b"x")]))
    assert tables["conn"]["service"].isna().all()
    assert "bad_HTTP_request" in [name for _, name, _ in stage.weirds]


def test_connection_without_syn_is_skipped_as_by_zeek(tmp_path):
    tables, _ = analyse(tcp_capture(tmp_path / "p.pcap", [(True, GET), (False, OK)], syn=False))
    assert len(tables["http"]) == 0


def test_extract_files(tmp_path):
    body = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    response = b"HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"p.png\"\r\n" \
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    path = tcp_capture(tmp_path / "f.pcap", [(True, GET), (False, response)], segment=300)
    tables, _ = analyse(path, extract_dir=tmp_path / "files")
    row = tables["http"].iloc[0]
    assert list(row["resp_mime_types"]) == ["image/png"] and list(row["resp_filenames"]) == ["p.png"]
    files = tables["files"]
    assert files["sha256"].tolist() == [hashlib.sha256(body).hexdigest()]
    assert (tmp_path / "files" / hashlib.sha256(body).hexdigest()).read_bytes() == body
    assert files["filename"].tolist() == ["p.png"] and files["mime_type"].tolist() == ["image/png"]


@pytest.mark.parametrize("segment, reorder", [("every-byte", 0.0), ("random", 0.0), ("random", 0.3), ("mss", 0.0)])
def test_synthetic_captures_match_their_truth(tmp_path, segment, reorder):
    from captures.synthetic import generate

    path, truth = tmp_path / "h.pcap", tmp_path / "h.jsonl"
    generate("http", path, seed=7, count=15, truth_path=truth, segment=segment, reorder=reorder)
    tables, _ = analyse(path)
    ours = {(r["id.orig_h"], r["id.orig_p"], r["trans_depth"]): r for r in tables["http"].to_dict("records")}
    expected = [json.loads(line) for line in truth.read_text().splitlines()]
    expected = [r for r in expected if r.get("table") == "http"]
    assert expected and len(ours) == len(expected)
    for record in expected:
        got = ours[(record["id.orig_h"], record["id.orig_p"], record["trans_depth"])]
        for name, value in record.items():
            if name in ("table", "ts", "uid") or name not in got:
                continue
            mine = got[name]
            assert (None if mine is pd.NA else mine) == value, (name, record)


# -- files ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, mime", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"), (b"GIF89a\x01\x00", "image/gif"), (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b"%PDF-1.7\n", "application/pdf"), (b"PK\x03\x04\x14\x00", "application/zip"),
    (b"MZ\x90\x00\x03", "application/x-dosexec"), (b"<!DOCTYPE html><html>", "text/html"),
    (b"  <html><head>", "text/html"), (b'{"a": [1, 2]}', "text/json"),
    (b"<?xml version='1.0'?><r/>", "application/xml"),
    (b"plain text, more than ten", "text/plain"), (b"short", None), (b"", None), (b"\x00\x01\x02\x03" * 5, None),
])
def test_sniff_mime(data, mime):
    assert sniff_mime(data) == mime


def test_file_extractor_is_content_addressed(tmp_path):
    extractor = FileExtractor(tmp_path / "x")
    first = extractor.save(b"hello world, hello", "SMTP", filename="a.txt")
    second = extractor.save(b"hello world, hello", "HTTP")
    assert first == second and first.name == hashlib.sha256(b"hello world, hello").hexdigest()
    frame = extractor.frame()
    assert frame["source"].tolist() == ["SMTP", "HTTP"] and frame["mime_type"].tolist() == ["text/plain"] * 2


# -- the corpus -------------------------------------------------------------------------------------------

def _corpus() -> Path | None:
    candidates = [os.environ.get("NETSIFT_CORPUS"), str(ROOT.parent / "shared" / "corpus")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "zeek").is_dir():
            return Path(candidate)
    return None


def test_corpus_conformance_with_zeek_and_tshark():
    corpus = _corpus()
    if corpus is None:
        pytest.skip("shared corpus absent (../shared/corpus or $NETSIFT_CORPUS)")
    sys.path.insert(0, str(ROOT / "bench"))
    import http_conformance

    zeek = http_conformance.compare_zeek(corpus, quiet=True)
    assert zeek["overall"] >= 0.995, zeek["mismatches"].most_common(5)
    # 2 of 130 rows are missing: the TCP connection inside Teredo on a non-3544 port is not dissected.
    assert len(zeek["missing"]) <= 2 and not zeek["extra"]
    assert zeek["overall_with_missing"] >= 0.98
    assert zeek["mime"] >= 0.99
    tshark = http_conformance.compare_tshark(corpus, quiet=True)
    assert tshark["overall_without_deliberate"] >= 0.999
