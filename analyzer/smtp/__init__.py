"""SMTP: the ``smtp`` frame, one row per mail transaction with Zeek's ``smtp.log`` fields.

Usage in the pipeline (a stage that reads TCP streams)::

    from analyzer.smtp import SmtpStage
    stage = SmtpStage(pipeline.connections, extract_dir=None)
    pipeline.stages.append(stage)
    pipeline.stream_readers.append(stage)
    ...
    tables = pipeline.finish()        # tables["smtp"]; stage.weirds: (frame.number, name, addl)

Modules:

* :mod:`.protocol`: the sans-I/O command/reply state machine of one
  connection (Zeek's ``SMTP_Analyzer``): bytes in, events out.
* :mod:`.message`: message headers and MIME entities (Zeek's MIME analyzer
  rules; the :mod:`email` package for file names and encoded words).
* :mod:`.session`: Zeek's ``main.zeek`` over the events: the records.
* :mod:`.text`: Zeek's address and IP helpers.
* :mod:`.stage`: :class:`SmtpStage`, detection on any port, the frames.
* :mod:`.schema`: ``SMTP`` and ``SMTP_COMMANDS`` columns.
"""

from .message import ParsedMessage, Part, parse_message
from .protocol import Message, Reply, Request, SmtpProtocol, StartTls, Weird
from .schema import SMTP, SMTP_COMMANDS
from .session import Record, SmtpSession
from .stage import SMTP_PORTS, SmtpStage

__all__ = [
           "SMTP",
           "SMTP_COMMANDS",
           "SMTP_PORTS",
           "Message",
           "ParsedMessage",
           "Part",
           "Record",
           "Reply",
           "Request",
           "SmtpProtocol",
           "SmtpSession",
           "SmtpStage",
           "StartTls",
           "Weird",
           "parse_message",
]
