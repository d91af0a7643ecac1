#!/usr/bin/env python3
"""Time the ``conn`` table end to end against tshark's conversation statistics.

    python3 bench/conn_speed.py CAPTURE [--no-tshark] [--no-checksums] [--no-reassembly] [--repeat N] [--batch N]

netsift: read the capture in batches, dissect, reassemble IP fragments, feed
:class:`analyzer.conn.ConnStage`, reassemble TCP streams (the deliveries are counted,
no application stage reads them), build the frame; timed without and with TCP
reassembly (``--no-reassembly``: only without), best of ``--repeat`` runs (the
first, compiling, run is made on the first 1,000 frames and not timed).  tshark:
``tshark -q -n -r CAPTURE -z conv,tcp -z conv,udp`` in the same run.  Prints
packets/s of each, the ratios, connections found and peak RSS (of this process;
tshark's from ``/usr/bin/time`` when present).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_netsift(path: str, validate: bool, batch_packets: int, reassembly: bool = True):
    """The conn frame from the file: read, dissect, IP defragmentation, ConnStage, TCP reassembly.

    TCP reassembly runs as the pipeline runs it for its stream readers; the
    deliveries' bytes are counted (``Deliveries.total_bytes``) and dropped (no
    application stage).  Returns
    ``(packets, wall s, CPU s, connections, delivered bytes)``.
    """
    from analyzer.conn import ConnStage
    from analyzer.reassembly import FragmentReassembler, TcpReassembly
    from captures import open_capture
    from dissectors import dissect
    stage = ConnStage(validate_checksums=validate)
    fragments = FragmentReassembler()
    streams = TcpReassembly() if reassembly else None
    packets = delivered = 0
    start, cpu = time.perf_counter(), time.process_time()
    # Every stage here copies what it keeps, so the reader may reuse its buffers.
    with open_capture(path, reuse_buffers=True) as reader:
        for batch in reader.batches(max_packets=batch_packets):
            fields = dissect(batch)
            datagrams, numbers = fragments.feed(batch, fields)
            parts = []
            if len(datagrams):
                inner = dissect(datagrams)
                parts.append((datagrams, inner, numbers - batch.first_number))
            stage.feed(batch, fields, datagrams=parts)
            if streams is not None:
                serial = np.where(stage.batch_checksum_ok, stage.batch_serial, -1)
                more = [(b, f, None, rows + batch.first_number) for b, f, rows in parts]
                delivered += streams.feed_columns(batch, fields, uid_per_row=serial, more=more).total_bytes
            packets += len(batch)
    if streams is not None:
        delivered += sum(len(d.chunk.data) for d in streams.flush())
    frame = stage.finish()["conn"]
    return packets, time.perf_counter() - start, time.process_time() - cpu, len(frame), delivered


def warm_up(path: str) -> None:
    from analyzer.conn import ConnStage
    from captures import open_capture
    from dissectors import dissect
    stage = ConnStage()
    with open_capture(path) as reader:
        for batch in reader.batches(max_packets=1000):
            stage.feed(batch, dissect(batch))
            break
    stage.finish()


def run_tshark(path: str):
    tshark = shutil.which("tshark")
    if not tshark:
        return None
    cmd = [tshark, "-q", "-n", "-r", path, "-z", "conv,tcp", "-z", "conv,udp"]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if timer:
        cmd = [timer, "-f", "%M"] + cmd
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    rss = None
    if timer:
        try:
            rss = int(done.stderr.strip().splitlines()[-1]) * 1024
        except (ValueError, IndexError):
            rss = None
    return elapsed, rss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture")
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--no-checksums", action="store_true", help="Zeek's -C: do not validate checksums")
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the fastest is reported")
    parser.add_argument("--no-reassembly", action="store_true",
                        help="only the run without TCP reassembly (default: both runs)")
    args = parser.parse_args(argv)
    warm_up(args.capture)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rates = []
    for reassembly in ((False,) if args.no_reassembly else (False, True)):
        runs = [run_netsift(args.capture, not args.no_checksums, args.batch, reassembly)
                for _ in range(args.repeat)]
        packets, elapsed, cpu, conns, delivered = min(runs, key=lambda run: run[1])
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        rate = packets / elapsed
        rates.append(("netsift " + ("conn + IP defragmentation" + (" + TCP reassembly" if reassembly else "")), rate))
        print(f"{rates[-1][0]}: {packets:,} packets in {elapsed:.2f} s wall ({cpu:.2f} s CPU) = "
              f"{rate:,.0f} packets/s wall, {packets / cpu:,.0f} packets/s CPU; {conns:,} connections, "
              f"{delivered:,} stream bytes delivered; peak RSS so far {rss / 2**20:,.0f} MiB")
    if not args.no_tshark:
        result = run_tshark(args.capture)
        if result is None:
            print("tshark: not installed")
        else:
            t_elapsed, t_rss = result
            t_rate = packets / t_elapsed
            extra = f", peak RSS {t_rss / 2**20:,.0f} MiB" if t_rss else ""
            print(f"tshark -z conv,tcp -z conv,udp: {t_elapsed:.2f} s = {t_rate:,.0f} packets/s{extra}")
            for name, rate in rates:
                print(f"ratio {name} / tshark: {rate / t_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
