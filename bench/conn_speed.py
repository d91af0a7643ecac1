#!/usr/bin/env python3
"""Time the ``conn`` table end to end against tshark's conversation statistics.

    python3 bench/conn_speed.py CAPTURE [--no-tshark] [--no-checksums] [--batch N]

netsift: read the capture in batches, dissect, feed :class:`analyzer.conn.ConnStage`,
build the frame (the first, compiling, run is made on the first 1,000 frames and not
timed).  tshark: ``tshark -q -n -r CAPTURE -z conv,tcp -z conv,udp`` in the same
run.  Prints packets/s of each, the ratio, connections found and peak RSS (of this
process; tshark's from ``/usr/bin/time`` when present).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_netsift(path: str, validate: bool, batch_packets: int):
    from analyzer.conn import ConnStage
    from captures import open_capture
    from dissectors import dissect
    stage = ConnStage(validate_checksums=validate)
    packets = 0
    start = time.perf_counter()
    with open_capture(path) as reader:
        for batch in reader.batches(max_packets=batch_packets):
            stage.feed(batch, dissect(batch))
            packets += len(batch)
    frame = stage.finish()["conn"]
    return packets, time.perf_counter() - start, len(frame)


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
    args = parser.parse_args(argv)
    warm_up(args.capture)
    packets, elapsed, conns = run_netsift(args.capture, not args.no_checksums, args.batch)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rate = packets / elapsed
    print(f"netsift conn: {packets:,} packets in {elapsed:.2f} s = {rate:,.0f} packets/s, "
          f"{conns:,} connections, peak RSS {rss / 2**20:,.0f} MiB")
    if not args.no_tshark:
        result = run_tshark(args.capture)
        if result is None:
            print("tshark: not installed")
        else:
            t_elapsed, t_rss = result
            t_rate = packets / t_elapsed
            extra = f", peak RSS {t_rss / 2**20:,.0f} MiB" if t_rss else ""
            print(f"tshark -z conv,tcp -z conv,udp: {t_elapsed:.2f} s = {t_rate:,.0f} packets/s{extra}")
            print(f"ratio netsift/tshark: {rate / t_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
