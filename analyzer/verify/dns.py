"""netsift's ``dns`` frame against Zeek's dns.log, its DNS weirds against weird.log, its DNS fields against tshark.

**Zeek.** The capture beside ``zeek/X.dns.log`` runs through
:class:`analyzer.dns.DnsStage` with the options of the Zeek run that made the
log (``ORACLES.tsv``: ``-C`` is ``ignore_checksums``, ``dns_max_queries=N``,
``dns_max_compression_chain_depth=N``).  Rows are matched on
(id.orig_h, id.orig_p, id.resp_h, id.resp_p, trans_id, query); within a key
each Zeek row takes the netsift row that agrees with it best.  Only the columns
the log has are compared, as Zeek ASCII text; ``ts`` is skipped where the
canonifier masked it; ``set[string]`` columns compare as sets.  A missing or
extra row counts as a mismatch in every compared column.

**tshark.** Per frame with DNS in ``X.tshark.tsv``: ``dns.id``,
``dns.flags.response``, ``dns.qry.name``, ``dns.qry.type``,
``dns.flags.rcode``, ``dns.count.answers``, ``dns.a``, ``dns.aaaa``,
``dns.cname`` against the ``dns_messages`` frame (lists in order; names
case-insensitively, ``<Root>`` as the empty name).  Differences in
:data:`EXPLAINED` are counted apart.

TCP streams and IP datagrams come from netsift's reassembly, wired as the
pipeline wires them.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from captures import open_capture
from dissectors import dissect

from ..dns import DNS, DnsStage
from ..dns.transport import udp_datagrams
from ..zeek_log import format_value
from .baseline import read_zeek_log, zeek_text
from .corpus import capture_beside, ignores_checksums

KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_id", "query")
TSHARK_FIELDS = ("dns.id", "dns.flags.response", "dns.qry.name", "dns.qry.type", "dns.flags.rcode",
                 "dns.count.answers", "dns.a", "dns.aaaa", "dns.cname")
ZEEK_TYPES = {c.name: c.zeek_type for c in DNS if c.zeek_type}
#: What btest's canonifier writes for a masked ``ts``.
MASK = "XXXXXXXXXX.XXXXXX"

#: Differences with tshark that are understood, by key (see tests/test_dns.py).
EXPLAINED = {
    "icmp-quoted": "tshark decodes the DNS message quoted inside an ICMP error; Zeek (and netsift) do not "
                   "take a quoted datagram for a DNS message",
    "zeek-stop": "Zeek stops walking a message at an anomaly tshark walks past (an RR with RDLENGTH 0 "
                 "before the end, QDCOUNT above dns_max_queries, ...): the records after it are not "
                 "parsed (netsift follows Zeek; the message's `parsed` column is false)",
}


def run_capture(path: str | os.PathLike, **options) -> dict:
    """The DNS frames of one capture: ``DnsStage(weird_table=True, **options).finish()``.

    UDP datagrams come from the capture's batches and from IP datagrams
    completed by :class:`analyzer.reassembly.FragmentReassembler` (up to 4
    levels of nesting), TCP payload from :class:`analyzer.reassembly.TcpReassembly`.
    ``tables["_extra"]`` counts messages that came by ``tcp`` and by ``fragments``.

    Raises:
        CaptureError: the file is not a capture netsift reads.
    """
    from ..reassembly import FragmentReassembler, TcpReassembly

    stage = DnsStage(weird_table=True, **options)
    extra = {"tcp": 0, "fragments": 0, "via": "reassembly"}
    fragments, streams = FragmentReassembler(), TcpReassembly()
    with open_capture(path) as reader:
        for batch in reader.batches():
            fields = dissect(batch)
            nested, completed = [], []
            datagrams, numbers = fragments.feed(batch, fields)
            for _ in range(4):
                if not len(datagrams):
                    break
                inner = dissect(datagrams)
                nested.append((datagrams, inner, None, numbers))
                completed.append((datagrams, inner, numbers - batch.first_number, numbers))
                extra["fragments"] += int(udp_datagrams(datagrams, inner, stage.ports,
                                                        stage.verify_checksums).delivered.sum())
                datagrams, numbers = fragments.feed(datagrams, inner, frame_numbers=numbers)
            # The batch's datagrams and the reassembled ones in capture order, as the pipeline gives them.
            stage.feed(batch, fields, datagrams=completed)
            for delivery in streams.feed(batch, fields, more=nested):
                extra["tcp"] += delivery.key.resp_p == 53 and bool(delivery.chunk.data)
                stage.feed_stream(delivery)
    for delivery in streams.flush():
        stage.feed_stream(delivery)
    tables = stage.finish()
    tables["_extra"] = extra
    return tables


def options_from_command(command: str) -> dict:
    """DnsStage options of a Zeek command line (``-C``, ``dns_max_queries=N``, ``dns_max_compression_chain_depth=N``)."""
    opts = {"ignore_checksums": ignores_checksums(command)}
    m = re.search(r"dns_max_queries=(\d+)", command)
    if m:
        opts["max_queries"] = int(m.group(1))
    m = re.search(r"dns_max_compression_chain_depth=(\d+)", command)
    if m:
        opts["max_compression_depth"] = int(m.group(1))
    return opts


def zeek_options(corpus: Path) -> dict[str, dict]:
    """``{capture (zeek/x.pcap): DnsStage options}`` from the corpus's ORACLES.tsv."""
    with open(corpus / "ORACLES.tsv", encoding="utf-8") as source:
        return {row["capture"]: options_from_command(row["zeek_command"])
                for row in csv.DictReader(source, delimiter="\t")}


# ---------------------------------------------------------------------------- Zeek


def cell_equal(name: str, ours: str, theirs: str) -> bool:
    """Zeek text equality for column ``name``: masked ``ts`` agrees, ``set[…]`` compares as a set."""
    if name == "ts" and theirs == MASK:
        return True
    zt = ZEEK_TYPES.get(name, "")
    if zt.startswith("set["):
        return set(ours.split(",")) == set(theirs.split(","))
    return ours == theirs


def compare_zeek(ours: pd.DataFrame, zeek: pd.DataFrame):
    """Per-column agree counts, totals, matched/missing/extra rows and mismatch examples."""
    columns = [c for c in zeek.columns if c in ZEEK_TYPES and c != "uid"]
    mine = pd.DataFrame(zeek_text(ours, columns, ZEEK_TYPES), dtype=object)
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


@dataclass
class DnsLogComparison:
    """One dns.log baseline against netsift's dns frame.

    Attributes:
        capture: the capture's file name.
        via: how its DNS came: ``tcp``, ``fragments`` (reassembled IP) or ``udp``.
        agree, total: per column, cells equal and cells compared (missing/extra rows included).
        matched: rows paired.
        missing, extra: keys of Zeek rows without netsift's and of netsift rows without Zeek's.
        mismatches: ``(column, ours, zeek, key)`` per unequal cell.
        options: the DnsStage options used.
    """

    capture: str
    via: str
    agree: Counter
    total: Counter
    matched: int
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)
    options: dict = field(default_factory=dict)


def compare_dns_log(capture: Path, log: Path, options: dict, run=run_capture) -> DnsLogComparison:
    """Compare the dns frame of ``capture`` (``run(capture, **options)``) with the Zeek ``log``."""
    tables = run(capture, **options)
    agree, total, matched, missing, extra, mismatches = compare_zeek(tables["dns"], read_zeek_log(log).frame())
    via = "tcp" if tables["_extra"]["tcp"] else ("fragments" if tables["_extra"]["fragments"] else "udp")
    return DnsLogComparison(capture.name, via, agree, total, matched, missing, extra, mismatches, options)


def zeek_logs(corpus: Path, pattern: str = "*") -> list[tuple[Path, Path]]:
    """(capture, dns.log) of the corpus whose capture file name matches ``pattern``."""
    pairs = []
    for log in sorted((corpus / "zeek").glob("*.dns.log")):
        capture = capture_beside(log.parent, log.name[:-len(".dns.log")])
        if capture is not None and fnmatch.fnmatch(capture.name, pattern):
            pairs.append((capture, log))
    return pairs


def weird_figures(corpus: Path, pattern: str = "*", run=run_capture) -> dict:
    """DNS weirds (source DNS) of every zeek/X.weird.log against the ``dns_weird`` frame of X.

    Returns ``matched``, ``total`` (Zeek's), ``extra`` (netsift's unmatched) and
    ``lines`` (one text per missing or extra weird).
    """
    options = zeek_options(corpus)
    columns = ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "name", "addl")
    types = {"ts": "time", "id.orig_p": "port", "id.resp_p": "port"}
    matched = total = extra = 0
    lines = []
    for log in sorted((corpus / "zeek").glob("*.weird.log")):
        zeek = read_zeek_log(log).frame()
        if "source" not in zeek.columns:
            continue
        zeek = zeek[zeek["source"] == "DNS"]
        if zeek.empty:
            continue
        capture = capture_beside(log.parent, log.name[:-len(".weird.log")])
        if capture is None or not fnmatch.fnmatch(capture.name, pattern):
            continue
        ours = run(capture, **options.get(f"zeek/{capture.name}", {}))["dns_weird"]
        left = [tuple(format_value(rec[c], types.get(c, "string")) for c in columns)
                for rec in (dict(zip(ours.columns, row)) for row in ours.itertuples(index=False))]
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
    return {"matched": matched, "total": total, "extra": extra, "lines": lines}


# ---------------------------------------------------------------------------- tshark


def _norm_names(text: str) -> list[str]:
    return [("" if n == "<Root>" else n.lower()) for n in text.split(",")] if text else []


def tshark_rows(path: Path) -> dict[int, dict[str, str]]:
    """``{frame.number: {field: cell}}`` of the tsv's frames with a ``dns.id`` (``_quoted``: inside ICMP)."""
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
    """netsift's ``dns_messages`` in the tsv's form: per frame, each field's values joined with commas."""
    out: dict[int, dict] = {}
    for row in messages.itertuples(index=False):
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
    return {f: {k: (",".join(v) if isinstance(v, list) else v) for k, v in cur.items()} for f, cur in out.items()}


def tshark_equal(name: str, ours: str, theirs: str) -> bool:
    """Equality of one field's text (names case-insensitively, ``<Root>`` as the empty name)."""
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


def tshark_figures(corpus: Path, pattern: str = "*", run=run_capture) -> dict:
    """The tshark comparison over every tsv of ``zeek/`` and ``malformed/`` with DNS frames.

    Returns ``agree``, ``total``, ``explained`` (Counters), ``mismatches``
    (``(capture, field, frame, ours, tshark)``), ``per_file``
    (``(capture, agree, total)``) and ``unread`` (``(capture name, error)`` for
    files the reader rejects).
    """
    agree, total, explained = Counter(), Counter(), Counter()
    mismatch_all, per_file, unread = [], [], []
    for tsv in sorted(list((corpus / "zeek").glob("*.tshark.tsv")) + list((corpus / "malformed").glob("*.tshark.tsv"))):
        capture = tsv.with_name(tsv.name[:-len(".tshark.tsv")])
        if not capture.exists() or not fnmatch.fnmatch(capture.name, pattern):
            continue
        theirs = tshark_rows(tsv)
        if not theirs:
            continue
        try:
            tables = run(capture, ignore_checksums=True, messages=True)
        except Exception as error:  # a capture file the reader rejects
            unread.append((capture.name, error))
            continue
        a, t, e, mismatches = compare_tshark(ours_tshark(tables["dns_messages"]), theirs)
        agree.update(a)
        total.update(t)
        explained.update(e)
        per_file.append((f"{capture.parent.name}/{capture.name}", sum(a.values()), sum(t.values())))
        mismatch_all += [(f"{capture.parent.name}/{capture.name}",) + m for m in mismatches]
    return {"agree": agree, "total": total, "explained": explained, "mismatches": mismatch_all,
            "per_file": per_file, "unread": unread}
