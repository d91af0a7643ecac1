"""Live capture: interfaces, libpcap capture on loopback and between two network namespaces, ring buffers,
autostop, signals, the live pipeline and its dashboard.

Traffic only ever goes to 127.0.0.1 or between veth interfaces inside network
namespaces the test creates (and removes); every sender is bounded in count
and time.  Tests that capture need root (or CAP_NET_RAW) and skip otherwise;
the namespace test also needs ``ip netns``.
"""

from __future__ import annotations

import os
import queue
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from captures import live as live_module
from captures.batch import PacketBatch
from captures.live import LiveCapture, LiveCaptureError
from captures.ring import (Autostop, CaptureFileWriter, OptionError, RingBuffer, parse_autostop,
                           parse_ring_buffer, ring_file_name)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RING_NAME = re.compile(r"^out_(\d{5})_(\d{14})\.pcap$")


def _libpcap_problem() -> str | None:
    try:
        live_module._libpcap()
    except LiveCaptureError as error:
        return str(error)
    return None


LIBPCAP_PROBLEM = _libpcap_problem()
needs_capture = pytest.mark.skipif(
    LIBPCAP_PROBLEM is not None or live_module.permission_problem() is not None,
    reason=LIBPCAP_PROBLEM or "capturing needs root or CAP_NET_RAW")


# ---------------------------------------------------------------------------
# helpers


def _port() -> int:
    """A random high UDP port nothing listens on."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            probe.close()
    raise RuntimeError("no free port")


def send_udp(port: int, count: int, host: str = "127.0.0.1", payload: bytes = b"x" * 100,
             pace_every: int = 0) -> int:
    """Send ``count`` datagrams to ``host:port`` (a bound, never-read socket swallows them: no ICMP)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind((host, port))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(count):
            out.sendto(payload, (host, port))
            if pace_every and i % pace_every == pace_every - 1:
                time.sleep(0.001)
    finally:
        out.close()
        sink.close()
    return count


def in_thread(function, *args, **kwargs) -> threading.Thread:
    thread = threading.Thread(target=function, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


class CaptureProcess:
    """``python -m analyzer.cli_live ARGS`` in a subprocess, with its stderr read line by line."""

    def __init__(self, args, prefix=()):
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "analyzer.cli_live", *map(str, args)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for 'Capturing on …' (the handle is open and filtering)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("Capturing on"):
                return
        self.kill()
        raise AssertionError(f"capture did not start: {self.stderr}")

    def finish(self, timeout: float = 20.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.reader.join(timeout=10)      # stderr read to the end
        return code

    def captured(self) -> int:
        for line in self.stderr:
            match = re.match(r"(\d+) packets? captured", line)
            if match:
                return int(match.group(1))
        raise AssertionError(f"no statistics in {self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def analyse_cleanly(path):
    """``analyzer.analyze(path)`` with every warning an error (a complete, valid file).

    Loopback captures carry the checksums the kernel left to offload, so they are
    analysed as ``-C`` (else the checksum-offloading warning is the one warning).
    """
    from analyzer import analyze
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyze(path, validate_checksums=False)
    assert result.warnings == []
    return result


def udp_frame(sport: int, dport: int, payload: bytes = b"x" * 100) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes([127, 0, 0, 1]),
                     bytes([127, 0, 0, 1]))
    return b"\0" * 12 + b"\x08\x00" + ip + udp


# ---------------------------------------------------------------------------
# interfaces, privileges, errors (no traffic)


@pytest.mark.skipif(LIBPCAP_PROBLEM is not None, reason=LIBPCAP_PROBLEM or "")
def test_interfaces_lists_loopback_with_address_and_state():
    from analyzer.cli_live import interfaces as interfaces_command
    found = {interface.name: interface for interface in live_module.interfaces()}
    assert "lo" in found
    lo = found["lo"]
    assert lo.up and lo.loopback and "127.0.0.1" in lo.addresses
    assert lo.index == socket.if_nametoindex("lo")
    result = CliRunner().invoke(interfaces_command, [])
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if re.match(r"\s*\d+\. lo\s", line))
    assert "127.0.0.1" in line and " up " in line and f"ifindex {lo.index:>3}" in line


def test_permission_check(monkeypatch):
    monkeypatch.setattr(live_module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(live_module, "_effective_capabilities", lambda: 0)
    message = live_module.permission_problem()
    assert "CAP_NET_RAW" in message and "setcap cap_net_raw,cap_net_admin=eip" in message
    assert "\n" not in message
    monkeypatch.setattr(live_module, "_effective_capabilities", lambda: 1 << live_module.CAP_NET_RAW)
    assert live_module.permission_problem() is None


@pytest.mark.skipif(LIBPCAP_PROBLEM is not None, reason=LIBPCAP_PROBLEM or "")
def test_without_privileges_capture_is_one_line_and_exit_2(monkeypatch):
    from analyzer.cli_live import capture
    monkeypatch.setattr(live_module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(live_module, "_effective_capabilities", lambda: 0)
    result = CliRunner().invoke(capture, ["-i", "lo", "-c", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netsift: error: ") and "setcap" in lines[0]


@pytest.mark.skipif(LIBPCAP_PROBLEM is not None, reason=LIBPCAP_PROBLEM or "")
def test_unknown_interface_is_one_line_listing_the_others_and_exit_2():
    from analyzer.cli_live import capture
    result = CliRunner().invoke(capture, ["-i", "no-such-if0", "-c", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-if0" in lines[0] and "lo" in lines[0].split("available:")[1]


@needs_capture
def test_bad_filter_is_one_line_and_exit_2():
    from analyzer.cli_live import capture
    result = CliRunner().invoke(capture, ["-i", "lo", "-f", "udp port ((", "-c", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad capture filter 'udp port (('" in lines[0]


@pytest.mark.parametrize("args,problem", [
    (["-b", "filesize:10"], "needs an output file"),
    (["-w", "x.pcap", "-b", "files:3"], "no filesize, duration"),
    (["-w", "x.pcap", "-b", "size:3"], "unknown ring buffer option"),
    (["-a", "duration:soon"], "not a number"),
])
def test_bad_options_are_one_line_and_exit_2(args, problem, tmp_path, monkeypatch):
    from analyzer.cli_live import capture
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(capture, ["-i", "lo", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0]


def test_option_parsing():
    assert parse_ring_buffer(["filesize:100,files:5", "duration:2.5"]) == RingBuffer(
        filesize_kb=100, duration=2.5, files=5)
    assert parse_autostop(["duration:3", "packets:10"], count=5) == Autostop(duration=3.0, packets=5)
    with pytest.raises(OptionError):
        parse_autostop(["files:0"])


# ---------------------------------------------------------------------------
# ring buffer writer (synthetic batches: exact sizes and names)


def _batch(n, first_ts_s=1_700_000_000, step_ns=1_000_000, first_number=1):
    frames = [udp_frame(1000, 2000 + i % 7) for i in range(n)]
    ts = first_ts_s * 1_000_000_000 + np.arange(n, dtype=np.int64) * step_ns
    return PacketBatch.from_frames(frames, ts_ns=ts, first_number=first_number)


def _ring_files(directory):
    return sorted(name for name in os.listdir(directory) if RING_NAME.match(name))


def test_ring_filesize_and_files_as_dumpcap(tmp_path):
    # dumpcap -b filesize:10 -b files:3 with 300 142-byte frames keeps files 3, 4, 5
    # of 64, 64 and 44 packets (10136, 10136, 6976 bytes): a file ends with the packet
    # that takes it to 10 kB.
    opened = []
    with CaptureFileWriter(str(tmp_path / "out.pcap"), 1, 262144, ring=RingBuffer(filesize_kb=10, files=3),
                           on_file=opened.append) as writer:
        for part in range(3):
            writer.write_batch(_batch(100, first_number=1 + 100 * part))
    names = _ring_files(tmp_path)
    assert [RING_NAME.match(n).group(1) for n in names] == ["00003", "00004", "00005"]
    assert len(opened) == 5 and writer.files_created == 5
    assert [os.path.getsize(tmp_path / n) for n in names] == [10136, 10136, 6976]
    assert [analyse_cleanly(tmp_path / n).packet_count for n in names] == [64, 64, 44]


def test_ring_packets_and_duration_switch(tmp_path):
    with CaptureFileWriter(str(tmp_path / "out.pcap"), 1, 262144, ring=RingBuffer(packets=40)) as writer:
        writer.write_batch(_batch(100))
    assert [analyse_cleanly(tmp_path / n).packet_count for n in _ring_files(tmp_path)] == [40, 40, 20]
    for name in _ring_files(tmp_path):
        os.remove(tmp_path / name)
    # 100 frames 50 ms apart = 5 s; a new file every 2 s of capture time.
    start = time.time()
    with CaptureFileWriter(str(tmp_path / "out.pcap"), 1, 262144, ring=RingBuffer(duration=2)) as writer:
        batch = _batch(100, first_ts_s=int(start) + 1, step_ns=50_000_000)
        writer.write_batch(batch)
    counts = [analyse_cleanly(tmp_path / n).packet_count for n in _ring_files(tmp_path)]
    assert sum(counts) == 100 and len(counts) >= 3


def test_ring_name_format():
    when = time.mktime((2024, 5, 6, 7, 8, 9, 0, 0, -1))
    assert ring_file_name("/x/out.pcapng", 7, when) == "/x/out_00007_20240506070809.pcapng"
    assert ring_file_name("capture", 12, when) == "capture_00012_20240506070809"
    assert ring_file_name("a.b.pcap.gz", 1, when) == "a.b_00001_20240506070809.pcap.gz"


def test_autostop_filesize_and_files(tmp_path):
    with CaptureFileWriter(str(tmp_path / "one.pcap"), 1, 262144, autostop=Autostop(filesize_kb=2)) as writer:
        taken = writer.write_batch(_batch(100))
    assert writer.full and taken == 13          # 24 + 13 * 158 = 2078 >= 2000
    assert analyse_cleanly(tmp_path / "one.pcap").packet_count == 13
    with CaptureFileWriter(str(tmp_path / "out.pcap"), 1, 262144, ring=RingBuffer(packets=10),
                           autostop=Autostop(files=2)) as writer:
        taken = writer.write_batch(_batch(100))
    assert writer.full and taken == 20 and len(_ring_files(tmp_path)) == 2


# ---------------------------------------------------------------------------
# dashboard (synthetic batch)


def test_dashboard_shows_rates_protocols_talkers_dns_and_http():
    from rich.console import Console

    from analyzer.live import Dashboard
    from dissectors import dissect

    def ip_frame(proto, src, dst, l4):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, socket.inet_aton(src),
                         socket.inet_aton(dst))
        return b"\0" * 12 + b"\x08\x00" + ip + l4

    query = (struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00"
             + struct.pack("!HH", 28, 1))
    request = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
    frames = [
        ip_frame(17, "10.0.0.1", "10.0.0.53", struct.pack("!HHHH", 5555, 53, 8 + len(query), 0) + query),
        ip_frame(6, "10.0.0.2", "10.0.0.80", struct.pack("!HHIIBBHHH", 4444, 80, 1, 1, 0x50, 0x18, 65535, 0, 0)
                 + request),
        ip_frame(1, "10.0.0.2", "10.0.0.1", b"\x08\x00\x00\x00\x00\x01\x00\x01"),
    ]
    batch = PacketBatch.from_frames(frames, ts_ns=1_700_000_000 * 10**9 + np.arange(3) * 10**6)
    board = Dashboard("lo", "port 53")
    board.update(batch, dissect(batch))
    console = Console(record=True, width=160)
    console.print(board.render())
    text = console.export_text()
    assert "example.com" in text and "AAAA" in text
    assert "www.example.com" in text and "/index.html" in text and "GET" in text
    assert board.protocols["tcp"][0] == 1 and board.protocols["udp"][0] == 1 and board.protocols["icmp"][0] == 1
    assert board.top_talkers()[0][0] == "10.0.0.2"
    assert "pkt/s" in text and "dropped by kernel" in text


# ---------------------------------------------------------------------------
# capture on loopback


@needs_capture
def test_capture_on_loopback_gets_every_datagram():
    port, sent = _port(), 500
    with LiveCapture("lo", f"udp dst port {port}", duration=15) as capture:
        sender = in_thread(send_udp, port, sent)
        frames = 0
        ports = []
        from dissectors import dissect
        for batch in capture.batches(heartbeat=0.05):
            if len(batch):
                frames += len(batch)
                fields = dissect(batch)
                ports.append(fields.values["udp.dstport"][fields.valid["udp.dstport"]])
                assert batch.first_number == frames - len(batch) + 1
            if not sender.is_alive() and not capture.stopping:
                time.sleep(0.05)
                capture.stop()
        stats = capture.stats()
    assert frames == sent
    assert stats.captured == sent and stats.dropped == 0
    assert np.all(np.concatenate(ports) == port)


@needs_capture
def test_filter_keeps_only_the_filtered_port():
    keep, other = _port(), _port()
    with LiveCapture("lo", f"udp dst port {keep}", count=200, duration=15) as capture:
        in_thread(send_udp, other, 300)
        in_thread(send_udp, keep, 200, pace_every=20)
        from dissectors import dissect
        batches = list(capture.batches())
    assert capture.stop_reason == "count"
    fields = [dissect(b) for b in batches]
    assert sum(len(b) for b in batches) == 200
    assert all(np.all(f.values["udp.dstport"] == keep) for f in fields)


@needs_capture
def test_live_generator_honours_snaplen_and_count():
    from captures.live import live
    port = _port()
    done = threading.Event()

    def sender():          # until the capture has its 20 frames (at most 2000 datagrams, ~2 s)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", port))
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(2000):
            if done.is_set():
                break
            out.sendto(b"x" * 100, ("127.0.0.1", port))
            time.sleep(0.001)
        out.close()
        sink.close()

    thread = in_thread(sender)
    try:
        batches = list(live("lo", f"udp dst port {port}", snaplen=60, count=20, duration=15))
    finally:
        done.set()
        thread.join(10)
    assert sum(len(b) for b in batches) == 20
    assert all((b.cap_len == 60).all() and (b.wire_len == 142).all() for b in batches)
    assert [b.first_number for b in batches] == list(np.cumsum([0] + [len(b) for b in batches[:-1]]) + 1)


@needs_capture
def test_analyze_live_feeds_the_pipeline_and_writes_a_valid_file(tmp_path):
    from analyzer.live import analyze_live
    port, sent = _port(), 300
    out = tmp_path / "live.pcapng"
    result = analyze_live("lo", f"udp dst port {port}", count=sent, duration=15, write=str(out),
                          dashboard=False, on_ready=lambda capture: in_thread(send_udp, port, sent))
    assert result.packet_count == sent and result.live_stats.captured == sent
    assert set(result.packets["udp.dstport"]) == {port}
    assert len(result.conn) == 1 and int(result.conn["orig_pkts"].iloc[0]) == sent
    assert result.capture.file_format == "pcapng" and result.capture.interfaces[0].name == "lo"
    again = analyse_cleanly(out)
    assert again.packet_count == sent
    assert (again.packets["frame.time_epoch"].to_numpy() == result.packets["frame.time_epoch"].to_numpy()).all()


@needs_capture
def test_cli_ring_buffer_on_loopback(tmp_path):
    port = _port()
    capture = CaptureProcess(["capture", "-i", "lo", "-f", f"udp dst port {port}", "-w", tmp_path / "out.pcap",
                              "-b", "filesize:10", "-b", "files:3", "-c", "300", "-a", "duration:20"])
    try:
        capture.wait_ready()
        send_udp(port, 300, pace_every=50)
        assert capture.finish() == 0
    finally:
        capture.kill()
    names = _ring_files(tmp_path)
    assert [RING_NAME.match(n).group(1) for n in names] == ["00003", "00004", "00005"]
    assert [analyse_cleanly(tmp_path / n).packet_count for n in names] == [64, 64, 44]
    assert sum(line.startswith("File: ") for line in capture.stderr) == 5
    assert capture.captured() == 300


@needs_capture
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_capture_leaves_a_complete_file(tmp_path, signum):
    port = _port()
    out = tmp_path / "cut.pcapng"
    capture = CaptureProcess(["capture", "-i", "lo", "-f", f"udp dst port {port}", "-w", out,
                              "-a", "duration:20"])
    try:
        capture.wait_ready()
        if signum == signal.SIGINT:
            # Traffic still flowing when the signal comes.
            sender = in_thread(send_udp, port, 20000, pace_every=20)
            time.sleep(0.4)
            capture.proc.send_signal(signum)
            sender.join(timeout=30)
        else:
            # Everything sent before the signal is in the file.
            send_udp(port, 300)
            time.sleep(0.05)
            capture.proc.send_signal(signum)
        assert capture.finish() == 0
    finally:
        capture.kill()
    captured = capture.captured()
    result = analyse_cleanly(out)
    assert result.packet_count == captured > 0
    assert set(result.packets["udp.dstport"]) == {port}
    if signum == signal.SIGTERM:
        assert captured == 300


@needs_capture
def test_autostop_by_packets_and_by_duration(tmp_path):
    port = _port()
    by_packets = CaptureProcess(["capture", "-i", "lo", "-f", f"udp dst port {port}", "-w",
                                 tmp_path / "fifty.pcap", "-a", "packets:50", "-a", "duration:20"])
    try:
        by_packets.wait_ready()
        send_udp(port, 200, pace_every=10)
        assert by_packets.finish() == 0
    finally:
        by_packets.kill()
    assert by_packets.captured() == 50
    assert analyse_cleanly(tmp_path / "fifty.pcap").packet_count == 50

    quiet = CaptureProcess(["capture", "-i", "lo", "-f", f"udp dst port {_port()}", "-w",
                            tmp_path / "quiet.pcap", "-a", "duration:1"])
    try:
        quiet.wait_ready()
        started = time.monotonic()
        assert quiet.finish() == 0
        assert time.monotonic() - started < 5
    finally:
        quiet.kill()
    assert quiet.captured() == 0
    assert analyse_cleanly(tmp_path / "quiet.pcap").packet_count == 0


# ---------------------------------------------------------------------------
# between two network namespaces over a veth pair


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


@pytest.fixture
def veth_pair():
    """Two namespaces joined by a veth pair: (ns_a, ns_b, veth_b, addr_a, addr_b); removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    tag = f"{random.randrange(16**6):06x}"
    ns_a, ns_b = f"ns-netsift-a-{tag}", f"ns-netsift-b-{tag}"
    veth_a, veth_b = f"nsv{tag}a", f"nsv{tag}b"
    subnet = random.randrange(256)
    addr_a, addr_b = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    made = []
    try:
        for ns in (ns_a, ns_b):
            result = _ip("netns", "add", ns, check=False)
            if result.returncode:
                pytest.skip(f"ip netns unavailable: {result.stderr.strip()}")
            made.append(ns)
        _ip("link", "add", veth_a, "netns", ns_a, "type", "veth", "peer", "name", veth_b, "netns", ns_b)
        for ns, dev, addr in ((ns_a, veth_a, addr_a), (ns_b, veth_b, addr_b)):
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, veth_b, addr_a, addr_b
    finally:
        for ns in made:
            _ip("netns", "del", ns, check=False)


SENDER = """
import socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"prime", (host, port + 1))      # resolves ARP before the counted datagrams
time.sleep(0.3)
for i in range(count):
    s.sendto(i.to_bytes(4, "big") * 16, (host, port))
    if i % 20 == 19:
        time.sleep(0.001)
"""


@needs_capture
def test_capture_between_network_namespaces(veth_pair, tmp_path):
    ns_a, ns_b, veth_b, addr_a, addr_b = veth_pair
    port, sent = random.randint(20000, 59000), 400
    out = tmp_path / "veth.pcapng"
    capture = CaptureProcess(["capture", "-i", veth_b, "-f", f"udp dst port {port}", "-c", sent, "-w", out,
                              "-a", "duration:20"], prefix=("ip", "netns", "exec", ns_b))
    try:
        capture.wait_ready()
        subprocess.run(["ip", "netns", "exec", ns_a, sys.executable, "-c", SENDER, addr_b, str(port), str(sent)],
                       check=True, timeout=30)
        assert capture.finish() == 0
    finally:
        capture.kill()
    assert capture.captured() == sent
    result = analyse_cleanly(out)
    assert result.packet_count == sent
    assert set(result.packets["ip.src"].astype(str)) == {addr_a}
    assert set(result.packets["ip.dst"].astype(str)) == {addr_b}
    assert result.capture.link_types == [1]
