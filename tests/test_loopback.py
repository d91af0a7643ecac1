"""``netsift generate --live``: real servers and clients on 127.0.0.1, captured on ``lo``, analysed field by field.

Each scenario runs dnspython, http.client and smtplib clients against a
socketserver DNS server (port 53: the analyzer, like Zeek, finds DNS by
port), a ThreadingHTTPServer and an aiosmtpd server offering STARTTLS, and
the rows of ``analyze()`` must equal what the clients sent and the servers
received (issue 4: dnspython queries come out field for field; issue 6:
smtplib to aiosmtpd with several recipients, attachments and STARTTLS).
Loopback frames carry partial checksums (never filled in on ``lo``), so the
files are analysed as ``zeek -C`` would (``validate_checksums=False``).

Needs root or CAP_NET_RAW and the ``live`` extra; skips otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import threading
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import analyzer
from analyzer.cli import main
from captures import live as live_module
from captures import open_capture
from captures.live import LiveCaptureError
from captures.loopback import LoopbackError, generate_live, missing_extras
from captures.loopback.run import expected_exchanges

SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "samples" / "live.pcap"


def _sample_command() -> tuple[int, int]:
    """``(seed, count)`` of the command in captures/samples/README.md that made live.pcap."""
    import shlex
    line = next(x for x in (SAMPLE.parent / "README.md").read_text().splitlines()
                if x.startswith("netsift generate --live mixed"))
    args = shlex.split(line)
    assert args[args.index("-o") + 1] == "captures/samples/live.pcap"
    return int(args[args.index("--seed") + 1]), int(args[args.index("--count") + 1])


def _capture_problem() -> str | None:
    try:
        live_module._libpcap()
    except LiveCaptureError as error:
        return str(error)
    return live_module.permission_problem()


needs_live = pytest.mark.skipif(bool(missing_extras()), reason=f"live extra missing: {missing_extras()} "
                                "(pip install 'netsift[live]')")
needs_capture = pytest.mark.skipif(_capture_problem() is not None, reason=str(_capture_problem()))


def _generate(scenario, path, **options):
    try:
        return generate_live(scenario, str(path), **options)
    except LoopbackError as error:
        if "cannot bind" in str(error):
            pytest.skip(str(error))
        raise


def _plain(value):
    """An analyzer cell as plain Python: lists for list cells, None for missing values."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist") and not isinstance(value, str):
        return list(value.tolist() if hasattr(value, "tolist") else value)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _rows(frame: pd.DataFrame, columns) -> list[dict]:
    frame = frame.sort_values(["ts", "frame.number"] if "frame.number" in frame else ["ts"])
    return [{column: _plain(row[column]) for column in columns} for _, row in frame.iterrows()]


DNS_FIELDS = ("proto", "trans_id", "query", "qtype_name", "rcode_name", "answers", "TTLs")
HTTP_FIELDS = ("method", "host", "uri", "user_agent", "request_body_len", "status_code", "response_body_len")


def _dns_expected(exchanges):
    rows = []
    for exchange in exchanges:
        row = {name: getattr(exchange, name) for name in DNS_FIELDS}
        row["answers"] = row["answers"] or None          # Zeek leaves an empty answer set unset
        row["TTLs"] = row["TTLs"] or None
        rows.append(row)
    return rows


def _check_tables(result, sent: dict, received: dict | None = None, ignore=()):
    """The analyzer's dns/http/smtp rows equal the client-side exchanges (and the servers agree)."""
    for kind in sent:
        if received is not None:
            assert received[kind] == sent[kind], kind
    if "dns" in sent:
        columns = [c for c in DNS_FIELDS if c not in ignore]
        got = _rows(result.dns, columns)
        want = [{c: row[c] for c in columns} for row in _dns_expected(sent["dns"])]
        assert got == want
    else:
        assert result.dns.empty
    if "http" in sent:
        assert _rows(result.http, HTTP_FIELDS) == [dataclasses.asdict(e) for e in sent["http"]]
    else:
        assert result.http.empty
    if "smtp" in sent:
        got = _rows(result.smtp, ("helo", "mailfrom", "rcptto", "from", "to", "subject", "tls"))
        assert got == [exchange.as_zeek_sees_it() for exchange in sent["smtp"]]
        attachments = [[a["filename"] for a in _plain(row) or [] if a.get("filename")]
                       for row in result.smtp.sort_values("ts")["attachments"]]
        assert attachments == [[] if e.tls else e.attachments for e in sent["smtp"]]
    else:
        assert result.smtp.empty


def _check_conn(result, run):
    conn = result.conn
    assert len(conn) == sum(run.conversations.values())
    assert set(conn["service"]) == set(run.conversations)
    for kind, port in run.ports.items():
        rows = conn[conn["id.resp_p"] == port]
        assert set(rows["service"]) == {kind} and len(rows) == run.conversations[kind]
    assert set(conn["id.orig_h"]) == set(conn["id.resp_h"]) == {"127.0.0.1"}
    assert (conn["missed_bytes"] == 0).all()
    tcp = conn[conn["proto"] == "tcp"]
    assert tcp["history"].str.startswith("ShA").all()        # every handshake was captured


@needs_live
@needs_capture
@pytest.mark.parametrize("scenario,count", [("dns", 9), ("http", 3), ("smtp", 3), ("mixed", 6)])
def test_scenario_field_by_field(tmp_path, scenario, count):
    run = _generate(scenario, tmp_path / f"{scenario}.pcap", seed=11, count=count)
    assert run.stats.dropped == 0 and run.packets == run.stats.captured > 0
    result = analyzer.analyze(run.path, validate_checksums=False)
    _check_tables(result, run.sent, run.received)
    _check_conn(result, run)
    assert result.weird.empty, result.weird[["name", "addl"]]
    # the content depends on the seed only
    expected = expected_exchanges(scenario, 11, count, run.ports.get("http"))
    for kind, exchanges in expected.items():
        if kind == "dns":
            exchanges = [dataclasses.replace(e, trans_id=s.trans_id) for e, s in zip(exchanges, run.sent[kind])]
        assert exchanges == run.sent[kind]


@needs_live
def test_bundled_live_sample_analyses_to_what_its_seed_sent():
    """captures/samples/live.pcap (made with the README's command) against the exchanges its seed draws."""
    seed, count = _sample_command()
    assert SAMPLE.stat().st_size < 100_000
    result = analyzer.analyze(SAMPLE, validate_checksums=False)
    http_ports = set(result.http["id.resp_p"])
    assert len(http_ports) == 1
    sent = expected_exchanges("mixed", seed, count, http_port=http_ports.pop())
    _check_tables(result, sent, ignore=("trans_id",))
    counts = result.conn["service"].value_counts().to_dict()
    assert counts == {"dns": 4, "http": 4, "smtp": 4}
    assert set(result.conn["id.resp_p"][result.conn["service"] == "dns"]) == {53}
    assert sorted(result.dns["proto"]) == ["tcp", "udp", "udp", "udp"]
    assert result.weird.empty


@needs_live
@needs_capture
def test_cli_generate_live_writes_a_readable_pcap(tmp_path):
    path = tmp_path / "cli.pcap"
    outcome = CliRunner().invoke(main, ["generate", "--live", "http", "-o", str(path), "--seed", "3",
                                        "--count", "2"])
    if outcome.exit_code == 2 and "cannot bind" in outcome.output:
        pytest.skip(outcome.output.strip())
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.startswith(f"{path}: ") and "2 conversations (http 2)" in outcome.output
    with open_capture(path) as reader:
        packets = sum(len(batch) for batch in reader.batches())
        assert reader.info.file_format == "pcap"
    assert packets == int(outcome.output.split(": ")[1].split()[0])
    result = analyzer.analyze(path, validate_checksums=False)
    assert set(result.conn["service"]) == {"http"} and len(result.http) >= 4


@pytest.mark.parametrize("options", [["--reorder", "0.1"], ["--truth", "t.jsonl"], ["--pcapng"],
                                     ["--segment", "mss"], ["--ipv6", "--vlan", "5"]])
def test_cli_live_rejects_impairments_and_truth(tmp_path, options):
    path = tmp_path / "x.pcap"
    outcome = CliRunner().invoke(main, ["generate", "--live", "dns", "-o", str(path), *options])
    assert outcome.exit_code == 2
    assert "cannot be used with --live" in outcome.output and options[0] in outcome.output
    assert not path.exists()


def test_cli_live_without_extras_or_permission_is_one_line(tmp_path, monkeypatch):
    from captures.loopback import run as run_module
    path = tmp_path / "x.pcap"
    monkeypatch.setattr(run_module, "missing_extras", lambda: ["aiosmtpd"])
    outcome = CliRunner().invoke(main, ["generate", "--live", "smtp", "-o", str(path)])
    assert outcome.exit_code == 2
    assert outcome.output.strip().splitlines() == [
        "netsift: error: live generation needs aiosmtpd: pip install 'netsift[live]'"]
    monkeypatch.setattr(run_module, "missing_extras", lambda: [])
    monkeypatch.setattr(run_module, "permission_problem", lambda: "capturing packets needs root or CAP_NET_RAW")
    outcome = CliRunner().invoke(main, ["generate", "--live", "smtp", "-o", str(path)])
    assert outcome.exit_code == 2
    assert outcome.output.strip().splitlines() == ["netsift: error: capturing packets needs root or CAP_NET_RAW"]
    assert not path.exists()


def _listening(kind: str, port: int) -> bool:
    """Whether something still holds ``port`` on 127.0.0.1 (TCP: a listener; UDP: a bound socket)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT is not "held"
        probe.bind(("127.0.0.1", port))
        if kind == "tcp":
            probe.listen()
        return False
    except OSError:
        return True
    finally:
        probe.close()


@needs_live
@needs_capture
@pytest.mark.parametrize("failure", [RuntimeError("client failed"), KeyboardInterrupt()])
def test_servers_and_capture_stop_when_a_run_fails_midway(tmp_path, monkeypatch, failure):
    from captures.loopback import http_server
    ports = {}
    real = http_server.run_session
    calls = []

    def failing_session(session, port, **options):
        calls.append(real(session, port, **options))      # one real session, then the failure
        raise failure

    def held():
        return [(kind, proto, port) for kind, port in ports.items()
                for proto in (("udp", "tcp") if kind == "dns" else ("tcp",)) if _listening(proto, port)]

    def ready(server_ports):
        ports.update(server_ports)
        during.extend(held())

    during = []
    before = set(threading.enumerate())
    monkeypatch.setattr(http_server, "run_session", failing_session)
    path = tmp_path / "failed.pcap"
    with pytest.raises(type(failure)):
        _generate("mixed", path, seed=5, count=6, on_ready=ready)
    assert set(ports) == {"dns", "http", "smtp"} and len(calls) == 1
    assert len(during) == 4                       # the probe sees the servers while they run ...
    assert held() == []                           # ... and nothing once the run has failed
    assert [thread.name for thread in set(threading.enumerate()) - before] == []
    assert not path.exists()
