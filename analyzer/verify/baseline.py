"""Reading Zeek's baseline logs as text, and writing netsift's values as the same text.

A baseline is either Zeek's ASCII log (``#separator``, ``#fields``,
``#types`` … header lines, then one tab-separated line per record; see
``base/frameworks/logging/writers/ascii.zeek``) or ``zeek-cut -m`` output (a
first line of column names, no ``#`` lines).  btest canonifiers add ``### ``
comment lines; they are skipped.  Cells stay Zeek's text (``-`` unset,
``(empty)`` empty, ``\\xNN`` escapes), so they compare with netsift's values
formatted by :func:`analyzer.zeek_log.format_value`.  (``analyzer.zeek_log``
writes logs and reads back its own; this reader also takes ``zeek-cut``
output and keeps the text as it is.)
"""

from __future__ import annotations

import os
from typing import NamedTuple

import pandas as pd

from ..zeek_log import format_value


class ZeekLog(NamedTuple):
    """A baseline log: ``fields`` (column names), ``types`` (``#types``, None for zeek-cut output),
    ``rows`` (one list of cell texts per record, in file order)."""

    fields: list[str]
    types: list[str] | None
    rows: list[list[str]]

    def records(self) -> list[dict[str, str]]:
        """The rows as ``{field: cell}`` dicts."""
        return [dict(zip(self.fields, row)) for row in self.rows]

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame of ``object`` cells (text; a short row is padded with None)."""
        return pd.DataFrame(self.rows, columns=self.fields, dtype=object)


def read_zeek_log(path: str | os.PathLike) -> ZeekLog:
    """Read a Zeek ASCII log or a ``zeek-cut -m`` file (bytes that are not UTF-8 kept as surrogates).

    Blank lines and btest's ``###`` lines are skipped; a file with neither
    ``#fields`` nor a header line gives no fields and no rows.

    Raises:
        OSError: the file cannot be read.
    """
    fields, types, rows = None, None, []
    with open(path, encoding="utf-8", errors="surrogateescape") as source:
        for line in source:
            line = line.rstrip("\n")
            if not line or line.startswith("###"):
                continue
            if line.startswith("#"):
                if line.startswith("#fields"):
                    fields = line.split("\t")[1:]
                elif line.startswith("#types"):
                    types = line.split("\t")[1:]
                continue
            if fields is None:
                fields = line.split("\t")       # zeek-cut -m: the first line names the columns
            else:
                rows.append(line.split("\t"))
    return ZeekLog(fields or [], types, rows)


def zeek_text(frame: pd.DataFrame, columns, types: dict[str, str]) -> dict[str, list[str]]:
    """netsift's ``columns`` of ``frame`` as Zeek ASCII cells, ``{column: [cell per row]}``.

    ``types`` maps a column to its Zeek type (``analyzer.schema.Column.zeek_type``);
    a column without one is written with ``str`` (``-`` for null), a column the
    frame lacks as ``-`` on every row.
    """
    out = {}
    for name in columns:
        values = frame[name].tolist() if name in frame else [None] * len(frame)
        zeek_type = types.get(name)
        out[name] = [format_value(v, zeek_type) if zeek_type else ("-" if v is None or v is pd.NA else str(v))
                     for v in values]
    return out
