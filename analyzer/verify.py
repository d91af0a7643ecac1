"""Conformance figures for ``netsift verify``: netsift against tshark (packets) and Zeek (conn.log).

The comparisons themselves live in the repository's ``bench/`` scripts
(``bench/conformance.py``: the packets frame against the corpus's
``X.tshark.tsv`` dumps; ``bench/zeek_conformance.py``: the conn frame against
Zeek's ``X.conn.log`` baselines).  This module loads them with importlib from
the checkout (they are not part of the installed package) and turns their
results into DataFrames:

- :func:`verify_packets` calls ``conformance.compare_file`` per capture and
  sums per field as ``conformance.report`` does (cells compared, equal,
  deliberate differences from ``DELIBERATE_DIFFERENCES``);
- :func:`verify_conn` runs ``zeek_conformance``'s pieces (``run_conn``,
  ``read_zeek_log``, ``pair_rows``, ``zeek_text``, ``baseline_text``,
  ``oracle_commands``) per capture, with the accounting of
  ``zeek_conformance.conformance_conn`` (per file here, so single captures
  can be checked).

The corpus directory is ``corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus`` (the bench scripts' rule).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


class VerifyError(Exception):
    """The corpus or the bench scripts cannot be found."""


def load_bench(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` of the checkout (cached in ``sys.modules`` as ``netsift_bench_<name>``)."""
    module_name = f"netsift_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = BENCH / f"{name}.py"
    if not path.exists():
        raise VerifyError(f"{path} not found: netsift verify runs from a repository checkout (it uses bench/)")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module      # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def corpus_dir(arg: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """``arg``, else ``$NETSIFT_CORPUS``, else ``<repo>/../shared/corpus``; VerifyError when it is not a directory."""
    if arg:
        path = Path(arg)
    elif os.environ.get("NETSIFT_CORPUS"):
        path = Path(os.environ["NETSIFT_CORPUS"])
    else:
        path = REPO.parent / "shared" / "corpus"
    if must_exist and not path.is_dir():
        raise VerifyError(f"corpus directory not found: {path} (give --corpus DIR or set $NETSIFT_CORPUS)")
    return path


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
    """Compare the packets frame of ``captures`` (default: every corpus capture with a ``.tshark.tsv``)."""
    conformance = load_bench("conformance")
    skipped = []
    if captures is None:
        paths = conformance.tsv_captures(corpus_dir(corpus))
    else:
        paths = []
        for capture in map(Path, captures):
            tsv = capture.with_name(capture.name + ".tshark.tsv")
            if tsv.exists():
                paths.append(capture)
            else:
                skipped.append((str(capture), f"no tshark dump beside it ({tsv.name})"))
    results = [conformance.compare_file(path) for path in paths]
    totals = {name: [0, 0, 0] for name in conformance.FIELDS}
    groups = []
    for result in results:
        for name, (compared, equal) in result.counts.items():
            totals[name][0] += compared
            totals[name][1] += equal
        for (name, ours, theirs), (count, example, reassembly) in result.mismatches.items():
            reason = conformance.deliberate_reason(result.file, name, reassembly)
            if reason:
                totals[name][2] += count
            groups.append((count, result.file, name, ours, theirs, example, "yes" if reason else ""))
    rows = [(name, c, e, d) for name, (c, e, d) in totals.items() if c]
    if rows:
        rows.append(("overall", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)))
    fields = pd.DataFrame(rows, columns=["field", "compared", "equal", "deliberate"])
    fields.insert(3, "%", (100.0 * fields["equal"] / fields["compared"]).round(3))
    fields["% excl. deliberate"] = (100.0 * (fields["equal"] + fields["deliberate"]) / fields["compared"]).round(3)
    groups.sort(key=lambda g: (g[6] == "yes", -g[0], g[1], g[2]))
    unexplained = sum(g[0] for g in groups if g[6] != "yes")
    return PacketsVerification(
        fields=fields,
        mismatches=pd.DataFrame(groups[:top], columns=["count", "file", "field", "ours", "tshark", "first frame",
                                                      "deliberate"]),
        frame_counts=pd.DataFrame([(r.file, r.frames_ours, r.frames_theirs) for r in results
                                   if not r.error and r.frames_ours != r.frames_theirs],
                                  columns=["file", "netsift", "tshark"]),
        errors=pd.DataFrame([(r.file, r.error) for r in results if r.error], columns=["file", "error"]),
        skipped=pd.DataFrame(skipped, columns=["file", "reason"]),
        captures=len(results),
        unexplained=unexplained,
    )


# ---- conn against Zeek -----------------------------------------------------------------------

#: conn columns netsift has (zeek_conformance's list).
CONN_COLUMNS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration", "orig_bytes",
                "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts",
                "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto")


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


def _conn_log_pairs(captures, corpus) -> tuple[list[tuple[Path, Path, str]], list[tuple[str, str]]]:
    """(capture, conn.log, Zeek command) to compare, and the skipped ones with reasons."""
    zc = load_bench("zeek_conformance")
    pairs, skipped = [], []
    if captures is None:
        root = corpus_dir(corpus)
        zeek_dir = root / "zeek"
        commands = zc.oracle_commands(str(root))
        for log in sorted(zeek_dir.glob("*.conn.log")):
            stem = log.name[: -len(".conn.log")]
            capture = next((zeek_dir / (stem + ext) for ext in (".pcap", ".pcapng")
                            if (zeek_dir / (stem + ext)).exists()), None)
            if capture is None:
                skipped.append((f"zeek/{log.name}", "no capture"))
            else:
                pairs.append((capture, log, commands.get(f"zeek/{log.name}", "")))
        return pairs, skipped
    for capture in map(Path, captures):
        stem = capture.name
        for ext in (".gz", ".pcapng", ".pcap"):
            stem = stem.removesuffix(ext)
        log = capture.with_name(stem + ".conn.log")
        if not log.exists():
            skipped.append((str(capture), f"no Zeek conn.log beside it ({log.name})"))
            continue
        commands = zc.oracle_commands(str(capture.parent.parent))
        pairs.append((capture, log, commands.get(f"{capture.parent.name}/{log.name}", "")))
    return pairs, skipped


def verify_conn(captures: list[str | os.PathLike] | None = None, corpus: str | os.PathLike | None = None,
                top: int = 20) -> ConnVerification:
    """Compare the conn frame of ``captures`` (default: every corpus capture with a ``.conn.log``)."""
    zc = load_bench("zeek_conformance")
    pairs, skipped = _conn_log_pairs(captures, corpus)
    per_col, per_col_ok, mismatches, examples = Counter(), Counter(), Counter(), {}
    service_total = service_ok = 0
    missing_all, extra_all = [], []
    logs = 0
    for capture, log, command in pairs:
        columns, base_rows = zc.read_zeek_log(str(log))
        compared = [c for c in columns if c not in zc.SKIP and c in CONN_COLUMNS]
        if not compared:
            skipped.append((log.name, "no comparable column: " + ",".join(columns)))
            continue
        validate = "-C" not in command.split()
        frame = zc.run_conn(str(capture), validate)
        ours_rows = [{c: zc.zeek_text(c, record.get(c)) for c in CONN_COLUMNS} for record in frame.to_dict("records")]
        matched, missing, extra = zc.pair_rows(base_rows, ours_rows, columns)
        logs += 1
        missing_all += [(log.name, row) for row in missing]
        extra_all += [(log.name, row) for row in extra]
        has_key = any(k in columns for k in ("id.orig_h", "id.resp_h"))
        for base, ours in matched:
            for c in compared:
                if c in zc.KEY and has_key:
                    continue
                want, got = zc.baseline_text(c, base.get(c, "-")), ours.get(c)
                if c == "service":
                    service_total += 1
                    service_ok += want == got
                    continue
                per_col[c] += 1
                if want == got:
                    per_col_ok[c] += 1
                else:
                    mismatches[(c, want, got)] += 1
                    examples.setdefault((c, want, got), log.name)
        for _ in missing:
            for c in compared:
                if c != "service" and not (has_key and c in zc.KEY):
                    per_col[c] += 1
    rows = [(c, per_col_ok[c], per_col[c]) for c in sorted(per_col, key=lambda c: (-per_col[c], c))]
    if rows:
        rows.append(("overall", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    table = pd.DataFrame(rows, columns=["column", "agree", "cells"])
    table["%"] = (100.0 * table["agree"] / table["cells"]).round(2)
    text = lambda row: " ".join(f"{k}={v}" for k, v in row.items() if k not in ("ts", "uid"))
    return ConnVerification(
        columns=table,
        service=(service_ok, service_total),
        mismatches=pd.DataFrame([(count, c, want, got, examples[(c, want, got)])
                                 for (c, want, got), count in mismatches.most_common(top)],
                                columns=["count", "column", "zeek", "netsift", "log"]),
        missing=pd.DataFrame([(log, text(row)) for log, row in missing_all], columns=["log", "connection"]),
        extra=pd.DataFrame([(log, text({k: row.get(k) for k in zc.KEY + ("history",)})) for log, row in extra_all],
                           columns=["log", "connection"]),
        skipped=pd.DataFrame(skipped, columns=["file", "reason"]),
        logs=logs,
    )


@dataclass
class Verification:
    """Both comparisons (either may be None when not asked for)."""

    packets: PacketsVerification | None = None
    conn: ConnVerification | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No unexplained packet difference, no analyze error, and conn.log fully in agreement."""
        ok = True
        if self.packets is not None:
            ok &= self.packets.unexplained == 0 and self.packets.errors.empty and self.packets.frame_counts.empty
        if self.conn is not None and len(self.conn.columns):
            overall = self.conn.columns.iloc[-1]
            ok &= bool(overall["agree"] == overall["cells"]) and self.conn.missing.empty and self.conn.extra.empty
        return bool(ok)


def verify(captures: list[str | os.PathLike] | None = None, corpus: str | os.PathLike | None = None,
           tables: tuple[str, ...] = ("packets", "conn"), top: int = 20) -> Verification:
    """Run the comparisons named in ``tables`` on ``captures`` (default: the whole corpus)."""
    if captures is None:
        corpus_dir(corpus)          # a clear error before any work
    result = Verification()
    if "packets" in tables:
        result.packets = verify_packets(captures, corpus, top)
    if "conn" in tables:
        result.conn = verify_conn(captures, corpus, top)
    return result
