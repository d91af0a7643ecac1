"""One application stage (HTTP, SMTP) over a capture, wired as :class:`analyzer.pipeline.Pipeline` wires it.

The conformance runs give a stage the options of the Zeek test that made the
baseline (``capture_passwords``, ``commands`` …), which :func:`analyzer.analyze`
does not expose; so the pipeline is built here with that one stage.
"""

from __future__ import annotations

import os

from captures import open_capture

from ..pipeline import Pipeline
from ..reassembly import TcpReassembly


def run_stage(capture: str | os.PathLike, stage_class, validate_checksums: bool = True, **options):
    """``(tables, stage)``: the pipeline's frames over ``capture`` with ``stage_class(connections, **options)``.

    The stage reads the reassembled TCP streams (``stream_readers``).

    Raises:
        CaptureError: the file is not a capture netsift reads.
    """
    pipeline = Pipeline(validate_checksums=validate_checksums)
    stage = stage_class(pipeline.connections, **options)
    pipeline.stages.append(stage)
    pipeline.stream_readers.append(stage)
    pipeline.streams = pipeline.streams or TcpReassembly()
    with open_capture(capture) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    return pipeline.finish(), stage
