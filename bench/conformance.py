#!/usr/bin/env python3
"""Conformance of netsift's ``packets`` frame with Wireshark's tshark.

Usage::

    python bench/conformance.py tshark [--corpus DIR] [--files GLOB] [--top N]

For every capture of the corpus that has a ``X.tshark.tsv`` beside it, compare
its ``packets`` frame with the tsv frame by frame; the rules of the comparison
and the list of deliberate differences are in :mod:`analyzer.verify.tshark`
(this script prints its figures; ``netsift verify`` shows the same ones).

The corpus directory is ``--corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus``.  Always exits 0: it reports,
``tests/test_conformance.py`` asserts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from analyzer.verify.corpus import corpus_dir  # noqa: E402
from analyzer.verify.tshark import (FileComparison, compare_file, field_totals, mismatch_groups,  # noqa: E402
                                    tsv_captures)


def report(results: list[FileComparison], top: int = 20, out=sys.stdout) -> None:
    """Print per-field agreement, the overall figure and the largest mismatch groups."""
    totals = field_totals(results)
    print(f"{len(results)} captures compared with tshark\n", file=out)
    print(f"{'field':<18} {'compared':>9} {'equal':>9} {'%':>8} {'deliberate':>10} {'% excl.':>8}", file=out)
    all_compared = all_equal = all_deliberate = 0
    for name, (compared, equal, deliberate) in totals.items():
        if not compared:
            continue
        all_compared, all_equal, all_deliberate = all_compared + compared, all_equal + equal, all_deliberate + deliberate
        print(f"{name:<18} {compared:>9} {equal:>9} {100 * equal / compared:>7.3f}% {deliberate:>10} "
              f"{100 * (equal + deliberate) / compared:>7.3f}%", file=out)
    if all_compared:
        print(f"{'overall':<18} {all_compared:>9} {all_equal:>9} {100 * all_equal / all_compared:>7.3f}% "
              f"{all_deliberate:>10} {100 * (all_equal + all_deliberate) / all_compared:>7.3f}%", file=out)
    print("(frame.time_epoch compared as integer ns: tsv's 9 decimals vs netsift's ts column)", file=out)

    errors = [r for r in results if r.error]
    if errors:
        print("\nanalyze() raised:", file=out)
        for r in errors:
            print(f"  {r.file}: {r.error}", file=out)
    counts = [r for r in results if not r.error and r.frames_ours != r.frames_theirs]
    if counts:
        print("\nframe counts differ:", file=out)
        for r in counts:
            print(f"  {r.file}: netsift {r.frames_ours}, tshark {r.frames_theirs}; warnings {r.warnings}", file=out)

    groups = mismatch_groups(results)
    shown = groups[:top]
    if shown:
        print(f"\ntop {len(shown)} of {len(groups)} mismatch groups (unexplained first):", file=out)
        print(f"{'count':>6}  {'file':<44} {'field':<15} {'ours':<20} {'theirs':<20} {'frame':>6}  deliberate",
              file=out)
        for count, file, name, ours, theirs, example, reason in shown:
            print(f"{count:>6}  {file:<44} {name:<15} {ours[:20]:<20} {theirs[:20]:<20} {example:>6}  "
                  f"{'yes' if reason else ''}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("oracle", choices=["tshark"], help="the reference to compare with")
    parser.add_argument("--corpus", help="corpus directory (default $NETSIFT_CORPUS or <repo>/../shared/corpus)")
    parser.add_argument("--files", default="*", help="glob on 'zeek/name.pcap' or the file name (default all)")
    parser.add_argument("--top", type=int, default=20, help="mismatch groups to show (default 20)")
    args = parser.parse_args(argv)
    corpus = corpus_dir(args.corpus)
    captures = tsv_captures(corpus, args.files)
    if not captures:
        print(f"no captures with a .tshark.tsv under {corpus} matching {args.files!r}")
        return 0
    report([compare_file(path) for path in captures], top=args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
