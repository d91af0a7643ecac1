"""Conformance of the ``http`` frame with Zeek's http.log baselines and tshark's HTTP fields.

    python bench/http_conformance.py [--corpus DIR] [--files GLOB] [--top N] [--no-tshark]

Corpus: ``--corpus``, else ``$NETSIFT_CORPUS``, else ``<repo>/../shared/corpus``.

Prints the figures of :mod:`analyzer.verify.http` (the rules of both
comparisons are there): per-column agreement with every ``zeek/*.http.log``,
the overall figure (non-MIME columns), MIME agreement, missing/extra rows and
the largest mismatch groups; then tshark's HTTP fields per TCP stream.
Exit 0.  :func:`compare_zeek` and :func:`compare_tshark` return the figures
(the tests use them).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from analyzer.verify import http as core  # noqa: E402
from analyzer.verify.corpus import corpus_dir  # noqa: E402
from analyzer.verify.http import MIME_COLUMNS, TSHARK_DELIBERATE  # noqa: E402


def compare_zeek(corpus: Path, pattern: str = "*", top: int = 15, quiet: bool = False) -> dict:
    """:func:`analyzer.verify.http.zeek_figures`, printed unless ``quiet``."""
    result = core.zeek_figures(corpus, pattern)
    if not quiet:
        per_column, mismatches = result["per_column"], result["mismatches"]
        print(f"Zeek http.log: {result['files']} baselines, {result['baseline_rows']} rows, {result['matched']} "
              f"matched, {len(result['missing'])} missing, {len(result['extra'])} extra")
        print(f"{'column':<20}{'compared':>10}{'equal':>10}{'agree':>9}")
        for column in sorted(per_column, key=lambda c: (c in MIME_COLUMNS, c)):
            n, e = per_column[column]
            print(f"{column:<20}{n:>10}{e:>10}{100 * e / n:>8.1f}%")
        print(f"overall (non-MIME)  {result['cells']:>10}{result['equal']:>10}{100 * result['overall']:>8.2f}%   "
              f"(missing rows counted as wrong: {100 * result['overall_with_missing']:.2f}%)")
        print(f"MIME types          {result['mime_cells']:>10}{result['mime_equal']:>10}{100 * result['mime']:>8.2f}%")
        for name, row in result["missing"]:
            print(f"  missing  {name}: {' | '.join(row)[:150]}")
        for name, key in result["extra"]:
            print(f"  extra    {name}: {key}")
        print("top mismatches (capture, column, ours, Zeek's, count):")
        for (name, column, got, want), count in mismatches.most_common(top):
            print(f"  {name:<45} {column:<18} {got!r:<30} {want!r:<30} {count}")
    return result


def compare_tshark(corpus: Path, pattern: str = "*", top: int = 15, quiet: bool = False) -> dict:
    """:func:`analyzer.verify.http.tshark_figures`, printed unless ``quiet``."""
    result = core.tshark_figures(corpus, pattern)
    if not quiet:
        per_field = result["per_field"]
        compared = sum(v[0] for k, v in per_field.items() if "info" not in k)
        equal = sum(v[1] for k, v in per_field.items() if "info" not in k)
        print("\ntshark HTTP fields (per TCP stream, k-th request/response):")
        print(f"{'field':<28}{'compared':>10}{'equal':>10}{'agree':>9}")
        for field, (n, e) in sorted(per_field.items()):
            print(f"{field:<28}{n:>10}{e:>10}{100 * e / n:>8.1f}%")
        print(f"overall                     {compared:>10}{equal:>10}{100 * result['overall']:>8.2f}%   "
              f"(deliberate differences left out: {100 * result['overall_without_deliberate']:.2f}%)")
        for (name, kind), count in result["unmatched"].most_common(top):
            reason = TSHARK_DELIBERATE.get((name, kind), "UNEXPLAINED")
            print(f"  tshark {kind} without ours: {name} x{count}  [{reason}]")
        for (name, field, got, want), count in result["mismatches"].most_common(top):
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
