"""The TCP rows of a batch that reassembly needs, as columns, and the uids given with them.

:func:`select` keeps, from one part of a batch (the batch itself, or the IP
datagrams reassembled from it), the rows that carry a segment (payload, SYN,
FIN or RST) or an acknowledgement, with their connection keys (see
:func:`.kernels.connection_keys`); the uid helpers carry the connection
tracker's uids of those rows as an ``int64`` array when they are integers
(what the compiled pass can follow), else as a list.
"""

from __future__ import annotations

import numpy as np

from .kernels import connection_keys
from .stream import ACK, FIN, RST, SYN

_REQUIRED = ("_tcp.seq", "_tcp.flags", "_tcp.len", "_payload.start", "_payload.end", "_l4.srcport",
             "_l4.dstport", "_ip.version")


def select(index: int, batch, fields, uid_per_row, frame_numbers, use_acks: bool) -> dict | None:
    """The columns of one part's TCP rows that matter: segments (payload, SYN, FIN, RST) and ACKs.

    ``index`` numbers the part (its ``part`` column); ``uid_per_row`` and
    ``frame_numbers`` are as :meth:`.tcp.TcpReassembly.feed` takes them.
    Returns None when no row matters, else ``[k]`` columns by name: ``keys``
    (``uint8[k, 40]``, :func:`.kernels.connection_keys`), ``lower``,
    ``flags``, ``stated`` (length from the headers, bytes), ``segment``,
    ``acking``, ``ack``, ``seq``, ``start``/``end`` (captured payload in the
    part's data), ``ts`` (ns), ``numbers`` (frame numbers), ``part`` and
    ``uids`` (:func:`row_uids`).
    """
    values, valid = fields.values, fields.valid
    if not all(name in values for name in _REQUIRED):
        return None
    rows = np.flatnonzero(valid["_tcp.seq"] & valid["_payload.start"] & valid["_ip.version"]
                          & valid["_tcp.len"])
    if not len(rows):
        return None
    flags = values["_tcp.flags"][rows]
    stated = values["_tcp.len"][rows]
    segment = (stated > 0) | ((flags & (SYN | FIN | RST)) != 0)
    if use_acks and "_tcp.ack" in values:
        acking = ((flags & ACK) != 0) & ((flags & RST) == 0) & valid["_tcp.ack"][rows]
        ack = values["_tcp.ack"][rows]
    else:
        acking = np.zeros(len(rows), dtype=bool)
        ack = np.zeros(len(rows), dtype=np.int64)
    keep = segment | acking
    if uid_per_row is not None:
        # Rows the connection tracker put in no connection (uid None, or a negative serial:
        # e.g. a bad checksum, which Zeek drops) are not reassembled either.
        if isinstance(uid_per_row, np.ndarray) and uid_per_row.dtype.kind in "iu":
            keep &= uid_per_row[rows] >= 0
        else:
            keep &= np.fromiter((uid_per_row[r] is not None for r in rows.tolist()), dtype=bool,
                                count=len(rows))
    if not keep.all():
        rows, flags, stated, segment, acking, ack = (rows[keep], flags[keep], stated[keep], segment[keep],
                                                     acking[keep], ack[keep])
    if not len(rows):
        return None
    no4, no6 = np.zeros(1, dtype=np.int64), np.zeros((1, 16), dtype=np.uint8)
    keys, lower = connection_keys(rows, values["_ip.version"], values.get("_ip.src4", no4),
                                  values.get("_ip.dst4", no4), values.get("_ip.src6", no6),
                                  values.get("_ip.dst6", no6), values["_l4.srcport"], values["_l4.dstport"],
                                  "_ip.src4" in values, "_ip.src6" in values)
    start = values["_payload.start"][rows]
    numbers = rows + batch.first_number if frame_numbers is None else np.asarray(frame_numbers)[rows]
    return {
        "keys": keys, "lower": lower, "flags": flags, "stated": stated, "segment": segment,
        "acking": acking, "ack": ack, "seq": values["_tcp.seq"][rows], "start": start,
        "end": np.maximum(values["_payload.end"][rows], start), "ts": batch.ts_ns[rows],
        "numbers": numbers.astype(np.int64), "part": np.full(len(rows), index, dtype=np.int64),
        "uids": row_uids(uid_per_row, rows),
    }


def row_uids(uid_per_row, rows: np.ndarray):
    """The rows' uids: None (none given), ``int64[k]`` (integers that fit; all >= 0 here) or a list."""
    if uid_per_row is None:
        return None
    if isinstance(uid_per_row, np.ndarray):
        kind, size = uid_per_row.dtype.kind, uid_per_row.dtype.itemsize
        if kind == "i" or (kind == "u" and size < 8):
            return uid_per_row[rows].astype(np.int64)
        return uid_per_row[rows].tolist()
    return [uid_per_row[r] for r in rows.tolist()]


def merged_uids(parts: list, lengths: list[int], order: np.ndarray):
    """The uids of several parts' rows (as :func:`row_uids`) taken in ``order``; -1 or None: none."""
    if all(uids is None for uids in parts):
        return None
    if all(uids is None or isinstance(uids, np.ndarray) for uids in parts):
        return np.concatenate([uids if uids is not None else np.full(n, -1, dtype=np.int64)
                               for uids, n in zip(parts, lengths)])[order]
    values = [uid for uids, n in zip(parts, lengths)
              for uid in (uids.tolist() if isinstance(uids, np.ndarray) else [None] * n if uids is None else uids)]
    return [values[i] for i in order.tolist()]


def uid_values(uids, positions: np.ndarray) -> list:
    """The uids at ``positions`` as Python values, None where there is none."""
    if uids is None:
        return [None] * len(positions)
    if isinstance(uids, np.ndarray):
        return [None if uid < 0 else uid for uid in uids[positions].tolist()]
    return [uids[j] for j in positions.tolist()]
