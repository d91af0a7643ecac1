"""Conformance of netsift with tshark and Zeek on the shared corpus (``netsift verify``, ``bench/*conformance.py``).

Modules, one per comparison, each with its rules in its docstring:

- :mod:`.tshark`: the ``packets`` frame against ``X.tshark.tsv`` (TShark 4.0.17
  ``-T fields`` dumps), with the :data:`~.tshark.DELIBERATE_DIFFERENCES`;
- :mod:`.conn`, :mod:`.dns`, :mod:`.http`, :mod:`.smtp`: the Zeek-style frames
  against Zeek's btest baselines ``X.conn.log`` … (plus tshark's DNS, HTTP and
  SMTP fields);
- shared: :mod:`.corpus` (where the corpus is, which capture goes with which
  baseline, ORACLES.tsv's Zeek commands), :mod:`.baseline` (reading Zeek logs,
  writing netsift's values as Zeek text), :mod:`.stage` (one stage over a capture);
- :mod:`.tables`: the figures as DataFrames for ``netsift verify``.

The corpus directory is ``--corpus``, else ``$NETSIFT_CORPUS``, else
``<repo>/../shared/corpus``.  Nothing here needs the repository's ``bench/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .corpus import VerifyError, corpus_dir
from .tables import (APPLICATION_LOGS, ConnVerification, LogsVerification, PacketsVerification, verify_conn,
                     verify_logs, verify_packets)

__all__ = ["APPLICATION_LOGS", "TABLES", "ConnVerification", "LogsVerification", "PacketsVerification",
           "Verification", "VerifyError", "corpus_dir", "verify", "verify_conn", "verify_logs", "verify_packets"]

#: The comparisons ``verify`` runs, in output order.
TABLES = ("packets", "conn", *APPLICATION_LOGS)


@dataclass
class Verification:
    """The comparisons asked for (None when not asked for)."""

    packets: PacketsVerification | None = None
    conn: ConnVerification | None = None
    logs: LogsVerification | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No unexplained packet difference, no analyze error, and every Zeek log fully in agreement."""
        ok = True
        if self.packets is not None:
            ok &= self.packets.unexplained == 0 and self.packets.errors.empty and self.packets.frame_counts.empty
        if self.conn is not None and len(self.conn.columns):
            overall = self.conn.columns.iloc[-1]
            ok &= bool(overall["agree"] == overall["cells"]) and self.conn.missing.empty and self.conn.extra.empty
        if self.logs is not None and len(self.logs.logs):
            frame = self.logs.logs
            ok &= bool((frame["equal"] == frame["compared"]).all() and (frame["missing rows"] == 0).all()
                       and (frame["extra rows"] == 0).all())
        return bool(ok)


def verify(captures: list[str | os.PathLike] | None = None, corpus: str | os.PathLike | None = None,
           tables: tuple[str, ...] = TABLES, top: int = 20) -> Verification:
    """Run the comparisons named in ``tables`` (see :data:`TABLES`) on ``captures`` (default: the whole corpus).

    Raises:
        VerifyError: ``captures`` is None and the corpus directory does not exist.
        CaptureError, OSError: a capture or baseline cannot be read.
    """
    if captures is None:
        corpus_dir(corpus, must_exist=True)          # a clear error before any work
    result = Verification()
    if "packets" in tables:
        result.packets = verify_packets(captures, corpus, top)
    if "conn" in tables:
        result.conn = verify_conn(captures, corpus, top)
    kinds = tuple(kind for kind in APPLICATION_LOGS if kind in tables)
    if kinds:
        result.logs = verify_logs(captures, corpus, kinds)
    return result
