"""netsift's ``http`` frame against Zeek's http.log baselines and tshark's HTTP fields.

**Zeek** (``zeek/X.http.log``): the capture beside it goes through the
pipeline with :class:`analyzer.http.HttpStage` (``-C`` in the ORACLES command:
checksums not validated; :data:`OPTIONS`: what the Zeek test redefines).  Rows
are matched on the connection 4-tuple and ``trans_depth``; a baseline without
the ``id.*`` columns (``zeek-cut`` output keyed by ``uid``) is matched through
the order in which Zeek's btest runs hand out uids (:func:`btest_uids`), i.e.
netsift's connections in order of their first packet.  Only the columns a
baseline has are compared, as Zeek ASCII text; ``ts`` (masked), ``uid`` and
the ``*_fuids`` (Zeek file ids) are not compared.  MIME type columns
(:data:`MIME_COLUMNS`) are counted apart: Zeek sniffs with its own signature files.

**tshark** (``zeek/X.tshark.tsv`` with HTTP fields): per TCP stream, the k-th
frame with ``http.request.method`` is compared with netsift's k-th request
and the k-th ``http.response.code`` with its k-th response: method, URI (both
%-decoded: netsift's is Zeek's unescaped URI), Host, User-Agent, status code;
``http.content_length`` (the header) against the body length is information
only.  :data:`TSHARK_DELIBERATE` lists the differences that are Zeek's semantics.
"""

from __future__ import annotations

import collections
import csv
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..http import HTTP, HttpStage
from ..http.parser import unescape_uri
from .baseline import read_zeek_log, zeek_text
from .corpus import capture_beside, ignores_checksums, oracle_commands
from .stage import run_stage

MIME_COLUMNS = ("orig_mime_types", "resp_mime_types")
SKIPPED = ("ts", "uid", "orig_fuids", "resp_fuids")
ZEEK_TYPES = {c.name: c.zeek_type for c in HTTP}
# Zeek btest runs hand out uids from a fixed seed: a run's n-th connection gets the n-th uid of the
# sequence.  The sequence is read from the http-methods baseline (49 connections, one per client port,
# opened in port order); these three start it when that baseline is absent.
BTEST_UIDS = ("CHhAvVGS1DHFjwGM9", "ClEkJM2Vm5giqnMf4h", "C4J4Th3PJpwUYZZ6gc")

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


def btest_uids(corpus: Path) -> list[str]:
    """The uid sequence of Zeek's btest runs, from the http-methods http.log and weird.log (port order)."""
    by_port = {}
    for suffix in (".http.log", ".weird.log"):
        path = corpus / "zeek" / f"http-methods{suffix}"
        if path.exists():
            for cells in read_zeek_log(path).records():
                if "uid" in cells and "id.orig_p" in cells:
                    by_port[int(cells["id.orig_p"])] = cells["uid"]
    sequence = [by_port[port] for port in sorted(by_port)]
    return sequence if sequence[:3] == list(BTEST_UIDS) else list(BTEST_UIDS)


def analyse(capture: Path, validate: bool, **options):
    """The pipeline with an HttpStage: ``(tables, stage)``."""
    return run_stage(capture, HttpStage, validate, **options)


def _conn_order(tables) -> list[tuple]:
    """Our connections' 4-tuples in the order of their first packet (Zeek's uid order)."""
    conn = tables["conn"].sort_values("ts", kind="stable")
    return [(str(h1), int(p1), str(h2), int(p2)) for h1, p1, h2, p2 in
            zip(conn["id.orig_h"], conn["id.orig_p"], conn["id.resp_h"], conn["id.resp_p"])]


@dataclass
class HttpLogComparison:
    """One http.log baseline against netsift's http frame.

    Attributes:
        name: the baseline's stem (``http-methods``).
        fields: the baseline's columns.
        baseline_rows: its rows; ``matched`` of them found a netsift row.
        per_column: ``{column: [cells compared, equal]}`` over matched rows.
        mismatches: ``{(name, column, ours[:60], zeek[:60]): count}``.
        missing: ``(name, Zeek row cells)`` without a netsift row.
        extra: ``(name, netsift key)`` without a Zeek row.
    """

    name: str
    fields: list[str]
    baseline_rows: int = 0
    matched: int = 0
    per_column: dict = field(default_factory=lambda: collections.defaultdict(lambda: [0, 0]))
    mismatches: collections.Counter = field(default_factory=collections.Counter)
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)


def compare_http_log(capture: Path, log: Path, command: str, uids: list[str]) -> HttpLogComparison:
    """Compare the http frame of ``capture`` with the Zeek ``log`` made by ``command``.

    ``uids``: Zeek's btest uid sequence (:func:`btest_uids`), for baselines keyed by uid.
    """
    name = log.name[:-len(".http.log")]
    tables, _ = analyse(capture, validate=not ignores_checksums(command), **OPTIONS.get(name, {}))
    ours = tables["http"]
    fields, _, rows = read_zeek_log(log)
    result = HttpLogComparison(name, fields, len(rows))
    columns = [f for f in fields if f not in SKIPPED and f in ours.columns]
    text = zeek_text(ours, columns, ZEEK_TYPES)
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
            result.missing.append((name, row))
            continue
        if depth is not None:
            i = our_index.get((*conn, int(depth)))
        else:
            # No trans_depth: the first unused row of the connection.
            i = next((j for j, k in enumerate(our_keys) if j not in used
                      and (str(k[0]), int(k[1]), str(k[2]), int(k[3])) == conn), None)
        if i is None or i in used:
            result.missing.append((name, row))
            continue
        used.add(i)
        result.matched += 1
        for column in columns:
            want, got = cells[column], text[column][i]
            if want == "(empty)" and got == "-" and column in ("tags",):
                got = want
            result.per_column[column][0] += 1
            if want == got:
                result.per_column[column][1] += 1
            else:
                result.mismatches[(name, column, got[:60], want[:60])] += 1
    for i, key in enumerate(our_keys):
        if i not in used and ("id.orig_h" in fields or "uid" in fields):
            result.extra.append((name, key))
    return result


def zeek_figures(corpus: Path, pattern: str = "*") -> dict:
    """Every http.log of the corpus whose stem matches ``pattern``, summed.

    Returns ``files`` (baselines in the corpus), ``baseline_rows``, ``matched``,
    ``missing``, ``extra``, ``per_column``, ``overall`` (fraction of non-MIME
    cells equal), ``cells``, ``equal``, ``mime``, ``mime_cells``, ``mime_equal``,
    ``mismatches`` and ``overall_with_missing`` (missing rows' cells counted as wrong).
    """
    zeek = corpus / "zeek"
    commands = oracle_commands(corpus)
    uids = btest_uids(corpus)
    per_column = collections.defaultdict(lambda: [0, 0])
    mismatches = collections.Counter()
    missing, extra, matched, baseline_rows, missing_cells = [], [], 0, 0, 0
    files = sorted(zeek.glob("*.http.log"))
    for log in files:
        name = log.name[:-len(".http.log")]
        capture = capture_beside(zeek, name)
        if not fnmatch.fnmatch(name, pattern) or capture is None:
            continue
        got = compare_http_log(capture, log, commands.get(f"zeek/{log.name}", ""), uids)
        baseline_rows += got.baseline_rows
        matched += got.matched
        missing += got.missing
        extra += got.extra
        missing_cells += len(got.missing) * len([f for f in got.fields if f not in SKIPPED])
        for column, (n, e) in got.per_column.items():
            per_column[column][0] += n
            per_column[column][1] += e
        mismatches.update(got.mismatches)
    plain = [c for c in per_column if c not in MIME_COLUMNS]
    compared = sum(per_column[c][0] for c in plain)
    equal = sum(per_column[c][1] for c in plain)
    mime_compared = sum(per_column[c][0] for c in MIME_COLUMNS if c in per_column)
    mime_equal = sum(per_column[c][1] for c in MIME_COLUMNS if c in per_column)
    return {
        "files": len(files), "baseline_rows": baseline_rows, "matched": matched, "missing": missing,
        "extra": extra, "per_column": dict(per_column), "overall": equal / compared if compared else 1.0,
        "cells": compared, "equal": equal, "mime": mime_equal / mime_compared if mime_compared else 1.0,
        "mime_cells": mime_compared, "mime_equal": mime_equal, "mismatches": mismatches,
        "overall_with_missing": equal / (compared + missing_cells) if compared + missing_cells else 1.0,
    }


def _last(cell: str) -> str:
    return cell.split(",")[-1] if cell else cell


def compare_http_tshark(capture: Path, tsv: Path):
    """tshark's HTTP fields of one capture against netsift's requests and responses, per TCP stream, in order.

    Returns ``(per_field, mismatches, unmatched)``: ``{field: [compared, equal]}``,
    ``{(name, field, ours, tshark): count}`` and ``{(name, "request"|"response"): count}``
    of tshark messages netsift has no k-th record for; None when the tsv has no HTTP frame.
    """
    name = capture.stem
    per_field = collections.defaultdict(lambda: [0, 0])
    mismatches, unmatched = collections.Counter(), collections.Counter()
    with open(tsv, encoding="utf-8", errors="surrogateescape") as source:
        reader = csv.DictReader(source, delimiter="\t", quoting=csv.QUOTE_NONE)
        frames = [row for row in reader if row.get("http.request.method") or row.get("http.response.code")]
    if not frames:
        return None
    tables, _ = analyse(capture, validate=False)
    requests = collections.defaultdict(list)
    responses = collections.defaultdict(list)
    for record in sorted(tables["http"].to_dict("records"), key=lambda r: (r["trans_depth"])):
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
        for method in methods:
            index = seen[(endpoints, "q")]
            seen[(endpoints, "q")] += 1
            candidates = requests.get(endpoints, [])
            if index >= len(candidates):
                unmatched[(name, "request")] += 1
                continue
            record = candidates[index]
            checks = [("http.request.method", method, record["method"])]
            if len(methods) == 1:
                checks += [("http.request.uri", unescape_uri(row["http.request.uri"].encode(
                    "utf-8", "surrogateescape")).decode("utf-8", "backslashreplace"), record["uri"]),
                    ("http.host", row["http.host"], record["host"]),
                    ("http.user_agent", row["http.user_agent"], record["user_agent"])]
            for field_name, want, got in checks:
                got = "" if got is None or got is pd.NA else str(got)
                per_field[field_name][0] += 1
                if want == got:
                    per_field[field_name][1] += 1
                else:
                    mismatches[(name, field_name, got[:50], want[:50])] += 1
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
    return per_field, mismatches, unmatched


def tshark_figures(corpus: Path, pattern: str = "*") -> dict:
    """:func:`compare_http_tshark` over every ``zeek/*.tshark.tsv`` whose capture stem matches ``pattern``.

    Returns ``per_field``, ``overall`` (fraction equal, ``(info)`` fields left
    out), ``unmatched``, ``mismatches`` and ``overall_without_deliberate``
    (the :data:`TSHARK_DELIBERATE` cells left out of the count).
    """
    per_field = collections.defaultdict(lambda: [0, 0])
    mismatches = collections.Counter()
    unmatched = collections.Counter()
    for tsv in sorted((corpus / "zeek").glob("*.tshark.tsv")):
        capture = tsv.with_name(tsv.name[:-len(".tshark.tsv")])
        if not fnmatch.fnmatch(capture.stem, pattern) or not capture.exists():
            continue
        got = compare_http_tshark(capture, tsv)
        if got is None:
            continue
        for field_name, (n, e) in got[0].items():
            per_field[field_name][0] += n
            per_field[field_name][1] += e
        mismatches.update(got[1])
        unmatched.update(got[2])
    compared = sum(v[0] for k, v in per_field.items() if "info" not in k)
    equal = sum(v[1] for k, v in per_field.items() if "info" not in k)
    deliberate = sum(count for (name, field_name, _, _), count in mismatches.items()
                     if (name, field_name) in TSHARK_DELIBERATE)
    return {"per_field": dict(per_field), "overall": equal / compared if compared else 1.0,
            "unmatched": unmatched, "mismatches": mismatches,
            "overall_without_deliberate": equal / (compared - deliberate) if compared > deliberate else 1.0}
