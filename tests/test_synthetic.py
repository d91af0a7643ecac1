"""The synthetic traffic generator: determinism, readability, TCP consistency, truth, tshark."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import warnings

import pytest

scapy_all = pytest.importorskip("scapy.all")
from scapy.layers.dns import DNS  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP, defragment  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6  # noqa: E402
from scapy.utils import rdpcap  # noqa: E402

from captures.synthetic import IMPAIRMENTS, SCENARIOS, generate, read_jsonl  # noqa: E402

TSHARK = shutil.which("tshark")

def _gen(tmp_path, scenario="mixed", seed=7, count=6, name="c", **kw):
    path = tmp_path / f"{name}.{'pcapng' if kw.get('pcapng') else 'pcap'}"
    truth = tmp_path / f"{name}.jsonl"
    summary = generate(scenario, path, seed=seed, count=count, truth_path=truth, **kw)
    return path, read_jsonl(truth), summary


def _tables(recs, table):
    return [r for r in recs if r["table"] == table]


def _packets(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(rdpcap(str(path)))


def _l3_packets(pkts, skip=()):
    """IP/IPv6 packets after reassembling fragments; frames in ``skip`` (1-based) left out."""
    v4, v6, frags6 = [], [], {}
    out = []
    for i, p in enumerate(pkts, 1):
        if i in skip:
            continue
        if IP in p:
            v4.append(p[IP])
        elif IPv6 in p:
            if IPv6ExtHdrFragment in p:
                frags6.setdefault(p[IPv6ExtHdrFragment].id, []).append(p[IPv6])
            else:
                v6.append(p[IPv6])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out += [IP(bytes(p)) for p in defragment(v4)]
    for frags in frags6.values():
        whole = defragment6(frags)
        out.append(IPv6(bytes(whole)))
    return out + v6


def _streams(path, skip=()):
    """{(orig_h, orig_p, resp_h, resp_p): (orig bytes, resp bytes, holes)} by TCP seq numbers."""
    pkts = _l3_packets(_packets(path), skip)
    isn, segs = {}, {}
    for ip in pkts:
        if TCP not in ip:
            continue
        t = ip[TCP]
        key = (ip.src, t.sport, ip.dst, t.dport)
        if t.flags.S and not t.flags.A:
            isn[key, 0] = t.seq
        elif t.flags.S and t.flags.A:
            isn[(ip.dst, t.dport, ip.src, t.sport), 1] = t.seq
        payload = bytes(t.payload)
        if payload:
            segs.setdefault(key, []).append((t.seq, payload))
    out = {}
    for (conn, d), base in isn.items():
        if d:
            continue
        rev = (conn[2], conn[3], conn[0], conn[1])
        res = []
        for k, start in ((conn, base), (rev, isn[conn, 1])):
            buf = {}
            for seq, payload in segs.get(k, []):
                rel = (seq - start - 1) % 2**32
                for j, b in enumerate(payload):
                    assert buf.get(rel + j, b) == b, "overlapping segments disagree"
                    buf[rel + j] = b
            n = max(buf) + 1 if buf else 0
            res.append(bytes(buf.get(j, 0) for j in range(n)))
            res.append(n - len(buf))
        out[conn] = (res[0], res[2], res[1] + res[3])
    return out


def _http_messages(stream: bytes, request: bool, methods=()):
    """Parse HTTP/1.1 messages: [(start line, entity length after de-chunking and gunzip)].

    Interim (1xx) responses are included with length 0; a response to HEAD,
    a 204 and a 304 have no body.
    """
    out, pos, i = [], 0, 0
    while pos < len(stream):
        end = stream.index(b"\r\n\r\n", pos)
        head = stream[pos:end].decode().split("\r\n")
        hdrs = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
        pos = end + 4
        body = b""
        code = None if request else int(head[0].split()[1])
        no_body = not request and (code < 200 or code in (204, 304) or methods[i] == "HEAD")
        if no_body:
            pass
        elif hdrs.get("transfer-encoding") == "chunked":
            while True:
                eol = stream.index(b"\r\n", pos)
                n = int(stream[pos:eol], 16)
                pos = eol + 2
                if n == 0:
                    while not stream.startswith(b"\r\n", pos):      # trailer fields
                        pos = stream.index(b"\r\n", pos) + 2
                    pos += 2
                    break
                body += stream[pos:pos + n]
                assert stream[pos + n:pos + n + 2] == b"\r\n"
                pos += n + 2
        else:
            n = int(hdrs.get("content-length", 0))
            body = stream[pos:pos + n]
            pos += n
        if hdrs.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        out.append((head[0], len(body)))
        if request or code >= 200:
            i += 1
    return out


# ------------------------------------------------------------------ determinism

def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a, ta, _ = _gen(tmp_path, name="a", seed=11, count=8)
    b, tb, _ = _gen(tmp_path, name="b", seed=11, count=8)
    c, tc, _ = _gen(tmp_path, name="c", seed=12, count=8)
    assert a.read_bytes() == b.read_bytes()
    assert ta == tb
    assert a.read_bytes() != c.read_bytes()
    assert ta != tc


def test_impaired_generation_is_deterministic(tmp_path):
    kw = dict(segment="random", reorder=0.2, duplicate=0.2, loss=0.1, fragment=700,
              vlan=(5, 6), malformed=0.05)
    a, ta, _ = _gen(tmp_path, name="a", **kw)
    b, tb, _ = _gen(tmp_path, name="b", **kw)
    assert a.read_bytes() == b.read_bytes() and ta == tb


# ------------------------------------------------------------------ readable

@pytest.mark.parametrize("impairment", sorted(IMPAIRMENTS))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_and_impairment_reads_back(tmp_path, scenario, impairment):
    kw = IMPAIRMENTS[impairment]
    count = 1 if impairment == "every-byte" else 4
    path, truth, summary = _gen(tmp_path, scenario, seed=3, count=count, **kw)
    pkts = _packets(path)
    assert len(pkts) == summary.packets == _tables(truth, "packets")[0]["frames"]
    assert summary.conversations == len(_tables(truth, "conn")) > 0
    try:
        from captures import open_capture
    except ImportError:         # reader being rewritten elsewhere
        return
    with open_capture(path) as reader:
        n = sum(len(b) for b in reader)
    assert n == summary.packets
    if kw.get("snaplen"):
        assert max(len(p) for p in pkts) <= kw["snaplen"]


def test_options_are_applied(tmp_path):
    path, truth, s = _gen(tmp_path, "http", count=3, vlan=(10, 20), ipv6=True, fragment=1280)
    raw = bytes(_packets(path)[0])
    assert raw[12:14] == b"\x88\xa8" and raw[16:18] == b"\x81\x00" and raw[20:22] == b"\x86\xdd"
    assert all(":" in c["id.orig_h"] for c in _tables(truth, "conn"))
    assert _tables(truth, "packets")[0]["fragmented"] > 0
    path, _, _ = _gen(tmp_path, "dns", count=3, vlan=(7,), name="v")
    assert bytes(_packets(path)[0])[12:14] == b"\x81\x00"


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError):
        generate("ftp", tmp_path / "x.pcap")
    with pytest.raises(ValueError):
        generate("dns", tmp_path / "x.pcap", segment="tiny")
    with pytest.raises(ValueError):
        generate("dns", tmp_path / "x.pcap", loss=2)


# ------------------------------------------------------------------ TCP consistency

def _check_streams_against_truth(streams, truth):
    conns = {(c["id.orig_h"], c["id.orig_p"], c["id.resp_h"], c["id.resp_p"]): c
             for c in _tables(truth, "conn") if c["proto"] == "tcp"}
    assert set(streams) == set(conns)
    for key, (o, r, holes) in streams.items():
        c = conns[key]
        # Bytes received = bytes sent - bytes lost (holes counts gaps inside the streams).
        assert len(o) + len(r) - holes == c["orig_bytes"] + c["resp_bytes"] - c["missed_bytes"]
        assert holes <= c["missed_bytes"]
        assert len(o) <= c["orig_bytes"] and len(r) <= c["resp_bytes"]
        if not c["missed_bytes"]:
            assert (len(o), len(r)) == (c["orig_bytes"], c["resp_bytes"])
    by_conn = {}
    for rec in truth:
        if rec["table"] in ("http", "smtp", "dns") and rec.get("proto", "tcp") == "tcp":
            key = (rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_h"], rec["id.resp_p"])
            by_conn.setdefault(key, []).append(rec)
    for key, recs in by_conn.items():
        o, r, holes = streams[key]
        if holes:
            continue
        http_recs = [x for x in recs if x["table"] == "http"]
        if http_recs:
            # Zeek's body lengths: entity after removing chunking and gzip.
            reqs = _http_messages(o, True)
            resps = [m for m in _http_messages(r, False, [q[0].split()[0] for q in reqs])
                     if not m[0].startswith("HTTP/1.1 1")]
            assert [x["request_body_len"] for x in http_recs] == [m[1] for m in reqs]
            assert [x["response_body_len"] for x in http_recs] == [m[1] for m in resps]
            assert [f"HTTP/1.1 {x['status_code']} {x['status_msg']}" for x in http_recs] == \
                [m[0] for m in resps]
        pos = 0
        for rec in recs:
            if rec["table"] == "http":
                line = f"{rec['method']} {rec['uri']} HTTP/1.1\r\n".encode()
                pos = o.index(line, pos)
                assert f"Host: {rec['host']}\r\n".encode() in o
                assert f"HTTP/1.1 {rec['status_code']} {rec['status_msg']}\r\n".encode() in r
            elif rec["table"] == "smtp":
                assert f"EHLO {rec['helo']}\r\n".encode() in o
                if "mailfrom" in rec:
                    pos = o.index(f"MAIL FROM:<{rec['mailfrom']}>".encode(), pos)
                for rcpt in rec.get("rcptto", []):
                    assert f"RCPT TO:<{rcpt}>\r\n".encode() in o
                assert rec["last_reply"].encode() in r
                if "subject" in rec:
                    assert f"Subject: {rec['subject']}\r\n".encode() in o
            else:       # DNS over TCP: 2-byte length, then the message
                assert int.from_bytes(o[:2], "big") == len(o) - 2
                q, a = DNS(o[2:]), DNS(r[2:])
                assert q.id == a.id == rec["trans_id"]
                assert q.qd[0].qname.decode().rstrip(".") == rec["query"]
                assert a.ancount == len(rec.get("answers", []))


@pytest.mark.parametrize("impairment", ["plain", "random-seg", "reorder", "duplicate",
                                        "fragment", "qinq", "malformed", "pcapng", "loss"])
def test_tcp_reassembles_to_the_same_streams(tmp_path, impairment):
    ref_path, ref_truth, _ = _gen(tmp_path, name="ref", count=8)
    ref = _streams(ref_path)
    _check_streams_against_truth(ref, ref_truth)
    kw = dict(IMPAIRMENTS[impairment])
    if impairment in ("reorder", "duplicate"):
        kw.update(reorder=0.3, duplicate=0.3, segment="random")
    path, truth, _ = _gen(tmp_path, count=8, **kw)
    skip = set(_tables(truth, "packets")[0]["malformed"])
    got = _streams(path, skip)
    _check_streams_against_truth(got, truth)
    assert set(got) == set(ref)
    for key in ref:
        o, r, holes = got[key]
        if impairment == "loss":
            ro, rr, _ = ref[key]
            assert all(a == b for a, b in zip(o, ro) if a) or holes
            assert len(o) <= len(ro) and len(r) <= len(rr)
        else:
            assert (o, r) == ref[key][:2]


@pytest.mark.parametrize("scenario,kw", [
    ("http", {"segment": "every-byte", "duplicate": 0.2, "reorder": 0.2}),
    ("dns", {"segment": "every-byte"}),
    ("mixed", {"ipv6": True, "segment": "random"}),
    ("mixed", {"ipv6": True, "fragment": 1280, "reorder": 0.2})])
def test_tcp_streams_match_truth(tmp_path, scenario, kw):
    count = {"http": 2, "dns": 12}.get(scenario, 8)
    path, truth, _ = _gen(tmp_path, scenario, count=count, **kw)
    _check_streams_against_truth(_streams(path), truth)


def test_seq_ack_consistent(tmp_path):
    path, truth, _ = _gen(tmp_path, "http", count=6, segment="random")
    isn, last_ack = {}, {}
    for p in _packets(path):
        t = p[TCP]
        key = (p[IP].src, t.sport, p[IP].dst, t.dport)
        if t.flags.S:
            isn[key] = t.seq
            continue
        if t.flags.A:
            rev = (key[2], key[3], key[0], key[1])
            # Cumulative ACKs never go backwards without reordering.
            assert t.ack >= last_ack.get(key, 0)
            last_ack[key] = t.ack
            assert 0 <= (t.ack - isn[rev]) % 2**32 <= 2**31
    conns = {(c["id.orig_h"], c["id.orig_p"], c["id.resp_h"], c["id.resp_p"]): c
             for c in _tables(truth, "conn")}
    for key, c in conns.items():
        rev = (key[2], key[3], key[0], key[1])
        fin = 1 if c["conn_state"] == "SF" else 0
        # The last ACK from the originator covers the responder's data (and FIN).
        assert (last_ack[key] - isn[rev] - 1) % 2**32 == c["resp_bytes"] + fin


# ------------------------------------------------------------------ fragments

@pytest.mark.parametrize("ipv6", [False, True])
def test_fragments_reassemble_to_the_original(tmp_path, ipv6):
    whole, _, _ = _gen(tmp_path, "http", name="whole", count=3, ipv6=ipv6)
    mtu = 1280 if ipv6 else 576
    frag, truth, s = _gen(tmp_path, "http", name="frag", count=3, ipv6=ipv6, fragment=mtu)
    fp = _packets(frag)
    assert s.packets > len(_packets(whole))
    assert all(len(bytes(p[IPv6] if ipv6 else p[IP])) <= mtu for p in fp)
    original = sorted(bytes((p[IPv6] if ipv6 else p[IP]).payload) for p in _packets(whole))
    assert sorted(bytes(ip.payload) for ip in _l3_packets(fp)) == original


# ------------------------------------------------------------------ truth

def test_dns_truth_matches_the_wire(tmp_path):
    path, truth, _ = _gen(tmp_path, "dns", count=40)
    recs = {(r["id.orig_h"], r["id.orig_p"], r["proto"]): r for r in _tables(truth, "dns")}
    seen = truncated = 0
    for p in _packets(path):
        if UDP not in p or not p[UDP].sport == 53:
            continue
        ip = p[IP] if IP in p else p[IPv6]
        rec = recs[(ip.dst, p[UDP].dport, "udp")]
        m = DNS(bytes(p[UDP].payload))
        assert m.id == rec["trans_id"] and m.rcode == rec["rcode"]
        # Zeek logs the query's TC bit, and the response's AA/RA only with an answer record.
        assert rec["TC"] is False
        assert rec["AA"] == (bool(m.aa) and m.ancount > 0) and rec["RA"] == (bool(m.ra) and m.ancount > 0)
        truncated += bool(m.tc)
        assert m.qd[0].qtype == rec["qtype"]
        assert m.ancount == len(rec.get("answers", [])) == len(rec.get("TTLs", []))
        for rr, ttl in zip(m.an or [], rec.get("TTLs", [])):
            assert rr.ttl == ttl
        seen += 1
    assert seen == sum(1 for r in recs.values() if r["proto"] == "udp")
    kinds = {r["qtype_name"] for r in recs.values()} | {r["rcode_name"] for r in recs.values()}
    assert {"A", "AAAA", "MX", "NXDOMAIN"} <= kinds
    assert truncated and any(r["proto"] == "tcp" for r in recs.values())


def test_conn_truth_counts_packets(tmp_path):
    path, truth, s = _gen(tmp_path, "mixed", count=10, duplicate=0.2)
    conns = _tables(truth, "conn")
    assert sum(c["orig_pkts"] + c["resp_pkts"] for c in conns) == s.packets
    assert {"dns", "http", "smtp"} <= {c.get("service") for c in conns}
    assert any(c["proto"] == "icmp" and c["conn_state"] == "OTH" for c in conns)
    _, truth, _ = _gen(tmp_path, "mixed", count=10, name="clean")
    tcp = [c for c in _tables(truth, "conn") if c["proto"] == "tcp"]
    assert tcp and all(c["history"].startswith("ShA") for c in tcp)
    assert {c["conn_state"] for c in tcp} <= {"SF", "RSTO", "RSTR"}


def test_sample_is_current(tmp_path):
    """captures/samples/ holds exactly what the command in its README makes."""
    import shlex
    from pathlib import Path
    from click.testing import CliRunner
    from analyzer.cli import main
    samples = Path(__file__).resolve().parent.parent / "captures" / "samples"
    readme = (samples / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("netsift generate mixed"))
    args = shlex.split(line)[1:]
    for option in ("-o", "--truth"):
        name = Path(args[args.index(option) + 1]).name
        args[args.index(option) + 1] = str(tmp_path / name)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for name in ("mixed.pcap", "mixed.truth.jsonl"):
        assert (tmp_path / name).read_bytes() == (samples / name).read_bytes(), name
    assert (samples / "mixed.pcap").stat().st_size < 100_000


# ------------------------------------------------------------------ tshark

def _tshark_flagged(path):
    # Out-of-order reassembly (off by default) so that reordered segments still
    # reassemble into HTTP/SMTP messages.
    out = subprocess.run([TSHARK, "-n", "-o", "tcp.reassemble_out_of_order:TRUE",
                          "-r", str(path), "-Y",
                          "_ws.malformed || _ws.expert.severity == error",
                          "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return {int(x) for x in out.stdout.split()}


# Not here: loss (bytes really missing from HTTP messages can make Wireshark's HTTP
# parser fail after a gap) and every-byte segmentation of chunked HTTP bodies
# (Wireshark 4.0 raises an exception when the final CRLF of a chunked body
# arrives in a segment of its own); the streams are checked by seq above.
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
@pytest.mark.parametrize("scenario,kw", [
    ("mixed", {}), ("mixed", {"vlan": (10, 20), "segment": "random"}), ("mixed", {"ipv6": True}),
    ("mixed", {"fragment": 576, "reorder": 0.2, "duplicate": 0.2}),
    ("mixed", {"ipv6": True, "fragment": 1280, "pcapng": True, "nanosecond": True}),
    ("smtp", {"segment": "every-byte"}), ("dns", {"segment": "every-byte", "snaplen": 1000})])
def test_tshark_finds_nothing_malformed(tmp_path, scenario, kw):
    count = 1 if scenario == "smtp" else 12
    path, _, _ = _gen(tmp_path, scenario, count=count, **kw)
    assert _tshark_flagged(path) == set()


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tshark_flags_exactly_the_malformed_frames(tmp_path):
    path, truth, s = _gen(tmp_path, count=12, malformed=0.05, fragment=1000)
    bad = set(_tables(truth, "packets")[0]["malformed"])
    assert bad and bad == set(s.malformed)
    assert _tshark_flagged(path) == bad
