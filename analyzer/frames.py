"""Turning the dissectors' numpy columns into pandas frames.

:class:`TableBuilder` writes each batch's columns, cast to the compact numpy
dtype the schema implies, into one array per column (and a null mask per
column) that grows in place, so the finished frame takes no further copy:
its nullable arrays (``UInt16``/``Int64``… with masks, ``boolean``) wrap
those arrays.
Addresses become categoricals whose text is made once per distinct address,
not once per packet.
"""

from __future__ import annotations

import mmap
import socket
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import prefault
from .grouping import factorize_sorted, group_rows, renumbered
from .schema import Column

_NUMPY_DTYPE = {"Int64": np.int64, "UInt8": np.uint8, "UInt16": np.uint16, "UInt32": np.uint32,
                "Float64": np.int64, "boolean": np.bool_, "category": None,
                "datetime64[ns, UTC]": np.int64}
_RAW_DTYPE = {"mac": np.uint64, "ipv4": np.uint32, "seconds": np.int64, "time": np.int64,
              "bool": np.bool_}


def _raw_dtype(column: Column) -> np.dtype:
    if column.kind in _RAW_DTYPE:
        return np.dtype(_RAW_DTYPE[column.kind])
    if column.kind == "ipv6":
        return np.dtype("V16")
    return np.dtype(_NUMPY_DTYPE[column.dtype])


class _Column:
    """One raw column being built: ``values[:rows]`` and its null ``mask[:rows]`` (True: null).

    Both live in anonymous memory maps reserved for ``capacity`` rows: the
    kernel backs a page only when it is first written, so the reserve costs
    nothing, and the rows are written once, where the finished frame will
    use them (no parts to join at the end, no doubling copies).  Past the
    capacity the maps grow in place (``mremap`` on Linux) or, where they
    cannot, into new maps.  Never-written pages read as zeros.
    """

    __slots__ = ("_maps", "backed", "dtype", "mask", "values")

    def __init__(self, dtype: np.dtype, capacity: int):
        self.dtype = dtype
        self._maps = (_anonymous_map(capacity * dtype.itemsize), _anonymous_map(capacity))
        self.backed = 0   # rows whose pages were asked to be backed (see ranges)
        self._view()

    def _view(self) -> None:
        self.values = np.frombuffer(self._maps[0], self.dtype)
        self.mask = np.frombuffer(self._maps[1], np.bool_)

    def ranges(self, rows: int, stop: int) -> list[tuple[int, int]]:
        """``(address, nbytes)`` of rows ``[rows, stop)`` in both maps, for :mod:`.prefault`.

        Backing them in one system call per map instead of one page fault
        per 4 KiB page makes writing a fresh frame about a third cheaper.
        """
        stop = min(stop, len(self.mask))
        if stop <= rows:
            return []
        self.backed = max(self.backed, stop)
        return [(self.values.ctypes.data + rows * self.dtype.itemsize, (stop - rows) * self.dtype.itemsize),
                (self.mask.ctypes.data + rows, stop - rows)]

    def reserve(self, rows: int, capacity: int) -> None:
        """Room for ``capacity`` rows in all (``capacity`` above the current one), keeping the first ``rows``."""
        self.values = self.mask = None   # a map with arrays over it cannot be resized
        try:
            for item, buffer in zip((self.dtype.itemsize, 1), self._maps):
                buffer.resize(capacity * item)
        except (OSError, SystemError, ValueError, BufferError):
            # No in-place growth on this system: copy the rows in use into new maps.
            old = self._maps
            self._maps = (_anonymous_map(capacity * self.dtype.itemsize), _anonymous_map(capacity))
            for item, source, target in zip((self.dtype.itemsize, 1), old, self._maps):
                target[:rows * item] = source[:rows * item]
        self._view()

    def finish(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, mask)`` of the first ``rows`` rows; the rest of the reserve is given back where possible."""
        if rows:
            try:
                self.values = self.mask = None
                for item, buffer in zip((self.dtype.itemsize, 1), self._maps):
                    buffer.resize(rows * item)
            except (OSError, SystemError, ValueError, BufferError):
                pass
            self._view()
        return self.values[:rows], self.mask[:rows]


def _anonymous_map(nbytes: int) -> mmap.mmap:
    """Private anonymous memory of ``nbytes`` bytes, zero-filled by the kernel as its pages are touched.

    Private, not Python's default shared mapping: a shared anonymous mapping
    is a shmem object of fixed size, and growing it with ``mremap`` leaves the
    new pages without backing (SIGBUS when touched).
    """
    if hasattr(mmap, "MAP_PRIVATE"):
        return mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return mmap.mmap(-1, nbytes)


# Rows a column's maps are first reserved for (address space only; see _Column).  Windows
# commits a map's memory when it is made, so there the reserve starts small and grows.
FIRST_CAPACITY = 1 << 16 if sys.platform == "win32" else 1 << 21
# Batches of fewer rows (live capture's, say) back their pages as they are written: a helper thread
# per batch would cost more than the page faults it saves.
AHEAD_ROWS = 4096


class TableBuilder:
    """Accumulates batches of raw columns for one table and builds its DataFrame.

    Each batch's columns are written, cast to their compact dtype, straight
    into the arrays the frame will hold (:class:`_Column`), so :meth:`frame`
    only wraps them in pandas' nullable arrays.  Fresh memory, each page of
    which costs a page fault, is what building a frame costs most here: this
    touches each byte of the frame once and nothing else.

    Args:
        schema: the table's columns; a column may take its raw values from
            another raw column (``ts`` from ``frame.time_epoch``) via ``aliases``.
        aliases: ``{column name: raw column name}``.
    """

    def __init__(self, schema: tuple[Column, ...], aliases: dict[str, str] | None = None):
        self.schema = schema
        self.aliases = aliases or {}
        # One raw column per name and compact dtype (``ts`` shares ``frame.time_epoch``'s).
        self._keys = list(dict.fromkeys(self._key(column) for column in schema if column.kind != "derived"))
        self._columns: dict[tuple[str, np.dtype], _Column] = {}
        self._rows = 0
        self._capacity = FIRST_CAPACITY
        # Backs the rows of the next batch on a helper thread while this one is dissected.
        self._ahead = prefault.Ahead()

    def _key(self, column: Column) -> tuple[str, np.dtype]:
        return self.aliases.get(column.name, column.name), _raw_dtype(column)

    @property
    def rows(self) -> int:
        """Rows accumulated so far."""
        return self._rows

    def add(self, n: int, values: dict[str, np.ndarray], valid: dict[str, np.ndarray]) -> None:
        """Add ``n`` rows; ``values``/``valid`` map raw column names to ``[n]`` arrays (absent: all null).

        The arrays are copied: the caller may reuse them afterwards.  An
        ``ipv6`` column is ``uint8[n, 16]``; every other one ``[n]`` of any
        integer (or bool) dtype, cast to the column's compact dtype (values
        of the schema's fields fit it).
        """
        rows, stop = self._rows, self._rows + n
        self._ahead.wait()
        if stop > self._capacity:
            self._capacity = max(2 * self._capacity, stop)
            for column in self._columns.values():
                column.reserve(rows, self._capacity)
        for key in self._keys:
            name, dtype = key
            column = self._columns.get(key)
            array = values.get(name)
            if array is None:
                if column is not None:
                    # Null rows; their values were never written, so they are zeros.
                    column.mask[rows:stop] = True
                continue
            if column is None:
                column = self._columns[key] = _Column(dtype, self._capacity)
                column.mask[:rows] = True   # the earlier batches lacked the column
            if column.backed < stop:
                prefault.populate(column.ranges(max(rows, column.backed), stop))
            if dtype.kind == "V":
                array = np.ascontiguousarray(array).view(dtype).reshape(n)
            # One pass each: cast into place, and the null mask as the negated validity.
            column.values[rows:stop] = array
            np.logical_not(valid[name], out=column.mask[rows:stop])
        self._rows = stop
        if n < AHEAD_ROWS:
            return
        # The next batch is likely about as long as this one.
        self._ahead.start([piece for column in self._columns.values()
                           for piece in column.ranges(max(stop, column.backed), stop + n)],
                          owners=[column._maps for column in self._columns.values()])

    def frame(self) -> pd.DataFrame:
        """The DataFrame of every row added, one column per schema entry, in schema order.

        The frame takes over the builder's arrays: add no rows afterwards.
        """
        n = self._rows
        self._ahead.wait()
        finished = {key: column.finish(n) for key, column in self._columns.items()}
        data = {}
        for column in self.schema:
            if column.kind == "derived":
                # Filled after the stages finish (e.g. uid from connection tracking).
                data[column.name] = pd.Categorical.from_codes(
                    np.full(n, -1, dtype=np.int8), categories=pd.Index([], dtype="str"))
                continue
            key = self._key(column)
            values, mask = finished.get(key) or (np.zeros(n, dtype=key[1]), np.ones(n, dtype=bool))
            data[column.name] = to_series(column, values, mask)
        return pd.DataFrame(data, copy=False)


def to_series(column: Column, values: np.ndarray, mask: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The pandas array of ``column`` from raw ``values`` (``[n]``) and the null ``mask`` (``bool[n]``, True: null).

    Integer and boolean columns wrap ``values`` and ``mask`` without a copy;
    ``seconds`` (int64 ns) become float64 seconds, ``time`` a UTC timestamp
    (NaT where null), addresses a categorical of their text.
    """
    kind = column.kind
    if kind == "seconds":
        seconds = values.astype(np.float64)
        seconds /= 1e9
        return pd.arrays.FloatingArray(seconds, mask)
    if kind == "time":
        stamps = np.where(mask, np.datetime64("NaT", "ns"), values.view("M8[ns]"))
        return pd.array(stamps).tz_localize("UTC")
    if kind == "bool":
        return pd.arrays.BooleanArray(values.astype(bool, copy=False), mask)
    if kind in ("mac", "ipv4", "ipv6"):
        return _addresses(kind, values, mask)
    if kind == "text":
        return pd.array(np.where(mask, None, values), dtype=column.dtype)
    return pd.arrays.IntegerArray(values, mask)


def _addresses(kind: str, values: np.ndarray, mask: np.ndarray) -> pd.Categorical:
    """Categorical of address text, categories in numeric (byte) order; each distinct address is formatted once."""
    if kind == "ipv6":
        present = np.flatnonzero(~mask)
        # Each address as two big-endian words: their order is the byte order of the address.
        words = np.ascontiguousarray(values[present]).view(">u8").reshape(-1, 2).astype(np.uint64)
        group, first = group_rows(words)
        order = np.lexsort((words[first, 1], words[first, 0]))
        present_codes = renumbered(group, order)
        codes = np.full(len(values), -1, dtype=present_codes.dtype)
        codes[present] = present_codes
        raw = np.ascontiguousarray(values[present[first[order]]]).tobytes()
        # RFC 5952 text, as inet_ntop writes it (Wireshark's too).
        categories = pd.Index([socket.inet_ntop(socket.AF_INET6, raw[i:i + 16]) for i in range(0, len(raw), 16)],
                              dtype="str")
    else:
        # Hash-based factorisation (O(n)) of the non-null values, nulls coded -1; categories sorted.
        codes, distinct = factorize_sorted(values, mask)
        if kind == "mac":
            categories = _join_bytes(distinct, 6, _HEX_BYTES, ":")
        else:
            categories = _join_bytes(distinct, 4, _DECIMAL_BYTES, ".")
    # Two raw values never format alike, so the categories are unique.
    return pd.Categorical.from_codes(codes, categories=categories)


# Text of each byte value, for formatting many addresses at once (pyarrow's take and join).
_DECIMAL_BYTES = pa.array([str(value) for value in range(256)])
_HEX_BYTES = pa.array([f"{value:02x}" for value in range(256)])


def _join_bytes(numbers: np.ndarray, width: int, texts: pa.Array, separator: str) -> pd.Index:
    """Text index of unsigned ``numbers``: their ``width`` big-endian bytes as ``texts``, joined by ``separator``.

    ``_join_bytes(np.array([0x0a000001]), 4, _DECIMAL_BYTES, ".")`` is
    ``["10.0.0.1"]``.
    """
    parts = [texts.take(((numbers >> (8 * shift)) & 0xFF).astype(np.uint8)) for shift in range(width - 1, -1, -1)]
    return pd.Index(pd.array(pc.binary_join_element_wise(*parts, separator), dtype="str"))


def strings_from_rows(chars: np.ndarray, lengths: np.ndarray | None = None) -> pd.api.extensions.ExtensionArray:
    """Pandas ``string`` array of the rows of ``chars`` (``uint8[n, w]``, ASCII) without a Python object per row.

    Row ``i`` is its first ``lengths[i]`` bytes (all ``w`` when ``lengths`` is
    None); a row of length 0 is null.
    """
    n, width = chars.shape
    if lengths is None:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        data, validity = np.ascontiguousarray(chars).reshape(-1), None
    else:
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = chars[np.arange(width)[None, :] < lengths[:, None]]
        validity = pa.py_buffer(np.packbits(lengths > 0, bitorder="little"))
    # Arrow's string type has 32-bit offsets; past 2 GiB of text the large type (64-bit) is needed.
    large = offsets[-1] >= 2**31
    strings = pa.Array.from_buffers(pa.large_string() if large else pa.string(), n,
                                    [validity, pa.py_buffer(offsets if large else offsets.astype(np.int32)),
                                     pa.py_buffer(data)])
    return pd.array(strings, dtype="string")

