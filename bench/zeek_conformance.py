#!/usr/bin/env python3
"""Compare netsift's Zeek-style tables with the Zeek baselines of the shared corpus.

    python3 bench/zeek_conformance.py conn [--corpus DIR] [--top N] [--log NAME]

For every ``zeek/*.conn.log`` of the corpus (``--corpus``, ``$NETSIFT_CORPUS`` or
``<repo>/../shared/corpus``), the capture of the same name (``.pcap`` or
``.pcapng``) is compared by :func:`analyzer.verify.conn.compare_conn_log` (the
rules are in that module: rows matched on the connection key, every column
but ``ts`` and ``uid``, ``tunnel_parents`` on presence).  A second figure sets
apart the ``service`` cells of protocols netsift has no stage for
(``NOT_DISSECTED_SERVICES``).  Prints per-column agreement, the overall cell
figure, missing/extra connections and the top mismatches.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from analyzer.verify.conn import KEY, NOT_DISSECTED_SERVICES, compare_conn_log  # noqa: E402
from analyzer.verify.corpus import capture_beside, corpus_dir, oracle_commands  # noqa: E402


def conformance_conn(corpus: str, top: int = 20, only: str | None = None, verbose: bool = True) -> dict:
    """Compare every conn.log of ``corpus`` (names containing ``only``); print the figures when ``verbose``.

    Returns ``cells``, ``agree``, ``percent``, ``percent_dissected`` (without the
    ``not_dissected`` service cells), ``missing`` and ``extra`` (``(log, row)``),
    ``per_column`` (``{column: (agree, cells)}``), ``mismatches`` and ``skipped``.
    """
    zeek_dir = Path(corpus) / "zeek"
    commands = oracle_commands(corpus)
    per_col, per_col_ok, mismatches, examples = Counter(), Counter(), Counter(), {}
    missing_all, extra_all, skipped = [], [], []
    not_dissected = 0
    for log in sorted(zeek_dir.glob("*.conn.log")):
        if only and only not in log.name:
            continue
        capture = capture_beside(zeek_dir, log.name[: -len(".conn.log")])
        if capture is None:
            skipped.append((log.name, "no capture"))
            continue
        result = compare_conn_log(capture, log, commands.get("zeek/" + log.name, ""))
        if result.skipped:
            skipped.append((log.name, result.skipped))
            continue
        missing_all += [(log.name, r) for r in result.missing]
        extra_all += [(log.name, r) for r in result.extra]
        for c in result.columns:      # missing rows count as wrong cells on every compared column
            if result.compared[c] + len(result.missing):
                per_col[c] += result.compared[c] + len(result.missing)
                per_col_ok[c] += result.agree[c]
        for key, count in result.mismatches.items():
            mismatches[key] += count
            examples.setdefault(key, log.name)
        not_dissected += result.not_dissected()
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
            print("  ", log, {k: r[k] for k in KEY + ("history",)})
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
    corpus = str(corpus_dir(args.corpus))
    if not os.path.isdir(os.path.join(corpus, "zeek")):
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    conformance_conn(corpus, args.top, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
