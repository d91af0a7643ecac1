#!/usr/bin/env python3
"""DNS speed: netsift's ``dns`` frame against tshark and a dnspython loop, on a DNS-heavy capture.

Usage::

    python3 /work/shared/bench/build-mix --out /tmp/bench-data --dns      # once (never into the repo)
    python bench/dns_speed.py [--capture /tmp/bench-data/mix-dns-1m.pcap] [--peer-packets 200000]
                              [--peer-messages 100000] [--no-tshark] [--no-dnspython] [--repeat 1]

One run measures, on the same file:

- **netsift**: ``open_capture(..., reuse_buffers=True).batches()`` →
  ``dissectors.dissect`` → :class:`analyzer.dns.DnsStage` → ``finish()`` (the
  ``dns`` frame, plus ``dns_weird``).  The stage keeps nothing of a batch
  after ``feed``, so the reader refills one chunk buffer, as a streaming
  pipeline does (see :mod:`captures.reader`).  Reported twice: the DNS stage
  alone (``feed`` calls plus ``finish``), and end to end including reading and
  dissecting.  numba's compiled code is loaded from its cache by a warm-up on a
  one-packet capture first (reported apart; the first run after a change
  compiles it, ~1 min).
- **tshark**: ``tshark -n -r F -c N -Y dns -T fields -e frame.number -e dns.id
  -e dns.flags.response -e dns.qry.name -e dns.qry.type -e dns.flags.rcode
  -e dns.count.answers -e dns.a -e dns.aaaa -e dns.cname`` read into pandas, on
  the first ``--peer-packets`` packets (tshark is slow; rates are per DNS
  message, so a prefix compares fairly).
- **dnspython**: ``dns.message.from_wire`` over the same UDP DNS payloads the
  stage sees (first ``--peer-messages``), errors caught and counted.

Rates are DNS messages per second (UDP datagrams on the DNS ports and TCP
messages given to the DNS walk for netsift; frames tshark shows as DNS; payloads
for dnspython), wall clock and CPU time (user + system: this process's
``time.process_time``; for tshark its child-process CPU time plus the pandas
read here).  On a shared machine wall time depends on the other load, printed
with the results, so the ratios are of CPU rates: ``stage ×`` is the DNS
stage's rate over the row's, ``e2e ×`` netsift's end-to-end rate over the
row's.  ``--repeat`` runs netsift several times and reports the run with the
least stage CPU time.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.dns import DnsStage
from analyzer.dns.transport import udp_datagrams
from captures import open_capture
from dissectors import dissect

DEFAULT_CAPTURE = "/tmp/bench-data/mix-dns-1m.pcap"
WARMUP = REPO.parent / "shared" / "corpus" / "zeek" / "dns53.pcap"
TSHARK_FIELDS = ("frame.number", "dns.id", "dns.flags.response", "dns.qry.name", "dns.qry.type",
                 "dns.flags.rcode", "dns.count.answers", "dns.a", "dns.aaaa", "dns.cname")


def warm_up() -> float:
    """Load numba's cached machine code (or compile it) on a tiny capture; seconds taken."""
    start = time.perf_counter()
    stage = DnsStage(messages=True)
    if WARMUP.exists():
        with open_capture(WARMUP) as reader:
            for batch in reader.batches():
                stage.feed(batch, dissect(batch))
    stage.feed_stream(("10.0.0.1", 1, "10.0.0.2", 53), True, b"\x00\x0c" + bytes(12), 0, 1)
    stage.finish()
    return time.perf_counter() - start


def run_netsift(path: str) -> dict:
    stage = DnsStage()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    stage_wall = stage_cpu = 0.0
    packets = 0
    with open_capture(path, reuse_buffers=True) as reader:
        for batch in reader.batches():
            fields = dissect(batch)
            packets += len(batch)
            w, c = time.perf_counter(), time.process_time()
            stage.feed(batch, fields)
            stage_wall += time.perf_counter() - w
            stage_cpu += time.process_time() - c
    w, c = time.perf_counter(), time.process_time()
    tables = stage.finish()
    stage_wall += time.perf_counter() - w
    stage_cpu += time.process_time() - c
    return {"messages": stage.message_count, "rows": len(tables["dns"]), "weirds": len(stage.weirds),
            "packets": packets, "stage_wall": stage_wall, "stage_cpu": stage_cpu,
            "total_wall": time.perf_counter() - wall0, "total_cpu": time.process_time() - cpu0}


def run_tshark(path: str, packets: int) -> dict | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    import pandas as pd
    command = [tshark, "-n", "-r", path, "-c", str(packets), "-Y", "dns", "-T", "fields", "-E", "header=y",
               "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in TSHARK_FIELDS:
        command += ["-e", name]
    start, cpu0 = time.perf_counter(), time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, check=False).stdout
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    frame = pd.read_csv(io.BytesIO(out), sep="\t", dtype=str, quoting=3)
    wall = time.perf_counter() - start
    cpu = (child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime) + time.process_time() - cpu0
    return {"messages": len(frame), "wall": wall, "cpu": cpu, "packets": packets}


def payloads(path: str, limit: int) -> list[bytes]:
    ports = np.array([53, 137, 5353, 5355])
    out: list[bytes] = []
    with open_capture(path) as reader:
        for batch in reader.batches():
            dgrams = udp_datagrams(batch, dissect(batch), ports, verify_checksums=False)
            data = batch.data
            for s, e in zip(dgrams.start.tolist(), dgrams.end.tolist()):
                out.append(data[s:e].tobytes())
                if len(out) >= limit:
                    return out
    return out


def run_dnspython(messages: list[bytes]) -> dict | None:
    try:
        import dns.exception
        import dns.message
    except ImportError:
        return None
    errors = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for wire in messages:
        try:
            dns.message.from_wire(wire, ignore_trailing=True)
        except Exception:  # dnspython raises many kinds on malformed input
            errors += 1
    return {"messages": len(messages), "errors": errors, "wall": time.perf_counter() - wall0,
            "cpu": time.process_time() - cpu0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--capture", default=DEFAULT_CAPTURE)
    parser.add_argument("--peer-packets", type=int, default=200_000, help="tshark reads this many packets")
    parser.add_argument("--peer-messages", type=int, default=100_000, help="dnspython parses this many")
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--no-dnspython", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="netsift runs (best is reported)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.capture):
        print(f"{args.capture} not found: python3 /work/shared/bench/build-mix --out /tmp/bench-data --dns")
        return 0
    print(f"capture {args.capture} ({os.path.getsize(args.capture):,} bytes); load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"warm-up (numba cache load): {warm_up():.2f} s")
    runs = [run_netsift(args.capture) for _ in range(max(1, args.repeat))]
    ns = min(runs, key=lambda r: r["stage_cpu"])
    n = ns["messages"]
    rows = []
    rows.append(("netsift dns stage (feed+finish)", n, ns["stage_wall"], ns["stage_cpu"]))
    rows.append(("netsift end to end (read+dissect+dns)", n, ns["total_wall"], ns["total_cpu"]))
    if not args.no_tshark:
        ts = run_tshark(args.capture, args.peer_packets)
        if ts is None:
            print("tshark not installed")
        else:
            rows.append((f"tshark -Y dns -T fields → pandas (first {ts['packets']:,} packets)", ts["messages"],
                         ts["wall"], ts["cpu"]))
    if not args.no_dnspython:
        dp = run_dnspython(payloads(args.capture, args.peer_messages))
        if dp is None:
            print("dnspython not installed (pip install dnspython)")
        else:
            rows.append((f"dnspython from_wire loop ({dp['errors']} errors)", dp["messages"], dp["wall"],
                         dp["cpu"]))
    print(f"\nnetsift: {ns['packets']:,} packets, {n:,} DNS messages → {ns['rows']:,} dns rows, "
          f"{ns['weirds']:,} weirds\n")
    stage_rate, e2e_rate = n / ns["stage_cpu"], n / ns["total_cpu"]
    print(f"{'':56} {'messages':>10} {'wall s':>8} {'cpu s':>7} {'msg/s (wall)':>13} {'msg/s (cpu)':>12} "
          f"{'stage ×':>8} {'e2e ×':>6}")
    for name, count, wall, cpu in rows:
        rate = count / cpu if cpu else float("nan")
        print(f"{name:56} {count:10,} {wall:8.2f} {cpu:7.2f} {count / wall:13,.0f} {rate:12,.0f} "
              f"{stage_rate / rate:8.1f} {e2e_rate / rate:6.1f}")
    print("\n'stage ×' / 'e2e ×': netsift's DNS stage / end-to-end rate (CPU time) divided by that row's.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
