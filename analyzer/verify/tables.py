"""The comparisons of ``netsift verify`` as DataFrames: packets vs tshark, conn vs Zeek, dns/http/smtp vs Zeek.

Each function takes ``captures`` (None: every capture of the corpus with the
baseline in question) and returns a small dataclass of frames.  The figures
are those of the comparison modules (:mod:`.tshark`, :mod:`.conn`,
:mod:`.dns`, :mod:`.http`, :mod:`.smtp`), which ``bench/*conformance.py`` print.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import dns, http, smtp
from .conn import KEY, compare_conn_log
from .corpus import baseline_pairs, corpus_dir
from .tshark import compare_file, field_totals, mismatch_groups, tsv_captures

# ---- packets against tshark ------------------------------------------------------------------


@dataclass
class PacketsVerification:
    """netsift's packets frame against tshark's dumps.

    Attributes:
        fields: per field: ``compared``, ``equal``, ``%``, ``deliberate``, ``% excl. deliberate``;
            the last row is ``overall``.
        mismatches: the largest mismatch groups, unexplained first: ``count``,
            ``file``, ``field``, ``ours``, ``tshark``, ``first frame``, ``deliberate``.
        frame_counts: captures whose frame counts differ (``file``, ``netsift``, ``tshark``).
        errors: captures where ``analyze`` raised (``file``, ``error``).
        skipped: captures not compared and why (``file``, ``reason``).
        captures: captures compared.
        unexplained: cells that differ with no recorded reason.
    """

    fields: pd.DataFrame
    mismatches: pd.DataFrame
    frame_counts: pd.DataFrame
    errors: pd.DataFrame
    skipped: pd.DataFrame
    captures: int = 0
    unexplained: int = 0


def verify_packets(captures: list[str | os.PathLike] | None = None, corpus: str | os.PathLike | None = None,
                   top: int = 20) -> PacketsVerification:
    """Compare the packets frame of ``captures`` (default: every corpus capture with a ``.tshark.tsv``).

    Raises:
        VerifyError: ``captures`` is None and the corpus directory does not exist.
    """
    skipped = []
    if captures is None:
        paths = tsv_captures(corpus_dir(corpus, must_exist=True))
    else:
        paths = []
        for capture in map(Path, captures):
            tsv = capture.with_name(capture.name + ".tshark.tsv")
            if tsv.exists():
                paths.append(capture)
            else:
                skipped.append((str(capture), f"no tshark dump beside it ({tsv.name})"))
    results = [compare_file(path) for path in paths]
    rows = [(name, c, e, d) for name, (c, e, d) in field_totals(results).items() if c]
    if rows:
        rows.append(("overall", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)))
    fields = pd.DataFrame(rows, columns=["field", "compared", "equal", "deliberate"])
    fields.insert(3, "%", (100.0 * fields["equal"] / fields["compared"]).round(3))
    fields["% excl. deliberate"] = (100.0 * (fields["equal"] + fields["deliberate"]) / fields["compared"]).round(3)
    groups = mismatch_groups(results)
    return PacketsVerification(
        fields=fields,
        mismatches=pd.DataFrame([(g.count, g.file, g.field, g.ours, g.theirs, g.first_frame, "yes" if g.reason else "")
                                 for g in groups[:top]],
                                columns=["count", "file", "field", "ours", "tshark", "first frame", "deliberate"]),
        frame_counts=pd.DataFrame([(r.file, r.frames_ours, r.frames_theirs) for r in results
                                   if not r.error and r.frames_ours != r.frames_theirs],
                                  columns=["file", "netsift", "tshark"]),
        errors=pd.DataFrame([(r.file, r.error) for r in results if r.error], columns=["file", "error"]),
        skipped=pd.DataFrame(skipped, columns=["file", "reason"]),
        captures=len(results),
        unexplained=sum(g.count for g in groups if g.reason is None),
    )


# ---- conn against Zeek -----------------------------------------------------------------------


@dataclass
class ConnVerification:
    """netsift's conn frame against Zeek's conn.log baselines.

    Attributes:
        columns: per column ``agree``, ``cells``, ``%``; last row ``overall``
            (``service`` is counted apart: it waits for the application dissectors).
        service: ``(agree, cells)`` of the ``service`` column.
        mismatches: the most frequent (column, zeek, netsift) differences with a log naming one.
        missing: connections in Zeek's log, not netsift's (``log`` and the Zeek row as text).
        extra: connections netsift has and the log does not (logs with address columns).
        skipped: captures or logs not compared and why.
        logs: logs compared.
    """

    columns: pd.DataFrame
    service: tuple[int, int]
    mismatches: pd.DataFrame
    missing: pd.DataFrame
    extra: pd.DataFrame
    skipped: pd.DataFrame
    logs: int = 0


def verify_conn(captures: list[str | os.PathLike] | None = None, corpus: str | os.PathLike | None = None,
                top: int = 20) -> ConnVerification:
    """Compare the conn frame of ``captures`` (default: every corpus capture with a ``.conn.log``).

    Raises:
        VerifyError: ``captures`` is None and the corpus directory does not exist.
    """
    pairs, skipped = baseline_pairs(captures, corpus, ".conn.log")
    per_col, per_col_ok, mismatches, examples = Counter(), Counter(), Counter(), {}
    service_total = service_ok = 0
    missing_all, extra_all = [], []
    logs = 0
    for capture, log, command in pairs:
        result = compare_conn_log(capture, log, command)
        if result.skipped:
            skipped.append((log.name, result.skipped))
            continue
        logs += 1
        missing_all += [(log.name, row) for row in result.missing]
        extra_all += [(log.name, row) for row in result.extra]
        service_ok += result.agree["service"]
        service_total += result.compared["service"]
        for c in result.columns:
            if c != "service":      # missing rows count as wrong cells on every other column
                per_col[c] += result.compared[c] + len(result.missing)
                per_col_ok[c] += result.agree[c]
        for key, count in result.mismatches.items():
            if key[0] != "service":
                mismatches[key] += count
                examples.setdefault(key, log.name)
    rows = [(c, per_col_ok[c], per_col[c]) for c in sorted(per_col, key=lambda c: (-per_col[c], c)) if per_col[c]]
    if rows:
        rows.append(("overall", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    table = pd.DataFrame(rows, columns=["column", "agree", "cells"])
    table["%"] = (100.0 * table["agree"] / table["cells"]).round(2)
    text = lambda row: " ".join(f"{k}={v}" for k, v in row.items() if k not in ("ts", "uid"))  # noqa: E731
    return ConnVerification(
        columns=table,
        service=(service_ok, service_total),
        mismatches=pd.DataFrame([(count, c, want, got, examples[(c, want, got)])
                                 for (c, want, got), count in mismatches.most_common(top)],
                                columns=["count", "column", "zeek", "netsift", "log"]),
        missing=pd.DataFrame([(log, text(row)) for log, row in missing_all], columns=["log", "connection"]),
        extra=pd.DataFrame([(log, text({k: row.get(k) for k in KEY + ("history",)})) for log, row in extra_all],
                           columns=["log", "connection"]),
        skipped=pd.DataFrame(skipped, columns=["file", "reason"]),
        logs=logs,
    )


# ---- dns, http, smtp against Zeek ------------------------------------------------------------

#: The application logs ``netsift verify`` compares, with the baseline's ending.
APPLICATION_LOGS = {"dns": ".dns.log", "http": ".http.log", "smtp": ".smtp.log"}


@dataclass
class LogsVerification:
    """The dns, http and smtp frames against Zeek's logs, one row per log kind.

    Attributes:
        logs: ``log``, ``baselines``, ``compared``, ``equal``, ``%``,
            ``missing rows``, ``extra rows``.  Cells as each comparison module
            counts them: dns and smtp count every cell of a missing or extra row
            as unequal; http counts its non-MIME columns of matched rows (Zeek
            sniffs MIME types with its own signatures) and shows missing rows apart.
        skipped: captures not compared and why (``file``, ``reason``).
    """

    logs: pd.DataFrame
    skipped: pd.DataFrame


def _compare_one(kind: str, capture: Path, log: Path, command: str) -> tuple[int, int, int, int]:
    """(cells compared, equal, missing rows, extra rows) of one baseline of ``kind``."""
    if kind == "dns":
        got = dns.compare_dns_log(capture, log, dns.options_from_command(command))
        return sum(got.total.values()), sum(got.agree.values()), len(got.missing), len(got.extra)
    if kind == "http":
        got = http.compare_http_log(capture, log, command, http.btest_uids(capture.parent.parent))
        plain = [c for c in got.per_column if c not in http.MIME_COLUMNS]
        return (sum(got.per_column[c][0] for c in plain), sum(got.per_column[c][1] for c in plain),
                len(got.missing), len(got.extra))
    got = smtp.compare_smtp_log(capture, log, command, Counter())
    return (sum(n for _, n in got["columns"].values()), sum(ok for ok, _ in got["columns"].values()),
            got["missing"], got["extra"])


def verify_logs(captures: list[str | os.PathLike] | None = None, corpus: str | os.PathLike | None = None,
                kinds: tuple[str, ...] = tuple(APPLICATION_LOGS)) -> LogsVerification:
    """Compare the ``kinds`` (``dns``, ``http``, ``smtp``) of ``captures`` (default: the corpus) with Zeek's logs.

    Raises:
        VerifyError: ``captures`` is None and the corpus directory does not exist.
    """
    rows, skipped = [], []
    for kind in kinds:
        pairs, missing_logs = baseline_pairs(captures, corpus, APPLICATION_LOGS[kind])
        skipped += missing_logs
        if not pairs:
            continue
        compared = equal = missing = extra = 0
        for capture, log, command in pairs:
            c, e, m, x = _compare_one(kind, capture, log, command)
            compared, equal, missing, extra = compared + c, equal + e, missing + m, extra + x
        rows.append((f"{kind}.log", len(pairs), compared, equal,
                     round(100.0 * equal / compared, 2) if compared else 100.0, missing, extra))
    return LogsVerification(
        logs=pd.DataFrame(rows, columns=["log", "baselines", "compared", "equal", "%", "missing rows", "extra rows"]),
        skipped=pd.DataFrame(skipped, columns=["file", "reason"]))
