"""CPU seconds spent in wrapped callables, by name: the per-layer splits of the speed scripts."""

from __future__ import annotations

import time


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
