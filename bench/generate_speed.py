"""Time the synthetic generator on a million packets (a benchmark, not a test).

    python bench/generate_speed.py                      # mixed, 1,000,000 packets
    python bench/generate_speed.py --scenario dns --truth
    python bench/generate_speed.py --packets 200000 --segment random --reorder 0.01

A short calibration run measures packets per conversation for the scenario and
options; the timed run uses enough conversations for at least ``--packets``
packets.  The numba kernel is compiled (or loaded from its cache) by the
calibration run, so the timed run measures generation only.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from captures.synthetic import SCENARIOS, SEGMENT_MODES, generate  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=SCENARIOS, default="mixed")
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--truth", action="store_true", help="also write the truth file")
    p.add_argument("--segment", choices=SEGMENT_MODES, default="mss")
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--duplicate", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--pcapng", action="store_true")
    p.add_argument("--keep", help="write the capture here instead of a temporary file")
    args = p.parse_args()
    opts = dict(segment=args.segment, reorder=args.reorder, duplicate=args.duplicate,
                loss=args.loss, pcapng=args.pcapng)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or os.path.join(tmp, "bench.pcap")
        truth = os.path.join(tmp, "bench.truth.jsonl") if args.truth else None
        cal = generate(args.scenario, os.path.join(tmp, "cal.pcap"), seed=args.seed,
                       count=2000, **opts)
        per_conv = cal.packets / 2000
        count = math.ceil(args.packets / per_conv * 1.03)
        t0 = time.perf_counter()
        s = generate(args.scenario, out, seed=args.seed, count=count, truth_path=truth, **opts)
        wall = time.perf_counter() - t0
        size = os.path.getsize(out)
        print(f"scenario {args.scenario}: count {count} -> {s.packets:,} packets, "
              f"{s.conversations:,} conversations, {size / 1e6:.0f} MB"
              f"{' + truth' if truth else ''} in {wall:.1f} s "
              f"({s.packets / wall / 1e3:.0f} k packets/s)")
        if s.packets < args.packets:
            print(f"note: {s.packets:,} packets is short of {args.packets:,}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
