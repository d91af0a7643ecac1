"""Protocol dissectors: pure functions from batches of packet bytes to record columns.

One module per protocol, named after it.  No files, sockets, printing or
pandas here: :func:`dissectors.stack.dissect` takes a
:class:`~captures.batch.PacketBatch` and returns numpy columns.
"""

from .stack import dissect
from .wire import Fields, Layer

__all__ = ["dissect", "Fields", "Layer"]
