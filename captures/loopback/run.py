"""``generate_live``: real servers and clients on loopback, captured live into a pcap file.

Order of a run: the servers bind (HTTP and SMTP on ports the kernel picks,
DNS on 53 because Zeek, and netsift like it, reads DNS by port only:
``DNS::ports``), the capture opens on the loopback interface with a BPF
filter for exactly those ports, the clients run one conversation after
another, the capture waits until no frame has come for ``settle`` seconds,
stops, and the frames are written as a classic pcap (µs timestamps).
Servers and capture are closed on every way out (``ExitStack``), including
an error or Ctrl-C in the middle.

Loopback frames carry partial TCP/UDP checksums (the kernel leaves them to
offload that never happens on ``lo``), so analyse these files as
``zeek -C`` would: ``analyze(path, validate_checksums=False)`` or
``netsift analyze -C``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..live import LiveCapture, LiveCaptureError, LiveStats, permission_problem
from ..writer import PcapWriter

SCENARIOS = ("dns", "http", "smtp", "mixed")
LOOPBACK = "127.0.0.1"
INSTALL_HINT = "pip install 'netsift[live]'"
_EXTRAS = {"dns": "dnspython", "aiosmtpd": "aiosmtpd", "cryptography": "cryptography"}


class LoopbackError(RuntimeError):
    """A live generation that cannot run (a port not free, a missing extra); ``str()`` is one line."""


def missing_extras() -> list[str]:
    """The distributions of the ``live`` extra that are not installed (dnspython, aiosmtpd, cryptography)."""
    return [name for module, name in _EXTRAS.items() if importlib.util.find_spec(module) is None]


@dataclass
class LiveRun:
    """What :func:`generate_live` did.

    Attributes:
        path: the pcap file written.
        scenario, seed: as given.
        packets: frames written.
        ports: ``{"dns"|"http"|"smtp": port}`` of the servers that ran (all on 127.0.0.1).
        capture_filter: the BPF filter of the capture.
        sent: per protocol (``"dns"``, ``"http"``, ``"smtp"``), the exchanges as the clients made them
            (:class:`~captures.loopback.dns_server.DnsExchange`, ``HttpExchange``, ``SmtpExchange``), in order.
        received: the same, as the servers recorded them (in the order they were answered).
        conversations: connections made per protocol (DNS: one per query; HTTP/SMTP: one per session).
        stats: the capture's statistics (``dropped`` should be 0).
        seconds: wall time of the run.
    """

    path: str
    scenario: str
    seed: int
    packets: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    capture_filter: str = ""
    sent: dict[str, list] = field(default_factory=dict)
    received: dict[str, list] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    stats: LiveStats = field(default_factory=LiveStats)
    seconds: float = 0.0


def split_count(scenario: str, count: int) -> dict[str, int]:
    """Conversations per protocol: all to one, or for ``mixed`` a third each (at least one each)."""
    if scenario != "mixed":
        return {scenario: count}
    return {kind: max(1, count // 3 + (1 if index < count % 3 else 0))
            for index, kind in enumerate(("dns", "http", "smtp"))}


class _Capture:
    """A :class:`LiveCapture` read by a thread into a list of batches, until :meth:`finish`."""

    def __init__(self, interface: str, bpf: str, timeout: float):
        self.session = LiveCapture(interface, bpf, duration=timeout)
        self.batches = []
        self.error: BaseException | None = None
        self.last = time.monotonic()
        self.thread = threading.Thread(target=self._read, name="netsift-loopback-capture", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for batch in self.session.batches():
                self.batches.append(batch)
                self.last = time.monotonic()
        except BaseException as error:        # handed to the caller by finish()
            self.error = error

    def settle(self, quiet: float, longest: float = 5.0) -> None:
        """Wait until no frame has come for ``quiet`` seconds (FIN/ACK exchanges end), at most ``longest``."""
        until = time.monotonic() + longest
        while time.monotonic() < until and time.monotonic() - self.last < quiet:
            time.sleep(min(0.05, quiet))

    def finish(self) -> list:
        self.close()
        if self.error is not None:
            raise self.error
        return self.batches

    def close(self) -> None:
        self.session.stop()
        self.thread.join(10)
        self.session.close()


def draw_plans(scenario: str, seed: int, count: int) -> dict:
    """What a run does, drawn from ``random.Random(seed)`` alone.

    Returns ``{"dns": (Zone, [(proto, name, type), …]), "http": [session, …], "smtp": [session, …]}``
    (the protocols of ``scenario`` only; sessions as the ``plan`` functions of each module describe them).
    """
    from . import dns_server, http_server, smtp_server
    rng = random.Random(seed)
    counts = split_count(scenario, count)
    plans = {}
    if "dns" in counts:
        zone = dns_server.Zone(rng)
        plans["dns"] = (zone, dns_server.plan(rng, zone, counts["dns"]))
    if "http" in counts:
        plans["http"] = http_server.plan(rng, counts["http"])
    if "smtp" in counts:
        plans["smtp"] = smtp_server.plan(rng, counts["smtp"])
    return plans


def expected_exchanges(scenario: str, seed: int, count: int, http_port: int | None = None) -> dict[str, list]:
    """The exchanges a run's clients make (``LiveRun.sent``), computed without a network.

    DNS ``trans_id`` is 0 (the real one is random); the Host of an HTTP session
    that lets http.client make it is ``127.0.0.1:<http_port>``.
    """
    from . import dns_server, http_server, smtp_server
    out = {}
    for kind, plan in draw_plans(scenario, seed, count).items():
        if kind == "dns":
            zone, queries = plan
            out[kind] = [dns_server.expected(zone, *query) for query in queries]
        elif kind == "http":
            out[kind] = [exchange for session in plan for exchange in http_server.expected(session, http_port)]
        else:
            out[kind] = [exchange for session in plan for exchange in smtp_server.expected(session)]
    return out


def _servers(stack: contextlib.ExitStack, plans: dict, dns_port: int) -> dict:
    """Start the servers the plans need; ``{kind: server}``."""
    from .dns_server import DnsServer
    from .http_server import HttpServer
    from .smtp_server import SmtpServer
    servers = {}
    if "dns" in plans:
        try:
            servers["dns"] = stack.enter_context(DnsServer(plans["dns"][0], LOOPBACK, dns_port))
        except PermissionError as error:
            raise LoopbackError(f"cannot bind {LOOPBACK}:{dns_port} for the DNS server ({error.strerror}): "
                                "needs root or CAP_NET_BIND_SERVICE (DNS is read on port 53 only, as Zeek does)")
        except OSError as error:
            raise LoopbackError(f"cannot bind {LOOPBACK}:{dns_port} for the DNS server ({error.strerror}): "
                                "is another DNS server (or another live generation) running?")
    if "http" in plans:
        servers["http"] = stack.enter_context(HttpServer(LOOPBACK))
    if "smtp" in plans:
        servers["smtp"] = stack.enter_context(SmtpServer(LOOPBACK))
    for server in servers.values():
        server.start()
    return servers


def _tasks(plans: dict, servers: dict) -> list[tuple[str, Callable]]:
    """The conversations to run, as ``(kind, call)``, protocols interleaved round-robin."""
    from . import dns_server, http_server, smtp_server
    lists = {}
    if "dns" in plans:
        lists["dns"] = [lambda q=q, port=servers["dns"].port: [dns_server.ask(*q, port=port)]
                        for q in plans["dns"][1]]
    if "http" in plans:
        lists["http"] = [lambda s=s, port=servers["http"].port: http_server.run_session(s, port)
                         for s in plans["http"]]
    if "smtp" in plans:
        lists["smtp"] = [lambda s=s, port=servers["smtp"].port: smtp_server.run_session(s, port)
                         for s in plans["smtp"]]
    tasks = []
    for index in range(max(len(calls) for calls in lists.values())):
        tasks += [(kind, calls[index]) for kind, calls in lists.items() if index < len(calls)]
    return tasks


def _remove_unless_written(path, handle) -> None:
    """On the way out of a failed run: no half-made file is left behind."""
    if not handle.closed:
        handle.close()
        with contextlib.suppress(OSError):
            os.remove(path)


def generate_live(scenario: str, path: str, seed: int = 0, count: int = 6, *, interface: str = "lo",
                  dns_port: int = 53, settle: float = 0.25, timeout: float = 300.0,
                  on_ready: Callable[[dict[str, int]], None] | None = None) -> LiveRun:
    """Run real servers and clients on 127.0.0.1, capture them on ``interface`` and write a pcap to ``path``.

    Args:
        scenario: ``"dns"``, ``"http"``, ``"smtp"`` or ``"mixed"`` (a third of ``count`` each).
        path: the classic pcap file to write (µs timestamps, link type of the interface: Ethernet on Linux ``lo``).
        seed: draws the content (names, sizes, recipients, subjects, …); ports and times still vary.
        count: conversations (DNS: queries, one connection each; HTTP/SMTP: sessions of one or
            more requests or messages on one connection).
        interface: the loopback interface.
        dns_port: the DNS server's port (53: the analyzer, like Zeek, finds DNS by port).
        settle: seconds without a frame that mark the end of the traffic.
        timeout: the capture stops by itself after this long.
        on_ready: called with the servers' ports once they serve and the capture runs (before any client).

    Returns:
        :class:`LiveRun`: the file, the ports, what clients sent and servers received.

    Raises:
        ValueError: unknown scenario or ``count < 1``.
        LoopbackError: a live extra is missing, or the DNS port cannot be bound.
        LiveCaptureError: no permission to capture, or the capture failed.
        OSError: the file cannot be written; a client failed (e.g. a timeout).
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    missing = missing_extras()
    if missing:
        raise LoopbackError(f"live generation needs {', '.join(missing)}: {INSTALL_HINT}")
    problem = permission_problem()
    if problem is not None:
        raise LiveCaptureError(problem, "permission")
    started = time.monotonic()
    plans = draw_plans(scenario, seed, count)
    run = LiveRun(path=str(path), scenario=scenario, seed=seed)
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(path, "wb"))      # a bad path fails before any traffic
        stack.callback(_remove_unless_written, path, handle)
        servers = _servers(stack, plans, dns_port)
        run.ports = {kind: server.port for kind, server in servers.items()}
        ports = " or ".join(f"port {port}" for port in sorted(set(run.ports.values())))
        run.capture_filter = f"host {LOOPBACK} and ({ports})"
        capture = _Capture(interface, run.capture_filter, timeout)
        stack.callback(capture.close)
        if on_ready is not None:
            on_ready(dict(run.ports))
        run.sent = {kind: [] for kind in plans}
        for kind, call in _tasks(plans, servers):
            run.sent[kind] += call()
        capture.settle(settle)
        batches = capture.finish()
        run.stats = capture.session.stats()
        run.received = {kind: list(server.received) for kind, server in servers.items()}
        run.conversations = split_count(scenario, count)
        with PcapWriter(handle, capture.session.link_type, capture.session.snaplen) as writer:
            for batch in batches:
                writer.write_batch(batch)
        run.packets = writer.count
        handle.close()
    run.seconds = time.monotonic() - started
    return run
