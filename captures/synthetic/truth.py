"""Ground truth: Zeek conn.log records derived from the packets, and the JSON-lines file.

Every line of a truth file is one JSON object with a ``table`` key
(``packets``, ``conn``, ``dns``, ``http``, ``smtp``) and Zeek's field names and
value conventions (``id.orig_h`` …; booleans as JSON booleans; sets and
vectors as lists; times and intervals as float seconds; unset fields left out,
as in Zeek's JSON logs).

``conn`` follows Zeek: packet counts include duplicates and exclude lost
segments, and an IP-fragmented packet counts once (Zeek reassembles first);
``orig_bytes``/``resp_bytes`` are the payload bytes (TCP: sequence space used
by data, so a lost segment still counts and shows in ``missed_bytes``);
``history`` is given only for flows no reorder/duplicate/loss touched, using
Zeek's letters (S h A D a d F f R r) in order of first occurrence.
"""

from __future__ import annotations

import json

import numpy as np

from .model import ACK, FIN, RST, SYN

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


def conn_records(flows, packets: np.ndarray, digits: int = 6) -> list[dict]:
    """One conn record per flow, in order of first packet.

    ``packets`` is the final ``int64[n, 9]`` packet table (time order, after
    loss/duplication/reordering, before fragmentation and malformed copies).
    """
    nf = len(flows)
    if nf == 0:
        return []
    ts, flow, d, kind, flags, ln = (packets[:, 0], packets[:, 1], packets[:, 2], packets[:, 3],
                                    packets[:, 4], packets[:, 8])
    v6 = np.fromiter((f.v6 for f in flows), np.int64, nf)
    ipb = np.where(v6[flow] == 1, 40, 20) + _L4_HDR[kind] + ln
    g = flow * 2 + d
    pkts = np.bincount(g, minlength=2 * nf).reshape(nf, 2)
    ip_bytes = np.bincount(g, weights=ipb, minlength=2 * nf).reshape(nf, 2).astype(np.int64)
    pay = np.bincount(g, weights=ln, minlength=2 * nf).reshape(nf, 2).astype(np.int64)
    first = np.full(nf, np.iinfo(np.int64).max)
    np.minimum.at(first, flow, ts)
    last = np.zeros(nf, np.int64)
    np.maximum.at(last, flow, ts)
    order = np.argsort(flow, kind="stable")
    bounds = np.searchsorted(flow[order], np.arange(nf + 1))
    recs = []
    for i in np.argsort(first, kind="stable").tolist():
        f = flows[i]
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
                    "missed_bytes": sum(f.missed)})
        if f.proto == "udp":
            rec["history"] = "Dd" if pkts[i, 1] else "D"
        elif f.proto == "tcp" and not f.impaired:
            sel = order[bounds[i]:bounds[i + 1]]
            rec["history"] = _history(flags[sel], d[sel], ln[sel])
        rec.update({"orig_pkts": int(pkts[i, 0]), "orig_ip_bytes": int(ip_bytes[i, 0]),
                    "resp_pkts": int(pkts[i, 1]), "resp_ip_bytes": int(ip_bytes[i, 1])})
        recs.append(rec)
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
