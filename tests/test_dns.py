"""DNS tests: RR byte vectors with Zeek's rendering, truncation, compression loops, random bytes,
TCP framing, pairing rules, and the corpus conformance figures.

Messages are built with dnspython (``pip install dnspython``; tests needing it
skip without it) or by hand, carried in Ethernet/IPv4|IPv6/UDP frames built
here, and run through :func:`dissectors.dissect` and
:class:`analyzer.dns.DnsStage` like a capture.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.dns import DNS, DnsStage
from analyzer.zeek_log import format_value
from captures.batch import PacketBatch
from dissectors import dissect
from dissectors import dns as wire
from dissectors import dns_rdata as rdata

REPO = Path(__file__).resolve().parent.parent
CLIENT, SERVER = "10.0.0.1", "10.0.0.53"
FUZZ_EXAMPLES = int(os.environ.get("NETSIFT_FUZZ_EXAMPLES", "300"))   # raise it for a longer fuzzing run


# ----------------------------------------------------------------------------- frames

def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes, bad_checksum: bool = False) -> bytes:
    """An Ethernet frame carrying ``payload`` in UDP over IPv4 or IPv6 (by the address), checksums right."""
    v6 = ":" in src
    length = 8 + len(payload)
    if v6:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        pseudo = s + d + struct.pack("!I3xB", length, 17)
    else:
        s, d = socket.inet_aton(src), socket.inet_aton(dst)
        pseudo = s + d + struct.pack("!xBH", 17, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    checksum = 0xFFFF - _sum16(pseudo + header + payload) or 0xFFFF
    if bad_checksum:
        checksum ^= 0x5A5A
    udp = struct.pack("!HHHH", sport, dport, length, checksum) + payload
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + s + d
        ethertype = b"\x86\xdd"
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, s, d)
        ip = ip[:10] + struct.pack("!H", 0xFFFF - _sum16(ip)) + ip[12:]
        ethertype = b"\x08\x00"
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + ethertype + ip + udp


def run(datagrams, ts=None, **options):
    """The DNS frames of ``datagrams`` ``(src, dst, sport, dport, payload[, bad_checksum])``, 1 s apart by default."""
    frames = [udp_frame(*d) for d in datagrams]
    ts_ns = None if ts is None else [int(t * 1e9) for t in ts]
    batch = PacketBatch.from_frames(frames, ts_ns=ts_ns)
    stage = DnsStage(weird_table=True, **options)
    stage.feed(batch, dissect(batch))
    return stage.finish()


def exchange(query: bytes, response: bytes | None = None, **options):
    """One query from CLIENT:40000 to SERVER:53 and (optionally) its response 10 ms later."""
    datagrams = [(CLIENT, SERVER, 40000, 53, query)]
    ts = [0.0]
    if response is not None:
        datagrams.append((SERVER, CLIENT, 53, 40000, response))
        ts.append(0.010)
    return run(datagrams, ts, **options)


def only_row(tables) -> dict:
    frame = tables["dns"]
    assert len(frame) == 1, frame
    return {k: (None if v is pd.NA or v is None or (isinstance(v, float) and np.isnan(v)) else v)
            for k, v in frame.iloc[0].to_dict().items()}


def weird_names(tables) -> list[str]:
    return tables["dns_weird"]["name"].tolist()


# ----------------------------------------------------------------------------- dnspython helpers



def _dns():
    return pytest.importorskip("dns.message")


def answer_for(rdtype: str, *texts: str, name: str = "www.example.com.", ttl: int = 300, qtype: str | None = None):
    """(query, response) wire messages: the response answers with one RRset ``rdtype texts``."""
    _dns()
    import dns.message
    import dns.rrset
    query = dns.message.make_query(name, qtype or ("A" if rdtype.startswith("TYPE") else rdtype))
    query.id = 4660
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(name, ttl, "IN", rdtype, *texts))
    return query.to_wire(), response.to_wire()


# ----------------------------------------------------------------------------- RR types

B64KEY = "AwEAAagAIKlVZrpC6Ia7gEzahOR+9W29euxhJhVVLOyQbSEW0O8gcCjFFVQUTf6v58fLjwBd0YI0EzrAcQqBGCzh/RStIoO8g0NfnfL2MTJRkxoXbfDaUeVPQuYEhg37NZWAJQ9VnMVDxP/VHL496M/QZxkjf5/Efucp2gaDX6RS6CXpoY68LsvPVjR0ZSwzz1apAzvN9dlzEheX7ICJBBtuA6G3LQpzW5hOA2hzCTMjJPJ8LbqF6dsV6DoBQzgul0sGIcGOYl7OyQdXfZ57relSQageu+ipAdTTJ25AsRTAoub8ONGcLmqrAmRLKBP1dfwhYB4N7knNnulqQxA+Uk1ihz0="

RENDERED = [
    # (rdtype, rdata texts, expected answers)
    ("A", ("192.0.2.1", "192.0.2.2"), ["192.0.2.1", "192.0.2.2"]),
    ("AAAA", ("2001:db8::1",), ["2001:db8::1"]),
    ("AAAA", ("::ffff:192.0.2.9",), ["192.0.2.9"]),                      # Zeek prints a v4-mapped addr as IPv4
    ("CNAME", ("Target.Example.COM.",), ["target.example.com"]),          # names are lower-cased
    ("NS", ("ns1.example.com.",), ["ns1.example.com"]),
    ("PTR", ("host.example.com.",), ["host.example.com"]),
    ("MX", ("10 mail.example.com.",), ["mail.example.com"]),
    ("SOA", ("ns1.example.com. admin.example.com. 1 7200 900 1209600 86400",), ["ns1.example.com"]),
    ("TXT", ('"hello" "world"',), ["TXT 5 hello TXT 5 world"]),
    ("TXT", ('""',), ["TXT 0 "]),
    ("SPF", ('"v=spf1 -all"',), ["SPF 11 v=spf1 -all"]),
    ("SRV", ("0 5 5060 sip.example.com.",), ["sip.example.com"]),
    ("NAPTR", ('100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .',),
     ["NAPTR 100 10 u E2U+sip !^.*$!sip:info@example.com!"]),
    ("NAPTR", ('100 50 "s" "SIP+D2U" "" _sip._udp.Example.org.',), ["NAPTR 100 50 s SIP+D2U _sip._udp.Example.org"]),
    ("DNSKEY", (f"257 3 8 {B64KEY}",), ["DNSKEY 8"]),
    ("DS", ("12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE1AB3C6DE5E2F28C0E0D2F1E7",), ["DS 8 2"]),
    ("RRSIG", ("A 8 3 300 20300101000000 20200101000000 12345 example.com. " + B64KEY,), ["RRSIG 1 example.com"]),
    ("RRSIG", ("A 8 0 300 20300101000000 20200101000000 12345 . " + B64KEY,), ["RRSIG 1 <Root>"]),
    ("NSEC", ("next.example.com. A NS RRSIG",), ["NSEC www.example.com next.example.com"]),
    ("NSEC3", ("1 0 10 ABCD 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A RRSIG",), ["NSEC3"]),
    ("NSEC3PARAM", ("1 0 10 ABCD",), ["NSEC3PARAM"]),
    ("SSHFP", ("1 1 0123456789ABCDEF0123456789ABCDEF01234567",), ["SSHFP: 0123456789abcdef0123456789abcdef01234567"]),
    ("TYPE65534", (r"\# 5 0512340001",), ["BIND9 signing signal"]),
    ("LOC", ("52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",), ["LOC:  0 22 19"]),
    ("TYPE999", (r"\# 3 010203",), ["<unknown type=999>"]),
    # Zeek's base scripts have no handler for these: parsed, not rendered.
    ("CAA", ('0 issue "letsencrypt.org"',), None),
    ("HINFO", ('"x86" "linux"',), None),
    ("HTTPS", ('1 . alpn="h2,h3" port=443 ipv4hint=192.0.2.1',), None),
    ("SVCB", ("0 svc.example.net.",), None),
]


@pytest.mark.parametrize("rdtype,texts,expected", RENDERED, ids=[f"{r[0]}-{i}" for i, r in enumerate(RENDERED)])
def test_rr_rendering(rdtype, texts, expected):
    query, response = answer_for(rdtype, *texts)
    row = only_row(exchange(query, response))
    if expected is None:
        assert row["answers"] is None
    else:
        assert sorted(row["answers"]) == sorted(expected)   # an RRset's order on the wire is dnspython's
    assert row["trans_id"] == 4660
    assert row["rcode_name"] == "NOERROR"
    if expected is None:
        assert row["TTLs"] is None and row["AA"] is False and row["rtt"] is None  # no do_reply in Zeek
    else:
        assert row["TTLs"] == [300.0] * len(expected)
        assert row["rtt"] == pytest.approx(0.010)


def test_unknown_type_weird():
    query, response = answer_for("TYPE999", r"\# 3 010203")
    tables = exchange(query, response)
    weird = tables["dns_weird"]
    assert weird["name"].tolist() == ["DNS_RR_unknown_type"]
    assert weird["addl"].tolist() == ["999"]
    assert weird["id.orig_h"].tolist() == [CLIENT] and weird["id.resp_p"].tolist() == [53]


def test_wks_counts_as_a_reply_without_an_entry():
    query = bytes.fromhex("1234010000010000000000000377777707657861" "6d706c6503636f6d0000010001")
    response = bytearray(query)
    response[2:4] = b"\x85\x80"              # QR AA RD RA
    response[6:8] = b"\x00\x01"
    # WKS 192.0.2.1 proto 6, bitmap 0x40 (port 1) - the last RR, so Zeek's non-advance is harmless.
    response += bytes.fromhex("c00c000b00010000012c0006c000020106" "40")
    row = only_row(exchange(query, bytes(response)))
    assert row["answers"] is None and row["AA"] is True and row["RA"] is True
    assert row["rtt"] == pytest.approx(0.010)


def test_question_fields_and_case():
    _dns()
    import dns.message
    query = dns.message.make_query("Us.V27.DiStRiBuTeD.NET", "A")
    query.id = 20877
    query.flags |= 0x0020                   # AD: part of Zeek's 3-bit Z
    row = only_row(exchange(query.to_wire()))
    assert row["query"] == "us.v27.distributed.net"
    assert row["original_query"] == "Us.V27.DiStRiBuTeD.NET"
    assert (row["qtype"], row["qtype_name"], row["qclass"], row["qclass_name"]) == (1, "A", 1, "C_INTERNET")
    assert row["RD"] is True and row["Z"] == 2 and row["rcode"] is None and row["rcode_name"] is None
    assert (row["opcode"], row["opcode_name"], row["proto"]) == (0, "query", "udp")


def test_auth_and_addl_sets():
    _dns()
    import dns.message
    import dns.rrset
    query = dns.message.make_query("www.example.com", "A")
    response = dns.message.make_response(query)
    response.set_rcode(3)
    response.authority.append(dns.rrset.from_text("example.com.", 60, "IN", "NS", "ns1.example.com.",
                                                  "ns2.example.com."))
    response.additional.append(dns.rrset.from_text("ns1.example.com.", 60, "IN", "A", "192.0.2.53"))
    response.additional.append(dns.rrset.from_text("ns2.example.com.", 60, "IN", "A", "192.0.2.53"))
    row = only_row(exchange(query.to_wire(), response.to_wire()))
    assert row["answers"] is None and row["rcode_name"] == "NXDOMAIN"
    assert sorted(row["auth"]) == ["ns1.example.com", "ns2.example.com"]
    assert row["addl"] == ["192.0.2.53"]                   # a set
    skipped = only_row(exchange(query.to_wire(), response.to_wire(), skip_auth=True, skip_addl=True))
    assert skipped["auth"] is None and skipped["addl"] is None


def test_edns_client_subnet_and_cookie_in_messages():
    _dns()
    import dns.edns
    import dns.message
    query = dns.message.make_query("www.example.com", "A", use_edns=0, payload=1232, want_dnssec=True,
                                   options=[dns.edns.ECSOption("192.0.2.0", 24),
                                            dns.edns.GenericOption(10, bytes(range(8)))])
    tables = exchange(query.to_wire(), messages=True)
    m = tables["dns_messages"].iloc[0]
    assert m["dns.rr.udp_payload_size"] == 1232 and bool(m["dns.resp.z.do"])
    assert (m["dns.opt.client.family"], m["dns.opt.client.netmask"], m["dns.opt.client.addr"]) == (1, 24, "192.0.2.0")
    assert m["dns.opt.cookie.client"] == "0001020304050607"
    assert pd.isna(m["dns.opt.cookie.server"])
    assert tables["dns_weird"].empty


def test_edns_bad_option_length_is_a_weird():
    # The corpus' dns-edns-bad-length: an OPT RR with RDLENGTH 1.
    message = bytes.fromhex("333381800001000000000002076578616d706c6503636f6d0000010001"
                            "000029100000000000000100c00c000100010000003c0004cb007107")
    tables = run([(SERVER, CLIENT, 53, 40000, message)])
    assert weird_names(tables) == ["EDNS_truncated_option"]
    assert only_row(tables)["id.orig_h"] == CLIENT


def test_svcb_short_rdata_is_a_weird():
    message = bytes.fromhex("123481800001000100000001016103636f6d0000400001c00c004000010000003c0002000100002904"
                            "d0000000000000")
    assert weird_names(run([(SERVER, CLIENT, 53, 40000, message)])) == ["DNS_SVCB_wrong_length"]


def test_ipv6_transport():
    query, response = answer_for("AAAA", "2001:db8::7")
    tables = run([("2001:db8::1", "2001:db8::35", 40000, 53, query), ("2001:db8::35", "2001:db8::1", 53, 40000,
                                                                       response)], [0, 0.5])
    row = only_row(tables)
    assert (row["id.orig_h"], row["id.resp_h"], row["answers"]) == ("2001:db8::1", "2001:db8::35",
                                                                     ["2001:db8::7"])


def test_zeek_log_types_line():
    types = [c.zeek_type for c in DNS if c.zeek_type][:26]
    assert types == ["time", "string", "addr", "port", "addr", "port", "enum", "count", "interval", "string",
                     "count", "string", "count", "string", "count", "string", "bool", "bool", "bool", "bool",
                     "count", "vector[string]", "vector[interval]", "bool", "count", "string"]
    assert [c.zeek_type for c in DNS if c.name in ("auth", "addl")] == ["set[string]", "set[string]"]


def test_rows_format_as_zeek_writes_them():
    query, response = answer_for("A", "192.0.2.1")
    row = exchange(query, response)["dns"].iloc[0]
    cells = {c.name: format_value(row[c.name], c.zeek_type) for c in DNS if c.zeek_type}
    assert cells["answers"] == "192.0.2.1" and cells["TTLs"] == "300.000000" and cells["rtt"] == "0.010000"
    assert cells["uid"] == "-" and cells["AA"] == "F" and cells["auth"] == "-"


# ----------------------------------------------------------------------------- truncation

def _messages_for_truncation():
    _dns()
    import dns.edns
    import dns.message
    import dns.rrset
    q = dns.message.make_query("a.b.example.com", "ANY", use_edns=0, options=[dns.edns.ECSOption("2001:db8::", 56)])
    r = dns.message.make_response(q)
    for rdtype, texts in (("CNAME", ("c.example.com.",)), ("A", ("192.0.2.1",)), ("AAAA", ("2001:db8::1",)),
                          ("TXT", ('"x" "yz"',)), ("MX", ("5 mx.example.com.",)),
                          ("SOA", ("ns.example.com. h.example.com. 1 2 3 4 5",)),
                          ("NAPTR", ('1 2 "a" "b" "c" r.example.com.',)), ("DNSKEY", (f"256 3 8 {B64KEY}",)),
                          ("RRSIG", ("A 8 3 300 20300101000000 20200101000000 1 example.com. " + B64KEY,)),
                          ("SSHFP", ("1 1 0123456789ABCDEF0123456789ABCDEF01234567",)), ("LOC", ("52 22 23.000 N 4 53 32.000 E -2.00m",)),
                          ("HTTPS", ('1 . alpn="h2"',))):
        r.answer.append(dns.rrset.from_text("a.b.example.com.", 60, "IN", rdtype, *texts))
    r.authority.append(dns.rrset.from_text("example.com.", 60, "IN", "NS", "ns.example.com."))
    r.additional.append(dns.rrset.from_text("ns.example.com.", 60, "IN", "A", "192.0.2.53"))
    return [q.to_wire(), r.to_wire()]


def test_every_prefix_gives_a_row_or_a_weird_and_keeps_what_parsed():
    for message in _messages_for_truncation():
        full = only_row(run([(SERVER, CLIENT, 53, 40000, message)]))
        datagrams = [(SERVER, CLIENT, 53, 10000 + cut, message[:cut]) for cut in range(len(message))]
        tables = run(datagrams)
        dns_frame, weird = tables["dns"], tables["dns_weird"]
        for cut in range(len(message)):
            port = 10000 + cut
            rows = dns_frame[dns_frame["id.orig_p"] == port]
            weirds = weird[weird["id.orig_p"] == port]
            assert len(rows) + len(weirds) >= 1, cut
            if cut < 12:
                assert weirds["name"].tolist() == ["DNS_truncated_len_lt_hdr_len"] and rows.empty
                continue
            assert len(rows) == 1, cut
            # What parsed before the cut is kept: the entries are those of the whole message, except
            # possibly the last one: Zeek reads a TTL cut to 2 bytes as RDLENGTH 0 and then renders
            # an RR from no data (an AAAA of "::"), which we reproduce.
            answers = rows["answers"].iloc[0] or []
            if answers:
                assert answers[:-1] == (full["answers"] or [])[:len(answers) - 1], cut


# ----------------------------------------------------------------------------- compression

def _response_with_answer_name(name_bytes: bytes, extra: bytes = b"") -> bytes:
    header = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0)
    question = b"\x01a\x00" + b"\x00\x01\x00\x01"
    return header + question + extra + name_bytes + b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"


def test_pointer_to_itself_and_forward_pointers_stop_without_hanging():
    # Answer name at offset 19 is a pointer to offset 19: not strictly backwards.
    own = _response_with_answer_name(b"\xc0\x13")
    tables = run([(SERVER, CLIENT, 53, 40000, own)])
    assert weird_names(tables) == ["DNS_label_forward_compress_offset"]
    assert only_row(tables)["answers"] is None
    # Two names pointing at each other: one of the two pointers points forwards.
    header = struct.pack("!HHHHHH", 8, 0x8180, 2, 0, 0, 0)
    mutual = header + b"\xc0\x10\x00\x01\x00\x01" + b"\x01x\xc0\x0c\x00\x01\x00\x01"
    assert "DNS_label_forward_compress_offset" in weird_names(run([(SERVER, CLIENT, 53, 40001, mutual)]))
    # The Python text walker terminates on the same bytes.
    assert rdata.walk_name(own, 19) == b""
    assert rdata.walk_name(mutual, 12) == b""


def _chain(depth: int) -> bytes:
    """A response whose 2nd answer's name is a chain of ``depth`` pointers ending in the question name ``a``.

    The links sit in the RDATA of a first answer of a type Zeek skips silently (HINFO).
    """
    header = struct.pack("!HHHHHH", 9, 0x8180, 1, 2, 0, 0)
    question = b"\x01a\x00\x00\x01\x00\x01"             # name at offset 12
    first = b"\xc0\x0c\x00\x0d\x00\x01\x00\x00\x00\x3c" + struct.pack("!H", 2 * (depth - 1))
    start = 12 + len(question) + len(first)
    links, target = b"", 12
    for i in range(depth - 1):
        links += struct.pack("!H", 0xC000 | target)
        target = start + 2 * i
    answer = struct.pack("!H", 0xC000 | target) + b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01"
    return header + question + first + links + answer


@pytest.mark.parametrize("depth", [2, 5, 20])
def test_pointer_chain_within_the_depth_limit(depth):
    tables = run([(SERVER, CLIENT, 53, 40000, _chain(depth))])
    assert tables["dns_weird"].empty
    row = only_row(tables)
    assert row["query"] == "a" and row["answers"] == ["192.0.2.1"]


def test_pointer_chain_too_deep_is_cut_with_a_weird():
    tables = run([(SERVER, CLIENT, 53, 40000, _chain(30))])
    weird = tables["dns_weird"]
    assert weird["name"].tolist() == ["DNS_max_compression_chain_depth_exceeded"]
    assert weird["addl"].tolist() == ["21"]
    row = only_row(tables)
    assert row["query"] == "" and row["answers"] == ["192.0.2.1"]   # the name stops, the record stays
    assert weird_names(run([(SERVER, CLIENT, 53, 40000, _chain(6))], max_compression_depth=5)) == [
        "DNS_max_compression_chain_depth_exceeded"]


def test_long_chains_are_fast():
    import time
    message = _chain(2000)
    start = time.perf_counter()
    tables = run([(SERVER, CLIENT, 53, 40000, message)], max_compression_depth=5000)
    assert time.perf_counter() - start < 30
    assert only_row(tables)["answers"] == ["192.0.2.1"]


# ----------------------------------------------------------------------------- random bytes

@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
       port=st.sampled_from([53, 137, 5353, 5355]))
def test_random_bytes_never_raise(payloads, port):
    datagrams = [(CLIENT if i % 2 == 0 else SERVER, SERVER if i % 2 == 0 else CLIENT,
                  40000 if i % 2 == 0 else port, port if i % 2 == 0 else 40000, p) for i, p in enumerate(payloads)]
    tables = run(datagrams, messages=True)
    assert set(tables) == {"dns", "dns_weird", "dns_messages"}
    names = {n for n, _ in wire.WEIRDS}
    assert set(tables["dns_weird"]["name"]) <= names


@settings(max_examples=FUZZ_EXAMPLES // 2, deadline=None)
@given(message=st.binary(min_size=12, max_size=200), data=st.data())
def test_random_mutations_of_a_real_message_never_raise(message, data):
    base = bytearray(_messages_for_truncation()[1])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.sampled_from([0, 0x3F, 0x40, 0xC0, 0xC1, 0xFF, message[pos % len(message)]]))
    stage = DnsStage(messages=True)
    batch = PacketBatch.from_frames([udp_frame(SERVER, CLIENT, 53, 40000, bytes(base))])
    stage.feed(batch, dissect(batch))
    stage.feed_stream(("10.0.0.1", 1, "10.0.0.2", 53), True, bytes(message), 0, 2)
    stage.finish()


# ----------------------------------------------------------------------------- TCP

def _tcp_messages():
    _dns()
    import dns.message
    import dns.rrset
    out = []
    for i, name in enumerate(("one.example.com", "two.example.com")):
        q = dns.message.make_query(name, "A")
        q.id = 100 + i
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "A", f"192.0.2.{i + 1}"))
        out.append((q.to_wire(), r.to_wire()))
    return out


def _framed(messages) -> bytes:
    return b"".join(struct.pack("!H", len(m)) + m for m in messages)


def _tcp_run(orig_chunks, resp_chunks):
    stage = DnsStage()
    key = (CLIENT, 40000, SERVER, 53)
    frame = 1
    for chunk in orig_chunks:
        stage.feed_stream(key, True, chunk, frame * 1_000_000, frame)
        frame += 1
    for chunk in resp_chunks:
        stage.feed_stream(key, False, chunk, frame * 1_000_000, frame)
        frame += 1
    stage.close_stream(key, frame * 1_000_000, frame)
    return stage.finish()["dns"]


def test_tcp_messages_split_at_every_byte():
    pairs = _tcp_messages()
    queries = _framed([q for q, _ in pairs])
    responses = _framed([r for _, r in pairs])
    whole = _tcp_run([queries], [responses])
    assert whole["query"].tolist() == ["one.example.com", "two.example.com"]
    assert whole["answers"].tolist() == [["192.0.2.1"], ["192.0.2.2"]]
    assert set(whole["proto"]) == {"tcp"} and set(whole["id.resp_p"]) == {53}
    columns = ["trans_id", "query", "answers", "rcode", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    for cut in range(1, len(queries)):
        split = _tcp_run([queries[:cut], queries[cut:]], [responses[:cut], responses[cut:]])
        pd.testing.assert_frame_equal(split[columns], whole[columns])
    bytewise = _tcp_run([queries[i:i + 1] for i in range(len(queries))],
                        [responses[i:i + 1] for i in range(len(responses))])
    pd.testing.assert_frame_equal(bytewise[columns], whole[columns])


def test_tcp_partial_message_is_delivered_at_close():
    q, _ = _tcp_messages()[0]
    stage = DnsStage()
    key = ("k",)
    stage.feed_stream(key, True, struct.pack("!H", len(q) + 10) + q, 0, 1, conn_id=(CLIENT, 40000, SERVER, 53))
    stage.close_stream(key, 1_000_000, 2)
    row = only_row(stage.finish())
    assert row["query"] == "one.example.com" and row["rcode"] is None


def test_tcp_deliveries_from_the_reassembly():
    reassembly = pytest.importorskip("analyzer.reassembly.tcp")
    (q, r), _ = _tcp_messages()
    key = reassembly.ConnKey(CLIENT, 40000, SERVER, 53, "Cuid1")
    stage = DnsStage()
    framed_q, framed_r = _framed([q]), _framed([r])
    deliveries = [reassembly.Delivery(key, True, reassembly.Chunk(framed_q[:5], 1_000_000, 0, 3)),
                  reassembly.Delivery(key, True, reassembly.Chunk(framed_q[5:], 2_000_000, 0, 4)),
                  reassembly.Delivery(key, False, reassembly.Chunk(framed_r, 3_000_000, 0, 6)),
                  reassembly.Delivery(key, True, reassembly.Chunk(b"", 4_000_000, 0, -1, True)),
                  reassembly.Delivery(key, False, reassembly.Chunk(b"", 4_000_000, 0, -1, True))]
    for delivery in deliveries:
        stage.feed_stream(delivery)
    row = only_row(stage.finish())
    assert (row["proto"], row["query"], row["answers"], row["frame.number"]) == ("tcp", "one.example.com",
                                                                                ["192.0.2.1"], 4)
    assert row["rtt"] == pytest.approx(0.001)
    # Picked up from the server's side (no handshake): the reassembly's originator is the server.
    flipped = reassembly.ConnKey(SERVER, 53, CLIENT, 40000, "Cuid2")
    stage = DnsStage()
    stage.feed_stream(reassembly.Delivery(flipped, True, reassembly.Chunk(framed_r, 1_000_000, 0, 9)))
    row = only_row(stage.finish())
    assert (row["id.orig_h"], row["id.resp_h"], row["id.resp_p"]) == (CLIENT, SERVER, 53)
    other = reassembly.ConnKey(CLIENT, 40000, SERVER, 80, "Cuid3")
    stage = DnsStage()
    stage.feed_stream(reassembly.Delivery(other, True, reassembly.Chunk(framed_q, 1_000_000, 0, 9)))
    assert stage.finish()["dns"].empty                                  # not a DNS port


# ----------------------------------------------------------------------------- pairing

def _q(tid: int, name: str = "www.example.com", rdtype: str = "A") -> bytes:
    _dns()
    import dns.message
    query = dns.message.make_query(name, rdtype)
    query.id = tid
    return query.to_wire()


def _r(tid: int, name: str = "www.example.com", address: str = "192.0.2.1") -> bytes:
    _dns()
    import dns.message
    import dns.rrset
    query = dns.message.make_query(name, "A")
    query.id = tid
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(name + ".", 60, "IN", "A", address))
    return response.to_wire()


def test_unanswered_query_and_unsolicited_reply():
    tables = run([(CLIENT, SERVER, 40000, 53, _q(1)), (SERVER, CLIENT, 53, 40001, _r(2, "other.example.com"))])
    frame = tables["dns"].set_index("trans_id")
    assert pd.isna(frame.loc[1, "rcode"]) and frame.loc[1, "answers"] is None
    assert frame.loc[2, "query"] == "other.example.com"            # from the answer's owner
    assert pd.isna(frame.loc[2, "qtype"]) and pd.isna(frame.loc[2, "rtt"])
    assert frame.loc[2, "id.orig_h"] == CLIENT and frame.loc[2, "id.resp_p"] == 53   # turned round by port


def test_duplicate_ids_pair_in_order():
    datagrams = [(CLIENT, SERVER, 40000, 53, _q(7, "a.example.com")), (CLIENT, SERVER, 40000, 53, _q(7, "b.example.com")),
                 (SERVER, CLIENT, 53, 40000, _r(7, "a.example.com", "192.0.2.1")),
                 (SERVER, CLIENT, 53, 40000, _r(7, "b.example.com", "192.0.2.2"))]
    frame = run(datagrams, [0, 0.1, 0.3, 0.7])["dns"]
    assert frame["query"].tolist() == ["a.example.com", "b.example.com"]
    assert frame["answers"].tolist() == [["192.0.2.1"], ["192.0.2.2"]]
    assert frame["rtt"].tolist() == pytest.approx([0.3, 0.6])


def test_retransmitted_query_leaves_one_unanswered():
    datagrams = [(CLIENT, SERVER, 40000, 53, _q(7)), (CLIENT, SERVER, 40000, 53, _q(7)),
                 (SERVER, CLIENT, 53, 40000, _r(7))]
    frame = run(datagrams, [0, 5, 5.1])["dns"]
    assert len(frame) == 2
    assert frame["rtt"].iloc[0] == pytest.approx(5.1) and pd.isna(frame["rtt"].iloc[1])


def test_reply_before_query():
    frame = run([(SERVER, CLIENT, 53, 40000, _r(9)), (CLIENT, SERVER, 40000, 53, _q(9))], [0, 0.5])["dns"]
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["qtype_name"] == "A" and row["answers"] == ["192.0.2.1"] and pd.isna(row["rtt"])
    assert row["frame.number"] == 2                                  # the query's frame


def test_dns_role_flip_on_a_response_from_port_53_to_53():
    row = only_row(run([(SERVER, CLIENT, 53, 53, _r(11))]))
    assert (row["id.orig_h"], row["id.resp_h"]) == (CLIENT, SERVER)


def test_multicast_is_logged_unpaired():
    datagrams = [("192.168.0.2", "224.0.0.251", 5353, 5353, _q(0, "x.local")),
                 ("192.168.0.3", "224.0.0.251", 5353, 5353, _r(0, "x.local", "192.168.0.3"))]
    frame = run(datagrams, [0, 0.1])["dns"]
    assert len(frame) == 2 and frame["rtt"].isna().all()
    assert frame["answers"].tolist() == [None, ["192.168.0.3"]]


def test_pending_query_id_limit_writes_them_all():
    datagrams = [(CLIENT, SERVER, 40000, 53, _q(i)) for i in range(60)]
    frame = run(datagrams, [i * 0.01 for i in range(60)])["dns"]
    assert sorted(frame["trans_id"].tolist()) == list(range(60))
    frame = run(datagrams, [i * 0.01 for i in range(60)], max_pending_query_ids=5)["dns"]
    assert len(frame) == 60


def test_udp_session_timeout_splits_a_pair():
    other = (CLIENT, "10.0.0.99", 40002, 53, _q(99))
    late = run([(CLIENT, SERVER, 40000, 53, _q(1)), other, (SERVER, CLIENT, 53, 40000, _r(1))], [0, 11, 12])["dns"]
    assert len(late) == 3 and late["rtt"].isna().all()
    soon = run([(CLIENT, SERVER, 40000, 53, _q(1)), other, (SERVER, CLIENT, 53, 40000, _r(1))], [0, 3, 5])["dns"]
    assert soon.set_index("trans_id").loc[1, "rtt"] == pytest.approx(5)


def test_bad_checksum_is_not_dns_unless_ignored():
    datagrams = [(CLIENT, SERVER, 40000, 53, _q(3), True), (SERVER, CLIENT, 53, 40000, _r(3))]
    row = only_row(run(datagrams))
    assert pd.isna(row["qtype"]) if row["qtype"] is not None else True
    assert row["rtt"] is None and row["answers"] == ["192.0.2.1"]
    row = only_row(run(datagrams, ignore_checksums=True))
    assert row["qtype"] == 1 and row["rtt"] == pytest.approx(1.0)


def test_netbios_name_is_decoded():
    # A NetBIOS name query for "BRWC0CB383D1F42" (first-level encoding), broadcast to port 137.
    name = "ECFCFHEDDAEDECDDDIDDEEDBEGDEDCAA"
    message = struct.pack("!HHHHHH", 65390, 0x0110, 1, 0, 0, 0) + bytes([32]) + name.encode() + b"\0" + \
        b"\x00\x20\x00\x01"
    row = only_row(run([("141.142.220.226", "141.142.220.255", 137, 137, message)]))
    assert row["query"] == "BRWC0CB383D1F42" and row["opcode_name"] == "netbios-query"
    assert row["qtype_name"] == "NIMLOC"
    assert rdata.decode_netbios_name(name.lower()) == "BRWC0CB383D1F42"
    assert rdata.decode_netbios_name("not-netbios") == ""


# ----------------------------------------------------------------------------- corpus

def _corpus() -> Path:
    spec = importlib.util.spec_from_file_location("dns_conformance", REPO / "bench" / "dns_conformance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_conformance():
    bench = _corpus()
    corpus = bench.corpus_dir(None)
    if not (corpus / "zeek").is_dir():
        pytest.skip(f"corpus not found at {corpus} (set NETSIFT_CORPUS)")
    zeek = bench.zeek_report(corpus, "*", 10)
    assert zeek["total"] >= 1500
    assert zeek["agree"] == zeek["total"] and zeek["missing"] == 0 and zeek["extra"] == 0   # 100 %
    weird = bench.weird_report(corpus, "*")
    assert weird["matched"] == weird["total"] == 4 and weird["extra"] == 0
    tshark = bench.tshark_report(corpus, "*", 10)
    assert tshark["agree"] / tshark["total"] >= 0.99
    assert tshark["unexplained"] == 0
