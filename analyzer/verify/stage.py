"""One application stage (HTTP, SMTP) over a capture, wired as :class:`analyzer.pipeline.Pipeline` wires it.

The conformance runs give a stage the options of the Zeek test that made the
baseline (``capture_passwords``, ``commands`` …), which :func:`analyzer.analyze`
does not expose; so the pipeline is built here with that one stage.
"""

from __future__ import annotations

import os

from captures import open_capture

from ..pipeline import Pipeline


def run_stage(capture: str | os.PathLike, stage_class, validate_checksums: bool = True, **options):
    """``(tables, stage)``: the pipeline's frames over ``capture`` with ``stage_class(connections, **options)``.

    The stage reads the reassembled TCP streams (``stream_readers``).

    Raises:
        CaptureError: the file is not a capture netsift reads.
    """
    pipeline = Pipeline(validate_checksums=validate_checksums)
    stage = stage_class(pipeline.connections, **options)
    # Instead of the pipeline's own stage of that class (two would both write the table).
    pipeline.replace(stage)
    with open_capture(capture) as reader:
        for batch in reader.batches():
            pipeline.feed(batch)
    return pipeline.finish(), stage
