"""Ground truth: Zeek conn.log records derived from the packets, and the JSON-lines file.

Every line of a truth file is one JSON object with a ``table`` key
(``packets``, ``conn``, ``dns``, ``http``, ``smtp``) and Zeek's field names and
value conventions (``id.orig_h`` …; booleans as JSON booleans; sets and
vectors as lists; times and intervals as float seconds; unset fields left out,
as in Zeek's JSON logs).  The first line, ``packets``, describes the file:
``frames``, ``link_type``, ``snaplen``, ``malformed`` (1-based numbers of the
damaged copies) and ``malformed_detail``, ``fragmented`` (packets split),
``cut`` (``[orig_h, orig_p, resp_h, resp_p, proto]`` of each connection with a
packet the snaplen shortens: their application records are what the
generator sent, not what Zeek can log from the cut content), ``scenario``,
``seed``, ``count``.

``conn`` follows Zeek: packet counts include duplicates and exclude lost
segments, and an IP-fragmented packet counts once (Zeek reassembles first);
``orig_bytes``/``resp_bytes`` are the payload bytes (TCP: sequence space used
by data, so a lost segment still counts and shows in ``missed_bytes``);
``history`` is given only for flows no reorder/duplicate/loss touched, using
Zeek's letters (S h A D a d F f R r) in order of first occurrence.
With a snaplen, a TCP segment cut short is a content gap (Zeek's
``TCP_Endpoint::DataSent`` delivers nothing of a segment with caplen < len:
``truncated_tcp_payload``), so its payload counts in ``missed_bytes``; an ICMP
packet cut short is not counted in the packet and IP byte counts (the
ConnSize analyzer only sees whole ICMP packets); ``service`` and ``history``
are left out for flows with a cut packet (what the analyzer makes of the cut
content is not modelled).
``duration`` ends, for TCP, at the last packet seen before both endpoints
have closed (sent FIN or RST): Zeek's TCP analyzer stops updating the
connection's last time once both endpoints ``did_close``
(``TCPSessionAdapter::DeliverPacket``), so the ACK of the second FIN does not count.
"""

from __future__ import annotations

import json

import numpy as np

from .model import ACK, FIN, K_ICMP, K_TCP, RST, SYN

_L4_HDR = np.array([20, 28, 8, 8], np.int64)     # by kind: TCP, TCP SYN (options), UDP, ICMP


def _history(flags: np.ndarray, dirs: np.ndarray, lens: np.ndarray) -> str:
    seen = set()
    out = []
    for f, d, n in zip(flags.tolist(), dirs.tolist(), lens.tolist()):
        bits = (f & SYN != 0) + (f & FIN != 0) + (f & RST != 0)
        letters = []
        if bits > 1:
            letters.append("I" if f & FIN and f & RST else "Q")
        elif bits == 1:
            if f & SYN:
                letters.append("H" if f & ACK else "S")
            if f & FIN:
                letters.append("F")
            if f & RST:
                letters.append("R")
        elif n:
            letters.append("D")
        elif f & ACK:
            letters.append("A")
        for c in letters:
            c = c if d == 0 else c.lower()
            if c not in seen:
                seen.add(c)
                out.append(c)
    return "".join(out)


def _tcp_last_time(ts: np.ndarray, dirs: np.ndarray, flags: np.ndarray) -> int:
    """Time of the last packet that arrives before both endpoints have sent a FIN or RST."""
    closed = [False, False]
    last = int(ts[0])
    for t, d, f in zip(ts.tolist(), dirs.tolist(), flags.tolist()):
        if closed[0] and closed[1]:
            break
        last = t
        if f & (FIN | RST):
            closed[d] = True
    return last


def conn_records(flows, packets: np.ndarray, digits: int = 6, cut: np.ndarray | None = None,
                 cut_exact: bool = True) -> list[dict]:
    """One conn record per flow, in order of first packet.

    ``packets`` is the final ``int64[n, 9]`` packet table (time order, after
    loss/duplication/reordering, before fragmentation and malformed copies).
    ``cut``: ``bool[n]``, packets the snaplen shortens (or one of whose
    fragments it shortens); ``cut_exact``: no fragmentation was involved, so
    Zeek's view of those packets is known (see the module docstring).
    """
    nf = len(flows)
    if nf == 0:
        return []
    ts, flow, d, kind, flags, ln = (packets[:, 0], packets[:, 1], packets[:, 2], packets[:, 3],
                                    packets[:, 4], packets[:, 8])
    v6 = np.fromiter((f.v6 for f in flows), np.int64, nf)
    ipb = np.where(v6[flow] == 1, 40, 20) + _L4_HDR[kind] + ln
    g = flow * 2 + d
    if cut is None:
        cut = np.zeros(len(ts), bool)
    # Zeek's ConnSize analyzer counts an ICMP packet only when it is captured whole.
    counted = ~(cut & (kind == K_ICMP))
    pkts = np.bincount(g, weights=counted, minlength=2 * nf).reshape(nf, 2).astype(np.int64)
    ip_bytes = np.bincount(g, weights=ipb * counted, minlength=2 * nf).reshape(nf, 2).astype(np.int64)
    # A TCP segment whose payload is not all captured is not delivered at all: a content gap.
    cut_pay = np.bincount(flow, weights=ln * (cut & (kind == K_TCP)), minlength=nf).astype(np.int64)
    flow_cut = np.bincount(flow, weights=cut, minlength=nf) > 0
    pay = np.bincount(g, weights=ln, minlength=2 * nf).reshape(nf, 2).astype(np.int64)
    first = np.full(nf, np.iinfo(np.int64).max)
    np.minimum.at(first, flow, ts)
    last = np.zeros(nf, np.int64)
    np.maximum.at(last, flow, ts)
    order = np.argsort(flow, kind="stable")
    bounds = np.searchsorted(flow[order], np.arange(nf + 1))
    for i in range(nf):
        if flows[i].proto == "tcp":
            sel = order[bounds[i]:bounds[i + 1]]
            last[i] = _tcp_last_time(ts[sel], d[sel], flags[sel])
    recs = []
    for i in np.argsort(first, kind="stable").tolist():
        f = flows[i]
        unknown = set()
        if flow_cut[i]:
            # What the application analyzer makes of the cut content (service) and the
            # order of the gap letters (history) are not modelled; with fragments, Zeek's
            # reassembly of cut fragments is not either.
            unknown = {"service", "history"} | (set() if cut_exact else
                                                {"missed_bytes", "orig_pkts", "orig_ip_bytes",
                                                 "resp_pkts", "resp_ip_bytes"})
        rec = {"table": "conn", "ts": round(int(first[i]) / 1e9, digits)}
        rec.update(f.ids())
        rec["proto"] = f.proto
        if f.service:
            rec["service"] = f.service
        rec["duration"] = round(int(last[i] - first[i]) / 1e9, digits)
        if f.proto == "tcp":
            ob, rb = f.stream_len
            state = {"fin-orig": "SF", "fin-resp": "SF", "rst-orig": "RSTO",
                     "rst-resp": "RSTR"}[f.teardown]
        else:
            ob, rb = int(pay[i, 0]), int(pay[i, 1])
            state = "OTH" if f.proto == "icmp" else ("SF" if pkts[i, 1] else "S0")
        rec.update({"orig_bytes": ob, "resp_bytes": rb, "conn_state": state,
                    "missed_bytes": sum(f.missed) + int(cut_pay[i])})
        if f.proto == "udp":
            rec["history"] = "Dd" if pkts[i, 1] else "D"
        elif f.proto == "tcp" and not f.impaired:
            sel = order[bounds[i]:bounds[i + 1]]
            rec["history"] = _history(flags[sel], d[sel], ln[sel])
        rec.update({"orig_pkts": int(pkts[i, 0]), "orig_ip_bytes": int(ip_bytes[i, 0]),
                    "resp_pkts": int(pkts[i, 1]), "resp_ip_bytes": int(ip_bytes[i, 1])})
        recs.append({k: v for k, v in rec.items() if k not in unknown})
    return recs


def write_jsonl(path, records) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False))
            fh.write("\n")


def read_jsonl(path) -> list[dict]:
    """The records of a truth file (helper for tests and comparisons)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
