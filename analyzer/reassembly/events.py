"""What the reassemblers report besides data: anomalies, named as Zeek names them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Weird:
    """One anomaly found while reassembling.

    Attributes:
        frame: ``frame.number`` (1-based, global to the capture) of the packet
            that revealed the anomaly.
        name: Zeek's weird name (``weird.log`` ``name``) where Zeek has one;
            the few netsift-only names are listed in each reassembler's
            docstring.
        addl: extra detail (``weird.log`` ``addl``), or None.
    """

    frame: int
    name: str
    addl: str | None = None
