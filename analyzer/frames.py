"""Turning the dissectors' numpy columns into pandas frames.

:class:`TableBuilder` keeps each batch's columns (cast to the compact numpy
dtype the schema implies, so memory is the size of the output frame) and
builds one DataFrame at the end with nullable dtypes: ``UInt16``/``Int64``…
with masks, ``boolean``, and categoricals for addresses, whose text is made
once per distinct address, not once per packet.
"""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd

from .schema import Column

_NUMPY_DTYPE = {"Int64": np.int64, "UInt8": np.uint8, "UInt16": np.uint16, "UInt32": np.uint32,
                "Float64": np.int64, "boolean": np.bool_, "category": None,
                "datetime64[ns, UTC]": np.int64}
_RAW_DTYPE = {"mac": np.uint64, "ipv4": np.uint32, "seconds": np.int64, "time": np.int64,
              "bool": np.bool_}


def _raw_dtype(column: Column):
    if column.kind in _RAW_DTYPE:
        return _RAW_DTYPE[column.kind]
    if column.kind == "ipv6":
        return np.dtype("V16")
    return _NUMPY_DTYPE[column.dtype]


class TableBuilder:
    """Accumulates batches of raw columns for one table and builds its DataFrame.

    Each column is one growing numpy array (capacity grows by half), written
    batch by batch, so the finished frame is built from views of those arrays:
    peak memory is the frame itself plus the unused capacity, not a second copy.

    Args:
        schema: the table's columns; a column may take its raw values from
            another raw column (``ts`` from ``frame.time_epoch``) via ``aliases``.
        aliases: ``{column name: raw column name}``.
    """

    def __init__(self, schema: tuple[Column, ...], aliases: dict[str, str] | None = None):
        self.schema = schema
        self.aliases = aliases or {}
        self._values: dict[str, np.ndarray] = {}
        self._valid: dict[str, np.ndarray] = {}
        self._rows = 0

    @property
    def rows(self) -> int:
        """Rows accumulated so far."""
        return self._rows

    def _column(self, column: Column, need: int) -> tuple[np.ndarray, np.ndarray]:
        values = self._values.get(column.name)
        if values is None or len(values) < need:
            capacity = max(need, int(1.5 * (0 if values is None else len(values))))
            grown = np.zeros(capacity, dtype=_raw_dtype(column))
            valid = np.zeros(capacity, dtype=bool)
            if values is not None:
                kept = min(len(values), self._rows)
                grown[:kept] = values[:kept]
                valid[:kept] = self._valid[column.name][:kept]
            self._values[column.name], self._valid[column.name] = grown, valid
        return self._values[column.name], self._valid[column.name]

    def add(self, n: int, values: dict[str, np.ndarray], valid: dict[str, np.ndarray]) -> None:
        """Add ``n`` rows; ``values``/``valid`` map raw column names to ``[n]`` arrays (absent: all null)."""
        end = self._rows + n
        for column in self.schema:
            raw = self.aliases.get(column.name, column.name)
            if column.kind == "derived" or raw not in values:
                continue
            array = values[raw]
            if column.kind == "ipv6":
                array = np.ascontiguousarray(array).view("V16").reshape(n)
            target, target_valid = self._column(column, end)
            target[self._rows:end] = array
            target_valid[self._rows:end] = valid[raw]
        self._rows = end

    def frame(self) -> pd.DataFrame:
        """The DataFrame of every row added, one column per schema entry, in schema order."""
        n = self._rows
        data = {}
        for column in self.schema:
            if column.kind == "derived":
                # Filled after the stages finish (e.g. uid from connection tracking).
                data[column.name] = pd.Categorical.from_codes(np.full(n, -1), categories=pd.Index([], dtype="str"))
                continue
            values, valid = self._column(column, n)
            values, valid = values[:n], valid[:n]
            del self._values[column.name], self._valid[column.name]
            data[column.name] = to_series(column, values, valid)
        return pd.DataFrame(data, copy=False)


def to_series(column: Column, values: np.ndarray, valid: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Convert raw ``values`` (``[n]``) with ``valid`` (``bool[n]``) to the pandas array of ``column``."""
    kind = column.kind
    if kind == "seconds":
        seconds = values.astype(np.float64) / 1e9
        return pd.arrays.FloatingArray(seconds, ~valid)
    if kind == "time":
        stamps = pd.to_datetime(values, unit="ns", utc=True)
        return pd.Series(stamps).where(valid).array
    if kind == "bool":
        return pd.arrays.BooleanArray(values.astype(bool), ~valid)
    if kind in ("mac", "ipv4", "ipv6"):
        return _addresses(kind, values, valid)
    if kind == "text":
        return pd.array(np.where(valid, values, None), dtype=column.dtype)
    return pd.arrays.IntegerArray(values, ~valid)


def _addresses(kind: str, values: np.ndarray, valid: np.ndarray) -> pd.Categorical:
    """Categorical of address text; each distinct address is formatted once."""
    present = values[valid]
    if present.dtype.kind == "u":
        # Hash-based factorisation (O(n)) instead of np.unique's sort; categories stay sorted.
        inverse, distinct = pd.factorize(present, sort=True)
    else:
        distinct, inverse = np.unique(present, return_inverse=True)
    formatter = {"mac": format_mac, "ipv4": format_ipv4, "ipv6": format_ipv6}[kind]
    categories = [formatter(value) for value in distinct]
    codes = np.full(len(values), -1, dtype=np.int64)
    codes[valid] = inverse
    # Two raw values never format alike, so the categories are unique.
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype="str"))


def format_mac(value) -> str:
    """``aa:bb:cc:dd:ee:ff`` for a 48-bit integer (Wireshark's eth.src text, lower case)."""
    return ":".join(f"{b:02x}" for b in int(value).to_bytes(6, "big"))


def format_ipv4(value) -> str:
    """Dotted quad for a 32-bit integer."""
    return socket.inet_ntoa(int(value).to_bytes(4, "big"))


def format_ipv6(value) -> str:
    """RFC 5952 text for 16 address bytes (``V16``), as inet_ntop writes it."""
    return socket.inet_ntop(socket.AF_INET6, bytes(value))
