"""Reassembly libraries: IP fragments and TCP streams, pure and sans-I/O.

* :class:`FragmentReassembler` (:mod:`.ip`): fragments of a batch in, a batch
  of reassembled raw IP datagrams out, to be dissected like any batch.
* :class:`StreamReassembler` (:mod:`.stream`): one TCP direction, segments in,
  in-order :class:`Chunk` objects out (with gap lengths).
* :class:`TcpReassembly` (:mod:`.tcp`): every connection of a capture, fed
  batch by batch; returns :class:`Delivery` objects for the application
  dissectors (or one batch's as columns, :class:`Deliveries`).

Anomalies are :class:`Weird` records (frame number, Zeek's name, addl).
"""

from .events import Weird
from .ip import FragmentReassembler
from .stream import Chunk, StreamReassembler
from .deliveries import ConnKey, Deliveries, Delivery
from .tcp import TcpReassembly

__all__ = [
           "Chunk",
           "ConnKey",
           "Deliveries",
           "Delivery",
           "FragmentReassembler",
           "StreamReassembler",
           "TcpReassembly",
           "Weird",
]
