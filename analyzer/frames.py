"""Turning the dissectors' numpy columns into pandas frames.

:class:`TableBuilder` keeps each batch's columns (cast to the compact numpy
dtype the schema implies, so memory is the size of the output frame) and
builds one DataFrame at the end with nullable dtypes: ``UInt16``/``Int64``…
with masks, ``boolean``, and categoricals for addresses, whose text is made
once per distinct address, not once per packet.
"""

from __future__ import annotations

import ctypes
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


TRIM_EVERY_BYTES = 32 << 20


def _release_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``); a no-op elsewhere.

    Batch parts are small allocations that glibc keeps on its heap after they
    are freed; without this, peak RSS is the parts plus the finished frame.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    # By name, not ctypes.util.find_library: that runs ldconfig in a child process.
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.malloc_trim  # noqa: B018 - glibc only
except (OSError, AttributeError):
    _LIBC = None


class TableBuilder:
    """Accumulates batches of raw columns for one table and builds its DataFrame.

    Each batch's columns are kept in their compact dtype; :meth:`frame` joins
    them column by column and frees each column's parts as soon as it is
    joined, so peak memory is about the finished frame plus one column.

    Args:
        schema: the table's columns; a column may take its raw values from
            another raw column (``ts`` from ``frame.time_epoch``) via ``aliases``.
        aliases: ``{column name: raw column name}``.
    """

    def __init__(self, schema: tuple[Column, ...], aliases: dict[str, str] | None = None):
        self.schema = schema
        self.aliases = aliases or {}
        self._parts: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        self._rows = 0

    @property
    def rows(self) -> int:
        """Rows accumulated so far."""
        return self._rows

    def add(self, n: int, values: dict[str, np.ndarray], valid: dict[str, np.ndarray]) -> None:
        """Add ``n`` rows; ``values``/``valid`` map raw column names to ``[n]`` arrays (absent: all null)."""
        for column in self.schema:
            raw = self.aliases.get(column.name, column.name)
            if column.kind == "derived" or raw not in values:
                continue
            array = values[raw]
            if column.kind == "ipv6":
                array = np.ascontiguousarray(array).view("V16").reshape(n)
            else:
                # A copy in the compact dtype, so the batch's wide arrays can be freed.
                array = array.astype(_raw_dtype(column))
            self._parts.setdefault(column.name, []).append((self._rows, array, valid[raw].copy()))
        self._rows += n

    def frame(self) -> pd.DataFrame:
        """The DataFrame of every row added, one column per schema entry, in schema order."""
        n = self._rows
        data = {}
        freed = 0
        for column in self.schema:
            if column.kind == "derived":
                # Filled after the stages finish (e.g. uid from connection tracking).
                data[column.name] = pd.Categorical.from_codes(np.full(n, -1), categories=pd.Index([], dtype="str"))
                continue
            values = np.zeros(n, dtype=_raw_dtype(column))
            valid = np.zeros(n, dtype=bool)
            parts = self._parts.pop(column.name, ())
            for start, part, part_valid in parts:
                values[start:start + len(part)] = part
                valid[start:start + len(part)] = part_valid
            data[column.name] = to_series(column, values, valid)
            freed += values.nbytes + valid.nbytes if parts else 0
            del parts
            if freed > TRIM_EVERY_BYTES:
                _release_freed_memory()
                freed = 0
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
