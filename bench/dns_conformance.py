#!/usr/bin/env python3
"""Conformance of netsift's ``dns`` frame with Zeek's dns.log, and of its DNS fields with tshark.

Usage::

    python bench/dns_conformance.py [--corpus DIR] [--files GLOB] [--top N] [--no-tshark]

**Zeek.** For every ``zeek/X.dns.log`` of the corpus, the capture ``X.pcap`` (or
``.pcapng``) is run through ``captures.open_capture(...).batches()``,
``dissectors.dissect`` and :class:`analyzer.dns.DnsStage`, with the options of
the Zeek run that made the log (``ORACLES.tsv``: ``-C`` is
``ignore_checksums``, ``dns_max_queries=N``, ``dns_max_compression_chain_depth=N``).
Rows are matched on (id.orig_h, id.orig_p, id.resp_h, id.resp_p, trans_id,
query); within a key, each Zeek row takes the netsift row that agrees with it
best.  Only the columns the log has are compared, as text in Zeek's ASCII
format (``analyzer.zeek_log.format_value``); ``ts`` is skipped where the
canonifier masked it; ``set[string]`` columns compare as sets.  A missing or
extra row counts as a mismatch in every compared column.

**tshark.** For every ``X.tshark.tsv`` with DNS frames (``zeek/`` and
``malformed/``), the ``dns_messages`` frame is compared per frame on
``dns.id``, ``dns.flags.response``, ``dns.qry.name``, ``dns.qry.type``,
``dns.flags.rcode``, ``dns.count.answers``, ``dns.a``, ``dns.aaaa``,
``dns.cname`` (lists in order; names case-insensitively, ``<Root>`` as the
empty name).

TCP streams and IP datagrams come from netsift's reassembly
(``analyzer.reassembly``), wired as the pipeline should wire them; two small
stand-ins here (:func:`tcp_streams`, :func:`udp_fragments`) are used with
``--via standin`` (or when the reassembly is not importable).  Captures whose
DNS needs them are reported separately.

The corpus directory is ``--corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus``.  Always exits 0: it reports, tests assert.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.dns import DNS, DnsStage
from analyzer.zeek_log import format_value
from captures import open_capture
from dissectors import dissect

KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_id", "query")
TSHARK_FIELDS = ("dns.id", "dns.flags.response", "dns.qry.name", "dns.qry.type", "dns.flags.rcode",
                 "dns.count.answers", "dns.a", "dns.aaaa", "dns.cname")
ZEEK_TYPES = {c.name: c.zeek_type for c in DNS if c.zeek_type}
MASK = "XXXXXXXXXX.XXXXXX"

# Differences that are understood (see the module docstring of tests/test_dns.py and the report).
EXPLAINED = {
    "icmp-quoted": "tshark decodes the DNS message quoted inside an ICMP error; Zeek (and netsift) do not "
                   "take a quoted datagram for a DNS message",
    "zeek-stop": "Zeek stops walking a message at an anomaly tshark walks past (an RR with RDLENGTH 0 "
                 "before the end, QDCOUNT above dns_max_queries, ...): the records after it are not "
                 "parsed (netsift follows Zeek; the message's `parsed` column is false)",
}


def corpus_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("NETSIFT_CORPUS"):
        return Path(os.environ["NETSIFT_CORPUS"])
    return REPO.parent / "shared" / "corpus"


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


def run_capture(path, via: str | None = None, **options) -> dict[str, pd.DataFrame]:
    """The DNS frames of one capture.

    ``via``: ``"reassembly"`` (default when importable) takes TCP streams and
    IP datagrams from netsift's own :class:`analyzer.reassembly.TcpReassembly`
    and :class:`~analyzer.reassembly.FragmentReassembler`, wired as the pipeline
    should wire them (datagrams given to the stage with their frame numbers);
    ``"standin"`` uses :func:`tcp_streams` and :func:`udp_fragments` here.
    """
    via = via or VIA
    stage = DnsStage(weird_table=True, **options)
    extra = {"tcp": 0, "fragments": 0, "via": via}
    if via == "reassembly":
        from analyzer.reassembly import FragmentReassembler, TcpReassembly
        fragments, streams = FragmentReassembler(), TcpReassembly()
        with open_capture(path) as reader:
            for batch in reader.batches():
                fields = dissect(batch)
                stage.feed(batch, fields)
                nested = []
                datagrams, numbers = fragments.feed(batch, fields)
                for _ in range(4):
                    if not len(datagrams):
                        break
                    inner = dissect(datagrams)
                    before = stage.message_count
                    stage.feed(datagrams, inner, frame_numbers=numbers)
                    extra["fragments"] += stage.message_count - before
                    nested.append((datagrams, inner, None, numbers))
                    datagrams, numbers = fragments.feed(datagrams, inner, frame_numbers=numbers)
                for delivery in streams.feed(batch, fields, more=nested):
                    extra["tcp"] += delivery.key.resp_p == 53 and bool(delivery.chunk.data)
                    stage.feed_stream(delivery)
        for delivery in streams.flush():
            stage.feed_stream(delivery)
    else:
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


try:
    import analyzer.reassembly  # noqa: F401
    VIA = "reassembly"
except ImportError:
    VIA = "standin"


# ---------------------------------------------------------------------------- Zeek

def read_zeek_log(path: Path) -> pd.DataFrame:
    """A Zeek ASCII log or a zeek-cut ``-m`` output as a frame of text (``-`` kept as text)."""
    fields, rows = None, []
    with open(path, encoding="utf-8") as source:
        for line in source:
            line = line.rstrip("\n")
            if line.startswith("### "):
                continue
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line.startswith("#"):
                continue
            elif fields is None:
                fields = line.split("\t")
            elif line:
                rows.append(line.split("\t"))
    return pd.DataFrame(rows, columns=fields, dtype=object)


def zeek_options(corpus: Path) -> dict[str, dict]:
    options = {}
    with open(corpus / "ORACLES.tsv", encoding="utf-8") as source:
        for row in csv.DictReader(source, delimiter="\t"):
            command = row["zeek_command"]
            opts = {"ignore_checksums": bool(re.search(r"(^|\s)-[a-zA-Z]*C", command))}
            m = re.search(r"dns_max_queries=(\d+)", command)
            if m:
                opts["max_queries"] = int(m.group(1))
            m = re.search(r"dns_max_compression_chain_depth=(\d+)", command)
            if m:
                opts["max_compression_depth"] = int(m.group(1))
            options[row["capture"]] = opts
    return options


def as_text(frame: pd.DataFrame, columns) -> pd.DataFrame:
    out = {}
    for name in columns:
        zt = ZEEK_TYPES.get(name)
        values = frame[name].tolist() if name in frame else [None] * len(frame)
        out[name] = [format_value(v, zt) if zt else ("-" if v is None or v is pd.NA else str(v)) for v in values]
    return pd.DataFrame(out, dtype=object)


def cell_equal(name: str, ours: str, theirs: str) -> bool:
    if name == "ts" and theirs == MASK:
        return True
    zt = ZEEK_TYPES.get(name, "")
    if zt.startswith("set["):
        return set(ours.split(",")) == set(theirs.split(","))
    return ours == theirs


def compare_zeek(ours: pd.DataFrame, zeek: pd.DataFrame):
    """Per-column agree counts, totals, matched/missing/extra rows and mismatch examples."""
    columns = [c for c in zeek.columns if c in ZEEK_TYPES and c != "uid"]
    mine = as_text(ours, columns)
    groups = defaultdict(list)
    for i, row in mine.iterrows():
        groups[tuple(row[k] for k in KEY)].append(i)
    agree, total = Counter(), Counter()
    mismatches, missing, used = [], [], set()
    for _, zrow in zeek.iterrows():
        key = tuple(zrow[k] for k in KEY)
        best, best_score = None, -1
        for i in groups.get(key, ()):
            if i in used:
                continue
            score = sum(cell_equal(c, mine.at[i, c], zrow[c]) for c in columns)
            if score > best_score:
                best, best_score = i, score
        if best is None:
            missing.append(key)
            for c in columns:
                total[c] += 1
            continue
        used.add(best)
        for c in columns:
            total[c] += 1
            if cell_equal(c, mine.at[best, c], zrow[c]):
                agree[c] += 1
            else:
                mismatches.append((c, mine.at[best, c], zrow[c], key))
    extra = [tuple(mine.at[i, k] for k in KEY) for i in range(len(mine)) if i not in used]
    for _ in extra:
        for c in columns:
            total[c] += 1
    return agree, total, len(used), missing, extra, mismatches


def weird_report(corpus: Path, pattern: str) -> dict:
    """DNS weirds (source DNS) of every zeek/X.weird.log against the ``dns_weird`` frame of X."""
    options = zeek_options(corpus)
    columns = ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "name", "addl")
    matched = total = extra = 0
    lines = []
    for log in sorted((corpus / "zeek").glob("*.weird.log")):
        zeek = read_zeek_log(log)
        if "source" not in zeek.columns:
            continue
        zeek = zeek[zeek["source"] == "DNS"]
        if zeek.empty:
            continue
        stem = log.name[:-len(".weird.log")]
        capture = next((p for p in (corpus / "zeek" / f"{stem}.pcap", corpus / "zeek" / f"{stem}.pcapng")
                        if p.exists()), None)
        if capture is None or not fnmatch.fnmatch(capture.name, pattern):
            continue
        ours = run_capture(capture, **options.get(f"zeek/{capture.name}", {}))["dns_weird"]
        mine = []
        for row in ours.itertuples(index=False):
            rec = dict(zip(ours.columns, row))
            mine.append(tuple(format_value(rec[c], {"ts": "time", "id.orig_p": "port", "id.resp_p": "port"}
                                           .get(c, "string")) for c in columns))
        left = list(mine)
        for _, zrow in zeek.iterrows():
            total += 1
            want = tuple(zrow[c] for c in columns)
            hit = next((m for m in left if all(a == b or (c == "ts" and b == MASK)
                                               for c, a, b in zip(columns, m, want))), None)
            if hit is not None:
                matched += 1
                left.remove(hit)
            else:
                lines.append(f"  {capture.name}: missing {want}")
        extra += len(left)
        lines += [f"  {capture.name}: extra {m}" for m in left]
    print(f"\n== Zeek weird.log (DNS weirds) ==\nmatched {matched}/{total}, extra {extra}")
    for line in lines[:20]:
        print(line)
    return {"matched": matched, "total": total, "extra": extra}


# ---------------------------------------------------------------------------- tshark

def _norm_names(text: str) -> list[str]:
    return [("" if n == "<Root>" else n.lower()) for n in text.split(",")] if text else []


def tshark_rows(path: Path) -> dict[int, dict[str, str]]:
    csv.field_size_limit(1 << 30)
    out = {}
    with open(path, encoding="utf-8", errors="replace") as source:
        reader = csv.reader(source, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        index = {name: header.index(name) for name in TSHARK_FIELDS if name in header}
        for row in reader:
            if len(row) < len(header):
                row += [""] * (len(header) - len(row))
            if not row[index["dns.id"]]:
                continue
            rec = {name: row[i] for name, i in index.items()}
            protos = set(row[header.index("ip.proto")].split(",")) | set(row[header.index("ipv6.nxt")].split(","))
            rec["_quoted"] = bool(protos & {"1", "58"})
            out[int(row[0])] = rec
    return out


def ours_tshark(messages: pd.DataFrame) -> dict[int, dict[str, str]]:
    out: dict[int, dict] = {}
    for row in messages.itertuples(index=False):
        d = row._asdict() if hasattr(row, "_asdict") else None
        rec = dict(zip(messages.columns, row))
        frame = rec["frame.number"]
        if frame is pd.NA or rec["dns.id"] is pd.NA:
            continue
        if 137 in (rec["srcport"], rec["dstport"]) and rec["proto"] == "udp":
            continue    # NetBIOS name service: tshark has it as nbns.*, not dns.*
        cur = out.setdefault(int(frame), {k: [] for k in TSHARK_FIELDS})
        cur["_stopped"] = cur.get("_stopped", False) or not bool(rec["parsed"])
        response = bool(rec["dns.flags.response"])
        cur["dns.id"].append(f"0x{int(rec['dns.id']):04x}")
        cur["dns.flags.response"].append("1" if response else "0")
        cur["dns.qry.name"] += list(rec["dns.qry.name"] or [])
        cur["dns.qry.type"] += [str(t) for t in (rec["dns.qry.type"] or [])]
        if response:
            cur["dns.flags.rcode"].append(str(int(rec["dns.flags.rcode"])))
        cur["dns.count.answers"].append(str(int(rec["dns.count.answers"])))
        cur["dns.a"] += list(rec["dns.a"] or [])
        cur["dns.aaaa"] += list(rec["dns.aaaa"] or [])
        cur["dns.cname"] += list(rec["dns.cname"] or [])
        del d
    return {f: {k: (",".join(v) if isinstance(v, list) else v) for k, v in cur.items()} for f, cur in out.items()}


def tshark_equal(name: str, ours: str, theirs: str) -> bool:
    if name in ("dns.qry.name", "dns.cname"):
        return _norm_names(ours) == _norm_names(theirs)
    return ours == theirs


def compare_tshark(ours: dict, theirs: dict):
    """Per-field agree counts and totals, explained mismatch counts by reason, and the other mismatches."""
    agree, total, explained, mismatches = Counter(), Counter(), Counter(), []
    for frame in sorted(set(ours) | set(theirs)):
        a, b = ours.get(frame), theirs.get(frame)
        for name in TSHARK_FIELDS:
            total[name] += 1
            x = a.get(name, "") if a else "<no message>"
            y = b.get(name, "") if b else "<no message>"
            if a is not None and b is not None and tshark_equal(name, x, y):
                agree[name] += 1
            elif a is None and b is not None and b["_quoted"]:
                explained["icmp-quoted"] += 1
            elif a is not None and a.get("_stopped"):
                explained["zeek-stop"] += 1
            else:
                mismatches.append((name, frame, x, y))
    return agree, total, explained, mismatches


# ---------------------------------------------------------------------------- report

def pct(a: int, t: int) -> str:
    return f"{100.0 * a / t:6.2f} %" if t else "     - "


def shorten(value, width=70) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def zeek_report(corpus: Path, pattern: str, top: int) -> dict:
    options = zeek_options(corpus)
    agree, total = Counter(), Counter()
    per_file, mismatch_all = [], []
    rows_matched = rows_missing = rows_extra = 0
    for log in sorted((corpus / "zeek").glob("*.dns.log")):
        stem = log.name[:-len(".dns.log")]
        capture = next((p for p in (corpus / "zeek" / f"{stem}.pcap", corpus / "zeek" / f"{stem}.pcapng")
                        if p.exists()), None)
        if capture is None or not fnmatch.fnmatch(capture.name, pattern):
            continue
        opts = options.get(f"zeek/{capture.name}", {})
        tables = run_capture(capture, **opts)
        zeek = read_zeek_log(log)
        a, t, matched, missing, extra, mismatches = compare_zeek(tables["dns"], zeek)
        agree.update(a)
        total.update(t)
        rows_matched += matched
        rows_missing += len(missing)
        rows_extra += len(extra)
        kind = "tcp" if tables["_extra"]["tcp"] else ("fragments" if tables["_extra"]["fragments"] else "udp")
        per_file.append((capture.name, kind, sum(a.values()), sum(t.values()), matched, len(missing), len(extra),
                         opts))
        mismatch_all += [(capture.name,) + m for m in mismatches]
        for key in missing:
            mismatch_all.append((capture.name, "<row>", "missing", "present in Zeek", key))
        for key in extra:
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


def tshark_report(corpus: Path, pattern: str, top: int) -> dict:
    agree, total, explained = Counter(), Counter(), Counter()
    mismatch_all, per_file = [], []
    for tsv in sorted(list((corpus / "zeek").glob("*.tshark.tsv")) + list((corpus / "malformed").glob("*.tshark.tsv"))):
        capture = tsv.with_name(tsv.name[:-len(".tshark.tsv")])
        if not capture.exists() or not fnmatch.fnmatch(capture.name, pattern):
            continue
        theirs = tshark_rows(tsv)
        if not theirs:
            continue
        try:
            tables = run_capture(capture, ignore_checksums=True, messages=True)
        except Exception as error:  # a capture file the reader rejects
            print(f"  {capture.name}: not read ({error})")
            continue
        ours = ours_tshark(tables["dns_messages"])
        a, t, e, mismatches = compare_tshark(ours, theirs)
        agree.update(a)
        total.update(t)
        explained.update(e)
        per_file.append((f"{capture.parent.name}/{capture.name}", sum(a.values()), sum(t.values())))
        mismatch_all += [(f"{capture.parent.name}/{capture.name}",) + m for m in mismatches]
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
