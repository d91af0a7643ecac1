"""Bounds-checked batch access to packet bytes, and the collector of record columns.

A dissector works on a :class:`Layer`: the packets of a batch that carry one
protocol, with the offset where that protocol's header starts and the offset
one past the packet's last captured byte.  Nothing is ever read past the
captured bytes (the dnspython idea of a bounds-checked reader, applied to
whole columns at once): the column readers below are used after
:meth:`Layer.has`, and the compiled per-protocol loops (Ethernet, VLAN,
IPv4, IPv6, TCP, UDP: one pass over a layer's packets per header) compare
each offset with the packet's end before they read it.

Results go to a :class:`Fields` collector: one array per column with a
validity mask (unset cells become nulls in pandas), and ``weird`` rows for
anomalies, named as Zeek names them.  The compiled loops write their
columns in place (:meth:`Fields.column`) and mark weirds as bits
(:meth:`Fields.flag_bits`).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .arena import ColumnMemory


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


@intrinsic
def prefetch(typingctx, array, index):
    """``prefetch(array, i)`` in a compiled loop: ask the CPU to load the cache line of ``array[i]``.

    Only a hint (LLVM's ``llvm.prefetch``, for reading, high locality): it
    never faults and changes no result, so no bounds check is needed.  The
    compiled dissectors call it for the header of the packet a few rows
    ahead, whose bytes are usually not in the cache (a batch's frames span
    megabytes), so that the loads of several packets overlap.  (numba's
    on-disk cache of a caller does not notice a change here; none is
    needed for correctness.)
    """
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_pointer = ir.IntType(8).as_pointer()
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.gep(builder.bitcast(data, byte_pointer),
                              [builder.mul(index, context.get_constant(types.intp, array.dtype.bitwidth // 8))])
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer] + [ir.IntType(32)] * 3), "llvm.prefetch.p0i8")
        read, high_locality, data_cache = (ir.Constant(ir.IntType(32), value) for value in (0, 3, 1))
        builder.call(function, [address, read, high_locality, data_cache])
        return context.get_dummy_value()

    return types.void(array, index), codegen


#: Rows ahead whose header the compiled dissectors prefetch (about the cache misses a core overlaps).
PREFETCH_AHEAD = 12


# The readers below are numba loops: one pass over the positions, no
# temporaries, an int64 result.  (numpy needs a gather per byte, a cast and a
# shift/or per byte; these are 2-4 times faster.)  The dissectors of the
# common headers do not use them: a compiled loop per header reads all its
# fields at once, which touches each packet's bytes once instead of once per
# field.


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
        self._memory = ColumnMemory(n)

    def put(self, name: str, rows: np.ndarray, values: np.ndarray) -> None:
        """Set column ``name`` at ``rows`` (``int64[k]``) to ``values`` (``[k]`` or ``[k, w]``) where unset."""
        values = np.asarray(values)
        column = self.values.get(name)
        if column is None:
            # A new column: every cell is unset, so there is nothing to keep.
            column = self._memory.zeros((self.n,) + values.shape[1:], values.dtype)
            valid = self._memory.zeros((self.n,), np.bool_)
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

    def fill(self, name: str, values: np.ndarray) -> None:
        """Set every cell of a new column ``name`` to ``values`` (``[n]``, copied); :meth:`put` if it exists."""
        if name in self.values:
            self.put(name, np.arange(self.n, dtype=np.int64), values)
            return
        values = np.asarray(values)
        column = self._memory.empty(values.shape, values.dtype)
        column[...] = values
        valid = self._memory.empty((self.n,), np.bool_)
        valid[...] = True
        self.values[name], self.valid[name] = column, valid

    def column(self, name: str, dtype, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(values, valid)`` of column ``name``, created all unset (``dtype``, ``[n]`` or ``[n, width]``) if new.

        For the compiled dissectors, which write the cells themselves with
        the rule of :meth:`put`: a cell of a named column is written only
        where ``valid`` is still false (the first occurrence wins), a cell of
        a hidden (``_``) column always (the last occurrence wins).  Getting a
        column creates it, as a :meth:`put` does even with no rows.

        The hot dissectors ask for their named columns in the width of the
        field on the wire (``uint16`` ports, ``uint8`` TTL …): a batch's
        columns are written, cleared and copied into the frame once each, so
        narrow columns cost a fraction of int64 ones.  Hidden columns, which
        connection tracking computes with, stay ``int64``.
        """
        column = self.values.get(name)
        if column is None:
            column = self._memory.zeros((self.n, width) if width else (self.n,), dtype)
            valid = self._memory.zeros((self.n,), np.bool_)
            self.values[name], self.valid[name] = column, valid
            return column, valid
        return column, self.valid[name]

    def discard(self, names) -> None:
        """Remove columns ``names`` (made by :meth:`column` and found not to apply)."""
        for name in names:
            self.values.pop(name, None)
            self.valid.pop(name, None)

    def move_to_end(self, names) -> None:
        """Move columns ``names`` to the end of :attr:`values` and :attr:`valid` (as if created last)."""
        for name in names:
            if name in self.values:
                self.values[name] = self.values.pop(name)
                self.valid[name] = self.valid.pop(name)

    def flag(self, rows: np.ndarray, name: str, addl: str | None = None) -> None:
        """Record a ``weird`` row named ``name`` (Zeek's name) for each packet in ``rows``."""
        if len(rows):
            self.weird.append((np.asarray(rows, dtype=np.int64), name, addl))

    def flag_bits(self, rows: np.ndarray, bits: np.ndarray, seen: int,
                  weirds: tuple[tuple[int, str, str | None], ...]) -> None:
        """Record the weirds a compiled dissector marked as bits of ``bits`` (one per row of ``rows``).

        ``weirds`` lists ``(bit, name, addl)`` in the order the weirds are
        recorded (the order of a packet's weird rows); ``seen`` is the OR of
        all ``bits``, so a batch without anomalies costs nothing.
        """
        if seen:
            for bit, name, addl in weirds:
                if seen & bit:
                    self.flag(rows[(bits & bit) != 0], name, addl)

    def is_set(self, name: str, rows: np.ndarray) -> np.ndarray:
        """``bool[k]``: whether column ``name`` already has a value at ``rows``."""
        valid = self.valid.get(name)
        return np.zeros(len(rows), dtype=bool) if valid is None else valid[rows]

    def merge_hidden(self, other: "Fields", rows: np.ndarray) -> None:
        """Take the hidden (``_``) cells ``other`` set (last occurrence wins) and its weirds; drop its named columns.

        For a tunnel Zeek decodes but Wireshark does not (Teredo recognised by
        content on another port than 3544): connection tracking and the
        application stages see the inner packet, the ``packets`` frame keeps
        Wireshark's view of the datagram.  Row ``i`` of ``other`` is row
        ``rows[i]`` here (``int64[other.n]``): the scratch columns hold only
        the few datagrams concerned, not a whole batch.
        """
        for name, values in other.values.items():
            if name[0] != "_":
                continue
            valid = other.valid[name]
            if not valid.any():
                continue
            column, column_valid = self.column(name, values.dtype, values.shape[1] if values.ndim == 2 else 0)
            column[rows[valid]] = values[valid]
            column_valid[rows[valid]] = True
        self.weird.extend((rows[weird_rows], name, addl) for weird_rows, name, addl in other.weird)

    def quiet(self) -> "Fields":
        """A view of these columns that records no weirds and no hidden (``_``) columns.

        Used for the datagram quoted inside an ICMP error: its fields are later
        occurrences (so never overwrite the outer packet's), it is expected to
        be cut short, and its offsets must not be taken for the packet's own
        transport payload.
        """
        view = _QuietFields.__new__(_QuietFields)
        view.n, view.values, view.valid, view.weird = self.n, self.values, self.valid, []
        view._memory = self._memory
        return view


class _QuietFields(Fields):
    quoted = True

    def put(self, name, rows, values):
        if not name.startswith("_"):
            super().put(name, rows, values)

    def column(self, name, dtype, width=0):
        if name.startswith("_"):
            # Somewhere to write that is not a column of the batch (never read: no need to clear it).
            return self._memory.sink(name, dtype, width)
        return super().column(name, dtype, width)

    def flag(self, rows, name, addl=None):
        pass


# Cell writers and a byte reader for the per-header compiled passes (one per dissector
# module); defined once here, called from those numba kernels.

@numba.njit(cache=True, nogil=True)
def put_first(column, valid, row, value):
    """Write a cell that is still unset (the first occurrence wins).

    Branch-free: numba compiles a conditional store in a called function
    into a loop ten times slower.
    """
    # An unsigned index: rows are never negative, and numba checks a signed one for wrap-around.
    at = np.uint64(row)
    column[at] = column[at] if valid[at] else value
    valid[at] = True


@numba.njit(cache=True, nogil=True)
def put_last(column, valid, row, value):
    """Write a hidden cell (the last occurrence wins)."""
    at = np.uint64(row)
    column[at] = value
    valid[at] = True


@numba.njit(cache=True, nogil=True)
def read_be(data, position, width):
    """The big-endian unsigned integer of ``width`` bytes at ``position`` (caller checked bounds)."""
    value = np.int64(0)
    for j in range(width):
        value = (value << 8) | data[position + j]
    return value
