"""Throughput of the reassembly libraries (analyzer.reassembly) on a capture.

    python bench/reassembly_speed.py [CAPTURE] [--batch 65536]

Default capture: /tmp/bench-data/mix-1m.pcap (build it with
``python3 ../shared/bench/build-mix --out /tmp/bench-data``).  Reads and
dissects every batch (timed apart), then times IP fragment reassembly and
TCP stream reassembly on the dissected batches, and reports packets/s and
TCP segments/s for the reassembly step alone.  Times are CPU seconds of this
process (``time.process_time``), steadier than wall time on a shared machine;
the wall-clock total is printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analyzer.reassembly import FragmentReassembler, TcpReassembly
from captures import open_capture
from dissectors import dissect

DEFAULT = "/tmp/bench-data/mix-1m.pcap"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", nargs="?", default=DEFAULT)
    parser.add_argument("--batch", type=int, default=65536, help="frames per batch")
    args = parser.parse_args()
    if not os.path.exists(args.capture):
        print(f"{args.capture}: missing (python3 ../shared/bench/build-mix --out /tmp/bench-data)")
        return 2
    fragments, tcp = FragmentReassembler(), TcpReassembly()
    wall = time.perf_counter()
    packets = dissect_s = frag_s = tcp_s = 0.0
    deliveries = datagrams = payload = gaps = eofs = 0
    with open_capture(args.capture) as reader:
        iterator = reader.batches(args.batch)
        while True:
            t0 = time.process_time()
            batch = next(iterator, None)
            if batch is None:
                break
            fields = dissect(batch)
            t1 = time.process_time()
            reassembled, frames = fragments.feed(batch, fields)
            t2 = time.process_time()
            more = []
            if len(reassembled):
                more = [(reassembled, dissect(reassembled), None, frames)]
                t4 = time.process_time()
                dissect_s += t4 - t2
                t2 = t4
            out = tcp.feed(batch, fields, more=more)
            t3 = time.process_time()
            packets += len(batch)
            datagrams += len(reassembled)
            dissect_s += t1 - t0
            frag_s += t2 - t1
            tcp_s += t3 - t2
            for delivery in out:
                payload += len(delivery.chunk.data)
                gaps += delivery.chunk.gap_before
                eofs += delivery.chunk.eof
            deliveries += len(out)
    t0 = time.process_time()
    out = tcp.flush()
    tcp_s += time.process_time() - t0
    for delivery in out:
        payload += len(delivery.chunk.data)
        gaps += delivery.chunk.gap_before
        eofs += delivery.chunk.eof
    deliveries += len(out)
    segments = tcp.stats["segments"]
    wall = time.perf_counter() - wall
    print(f"capture            {args.capture}")
    print(f"packets            {int(packets):,}  (wall clock, everything: {wall:.1f} s)")
    print(f"read+dissect       {dissect_s:.2f} s  ({packets / dissect_s:,.0f} packets/s; "
          f"includes dissecting the reassembled datagrams)")
    print(f"IP fragments       {frag_s:.2f} s  ({packets / max(frag_s, 1e-9):,.0f} packets/s), "
          f"{fragments.stats['fragments']:,} fragments -> {datagrams:,} datagrams")
    print(f"TCP reassembly     {tcp_s:.2f} s  ({packets / tcp_s:,.0f} packets/s, "
          f"{segments / tcp_s:,.0f} segments/s)")
    print(f"  segments {segments:,}, connections {tcp.stats['connections']:,}, deliveries {deliveries:,}, "
          f"payload {payload:,} B, gaps {gaps:,} B, eof {eofs:,}, weirds {len(tcp.pop_weirds()):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
