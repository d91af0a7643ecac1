"""CPU seconds spent in wrapped callables, by name: the per-layer splits of the speed scripts."""

from __future__ import annotations

import time
from itertools import repeat

from analyzer.reassembly import Deliveries


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

    def time_stream_readers(self, pipeline, name_of):
        """Time each stream reader of ``pipeline`` on each batch's deliveries, as ``name_of(reader)``.

        Each reader takes the batch's deliveries in turn (less those of connections it
        gave up on, as ``Pipeline._deliver`` gives them), timed per batch (a clock
        per delivery would cost more than some stages' own work on a line).  The
        stages do not depend on each other's order; only the order of two
        services confirmed in the same batch can differ.  ``pipeline._deliver``
        is replaced (the original is returned, to be put back).
        """
        spent, clock = self.spent, time.process_time
        original = pipeline._deliver

        def deliver(deliveries):
            if isinstance(deliveries, list):
                deliveries = Deliveries([deliveries], [])
            for reader in pipeline.stream_readers:
                name = name_of(reader)
                start = clock()
                feed = reader.feed_stream
                # As Pipeline._deliver gives them: less the connections the reader gave up on.
                for objects, readers in deliveries.wanted([getattr(reader, "ignores", None)]):
                    for delivery, wanted in zip(objects, readers or repeat(1)):
                        if wanted:
                            feed(delivery)
                spent[name] = spent.get(name, 0.0) + clock() - start
        pipeline._deliver = deliver
        return original
