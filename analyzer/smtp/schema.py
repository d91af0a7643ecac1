"""Schemas of the SMTP frames: ``smtp`` (Zeek's smtp.log) and ``smtp_commands`` (one row per command/reply).

``SMTP`` lists Zeek's ``smtp.log`` fields in Zeek's order with the Zeek types of
its ``#types`` line (``base/protocols/smtp/main.zeek``), then ``attachments``
where Zeek has ``fuids`` (no Zeek type: it holds names, types and sizes, not
file ids), ``is_webmail`` (``policy/protocols/smtp/software.zeek``), the
netsift additions ``auth_mechanism`` and ``extensions``, and ``frame.number``
(not a Zeek field: the frame that joins the row to ``packets`` and to the
connection that gives ``uid``).

Sets (``rcptto``, ``to``, ``cc``) are lists in first-seen order without
duplicates (Zeek prints them in hash order: compare them as sets); ``path`` is
a vector, in Zeek's order.  A list column is null where Zeek's field is unset
and ``[]`` where it is an empty set.
"""

from __future__ import annotations

from analyzer.schema import Column, zeek_conn_id, zeek_field


_z = zeek_field("smtp")


def _n(name, dtype, kind, meaning):
    return Column(name, dtype, kind, meaning, "netsift", None)


SMTP: tuple[Column, ...] = (
    _z("ts", "Float64", "seconds",
       "when Zeek opened the record, epoch seconds: the connection's first SMTP line for the first "
       "transaction, then the reply (or MAIL FROM) that closed the previous one", "time"),
    _z("uid", "string", "text", "uid of the connection (filled by the pipeline from frame.number; null here)",
       "string"),
    *zeek_conn_id("smtp", "originator (client)", "responder (server)", orig_port="originator port",
                  resp_port="responder port"),
    _z("trans_depth", "Int64", "int", "messages finished in the connection before this one, plus one", "count"),
    _z("helo", "string", "text", "argument of the last HELO/EHLO", "string"),
    _z("mailfrom", "string", "text", "first address of the MAIL FROM argument", "string"),
    _z("rcptto", "object", "list", "addresses of the RCPT TO commands (list of str)", "set[string]"),
    _z("date", "string", "text", "Date header, raw", "string"),
    _z("from", "string", "text", "From header, raw", "string"),
    _z("to", "object", "list", "To header(s) split at commas outside quotes, stripped (list of str)",
       "set[string]"),
    _z("cc", "object", "list", "Cc header(s) split like to (list of str)", "set[string]"),
    _z("reply_to", "string", "text", "Reply-To header, raw", "string"),
    _z("msg_id", "string", "text", "Message-ID header, raw", "string"),
    _z("in_reply_to", "string", "text", "In-Reply-To header, raw", "string"),
    _z("subject", "string", "text", "Subject header, raw (encoded words kept, as Zeek)", "string"),
    _z("x_originating_ip", "string", "text", "first IP address in the X-Originating-IP header", "addr"),
    _z("first_received", "string", "text", "the last Received header of the message (Zeek's naming)",
       "string"),
    _z("second_received", "string", "text", "the Received header before first_received", "string"),
    _z("last_reply", "string", "text", "last server reply line seen for the record: code and text", "string"),
    _z("path", "object", "list",
       "responder, originator, then the addresses of the Received headers (list of str)", "vector[addr]"),
    _z("user_agent", "string", "text", "User-Agent / X-Mailer / X-User-Agent header", "string"),
    _z("tls", "boolean", "bool", "STARTTLS succeeded (220): the rest of the connection is TLS", "bool"),
    _n("attachments", "object", "list",
       "one dict per MIME leaf entity with data (Zeek's fuids): filename, content_type (declared), "
       "mime_type (sniffed), size (decoded bytes), path (extracted file or None)"),
    Column("is_webmail", "boolean", "bool", "user agent is a known webmail interface",
           "Zeek policy/protocols/smtp/software.zeek is_webmail", "bool"),
    _n("auth_mechanism", "string", "text", "SASL mechanism of the last AUTH command (credentials never kept)"),
    _n("extensions", "object", "list", "extension keywords of the server's last 250 reply to EHLO (list of str)"),
    Column("frame.number", "Int64", "int",
           "frame of the record's first client command (MAIL FROM, or HELO/EHLO), else of its first line: "
           "joins to packets and conn", "Wireshark frame.number", None),
)


SMTP_COMMANDS: tuple[Column, ...] = (
    Column("frame.number", "Int64", "int", "frame that completed the command line or the reply",
           "Wireshark frame.number", None),
    Column("ts", "Float64", "seconds", "time of that frame, epoch seconds", "netsift", None),
    Column("uid", "string", "text", "uid of the connection (filled by the pipeline; null here)", "netsift", None),
    _n("is_orig", "boolean", "bool", "sent by the originator (a command) rather than the responder (a reply)"),
    Column("smtp.req.command", "string", "text", "command word as sent (Zeek's command set only)",
           "Wireshark smtp.req.command", None),
    Column("smtp.req.parameter", "string", "text",
           "command argument (AUTH: the mechanism only, never credentials)", "Wireshark smtp.req.parameter", None),
    Column("smtp.response.code", "Int64", "int", "reply code (one row per reply, multi-line or not)",
           "Wireshark smtp.response.code", None),
    _n("smtp.response", "string", "text", "reply text, the lines joined with newlines"),
)
