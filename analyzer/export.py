"""Writing frames to files other tools read: Parquet, CSV, JSON lines, Zeek logs.

One file per table: ``DIR/<table>.<extension>``.  Parquet keeps the dtypes
(categoricals, nullable integers, UTC timestamps) through pyarrow; CSV writes
nulls as empty cells; JSON lines writes one object per row with nulls as
``null`` and timestamps in ISO 8601.  ``zeek`` writes Zeek's ASCII logs
(``conn.log``, ``weird.log`` …) and ``json`` Zeek's JSON logs
(``conn.json`` …), for the tables Zeek has a log for.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from . import zeek_log
from .schema import Column

EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl", "zeek": "log", "json": "json"}
ZEEK_FORMATS = ("zeek", "json")


def write_table(frame: pd.DataFrame, path: str | os.PathLike, file_format: str,
                schema: tuple[Column, ...] = (), name: str = "") -> Path:
    """Write one frame to ``path`` in ``file_format``.

    ``schema`` and ``name`` (the Zeek log path, e.g. ``conn``) are needed by the
    Zeek formats, which write only the columns Zeek's log has.

    Raises:
        ValueError: unknown format.
        OSError: the file cannot be written.
    """
    path = Path(path)
    if file_format == "zeek":
        zeek_log.write_tsv(frame, schema, path, name)
    elif file_format == "json":
        zeek_log.write_json(frame, schema, path)
    elif file_format == "parquet":
        frame.to_parquet(path, index=False, engine="pyarrow")
    elif file_format == "csv":
        frame.to_csv(path, index=False)
    elif file_format == "jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso", date_unit="ns")
    else:
        raise ValueError(f"unknown format {file_format!r}; expected one of {sorted(EXTENSIONS)}")
    return path


def write_tables(tables: dict[str, pd.DataFrame], directory: str | os.PathLike, file_format: str,
                 names: list[str] | None = None, schemas: dict[str, tuple[Column, ...]] | None = None
                 ) -> list[Path]:
    """Write the named tables (default all) to ``directory`` (created), one file each; returns the paths.

    With a Zeek format, tables that have no Zeek log (``packets``) are left out
    when ``names`` is None, and are an error when named.

    Raises:
        KeyError: a requested table does not exist, or has no Zeek log form.
    """
    from .schema import TABLES
    schemas = schemas or TABLES
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    zeek = file_format in ZEEK_FORMATS

    def has_log(name):
        return bool(zeek_log.zeek_columns(schemas.get(name, ())))

    if names is None:
        names = [name for name in tables if not zeek or has_log(name)]
    missing = [name for name in names if name not in tables]
    if missing:
        raise KeyError(f"no such table: {', '.join(missing)} (available: {', '.join(tables)})")
    if zeek and not all(has_log(name) for name in names):
        raise KeyError(f"Zeek has no log for: {', '.join(n for n in names if not has_log(n))}")
    return [write_table(tables[name], directory / f"{name}.{EXTENSIONS[file_format]}", file_format,
                        schemas.get(name, ()), name)
            for name in names]
