#!/usr/bin/env python3
"""Speed of netsift's SMTP analysis, side by side with tshark's smtp/imf fields on the same capture.

Usage::

    python3 /work/shared/bench/build-mix --out /tmp/bench-data --smtp      # never into the repo
    python bench/smtp_speed.py [--capture /tmp/bench-data/mix-smtp-1m.pcap] [--tshark-packets 100000]
                               [--repeat 3] [--generate N]

Figures (transactions = rows of the ``smtp`` frame: Zeek smtp.log records),
all in CPU seconds (``getrusage``: user + system, of this process and, for
tshark, its child), best of ``--repeat`` runs; wall seconds in brackets:

* ``netsift stage``: :class:`analyzer.smtp.SmtpStage` alone
  (``feed_stream`` of every reassembled delivery, then ``finish``: commands,
  replies, message headers and MIME parts, the frame); the deliveries are
  recorded first from one pipeline run.
* ``netsift pipeline``: the whole path from the file as ``analyze()`` runs
  it: reading, dissecting, connection tracking, TCP reassembly, the DNS,
  HTTP and SMTP stages (HTTP and SMTP look for their protocol on every TCP
  connection), the frames; its CPU time is split by layer and by stage (each
  entry point is wrapped with a CPU clock; the stream readers are timed per
  batch of deliveries; the rest of ``Pipeline.feed`` is "other"; "setup" is
  what no wrapper saw, chiefly the first calls of the compiled dissectors).
* ``tshark``: ``tshark -n -r FILE -c N -Y smtp -T fields -e smtp.req.command
  -e smtp.req.parameter -e smtp.response.code -e imf.subject -e imf.from
  -e imf.to -e imf.date -e imf.message_id`` on the first
  ``--tshark-packets`` packets (0: all); its transactions are the netsift
  rows whose frame is in that prefix (tshark has no transaction record).

The ratios compare transactions per CPU second.  ``--generate N`` writes
``/tmp/bench-data/gen-smtp-N.pcap`` with the project generator (N sessions)
and measures that instead.  Always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import analyzer.pipeline as pipeline_module
from analyzer.pipeline import Pipeline
from analyzer.smtp import SmtpStage
from captures import open_capture
from cpu_timer import CpuTimer  # bench/, this script's folder

DEFAULT = Path("/tmp/bench-data/mix-smtp-1m.pcap")
TSHARK_FIELDS = ("smtp.req.command", "smtp.req.parameter", "smtp.response.code", "imf.subject", "imf.from",
                 "imf.to", "imf.date", "imf.message_id")


def cpu() -> float:
    """CPU seconds (user + system) of this process and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class _Recorder:
    def __init__(self):
        self.deliveries = []

    def feed(self, batch, fields):
        pass

    def feed_stream(self, delivery):
        self.deliveries.append(delivery)

    def finish(self):
        return {}


def pipeline_run(path: Path) -> dict:
    """One run of the pipeline as ``analyze()`` builds it (DNS, HTTP and SMTP stages), the SMTP stage once.

    Returns CPU and wall seconds, the CPU split by layer and by stage, the smtp frame and the packets read.
    """
    timer = CpuTimer()
    spent = timer.spent
    original_dissect = pipeline_module.dissect
    pipeline_module.dissect = timer.wrap("dissect", original_dissect)
    collections = pipeline_module.fewer_collections()     # as analyze() runs the pipeline
    collections.__enter__()
    try:
        start_cpu, start_wall = cpu(), time.perf_counter()
        pipeline = Pipeline()
        pipeline.replace(SmtpStage(pipeline.connections))   # Pipeline() has one already: not twice
        pipeline.packets.feed = timer.wrap("packets frame", pipeline.packets.feed)
        pipeline.connections.feed = timer.wrap("conn", pipeline.connections.feed)
        pipeline.streams.feed_columns = timer.wrap("TCP reassembly", pipeline.streams.feed_columns)
        pipeline.fragments.feed = timer.wrap("IP defragmentation", pipeline.fragments.feed)
        for stage in pipeline.stages[2:]:
            stage.feed = timer.wrap(f"{type(stage).__name__} (packets)", stage.feed)
        deliver_all = timer.time_stream_readers(pipeline, lambda stage: f"{type(stage).__name__} (streams)")
        feed = timer.wrap("Pipeline.feed (all)", pipeline.feed)
        with open_capture(path) as reader:
            batches = reader.batches()
            read = timer.wrap("read", lambda: next(batches, None))
            while (batch := read()) is not None:
                feed(batch)
        pipeline._deliver = deliver_all      # the streams still open at the end count in finish
        tables = timer.wrap("finish (frames)", pipeline.finish)()
        seconds, wall = cpu() - start_cpu, time.perf_counter() - start_wall
    finally:
        pipeline_module.dissect = original_dissect
        collections.__exit__(None, None, None)
    split = dict(spent)
    inner = sum(v for k, v in split.items() if k not in ("Pipeline.feed (all)", "read", "finish (frames)"))
    split["other (Pipeline.feed)"] = split.pop("Pipeline.feed (all)") - inner
    split["setup (Pipeline(), first calls)"] = seconds - sum(split.values())
    return {"cpu": seconds, "wall": wall, "split": split, "smtp": tables["smtp"], "packets": pipeline.frames_fed}


def record_deliveries(path: Path) -> list:
    """Every delivery of the TCP reassembly of ``path`` (a pipeline without application stages)."""
    pipeline = Pipeline()
    recorder = _Recorder()
    pipeline.stages = pipeline.stages[:2]
    pipeline.replace(recorder)
    with open_capture(path) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    pipeline.finish()
    return recorder.deliveries


def stage_run(deliveries: list, repeat: int) -> tuple[float, float, int]:
    """Best CPU seconds (and the wall seconds of that run) of the SMTP stage alone, and its transactions."""
    best, best_wall, rows = float("inf"), 0.0, 0
    for _ in range(repeat):
        gc.collect()
        stage = SmtpStage()
        start, start_wall = cpu(), time.perf_counter()
        feed = stage.feed_stream
        for delivery in deliveries:
            feed(delivery)
        rows = len(stage.finish()["smtp"])
        seconds = cpu() - start
        if seconds < best:
            best, best_wall = seconds, time.perf_counter() - start_wall
    return best, best_wall, rows


def tshark_run(path: Path, packets: int) -> tuple[float, float] | None:
    """(CPU seconds of the tshark child, wall seconds), or None without tshark."""
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    command = [tshark, "-n", "-r", str(path)]
    if packets:
        command += ["-c", str(packets)]
    command += ["-Y", "smtp", "-T", "fields"]
    for field in TSHARK_FIELDS:
        command += ["-e", field]
    start, start_wall = cpu(), time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return cpu() - start, time.perf_counter() - start_wall


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
    repeat = max(1, args.repeat)
    print(f"capture: {path} ({os.path.getsize(path) / 1e6:.1f} MB), best of {repeat}")
    runs = [pipeline_run(path) for _ in range(repeat)]
    best = min(runs, key=lambda run: run["cpu"])
    smtp, packets = best["smtp"], best["packets"]
    transactions = len(smtp)
    deliveries = record_deliveries(path)
    stage_seconds, stage_wall, stage_rows = stage_run(deliveries, repeat)
    prefix = args.tshark_packets if args.tshark_packets and args.tshark_packets < packets else 0
    tshark = [t for t in (tshark_run(path, prefix) for _ in range(repeat)) if t is not None]
    tshark_transactions = int((smtp["frame.number"] <= prefix).sum()) if prefix else transactions
    tshark_packets = prefix or packets

    rows = [("netsift SMTP stage alone", packets, stage_rows, stage_seconds, stage_wall),
            ("netsift pipeline", packets, transactions, best["cpu"], best["wall"])]
    if tshark:
        tshark_seconds, tshark_wall = min(tshark)
        rows.append(("tshark smtp/imf fields", tshark_packets, tshark_transactions, tshark_seconds, tshark_wall))
    print(f"{len(deliveries):,} stream deliveries, {transactions:,} SMTP transactions in {packets:,} packets")
    print(f"{'':28s} {'packets':>10s} {'transactions':>13s} {'CPU s':>8s} {'(wall)':>8s} {'trans/s':>9s} "
          f"{'packets/s':>10s}")
    for name, pk, tr, sec, wall in rows:
        print(f"{name:28s} {pk:10,d} {tr:13,d} {sec:8.3f} {f'({wall:.3f})':>8s} {tr / sec:9,.0f} {pk / sec:10,.0f}")
    print("pipeline CPU seconds by layer (best run):")
    for name, sec in sorted(best["split"].items(), key=lambda item: -item[1]):
        print(f"  {name:32s} {sec:8.3f}  {100 * sec / best['cpu']:5.1f} %")
    if tshark:
        tshark_rate = tshark_transactions / tshark_seconds
        print(f"ratio, transactions per CPU second: stage / tshark {stage_rows / stage_seconds / tshark_rate:.1f}x, "
              f"pipeline / tshark {transactions / best['cpu'] / tshark_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
