"""Protocol reports: figures recomputed independently, tshark's -z statistics, HTML in a real browser.

Tests on the shared corpus skip when it is absent, those comparing with tshark
when tshark is absent, the browser tests when chromium is absent, the chart
checks when matplotlib is absent.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer import analyze
from analyzer.pipeline import SAMPLE
from analyzer.report import SECTION_TITLES, build_report
from analyzer.report.hierarchy import protocol_hierarchy
from analyzer.report.sections import MAX_BINS, choose_interval, conversation_figures, endpoint_figures, traffic_section

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("NETSIFT_CORPUS") or REPO.parent / "shared" / "corpus")
ZEEK = CORPUS / "zeek"
TSHARK = shutil.which("tshark")
CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path),
                None)

needs_corpus = pytest.mark.skipif(not (ZEEK / "wikipedia.pcap").exists(),
                                  reason=f"shared corpus not found at {CORPUS} (set $NETSIFT_CORPUS)")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
try:
    import matplotlib  # noqa: F401
    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed")


def quiet_analyze(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(path)


@pytest.fixture(scope="module")
def sample():
    return quiet_analyze(SAMPLE)


# ---- hand-made Zeek logs ---------------------------------------------------------------------


def dns_frame() -> pd.DataFrame:
    """Eight dns.log rows: A/AAAA/MX/PTR, NOERROR/NXDOMAIN/SERVFAIL, two unanswered, rtts known."""
    rows = [
        # query, qtype_name, qtype, rcode, rcode_name, rtt, server, client, answers
        ("example.com", "A", 1, 0, "NOERROR", 0.010, "10.0.0.53", "10.0.0.1", ["93.184.216.34"]),
        ("example.com", "AAAA", 28, 0, "NOERROR", 0.012, "10.0.0.53", "10.0.0.1", ["2606:2800:220:1::"]),
        ("example.com", "A", 1, 0, "NOERROR", 0.0005, "10.0.0.53", "10.0.0.2", ["93.184.216.34"]),
        ("nope.invalid", "A", 1, 3, "NXDOMAIN", 0.030, "10.0.0.53", "10.0.0.1", None),
        ("broken.test", "MX", 15, 2, "SERVFAIL", 1.5, "8.8.8.8", "10.0.0.2", None),
        ("4.3.2.1.in-addr.arpa", "PTR", 12, 3, "NXDOMAIN", 0.2, "8.8.8.8", "10.0.0.1", []),
        ("lost.example", "A", 1, None, None, None, "8.8.8.8", "10.0.0.1", None),
        ("lost.example", "A", 1, None, None, None, "10.0.0.53", "10.0.0.3", None),
    ]
    frame = pd.DataFrame(rows, columns=["query", "qtype_name", "qtype", "rcode", "rcode_name", "rtt", "id.resp_h",
                                        "id.orig_h", "answers"])
    frame.insert(0, "ts", 1_700_000_000.0 + np.arange(len(rows)))
    frame.insert(1, "uid", [f"C{i:017d}" for i in range(len(rows))])
    frame["id.orig_p"] = pd.array([40000 + i for i in range(len(rows))], dtype="UInt16")
    frame["id.resp_p"] = pd.array([53] * len(rows), dtype="UInt16")
    frame["proto"] = ["udp"] * 7 + ["tcp"]
    frame["trans_id"] = pd.array(range(len(rows)), dtype="UInt16")
    frame["qtype"] = frame["qtype"].astype("UInt16")
    frame["rcode"] = pd.array(frame["rcode"].tolist(), dtype="UInt8")
    frame["rcode_name"] = frame["rcode_name"].astype("string")
    frame["rtt"] = pd.array(frame["rtt"].tolist(), dtype="Float64")
    frame["rejected"] = pd.array([False] * len(rows), dtype="boolean")
    return frame


def http_frame() -> pd.DataFrame:
    rows = [
        # method, host, uri, user_agent, status_code, status_msg, response_body_len, resp_mime_types
        ("GET", "example.com", "/", "curl/8.0", 200, "OK", 1256, ["text/html"]),
        ("GET", "example.com", "/logo.png", "Mozilla/5.0", 200, "OK", 50_000, ["image/png"]),
        ("GET", "example.com", "/", "Mozilla/5.0", 304, "Not Modified", 0, None),
        ("POST", "api.example.com", "/v1/items", "python-requests/2.31", 201, "Created", 80, ["application/json"]),
        ("GET", "api.example.com", "/missing", "curl/8.0", 404, "Not Found", 345, ["text/html"]),
        ("GET", "<script>alert('host')</script>", "/x?<b>", "Evil \"UA\" <img src=x onerror=alert(1)>", 500,
         "Internal Server Error", 2_000_000, ("text/html", "text/plain")),
        ("GET", "example.com", "/slow", "curl/8.0", None, None, None, None),
    ]
    frame = pd.DataFrame(rows, columns=["method", "host", "uri", "user_agent", "status_code", "status_msg",
                                        "response_body_len", "resp_mime_types"])
    frame.insert(0, "ts", 1_700_000_100.0 + np.arange(len(rows)))
    frame.insert(1, "uid", [f"H{i:017d}" for i in range(len(rows))])
    frame["trans_depth"] = pd.array([1] * len(rows), dtype="UInt64")
    frame["status_code"] = pd.array(frame["status_code"].tolist(), dtype="UInt16")
    frame["response_body_len"] = pd.array(frame["response_body_len"].tolist(), dtype="UInt64")
    frame["request_body_len"] = pd.array([0, 0, 0, 120, 0, 0, 0], dtype="UInt64")
    frame["id.resp_h"] = ["93.184.216.34"] * len(rows)
    return frame


def smtp_frame() -> pd.DataFrame:
    rows = [
        # uid, mailfrom, rcptto, subject, last_reply, tls, fuids
        ("S1", "<alice@example.com>", ["<bob@example.org>", "<carol@example.org>"], "Hello", "250 2.0.0 Ok: queued",
         False, ["F1", "F2"]),
        ("S1", "<alice@example.com>", ["<bob@example.org>"], "Hello again", "250 ok", False, ["F3"]),
        ("S2", "<mallory@evil.test>", {"<bob@example.org>"}, "[bold]not markup[/bold] <b>", "550 5.7.1 rejected",
         False, None),
        ("S3", None, None, None, "220 2.0.0 Ready to start TLS", True, None),
        ("S4", "<dave@example.net>", "<erin@example.org>,<frank@example.org>", "Report", "250 ok", True,
         "F4,F5,F6"),
    ]
    frame = pd.DataFrame(rows, columns=["uid", "mailfrom", "rcptto", "subject", "last_reply", "tls", "fuids"])
    frame.insert(0, "ts", 1_700_000_200.0 + np.arange(len(rows)))
    frame["trans_depth"] = pd.array([1, 2, 1, 1, 1], dtype="UInt64")
    frame["helo"] = ["mail.example.com"] * 2 + ["evil"] + ["mx.example.net"] * 2
    frame["id.resp_h"] = ["192.0.2.25"] * 3 + ["192.0.2.26"] * 2
    frame["tls"] = pd.array(frame["tls"].tolist(), dtype="boolean")
    return frame


def with_tables(result, **tables):
    """A copy of ``result`` with the application tables replaced by ``tables`` (absent when not given)."""
    kept = {name: frame for name, frame in result.tables.items() if name not in ("dns", "http", "smtp")}
    return SimpleNamespace(tables={**kept, **tables}, stats=result.stats, capture=result.capture,
                           warnings=result.warnings)


# ---- figures recomputed with plain pandas ----------------------------------------------------


def expected_hierarchy(packets: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """ip/ipv6 and their tcp/udp for Ethernet frames without tunnels, from the columns directly."""
    size = packets["frame.len"].astype("int64")
    ip = packets["ip.src"].notna()
    ip6 = packets["ipv6.src"].notna() & ~ip
    out = {"eth": (len(packets), int(size.sum()))}
    for name, network in (("ip", ip), ("ipv6", ip6)):
        if network.any():
            out[f"eth:{name}"] = (int(network.sum()), int(size[network].sum()))
        for transport, number, column in (("tcp", 6, "tcp.srcport"), ("udp", 17, "udp.srcport")):
            mask = network & (packets["ip_proto"] == number).fillna(False) & packets[column].notna()
            if mask.any():
                out[f"eth:{name}:{transport}"] = (int(mask.sum()), int(size[mask].sum()))
    return out


def test_hierarchy_matches_plain_pandas_counts(sample):
    table = build_report(sample).table("hierarchy", "protocols")
    ours = {row.protocol: (row.frames, row.bytes) for row in table.itertuples()}
    expected = expected_hierarchy(sample.packets)
    assert {key: ours.get(key) for key in expected} == expected
    # every node counts its descendants: children never exceed their parent
    for row in table.itertuples():
        if row.depth:
            parent = ours[row.protocol.rsplit(":", 1)[0]]
            assert row.frames <= parent[0] and row.bytes <= parent[1]
    assert table.loc[table["depth"] == 0, "frames"].sum() == len(sample.packets)


def test_hierarchy_application_layer_comes_from_conn_service(sample):
    conn = sample.conn.copy()
    tcp = conn["proto"].astype(str) == "tcp"
    conn["service"] = pd.array(np.where(tcp, "http", None), dtype="string")
    table = protocol_hierarchy(sample.packets, [1], conn)
    ours = dict(zip(table["protocol"], table["frames"]))
    uids = set(conn.loc[tcp, "uid"].astype(str))
    packets = sample.packets
    in_tcp_conn = packets["uid"].astype(str).isin(uids) & packets["tcp.srcport"].notna()
    expected_v4 = int((in_tcp_conn & packets["ip.src"].notna()).sum())
    expected_v6 = int((in_tcp_conn & packets["ip.src"].isna() & packets["ipv6.src"].notna()).sum())
    assert ours.get("eth:ip:tcp:http", 0) == expected_v4
    assert ours.get("eth:ipv6:tcp:http", 0) == expected_v6
    assert expected_v4 + expected_v6 > 0


def test_conversations_and_endpoints_match_groupby(sample):
    packets = sample.packets
    src = packets["ip.src"].astype("string").fillna(packets["ipv6.src"].astype("string"))
    dst = packets["ip.dst"].astype("string").fillna(packets["ipv6.dst"].astype("string"))
    frame = pd.DataFrame({"src": src, "dst": dst, "len": packets["frame.len"].astype("int64")}).dropna()
    frame["pair"] = [tuple(sorted(p)) for p in zip(frame["src"], frame["dst"])]
    expected = frame.groupby("pair")["len"].agg(["size", "sum"])
    conversations = conversation_figures(packets)
    ours = {tuple(sorted((a, b))): (f, n) for a, b, f, n in
            zip(conversations["address A"], conversations["address B"], conversations["frames"], conversations["bytes"])}
    assert ours == {pair: (int(r["size"]), int(r["sum"])) for pair, r in expected.iterrows()}
    # A is the source of the pair's first frame, and A→B counts the frames A sent
    for row in conversations.itertuples():
        sent = frame[(frame["src"] == row[1]) & (frame["dst"] == row[2])]
        assert row[4] == len(sent) and row[5] == sent["len"].sum()
    endpoints = endpoint_figures(packets).set_index("address")
    tx = frame.groupby("src")["len"].agg(["size", "sum"])
    rx = frame.groupby("dst")["len"].agg(["size", "sum"])
    for address, row in endpoints.iterrows():
        tx_row = tx.loc[address] if address in tx.index else {"size": 0, "sum": 0}
        rx_row = rx.loc[address] if address in rx.index else {"size": 0, "sum": 0}
        assert (row["tx frames"], row["tx bytes"]) == (tx_row["size"], tx_row["sum"])
        assert (row["rx frames"], row["rx bytes"]) == (rx_row["size"], rx_row["sum"])
    assert set(endpoints.index) == set(frame["src"]) | set(frame["dst"])


def test_conversation_table_carries_conn_states(sample):
    table = build_report(sample).table("conversations", "conversations")
    conn = sample.conn
    for row in table.itertuples():
        a, b = row[1], row[2]
        pair = conn[((conn["id.orig_h"].astype(str) == a) & (conn["id.resp_h"].astype(str) == b))
                    | ((conn["id.orig_h"].astype(str) == b) & (conn["id.resp_h"].astype(str) == a))]
        assert row.connections == len(pair)
        states = dict(part.rsplit(" ", 1) for part in row[-1].split(", ")) if row[-1] else {}
        assert {k: int(v) for k, v in states.items()} == pair["conn_state"].astype(str).value_counts().to_dict()


def test_traffic_intervals_add_up(sample):
    tables = traffic_section(sample)
    io = tables["io"]
    assert io["frames"].sum() == len(sample.packets)
    assert io["bytes"].sum() == sample.packets["frame.len"].sum()
    assert (io["tcp"] + io["udp"] + io["other"] == io["frames"]).all()
    assert io["tcp"].sum() == int((sample.packets["ip_proto"] == 6).sum())
    assert len(io) <= MAX_BINS + 1


@pytest.mark.parametrize("duration,step", [(0.05, 0.001), (0.2, 0.001), (1.0, 0.01), (60, 1.0), (600, 10.0),
                                           (3600, 60.0), (86400, 600.0), (7 * 86400, 3600.0),
                                           (400 * 86400, 7 * 86400.0)])
def test_interval_choice(duration, step):
    assert choose_interval(duration) == step
    assert duration / choose_interval(duration) < MAX_BINS


def test_interval_bound_holds_for_absurd_timestamps():
    step = choose_interval(2 ** 32 * 1.0)      # a capture spanning 136 years
    assert 2 ** 32 / step < MAX_BINS


# ---- application sections --------------------------------------------------------------------


def test_sections_appear_only_with_their_tables(sample):
    plain = build_report(with_tables(sample))
    assert {"dns", "http", "smtp"}.isdisjoint(plain.sections)
    assert set(plain.skipped) == {"dns", "http", "smtp"}
    assert list(plain.sections) == [key for key in SECTION_TITLES if key not in ("dns", "http", "smtp")]
    full = build_report(with_tables(sample, dns=dns_frame(), http=http_frame(), smtp=smtp_frame()))
    assert list(full.sections) == list(SECTION_TITLES) and not full.skipped
    empty = build_report(with_tables(sample, dns=dns_frame().iloc[:0]))
    assert "dns" in empty.sections and empty.table("dns", "summary")["value"].iloc[0] == "0"


def test_dns_figures():
    frame = dns_frame()
    section = build_report_section("dns", frame)
    summary = dict(zip(section["summary"]["figure"], section["summary"]["value"]))
    assert summary["queries"] == "8"
    assert summary["answered"] == "6 (75.00 %)" and summary["unanswered"] == "2 (25.00 %)"
    assert summary["NXDOMAIN (of answered)"] == "2 (33.33 %)"
    assert summary["SERVFAIL (of answered)"] == "1 (16.67 %)"
    qtypes = dict(zip(section["qtypes"]["qtype"], section["qtypes"]["queries"]))
    assert qtypes == frame["qtype_name"].value_counts().to_dict()
    rcodes = dict(zip(section["rcodes"]["rcode"], section["rcodes"]["responses"]))
    assert rcodes == {"NOERROR": 3, "NXDOMAIN": 2, "SERVFAIL": 1}
    names = section["top_names"].set_index("query")
    assert names.loc["example.com", "queries"] == 3 and names.index[0] == "example.com"
    assert names.loc["nope.invalid", "NXDOMAIN"] == 1
    servers = section["top_servers"].set_index("id.resp_h")
    assert servers.loc["8.8.8.8", "queries"] == 3 and servers.loc["8.8.8.8", "unanswered"] == 1
    assert servers.loc["10.0.0.53", "median rtt (ms)"] == pytest.approx(11.0)
    unanswered = section["unanswered"]
    assert unanswered["queries"].sum() == 2 and set(unanswered["query"]) == {"lost.example"}
    rtt = frame["rtt"].dropna().astype(float).to_numpy()
    stats = dict(zip(section["rtt"]["statistic"], section["rtt"]["value (ms)"]))
    assert stats["count"] == 6 and stats["median"] == pytest.approx(np.median(rtt) * 1000, abs=1e-3)
    assert stats["max"] == pytest.approx(1500.0)
    histogram = dict(zip(section["rtt_histogram"]["rtt"], section["rtt_histogram"]["queries"]))
    assert sum(histogram.values()) == 6
    assert histogram["<1 ms"] == 1 and histogram["10–20 ms"] == 2 and histogram["1–2 s"] == 1


def build_report_section(name, frame, top=20):
    from analyzer.report.apps import app_section
    return app_section(name, frame, top)


def test_http_figures():
    frame = http_frame()
    section = build_report_section("http", frame)
    summary = dict(zip(section["summary"]["figure"], section["summary"]["value"]))
    assert summary["requests"] == "7" and summary["without a response"] == "1 (14.29 %)"
    assert summary["5xx responses"] == "1 (16.67 %)" and summary["4xx responses"] == "1 (16.67 %)"
    assert dict(zip(section["methods"]["method"], section["methods"]["requests"])) == {"GET": 6, "POST": 1}
    statuses = section["status_codes"].set_index("status")
    assert statuses.loc["200", "responses"] == 2 and statuses.loc["-", "responses"] == 1
    assert statuses.loc["404", "message"] == "Not Found"
    hosts = section["top_hosts"].set_index("host")
    assert hosts.loc["example.com", "requests"] == 4
    assert hosts.loc["example.com", "response bytes"] == 1256 + 50_000
    uris = dict(zip(section["top_uris"]["host + uri"], section["top_uris"]["requests"]))
    assert uris["example.com/"] == 2
    agents = dict(zip(section["user_agents"]["user agent"], section["user_agents"]["requests"]))
    assert agents["curl/8.0"] == 3 and agents["Mozilla/5.0"] == 2
    types = dict(zip(section["content_types"]["content type"], section["content_types"]["responses"]))
    assert types == {"text/html": 3, "image/png": 1, "application/json": 1, "text/plain": 1}
    sizes = dict(zip(section["response_sizes"]["statistic"], section["response_sizes"]["value (bytes)"]))
    assert sizes["count"] == 6 and sizes["max"] == 2_000_000
    buckets = dict(zip(section["response_size_histogram"]["body size"],
                       section["response_size_histogram"]["responses"]))
    assert buckets["0 B"] == 1 and buckets["10–100 kB"] == 1 and buckets["1–10 MB"] == 1
    assert "latency" not in section        # Zeek's http.log has no response time
    timed = frame.assign(latency=[0.05, 0.1, 0.02, 0.3, 0.04, 2.5, None])
    with_latency = build_report_section("http", timed)
    stats = dict(zip(with_latency["latency"]["statistic"], with_latency["latency"]["value (ms)"]))
    assert stats["count"] == 6 and stats["max"] == pytest.approx(2500.0)


def test_smtp_figures():
    frame = smtp_frame()
    section = build_report_section("smtp", frame)
    summary = dict(zip(section["summary"]["figure"], section["summary"]["value"]))
    assert summary["transactions"] == "5" and summary["connections"] == "4"
    assert summary["with STARTTLS (tls)"] == "2 (40.00 %)"
    assert summary["connections with STARTTLS"] == "2 (50.00 %)"
    assert summary["with files (fuids)"] == "3 (60.00 %)" and summary["files (fuids)"] == "6"
    assert summary["recipients (in all)"] == "6" and summary["distinct recipients"] == "4"
    senders = dict(zip(section["senders"]["mailfrom"], section["senders"]["transactions"]))
    assert senders == {"<alice@example.com>": 2, "<mallory@evil.test>": 1, "(unset)": 1, "<dave@example.net>": 1}
    recipients = dict(zip(section["recipients"]["rcptto"], section["recipients"]["transactions"]))
    assert recipients["<bob@example.org>"] == 3 and recipients["<frank@example.org>"] == 1
    codes = section["reply_codes"].set_index("code")
    assert codes.loc["250", "transactions"] == 3 and codes.loc["550", "transactions"] == 1
    assert codes.loc["220", "example"].startswith("220")
    files = dict(zip(section["files"]["files per transaction"], section["files"]["transactions"]))
    assert files == {0: 2, 1: 1, 2: 1, 3: 1}
    assert section["subjects"]["transactions"].sum() == 5


# ---- rendering -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_report(sample):
    return build_report(with_tables(sample, dns=dns_frame(), http=http_frame(), smtp=smtp_frame()))


def test_html_escapes_capture_text(full_report):
    text = full_report.to_html()
    for raw in ("<script>alert('host')</script>", "<img src=x onerror=alert(1)>", "<b>"):
        assert raw not in text
    assert html.escape("<script>alert('host')</script>") in text
    assert text.count("<script>") == 1            # ours, the table sorter
    markdown = full_report.to_markdown()
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown


def test_html_is_self_contained(full_report):
    text = full_report.to_html()
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text and "url(http" not in text
    assert "Content-Security-Policy" in text
    for key in full_report.sections:
        assert f'<section id="{key}">' in text


@needs_matplotlib
def test_html_has_one_svg_per_chart(full_report):
    text = full_report.to_html()
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)"><svg', text)
    assert set(charts) == {"traffic-io", "dns-rtt_histogram", "http-response_size_histogram"}
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "element ids repeat across charts"


def test_terminal_summary_does_not_read_capture_text_as_markup(full_report):
    from io import StringIO

    from rich.console import Console
    out = StringIO()
    full_report.print(Console(file=out, width=160, color_system=None))
    printed = out.getvalue()
    for key in full_report.sections:
        assert SECTION_TITLES[key] in printed


def test_json_has_every_table(full_report):
    data = json.loads(full_report.to_json())
    assert list(data["sections"]) == list(full_report.sections)
    for key, tables in full_report.sections.items():
        for name, frame in tables.items():
            assert len(data["sections"][key][name]) == len(frame)


def synthetic_result(frames: int = 200_000, hosts: int = 50_000, seed: int = 7):
    """A packets frame with many distinct addresses and a day of time, without a capture file."""
    rng = np.random.default_rng(seed)
    addresses = pd.Index([f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(hosts)])
    src = pd.Categorical.from_codes(rng.integers(0, hosts, frames), categories=addresses)
    dst = pd.Categorical.from_codes(rng.integers(0, hosts, frames), categories=addresses)
    times = np.sort(rng.uniform(0, 86400, frames)) + 1.7e9
    proto = rng.choice([6, 17, 1], frames)
    packets = pd.DataFrame({
        "frame.number": pd.array(np.arange(1, frames + 1), dtype="Int64"),
        "frame.time_epoch": pd.array(times, dtype="Float64"),
        "ts": pd.to_datetime((times * 1e9).astype(np.int64), unit="ns", utc=True),
        "frame.len": pd.array(rng.integers(60, 1514, frames), dtype="Int64"),
        "frame.interface_id": pd.array(np.zeros(frames, dtype=np.int64), dtype="Int64"),
        "eth.src": pd.Categorical(["02:00:00:00:00:01"] * frames), "eth.type": pd.array([0x0800] * frames,
                                                                                         dtype="UInt16"),
        "ip.version": pd.array([4] * frames, dtype="UInt8"), "ip.src": src, "ip.dst": dst,
        "ip.proto": pd.array(proto, dtype="UInt8"), "ip_proto": pd.array(proto, dtype="UInt8"),
        "ipv6.src": pd.Categorical([None] * frames, categories=[]), "ipv6.dst": pd.Categorical([None] * frames,
                                                                                              categories=[]),
        "tcp.srcport": pd.array(np.where(proto == 6, 1234, 0), dtype="UInt16"),
        "udp.srcport": pd.array(np.where(proto == 17, 53, 0), dtype="UInt16"),
        "icmp.type": pd.array(np.where(proto == 1, 8, 0), dtype="UInt8"),
    })
    for column, number in (("tcp.srcport", 6), ("udp.srcport", 17), ("icmp.type", 1)):
        packets.loc[proto != number, column] = pd.NA
    from analyzer.summary import CaptureStats
    stats = CaptureStats(packets=frames, data_bytes=int(packets["frame.len"].sum()),
                         captured_bytes=int(packets["frame.len"].sum()),
                         first_ns=int(times[0] * 1e9), last_ns=int(times[-1] * 1e9))
    capture = SimpleNamespace(path="synthetic.pcap", file_format="pcap", compressed=False, snaplen=65535,
                              link_types=[1], interfaces=[SimpleNamespace(link_type=1, snaplen=65535, name=None)])
    return SimpleNamespace(tables={"packets": packets}, stats=stats, capture=capture, warnings=[])


def test_report_size_does_not_grow_with_the_capture():
    result = synthetic_result()
    report = build_report(result, top=20)
    for key, tables in report.sections.items():
        for name, frame in tables.items():
            limit = MAX_BINS + 1 if (key, name) == ("traffic", "io") else 40
            assert len(frame) <= limit, (key, name, len(frame))
    text = report.to_html()
    assert len(text.encode()) < 5_000_000
    conversations = report.table("conversations", "conversations")
    everything = conversation_figures(result.tables["packets"])
    assert conversations["bytes"].iloc[0] == everything["bytes"].max()


# ---- the command line ------------------------------------------------------------------------


def test_report_command_writes_each_format(tmp_path):
    from analyzer.cli_report import report
    for file_format in ("html", "md", "json"):
        output = tmp_path / f"r.{file_format}"
        result = CliRunner().invoke(report, [SAMPLE, "-o", str(output), "-q"])
        assert result.exit_code == 0, result.output
        assert output.stat().st_size > 1000 and f"wrote {output}" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["sections"]["hierarchy"]["protocols"]
    assert (tmp_path / "r.md").read_text().startswith("# netsift report: mixed.pcap")


def test_report_command_default_is_the_sample_with_a_terminal_summary(tmp_path):
    from analyzer.cli_report import report
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(report, [])
        assert result.exit_code == 0, result.output
        assert "Protocol hierarchy" in result.output and "mixed.pcap" in result.output
        assert Path("report.html").exists()


def test_report_command_bad_capture_is_one_line_and_exit_2(tmp_path):
    from analyzer.cli_report import report
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all\n" * 4)
    result = CliRunner().invoke(report, [str(bad), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netsift: error:") and str(bad) in lines[0]


def test_verify_without_corpus_is_a_clear_error(tmp_path):
    from analyzer.cli_report import verify
    result = CliRunner().invoke(verify, ["--corpus", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "corpus directory not found" in result.stderr and "--corpus" in result.stderr


@needs_corpus
def test_verify_one_capture_prints_the_figures():
    from analyzer.cli_report import verify
    result = CliRunner().invoke(verify, [str(ZEEK / "wikipedia.pcap")])
    assert result.exit_code == 0, result.output
    assert "captures compared with tshark" in result.output or "1 captures" in result.output
    assert "conn.log baselines compared" in result.output and "overall" in result.output


@needs_corpus
def test_verify_figures_agree_with_the_comparison_modules():
    from analyzer.verify import verify_conn, verify_logs, verify_packets
    from analyzer.verify import dns, http
    from analyzer.verify.tshark import compare_file
    capture = ZEEK / "wikipedia.pcap"
    packets = verify_packets([capture])
    comparison = compare_file(capture)
    overall = packets.fields.set_index("field").loc["overall"]
    assert overall["compared"] == sum(c for c, _ in comparison.counts.values())
    assert overall["equal"] == sum(e for _, e in comparison.counts.values())
    conn = verify_conn([capture])
    assert conn.logs == 1 and conn.columns.iloc[-1]["cells"] > 0
    # One row per Zeek log beside the capture, with the corpus-wide functions' figures for it.
    logs = verify_logs([capture]).logs.set_index("log")
    assert sorted(logs.index) == sorted(f"{kind}.log" for kind in ("dns", "http", "smtp")
                                        if (ZEEK / f"wikipedia.{kind}.log").exists())
    got = dns.compare_dns_log(capture, ZEEK / "wikipedia.dns.log", dns.zeek_options(CORPUS)["zeek/wikipedia.pcap"])
    assert (logs.loc["dns.log", "compared"], logs.loc["dns.log", "equal"]) == (sum(got.total.values()),
                                                                             sum(got.agree.values()))
    figures = http.zeek_figures(CORPUS, "wikipedia")
    assert (logs.loc["http.log", "compared"], logs.loc["http.log", "equal"]) == (figures["cells"], figures["equal"])


@needs_corpus
def test_verify_runs_without_the_bench_scripts():
    """``netsift verify`` needs only the installed package: no module of bench/ is imported."""
    code = ("import sys; from analyzer.verify import verify; "
            f"result = verify([{str(ZEEK / 'wikipedia.pcap')!r}]); "
            "assert result.packets.captures == 1 and result.conn.logs == 1 and len(result.logs.logs), result; "
            "print([n for n, m in sys.modules.items() "
            f"if str(getattr(m, '__file__', '') or '').startswith({str(REPO / 'bench')!r})])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO.parent,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# ---- real captures against tshark -----------------------------------------------------------


def tshark_phs(path: Path) -> dict[str, tuple[int, int]]:
    out = subprocess.run([TSHARK, "-q", "-z", "io,phs", "-r", str(path)], capture_output=True, text=True,
                         check=True).stdout
    nodes, stack = {}, []
    for line in out.splitlines():
        match = re.match(r"^( *)(\S+)\s+frames:(\d+) bytes:(\d+)", line)
        if match:
            stack = stack[: len(match.group(1)) // 2] + [match.group(2)]
            nodes[":".join(stack)] = (int(match.group(3)), int(match.group(4)))
    return nodes


UNITS = {"bytes": 1, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


def tshark_conversations(path: Path) -> dict[tuple[str, str], tuple[int, int, str]]:
    """``-z conv,ip``: {(A, B): (frames, bytes, unit)}; tshark prints large byte counts rounded (``22 kB``)."""
    out = subprocess.run([TSHARK, "-q", "-z", "conv,ip", "-r", str(path)], capture_output=True, text=True,
                         check=True).stdout
    figure = r"(\d+)\s+(\d+) (bytes|kB|MB|GB)"
    rows = {}
    for line in out.splitlines():
        match = re.match(rf"^(\S+)\s+<->\s+(\S+)\s+{figure}\s+{figure}\s+{figure}", line)
        if match:
            frames, size, unit = int(match.group(9)), int(match.group(10)), match.group(11)
            rows[(match.group(1), match.group(2))] = (frames, size, unit)
    return rows


@needs_corpus
@needs_tshark
@pytest.mark.parametrize("name", ["wikipedia.pcap", "smtp.pcap"])
def test_hierarchy_matches_tshark_phs(name):
    path = ZEEK / name
    result = quiet_analyze(path)
    table = build_report(result).table("hierarchy", "protocols")
    ours = dict(zip(table["protocol"], zip(table["frames"], table["bytes"])))
    theirs = tshark_phs(path)
    compared = [key for key in theirs if key.split(":")[-1] in ("eth", "ip", "ipv6", "tcp", "udp", "icmp", "arp")]
    assert {"eth:ip", "eth:ip:tcp", "eth:ip:udp"} <= set(compared)
    assert {key: ours.get(key) for key in compared} == {key: theirs[key] for key in compared}


@needs_corpus
@needs_tshark
@pytest.mark.parametrize("name", ["wikipedia.pcap", "smtp.pcap"])
def test_conversations_match_tshark_conv_ip(name):
    path = ZEEK / name
    result = quiet_analyze(path)
    table = conversation_figures(result.packets)
    ipv4 = table[table["family"] == "IPv4"]
    theirs = tshark_conversations(path)
    assert len(ipv4) == len(theirs)
    ours = {tuple(sorted((a, b))): (f, n) for a, b, f, n in
            zip(ipv4["address A"], ipv4["address B"], ipv4["frames"], ipv4["bytes"])}
    assert set(ours) == {tuple(sorted(pair)) for pair in theirs}
    for pair, (frames, size, unit) in theirs.items():
        our_frames, our_bytes = ours[tuple(sorted(pair))]
        assert our_frames == frames, pair
        if unit == "bytes":
            assert our_bytes == size, pair
        else:                           # tshark rounds to whole kB/MB
            assert abs(our_bytes / UNITS[unit] - size) <= 0.5, pair


# ---- the page in a real browser -------------------------------------------------------------


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and re.search(r"Uncaught|Error|error", line) or "Uncaught" in line]


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory, sample):
    base = quiet_analyze(ZEEK / "wikipedia.pcap") if (ZEEK / "wikipedia.pcap").exists() else sample
    report = build_report(with_tables(base, dns=dns_frame(), http=http_frame(), smtp=smtp_frame()))
    folder = tmp_path_factory.mktemp("page")
    page = folder / "report.html"
    report.to_html(page)
    return report, page, folder


@needs_chromium
def test_page_loads_without_console_errors_and_has_every_section(browser_page):
    report, page, folder = browser_page
    run = chromium(page.as_uri(), folder / "profile-dom", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert not console_errors(run.stderr), console_errors(run.stderr)
    dom = run.stdout
    for key in report.sections:
        assert f'<section id="{key}">' in dom, key
    if HAVE_MATPLOTLIB:
        assert len(re.findall(r'<figure class="chart"[^>]*><svg', dom)) == 3


@needs_chromium
def test_clicking_a_heading_sorts_the_table(browser_page):
    _, page, folder = browser_page
    text = page.read_text(encoding="utf-8")
    click = ("<script>var t = Array.prototype.find.call(document.querySelectorAll('#conversations h3'),"
             " function (h) { return h.textContent.indexOf('Top IP endpoints') === 0; }).nextElementSibling;"
             "var h = t.tHead.rows[0].cells;"
             "for (var i = 0; i < h.length; i++) { if (h[i].textContent === 'bytes') { h[i].click(); } }</script>")
    clicked = folder / "clicked.html"
    clicked.write_text(text.replace("</body>", click + "</body>"), encoding="utf-8")
    run = chromium(clicked.as_uri(), folder / "profile-click", "--dump-dom")
    assert run.returncode == 0 and not console_errors(run.stderr)
    section = run.stdout[run.stdout.index('<section id="conversations">'):]
    table = section[section.index("Top IP endpoints"):]
    table = table[: table.index("</table>")]
    assert 'aria-sort="ascending"' in table
    header = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    column = header.index("bytes")
    values = []
    for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
        cells = re.findall(r"<td([^>]*)>", row)
        values.append(float(re.search(r'data-v="([^"]*)"', cells[column]).group(1)))
    assert len(values) > 3 and values == sorted(values)


@needs_chromium
def test_screenshot_is_taken(browser_page):
    _, page, folder = browser_page
    shot = folder / "r.png"
    run = chromium(page.as_uri(), folder / "profile-shot", f"--screenshot={shot}", "--window-size=1366,900",
                   "--hide-scrollbars")
    assert run.returncode == 0, run.stderr[-2000:]
    assert not console_errors(run.stderr)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    keep = os.environ.get("NETSIFT_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


@needs_corpus
def test_every_malformed_capture_gets_a_report():
    """tcpdump's fuzzed and truncated captures: the report is built and serialised without an exception."""
    from captures import CaptureError
    files = [path for path in sorted((CORPUS / "malformed").glob("*"))
             if path.is_file() and not path.name.endswith((".tsv", ".log", ".txt", ".md"))]
    assert files
    for path in files:
        try:
            result = quiet_analyze(path)
        except CaptureError:
            continue
        report = build_report(result)
        assert "anomalies" in report.sections, path
        json.loads(report.to_json())
        report.to_markdown()


def test_smtp_attachments_and_extensions():
    frame = smtp_frame()
    frame["attachments"] = [
        [{"filename": "a.pdf", "content_type": "application/pdf", "mime_type": "application/pdf", "size": 1000},
         {"filename": "b.png", "content_type": "image/png", "mime_type": None, "size": 20}],
        [], None,
        [{"filename": "c.pdf", "content_type": "application/octet-stream", "mime_type": "application/pdf",
          "size": 500}],
        [{"filename": None, "content_type": "text/plain", "mime_type": "text/plain", "size": None}],
    ]
    frame["extensions"] = [["PIPELINING", "STARTTLS"], ["PIPELINING", "STARTTLS"], [], ["starttls"], None]
    frame["auth_mechanism"] = pd.array([None, None, "PLAIN", None, "LOGIN"], dtype="string")
    section = build_report_section("smtp", frame)
    summary = dict(zip(section["summary"]["figure"], section["summary"]["value"]))
    assert summary["with attachments"] == "3 (60.00 %)" and summary["attachments"] == "4"
    assert summary["attachment bytes"] == "1,520"
    assert summary["server offered STARTTLS (EHLO reply)"] == "3 (60.00 %)"
    types = section["attachment_types"].set_index("type")
    assert types.loc["application/pdf", "attachments"] == 2 and types.loc["application/pdf", "bytes"] == 1500
    assert types.loc["image/png", "attachments"] == 1
    names = dict(zip(section["attachment_names"]["filename"], section["attachment_names"]["attachments"]))
    assert names == {"a.pdf": 1, "b.png": 1, "c.pdf": 1, "(unset)": 1}
    assert dict(zip(section["auth_mechanisms"]["mechanism"], section["auth_mechanisms"]["transactions"])) == {
        "(unset)": 3, "PLAIN": 1, "LOGIN": 1}
