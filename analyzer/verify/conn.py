"""netsift's ``conn`` frame against Zeek's ``conn.log`` baselines, column by column.

The capture is analysed with :func:`analyzer.analyze` (checksums validated
unless the baseline's Zeek command had ``-C``).  Rows are matched on
(id.orig_h, id.orig_p, id.resp_h, id.resp_p, proto) as far as the log has
those columns (several rows with one key are paired in the order that agrees
best; logs without address columns are paired in order).  Every column the
baseline has is compared except ``ts`` and ``uid`` (masked / random in Zeek);
``tunnel_parents`` is compared on presence only (uids differ by design).
``service`` is compared like the others; its values of protocols netsift
has no stage for (:data:`NOT_DISSECTED_SERVICES`) are counted so reports can
set them apart.  Field meanings: Zeek's ``base/protocols/conn/main.zeek``.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .baseline import read_zeek_log
from .corpus import ignores_checksums

#: The connection key (Zeek's ``conn_id`` and ``proto``).
KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
#: Columns never compared: ``ts`` is masked by btest's canonifier, ``uid`` is random.
SKIP = {"ts", "uid"}
#: Zeek analyzers netsift does not have: a ``service`` cell naming only these is counted apart.
NOT_DISSECTED_SERVICES = {"ftp", "ftp-data", "ntp", "dhcp", "ssh"}
#: conn.log columns netsift fills.
CONN_COLUMNS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration", "orig_bytes",
                "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts",
                "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto")


def zeek_text(column: str, value) -> str:
    """netsift's ``value`` of ``column`` written as Zeek writes it in an ASCII log (``tunnel_parents``: presence)."""
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
    """A baseline cell in the form :func:`zeek_text` gives (``tunnel_parents`` as ``(empty)``/``(set)``)."""
    if column == "tunnel_parents":
        return "(empty)" if value in ("-", "(empty)", "") else "(set)"
    return value


def run_conn(pcap: str | os.PathLike, validate: bool, command: str = "") -> pd.DataFrame:
    """The conn frame of ``pcap`` (reader warnings silenced: they are not what is compared).

    DNS limits the Zeek ``command`` lowered (``dns_max_queries=N``,
    ``dns_max_compression_chain_depth=N``) are given to the DNS stage: its
    limit weirds put Zeek's ``X`` in the connection's history.
    """
    from captures import open_capture

    from ..dns import DnsStage
    from ..pipeline import Pipeline
    from .dns import options_from_command

    pipeline = Pipeline(validate_checksums=validate)
    limits = {k: v for k, v in options_from_command(command).items() if k != "ignore_checksums"}
    if limits:
        pipeline.replace(DnsStage(connections=pipeline.connections, ignore_checksums=not validate, **limits))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_capture(pcap) as reader:
            for batch in reader.batches():
                pipeline.feed(batch)
        return pipeline.finish()["conn"]


def pair_rows(base_rows: list[dict], ours_rows: list[dict], columns: list[str]):
    """Pair baseline rows with ours on the key columns the log has: ``(pairs, missing, extra)``.

    Within one key, up to 5 rows a side are paired in the order that agrees
    on most cells; more are paired in order.  A log without address columns
    is paired row by row.
    """
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


@dataclass
class ConnLogComparison:
    """One conn.log baseline against netsift's conn frame of its capture.

    Attributes:
        log: the baseline's file name.
        columns: the columns compared, in the log's order (the match key left
            out when the log has address columns: it agrees by construction).
        compared, agree: per column, cells of paired rows and how many are equal.
        missing: Zeek's rows with no netsift row (``{field: cell}``).
        extra: netsift's rows (as Zeek text, :data:`CONN_COLUMNS`) with no Zeek row.
        mismatches: ``{(column, zeek, netsift): count}`` in the order first seen.
        skipped: why nothing was compared (then the rest is empty), else None.
    """

    log: str
    columns: list[str] = field(default_factory=list)
    compared: Counter = field(default_factory=Counter)
    agree: Counter = field(default_factory=Counter)
    missing: list[dict] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)
    mismatches: Counter = field(default_factory=Counter)
    skipped: str | None = None

    def not_dissected(self) -> int:
        """Unequal ``service`` cells where Zeek names only :data:`NOT_DISSECTED_SERVICES` and netsift none."""
        return sum(count for (column, want, got), count in self.mismatches.items()
                   if column == "service" and got in ("-", None) and set(want.split(",")) <= NOT_DISSECTED_SERVICES)


def compare_conn_log(capture: str | os.PathLike, log: str | os.PathLike, command: str = "") -> ConnLogComparison:
    """Compare the conn frame of ``capture`` with the Zeek ``log`` made by ``command`` (``-C``: no checksums).

    Raises:
        OSError: the log cannot be read; CaptureError: the capture is not a capture.
    """
    baseline = read_zeek_log(log)
    columns, base_rows = baseline.fields, baseline.records()
    result = ConnLogComparison(Path(log).name)
    compared = [c for c in columns if c not in SKIP and c in CONN_COLUMNS]
    if not compared:
        result.skipped = "no comparable column: " + ",".join(columns)
        return result
    frame = run_conn(capture, not ignores_checksums(command), command)
    ours_rows = [{c: zeek_text(c, record.get(c)) for c in CONN_COLUMNS} for record in frame.to_dict("records")]
    pairs, result.missing, result.extra = pair_rows(base_rows, ours_rows, columns)
    has_key = any(k in columns for k in ("id.orig_h", "id.resp_h"))
    result.columns = [c for c in compared if not (has_key and c in KEY)]
    for base, ours in pairs:
        for c in result.columns:
            want, got = baseline_text(c, base.get(c, "-")), ours.get(c)
            result.compared[c] += 1
            if want == got:
                result.agree[c] += 1
            else:
                result.mismatches[(c, want, got)] += 1
    return result
