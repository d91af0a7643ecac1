"""Writing frames to files other tools read: Parquet, CSV, JSON lines.

One file per table: ``DIR/<table>.<extension>``.  Parquet keeps the dtypes
(categoricals, nullable integers, UTC timestamps) through pyarrow; CSV writes
nulls as empty cells; JSON lines writes one object per row with nulls as
``null`` and timestamps in ISO 8601.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


def write_table(frame: pd.DataFrame, path: str | os.PathLike, file_format: str) -> Path:
    """Write one frame to ``path`` in ``file_format`` (``parquet``, ``csv`` or ``jsonl``).

    Raises:
        ValueError: unknown format.
        OSError: the file cannot be written.
    """
    path = Path(path)
    if file_format == "parquet":
        frame.to_parquet(path, index=False, engine="pyarrow")
    elif file_format == "csv":
        frame.to_csv(path, index=False)
    elif file_format == "jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso", date_unit="ns")
    else:
        raise ValueError(f"unknown format {file_format!r}; expected one of {sorted(EXTENSIONS)}")
    return path


def write_tables(tables: dict[str, pd.DataFrame], directory: str | os.PathLike, file_format: str,
                 names: list[str] | None = None) -> list[Path]:
    """Write the named tables (default all) to ``directory`` (created), one file each; returns the paths.

    Raises:
        KeyError: a requested table does not exist.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = list(tables) if names is None else names
    missing = [name for name in names if name not in tables]
    if missing:
        raise KeyError(f"no such table: {', '.join(missing)} (available: {', '.join(tables)})")
    return [write_table(tables[name], directory / f"{name}.{EXTENSIONS[file_format]}", file_format)
            for name in names]
