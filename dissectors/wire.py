"""Bounds-checked batch access to packet bytes, and the collector of record columns.

A dissector works on a :class:`Layer`: the packets of a batch that carry one
protocol, with the offset where that protocol's header starts and the offset
one past the packet's last captured byte.  Every read goes through the helpers
below, and a dissector calls :meth:`Layer.has` before reading, so nothing is
ever read past the captured bytes (the dnspython idea of a bounds-checked
reader, applied to whole columns at once).

Results go to a :class:`Fields` collector: one array per column with a
validity mask (unset cells become nulls in pandas), and ``weird`` rows for
anomalies, named as Zeek names them.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np


class Layer(NamedTuple):
    """The packets of a batch that carry one protocol header.

    Attributes:
        rows: ``int64[k]`` indices of the packets within the batch.
        start: ``int64[k]`` index in the batch's ``data`` where the header starts.
        end: ``int64[k]`` index one past the last captured byte of this
            protocol's data: the packet's last captured byte, or the end of
            the enclosing protocol's payload when that is shorter.
        stated_end: ``int64[k]`` index one past the last byte of this
            protocol's data as the enclosing headers state it (frame length on
            the wire, IP total length, …); beyond ``end`` when the capture was
            cut by the snaplen.  Lengths a protocol reports (``tcp.len``) come
            from it, as in Wireshark.
    """

    rows: np.ndarray
    start: np.ndarray
    end: np.ndarray
    stated_end: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def has(self, nbytes) -> np.ndarray:
        """``bool[k]``: whether ``nbytes`` (scalar or ``int64[k]``) bytes are captured from ``start``."""
        return self.start + nbytes <= self.end

    def take(self, mask: np.ndarray) -> "Layer":
        """The sub-layer of the packets where ``mask`` (``bool[k]``) is true."""
        return Layer(self.rows[mask], self.start[mask], self.end[mask], self.stated_end[mask])

    def advance(self, nbytes) -> "Layer":
        """The layer that starts ``nbytes`` (scalar or ``int64[k]``) further on."""
        return Layer(self.rows, self.start + nbytes, self.end, self.stated_end)

    def bound(self, length) -> "Layer":
        """This layer with its data limited to ``length`` bytes (``int64[k]``) from ``start``.

        Both ends are limited: a length field of an enclosing header bounds
        what follows it (the rest is padding or trailer).
        """
        stop = self.start + length
        return Layer(self.rows, self.start, np.minimum(self.end, stop), np.minimum(self.stated_end, stop))


def empty_layer() -> Layer:
    """A layer with no packets."""
    z = np.zeros(0, dtype=np.int64)
    return Layer(z, z, z, z)


def concat_layers(layers: list[Layer]) -> Layer:
    """One layer holding the packets of all ``layers`` (in the order given)."""
    if not layers:
        return empty_layer()
    return Layer(*(np.concatenate([layer[i] for layer in layers]) for i in range(len(Layer._fields))))


# The readers below are numba loops: one pass over the positions, no
# temporaries, an int64 result.  (numpy needs a gather per byte, a cast and a
# shift/or per byte; these are 2-4 times faster and the dissectors spend most
# of their time here.)


@numba.njit(cache=True, nogil=True)
def _big_endian(data, pos, width):
    out = np.empty(pos.shape[0], dtype=np.int64)
    for i in range(pos.shape[0]):
        p = pos[i]
        value = np.int64(0)
        for j in range(width):
            value = (value << 8) | data[p + j]
        out[i] = value
    return out


@numba.njit(cache=True, nogil=True)
def _little_endian(data, pos, width):
    out = np.empty(pos.shape[0], dtype=np.int64)
    for i in range(pos.shape[0]):
        p = pos[i]
        value = np.int64(0)
        for j in range(width - 1, -1, -1):
            value = (value << 8) | data[p + j]
        out[i] = value
    return out


@numba.njit(cache=True, nogil=True)
def _gather(data, pos, width):
    out = np.empty((pos.shape[0], width), dtype=np.uint8)
    for i in range(pos.shape[0]):
        p = pos[i]
        for j in range(width):
            out[i, j] = data[p + j]
    return out


def _positions(pos) -> np.ndarray:
    return np.asarray(pos, dtype=np.int64).reshape(-1)


def u8(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``int64[k]``: the byte at each index ``pos`` (caller checked bounds)."""
    return _big_endian(data, _positions(pos), 1)


def be16(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``int64[k]``: big-endian (network order) 16-bit integers at ``pos``."""
    return _big_endian(data, _positions(pos), 2)


def le16(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``int64[k]``: little-endian 16-bit integers at ``pos``."""
    return _little_endian(data, _positions(pos), 2)


def be32(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``int64[k]``: big-endian 32-bit unsigned integers at ``pos``."""
    return _big_endian(data, _positions(pos), 4)


def le32(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``int64[k]``: little-endian 32-bit unsigned integers at ``pos``."""
    return _little_endian(data, _positions(pos), 4)


def be48(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``int64[k]``: big-endian 48-bit integers at ``pos`` (a MAC address)."""
    return _big_endian(data, _positions(pos), 6)


def octets(data: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """``uint8[k, width]``: ``width`` consecutive bytes from each ``pos`` (an IPv6 address)."""
    return _gather(data, _positions(pos), width)


@numba.njit(cache=True, nogil=True)
def _put_first(column, valid, rows, values):
    for i in range(rows.shape[0]):
        row = rows[i]
        if not valid[row]:
            column[row] = values[i]
            valid[row] = True


class Fields:
    """Record columns for a batch of ``n`` packets, plus its ``weird`` rows.

    Columns are created on first :meth:`put` with the dtype of the values
    given.  A cell is written once: the first (outermost) occurrence of a field
    wins, as in tshark's first occurrence of a repeated field, so a dissector
    of an encapsulated packet never overwrites its carrier's values.

    Hidden columns (names starting with ``_``) are the opposite: the last
    (innermost) occurrence wins, because connection tracking and the
    application dissectors work on the innermost IP packet of a tunnel, as
    Zeek does.
    """

    #: Whether these columns receive the datagram quoted by an ICMP error (see :meth:`quiet`).
    quoted = False

    def __init__(self, n: int):
        self.n = n
        self.values: dict[str, np.ndarray] = {}
        self.valid: dict[str, np.ndarray] = {}
        # Each weird entry: (rows int64[k], name, addl str or None).
        self.weird: list[tuple[np.ndarray, str, str | None]] = []

    def put(self, name: str, rows: np.ndarray, values: np.ndarray) -> None:
        """Set column ``name`` at ``rows`` (``int64[k]``) to ``values`` (``[k]`` or ``[k, w]``) where unset."""
        values = np.asarray(values)
        column = self.values.get(name)
        if column is None:
            # A new column: every cell is unset, so there is nothing to keep.
            column = np.zeros((self.n,) + values.shape[1:], dtype=values.dtype)
            valid = np.zeros(self.n, dtype=bool)
            self.values[name], self.valid[name] = column, valid
        elif len(rows) == 0:
            return
        else:
            valid = self.valid[name]
            if name[0] != "_":
                # One pass: write where unset (the first occurrence wins).
                values = values.astype(column.dtype, copy=False)
                if values.shape != (len(rows),) + column.shape[1:]:
                    values = np.broadcast_to(values, (len(rows),) + column.shape[1:])
                _put_first(column, valid, np.asarray(rows, dtype=np.int64), values)
                return
        column[rows] = values
        valid[rows] = True

    def flag(self, rows: np.ndarray, name: str, addl: str | None = None) -> None:
        """Record a ``weird`` row named ``name`` (Zeek's name) for each packet in ``rows``."""
        if len(rows):
            self.weird.append((np.asarray(rows, dtype=np.int64), name, addl))

    def is_set(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``bool[k]``: whether column ``name`` already has a value at ``rows``."""
        valid = self.valid.get(name)
        return np.zeros(len(rows), dtype=bool) if valid is None else valid[rows]

    def quiet(self) -> "Fields":
        """A view of these columns that records no weirds and no hidden (``_``) columns.

        Used for the datagram quoted inside an ICMP error: its fields are later
        occurrences (so never overwrite the outer packet's), it is expected to
        be cut short, and its offsets must not be taken for the packet's own
        transport payload.
        """
        view = _QuietFields.__new__(_QuietFields)
        view.n, view.values, view.valid, view.weird = self.n, self.values, self.valid, []
        return view


class _QuietFields(Fields):
    quoted = True

    def put(self, name, rows, values):
        if not name.startswith("_"):
            super().put(name, rows, values)

    def flag(self, rows, name, addl=None):
        pass
