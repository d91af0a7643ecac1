"""Conformance of the ``http`` frame with Zeek's http.log baselines and tshark's HTTP fields.

    python bench/http_conformance.py [--corpus DIR] [--files GLOB] [--top N] [--no-tshark]

Corpus: ``--corpus``, else ``$NETSIFT_CORPUS``, else ``<repo>/../shared/corpus``.

**Zeek** (every ``zeek/*.http.log``): the capture beside it goes through the
pipeline with :class:`analyzer.http.HttpStage` (``-C`` runs without checksum
validation, as the ORACLES command says).  Rows are matched on the
connection 4-tuple and ``trans_depth``; a baseline without the ``id.*``
columns (``zeek-cut`` output keyed by ``uid``) is matched through the order
in which Zeek's btest runs hand out uids (``CHhAvVGS1DHFjwGM9`` is a run's
first connection, ``ClEkJM2Vm5giqnMf4h`` its second, …), i.e. our
connections in order of their first packet.  Only the columns a baseline
has are compared, as Zeek TSV text (our values go through
:func:`analyzer.zeek_log.format_value`); ``ts`` (masked), ``uid`` and the
``*_fuids`` (Zeek file ids) are not compared.  MIME type columns are
reported apart (Zeek sniffs with its own signature files).

**tshark** (every ``X.tshark.tsv`` of ``zeek/`` with HTTP fields): per TCP
stream, the k-th frame with ``http.request.method`` is compared with our
k-th request and the k-th ``http.response.code`` with our k-th response:
method, URI (both %-decoded: ours is Zeek's unescaped URI), Host,
User-Agent, status code; ``http.content_length`` (the header) with our
body length where the body was neither chunked nor compressed is reported
for information.

Prints per-column agreement, the overall figure (non-MIME columns), MIME
agreement, missing/extra rows and the largest mismatch groups.  Exit 0.
``run()`` returns the figures (the tests use it).
"""

from __future__ import annotations

import argparse
import collections
import csv
import fnmatch
import os
import sys
from pathlib import Path

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from analyzer.http import HTTP, HttpStage  # noqa: E402
from analyzer.http.parser import unescape_uri  # noqa: E402
from analyzer.pipeline import Pipeline  # noqa: E402
from analyzer.reassembly import TcpReassembly  # noqa: E402
from analyzer.zeek_log import format_value  # noqa: E402
from captures import open_capture  # noqa: E402

MIME_COLUMNS = ("orig_mime_types", "resp_mime_types")
SKIPPED = ("ts", "uid", "orig_fuids", "resp_fuids")
# Zeek btest runs hand out uids from a fixed seed: a run's n-th connection gets the n-th uid of the
# sequence.  The sequence is read from the http-methods baseline (49 connections, one per client port,
# opened in port order); these three start it when that baseline is absent.
BTEST_UIDS = ("CHhAvVGS1DHFjwGM9", "ClEkJM2Vm5giqnMf4h", "C4J4Th3PJpwUYZZ6gc")


def btest_uids(corpus: Path) -> list[str]:
    """The uid sequence of Zeek's btest runs, from the http-methods http.log and weird.log (port order)."""
    by_port = {}
    for suffix in (".http.log", ".weird.log"):
        path = corpus / "zeek" / f"http-methods{suffix}"
        if path.exists():
            fields, rows = read_log(path)
            for row in rows:
                cells = dict(zip(fields, row))
                if "uid" in cells and "id.orig_p" in cells:
                    by_port[int(cells["id.orig_p"])] = cells["uid"]
    sequence = [by_port[port] for port in sorted(by_port)]
    return sequence if sequence[:3] == list(BTEST_UIDS) else list(BTEST_UIDS)


# Per-capture options of the Zeek test that made the baseline (what its script redefines).
OPTIONS = {
    # The test redefines HTTP::default_capture_password = T (its baseline logs the password).
    "http-basic-auth-with-colon": {"capture_passwords": True},
}

# tshark differences that are Zeek's semantics, kept on purpose: (capture, field) -> reason.
TSHARK_DELIBERATE = {
    ("http-methods", "http.response.code"): "HTTP/0.9 requests (no version): Zeek reads the reply as raw 0.9 "
                                            "data (status 0), tshark parses its status line",
    ("http-methods", "http.request.uri"): "request line without URI: Zeek leaves the URI empty "
                                          "(missing_HTTP_uri), tshark takes HTTP/1.1 as the URI",
    ("http-connect-with-smtp", "http.request.uri"): "Zeek's URI runs to the 'HTTP/' of the version "
                                                    "(the ' /' after the authority is part of it)",
    ("http-get_nosyn", "request"): "connection without SYN: Zeek's HTTP analyzer skips partial connections",
    ("http-get_nosyn", "response"): "connection without SYN: Zeek's HTTP analyzer skips partial connections",
    ("wikipedia", "request"): "connection picked up mid-stream (no SYN): skipped as by Zeek",
    ("wikipedia", "response"): "connection picked up mid-stream (no SYN): skipped as by Zeek",
    ("http-11-request-then-cruft", "response"): "after a bad request line on a confirmed connection Zeek "
                                                "removes the HTTP analyzer: the 400 reply is not logged",
    ("http-methods", "request"): "request line Zeek rejects (bad_HTTP_request): no request record",
}


def corpus_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    if os.environ.get("NETSIFT_CORPUS"):
        return Path(os.environ["NETSIFT_CORPUS"])
    return Path(ROOT).parent / "shared" / "corpus"


def read_log(path: Path) -> tuple[list[str], list[list[str]]]:
    """A btest baseline: ``#fields`` TSV or a zeek-cut header line; (column names, rows of cells)."""
    fields, rows = None, []
    with open(path, encoding="utf-8", errors="surrogateescape") as source:
        for line in source:
            line = line.rstrip("\n")
            if line.startswith("###") or not line:
                continue
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line.startswith("#"):
                continue
            elif fields is None:
                fields = line.split("\t")
            else:
                rows.append(line.split("\t"))
    return fields or [], rows


def analyse(capture: Path, validate: bool, **options):
    """The pipeline with an HttpStage: (tables, stage)."""
    pipeline = Pipeline(validate_checksums=validate)
    stage = HttpStage(pipeline.connections, **options)
    pipeline.stages.append(stage)
    pipeline.stream_readers.append(stage)
    pipeline.streams = pipeline.streams or TcpReassembly()
    with open_capture(capture) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    return pipeline.finish(), stage


def _zeek_commands(corpus: Path) -> dict[str, str]:
    commands = {}
    manifest = corpus / "ORACLES.tsv"
    if manifest.exists():
        with open(manifest, encoding="utf-8") as source:
            for row in csv.DictReader(source, delimiter="\t"):
                commands[row["oracle_file"]] = row.get("zeek_command", "")
    return commands


def _ours_as_text(frame, columns) -> dict[str, list[str]]:
    types = {c.name: c.zeek_type for c in HTTP}
    out = {}
    for name in columns:
        values = frame[name].tolist()
        out[name] = [format_value(None if v is None or v is _NA() else v, types[name]) for v in values]
    return out


def _NA():
    import pandas as pd
    return pd.NA


def _conn_order(tables) -> list[tuple]:
    """Our connections' 4-tuples in the order of their first packet (Zeek's uid order)."""
    conn = tables["conn"].sort_values("ts", kind="stable")
    return [(str(h1), int(p1), str(h2), int(p2)) for h1, p1, h2, p2 in
            zip(conn["id.orig_h"], conn["id.orig_p"], conn["id.resp_h"], conn["id.resp_p"])]


def compare_zeek(corpus: Path, pattern: str = "*", top: int = 15, quiet: bool = False) -> dict:
    zeek = corpus / "zeek"
    commands = _zeek_commands(corpus)
    uids = btest_uids(corpus)
    per_column = collections.defaultdict(lambda: [0, 0])
    mismatches = collections.Counter()
    missing, extra, matched, baseline_rows = [], [], 0, 0
    files = sorted(zeek.glob("*.http.log"))
    for log in files:
        name = log.name[:-len(".http.log")]
        if not fnmatch.fnmatch(name, pattern):
            continue
        capture = next((zeek / (name + ext) for ext in (".pcap", ".pcapng") if (zeek / (name + ext)).exists()), None)
        if capture is None:
            continue
        command = commands.get(f"zeek/{log.name}", "")
        tables, _ = analyse(capture, validate=" -C" not in command, **OPTIONS.get(name, {}))
        ours = tables["http"]
        fields, rows = read_log(log)
        baseline_rows += len(rows)
        columns = [f for f in fields if f not in SKIPPED and f in ours.columns]
        text = _ours_as_text(ours, columns)
        our_keys = list(zip(ours["id.orig_h"].tolist(), ours["id.orig_p"].tolist(), ours["id.resp_h"].tolist(),
                            ours["id.resp_p"].tolist(), ours["trans_depth"].tolist()))
        our_index = {(str(a), int(b), str(c), int(d), int(e)): i for i, (a, b, c, d, e) in enumerate(our_keys)}
        order = _conn_order(tables)
        used = set()
        for row in rows:
            cells = dict(zip(fields, row))
            if "id.orig_h" in cells:
                conn = (cells["id.orig_h"], int(cells["id.orig_p"]), cells["id.resp_h"], int(cells["id.resp_p"]))
            else:
                uid = cells.get("uid")
                position = uids.index(uid) if uid in uids else None
                conn = order[position] if position is not None and position < len(order) else None
            depth = cells.get("trans_depth")
            if conn is None:
                missing.append((name, row))
                continue
            if depth is not None:
                key = (*conn, int(depth))
                i = our_index.get(key)
            else:
                # No trans_depth: the first unused row of the connection.
                i = next((j for j, k in enumerate(our_keys) if j not in used
                          and (str(k[0]), int(k[1]), str(k[2]), int(k[3])) == conn), None)
            if i is None or i in used:
                missing.append((name, row))
                continue
            used.add(i)
            matched += 1
            for column in columns:
                want, got = cells[column], text[column][i]
                if want == "(empty)" and got == "-" and column in ("tags",):
                    got = want
                per_column[column][0] += 1
                if want == got:
                    per_column[column][1] += 1
                else:
                    group = (name, column, got[:60], want[:60])
                    mismatches[group] += 1
        for i, key in enumerate(our_keys):
            if i not in used and ("id.orig_h" in fields or "uid" in fields):
                extra.append((name, key))
    plain = [c for c in per_column if c not in MIME_COLUMNS]
    compared = sum(per_column[c][0] for c in plain)
    equal = sum(per_column[c][1] for c in plain)
    mime_compared = sum(per_column[c][0] for c in MIME_COLUMNS if c in per_column)
    mime_equal = sum(per_column[c][1] for c in MIME_COLUMNS if c in per_column)
    result = {
        "files": len(files), "baseline_rows": baseline_rows, "matched": matched, "missing": missing,
        "extra": extra, "per_column": dict(per_column), "overall": equal / compared if compared else 1.0,
        "cells": compared, "mime": mime_equal / mime_compared if mime_compared else 1.0,
        "mime_cells": mime_compared, "mismatches": mismatches,
        }
    missing_cells = sum(len([f for f in read_log(corpus / "zeek" / f"{m[0]}.http.log")[0] if f not in SKIPPED])
                        for m in missing)
    result["overall_with_missing"] = equal / (compared + missing_cells) if compared + missing_cells else 1.0
    if not quiet:
        print(f"Zeek http.log: {len(files)} baselines, {baseline_rows} rows, {matched} matched, "
              f"{len(missing)} missing, {len(extra)} extra")
        print(f"{'column':<20}{'compared':>10}{'equal':>10}{'agree':>9}")
        for column in sorted(per_column, key=lambda c: (c in MIME_COLUMNS, c)):
            n, e = per_column[column]
            print(f"{column:<20}{n:>10}{e:>10}{100 * e / n:>8.1f}%")
        print(f"overall (non-MIME)  {compared:>10}{equal:>10}{100 * result['overall']:>8.2f}%   "
              f"(missing rows counted as wrong: {100 * result['overall_with_missing']:.2f}%)")
        print(f"MIME types          {mime_compared:>10}{mime_equal:>10}{100 * result['mime']:>8.2f}%")
        for name, row in missing:
            print(f"  missing  {name}: {' | '.join(row)[:150]}")
        for name, key in extra:
            print(f"  extra    {name}: {key}")
        print("top mismatches (capture, column, ours, Zeek's, count):")
        for (name, column, got, want), count in mismatches.most_common(top):
            print(f"  {name:<45} {column:<18} {got!r:<30} {want!r:<30} {count}")
    return result


def _last(cell: str) -> str:
    return cell.split(",")[-1] if cell else cell


def compare_tshark(corpus: Path, pattern: str = "*", top: int = 15, quiet: bool = False) -> dict:
    """tshark's HTTP fields against our requests and responses, per TCP stream, in order."""
    zeek = corpus / "zeek"
    per_field = collections.defaultdict(lambda: [0, 0])
    mismatches = collections.Counter()
    unmatched = collections.Counter()
    for tsv in sorted(zeek.glob("*.tshark.tsv")):
        capture = zeek / tsv.name[:-len(".tshark.tsv")]
        name = capture.stem
        if not fnmatch.fnmatch(name, pattern) or not capture.exists():
            continue
        with open(tsv, encoding="utf-8", errors="surrogateescape") as source:
            reader = csv.DictReader(source, delimiter="\t", quoting=csv.QUOTE_NONE)
            frames = [row for row in reader if row.get("http.request.method") or row.get("http.response.code")]
        if not frames:
            continue
        tables, _ = analyse(capture, validate=False)
        ours = tables["http"]
        requests = collections.defaultdict(list)
        responses = collections.defaultdict(list)
        records = ours.to_dict("records")
        for record in sorted(records, key=lambda r: (r["trans_depth"])):
            endpoints = frozenset(((record["id.orig_h"], int(record["id.orig_p"])),
                                   (record["id.resp_h"], int(record["id.resp_p"]))))
            if not pd.isna(record["method"]):
                requests[endpoints].append(record)
            if not pd.isna(record["status_code"]):
                # Zeek folds a 1xx response into the final one's record (info_code); tshark has both.
                if not pd.isna(record["info_code"]) and record["info_code"] != record["status_code"]:
                    responses[endpoints].append(dict(record, status_code=record["info_code"]))
                responses[endpoints].append(record)
        seen = collections.Counter()
        for row in frames:
            source = _last(row["ipv6.src"] or row["ip.src"])
            destination = _last(row["ipv6.dst"] or row["ip.dst"])
            try:
                endpoints = frozenset(((source, int(row["tcp.srcport"])), (destination, int(row["tcp.dstport"]))))
            except ValueError:
                continue
            methods = [m for m in row["http.request.method"].split(",") if m]
            for k, method in enumerate(methods):
                index = seen[(endpoints, "q")]
                seen[(endpoints, "q")] += 1
                candidates = requests.get(endpoints, [])
                if index >= len(candidates):
                    unmatched[(name, "request")] += 1
                    continue
                record = candidates[index]
                single = len(methods) == 1
                checks = [("http.request.method", method, record["method"])]
                if single:
                    checks += [("http.request.uri", unescape_uri(row["http.request.uri"].encode(
                        "utf-8", "surrogateescape")).decode("utf-8", "backslashreplace"), record["uri"]),
                        ("http.host", row["http.host"], record["host"]),
                        ("http.user_agent", row["http.user_agent"], record["user_agent"])]
                for field, want, got in checks:
                    got = "" if got is None or got is _NA() else str(got)
                    per_field[field][0] += 1
                    if want == got:
                        per_field[field][1] += 1
                    else:
                        mismatches[(name, field, got[:50], want[:50])] += 1
            codes = [c for c in row["http.response.code"].split(",") if c]
            for code in codes:
                index = seen[(endpoints, "r")]
                seen[(endpoints, "r")] += 1
                candidates = responses.get(endpoints, [])
                if index >= len(candidates):
                    unmatched[(name, "response")] += 1
                    continue
                record = candidates[index]
                per_field["http.response.code"][0] += 1
                if str(record["status_code"]) == code:
                    per_field["http.response.code"][1] += 1
                else:
                    mismatches[(name, "http.response.code", str(record["status_code"]), code)] += 1
                if len(codes) == 1 and row["http.content_length"]:
                    per_field["http.content_length (info)"][0] += 1
                    if str(record["response_body_len"]) == row["http.content_length"].split(",")[0]:
                        per_field["http.content_length (info)"][1] += 1
    compared = sum(v[0] for k, v in per_field.items() if "info" not in k)
    equal = sum(v[1] for k, v in per_field.items() if "info" not in k)
    deliberate = sum(count for (name, field, _, _), count in mismatches.items()
                     if (name, field) in TSHARK_DELIBERATE)
    result = {"per_field": dict(per_field), "overall": equal / compared if compared else 1.0,
              "unmatched": unmatched, "mismatches": mismatches,
              "overall_without_deliberate": equal / (compared - deliberate) if compared > deliberate else 1.0}
    if not quiet:
        print("\ntshark HTTP fields (per TCP stream, k-th request/response):")
        print(f"{'field':<28}{'compared':>10}{'equal':>10}{'agree':>9}")
        for field, (n, e) in sorted(per_field.items()):
            print(f"{field:<28}{n:>10}{e:>10}{100 * e / n:>8.1f}%")
        print(f"overall                     {compared:>10}{equal:>10}{100 * result['overall']:>8.2f}%   "
              f"(deliberate differences left out: {100 * result['overall_without_deliberate']:.2f}%)")
        for (name, kind), count in unmatched.most_common(top):
            reason = TSHARK_DELIBERATE.get((name, kind), "UNEXPLAINED")
            print(f"  tshark {kind} without ours: {name} x{count}  [{reason}]")
        for (name, field, got, want), count in mismatches.most_common(top):
            reason = TSHARK_DELIBERATE.get((name, field), "UNEXPLAINED")
            print(f"  {name:<30} {field:<20} {got!r:<28} {want!r:<28} {count}  [{reason[:60]}]")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus")
    parser.add_argument("--files", default="*", help="glob on capture names (without extension)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-tshark", action="store_true")
    args = parser.parse_args()
    corpus = corpus_dir(args.corpus)
    if not (corpus / "zeek").is_dir():
        print(f"{corpus}: no corpus (give --corpus or $NETSIFT_CORPUS)")
        return 0
    compare_zeek(corpus, args.files, args.top)
    if not args.no_tshark:
        compare_tshark(corpus, args.files, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
