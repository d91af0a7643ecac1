#!/usr/bin/env python3
"""Speed of netsift's SMTP analysis, side by side with tshark's smtp/imf fields on the same capture.

Usage::

    python3 /work/shared/bench/build-mix --out /tmp/bench-data --smtp      # never into the repo
    python bench/smtp_speed.py [--capture /tmp/bench-data/mix-smtp-1m.pcap] [--tshark-packets 100000]
                               [--repeat 3] [--generate N]

Figures (transactions = rows of the ``smtp`` frame: Zeek smtp.log records):

* ``netsift stage``: CPU seconds of :class:`analyzer.smtp.SmtpStage` alone
  (``feed_stream`` of every reassembled delivery, then ``finish``: commands,
  replies, message headers and MIME parts, the frame), best of ``--repeat``;
  the deliveries are recorded first from one pipeline run.
* ``netsift pipeline``: the whole path from the file: reading, dissecting,
  connection tracking, TCP reassembly and the SMTP stage (wall seconds).
* ``tshark``: ``tshark -n -r FILE -c N -Y smtp -T fields -e smtp.req.command
  -e smtp.req.parameter -e smtp.response.code -e imf.subject -e imf.from
  -e imf.to -e imf.date -e imf.message_id`` (wall seconds) on the first
  ``--tshark-packets`` packets (0: all); its transactions are the netsift
  rows whose frame is in that prefix.

``--generate N`` writes ``/tmp/bench-data/gen-smtp-N.pcap`` with the project
generator (N sessions) and measures that instead.  Always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.pipeline import Pipeline
from analyzer.reassembly import TcpReassembly
from analyzer.smtp import SmtpStage
from captures import open_capture

DEFAULT = Path("/tmp/bench-data/mix-smtp-1m.pcap")
TSHARK_FIELDS = ("smtp.req.command", "smtp.req.parameter", "smtp.response.code", "imf.subject", "imf.from",
                 "imf.to", "imf.date", "imf.message_id")


class _Recorder:
    def __init__(self):
        self.deliveries = []

    def feed(self, batch, fields):
        pass

    def feed_stream(self, delivery):
        self.deliveries.append(delivery)

    def finish(self):
        return {}


def pipeline_run(path: Path):
    """(wall seconds, smtp frame, packets) of the whole pipeline with the SMTP stage."""
    start = time.perf_counter()
    pipeline = Pipeline()
    stage = SmtpStage(pipeline.connections)
    pipeline.stages.append(stage)
    pipeline.stream_readers.append(stage)
    pipeline.streams = pipeline.streams or TcpReassembly()
    with open_capture(path) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    tables = pipeline.finish()
    return time.perf_counter() - start, tables["smtp"], pipeline.frames_fed


def record_deliveries(path: Path) -> list:
    pipeline = Pipeline()
    recorder = _Recorder()
    pipeline.stages.append(recorder)
    pipeline.stream_readers.append(recorder)
    pipeline.streams = pipeline.streams or TcpReassembly()
    with open_capture(path) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    pipeline.finish()
    return recorder.deliveries


def stage_run(deliveries: list, repeat: int) -> tuple[float, int]:
    """Best CPU seconds of the SMTP stage over recorded deliveries, and its transactions."""
    best, rows = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        stage = SmtpStage()
        start = time.process_time()
        feed = stage.feed_stream
        for delivery in deliveries:
            feed(delivery)
        rows = len(stage.finish()["smtp"])
        best = min(best, time.process_time() - start)
    return best, rows


def tshark_run(path: Path, packets: int) -> float | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    command = [tshark, "-n", "-r", str(path)]
    if packets:
        command += ["-c", str(packets)]
    command += ["-Y", "smtp", "-T", "fields"]
    for field in TSHARK_FIELDS:
        command += ["-e", field]
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=DEFAULT)
    parser.add_argument("--tshark-packets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--generate", type=int, default=0)
    args = parser.parse_args(argv)
    path = args.capture
    if args.generate:
        from captures.synthetic import generate
        path = Path(f"/tmp/bench-data/gen-smtp-{args.generate}.pcap")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            generate("smtp", str(path), seed=7, count=args.generate)
    if not path.exists():
        print(f"no capture at {path}: build it with python3 /work/shared/bench/build-mix --out /tmp/bench-data "
              f"--smtp (or use --generate N)")
        return 0
    print(f"capture: {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    wall, smtp, packets = pipeline_run(path)
    transactions = len(smtp)
    deliveries = record_deliveries(path)
    stage_seconds, stage_rows = stage_run(deliveries, args.repeat)
    prefix = args.tshark_packets if args.tshark_packets and args.tshark_packets < packets else 0
    tshark_seconds = tshark_run(path, prefix)
    tshark_transactions = int((smtp["frame.number"] <= prefix).sum()) if prefix else transactions
    tshark_packets = prefix or packets

    rows = [("netsift SMTP stage (CPU)", packets, stage_rows, stage_seconds),
            ("netsift pipeline (wall)", packets, transactions, wall)]
    if tshark_seconds is not None:
        rows.append(("tshark smtp/imf fields (wall)", tshark_packets, tshark_transactions, tshark_seconds))
    print(f"{len(deliveries):,} stream deliveries, {transactions:,} SMTP transactions in {packets:,} packets")
    print(f"{'':34s} {'packets':>10s} {'transactions':>13s} {'seconds':>9s} {'trans/s':>10s} {'packets/s':>11s}")
    for name, pk, tr, sec in rows:
        print(f"{name:34s} {pk:10,d} {tr:13,d} {sec:9.3f} {tr / sec:10,.0f} {pk / sec:11,.0f}")
    if tshark_seconds is not None:
        tshark_rate = tshark_transactions / tshark_seconds
        print(f"ratio, transactions/s: stage / tshark {stage_rows / stage_seconds / tshark_rate:.1f}x, "
              f"pipeline / tshark {transactions / wall / tshark_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
