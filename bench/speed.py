#!/usr/bin/env python3
"""Speed and memory of netsift's packets frame against tshark and dpkt.

Usage::

    python bench/speed.py [--capture PATH] [--repeat 3] [--peers-on N] [--tools netsift,netsift-frame,tshark,dpkt]

The default capture is ``/tmp/bench-data/mix-1m.pcap`` (1,000,000 frames of
the shared corpus's Zeek traces); build it, and its 100k prefix, with::

    python3 ../shared/bench/build-mix --out /tmp/bench-data

Every tool builds the same table, one row per frame with the L2–L4 fields of
``bench/conformance.py`` (frame number, time, length, MACs, VLAN id, IPv4/IPv6
addresses, protocol, TTL, fragment fields, TCP ports/seq/ack/flags/len, UDP
ports/length), each run in its own subprocess so that its peak RSS is its own:

- netsift: ``analyzer.analyze(path).packets`` (read, dissect, build the frame,
  and whatever other stages ``analyze`` runs, such as connection tracking);
- netsift-frame: the packets frame alone (the reader, the dissectors and the
  ``PacketsStage`` of ``analyzer.pipeline``, driven as ``analyze`` drives them,
  with the reader's ``reuse_buffers=True``: each batch is used up before the
  next is read, so the reader refills one chunk buffer);
- tshark: ``tshark -n -r PATH -T fields -E header=y -E separator=/t
  -E occurrence=f -e ...`` piped into ``pandas.read_csv`` (the time includes
  the read; ``occurrence=f`` keeps the first, outermost occurrence, as netsift's
  columns do);
- dpkt: a loop over ``dpkt.pcap.Reader`` parsing ``dpkt.ethernet.Ethernet``
  into lists, then a DataFrame (addresses as text, as in the others).

Fairness: tshark takes about a minute per million frames, so by default the
peers run on the first ``--peers-on`` frames (100,000; the byte-for-byte prefix
``mix-100k.pcap`` beside the capture when it exists, else a prefix written to a
temporary file) while netsift runs on the whole capture; compare packets/s.
Seconds are the median of ``--repeat`` runs (each a fresh process, timed from
after the imports to the finished DataFrame), and so is the CPU time (user plus
system, tshark's included) over the same span, which varies less than wall
time on a shared machine; peak RSS is the largest of the
runs (``getrusage``: the worker's own peak plus its children's, i.e. tshark's,
which run concurrently; for the other tools the larger of the two, since their
only children are short-lived forks such as ``ldconfig -p``, which ctypes runs
to find libc, whose peak is the worker's RSS at the fork).  The ratio columns are netsift's (``analyze``) and
netsift-frame's packets/s divided by the tool's.  Each run is a fresh process, so netsift's
figures include its one-time warm-up (numba starting up: LLVM, and the
scipy.linalg import numba does for its BLAS check; then loading the compiled
kernels); the ``warm-up`` column shows the CPU seconds netsift spent until its
first batch was through (the first batch's own work included), so that the
rate without it can be told.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CAPTURE = "/tmp/bench-data/mix-1m.pcap"
DEFAULT_PEERS_ON = 100_000
TOOLS = ("netsift", "netsift-frame", "tshark", "dpkt")
FIELDS = (
    "frame.number", "frame.time_epoch", "frame.len", "eth.src", "eth.dst", "vlan.id",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "ip.ttl", "ip.flags.mf",
    "ip.frag_offset", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
    "udp.srcport", "udp.dstport", "udp.length",
)


# ---- workers: each runs in a fresh process and prints one JSON line -----------------------


# CPU seconds (since the timed span started) at which the first batch was through: the warm-up.
_WARM_UP: list[float] = []


def _work_netsift(path: str) -> tuple[int, float, float]:
    sys.path.insert(0, str(REPO))
    import warnings

    from analyzer import analyze

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start, cpu_start = time.perf_counter(), _cpu_seconds()

        def progress(_frames: int) -> None:
            if not _WARM_UP:
                _WARM_UP.append(_cpu_seconds() - cpu_start)

        packets = analyze(path, progress=progress).packets
        return len(packets), time.perf_counter() - start, _cpu_seconds() - cpu_start


def _work_netsift_frame(path: str) -> tuple[int, float, float]:
    """The packets frame alone: what ``analyze`` does less its other stages (connection tracking …)."""
    sys.path.insert(0, str(REPO))
    from analyzer.pipeline import PacketsStage
    from captures import open_capture
    from dissectors import dissect

    start, cpu_start = time.perf_counter(), _cpu_seconds()
    stage = PacketsStage()
    # Each batch is fed before the next is read, so the reader may refill its buffers.
    with open_capture(path, reuse_buffers=True) as reader:
        for batch in reader.batches():
            stage.feed(batch, dissect(batch))
            if not _WARM_UP:
                _WARM_UP.append(_cpu_seconds() - cpu_start)
    packets = stage.finish()["packets"]
    return len(packets), time.perf_counter() - start, _cpu_seconds() - cpu_start


def _work_tshark(path: str) -> tuple[int, float, float]:
    import pandas as pd

    command = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "header=y", "-E", "separator=/t",
               "-E", "occurrence=f"]
    for name in FIELDS:
        command += ["-e", name]
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        frame = pd.read_csv(process.stdout, sep="\t", low_memory=False)
    if process.returncode:
        raise RuntimeError(f"tshark exited with {process.returncode}")
    return len(frame), time.perf_counter() - start, _cpu_seconds() - cpu_start


def _work_dpkt(path: str) -> tuple[int, float, float]:
    import socket

    import dpkt
    import pandas as pd

    ntoa4 = socket.inet_ntoa

    def ntoa6(raw):
        return socket.inet_ntop(socket.AF_INET6, raw)

    def mac(raw):
        return raw.hex(":")

    columns = {name: [] for name in FIELDS}
    put = {name: columns[name].append for name in FIELDS}
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with open(path, "rb") as handle:
        for number, (ts, buf) in enumerate(dpkt.pcap.Reader(handle), 1):
            row = dict.fromkeys(FIELDS)
            row["frame.number"], row["frame.time_epoch"], row["frame.len"] = number, ts, len(buf)
            try:
                eth = dpkt.ethernet.Ethernet(buf)
                row["eth.src"], row["eth.dst"] = mac(eth.src), mac(eth.dst)
                tags = getattr(eth, "vlan_tags", None)
                if tags:
                    row["vlan.id"] = tags[0].id
                ip = eth.data
                transport = None
                if isinstance(ip, dpkt.ip.IP):
                    row["ip.src"], row["ip.dst"] = ntoa4(ip.src), ntoa4(ip.dst)
                    row["ip.proto"], row["ip.ttl"] = ip.p, ip.ttl
                    row["ip.flags.mf"], row["ip.frag_offset"] = int(ip.mf), ip.offset >> 3
                    if not ip.mf and not ip.offset:
                        transport = ip.data
                elif isinstance(ip, dpkt.ip6.IP6):
                    row["ipv6.src"], row["ipv6.dst"], row["ipv6.nxt"] = ntoa6(ip.src), ntoa6(ip.dst), ip.nxt
                    transport = ip.data
                if isinstance(transport, dpkt.tcp.TCP):
                    row["tcp.srcport"], row["tcp.dstport"] = transport.sport, transport.dport
                    row["tcp.seq_raw"], row["tcp.ack_raw"] = transport.seq, transport.ack
                    row["tcp.flags"], row["tcp.len"] = transport.flags, len(transport.data)
                elif isinstance(transport, dpkt.udp.UDP):
                    row["udp.srcport"], row["udp.dstport"] = transport.sport, transport.dport
                    row["udp.length"] = transport.ulen
            except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData, AttributeError, ValueError):
                pass
            for name in FIELDS:
                put[name](row[name])
    frame = pd.DataFrame(columns)
    return len(frame), time.perf_counter() - start, _cpu_seconds() - cpu_start


WORKERS = {"netsift": _work_netsift, "netsift-frame": _work_netsift_frame, "tshark": _work_tshark,
           "dpkt": _work_dpkt}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (tshark), user plus system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _worker_main(tool: str, path: str) -> None:
    packets, seconds, cpu = WORKERS[tool](path)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # tshark runs beside the worker: their peaks add up.  Any other child is a short-lived helper
    # (e.g. ``ldconfig -p`` run by ctypes.util.find_library), whose peak is the RSS the worker had
    # when it forked: counting it again would double the worker.
    rss = own + children if tool == "tshark" else max(own, children)
    print(json.dumps({"packets": packets, "seconds": seconds, "cpu": cpu, "rss_kb": rss,
                      "warm_up": _WARM_UP[0] if _WARM_UP else None}))


# ---- driver --------------------------------------------------------------------------------


def pcap_prefix(path: Path, packets: int, directory: str) -> Path:
    """A classic pcap of the first ``packets`` records of ``path`` (``mix-100k.pcap`` when it is that)."""
    if packets == DEFAULT_PEERS_ON and path.name == "mix-1m.pcap" and (path.parent / "mix-100k.pcap").exists():
        return path.parent / "mix-100k.pcap"
    with open(path, "rb") as source:
        header = source.read(24)
        magic = header[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            order = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            order = ">"
        else:
            raise SystemExit(f"--peers-on needs a classic pcap file; {path} is not one")
        out = Path(directory) / f"prefix-{packets}.pcap"
        with open(out, "wb") as sink:
            sink.write(header)
            for _ in range(packets):
                record = source.read(16)
                if len(record) < 16:
                    break
                captured = struct.unpack(order + "IIII", record)[2]
                sink.write(record + source.read(captured))
    return out


def run(tool: str, path: Path) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--worker", tool, str(path)],
                               capture_output=True, text=True, cwd=REPO)
    if completed.returncode:
        raise SystemExit(f"{tool} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"If {DEFAULT_CAPTURE} is missing, build it first: "
               "python3 ../shared/bench/build-mix --out /tmp/bench-data (from the repository root).")
    parser.add_argument("--capture", default=DEFAULT_CAPTURE, help=f"classic pcap (default {DEFAULT_CAPTURE})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the median time is shown (default 3)")
    parser.add_argument("--peers-on", type=int, default=DEFAULT_PEERS_ON,
                        help="frames the peers (tshark, dpkt) read: the first N of the capture; 0 for all "
                             f"(default {DEFAULT_PEERS_ON:,})")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(*args.worker)
        return 0

    capture = Path(args.capture)
    if not capture.exists():
        raise SystemExit(f"{capture} is missing: build it with "
                         "python3 ../shared/bench/build-mix --out /tmp/bench-data")
    tools = [tool for tool in args.tools.split(",") if tool]
    if "tshark" in tools and not shutil.which("tshark"):
        print("tshark not found: skipped")
        tools.remove("tshark")
    rows = []
    load_before = _load_average()
    with tempfile.TemporaryDirectory() as scratch:
        peer_capture = pcap_prefix(capture, args.peers_on, scratch) if args.peers_on else capture
        for tool in tools:
            path = capture if tool.startswith("netsift") else peer_capture
            runs = [run(tool, path) for _ in range(args.repeat)]
            seconds = statistics.median(r["seconds"] for r in runs)
            packets = runs[0]["packets"]
            cpu = statistics.median(r["cpu"] for r in runs)
            warm = [r["warm_up"] for r in runs if r.get("warm_up") is not None]
            rows.append((tool, path.name, packets, seconds, packets / seconds,
                         max(r["rss_kb"] for r in runs) / 1024, [r["seconds"] for r in runs], cpu,
                         statistics.median(warm) if warm else None))
            print(f"  {tool}: {', '.join(f'{r:.2f}' for r in rows[-1][6])} s", file=sys.stderr)
    reference = next((row[4] for row in rows if row[0] == "netsift"), None)
    frame_reference = next((row[4] for row in rows if row[0] == "netsift-frame"), None)
    print(f"\n{'tool':<13} {'capture':<14} {'packets':>10} {'seconds':>8} {'packets/s':>11} {'CPU s':>6} "
          f"{'pkts/CPU s':>10} {'warm-up':>7} {'peak RSS MB':>11} {'netsift x':>9} {'frame x':>7}")
    for tool, name, packets, seconds, rate, rss, _, cpu, warm in rows:
        ratio = f"{reference / rate:.2f}" if reference else "-"
        frame_ratio = f"{frame_reference / rate:.2f}" if frame_reference else "-"
        warm_text = f"{warm:.2f}" if warm is not None else "-"
        print(f"{tool:<13} {name:<14} {packets:>10,} {seconds:>8.2f} {rate:>11,.0f} {cpu:>6.2f} "
              f"{packets / cpu:>10,.0f} {warm_text:>7} {rss:>11,.0f} {ratio:>9} {frame_ratio:>7}")
    print(f"\n(median of {args.repeat} runs; 'netsift x' / 'frame x' = netsift's / netsift-frame's packets/s over "
          f"the tool's; CPU s = user+system "
          f"of the worker and its children, steadier than wall time on a shared machine; warm-up = CPU s "
          f"until netsift's first batch was through, numba's start-up included; {os.cpu_count()} CPUs)")
    print(f"load average (1, 5, 15 min) before the runs: {load_before}; after: {_load_average()}")
    return 0


def _load_average() -> str:
    """The system's load averages, to judge how busy the shared machine was during the runs."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
