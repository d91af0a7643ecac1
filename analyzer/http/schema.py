"""The ``http`` frame: Zeek's http.log fields, names, types and meanings, plus ``frame.number``.

Fields and ``#types`` are those of ``base/protocols/http/main.zeek`` and
``entities.zeek`` as Zeek writes them (``orig_fuids``/``resp_fuids``, file
ids of Zeek's file analysis, are left out: netsift has no files.log ids).
"""

from __future__ import annotations

from ..schema import Column, zeek_conn_id, zeek_field


_z = zeek_field("http")


HTTP: tuple[Column, ...] = (
    _z("ts", "Float64", "seconds", "time of the first message of the pair (the request line, or the status "
       "line of a response without request), epoch seconds", "time"),
    _z("uid", "string", "text", "uid of the connection (filled by the pipeline from frame.number)", "string"),
    *zeek_conn_id("http", "originator (client)", "responder (server)", orig_port="originator port",
                  resp_port="responder port"),
    _z("trans_depth", "UInt32", "int", "position of the pair in the connection, from 1 (pipelining order)",
       "count"),
    _z("method", "string", "text", "request method as sent (any token: unknown ones give a weird)", "string"),
    _z("host", "string", "text", "value of the request's Host header (the last one)", "string"),
    _z("uri", "string", "text", "request target, %-escapes decoded as Zeek's unescape_URI does", "string"),
    _z("referrer", "string", "text", "value of the request's Referer header", "string"),
    _z("version", "string", "text", "HTTP version of the response (else of the request): 0.9, 1.0, 1.1",
       "string"),
    _z("user_agent", "string", "text", "value of the request's User-Agent header", "string"),
    _z("origin", "string", "text", "value of the request's Origin header", "string"),
    _z("request_body_len", "UInt64", "int",
       "request entity bytes after transfer decoding (de-chunked) and gzip/deflate decoding, gaps counted",
       "count"),
    _z("response_body_len", "UInt64", "int", "response entity bytes, as request_body_len", "count"),
    _z("status_code", "UInt16", "int", "status code of the last response (0: HTTP/0.9 reply)", "count"),
    _z("status_msg", "string", "text", "reason phrase of the last response (<empty> when none)", "string"),
    _z("info_code", "UInt16", "int", "status code of the last 1xx (informational) response", "count"),
    _z("info_msg", "string", "text", "reason phrase of the last 1xx response", "string"),
    _z("tags", "object", "list", "Zeek's HTTP::Tags (always empty: list of str)", "set[enum]"),
    _z("username", "string", "text", "user of a Basic Authorization/Proxy-Authorization header", "string"),
    _z("password", "string", "text", "its password (only with capture_passwords=True)", "string"),
    _z("proxied", "object", "list", "proxy headers as 'NAME -> value' (sorted list of str; null: none)",
       "set[string]"),
    _z("orig_filenames", "object", "list", "filenames of the request's entities (Content-Disposition)",
       "vector[string]"),
    _z("orig_mime_types", "object", "list", "sniffed MIME types of the request's entities", "vector[string]"),
    _z("resp_filenames", "object", "list", "filenames of the response's entities (Content-Disposition)",
       "vector[string]"),
    _z("resp_mime_types", "object", "list", "sniffed MIME types of the response's entities", "vector[string]"),
    Column("frame.number", "Int64", "int",
           "frame carrying the request's first byte (the response's, for a response without request); "
           "joins to packets and gives uid", "Wireshark frame.number"),
)
