"""Speed of the ``http`` frame: netsift against tshark and scapy, and HTTP parsers side by side.

    python bench/http_speed.py [--capture PATH] [--peers-on N] [--scapy-on N] [--tools netsift,tshark,scapy]
                               [--parsers] [--corpus DIR]

Data: ``python3 ../shared/bench/build-mix --out /tmp/bench-data --http`` writes
``/tmp/bench-data/mix-http-1m.pcap`` (1,000,000 frames, HTTP traces only) and
its first 100,000 frames ``mix-http-100k.pcap``.  Nothing is written into the
repository; prefixes for the peers go to a temporary directory.

What is timed (CPU seconds of the process and its children; wall in brackets):

* **netsift**: ``Pipeline`` + ``HttpStage`` over the whole ``--capture``
  (read, dissect, packets and conn stages, IP defragmentation, TCP
  reassembly, HTTP, frames), with the time split by layer.
  Transactions = rows of the ``http`` frame.
* **tshark**: ``tshark -n -r PREFIX -Y http -T fields -e http.request.method
  -e http.request.uri -e http.host -e http.user_agent -e http.response.code
  -e http.content_type -e http.content_length`` on the first ``--peers-on``
  frames (default 100,000); transactions = lines with a request method.
* **scapy**: ``sniff(offline=PREFIX, session=TCPSession)`` with scapy's HTTP
  layer, on the first ``--scapy-on`` frames (default 20,000);
  transactions = ``HTTPRequest`` layers.
* netsift is also timed on each peer's prefix, so the ratios compare equal work.

``--parsers``: the reassembled HTTP streams of the prefix (and of the corpus
captures with an http.log) are fed to our :class:`HttpSession`, to httptools
(llhttp) and to h11, timed apart from reassembly; the table gives messages/s
and how many connections each parser rejects (an exception or a parser error
before the end of the stream).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import analyzer.pipeline as pipeline_module  # noqa: E402
from analyzer.http import HttpSession, HttpStage  # noqa: E402
from analyzer.http.stage import HTTP_PORTS  # noqa: E402
from analyzer.pipeline import Pipeline  # noqa: E402
from analyzer.reassembly import TcpReassembly  # noqa: E402
from captures import open_capture  # noqa: E402

DEFAULT = "/tmp/bench-data/mix-http-1m.pcap"
FIELDS = ("http.request.method", "http.request.uri", "http.host", "http.user_agent", "http.response.code",
          "http.content_type", "http.content_length")


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def prefix(path: str, packets: int, directory: str) -> str:
    """The first ``packets`` frames of a pcap (a byte prefix: pcap records are read in order)."""
    out = os.path.join(directory, f"prefix-{packets}.pcap")
    if os.path.exists(out):
        return out
    sibling = path.replace("-1m.pcap", "-100k.pcap")
    if packets == 100_000 and os.path.exists(sibling):
        return sibling
    from scapy.utils import PcapReader, PcapWriter
    with PcapReader(path) as reader, PcapWriter(out, linktype=reader.linktype, sync=False) as writer:
        for i, packet in enumerate(reader):
            if i >= packets:
                break
            writer.write(packet)
    return out


# -- netsift ----------------------------------------------------------------------------------------------

class _Timer:
    def __init__(self):
        self.spent = {}

    def wrap(self, name, function):
        spent = self.spent
        spent.setdefault(name, 0.0)
        clock = time.process_time

        def timed(*args, **kwargs):
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += clock() - start
        return timed


def run_netsift(path: str) -> dict:
    timer = _Timer()
    original_dissect = pipeline_module.dissect
    pipeline_module.dissect = timer.wrap("read+dissect", original_dissect)
    try:
        start_cpu, start_wall = cpu(), time.perf_counter()
        pipeline = Pipeline()
        stage = HttpStage(pipeline.connections)
        pipeline.stages.append(stage)
        pipeline.stream_readers.append(stage)
        pipeline.streams = TcpReassembly()
        pipeline.packets.feed = timer.wrap("packets frame", pipeline.packets.feed)
        pipeline.connections.feed = timer.wrap("conn", pipeline.connections.feed)
        pipeline.streams.feed = timer.wrap("TCP reassembly", pipeline.streams.feed)
        pipeline.fragments.feed = timer.wrap("IP defrag", pipeline.fragments.feed)
        stage.feed_stream = timer.wrap("HTTP (parse + pair)", stage.feed_stream)
        stage.feed = timer.wrap("HTTP (SYN bookkeeping)", stage.feed)
        with open_capture(path) as reader:
            batches = reader.batches()
            read = timer.wrap("read+dissect", lambda: next(batches, None))
            while (batch := read()) is not None:
                pipeline.feed(batch)
        finish = timer.wrap("finish (frames)", pipeline.finish)
        tables = finish()
        seconds, wall = cpu() - start_cpu, time.perf_counter() - start_wall
    finally:
        pipeline_module.dissect = original_dissect
    return {"tool": "netsift", "capture": path, "packets": pipeline.frames_fed, "transactions": len(tables["http"]),
            "cpu": seconds, "wall": wall, "split": timer.spent}


def run_tshark(path: str) -> dict:
    if shutil.which("tshark") is None:
        return {"tool": "tshark", "error": "tshark not installed"}
    command = ["tshark", "-n", "-r", path, "-Y", "http", "-T", "fields"]
    for field in FIELDS:
        command += ["-e", field]
    start_cpu, start_wall = cpu(), time.perf_counter()
    out = subprocess.run(command, capture_output=True, check=False).stdout
    seconds, wall = cpu() - start_cpu, time.perf_counter() - start_wall
    transactions = sum(1 for line in out.split(b"\n") if line and not line.startswith(b"\t"))
    return {"tool": "tshark", "capture": path, "packets": _count(path), "transactions": transactions,
            "cpu": seconds, "wall": wall}


def run_scapy(path: str) -> dict:
    try:
        from scapy.all import load_layer, sniff
        from scapy.sessions import TCPSession
        load_layer("http")
        from scapy.layers.http import HTTPRequest, HTTPResponse
    except ImportError as error:
        return {"tool": "scapy", "error": str(error)}
    counts = {"requests": 0, "responses": 0}

    def count(packet):
        if packet.haslayer(HTTPRequest):
            counts["requests"] += 1
        elif packet.haslayer(HTTPResponse):
            counts["responses"] += 1
    start_cpu, start_wall = cpu(), time.perf_counter()
    sniff(offline=path, session=TCPSession, prn=count, store=False, quiet=True)
    seconds, wall = cpu() - start_cpu, time.perf_counter() - start_wall
    return {"tool": "scapy", "capture": path, "packets": _count(path), "transactions": counts["requests"],
            "cpu": seconds, "wall": wall}


def _count(path: str) -> int:
    with open_capture(path) as reader:
        return sum(len(batch) for batch in reader.batches())


# -- parsers side by side ---------------------------------------------------------------------------------

def http_streams(path: str, limit_bytes: int = 200_000_000) -> list[tuple[bytes, bytes]]:
    """(client bytes, server bytes) of the capture's HTTP connections (Zeek's ports), whole streams."""

    class Recorder:
        def __init__(self):
            self.data = {}

        def feed(self, batch, fields):
            pass

        def feed_stream(self, delivery):
            key = delivery.key
            if key.resp_p not in HTTP_PORTS and key.orig_p not in HTTP_PORTS:
                return
            pair = self.data.setdefault(key.uid, [bytearray(), bytearray(), key])
            pair[0 if delivery.is_orig else 1] += delivery.chunk.data

        def finish(self):
            return {}

    pipeline = Pipeline()
    recorder = Recorder()
    pipeline.stages.append(recorder)
    pipeline.stream_readers.append(recorder)
    pipeline.streams = TcpReassembly()
    with open_capture(path) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    pipeline.finish()
    out, total = [], 0
    for orig, resp, _ in recorder.data.values():
        if total > limit_bytes:
            break
        out.append((bytes(orig), bytes(resp)))
        total += len(orig) + len(resp)
    return out


def parse_ours(streams) -> tuple[int, int]:
    messages = rejected = 0
    for orig, resp in streams:
        session = HttpSession()
        session.deliver(True, orig, 0, 1)
        session.deliver(False, resp, 0, 2)
        session.close()
        messages += sum((r.method is not None) + (r.status_code is not None) for r in session.rows)
        rejected += any(name.startswith("bad_HTTP") for _, name, _ in session.weirds)
    return messages, rejected


def parse_httptools(streams) -> tuple[int, int]:
    import httptools

    class Sink:
        __slots__ = ("body", "headers", "messages", "url")

        def __init__(self):
            self.messages = 0
            self.headers = []
            self.body = 0
            self.url = b""

        def on_url(self, url):
            self.url = url

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_body(self, body):
            self.body += len(body)

        def on_message_complete(self):
            self.messages += 1
            self.headers = []

    messages = rejected = 0
    for orig, resp in streams:
        bad = False
        for data, kind in ((orig, httptools.HttpRequestParser), (resp, httptools.HttpResponseParser)):
            if not data:
                continue
            sink = Sink()
            parser = kind(sink)
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                pass
            except httptools.HttpParserError:
                bad = True
            messages += sink.messages
        rejected += bad
    return messages, rejected


def parse_h11(streams) -> tuple[int, int]:
    import h11

    messages = rejected = 0
    for orig, resp in streams:
        bad = False
        server = h11.Connection(h11.SERVER)
        client = h11.Connection(h11.CLIENT)
        server.receive_data(orig)
        if orig:
            server.receive_data(b"")
        requests = []
        try:
            while True:
                event = server.next_event()
                if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                    break
                if event is h11.PAUSED:
                    server.start_next_cycle() if server.our_state is h11.DONE else None
                    if server.our_state is not h11.IDLE:
                        # h11 waits for our response before the next request: send a minimal one.
                        server.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                        server.send(h11.EndOfMessage())
                        server.start_next_cycle()
                    continue
                if isinstance(event, h11.Request):
                    requests.append(event)
                if isinstance(event, h11.EndOfMessage):
                    messages += 1
        except (h11.RemoteProtocolError, h11.LocalProtocolError):
            bad = True
        # Responses: h11 needs each request sent first.
        client.receive_data(resp)
        try:
            for request in requests or [None]:
                if request is None:
                    break
                client.send(h11.Request(method=request.method, target=request.target,
                                        headers=[("Host", "h")] + [(n, v) for n, v in request.headers
                                                                   if n not in (b"host",)]))
                client.send(h11.EndOfMessage())
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                        break
                    if isinstance(event, h11.EndOfMessage):
                        messages += 1
                        break
                if client.our_state is h11.DONE and client.their_state is h11.DONE:
                    client.start_next_cycle()
                else:
                    break
        except (h11.RemoteProtocolError, h11.LocalProtocolError):
            bad = True
        rejected += bad
    return messages, rejected


def run_parsers(capture: str, corpus: Path | None) -> None:
    sets = [("benchmark prefix", http_streams(capture))]
    if corpus is not None and (corpus / "zeek").is_dir():
        streams = []
        for log in sorted((corpus / "zeek").glob("*.http.log")):
            name = log.name[:-len(".http.log")]
            for ext in (".pcap", ".pcapng"):
                if (corpus / "zeek" / (name + ext)).exists():
                    streams += http_streams(str(corpus / "zeek" / (name + ext)))
        sets.append(("corpus (Zeek HTTP captures)", streams))
    print(f"\n{'parser':<12}{'streams':<30}{'conns':>7}{'messages':>10}{'rejected':>10}{'seconds':>9}{'msg/s':>11}")
    for label, streams in sets:
        size = sum(len(a) + len(b) for a, b in streams)
        for name, function in (("netsift", parse_ours), ("httptools", parse_httptools), ("h11", parse_h11)):
            try:
                start = time.process_time()
                messages, rejected = function(streams)
                seconds = time.process_time() - start
            except ImportError as error:
                print(f"{name:<12}{label:<30} not installed ({error})")
                continue
            print(f"{name:<12}{label:<30}{len(streams):>7}{messages:>10}{rejected:>10}{seconds:>9.2f}"
                  f"{messages / seconds if seconds else 0:>11,.0f}")
        print(f"{'':<12}{label:<30} {size / 1e6:.1f} MB of streams")


# -- main -------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capture", default=DEFAULT)
    parser.add_argument("--peers-on", type=int, default=100_000, help="frames for tshark (0: whole capture)")
    parser.add_argument("--scapy-on", type=int, default=20_000, help="frames for scapy")
    parser.add_argument("--tools", default="netsift,tshark,scapy")
    parser.add_argument("--parsers", action="store_true", help="also compare HTTP parsers on the streams")
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args()
    if not os.path.exists(args.capture):
        print(f"{args.capture}: missing (python3 ../shared/bench/build-mix --out /tmp/bench-data --http)")
        return 2
    tools = args.tools.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="netsift-http-speed-") as directory:
        if "netsift" in tools:
            results.append(run_netsift(args.capture))
        peer_prefix = prefix(args.capture, args.peers_on, directory) if args.peers_on else args.capture
        scapy_prefix = prefix(args.capture, args.scapy_on, directory)
        if "tshark" in tools:
            results.append(run_tshark(peer_prefix))
            results.append(dict(run_netsift(peer_prefix), tool="netsift (same prefix)"))
        if "scapy" in tools:
            results.append(run_scapy(scapy_prefix))
            results.append(dict(run_netsift(scapy_prefix), tool="netsift (same prefix)"))
        if args.parsers:
            corpus = Path(args.corpus) if args.corpus else Path(ROOT).parent / "shared" / "corpus"
            run_parsers(peer_prefix, corpus)
    base = next((r for r in results if r.get("tool") == "netsift"), None)
    print(f"\n{'tool':<24}{'packets':>10}{'transactions':>14}{'CPU s':>8}{'wall s':>8}{'tx/s (CPU)':>12}"
          f"{'netsift x':>11}")
    previous = None
    for r in results:
        if "error" in r:
            print(f"{r['tool']:<24} {r['error']}")
            continue
        rate = r["transactions"] / r["cpu"] if r["cpu"] else 0.0
        ratio = ""
        if r["tool"] == "netsift (same prefix)" and previous is not None and previous.get("cpu"):
            peer_rate = previous["transactions"] / previous["cpu"]
            ratio = f"{rate / peer_rate:.1f}" if peer_rate else ""
        print(f"{r['tool']:<24}{r['packets']:>10,}{r['transactions']:>14,}{r['cpu']:>8.2f}{r['wall']:>8.2f}"
              f"{rate:>12,.0f}{ratio:>11}")
        previous = r
    if base is not None:
        print(f"\nnetsift on {base['capture']}: where the CPU time goes")
        total = base["cpu"]
        for name, seconds in sorted(base["split"].items(), key=lambda item: -item[1]):
            print(f"  {name:<26}{seconds:>8.2f} s {100 * seconds / total:>6.1f}%")
        accounted = sum(base["split"].values())
        print(f"  {'other (pipeline glue)':<26}{total - accounted:>8.2f} s {100 * (total - accounted) / total:>6.1f}%")
        http = base["split"].get("HTTP (parse + pair)", 0.0) + base["split"].get("HTTP (SYN bookkeeping)", 0.0)
        if http:
            print(f"  HTTP stage alone: {base['transactions'] / http:,.0f} transactions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
