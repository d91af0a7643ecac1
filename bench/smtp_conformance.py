#!/usr/bin/env python3
"""Conformance of netsift's ``smtp`` frame with Zeek's smtp.log, and of its commands with tshark.

Usage::

    python bench/smtp_conformance.py [--corpus DIR] [--top N] [--no-tshark] [--json FILE]

Prints the figures of :mod:`analyzer.verify.smtp` (the rules of both
comparisons are there): every ``zeek/X.smtp.log`` of the corpus and the SMTP
rows of the weird.log beside it, then ``smtp_commands`` against every
``X.tshark.tsv`` of ``zeek/`` with SMTP.  ``run()`` returns the figures (the
tests use it); ``--json`` writes them.

The corpus directory is ``--corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus``.  Always exits 0: it reports, tests assert.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.verify.corpus import corpus_dir  # noqa: E402
from analyzer.verify.smtp import EXPLAINED, figures  # noqa: E402

run = figures   # the name tests/test_smtp.py uses


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
    r = figures(corpus, tshark=not args.no_tshark)
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
