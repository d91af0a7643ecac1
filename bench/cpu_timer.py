"""CPU seconds spent in wrapped callables, by name: the per-layer splits of the speed scripts."""

from __future__ import annotations

import time
from itertools import repeat


class CpuTimer:
    """``wrap(name, function)`` returns ``function`` timed with :func:`time.process_time` into ``spent[name]``."""

    def __init__(self):
        self.spent: dict[str, float] = {}

    def wrap(self, name: str, function):
        spent = self.spent
        spent.setdefault(name, 0.0)
        clock = time.process_time

        def timed(*args, **kwargs):
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += clock() - start
        return timed

    def time_stream_readers(self, pipeline, name_of, objects_name: str = "stream objects"):
        """Time each stream reader of ``pipeline`` on each batch's deliveries, as ``name_of(reader)``.

        The batch's deliveries are made into objects once, for every reader, as
        ``Pipeline._deliver`` does (timed as ``objects_name``; each reader's
        ``ignores`` is asked when the batch arrives, so a reader may be given
        a few deliveries of a connection it gave up on in that batch, which it
        drops); then each reader takes those it wants in turn, timed per batch
        (a clock per delivery would cost more than some stages' own work on a
        line).  The stages do not depend on each other's order; only the order
        of two services confirmed in the same batch can differ.
        ``pipeline._deliver`` is replaced (the original is returned, to be put back).
        """
        spent, clock = self.spent, time.process_time
        original = pipeline._deliver

        def deliver(deliveries):
            start = clock()
            pieces = list(deliveries.wanted([getattr(reader, "ignores", None) for reader in pipeline.stream_readers]))
            spent[objects_name] = spent.get(objects_name, 0.0) + clock() - start
            for bit, reader in enumerate(pipeline.stream_readers):
                name = name_of(reader)
                start = clock()
                feed = reader.feed_stream
                for objects, readers in pieces:
                    for delivery, bits in zip(objects, readers or repeat(1 << bit)):
                        if bits >> bit & 1:
                            feed(delivery)
                spent[name] = spent.get(name, 0.0) + clock() - start
        pipeline._deliver = deliver
        return original
