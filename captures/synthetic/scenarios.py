"""Conversations of each scenario: DNS (UDP, TCP, truncated-then-TCP), HTTP, SMTP, ICMP echo.

A :class:`Builder` holds the capture, the hosts, the RNGs and the options, and
appends one conversation at a time: flows, packets (after per-flow
impairments) and application truth records.  Sessions are drawn fresh for the
first :data:`POOL` conversations of each kind, then reused from that pool
with new addresses, ports, ISNs, transaction IDs and timing, which keeps a
million-packet capture fast without making small captures repetitive.
"""

from __future__ import annotations

import random
import struct

from . import dns, http, smtp
from .impair import impair_flow
from .model import K_ICMP, K_UDP, Capture, Flow, Hosts
from .tcp import build_tcp, pick_teardown

POOL = 256
SCENARIOS = ("dns", "http", "smtp", "mixed")
_MIXED = (("dns", 45), ("http", 35), ("smtp", 20))


class Builder:
    def __init__(self, rng: random.Random, imp_rng: random.Random, *, segment: str,
                 reorder: float, duplicate: float, loss: float, ipv6: bool,
                 v6_share: float = 0.0) -> None:
        self.cap = Capture()
        self.rng = rng
        self.imp_rng = imp_rng
        self.hosts = Hosts(rng)
        self.segment = segment
        self.small = segment == "every-byte"
        self.reorder, self.duplicate, self.loss = reorder, duplicate, loss
        self.ipv6 = ipv6
        self.v6_share = v6_share
        self._pools: dict[str, list] = {}
        self._used: dict[str, int] = {}
        self.sessions = {"dns": 0, "http": 0, "smtp": 0, "icmp": 0}

    # ------------------------------------------------------------ helpers
    def v6(self) -> bool:
        return self.ipv6 or (self.v6_share > 0 and self.rng.random() < self.v6_share)

    def pooled(self, kind: str, make):
        """(pool index, entry): a fresh entry for the first POOL uses, then a reused one."""
        pool = self._pools.setdefault(kind, [])
        if len(pool) < POOL:
            pool.append(make())
            return len(pool) - 1, pool[-1]
        i = self.rng.randrange(POOL)
        return i, pool[i]

    def add_tcp(self, flow: Flow, turns, t0: int, teardown: str, key=None, skippable=((), ())) -> int:
        cap = self.cap
        fid = cap.add_flow(flow)
        rtt = self.rng.randrange(2_000_000, 60_000_000)
        pkts, t_end = build_tcp(cap, fid, turns, t0, self.rng, segment=self.segment,
                                teardown=teardown, rtt=rtt, seg_rng=self.imp_rng, key=key)
        if self.loss or self.duplicate or self.reorder:
            pkts = impair_flow(pkts, self.imp_rng, self.loss, self.duplicate, self.reorder, flow,
                               skippable)
        cap.packets.extend(pkts)
        return t_end

    def add_udp(self, flow: Flow, query: bytes, response: bytes, t0: int) -> int:
        cap = self.cap
        fid = cap.add_flow(flow)
        rtt = self.rng.randrange(300_000, 40_000_000)
        cap.packets.append((t0, fid, 0, K_UDP, 0, 0, 0, cap.store(query), len(query)))
        cap.packets.append((t0 + rtt, fid, 1, K_UDP, 0, 0, 0, cap.store(response), len(response)))
        return t0 + rtt

    # ------------------------------------------------------------ scenarios
    def dns(self, t0: int) -> int:
        rng = self.rng

        def make():
            r = rng.random()
            mode = "udp" if r < 0.8 else ("tcp" if r < 0.9 else "tc")
            ex = dns.make_exchange(rng, big=mode == "tc")
            entry = {"mode": mode, "full": dns.encode(ex), "truth": dns.truth_fields(ex)}
            if mode == "tc":
                entry["trunc"] = dns.encode(ex, truncated=True)
                entry["truth_tc"] = dns.truth_fields(ex, truncated=True)
            return entry

        _, e = self.pooled("dns", make)
        self.sessions["dns"] += 1
        v6 = self.v6()
        t = t0
        udp_flow = None
        if e["mode"] in ("udp", "tc"):
            q, r = e["trunc"] if e["mode"] == "tc" else e["full"]
            tid = rng.getrandbits(16)
            tb = struct.pack("!H", tid)
            udp_flow = self.hosts.flow("udp", "dns", 53, v6, "dns")
            t = self.add_udp(udp_flow, tb + q[2:], tb + r[2:], t0)
            rec = {"table": "dns", **udp_flow.ids(), "proto": "udp", "trans_id": tid}
            rec.update(e["truth_tc"] if e["mode"] == "tc" else e["truth"])
            self.cap.truth.append(rec)
            if e["mode"] == "udp":
                return t
            t += rng.randrange(100_000, 2_000_000)
        q, r = e["full"]
        tid = rng.getrandbits(16)
        tb = struct.pack("!H", tid)
        q = struct.pack("!H", len(q)) + tb + q[2:]
        r = struct.pack("!H", len(r)) + tb + r[2:]
        flow = (self.hosts.again(udp_flow, "tcp") if udp_flow is not None
                else self.hosts.flow("tcp", "dns", 53, v6, "dns"))
        t = self.add_tcp(flow, [(0, q, 0), (1, r, rng.randrange(100_000, 5_000_000))], t,
                         pick_teardown(rng, 0))
        rec = {"table": "dns", **flow.ids(), "proto": "tcp", "trans_id": tid}
        rec.update(e["truth"])
        self.cap.truth.append(rec)
        return t

    def _app(self, kind: str, module, port: int, t0: int) -> int:
        rng = self.rng
        idx, (turns, records, closer, skippable) = self.pooled(kind, lambda: module.session(rng, self.small))
        self.sessions[kind] += 1
        flow = self.hosts.flow("tcp", kind, port, self.v6(), kind)
        t = self.add_tcp(flow, turns, t0, pick_teardown(rng, closer), key=(kind, idx),
                         skippable=skippable)
        ids = flow.ids()
        for rec in records:
            self.cap.truth.append({"table": kind, **ids, **rec})
        return t

    def http(self, t0: int) -> int:
        return self._app("http", http, 80, t0)

    def smtp(self, t0: int) -> int:
        return self._app("smtp", smtp, 25, t0)

    def icmp(self, t0: int) -> int:
        """One ping conversation: 1-3 echo request/reply pairs, 56 data bytes each."""
        rng, cap = self.rng, self.cap
        v6 = self.v6()
        flow = self.hosts.flow("icmp", "icmp", 0, v6)
        flow.port = (128, 129) if v6 else (8, 0)
        fid = cap.add_flow(flow)
        self.sessions["icmp"] += 1
        ident = rng.getrandbits(16)
        req, rep = (128, 129) if v6 else (8, 0)
        t = t0
        for seq in range(1, rng.randint(1, 3) + 1):
            # Like Linux ping: a struct timeval, then bytes 0x10..0x3f.
            stamp = struct.pack("!II", (t // 10**9) & 0xFFFFFFFF, (t // 1000) % 10**6)
            data = stamp + bytes(range(0x10, 0x40))
            off = cap.store(data)
            cap.packets.append((t, fid, 0, K_ICMP, req, seq, ident, off, len(data)))
            rtt = rng.randrange(1_000_000, 40_000_000)
            cap.packets.append((t + rtt, fid, 1, K_ICMP, rep, seq, ident, off, len(data)))
            t += 1_000_000_000
        return t - 1_000_000_000 + rtt


def run(builder: Builder, scenario: str, count: int, start_ns: int) -> None:
    """Append ``count`` conversations of ``scenario`` starting at ``start_ns``."""
    rng = builder.rng
    t = start_ns
    kinds = [k for k, _ in _MIXED]
    weights = [w for _, w in _MIXED]
    icmp_at = set()
    if scenario == "mixed":
        n_icmp = max(1, count // 100)
        icmp_at = set(rng.sample(range(count), min(count, n_icmp)))
    for i in range(count):
        if scenario == "mixed":
            kind = "icmp" if i in icmp_at else rng.choices(kinds, weights)[0]
        else:
            kind = scenario
        getattr(builder, kind)(t)
        t += rng.randrange(200_000, 15_000_000)
