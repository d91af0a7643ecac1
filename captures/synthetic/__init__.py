"""Synthetic, deterministic traffic with ground truth: DNS, HTTP, SMTP (and ICMP in ``mixed``).

Example::

    from captures.synthetic import generate
    s = generate("mixed", "out.pcap", seed=1, count=12, truth_path="out.truth.jsonl")

Conversations are complete: TCP handshakes with consistent seq/ack, data,
ACKs and FIN or RST teardowns; UDP request/response.  One
``random.Random(seed)`` draws the content and timing (a second one, derived
from the seed, draws segment sizes and impairments), timestamps start at
2024-01-01T00:00:00Z, so the same arguments give a byte-identical file.
The file is written with :mod:`captures.writer`; the truth file (JSON lines,
Zeek field names: ``conn``, ``dns``, ``http``, ``smtp`` and a ``packets``
summary) is described in :mod:`captures.synthetic.truth`.

Impairments: ``segment`` (``"mss"``, ``"random"``, ``"every-byte"``; with
every-byte the HTTP/SMTP content is drawn smaller so that captures stay a
few thousand packets); ``reorder``/``duplicate``/``loss`` probabilities per
TCP packet (UDP and ICMP are left alone so the DNS truth stays exact;
reordering swaps data segments going the same way; loss drops data
segments without retransmission: a real gap, reported as ``missed_bytes``,
but only segments inside content the application logs do not depend on, so
that the truth stays exact: an HTTP body framed by Content-Length without
content coding, after its first byte (Zeek skips such a gap and counts it in
the body length), and the TLS bytes after SMTP STARTTLS; DNS messages, HTTP
headers, chunked or compressed bodies and the SMTP dialogue are never lost);
``fragment`` = MTU for IPv4 fragmentation (8-byte multiples, MF/offset) and
IPv6 Fragment headers, done on the rendered bytes (scapy's ``defragment`` /
``defragment6`` reassemble them, see the tests); ``vlan`` tags (one: 802.1Q;
several: outer 802.1ad, 0x88a8); ``ipv6`` for all conversations over IPv6
(``mixed`` otherwise puts a quarter on IPv6); ``snaplen`` (the writer's);
``malformed`` probability per frame of inserting a damaged copy right after
it (cut inside the IP or transport header, or a bad IP length, chosen so
that tshark flags exactly those frames; their numbers are in the truth, and
the other truth records are unaffected: Zeek drops such packets).

Known tshark (4.0) reports on valid files: with ``loss`` the missing bytes
can make its HTTP parser fail after a gap; with ``every-byte`` it raises on
chunked bodies whose final CRLF arrives alone; with ``reorder`` use
``-o tcp.reassemble_out_of_order:TRUE``.

Speed: scapy builds one template per packet shape; a numba kernel patches
them (addresses, ports, seq/ack, lengths, checksums) for all packets at
once, and sessions are reused from a pool after the first 256 of each kind.
A million packets take about 10 s (``bench/generate_speed.py``).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import numpy as np

from ..batch import PacketBatch
from ..writer import write_pcap, write_pcapng
from .impair import fragment_frame, malform_frame
from .model import BASE_TS_NS, PKT_FIELDS
from .render import render
from .scenarios import SCENARIOS, Builder, run
from .tcp import SEGMENT_MODES
from .truth import conn_records, read_jsonl, write_jsonl

__all__ = ["IMPAIRMENTS", "SCENARIOS", "SEGMENT_MODES", "GenerationSummary", "generate", "read_jsonl"]

#: One setting of each impairment, by name: the keyword arguments of
#: :func:`generate` that the tests run every scenario with.
IMPAIRMENTS = {
    "plain": {},
    "random-seg": {"segment": "random"},
    "every-byte": {"segment": "every-byte"},
    "reorder": {"reorder": 0.3},
    "duplicate": {"duplicate": 0.3},
    "loss": {"loss": 0.2},
    "fragment": {"fragment": 576},
    "vlan": {"vlan": (10,)},
    "qinq": {"vlan": (10, 20)},
    "ipv6": {"ipv6": True},
    "snaplen": {"snaplen": 96},
    "malformed": {"malformed": 0.1},
    "nanosecond": {"nanosecond": True},
    "pcapng": {"pcapng": True},
}


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote.

    Attributes:
        path: the capture file.
        packets: frames written (fragments and malformed copies included).
        conversations: connections (conn records); a truncated DNS answer
            retried over TCP is two.
        protocols: connections per service (``dns``, ``http``, ``smtp``, ``icmp``).
        sessions: conversations asked for per kind (``count`` split by kind).
        packets_by_protocol: frames per service before fragmentation and malformed copies.
        records: truth records per table.
        malformed: 1-based frame numbers of the malformed copies.
        truth_path: the truth file, if one was written.
        seconds: wall time of the call.
    """

    path: str
    packets: int
    conversations: int
    protocols: dict = field(default_factory=dict)
    sessions: dict = field(default_factory=dict)
    packets_by_protocol: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)
    malformed: list = field(default_factory=list)
    truth_path: str | None = None
    seconds: float = 0.0


def _rebuild(data: np.ndarray, off: np.ndarray, length: np.ndarray, ts: np.ndarray,
             mods: dict[int, list[bytes]]):
    """Frames with frame ``i`` replaced by ``mods[i]`` (a list of frames, same time)."""
    if not mods:
        return data, off, length, ts
    parts, lens, tss = [], [], []
    prev = 0
    n = len(off)
    for i in sorted(mods):
        if i > prev:
            parts.append(data[off[prev]:off[i - 1] + length[i - 1]].tobytes())
            lens.append(length[prev:i])
            tss.append(ts[prev:i])
        new = mods[i]
        parts.extend(new)
        lens.append(np.fromiter((len(x) for x in new), np.int64, len(new)))
        tss.append(np.full(len(new), ts[i], np.int64))
        prev = i + 1
    if prev < n:
        parts.append(data[off[prev]:].tobytes())
        lens.append(length[prev:])
        tss.append(ts[prev:])
    new_data = np.frombuffer(b"".join(parts), np.uint8)
    new_len = np.concatenate(lens)
    new_off = np.zeros(len(new_len), np.int64)
    new_off[1:] = np.cumsum(new_len)[:-1]
    return new_data, new_off, new_len, np.concatenate(tss)


def generate(scenario: str, path, seed: int = 1, count: int = 10, truth_path=None, *,
             segment: str = "mss", reorder: float = 0.0, duplicate: float = 0.0,
             loss: float = 0.0, fragment: int | None = None, vlan: tuple[int, ...] = (),
             ipv6: bool = False, snaplen: int | None = None, malformed: float = 0.0,
             nanosecond: bool = False, pcapng: bool = False) -> GenerationSummary:
    """Write a synthetic capture of ``count`` conversations of ``scenario``.

    Args:
        scenario: ``"dns"``, ``"http"``, ``"smtp"`` or ``"mixed"``.
        path: output file (pcap, or pcapng with ``pcapng=True``; ``.gz`` compresses).
        seed: everything is derived from it.
        count: conversations (sessions) to generate.
        truth_path: where to write the ground truth (JSON lines), if anywhere.
        segment, reorder, duplicate, loss, fragment, vlan, ipv6, snaplen,
        malformed: impairments, see the module docstring.
        nanosecond: ns timestamps (otherwise µs; the generated times are
            then whole µs, so the truth matches the file exactly).
        pcapng: write pcapng instead of classic pcap.
    """
    started = time.perf_counter()
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if segment not in SEGMENT_MODES:
        raise ValueError(f"unknown segment mode {segment!r}; choose from {', '.join(SEGMENT_MODES)}")
    for name, p in (("reorder", reorder), ("duplicate", duplicate), ("loss", loss),
                    ("malformed", malformed)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability, not {p}")
    if fragment is not None and not 68 <= fragment <= 65535:
        raise ValueError(f"fragment MTU {fragment} must be from 68 to 65535")
    vlan = tuple(int(v) for v in vlan)
    if any(not 0 <= v < 4096 for v in vlan):
        raise ValueError(f"VLAN IDs must be from 0 to 4095: {vlan}")
    if count < 0:
        raise ValueError("count must be >= 0")

    rng = random.Random(seed)
    imp_rng = random.Random(f"netsift-impair-{seed}")
    gen = np.random.default_rng(rng.getrandbits(64))
    b = Builder(rng, imp_rng, segment=segment, reorder=reorder, duplicate=duplicate,
                loss=loss, ipv6=ipv6, v6_share=0.25 if scenario == "mixed" else 0.0)
    run(b, scenario, count, BASE_TS_NS + 1_000_000 + rng.randrange(1_000_000))
    cap = b.cap
    flows = cap.flows

    pk = np.array(cap.packets, np.int64).reshape(-1, len(PKT_FIELDS))
    cap.packets = []
    if not nanosecond:
        pk[:, 0] -= pk[:, 0] % 1000
    pk = pk[np.argsort(pk[:, 0], kind="stable")]
    ipid_seed = gen.integers(0, 65536, 2 * len(flows), dtype=np.int64)
    data, off, length, l3 = render(pk, cap.arena, flows, vlan, ipid_seed)
    ts = pk[:, 0].copy()
    # Packets the snaplen cuts (with fragmentation: whose largest fragment it cuts).
    cut = None
    if snaplen:
        cut = length > snaplen
        if fragment:
            cut = np.minimum(length, l3 + fragment) > snaplen

    services = [f.service or f.proto for f in flows]
    svc_of_pkt = np.array([services[i] for i in range(len(flows))], dtype=object)
    by_proto = {}
    if len(pk):
        counts = np.bincount(pk[:, 1], minlength=len(flows))
        for s in sorted(set(services)):
            by_proto[s] = int(counts[svc_of_pkt == s].sum())

    if fragment:
        big = np.nonzero(length - l3 > fragment)[0]
        mods = {}
        ident = int(gen.integers(1, 2**31))
        for i in big.tolist():
            frame = data[off[i]:off[i] + length[i]].tobytes()
            mods[i] = fragment_frame(frame, l3, fragment, ident)
            ident = (ident + 1) & 0xFFFFFFFF
        data, off, length, ts = _rebuild(data, off, length, ts, mods)

    bad_frames, bad_detail = [], []
    if malformed > 0 and len(off):
        pick = np.nonzero(gen.random(len(off)) < malformed)[0].tolist()
        mods = {}
        for k, i in enumerate(pick):
            frame = data[off[i]:off[i] + length[i]].tobytes()
            copy, kind = malform_frame(frame, l3, imp_rng)
            mods[i] = [frame, copy]
            # Frame i moves down by the k copies inserted before it; its copy follows it.
            bad_frames.append(i + k + 2)
            bad_detail.append({"frame": i + k + 2, "copy_of": i + k + 1, "kind": kind})
        data, off, length, ts = _rebuild(data, off, length, ts, mods)

    n = len(off)
    batch = PacketBatch(data=data, offset=off, cap_len=length, wire_len=length.copy(), ts_ns=ts,
                        link_type=np.ones(n, np.int32), interface_id=np.zeros(n, np.int32))
    writer = write_pcapng if pcapng else write_pcap
    writer(path, batch, link_type=1, snaplen=snaplen or 262144, nanosecond=nanosecond)

    conns = conn_records(flows, pk, 9 if nanosecond else 6, cut, cut_exact=not fragment)
    records = {"conn": len(conns)}
    for r in cap.truth:
        records[r["table"]] = records.get(r["table"], 0) + 1
    if truth_path is not None:
        cut_flows = sorted(set(pk[cut, 1].tolist())) if cut is not None else []
        head = {"table": "packets", "frames": n, "link_type": 1,
                "snaplen": snaplen or 262144, "malformed": bad_frames,
                "malformed_detail": bad_detail,
                "cut": [[*flows[i].ids().values(), flows[i].proto] for i in cut_flows],
                "fragmented": int(len(big)) if fragment else 0,
                "scenario": scenario, "seed": seed, "count": count}
        write_jsonl(truth_path, [head] + conns + cap.truth)

    protocols = {}
    for s in services:
        protocols[s] = protocols.get(s, 0) + 1
    return GenerationSummary(
        path=os.fspath(path), packets=n, conversations=len(flows), protocols=protocols,
        sessions={k: v for k, v in b.sessions.items() if v}, packets_by_protocol=by_proto,
        records=records, malformed=bad_frames,
        truth_path=None if truth_path is None else os.fspath(truth_path),
        seconds=time.perf_counter() - started)

