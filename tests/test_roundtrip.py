"""Round trip: for every scenario x impairment, the analyser's Zeek logs equal the generator's truth.

Each case writes a synthetic capture with its ground truth
(:mod:`captures.synthetic`), runs :func:`analyzer.analyze`, exports the
``conn``/``dns``/``http``/``smtp`` frames through Zeek's JSON log writer
(:func:`analyzer.export.write_table`, format ``json``: Zeek's field names, unset
fields left out) and compares every field of every truth record with the row
of the same connection 4-tuple (+ ``proto``/``trans_id``/``query`` for dns,
``trans_depth`` for http and smtp).  Rows the truth does not have are errors
too, and each malformed frame must give a ``weird`` row (and no other frame
may).

The truth already states what Zeek logs under each impairment (see
``captures/synthetic/truth.py``): lost segments fall only inside content Zeek
skips over and count in ``missed_bytes``; a TCP segment cut by the snaplen is
a content gap; a cut ICMP packet is not counted; ``history`` is left out of
flows that reorder/duplicate/loss touched.  What it cannot state is listed in
EXCEPTIONS, the only fields and rows these tests do not compare.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest

from analyzer import CaptureWarning, analyze
from analyzer.export import write_table
from analyzer.pipeline import SCHEMAS
from captures.synthetic import IMPAIRMENTS, SCENARIOS, generate, read_jsonl

# impairment: {table: (fields not compared, or "row" for the whole row), which rows, why}
EXCEPTIONS = {
    "snaplen": {
        table: ("row", "connections listed in the truth's packets.cut",
                ("their frames carry only the first snaplen bytes: Zeek's analyzers see content gaps "
                 "or cut datagrams there, and what they recover from the rest is not modelled"))
        for table in ("dns", "http", "smtp")
    },
}

# Analyser bugs these tests found and that are not fixed yet: (scenario, case, seed): reason.
# Strict xfail, so a fix makes the case fail until its entry goes.
KNOWN_ANALYZER_BUGS: dict = {}

# A few impairments at once.
COMBINED = {
    "random+reorder+duplicate+fragment+vlan+ipv6": {"segment": "random", "reorder": 0.3, "duplicate": 0.3,
                                                    "fragment": 576, "vlan": (10,), "ipv6": True},
    "every-byte+loss+duplicate+qinq": {"segment": "every-byte", "loss": 0.2, "duplicate": 0.2, "vlan": (10, 20)},
    "loss+reorder+malformed+pcapng+ns": {"loss": 0.3, "reorder": 0.3, "malformed": 0.1, "pcapng": True,
                                         "nanosecond": True},
}
CASES = {**IMPAIRMENTS, **COMBINED}
SEEDS = (1, 2)
TABLES = ("conn", "dns", "http", "smtp")
SETS = {"smtp": ("rcptto", "to", "cc")}     # Zeek sets: order is not part of the value
# Times: the truth has µs (or ns) and the float64 of an epoch time ~1.7e9 keeps 0.24 µs.
TIME_TOLERANCE = 4e-7


def _key(table: str, rec: dict) -> tuple:
    key = (rec.get("id.orig_h"), rec.get("id.orig_p"), rec.get("id.resp_h"), rec.get("id.resp_p"))
    if table == "conn":
        return key + (rec.get("proto"),)
    if table == "dns":
        return key + (rec.get("proto"), rec.get("trans_id"), rec.get("query"))
    return key + (rec.get("trans_depth"),)


def _same(table: str, name: str, want, got) -> bool:
    if name in SETS.get(table, ()) and isinstance(want, list) and isinstance(got, list):
        return sorted(want) == sorted(got)
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(want, got, rel_tol=0, abs_tol=TIME_TOLERANCE)
    return type(want) is type(got) and want == got


def _zeek_json(frame, table: str, path) -> list[dict]:
    write_table(frame, path, "json", SCHEMAS[table], table)
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _compare(table: str, truth: list[dict], got: list[dict], skip_rows: set) -> list[str]:
    """Differences between truth records and log rows of one table, one line each."""
    problems = []
    rows: dict[tuple, list[dict]] = {}
    for row in got:
        rows.setdefault(_key(table, row), []).append(row)
    for rec in truth:
        key = _key(table, rec)
        if key[:4] + (rec.get("proto", "tcp"),) in skip_rows:
            rows.pop(key, None)
            continue
        candidates = rows.get(key)
        if not candidates:
            problems.append(f"{table} {key}: missing row; truth {rec}")
            continue
        row = candidates.pop(0)
        for name, want in rec.items():
            if name == "table":
                continue
            if name not in row:
                problems.append(f"{table} {key} {name}: truth {want!r}, analyser unset")
            elif not _same(table, name, want, row[name]):
                problems.append(f"{table} {key} {name}: truth {want!r}, analyser {row[name]!r}")
    for key, rest in rows.items():
        for row in rest:
            if key[:4] + (row.get("proto", "tcp"),) not in skip_rows:
                problems.append(f"{table} {key}: extra row {row}")
    return problems


def _run(tmp_path, scenario: str, seed: int, kw: dict):
    path = tmp_path / ("c.pcapng" if kw.get("pcapng") else "c.pcap")
    truth_path = tmp_path / "c.truth.jsonl"
    count = 2 if kw.get("segment") == "every-byte" else 8
    generate(scenario, path, seed=seed, count=count, truth_path=truth_path, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptureWarning)     # a valid file reads without reader warnings
        result = analyze(path)
    return read_jsonl(truth_path), result


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_frames_equal_truth(tmp_path, request, scenario, case, seed):
    bug = KNOWN_ANALYZER_BUGS.get((scenario, case, seed))
    if bug:
        request.applymarker(pytest.mark.xfail(strict=True, reason=bug))
    truth, result = _run(tmp_path, scenario, seed, CASES[case])
    head = truth[0]
    assert head["table"] == "packets" and len(result.packets) == head["frames"]
    problems = []
    for table in TABLES:
        exception = EXCEPTIONS.get(case, {}).get(table)
        skip_rows = set()
        if exception is not None:
            assert exception[0] == "row", "field exceptions would go here"
            skip_rows = {tuple(c) for c in head["cut"]}
        got = _zeek_json(result.tables[table], table, tmp_path / f"{table}.json")
        problems += _compare(table, [r for r in truth if r["table"] == table], got, skip_rows)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])

    # Weirds: one or more for each malformed frame, none for any other frame (the
    # snaplen's cut frames give Zeek's truncation weirds; EXCEPTIONS skips them).
    weird_frames = set(result.weird["frame.number"].astype(int).tolist())
    malformed = set(head["malformed"])
    assert malformed <= weird_frames, f"malformed frames without a weird row: {sorted(malformed - weird_frames)}"
    if "snaplen" not in CASES[case]:
        assert weird_frames <= malformed, result.weird[~result.weird["frame.number"].isin(malformed)].to_string()


def test_impairments_leave_their_mark(tmp_path):
    """The cases above are not vacuous: each impairment shows in the truth or the file."""
    seen = {}
    for case in ("loss", "malformed", "snaplen", "fragment"):
        truth, _ = _run(tmp_path, "mixed", 1, IMPAIRMENTS[case])
        head, conns = truth[0], [r for r in truth if r["table"] == "conn"]
        seen[case] = {"missed": sum(c["missed_bytes"] for c in conns), "malformed": len(head["malformed"]),
                      "cut": len(head["cut"]), "fragmented": head["fragmented"],
                      "http": sum(r["table"] == "http" for r in truth)}
    assert seen["loss"]["missed"] > 0 and seen["loss"]["http"] > 0
    assert seen["malformed"]["malformed"] > 0
    assert seen["snaplen"]["cut"] > 0 and seen["snaplen"]["missed"] > 0
    assert seen["fragment"]["fragmented"] > 0
