"""Zeek log output: the ASCII TSV format (with its ``#`` header lines) and Zeek's JSON.

The TSV layout follows Zeek's ASCII writer (``base/frameworks/logging/writers/ascii.zeek``):
``#separator \\x09``, ``#set_separator ,``, ``#empty_field (empty)``,
``#unset_field -``, ``#path``, ``#open``, ``#fields``, ``#types``, one line per
record, ``#close``.  Values: times and intervals with 6 decimals, bools ``T``/``F``,
unset ``-``, empty sets and strings ``(empty)``, set and vector elements joined with
``,``; separators, non-printable bytes and a value that equals ``-`` or
``(empty)`` are escaped as ``\\xNN``, so ``zeek-cut`` reads the files.  JSON:
one object per line, unset fields left out, times as epoch seconds.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pandas as pd

from .schema import Column

SEPARATOR, SET_SEPARATOR, EMPTY, UNSET = "\t", ",", "(empty)", "-"


def _escape(text: str, in_container: bool = False) -> str:
    out = []
    specials = "\t\\," if in_container else "\t\\"
    for char in text:
        code = ord(char)
        if char in specials or code < 0x20 or code == 0x7F:
            # Inside a set or vector the set separator is escaped too, or it would split the value.
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    escaped = "".join(out)
    if escaped in (UNSET, EMPTY):
        escaped = "".join(f"\\x{ord(c):02x}" for c in escaped)
    return escaped


def _is_unset(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_value(value, zeek_type: str, in_container: bool = False) -> str:
    """One TSV cell for ``value`` of Zeek type ``zeek_type``."""
    if zeek_type.startswith(("set[", "vector[")):
        if _is_unset(value):
            return UNSET
        items = list(value)
        if not items:
            return EMPTY
        inner = zeek_type[zeek_type.index("[") + 1:-1]
        return SET_SEPARATOR.join(format_value(item, inner, True) for item in items)
    if _is_unset(value):
        return UNSET
    if zeek_type in ("time", "interval", "double"):
        if isinstance(value, pd.Timestamp):
            value = value.value / 1e9
        return f"{float(value):.6f}"
    if zeek_type == "bool":
        return "T" if bool(value) else "F"
    if zeek_type in ("count", "port", "int"):
        return str(int(value))
    text = str(value)
    return EMPTY if text == "" else _escape(text, in_container)


def _json_value(value, zeek_type: str):
    if zeek_type.startswith(("set[", "vector[")):
        inner = zeek_type[zeek_type.index("[") + 1:-1]
        return [_json_value(item, inner) for item in value]
    if zeek_type in ("time", "interval", "double"):
        return value.value / 1e9 if isinstance(value, pd.Timestamp) else float(value)
    if zeek_type == "bool":
        return bool(value)
    if zeek_type in ("count", "port", "int"):
        return int(value)
    return str(value)


def zeek_columns(schema: Iterable[Column]) -> list[Column]:
    """The columns of ``schema`` that Zeek's log has (those with a ``zeek_type``)."""
    return [column for column in schema if column.zeek_type]


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d-%H-%M-%S")


def write_tsv(frame: pd.DataFrame, schema: Iterable[Column], path: str | os.PathLike, log_path: str) -> Path:
    """Write ``frame`` as a Zeek ASCII log named ``log_path`` (``conn``, ``weird`` …) to ``path``.

    Raises:
        OSError: the file cannot be written.
    """
    columns = zeek_columns(schema)
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("#separator \\x09\n")
        out.write(f"#set_separator{SEPARATOR}{SET_SEPARATOR}\n")
        out.write(f"#empty_field{SEPARATOR}{EMPTY}\n")
        out.write(f"#unset_field{SEPARATOR}{UNSET}\n")
        out.write(f"#path{SEPARATOR}{log_path}\n")
        out.write(f"#open{SEPARATOR}{_stamp(datetime.now(timezone.utc))}\n")
        out.write("#fields" + SEPARATOR + SEPARATOR.join(c.name for c in columns) + "\n")
        out.write("#types" + SEPARATOR + SEPARATOR.join(c.zeek_type for c in columns) + "\n")
        cells = [[format_value(v, c.zeek_type) for v in frame[c.name].tolist()] for c in columns]
        for row in zip(*cells):
            out.write(SEPARATOR.join(row) + "\n")
        out.write(f"#close{SEPARATOR}{_stamp(datetime.now(timezone.utc))}\n")
    return path


def write_json(frame: pd.DataFrame, schema: Iterable[Column], path: str | os.PathLike) -> Path:
    """Write ``frame`` as Zeek JSON lines (unset fields omitted) to ``path``.

    Raises:
        OSError: the file cannot be written.
    """
    columns = zeek_columns(schema)
    path = Path(path)
    values = [frame[c.name].tolist() for c in columns]
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for row in zip(*values):
            record = {c.name: _json_value(v, c.zeek_type) for c, v in zip(columns, row)
                      if not (_is_unset(v) if not c.zeek_type.startswith(("set[", "vector[")) else v is None)}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return path


def read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Zeek ASCII log (ours or Zeek's) into a frame of strings, ``-`` as null (for tests and zeek-cut users)."""
    fields, rows = None, []
    with open(path, encoding="utf-8") as source:
        for line in source:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split(SEPARATOR)[1:]
            elif line and not line.startswith("#"):
                rows.append([None if cell == UNSET else cell for cell in line.split(SEPARATOR)])
    return pd.DataFrame(rows, columns=fields, dtype="string")
