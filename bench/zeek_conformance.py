#!/usr/bin/env python3
"""Compare netsift's Zeek-style tables with the Zeek baselines of the shared corpus.

    python3 bench/zeek_conformance.py conn [--corpus DIR] [--top N] [--log NAME]

For every ``zeek/*.conn.log`` of the corpus (``--corpus``, ``$NETSIFT_CORPUS`` or
``<repo>/../shared/corpus``), the capture of the same name (``.pcap`` or
``.pcapng``) is analysed with :class:`analyzer.conn.ConnStage` (checksums
validated unless the baseline's Zeek command had ``-C``, from ``ORACLES.tsv``).
Rows are matched on (id.orig_h, id.orig_p, id.resp_h, id.resp_p, proto) as far as
the log has those columns (several rows with one key are paired in the order that
agrees best; logs without address columns are paired in order).  Every column
the baseline has is compared except ``ts`` and ``uid`` (masked / random in Zeek);
``service`` is compared like the others (filled by the DNS, HTTP and SMTP stages
and the tunnel decoders); a second figure sets apart the ``service`` cells of
protocols netsift has no stage for (``NOT_DISSECTED_SERVICES``); ``tunnel_parents``
is compared on presence only (uids differ by design).  Prints per-column
agreement, the overall cell figure, missing/extra connections and the top
mismatches.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
SKIP = {"ts", "uid"}
#: Zeek analyzers netsift does not have: their ``service`` values are counted, then also set apart
#: in a second figure (netsift fills ``service`` only from what its own stages parsed).
NOT_DISSECTED_SERVICES = {"ftp", "ftp-data", "ntp", "dhcp", "ssh"}


def corpus_dir(arg: str | None) -> str:
    return arg or os.environ.get("NETSIFT_CORPUS") or os.path.join(REPO, "..", "shared", "corpus")


def read_zeek_log(path: str) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows of a Zeek ASCII log (btest baseline with ``#fields``, or ``zeek-cut -m`` output)."""
    fields, rows = None, []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line or line.startswith("###"):
                continue
            if line.startswith("#"):
                if line.startswith("#fields"):
                    fields = line.split("\t")[1:]
                continue
            parts = line.split("\t")
            if fields is None:
                fields = parts
                continue
            rows.append(dict(zip(fields, parts)))
    return fields or [], rows


def oracle_commands(corpus: str) -> dict[str, str]:
    path = os.path.join(corpus, "ORACLES.tsv")
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        for line in handle:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            out[row.get("oracle_file", "")] = row.get("zeek_command", "")
    return out


def zeek_text(column: str, value) -> str:
    """netsift's value written as Zeek writes it in an ASCII log."""
    import pandas as pd
    if column == "tunnel_parents":
        return "(empty)" if value is None or (isinstance(value, float)) or len(value) == 0 else "(set)"
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return "T" if value else "F"
    if column == "duration":
        return f"{float(value):.6f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def baseline_text(column: str, value: str) -> str:
    if column == "tunnel_parents":
        return "(empty)" if value in ("-", "(empty)", "") else "(set)"
    return value


def run_conn(pcap: str, validate: bool):
    import warnings
    from analyzer import analyze
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(pcap, validate_checksums=validate).conn


def pair_rows(base_rows, ours_rows, columns):
    """Pair baseline rows with ours on the key columns the log has; returns (pairs, missing, extra)."""
    key_cols = [c for c in KEY if c in columns]
    if not any(c in columns for c in ("id.orig_h", "id.resp_h")):
        n = min(len(base_rows), len(ours_rows))
        return list(zip(base_rows[:n], ours_rows[:n])), base_rows[n:], ours_rows[n:]
    groups_b, groups_o = defaultdict(list), defaultdict(list)
    for row in base_rows:
        groups_b[tuple(row[c] for c in key_cols)].append(row)
    for row in ours_rows:
        groups_o[tuple(row[c] for c in key_cols)].append(row)
    pairs, missing, extra = [], [], []
    compare = [c for c in columns if c not in SKIP and c not in key_cols]
    for key, rows_b in groups_b.items():
        rows_o = groups_o.pop(key, [])
        k = min(len(rows_b), len(rows_o))
        if len(rows_b) <= 5 and len(rows_o) <= 5:
            best, best_score = None, -1
            for perm in itertools.permutations(range(len(rows_o)), k):
                for comb in itertools.combinations(range(len(rows_b)), k):
                    score = sum(baseline_text(c, rows_b[i].get(c, "-")) == rows_o[j].get(c)
                                for i, j in zip(comb, perm) for c in compare)
                    if score > best_score:
                        best, best_score = (comb, perm), score
            comb, perm = best if best else ((), ())
        else:
            comb, perm = tuple(range(k)), tuple(range(k))
        pairs += [(rows_b[i], rows_o[j]) for i, j in zip(comb, perm)]
        missing += [rows_b[i] for i in range(len(rows_b)) if i not in comb]
        extra += [rows_o[j] for j in range(len(rows_o)) if j not in perm]
    for rows_o in groups_o.values():
        extra += rows_o
    return pairs, missing, extra


def conformance_conn(corpus: str, top: int = 20, only: str | None = None, verbose: bool = True) -> dict:
    zeek_dir = os.path.join(corpus, "zeek")
    commands = oracle_commands(corpus)
    per_col = Counter()
    per_col_ok = Counter()
    mismatches = Counter()
    examples = {}
    missing_all, extra_all, skipped = [], [], []
    not_dissected = 0
    logs = sorted(f for f in os.listdir(zeek_dir) if f.endswith(".conn.log"))
    for log in logs:
        if only and only not in log:
            continue
        stem = log[: -len(".conn.log")]
        pcap = next((os.path.join(zeek_dir, stem + ext) for ext in (".pcap", ".pcapng")
                     if os.path.exists(os.path.join(zeek_dir, stem + ext))), None)
        columns, base_rows = read_zeek_log(os.path.join(zeek_dir, log))
        ours_known = {"id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
                      "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes",
                      "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
                      "tunnel_parents", "ip_proto"}
        compared = [c for c in columns if c not in SKIP and c in ours_known]
        if pcap is None or not compared:
            skipped.append((log, "no capture" if pcap is None else
                            "no comparable column: " + ",".join(columns)))
            continue
        validate = " -C " not in " " + commands.get("zeek/" + log, "") + " " and \
            "-C" not in commands.get("zeek/" + log, "").split()
        frame = run_conn(pcap, validate)
        ours_rows = []
        for rec in frame.to_dict("records"):
            ours_rows.append({c: zeek_text(c, rec.get(c)) for c in ours_known})
        pairs, missing, extra = pair_rows(base_rows, ours_rows, columns)
        missing_all += [(log, r) for r in missing]
        extra_all += [(log, r) for r in extra]
        for b, o in pairs:
            for c in compared:
                if c in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto") and \
                        any(k in columns for k in ("id.orig_h", "id.resp_h")):
                    continue   # the match key itself
                want, got = baseline_text(c, b.get(c, "-")), o.get(c)
                per_col[c] += 1
                if want == got:
                    per_col_ok[c] += 1
                else:
                    mismatches[(c, want, got)] += 1
                    examples.setdefault((c, want, got), log)
                    if c == "service" and got in ("-", None) and \
                            set(want.split(",")) <= NOT_DISSECTED_SERVICES:
                        not_dissected += 1
        # missing/extra rows count as wrong cells on every compared column
        has_key = any(k in columns for k in ("id.orig_h", "id.resp_h"))
        for _ in missing:
            for c in compared:
                if not (has_key and c in KEY):
                    per_col[c] += 1
    total = sum(per_col.values())
    ok = sum(per_col_ok.values())
    within = total - not_dissected
    result = {"cells": total, "agree": ok, "percent": 100.0 * ok / total if total else 100.0,
              "percent_dissected": 100.0 * ok / within if within else 100.0, "not_dissected": not_dissected,
              "missing": missing_all, "extra": extra_all, "per_column": {c: (per_col_ok[c], per_col[c]) for c in per_col},
              "mismatches": mismatches, "skipped": skipped}
    if verbose:
        print(f"{'column':16} {'agree':>7} {'cells':>6} {'%':>7}")
        for c in sorted(per_col, key=lambda c: -per_col[c]):
            print(f"{c:16} {per_col_ok[c]:7d} {per_col[c]:6d} {100.0 * per_col_ok[c] / per_col[c]:7.2f}")
        print(f"{'OVERALL':16} {ok:7d} {total:6d} {result['percent']:7.2f}")
        print(f"{'OVERALL minus':16} {ok:7d} {within:6d} {result['percent_dissected']:7.2f}"
              f"   ({not_dissected} service cells of protocols not dissected: "
              f"{', '.join(sorted(NOT_DISSECTED_SERVICES))})")
        print(f"missing connections (in Zeek's log, not ours): {len(missing_all)}")
        for log, r in missing_all[:top]:
            print("  ", log, {k: v for k, v in r.items() if k not in ("ts",)})
        print(f"extra connections (ours, not in Zeek's log; logs with address columns only): {len(extra_all)}")
        for log, r in extra_all[:top]:
            print("  ", log, {k: r[k] for k in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "history")})
        print("top mismatches (column, zeek, netsift) x count [log]:")
        for (c, want, got), count in mismatches.most_common(top):
            print(f"   {c}: {want!r} vs {got!r} x{count} [{examples[(c, want, got)]}]")
        for log, why in skipped:
            print(f"skipped {log}: {why}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["conn"])
    parser.add_argument("--corpus")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--log", help="only logs whose name contains this")
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    if not os.path.isdir(os.path.join(corpus, "zeek")):
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    conformance_conn(corpus, args.top, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
