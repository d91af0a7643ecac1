"""HTTP/1.x: the ``http`` frame, one row per request/response pair with Zeek's ``http.log`` fields.

Usage in the pipeline (a stream stage)::

    from analyzer.http import HttpStage
    stage = HttpStage(pipeline.connections, capture_passwords=False, extract_dir=None)
    # the pipeline calls stage.feed(batch, fields) per batch and
    # stage.feed_stream(delivery) per reassembled TCP chunk
    tables = stage.finish()        # {"http": frame} (+ {"files": frame} with extract_dir)
    stage.weirds                   # [(frame.number, name, addl), …] for the weird table

Modules: :mod:`.parser` (one connection, Zeek's HTTP analyzer and http.log
script semantics), :mod:`.stage` (detection, sessions, the frame),
:mod:`.schema` (``HTTP``: columns with Zeek types).  Body MIME sniffing and
extraction are :mod:`analyzer.files`.
"""

from .parser import HttpSession, Transaction
from .schema import HTTP
from .stage import HTTP_PORTS, HttpStage

__all__ = ["HTTP", "HTTP_PORTS", "HttpSession", "HttpStage", "Transaction"]
