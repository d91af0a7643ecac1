"""Speed of the ``http`` frame: netsift against tshark and scapy, and HTTP parsers side by side.

    python bench/http_speed.py [--capture PATH | --generate N] [--peers-on N] [--scapy-on N]
                               [--tools netsift,tshark,scapy] [--repeat R] [--parsers] [--corpus DIR]

Data: ``python3 ../shared/bench/build-mix --out /tmp/bench-data --http`` writes
``/tmp/bench-data/mix-http-1m.pcap`` (1,000,000 frames, HTTP traces only) and
its first 100,000 frames ``mix-http-100k.pcap``.  ``--generate N`` instead
measures ``/tmp/bench-data/gen-http-N.pcap``, written (once) by the project's
generator, ``captures.synthetic.generate("http", seed=7, count=N)``: N
keep-alive connections of one to five small transactions each (about 31
packets and 2.7 transactions per connection).  Nothing is written into the
repository; prefixes for the peers go to a temporary directory.

What is timed (CPU seconds of the process and its children; wall in brackets;
every figure is the best of ``--repeat`` runs):

* **netsift**: the default ``Pipeline`` (its own ``HttpStage``; the DNS and
  SMTP stages also look at every TCP stream) over the whole ``--capture``
  (read, dissect, packets and conn stages, IP defragmentation, TCP
  reassembly, HTTP, frames), with the time split by layer (each entry point
  wrapped with a CPU clock; "other" is what no wrapper saw).
  Transactions = rows of the ``http`` frame.
* **HTTP stage alone**: the inputs the pipeline gave the ``HttpStage``
  (``feed`` per batch, ``feed_stream`` per reassembled chunk) are recorded
  and replayed into a fresh ``HttpStage``, ``finish()`` (the frame) included.
* **tshark**: ``tshark -n -r PREFIX -Y http -T fields -e http.request.method
  -e http.request.uri -e http.host -e http.user_agent -e http.response.code
  -e http.content_type -e http.content_length`` on the first ``--peers-on``
  frames (default 100,000); transactions = lines with a request method.
* **scapy**: ``sniff(offline=PREFIX, session=TCPSession)`` with scapy's HTTP
  layer, on the first ``--scapy-on`` frames (default 20,000);
  transactions = ``HTTPRequest`` layers.
* netsift is also timed on each peer's prefix, so the ratios compare equal work
  (the "netsift x" column: netsift's transactions/s over the peer's, same frames).

``--parsers``: the reassembled HTTP streams of the prefix (and of the corpus
captures with an http.log) are fed to our :class:`HttpSession`, to httptools
(llhttp) and to h11, timed apart from reassembly; the table gives messages/s
and how many connections each parser rejects (an exception or a parser error
before the end of the stream).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import struct
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
from cpu_timer import CpuTimer  # noqa: E402  (bench/, this script's folder)

DEFAULT = "/tmp/bench-data/mix-http-1m.pcap"
FIELDS = ("http.request.method", "http.request.uri", "http.host", "http.user_agent", "http.response.code",
          "http.content_type", "http.content_length")


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def prefix(path: str, packets: int, directory: str) -> str:
    """The first ``packets`` frames of a classic pcap: a byte prefix (records are read in order)."""
    out = os.path.join(directory, f"prefix-{packets}.pcap")
    if os.path.exists(out):
        return out
    sibling = path.replace("-1m.pcap", "-100k.pcap")
    if packets == 100_000 and sibling != path and os.path.exists(sibling):
        return sibling
    with open(path, "rb") as capture:
        header = capture.read(24)
        order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
                 b"\xa1\xb2\x3c\x4d": ">"}.get(header[:4])
        if order is None:
            raise ValueError(f"{path}: not a classic pcap file, no prefix made")
        record = struct.Struct(order + "IIII")
        end = 24
        for _ in range(packets):
            capture.seek(end)
            head = capture.read(16)
            if len(head) < 16:
                break
            end += 16 + record.unpack(head)[2]
        capture.seek(0)
        with open(out, "wb") as target:
            target.write(capture.read(end))
    return out


# -- netsift ----------------------------------------------------------------------------------------------

def run_netsift(path: str, repeat: int = 1, record: bool = False) -> dict:
    """Best of ``repeat`` plain pipeline runs, plus one instrumented run for the split of the time (``"split"``,
    ``"split_cpu"``) and, with ``record``, the HttpStage's inputs (``"inputs"``)."""
    best = None
    for _ in range(repeat):
        result = _netsift_once(path, instrument=False, record=False)
        if best is None or result["cpu"] < best["cpu"]:
            best = result
    instrumented = _netsift_once(path, instrument=True, record=record)
    best["split"], best["split_cpu"] = instrumented["split"], instrumented["cpu"]
    if record:
        best["inputs"] = instrumented["inputs"]
    return best


def _netsift_once(path: str, instrument: bool, record: bool) -> dict:
    """One pipeline run.  Instrumented: every entry point wrapped with a CPU clock; the stream readers are
    timed per batch of deliveries (a clock per delivery would cost more than some stages do)."""
    timer = CpuTimer()
    original_dissect = pipeline_module.dissect
    if instrument:
        pipeline_module.dissect = timer.wrap("read+dissect", original_dissect)
    gc.collect()
    collections = pipeline_module.fewer_collections()     # as analyze() runs the pipeline
    collections.__enter__()
    try:
        start_cpu, start_wall = cpu(), time.perf_counter()
        pipeline = Pipeline()
        stage = next(s for s in pipeline.stages if isinstance(s, HttpStage))
        inputs = [] if record else None
        if record:
            stage.feed, stage.feed_stream = _recording(stage, pipeline.connections, inputs)
        if instrument:
            _instrument(pipeline, stage, timer)
        with open_capture(path) as reader:
            batches = reader.batches()
            read = timer.wrap("read+dissect", lambda: next(batches, None)) if instrument else \
                (lambda: next(batches, None))
            while (batch := read()) is not None:
                pipeline.feed(batch)
        finish = timer.wrap("finish (frames)", pipeline.finish) if instrument else pipeline.finish
        tables = finish()
        seconds, wall = cpu() - start_cpu, time.perf_counter() - start_wall
    finally:
        pipeline_module.dissect = original_dissect
        collections.__exit__(None, None, None)
    result = {"tool": "netsift", "capture": path, "packets": pipeline.frames_fed, "transactions": len(tables["http"]),
              "cpu": seconds, "wall": wall, "split": timer.spent}
    if inputs is not None:
        result["inputs"] = inputs
    return result


def _instrument(pipeline, http_stage, timer: CpuTimer) -> None:
    names = {}
    for other in pipeline.stages[2:]:
        name = names[id(other)] = "HTTP" if other is http_stage else type(other).__name__.replace("Stage", "")
        other.feed = timer.wrap(f"{name} (feed)", other.feed)
    pipeline.stats.update = timer.wrap("capture stats", pipeline.stats.update)
    pipeline.packets.feed = timer.wrap("packets frame", pipeline.packets.feed)
    pipeline.connections.feed = timer.wrap("conn", pipeline.connections.feed)
    pipeline.streams.feed_columns = timer.wrap("TCP reassembly", pipeline.streams.feed_columns)
    pipeline.fragments.feed = timer.wrap("IP defrag", pipeline.fragments.feed)
    timer.time_stream_readers(pipeline, lambda reader: f"{names.get(id(reader), type(reader).__name__)} (streams)")


class _Flags:
    """The one column HttpStage.feed reads (``_tcp.flags``), kept for a replay."""

    __slots__ = ("valid", "values")

    def __init__(self, fields):
        self.values = {k: fields.values[k].copy() for k in ("_tcp.flags",) if k in fields.values}
        self.valid = {k: fields.valid[k].copy() for k in ("_tcp.flags",) if k in fields.valid}


def _recording(stage, connections, inputs: list):
    feed, feed_stream = stage.feed, stage.feed_stream

    def recorded_feed(batch, fields, datagrams=()):
        serial = connections.batch_serial
        kept = [(None, _Flags(part_fields), rows.copy(), None) for _, part_fields, rows, _ in datagrams]
        inputs.append((len(batch), None if serial is None else serial.copy(), _Flags(fields), kept))
        feed(batch, fields, datagrams=datagrams)

    def recorded_feed_stream(delivery):
        inputs.append(delivery)
        feed_stream(delivery)
    return recorded_feed, recorded_feed_stream


class _Connections:
    """What HttpStage uses of the ConnStage: ``batch_serial``, ``set_service`` and ``remove_service``."""

    batch_serial = None

    def set_service(self, uid, service, ts=None):
        pass

    def remove_service(self, uid, service):
        pass


class _Batch:
    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


def run_stage_alone(inputs: list, repeat: int) -> dict:
    """Best CPU seconds of a fresh HttpStage given the recorded inputs (parse, pair, frame)."""
    best = None
    for _ in range(repeat):
        gc.collect()
        connections = _Connections()
        stage = HttpStage(connections)
        feed, feed_stream = stage.feed, stage.feed_stream
        start_cpu, start_wall = cpu(), time.perf_counter()
        for item in inputs:
            if item.__class__ is tuple:
                connections.batch_serial = item[1]
                feed(_Batch(item[0]), item[2], datagrams=item[3])
            else:
                feed_stream(item)
        rows = len(stage.finish()["http"])
        seconds, wall = cpu() - start_cpu, time.perf_counter() - start_wall
        if best is None or seconds < best["cpu"]:
            best = {"tool": "HTTP stage alone", "transactions": rows, "cpu": seconds, "wall": wall,
                    "packets": sum(1 for item in inputs if item.__class__ is not tuple)}
    return best


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
    parser.add_argument("--generate", type=int, default=0, metavar="N",
                        help="measure /tmp/bench-data/gen-http-N.pcap (N generated connections) instead")
    parser.add_argument("--peers-on", type=int, default=100_000, help="frames for tshark (0: whole capture)")
    parser.add_argument("--scapy-on", type=int, default=20_000, help="frames for scapy")
    parser.add_argument("--tools", default="netsift,tshark,scapy")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (the best is kept)")
    parser.add_argument("--parsers", action="store_true", help="also compare HTTP parsers on the streams")
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args()
    if args.generate:
        args.capture = f"/tmp/bench-data/gen-http-{args.generate}.pcap"
        if not os.path.exists(args.capture):
            from captures.synthetic import generate
            os.makedirs(os.path.dirname(args.capture), exist_ok=True)
            generate("http", args.capture, seed=7, count=args.generate)
    if not os.path.exists(args.capture):
        print(f"{args.capture}: missing (python3 ../shared/bench/build-mix --out /tmp/bench-data --http, "
              f"or use --generate N)")
        return 2
    tools = args.tools.split(",")
    repeat = max(1, args.repeat)
    results = []
    with tempfile.TemporaryDirectory(prefix="netsift-http-speed-") as directory:
        base = None
        if "netsift" in tools:
            base = run_netsift(args.capture, repeat, record=True)
            results.append(base)
            results.append(run_stage_alone(base.pop("inputs"), repeat))
        if "tshark" in tools:
            peer_prefix = prefix(args.capture, args.peers_on, directory) if args.peers_on else args.capture
            results.append(best_of(run_tshark, peer_prefix, repeat))
            results.append(dict(run_netsift(peer_prefix, repeat), tool="netsift (same prefix)"))
        if "scapy" in tools:
            scapy_prefix = prefix(args.capture, args.scapy_on, directory)
            results.append(best_of(run_scapy, scapy_prefix, repeat))
            results.append(dict(run_netsift(scapy_prefix, repeat), tool="netsift (same prefix)"))
        if args.parsers:
            corpus = Path(args.corpus) if args.corpus else Path(ROOT).parent / "shared" / "corpus"
            run_parsers(prefix(args.capture, args.peers_on, directory) if args.peers_on else args.capture, corpus)
    print(f"\ncapture {args.capture}; CPU seconds, best of {repeat}")
    print(f"{'tool':<24}{'packets':>10}{'transactions':>14}{'CPU s':>8}{'wall s':>8}{'tx/s (CPU)':>12}"
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
        packets = f"{r['packets']:,}" if r["tool"] != "HTTP stage alone" else f"({r['packets']:,} chunks)"
        print(f"{r['tool']:<24}{packets:>10}{r['transactions']:>14,}{r['cpu']:>8.2f}{r['wall']:>8.2f}"
              f"{rate:>12,.0f}{ratio:>11}")
        previous = r
    if base is not None:
        print(f"\nnetsift on {base['capture']}: where the CPU time goes (a run with clocks around each part: "
              f"{base['split_cpu']:.2f} s CPU)")
        total = base["split_cpu"]
        for name, seconds in sorted(base["split"].items(), key=lambda item: -item[1]):
            print(f"  {name:<26}{seconds:>8.2f} s {100 * seconds / total:>6.1f}%")
        accounted = sum(base["split"].values())
        print(f"  {'other (pipeline glue)':<26}{total - accounted:>8.2f} s {100 * (total - accounted) / total:>6.1f}%")
    return 0


def best_of(function, path: str, repeat: int) -> dict:
    """The run of ``function(path)`` with the least CPU time (an error result as it is)."""
    best = None
    for _ in range(repeat):
        result = function(path)
        if "error" in result:
            return result
        if best is None or result["cpu"] < best["cpu"]:
            best = result
    return best


if __name__ == "__main__":
    sys.exit(main())
