#!/usr/bin/env python3
"""Conformance of netsift's ``smtp`` frame with Zeek's smtp.log, and of its commands with tshark.

Usage::

    python bench/smtp_conformance.py [--corpus DIR] [--top N] [--no-tshark] [--json FILE]

**Zeek.** For every ``zeek/X.smtp.log`` of the corpus the capture ``X.pcap``
(or ``.pcapng``) runs through the pipeline with :class:`analyzer.smtp.SmtpStage`
(``validate_checksums=False`` when the Zeek command in ``ORACLES.tsv`` has
``-C``).  Rows are matched on (id.orig_h, id.orig_p, id.resp_h, id.resp_p,
trans_depth), in order within a key.  Only the columns the log has are
compared, as text in Zeek's ASCII format (``analyzer.zeek_log.format_value``,
``\\xNN`` escapes undone on both sides); ``ts`` is masked by the canonifier
and ``uid`` is random in Zeek, so both are skipped; sets compare as sets;
``fuids`` (random ids) is compared as the number of parts in ``attachments``.
A missing or extra row counts as a mismatch in every compared column.  The
``weird.log`` files next to the smtp logs (rows whose source is SMTP) are
compared as (name, addl) pairs with :attr:`SmtpStage.weirds`.

**tshark.** For every ``X.tshark.tsv`` of ``zeek/`` with SMTP fields, and every
capture where netsift finds SMTP, ``smtp_commands`` is compared per frame on
``smtp.req.command``, ``smtp.req.parameter`` and ``smtp.response.code``
(each frame's values joined with commas, as ``-E occurrence=a``), over the
union of frames either side fills.  The run uses ``validate_checksums=False``,
as tshark reads every packet.

The corpus directory is ``--corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus``.  Always exits 0: it reports, tests assert.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.pipeline import Pipeline
from analyzer.reassembly import TcpReassembly
from analyzer.smtp import SMTP, SmtpStage
from analyzer.zeek_log import format_value
from captures import open_capture

KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth")
SKIP = {"ts", "uid"}
ZEEK_TYPES = {c.name: c.zeek_type for c in SMTP if c.zeek_type}
TSHARK_FIELDS = ("smtp.req.command", "smtp.req.parameter", "smtp.response.code")

# Differences with tshark that are understood (keys used in the report).
EXPLAINED = {
    "tshark-split-command": "tshark 4.0 cuts the command after four characters, so STARTTLS (one segment, "
                            "frame 10 of tls-smtp-starttls) shows as command 'STAR' with parameter 'TLS'; "
                            "netsift reports STARTTLS without a parameter, as sent",
    "tshark-port": "tshark decodes SMTP on port 25 only (and 587 heuristically); netsift finds SMTP inside "
                   "the HTTP CONNECT tunnel on port 8240 by Zeek's signatures (http-connect-with-smtp)",
    "tshark-crcrlf": "tshark does not take 'BDAT ... LAST\\r\\r\\n' (two CRs) for a command and shows neither "
                     "it nor the QUIT after it; Zeek and netsift strip the CRs (smtp-bdat-cmd-chunk-size-overflow, "
                     "-negative-chunk-size)",
}
EXPLAINED_CAPTURES = {"http-connect-with-smtp.pcap": "tshark-port", "tls-smtp-starttls.pcap": "tshark-split-command",
                      "smtp-bdat-cmd-chunk-size-overflow.pcap": "tshark-crcrlf",
                      "smtp-bdat-cmd-negative-chunk-size.pcap": "tshark-crcrlf"}


def corpus_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("NETSIFT_CORPUS"):
        return Path(os.environ["NETSIFT_CORPUS"])
    return REPO.parent / "shared" / "corpus"


def run_capture(path: Path, validate_checksums: bool = True, **options):
    """The pipeline with an SmtpStage over one capture: ``(tables, stage)``."""
    pipeline = Pipeline(validate_checksums=validate_checksums)
    stage = SmtpStage(pipeline.connections, **options)
    pipeline.stages.append(stage)
    pipeline.stream_readers.append(stage)
    pipeline.streams = pipeline.streams or TcpReassembly()
    with open_capture(path) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    return pipeline.finish(), stage


# -- Zeek logs -------------------------------------------------------------------------------------


def read_zeek_log(path: Path) -> tuple[list[str], list[str] | None, list[list[str]]]:
    """(fields, types or None, rows) of a Zeek ASCII log or a ``zeek-cut -m`` file."""
    fields, types, rows = [], None, []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        lines = [line.rstrip("\n") for line in f]
    lines = [line for line in lines if not line.startswith("### ")]
    if lines and not lines[0].startswith("#"):
        fields = lines[0].split("\t")
        return fields, None, [line.split("\t") for line in lines[1:] if line]
    for line in lines:
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("#types"):
            types = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(line.split("\t"))
    return fields, types, rows


_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(cell: str) -> str:
    """Zeek's ``\\xNN`` escapes undone, bytes read as UTF-8 (invalid bytes as ``\\xNN`` again)."""
    if "\\x" not in cell:
        return cell
    raw = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(cell):
        raw += cell[pos:m.start()].encode("utf-8", "surrogateescape")
        raw.append(int(m.group(1), 16))
        pos = m.end()
    raw += cell[pos:].encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def normal(cell: str, zeek_type: str | None):
    """A cell as a comparable value: sets as frozensets, vectors as tuples, text unescaped."""
    if zeek_type and zeek_type.startswith(("set[", "vector[")):
        if cell in ("-", "(empty)"):
            return cell
        items = [unescape(x) for x in cell.split(",")]
        return frozenset(items) if zeek_type.startswith("set[") else tuple(items)
    return cell if cell in ("-", "(empty)") else unescape(cell)


def ours_cell(value, column: str) -> str:
    zeek_type = ZEEK_TYPES.get(column, "string")
    if column == "fuids":
        return str(len(value)) if value is not None else "-"
    return format_value(value, zeek_type)


def compare_log(log: Path, frame, weird_rows: list, stage_weirds: list, top: Counter, where: str) -> dict:
    fields, types, rows = read_zeek_log(log)
    ztype = dict(zip(fields, types)) if types else {f: ZEEK_TYPES.get(f) for f in fields}
    columns = [f for f in fields if f not in SKIP and (f in frame.columns or f == "fuids")]
    ours: dict = defaultdict(list)
    records = frame.to_dict("records")
    for rec in records:
        ours[tuple(str(rec[k]) for k in KEY)].append(rec)
    stats = {c: [0, 0] for c in columns}
    missing = extra = 0
    used: dict = defaultdict(int)
    for row in rows:
        cell = dict(zip(fields, row))
        key = tuple(cell[k] for k in KEY)
        candidates = ours.get(key, [])
        index = used[key]
        used[key] += 1
        rec = candidates[index] if index < len(candidates) else None
        if rec is None:
            missing += 1
        for c in columns:
            stats[c][1] += 1
            if rec is None:
                top[(c, "missing row")] += 1
                continue
            if c == "fuids":
                theirs = "0" if cell[c] in ("-", "(empty)") else str(len(cell[c].split(",")))
                mine = ours_cell(rec["attachments"], c)
            else:
                theirs = normal(cell[c], ztype.get(c))
                mine = normal(ours_cell(rec[c], c), ztype.get(c))
            if theirs == mine:
                stats[c][0] += 1
            else:
                top[(c, f"{where}: zeek {cell[c]!r} netsift {ours_cell(rec[c] if c != 'fuids' else rec['attachments'], c)!r}")] += 1
    for key, recs in ours.items():
        if len(recs) > used.get(key, 0):
            n = len(recs) - used.get(key, 0)
            extra += n
            for c in columns:
                stats[c][1] += n
                top[(c, "extra row")] += n
    weird_stats = [0, 0, 0]
    if weird_rows is not None:
        theirs = Counter(weird_rows)
        mine = Counter((name, addl or "-") for _, name, addl in stage_weirds)
        weird_stats = [sum((theirs & mine).values()), sum(theirs.values()), sum(mine.values())]
    return {"columns": stats, "rows": len(rows), "missing": missing, "extra": extra, "weirds": weird_stats}


def smtp_weirds(path: Path) -> list:
    fields, _, rows = read_zeek_log(path)
    out = []
    for row in rows:
        cell = dict(zip(fields, row))
        if cell.get("source") == "SMTP" or cell.get("name", "").startswith(("smtp_", "exceeded_mime")):
            out.append((cell["name"], cell.get("addl", "-")))
    return out


def oracle_options(corpus: Path) -> dict:
    """``{capture file name: zeek command}`` from ORACLES.tsv."""
    out = {}
    path = corpus / "ORACLES.tsv"
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for row in reader:
            out[Path(row.get("capture", row.get("file", ""))).name] = " ".join(row.values())
    return out


# -- tshark ----------------------------------------------------------------------------------------


def read_tshark(path: Path) -> dict:
    """``{frame: {field: text}}`` for the frames with SMTP fields."""
    csv.field_size_limit(1 << 30)
    out = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        index = {name: header.index(name) for name in ("frame.number",) + TSHARK_FIELDS if name in header}
        if len(index) < 4:
            return out
        for row in reader:
            values = {k: row[i] for k, i in index.items() if k != "frame.number" and i < len(row)}
            if any(values.values()):
                out[int(row[index["frame.number"]])] = values
    return out


def ours_tshark(commands) -> dict:
    out: dict = defaultdict(lambda: defaultdict(list))
    for rec in commands.to_dict("records"):
        frame = int(rec["frame.number"])
        if rec["is_orig"]:
            out[frame]["smtp.req.command"].append(rec["smtp.req.command"])
            if rec["smtp.req.parameter"] not in (None, "") and rec["smtp.req.parameter"] is not None:
                out[frame]["smtp.req.parameter"].append(rec["smtp.req.parameter"])
        else:
            out[frame]["smtp.response.code"].append(str(int(rec["smtp.response.code"])))
    return {f: {k: ",".join(v) for k, v in d.items()} for f, d in out.items()}


def compare_tshark(theirs: dict, mine: dict, name: str, top: Counter) -> dict:
    stats = {f: [0, 0] for f in TSHARK_FIELDS}
    for frame in sorted(set(theirs) | set(mine)):
        t, m = theirs.get(frame, {}), mine.get(frame, {})
        for field in TSHARK_FIELDS:
            tv, mv = t.get(field, ""), m.get(field, "")
            if not tv and not mv:
                continue
            stats[field][1] += 1
            if tv == mv:
                stats[field][0] += 1
            else:
                top[(field, f"{name} frame {frame}: tshark {tv!r} netsift {mv!r}",
                     EXPLAINED_CAPTURES.get(name, ""))] += 1
    return stats


# -- report ----------------------------------------------------------------------------------------


def run(corpus: Path, tshark: bool = True) -> dict:
    zeek = corpus / "zeek"
    options = oracle_options(corpus)
    result = {"logs": {}, "columns": {}, "overall": None, "rows": 0, "missing": 0, "extra": 0,
              "weirds": [0, 0, 0], "top": [], "tshark": {}, "tshark_top": []}
    totals: dict = defaultdict(lambda: [0, 0])
    top: Counter = Counter()
    for log in sorted(zeek.glob("*.smtp.log")):
        stem = log.name[:-len(".smtp.log")]
        capture = next((zeek / f"{stem}{ext}" for ext in (".pcap", ".pcapng") if (zeek / f"{stem}{ext}").exists()),
                       None)
        if capture is None:
            continue
        command = " ".join(v for k, v in options.items() if k.startswith(stem)) or ""
        checks = " -C " not in f" {command} "
        tables, stage = run_capture(capture, validate_checksums=checks)
        weird_log = zeek / f"{stem}.weird.log"
        weird_rows = smtp_weirds(weird_log) if weird_log.exists() else None
        got = compare_log(log, tables["smtp"], weird_rows, stage.weirds, top, stem)
        result["logs"][stem] = got
        result["rows"] += got["rows"]
        result["missing"] += got["missing"]
        result["extra"] += got["extra"]
        for i in range(3):
            result["weirds"][i] += got["weirds"][i]
        for c, (ok, n) in got["columns"].items():
            totals[c][0] += ok
            totals[c][1] += n
    # weird logs of SMTP captures without an smtp.log (e.g. mime-header-size-limit)
    for wlog in sorted(zeek.glob("*.weird.log")):
        stem = wlog.name[:-len(".weird.log")]
        if stem in result["logs"] or not smtp_weirds(wlog):
            continue
        capture = next((zeek / f"{stem}{ext}" for ext in (".pcap", ".pcapng") if (zeek / f"{stem}{ext}").exists()),
                       None)
        if capture is None:
            continue
        _, stage = run_capture(capture)
        theirs = Counter(smtp_weirds(wlog))
        mine = Counter((name, addl or "-") for _, name, addl in stage.weirds)
        for i, v in enumerate((sum((theirs & mine).values()), sum(theirs.values()), sum(mine.values()))):
            result["weirds"][i] += v
        result["logs"][stem] = {"columns": {}, "rows": 0, "missing": 0, "extra": 0,
                                "weirds": [sum((theirs & mine).values()), sum(theirs.values()),
                                           sum(mine.values())]}
    result["columns"] = {c: (ok / n if n else 1.0, ok, n) for c, (ok, n) in totals.items()}
    ok_all = sum(ok for ok, _ in totals.values())
    n_all = sum(n for _, n in totals.values())
    result["overall"] = ok_all / n_all if n_all else None
    result["cells"] = (ok_all, n_all)
    result["top"] = top.most_common()
    if tshark:
        t_totals = {f: [0, 0] for f in TSHARK_FIELDS}
        t_top: Counter = Counter()
        for tsv in sorted(zeek.glob("*.tshark.tsv")):
            capture = zeek / tsv.name[:-len(".tshark.tsv")]
            theirs = read_tshark(tsv)
            if not capture.exists():
                continue
            if (not theirs and not any(capture.name.startswith(s) for s in result["logs"])
                    and b"220 " not in capture.read_bytes()):
                continue
            tables, _ = run_capture(capture, validate_checksums=False, commands=True)
            mine = ours_tshark(tables["smtp_commands"])
            if not theirs and not mine:
                continue
            stats = compare_tshark(theirs, mine, capture.name, t_top)
            result["tshark"][capture.name] = stats
            for f, (ok, n) in stats.items():
                t_totals[f][0] += ok
                t_totals[f][1] += n
        result["tshark_columns"] = {f: (ok / n if n else 1.0, ok, n) for f, (ok, n) in t_totals.items()}
        ok_t = sum(ok for ok, _ in t_totals.values())
        n_t = sum(n for _, n in t_totals.values())
        result["tshark_overall"] = ok_t / n_t if n_t else None
        result["tshark_top"] = t_top.most_common()
        explained = sum(n for (_, _, why), n in t_top.items() if why)
        result["tshark_explained"] = explained
        result["tshark_unexplained"] = sum(t_top.values()) - explained
        result["tshark_overall_explained"] = (ok_t + explained) / n_t if n_t else None
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    if not (corpus / "zeek").is_dir():
        print(f"no corpus at {corpus}")
        return 0
    r = run(corpus, tshark=not args.no_tshark)
    print(f"Zeek smtp.log: {len(r['logs'])} logs, {r['rows']} rows, missing {r['missing']}, extra {r['extra']}")
    for stem, got in r["logs"].items():
        cells = [sum(v[0] for v in got["columns"].values()), sum(v[1] for v in got["columns"].values())]
        print(f"  {stem:45s} rows {got['rows']:3d}  cells {cells[0]}/{cells[1]}  "
              f"weirds matched {got['weirds'][0]} of zeek {got['weirds'][1]} (netsift {got['weirds'][2]})")
    print("per column:")
    for c, (pct, ok, n) in r["columns"].items():
        print(f"  {c:18s} {100 * pct:6.2f} %  ({ok}/{n})")
    if r["overall"] is not None:
        print(f"overall: {100 * r['overall']:.2f} % of {r['cells'][1]} cells")
    print(f"weirds (SMTP): matched {r['weirds'][0]} of Zeek's {r['weirds'][1]}, netsift reported {r['weirds'][2]}")
    if r["top"]:
        print("top mismatches:")
        for (c, what), n in r["top"][:args.top]:
            print(f"  {n:4d}  {c}: {what}")
    if "tshark_columns" in r:
        print(f"tshark smtp fields: {len(r['tshark'])} captures")
        for f, (pct, ok, n) in r["tshark_columns"].items():
            print(f"  {f:20s} {100 * pct:6.2f} %  ({ok}/{n})")
        if r["tshark_overall"] is not None:
            print(f"  overall {100 * r['tshark_overall']:.2f} %; with the explained differences counted as agreeing "
                  f"{100 * r['tshark_overall_explained']:.2f} % ({r['tshark_unexplained']} unexplained)")
        if r["tshark_top"]:
            print("  differences:")
            for (f, what, why), n in r["tshark_top"][:args.top]:
                print(f"    {n:3d}  {f}: {what}  [{why or 'UNEXPLAINED'}]")
            print("  explained:")
            for key, text in EXPLAINED.items():
                print(f"    {key}: {text}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({k: v for k, v in r.items() if k not in ("top", "tshark_top")}, out, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
