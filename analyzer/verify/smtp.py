"""netsift's ``smtp`` frame against Zeek's smtp.log (and SMTP weirds), its commands against tshark.

**Zeek.** The capture beside ``zeek/X.smtp.log`` runs through the pipeline
with :class:`analyzer.smtp.SmtpStage` (checksums not validated when the Zeek
command in ``ORACLES.tsv`` has ``-C``).  Rows are matched on (id.orig_h,
id.orig_p, id.resp_h, id.resp_p, trans_depth), in order within a key.  Only
the columns the log has are compared, as Zeek ASCII text with ``\\xNN``
escapes undone on both sides; ``ts`` (masked by the canonifier) and ``uid``
(random) are skipped; sets compare as sets; ``fuids`` (random ids) is
compared as the number of parts in ``attachments``.  A missing or extra row
counts as a mismatch in every compared column.  The ``weird.log`` beside it
(rows whose source is SMTP) is compared as (name, addl) pairs with
:attr:`SmtpStage.weirds`.

**tshark.** For every ``X.tshark.tsv`` of ``zeek/`` with SMTP fields, and every
capture where netsift finds SMTP, ``smtp_commands`` is compared per frame on
``smtp.req.command``, ``smtp.req.parameter`` and ``smtp.response.code`` (each
frame's values joined with commas, as ``-E occurrence=a``), over the union of
frames either side fills, with ``validate_checksums=False`` as tshark reads
every packet.  :data:`EXPLAINED` lists the understood differences.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..smtp import SMTP, SmtpStage
from ..zeek_log import format_value
from .baseline import read_zeek_log
from .corpus import capture_beside, ignores_checksums, oracle_commands
from .stage import run_stage

KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth")
SKIP = {"ts", "uid"}
ZEEK_TYPES = {c.name: c.zeek_type for c in SMTP if c.zeek_type}
TSHARK_FIELDS = ("smtp.req.command", "smtp.req.parameter", "smtp.response.code")

# Differences with tshark that are understood (keys used in the report).
EXPLAINED = {
    "tshark-split-command": "tshark 4.0 cuts the command after four characters, so STARTTLS (one segment, "
                            "frame 10 of tls-smtp-starttls) shows as command 'STAR' with parameter 'TLS'; "
                            "netsift reports STARTTLS without a parameter, as sent",
    "tshark-port": "tshark decodes SMTP on port 25 only (and 587 heuristically); netsift finds SMTP inside "
                   "the HTTP CONNECT tunnel on port 8240 by Zeek's signatures (http-connect-with-smtp)",
    "tshark-crcrlf": "tshark does not take 'BDAT ... LAST\\r\\r\\n' (two CRs) for a command and shows neither "
                     "it nor the QUIT after it; Zeek and netsift strip the CRs (smtp-bdat-cmd-chunk-size-overflow, "
                     "-negative-chunk-size)",
}
EXPLAINED_CAPTURES = {"http-connect-with-smtp.pcap": "tshark-port", "tls-smtp-starttls.pcap": "tshark-split-command",
                      "smtp-bdat-cmd-chunk-size-overflow.pcap": "tshark-crcrlf",
                      "smtp-bdat-cmd-negative-chunk-size.pcap": "tshark-crcrlf"}


def run_capture(path: Path, validate_checksums: bool = True, **options):
    """The pipeline with an SmtpStage over one capture: ``(tables, stage)``."""
    return run_stage(path, SmtpStage, validate_checksums, **options)


# -- Zeek logs -------------------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(cell: str) -> str:
    """Zeek's ``\\xNN`` escapes undone, bytes read as UTF-8 (invalid bytes as ``\\xNN`` again)."""
    if "\\x" not in cell:
        return cell
    raw = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(cell):
        raw += cell[pos:m.start()].encode("utf-8", "surrogateescape")
        raw.append(int(m.group(1), 16))
        pos = m.end()
    raw += cell[pos:].encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def normal(cell: str, zeek_type: str | None):
    """A cell as a comparable value: sets as frozensets, vectors as tuples, text unescaped."""
    if zeek_type and zeek_type.startswith(("set[", "vector[")):
        if cell in ("-", "(empty)"):
            return cell
        items = [unescape(x) for x in cell.split(",")]
        return frozenset(items) if zeek_type.startswith("set[") else tuple(items)
    return cell if cell in ("-", "(empty)") else unescape(cell)


def ours_cell(value, column: str) -> str:
    """netsift's value as a Zeek cell (``fuids``: the number of attachments)."""
    zeek_type = ZEEK_TYPES.get(column, "string")
    if column == "fuids":
        return str(len(value)) if value is not None else "-"
    return format_value(value, zeek_type)


def compare_log(log: Path, frame, weird_rows: list | None, stage_weirds: list, top: Counter, where: str) -> dict:
    """One smtp.log against the smtp ``frame``; unequal cells are counted into ``top`` under ``where``.

    Returns ``columns`` (``{column: [equal, compared]}``), ``rows``, ``missing``,
    ``extra`` and ``weirds`` (``[matched, Zeek's, netsift's]``; zeros when ``weird_rows`` is None).
    """
    fields, types, rows = read_zeek_log(log)
    ztype = dict(zip(fields, types)) if types else {f: ZEEK_TYPES.get(f) for f in fields}
    columns = [f for f in fields if f not in SKIP and (f in frame.columns or f == "fuids")]
    ours: dict = defaultdict(list)
    for rec in frame.to_dict("records"):
        ours[tuple(str(rec[k]) for k in KEY)].append(rec)
    stats = {c: [0, 0] for c in columns}
    missing = extra = 0
    used: dict = defaultdict(int)
    for row in rows:
        cell = dict(zip(fields, row))
        key = tuple(cell[k] for k in KEY)
        candidates = ours.get(key, [])
        index = used[key]
        used[key] += 1
        rec = candidates[index] if index < len(candidates) else None
        if rec is None:
            missing += 1
        for c in columns:
            stats[c][1] += 1
            if rec is None:
                top[(c, "missing row")] += 1
                continue
            if c == "fuids":
                theirs = "0" if cell[c] in ("-", "(empty)") else str(len(cell[c].split(",")))
                mine = ours_cell(rec["attachments"], c)
            else:
                theirs = normal(cell[c], ztype.get(c))
                mine = normal(ours_cell(rec[c], c), ztype.get(c))
            if theirs == mine:
                stats[c][0] += 1
            else:
                shown = ours_cell(rec[c] if c != "fuids" else rec["attachments"], c)
                top[(c, f"{where}: zeek {cell[c]!r} netsift {shown!r}")] += 1
    for key, recs in ours.items():
        if len(recs) > used.get(key, 0):
            n = len(recs) - used.get(key, 0)
            extra += n
            for c in columns:
                stats[c][1] += n
                top[(c, "extra row")] += n
    weird_stats = [0, 0, 0]
    if weird_rows is not None:
        weird_stats = match_weirds(weird_rows, stage_weirds)
    return {"columns": stats, "rows": len(rows), "missing": missing, "extra": extra, "weirds": weird_stats}


def match_weirds(weird_rows: list, stage_weirds: list) -> list[int]:
    """``[matched, Zeek's, netsift's]`` of Zeek's (name, addl) weirds against the stage's (frame, name, addl)."""
    theirs = Counter(weird_rows)
    mine = Counter((name, addl or "-") for _, name, addl in stage_weirds)
    return [sum((theirs & mine).values()), sum(theirs.values()), sum(mine.values())]


def smtp_weirds(path: Path) -> list:
    """(name, addl) of the weird.log rows that SMTP raised (source SMTP, or an smtp_/exceeded_mime name)."""
    out = []
    for cell in read_zeek_log(path).records():
        if cell.get("source") == "SMTP" or cell.get("name", "").startswith(("smtp_", "exceeded_mime")):
            out.append((cell["name"], cell.get("addl", "-")))
    return out


def compare_smtp_log(capture: Path, log: Path, command: str, top: Counter) -> dict:
    """:func:`compare_log` of ``log`` against ``capture`` run as Zeek's ``command`` ran (``-C``), weird.log included."""
    tables, stage = run_capture(capture, validate_checksums=not ignores_checksums(command))
    weird_log = log.with_name(log.name[:-len(".smtp.log")] + ".weird.log")
    weird_rows = smtp_weirds(weird_log) if weird_log.exists() else None
    return compare_log(log, tables["smtp"], weird_rows, stage.weirds, top, log.name[:-len(".smtp.log")])


# -- tshark ----------------------------------------------------------------------------------------


def read_tshark(path: Path) -> dict:
    """``{frame: {field: text}}`` for the frames with SMTP fields."""
    csv.field_size_limit(1 << 30)
    out = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        index = {name: header.index(name) for name in ("frame.number",) + TSHARK_FIELDS if name in header}
        if len(index) < 4:
            return out
        for row in reader:
            values = {k: row[i] for k, i in index.items() if k != "frame.number" and i < len(row)}
            if any(values.values()):
                out[int(row[index["frame.number"]])] = values
    return out


def ours_tshark(commands) -> dict:
    """netsift's ``smtp_commands`` in the tsv's form: per frame, each field's values joined with commas."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for rec in commands.to_dict("records"):
        frame = int(rec["frame.number"])
        if rec["is_orig"]:
            out[frame]["smtp.req.command"].append(rec["smtp.req.command"])
            if rec["smtp.req.parameter"] not in (None, ""):
                out[frame]["smtp.req.parameter"].append(rec["smtp.req.parameter"])
        else:
            out[frame]["smtp.response.code"].append(str(int(rec["smtp.response.code"])))
    return {f: {k: ",".join(v) for k, v in d.items()} for f, d in out.items()}


def compare_tshark(theirs: dict, mine: dict, name: str, top: Counter) -> dict:
    """``{field: [equal, compared]}`` of one capture; unequal cells are counted into ``top`` with their reason key."""
    stats = {f: [0, 0] for f in TSHARK_FIELDS}
    for frame in sorted(set(theirs) | set(mine)):
        t, m = theirs.get(frame, {}), mine.get(frame, {})
        for field in TSHARK_FIELDS:
            tv, mv = t.get(field, ""), m.get(field, "")
            if not tv and not mv:
                continue
            stats[field][1] += 1
            if tv == mv:
                stats[field][0] += 1
            else:
                top[(field, f"{name} frame {frame}: tshark {tv!r} netsift {mv!r}",
                     EXPLAINED_CAPTURES.get(name, ""))] += 1
    return stats


# -- over the corpus -------------------------------------------------------------------------------


def figures(corpus: Path, tshark: bool = True) -> dict:
    """Every smtp.log (and SMTP weird.log) of the corpus, and with ``tshark`` every tsv, summed.

    Returns ``logs`` (per stem: :func:`compare_log`'s dict), ``columns``
    (``{column: (fraction, equal, compared)}``), ``overall``, ``cells``, ``rows``,
    ``missing``, ``extra``, ``weirds`` and ``top`` (mismatch groups, most common
    first); with ``tshark`` also ``tshark`` (per capture), ``tshark_columns``,
    ``tshark_overall``, ``tshark_top``, ``tshark_explained``,
    ``tshark_unexplained`` and ``tshark_overall_explained``.
    """
    zeek = corpus / "zeek"
    commands = oracle_commands(corpus)
    result = {"logs": {}, "columns": {}, "overall": None, "rows": 0, "missing": 0, "extra": 0,
              "weirds": [0, 0, 0], "top": [], "tshark": {}, "tshark_top": []}
    totals: dict = defaultdict(lambda: [0, 0])
    top: Counter = Counter()
    for log in sorted(zeek.glob("*.smtp.log")):
        stem = log.name[:-len(".smtp.log")]
        capture = capture_beside(zeek, stem)
        if capture is None:
            continue
        got = compare_smtp_log(capture, log, commands.get(f"zeek/{log.name}", ""), top)
        result["logs"][stem] = got
        result["rows"] += got["rows"]
        result["missing"] += got["missing"]
        result["extra"] += got["extra"]
        for i in range(3):
            result["weirds"][i] += got["weirds"][i]
        for c, (ok, n) in got["columns"].items():
            totals[c][0] += ok
            totals[c][1] += n
    # weird logs of SMTP captures without an smtp.log (e.g. mime-header-size-limit)
    for wlog in sorted(zeek.glob("*.weird.log")):
        stem = wlog.name[:-len(".weird.log")]
        if stem in result["logs"] or not smtp_weirds(wlog):
            continue
        capture = capture_beside(zeek, stem)
        if capture is None:
            continue
        _, stage = run_capture(capture)
        weirds = match_weirds(smtp_weirds(wlog), stage.weirds)
        for i, v in enumerate(weirds):
            result["weirds"][i] += v
        result["logs"][stem] = {"columns": {}, "rows": 0, "missing": 0, "extra": 0, "weirds": weirds}
    result["columns"] = {c: (ok / n if n else 1.0, ok, n) for c, (ok, n) in totals.items()}
    ok_all = sum(ok for ok, _ in totals.values())
    n_all = sum(n for _, n in totals.values())
    result["overall"] = ok_all / n_all if n_all else None
    result["cells"] = (ok_all, n_all)
    result["top"] = top.most_common()
    if tshark:
        result.update(tshark_figures(corpus, result["logs"]))
    return result


def tshark_figures(corpus: Path, smtp_stems) -> dict:
    """The tshark comparison over ``zeek/*.tshark.tsv`` (captures with SMTP fields, a stem in
    ``smtp_stems`` or an SMTP greeting ``220 `` in their bytes); the ``tshark*`` keys of :func:`figures`."""
    zeek = corpus / "zeek"
    result = {"tshark": {}}
    t_totals = {f: [0, 0] for f in TSHARK_FIELDS}
    t_top: Counter = Counter()
    for tsv in sorted(zeek.glob("*.tshark.tsv")):
        capture = zeek / tsv.name[:-len(".tshark.tsv")]
        theirs = read_tshark(tsv)
        if not capture.exists():
            continue
        if (not theirs and not any(capture.name.startswith(s) for s in smtp_stems)
                and b"220 " not in capture.read_bytes()):
            continue
        tables, _ = run_capture(capture, validate_checksums=False, commands=True)
        mine = ours_tshark(tables["smtp_commands"])
        if not theirs and not mine:
            continue
        stats = compare_tshark(theirs, mine, capture.name, t_top)
        result["tshark"][capture.name] = stats
        for f, (ok, n) in stats.items():
            t_totals[f][0] += ok
            t_totals[f][1] += n
    result["tshark_columns"] = {f: (ok / n if n else 1.0, ok, n) for f, (ok, n) in t_totals.items()}
    ok_t = sum(ok for ok, _ in t_totals.values())
    n_t = sum(n for _, n in t_totals.values())
    result["tshark_overall"] = ok_t / n_t if n_t else None
    result["tshark_top"] = t_top.most_common()
    explained = sum(n for (_, _, why), n in t_top.items() if why)
    result["tshark_explained"] = explained
    result["tshark_unexplained"] = sum(t_top.values()) - explained
    result["tshark_overall_explained"] = (ok_t + explained) / n_t if n_t else None
    return result
