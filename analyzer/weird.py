"""The ``weird`` table: one row per anomaly, with Zeek's weird.log fields.

Dissectors record ``(rows, name, addl)``; here they become rows whose
connection fields (``id.orig_h`` …) are the packet's outermost addresses and
ports, the way Zeek fills them for a packet that has them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import schema


class WeirdCollector:
    """Accumulates weird entries of successive batches (row numbers made file-global)."""

    def __init__(self):
        self._index: list[np.ndarray] = []
        self._names: list[np.ndarray] = []
        self._addl: list[np.ndarray] = []

    def add(self, first_row: int, entries) -> None:
        """Add a batch's ``(rows int64[k], name, addl)`` entries; ``first_row`` is the batch's first row."""
        for rows, name, addl in entries:
            self._index.append(rows + first_row)
            self._names.append(np.full(len(rows), name, dtype=object))
            self._addl.append(np.full(len(rows), addl, dtype=object))

    def add_each(self, rows: np.ndarray, names: list, addl: list) -> None:
        """Add one entry per row: ``rows`` (``int64[k]``, file-global rows), its ``names[i]`` and ``addl[i]``."""
        if len(rows):
            self._index.append(np.asarray(rows, dtype=np.int64))
            self._names.append(np.array(names, dtype=object))
            self._addl.append(np.array(addl, dtype=object))

    def frame(self, packets: pd.DataFrame) -> pd.DataFrame:
        """The weird frame, in frame order, given the finished ``packets`` frame."""
        columns = [c.name for c in schema.WEIRD]
        if not self._index:
            empty = {c.name: pd.Series([], dtype=c.dtype) for c in schema.WEIRD}
            return pd.DataFrame(empty, columns=columns)
        index = np.concatenate(self._index)
        order = np.argsort(index, kind="stable")
        index = index[order]
        names = np.concatenate(self._names)[order]
        addl = np.concatenate(self._addl)[order]
        rows = packets.iloc[index]

        def first_of(*names_):
            result = rows[names_[0]].astype("string")
            for name in names_[1:]:
                result = result.fillna(rows[name].astype("string"))
            return result.array

        def port(kind):
            return rows[f"tcp.{kind}port"].fillna(rows[f"udp.{kind}port"]).astype("UInt16").array

        frame = pd.DataFrame({
            "ts": rows["frame.time_epoch"].array,
            "uid": pd.array([None] * len(index), dtype="string"),
            "id.orig_h": first_of("ip.src", "ipv6.src"),
            "id.orig_p": port("src"),
            "id.resp_h": first_of("ip.dst", "ipv6.dst"),
            "id.resp_p": port("dst"),
            "name": pd.array(names, dtype="string"),
            "addl": pd.array(addl, dtype="string"),
            "notice": pd.array(np.zeros(len(index), dtype=bool), dtype="boolean"),
            "peer": pd.array(["netsift"] * len(index), dtype="string"),
            "source": pd.array([None] * len(index), dtype="string"),
            "frame.number": rows["frame.number"].array,
        })
        return frame.reset_index(drop=True)
