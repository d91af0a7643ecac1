#!/usr/bin/env python3
"""Conformance of netsift's ``dns`` frame with Zeek's dns.log, and of its DNS fields with tshark.

Usage::

    python bench/dns_conformance.py [--corpus DIR] [--files GLOB] [--top N] [--no-tshark]

Prints the figures of :mod:`analyzer.verify.dns` (the rules of the comparison
are there): every ``zeek/X.dns.log`` of the corpus against the ``dns`` frame of
``X.pcap`` run with the options of the Zeek run that made the log, the DNS
weirds of ``zeek/X.weird.log``, and the DNS fields of every ``X.tshark.tsv``
(``zeek/`` and ``malformed/``) against the ``dns_messages`` frame.

TCP streams and IP datagrams come from netsift's reassembly
(``analyzer.reassembly``); two small independent stand-ins here
(:func:`tcp_streams`, :func:`udp_fragments`, the latter with scapy) are used
with ``--via standin``, a cross-check of the reassembly.

The corpus directory is ``--corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus``.  Always exits 0: it reports, tests assert.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.dns import DNS, DnsStage  # noqa: E402
from analyzer.verify import dns as core  # noqa: E402
from analyzer.verify.corpus import corpus_dir  # noqa: E402
from analyzer.verify.dns import EXPLAINED, TSHARK_FIELDS, zeek_options  # noqa: E402
from captures import open_capture  # noqa: E402
from dissectors import dissect  # noqa: E402

#: Where TCP streams and IP datagrams come from: "reassembly" (netsift's) or "standin" (below).
VIA = "reassembly"


# ---------------------------------------------------------------------------- stand-ins

def tcp_streams(path):
    """The in-order TCP payload deliveries of a capture: ``(key, conn_id, is_orig, data, ts_ns, frame, closed)``.

    A stand-in for TCP reassembly: per connection and direction, bytes are
    delivered in sequence order (out-of-order segments wait, retransmitted
    bytes are dropped); the originator is the sender of the first SYN (else
    of the first packet).
    """
    conns: dict = {}
    out = []
    with open_capture(path) as reader:
        for batch in reader.batches():
            f = dissect(batch)
            v, ok = f.values, f.valid
            if "_tcp.seq" not in v:
                continue
            rows = np.flatnonzero(ok["_tcp.seq"] & ok["_payload.start"] & (v["_ip.proto"] == 6))
            for i in rows.tolist():
                version = int(v["_ip.version"][i])
                if version == 4:
                    src = ".".join(str(b) for b in int(v["_ip.src4"][i]).to_bytes(4, "big"))
                    dst = ".".join(str(b) for b in int(v["_ip.dst4"][i]).to_bytes(4, "big"))
                else:
                    import socket
                    src = socket.inet_ntop(socket.AF_INET6, bytes(v["_ip.src6"][i]))
                    dst = socket.inet_ntop(socket.AF_INET6, bytes(v["_ip.dst6"][i]))
                sp, dp = int(v["_l4.srcport"][i]), int(v["_l4.dstport"][i])
                seq, flags = int(v["_tcp.seq"][i]), int(v["_tcp.flags"][i])
                payload = batch.data[int(v["_payload.start"][i]):int(v["_payload.end"][i])].tobytes()
                ts, frame = int(batch.ts_ns[i]), i + batch.first_number
                key = frozenset(((src, sp), (dst, dp)))
                c = conns.get(key)
                if c is None:
                    syn, ack = flags & 0x02, flags & 0x10
                    orig = (dst, dp) if (syn and ack) else (src, sp)
                    resp = (src, sp) if orig == (dst, dp) else (dst, dp)
                    c = conns[key] = {"orig": orig, "resp": resp, "next": {}, "wait": {}, "fin": set()}
                is_orig = (src, sp) == c["orig"]
                if flags & 0x02:
                    c["next"][is_orig] = (seq + 1) & 0xFFFFFFFF
                nxt = c["next"].get(is_orig)
                if nxt is None:
                    nxt = c["next"][is_orig] = seq
                conn_id = (c["orig"][0], c["orig"][1], c["resp"][0], c["resp"][1])
                if payload:
                    c["wait"].setdefault(is_orig, {})[seq] = payload
                    waiting = c["wait"][is_orig]
                    progressed = True
                    while progressed:
                        progressed = False
                        for s in sorted(waiting):
                            data = waiting[s]
                            delta = (nxt - s) & 0xFFFFFFFF
                            if delta < len(data) or delta == 0:
                                del waiting[s]
                                fresh = data[delta:] if delta < 0x80000000 else b""
                                if fresh:
                                    out.append((key, conn_id, is_orig, fresh, ts, frame, False))
                                    nxt = (nxt + len(fresh)) & 0xFFFFFFFF
                                progressed = True
                                break
                            if delta < 0x80000000:
                                del waiting[s]     # wholly old: a retransmission
                                progressed = True
                                break
                    c["next"][is_orig] = nxt
                if flags & 0x05:
                    c["fin"].add(is_orig if flags & 0x01 else "rst")
                    if "rst" in c["fin"] or {True, False} <= c["fin"]:
                        out.append((key, conn_id, is_orig, b"", ts, frame, True))
                        c["fin"] = {"closed"}
    return out


def udp_fragments(path, ports=(53, 137, 5353, 5355)):
    """UDP datagrams completed from IP fragments: ``(src, sport, dst, dport, payload, ts_ns, frame)``.

    A stand-in for IP defragmentation (uses scapy): the datagram is delivered
    at the frame of its last fragment; incomplete ones are dropped.
    """
    from scapy.all import IP, UDP, IPv6, IPv6ExtHdrFragment, PcapReader, raw
    groups: dict = defaultdict(list)
    out = []
    with PcapReader(str(path)) as reader:
        for number, pkt in enumerate(reader, start=1):
            ts = int(round(float(pkt.time) * 1e9))
            if IPv6ExtHdrFragment in pkt:
                ip6, frag = pkt[IPv6], pkt[IPv6ExtHdrFragment]
                key = (ip6.src, ip6.dst, frag.id, 6)
                groups[key].append((frag.offset * 8, frag.m, raw(frag.payload), frag.nh))
                proto, src, dst = frag.nh, ip6.src, ip6.dst
            elif IP in pkt and (pkt[IP].flags.MF or pkt[IP].frag):
                ip = pkt[IP]
                key = (ip.src, ip.dst, ip.id, 4)
                payload = raw(ip.payload)[:max(0, ip.len - ip.ihl * 4)]
                groups[key].append((ip.frag * 8, int(ip.flags.MF), payload, ip.proto))
                proto, src, dst = ip.proto, ip.src, ip.dst
            else:
                continue
            parts = sorted(groups[key], key=lambda p: p[0])
            if parts[-1][1] or parts[0][0] != 0:
                continue
            buf, expect = b"", 0
            for offset, _, data, _ in parts:
                if offset > expect:
                    break
                buf = buf[:offset] + data
                expect = len(buf)
            else:
                if proto == 17 and len(buf) >= 8:
                    udp = UDP(buf)
                    if udp.sport in ports or udp.dport in ports:
                        out.append((src, udp.sport, dst, udp.dport, bytes(udp.payload), ts, number))
                del groups[key]
    return out


def run_capture(path, via: str | None = None, **options) -> dict:
    """The DNS frames of one capture, through netsift's reassembly (:func:`analyzer.verify.dns.run_capture`)
    or, with ``via="standin"``, through :func:`tcp_streams` and :func:`udp_fragments`."""
    via = via or VIA
    if via == "reassembly":
        return core.run_capture(path, **options)
    stage = DnsStage(weird_table=True, **options)
    extra = {"tcp": 0, "fragments": 0, "via": via}
    with open_capture(path) as reader:
        for batch in reader.batches():
            stage.feed(batch, dissect(batch))
    for key, conn_id, is_orig, data, ts, frame, closed in tcp_streams(path):
        if closed:
            stage.close_stream(key, ts, frame)
        elif conn_id[1] == 53 or conn_id[3] == 53:
            stage.feed_stream(key, is_orig, data, ts, frame, conn_id=conn_id)
            extra["tcp"] += 1
    for src, sport, dst, dport, payload, ts, frame in udp_fragments(path):
        stage.feed_datagram(src, sport, dst, dport, payload, ts, frame)
        extra["fragments"] += 1
    tables = stage.finish()
    tables["_extra"] = extra
    return tables


# ---------------------------------------------------------------------------- report

def pct(a: int, t: int) -> str:
    return f"{100.0 * a / t:6.2f} %" if t else "     - "


def shorten(value, width=70) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def zeek_report(corpus: Path, pattern: str, top: int) -> dict:
    """Print and return the dns.log figures (``agree``, ``total``, ``missing``, ``extra``, ``per_column``)."""
    options = zeek_options(corpus)
    agree, total = Counter(), Counter()
    per_file, mismatch_all = [], []
    rows_matched = rows_missing = rows_extra = 0
    for capture, log in core.zeek_logs(corpus, pattern):
        got = core.compare_dns_log(capture, log, options.get(f"zeek/{capture.name}", {}), run=run_capture)
        agree.update(got.agree)
        total.update(got.total)
        rows_matched += got.matched
        rows_missing += len(got.missing)
        rows_extra += len(got.extra)
        per_file.append((capture.name, got.via, sum(got.agree.values()), sum(got.total.values()), got.matched,
                         len(got.missing), len(got.extra), got.options))
        mismatch_all += [(capture.name,) + m for m in got.mismatches]
        for key in got.missing:
            mismatch_all.append((capture.name, "<row>", "missing", "present in Zeek", key))
        for key in got.extra:
            mismatch_all.append((capture.name, "<row>", "extra", "absent in Zeek", key))
    print("== Zeek dns.log ==")
    print(f"{'capture':36} {'via':9} {'cells':>13} {'agree':>9}  rows matched/missing/extra  options")
    for name, kind, a, t, matched, missing, extra, opts in per_file:
        print(f"{name:36} {kind:9} {a:6}/{t:<6} {pct(a, t)}  {matched:4}/{missing}/{extra}   "
              f"{ {k: v for k, v in opts.items() if v} }")
    print("\nper column:")
    for column in [c.name for c in DNS if c.name in total]:
        print(f"  {column:16} {agree[column]:5}/{total[column]:<5} {pct(agree[column], total[column])}")
    overall_a, overall_t = sum(agree.values()), sum(total.values())
    print(f"\noverall {overall_a}/{overall_t} cells = {pct(overall_a, overall_t)};  rows matched {rows_matched}, "
          f"missing {rows_missing}, extra {rows_extra}")
    for via in ("udp", "tcp", "fragments"):
        sel = [p for p in per_file if p[1] == via]
        if sel:
            a = sum(p[2] for p in sel)
            t = sum(p[3] for p in sel)
            print(f"  via {via:9}: {a}/{t} = {pct(a, t)}")
    if mismatch_all:
        print(f"\ntop mismatches (of {len(mismatch_all)}):")
        for item in mismatch_all[:top]:
            print("  " + " | ".join(shorten(x) for x in item))
    return {"agree": overall_a, "total": overall_t, "missing": rows_missing, "extra": rows_extra,
            "per_column": {c: (agree[c], total[c]) for c in total}}


def weird_report(corpus: Path, pattern: str) -> dict:
    """Print and return the DNS weird figures (``matched``, ``total``, ``extra``)."""
    got = core.weird_figures(corpus, pattern, run=run_capture)
    print(f"\n== Zeek weird.log (DNS weirds) ==\nmatched {got['matched']}/{got['total']}, extra {got['extra']}")
    for line in got["lines"][:20]:
        print(line)
    return {"matched": got["matched"], "total": got["total"], "extra": got["extra"]}


def tshark_report(corpus: Path, pattern: str, top: int) -> dict:
    """Print and return the tshark figures (``agree``, ``total``, ``explained``, ``unexplained``, ``per_field``)."""
    got = core.tshark_figures(corpus, pattern, run=run_capture)
    agree, total, explained = got["agree"], got["total"], got["explained"]
    mismatch_all, per_file = got["mismatches"], got["per_file"]
    for name, error in got["unread"]:
        print(f"  {name}: not read ({error})")
    print("\n== tshark DNS fields (per frame) ==")
    for name, a, t in per_file:
        if a != t:
            print(f"  {name:44} {a:5}/{t:<5} {pct(a, t)}")
    print(f"  ({sum(1 for p in per_file if p[1] == p[2])} other captures agree fully)")
    print("per field:")
    for name in TSHARK_FIELDS:
        print(f"  {name:20} {agree[name]:5}/{total[name]:<5} {pct(agree[name], total[name])}")
    overall_a, overall_t = sum(agree.values()), sum(total.values())
    print(f"overall {overall_a}/{overall_t} = {pct(overall_a, overall_t)}")
    for reason, count in explained.items():
        print(f"  explained, {reason}: {count} cells: {EXPLAINED[reason]}")
    e = sum(explained.values())
    print(f"overall with explained differences counted apart: {overall_a}/{overall_t - e} = "
          f"{pct(overall_a, overall_t - e)};  unexplained cells: {len(mismatch_all)}")
    if mismatch_all:
        print(f"top unexplained mismatches (of {len(mismatch_all)}):")
        for item in mismatch_all[:top]:
            print("  " + " | ".join(shorten(x) for x in item))
    return {"agree": overall_a, "total": overall_t, "explained": dict(explained), "unexplained": len(mismatch_all),
            "per_field": {k: (agree[k], total[k]) for k in total}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus")
    parser.add_argument("--files", default="*")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--via", choices=("reassembly", "standin"), default=None,
                        help="TCP streams and IP datagrams from netsift's reassembly (default) or the stand-ins")
    args = parser.parse_args(argv)
    global VIA
    VIA = args.via or VIA
    print(f"TCP streams and IP fragments: {VIA}")
    corpus = corpus_dir(args.corpus)
    if not (corpus / "zeek").is_dir():
        print(f"corpus not found at {corpus}")
        return 0
    zeek_report(corpus, args.files, args.top)
    weird_report(corpus, args.files)
    if not args.no_tshark:
        tshark_report(corpus, args.files, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
