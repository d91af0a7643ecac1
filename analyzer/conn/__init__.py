"""Connection tracking with Zeek's conn.log semantics.

``ConnStage`` is a pipeline stage: ``feed(batch, fields)`` per batch,
``finish()`` returns ``{"conn": frame}`` (columns :data:`analyzer.conn.schema.CONN`)
and leaves ``packet_uid`` (one uid per frame fed) for the ``packets``/``weird``
tables.  See :mod:`.stage` for the streaming design, :mod:`.state` for the state
machine, :mod:`.flows` for keying and checksums.
"""

from .community_id import community_id
from .schema import CONN
from .stage import LIMIT_REACHED_WEIRDS, ConnStage

__all__ = ["ConnStage", "CONN", "LIMIT_REACHED_WEIRDS", "community_id"]
