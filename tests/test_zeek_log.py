"""Zeek log output: TSV header lines, value formatting and escaping, JSON."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyzer import zeek_log
from analyzer.schema import Column

SCHEMA = (
    Column("ts", "Float64", "seconds", "", "", "time"),
    Column("id.orig_p", "UInt16", "int", "", "", "port"),
    Column("name", "string", "text", "", "", "string"),
    Column("flag", "boolean", "bool", "", "", "bool"),
    Column("answers", "object", "text", "", "", "vector[string]"),
    Column("frame.number", "Int64", "int", "", ""),            # not a Zeek field: left out
)


@pytest.fixture
def frame():
    return pd.DataFrame({
        "ts": pd.array([1.5, None], dtype="Float64"),
        "id.orig_p": pd.array([53, None], dtype="UInt16"),
        "name": pd.array(["a\tb\\c, d", "-"], dtype="string"),
        "flag": pd.array([True, None], dtype="boolean"),
        "answers": [["x,y", "z"], []],
        "frame.number": pd.array([1, 2], dtype="Int64"),
    })


def test_tsv_header_and_values(tmp_path, frame):
    path = zeek_log.write_tsv(frame, SCHEMA, tmp_path / "t.log", "test")
    lines = path.read_text().splitlines()
    assert lines[0] == "#separator \\x09"
    assert lines[1:5] == ["#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\ttest"]
    assert lines[5].startswith("#open\t") and lines[-1].startswith("#close\t")
    assert lines[6] == "#fields\tts\tid.orig_p\tname\tflag\tanswers"
    assert lines[7] == "#types\ttime\tport\tstring\tbool\tvector[string]"
    assert lines[8].split("\t") == ["1.500000", "53", "a\\x09b\\x5cc, d", "T", "x\\x2cy,z"]
    assert lines[9].split("\t") == ["-", "-", "\\x2d", "-", "(empty)"]


def test_tsv_reads_back(tmp_path, frame):
    path = zeek_log.write_tsv(frame, SCHEMA, tmp_path / "t.log", "test")
    back = zeek_log.read_tsv(path)
    assert list(back.columns) == ["ts", "id.orig_p", "name", "flag", "answers"]
    assert back["id.orig_p"].tolist()[0] == "53" and pd.isna(back["ts"].iloc[1])


def test_json_omits_unset_fields(tmp_path, frame):
    path = zeek_log.write_json(frame, SCHEMA, tmp_path / "t.json")
    first, second = [json.loads(line) for line in path.read_text().splitlines()]
    assert first == {"ts": 1.5, "id.orig_p": 53, "name": "a\tb\\c, d", "flag": True, "answers": ["x,y", "z"]}
    assert second == {"name": "-", "answers": []}
