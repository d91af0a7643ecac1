"""Loss-free live capture rate on loopback: netsift (capture + L2-L4 dissection) beside tcpdump -w.

For each rate (packets/s) a sender process sends UDP datagrams to 127.0.0.1
at that fixed rate for a few seconds; a bound receiver socket that is never
read keeps the kernel from answering with ICMP.  In the same run, for each
rate, first netsift captures them (``captures.live.LiveCapture`` on ``lo``,
every batch through ``dissectors.dissect``), then ``tcpdump -w`` does, both
with the same BPF filter (the sender's port), snaplen and kernel buffer.  Loss
is ``1 - captured / sent``; the loss-free rate of each is the highest rate
with less than 0.1 % loss, and the table shows the ratio.

Run as root (or with CAP_NET_RAW):

    python bench/live_speed.py                       # rates 20k 50k 100k 200k, 3 s each
    python bench/live_speed.py --rates 100000,300000 --seconds 2 --buffer-mb 32

Only loopback is used, and every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PAYLOAD_BYTES = 64            # 106-byte frames on lo (14 + 20 + 8 + 64)
LOSS_FREE = 0.001             # < 0.1 % loss
MAX_SECONDS = 10.0            # no trial sends for longer than this


# ---------------------------------------------------------------------------
# The sender (run in its own process: python bench/live_speed.py --send RATE SECONDS PORT)


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


def _sendmmsg_sender(sock: socket.socket, payload: bytes, most: int):
    """A function sending ``k <= most`` copies of ``payload`` on the connected ``sock`` in one sendmmsg call."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "sendmmsg", None)
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    call.restype = ctypes.c_int
    buffer = ctypes.create_string_buffer(payload, len(payload))
    iov = _Iovec(ctypes.cast(buffer, ctypes.c_void_p), len(payload))
    messages = (_Mmsghdr * most)()
    for m in messages:
        m.msg_hdr.msg_iov = ctypes.pointer(iov)
        m.msg_hdr.msg_iovlen = 1
    fd, address = sock.fileno(), ctypes.addressof(messages)

    def send_some(k: int) -> int:
        done = call(fd, address, k, 0)
        return max(done, 0)
    send_some.keep = (buffer, iov, messages)
    return send_some


def send(rate: int, seconds: float, port: int) -> dict:
    """Send UDP datagrams to 127.0.0.1:port at ``rate`` per second for ``seconds``; return what was sent.

    Datagrams go out in small sendmmsg bursts (one system call per burst, paced
    every ~0.2 ms), so the sender is not the bottleneck at the rates measured.
    """
    seconds = min(seconds, MAX_SECONDS)
    total = int(rate * seconds)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", port))           # never read: the kernel drops, no ICMP unreachable
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.connect(("127.0.0.1", port))
    payload = os.urandom(PAYLOAD_BYTES)
    burst = 64
    send_some = _sendmmsg_sender(out, payload, burst)
    if send_some is None:
        def send_some(k: int) -> int:
            for _ in range(k):
                out.send(payload)
            return k
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds + 1.0
    while sent < total:
        now = time.perf_counter()
        if now > deadline:
            break
        due = min(total, int((now - started) * rate) + 1)
        if due <= sent:
            time.sleep(max(0.0, min(0.0002, (sent + 1) / rate - (now - started))))
            continue
        while sent < due and time.perf_counter() <= deadline:
            done = send_some(min(burst, due - sent))
            if done <= 0:
                break
            sent += done
    elapsed = time.perf_counter() - started
    return {"sent": sent, "seconds": elapsed, "rate": sent / elapsed}


def _start_sender(rate: int, seconds: float, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--send", str(rate), str(seconds),
                             str(port)], stdout=subprocess.PIPE, text=True)


def _sender_result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=MAX_SECONDS + 30)
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# netsift


def trial_netsift(rate: int, seconds: float, buffer_mb: int, snaplen: int) -> dict:
    from captures.live import LiveCapture
    from dissectors import dissect

    port = random.randint(20000, 60000)
    capture = LiveCapture("lo", f"udp dst port {port}", snaplen, buffer_mb=buffer_mb,
                          duration=seconds + 30)
    captured = dissected = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    proc = _start_sender(rate, seconds, port)
    sender_done = None
    busy = 0.0
    try:
        for batch in capture.batches(heartbeat=0.05):
            if len(batch):
                t = time.perf_counter()
                fields = dissect(batch)
                busy += time.perf_counter() - t
                captured += len(batch)
                dissected += int(fields.valid["udp.dstport"].sum())
            if sender_done is None and proc.poll() is not None:
                sender_done = time.monotonic()
            if sender_done is not None and time.monotonic() - sender_done > 0.3:
                capture.stop()
    finally:
        after = resource.getrusage(resource.RUSAGE_SELF)
        capture.close()
        if proc.poll() is None:
            proc.wait(timeout=MAX_SECONDS + 30)
    sent = _sender_result(proc)
    stats = capture.stats()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if dissected != captured:
        raise RuntimeError(f"dissected {dissected} UDP datagrams of {captured} frames")
    return {"tool": "netsift", "rate": rate, "sent": sent["sent"], "sent_rate": sent["rate"],
            "captured": captured, "dissected_udp": dissected, "kernel_drops": stats.dropped // 2,
            "cpu_seconds": cpu, "dissect_seconds": busy}


def trial_drain(packets: int, buffer_mb: int, snaplen: int) -> dict:
    """netsift's own ceiling: fill the kernel ring while not reading, then time reading + dissecting it all."""
    from captures.live import LiveCapture
    from dissectors import dissect

    port = random.randint(20000, 60000)
    capture = LiveCapture("lo", f"udp dst port {port}", snaplen, buffer_mb=buffer_mb)
    try:
        seconds = 2.0
        sent = _sender_result(_start_sender(int(packets / seconds), seconds, port))
        time.sleep(0.1)
        capture.stop()
        started = time.perf_counter()
        captured = 0
        for batch in capture.batches():
            dissect(batch)
            captured += len(batch)
        elapsed = time.perf_counter() - started
    finally:
        capture.close()
    return {"sent": sent["sent"], "captured": captured, "seconds": elapsed, "rate": captured / elapsed,
            "kernel_drops": capture.stats().dropped // 2}


# ---------------------------------------------------------------------------
# tcpdump


def trial_tcpdump(rate: int, seconds: float, buffer_mb: int, snaplen: int, tcpdump: str) -> dict:
    port = random.randint(20000, 60000)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "tcpdump.pcap")
        dump = subprocess.Popen([tcpdump, "-i", "lo", "-n", "-w", out, "-B", str(buffer_mb * 1024), "-s",
                                 str(snaplen), f"udp dst port {port}"],
                                stderr=subprocess.PIPE, text=True)
        try:
            line = dump.stderr.readline()              # "listening on lo, ..."
            if "listening" not in line:
                raise RuntimeError(f"tcpdump did not start: {line.strip()}")
            proc = _start_sender(rate, seconds, port)
            sent = _sender_result(proc)
            # tcpdump's libpcap timeout is 1 s: the last ring block reaches it up to 1 s late,
            # and tcpdump does not read it after SIGINT.
            time.sleep(1.5)
            cpu = _process_cpu(dump.pid)
        finally:
            dump.send_signal(signal.SIGINT)
            _, err = dump.communicate(timeout=30)
        found = re.search(r"(\d+) packets? captured", err)
        dropped = re.search(r"(\d+) packets? dropped by kernel", err)
    captured = int(found.group(1)) if found else 0
    return {"tool": "tcpdump", "rate": rate, "sent": sent["sent"], "sent_rate": sent["rate"],
            "captured": captured, "kernel_drops": int(dropped.group(1)) // 2 if dropped else None,
            "cpu_seconds": cpu}


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------


def loss(row: dict) -> float:
    return 1 - row["captured"] / row["sent"] if row["sent"] else 1.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="20000,50000,100000,200000",
                        help="comma-separated packets/s (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per trial (default: %(default)s)")
    parser.add_argument("--buffer-mb", type=int, default=32, help="kernel buffer, MiB, both tools")
    parser.add_argument("--snaplen", type=int, default=262144)
    parser.add_argument("--no-tcpdump", action="store_true")
    parser.add_argument("--no-drain", action="store_true", help="skip the ceiling measurement")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--send", nargs=3, metavar=("RATE", "SECONDS", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.send:
        print(json.dumps(send(int(args.send[0]), float(args.send[1]), int(args.send[2]))), flush=True)
        return 0
    from captures.live import libpcap_version, permission_problem
    problem = permission_problem()
    if problem:
        print(f"live_speed: {problem}", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    seconds = min(args.seconds, MAX_SECONDS)
    tcpdump = None if args.no_tcpdump else shutil.which("tcpdump")
    print(f"loopback, {PAYLOAD_BYTES}-byte UDP payloads ({PAYLOAD_BYTES + 42}-byte frames), {seconds:g} s per "
          f"trial, kernel buffer {args.buffer_mb} MiB, snaplen {args.snaplen}; {os.cpu_count()} CPUs; "
          f"{libpcap_version()}", flush=True)
    # Warm up numba (cached compilations load on first use).
    trial_netsift(1000, 0.2, args.buffer_mb, args.snaplen)
    rows = []
    header = (f"{'rate':>9}  {'tool':<8} {'sent':>9} {'sent/s':>9} {'captured':>9} {'loss %':>8} {'drops':>7} "
              f"{'CPU us/pkt':>10}")
    print(header)
    for rate in rates:
        trials = [trial_netsift(rate, seconds, args.buffer_mb, args.snaplen)]
        if tcpdump:
            trials.append(trial_tcpdump(rate, seconds, args.buffer_mb, args.snaplen, tcpdump))
        for row in trials:
            row["loss"] = loss(row)
            rows.append(row)
            drops = "" if row["kernel_drops"] is None else f"{row['kernel_drops']:,}"
            print(f"{rate:>9,}  {row['tool']:<8} {row['sent']:>9,} {row['sent_rate']:>9,.0f} "
                  f"{row['captured']:>9,} {100 * row['loss']:>8.3f} {drops:>7} "
                  f"{1e6 * row['cpu_seconds'] / max(row['captured'], 1):>10.2f}", flush=True)
    print()
    print(f"loss-free (< {100 * LOSS_FREE:g} % loss): the highest rate actually sent, and CPU per packet there")
    best = {}
    for tool in ("netsift", "tcpdump"):
        mine = [row for row in rows if row["tool"] == tool]
        if not mine:
            continue
        ok = [row for row in mine if row["loss"] < LOSS_FREE]
        lossy = [row for row in mine if row["loss"] >= LOSS_FREE]
        top = max(ok, key=lambda row: row["sent_rate"]) if ok else None
        best[tool] = top["sent_rate"] if top else 0.0
        label = "netsift (capture + dissect L2-L4)" if tool == "netsift" else "tcpdump -w"
        if top is None:
            print(f"  {label:<34} lossy at every rate")
            continue
        note = "" if lossy else "  (no loss at any rate tried: the sender is the limit)"
        per_packet = 1e6 * top["cpu_seconds"] / max(top["captured"], 1)
        print(f"  {label:<34} {top['sent_rate']:>9,.0f} pkt/s, {per_packet:.2f} CPU us/pkt{note}")
    if best.get("netsift") and best.get("tcpdump"):
        print(f"  ratio netsift/tcpdump              {best['netsift'] / best['tcpdump']:.2f}")
    if not args.no_drain:
        drain = trial_drain(400_000, 256, args.snaplen)
        print(f"  netsift ceiling (kernel ring filled first, then read + dissected): {drain['rate']:,.0f} pkt/s "
              f"({drain['captured']:,} of {drain['sent']:,} frames in {drain['seconds']:.2f} s, "
              f"{drain['kernel_drops']:,} dropped by a full ring)")
        best["netsift_drain"] = drain["rate"]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "best": best}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
