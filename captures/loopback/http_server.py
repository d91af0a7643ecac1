"""An HTTP/1.1 server on loopback with deterministic content, and an ``http.client`` client for it.

The server is the standard library's :class:`http.server.ThreadingHTTPServer`
speaking HTTP/1.1 (persistent connections, RFC 9112 §9.3).  What it serves
depends only on the request:

* ``GET``/``HEAD /page/N``: ``N`` bytes of text with Content-Length (HEAD: the
  headers only, RFC 9110 §9.3.2);
* ``GET /chunked/N``: the same text, chunked (RFC 9112 §7.1);
* ``GET /gzip/N``: the same text gzip-encoded (``Content-Encoding: gzip``,
  RFC 9110 §8.4.1);
* ``POST /submit``: reads the body and answers with its length;
* anything else: ``404 Not Found`` with a short body.

Both sides record each request/response with the fields of Zeek's
``http.log``: ``method``, ``host`` (the Host header as sent, port included:
``base/protocols/http/main.zeek`` keeps it since zeek/zeek#1844), ``uri``, ``user_agent``,
``status_code``, and the body lengths after removing chunked framing and
content coding (Zeek's ``request_body_len``/``response_body_len``).
"""

from __future__ import annotations

import gzip
import http.client
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CHUNK = 1000


@dataclass
class HttpExchange:
    """One HTTP request and its response, as one side saw it (Zeek ``http.log`` field names).

    Attributes:
        method, uri: the request line's method and target.
        host: the Host header, as sent (with its ``:port`` if any).
        user_agent: the User-Agent header.
        request_body_len, response_body_len: entity bytes after de-chunking and
            content decoding (0 when there is none, as for HEAD).
        status_code: the response status.
    """

    method: str
    host: str
    uri: str
    user_agent: str
    request_body_len: int
    status_code: int
    response_body_len: int


def page_text(path: str, size: int) -> bytes:
    """``size`` bytes of text that depend only on ``path`` (the server's content)."""
    line = f"netsift loopback content for {path}\n".encode()
    return (line * (size // len(line) + 1))[:size]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "netsift-loopback/1.0"
    sys_version = ""

    def log_message(self, format, *args):        # the exchanges are recorded, not printed
        pass

    def do_GET(self):
        self._respond()

    def do_HEAD(self):
        self._respond()

    def do_POST(self):
        self._respond()

    def _respond(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload, entity = response(self.command, self.path, body)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if ("Transfer-Encoding", "chunked") in headers:
            for start in range(0, len(payload), _CHUNK):
                piece = payload[start:start + _CHUNK]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.command != "HEAD":
            self.wfile.write(payload)
        self.server.owner.record(HttpExchange(
            self.command, self.headers.get("Host") or "", self.path, self.headers.get("User-Agent") or "",
            len(body), status, 0 if self.command == "HEAD" else len(entity)))


def response(method: str, uri: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes, bytes]:
    """What the server answers to ``method uri`` with ``body``: ``(status, headers, payload, entity)``.

    ``payload`` is the message body before chunked framing (gzip-encoded for
    ``/gzip/N``), ``entity`` the content before encoding (what Zeek counts).
    The headers include Content-Length, or Transfer-Encoding for ``/chunked/N``.
    """
    parts = uri.split("/")
    size = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else -1
    kind = parts[1] if size >= 0 else ""
    headers, status = [], 200
    if method == "POST" and uri == "/submit":
        entity = payload = f"received {len(body)} bytes\n".encode()
    elif kind in ("page", "chunked") and (method == "GET" or (method == "HEAD" and kind == "page")):
        entity = payload = page_text(uri, size)
    elif kind == "gzip" and method == "GET":
        entity = page_text(uri, size)
        payload = gzip.compress(entity, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    else:
        status = 404
        entity = payload = b"not found\n"
    if kind == "chunked" and status == 200:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(len(payload))))
    return status, headers, payload, entity


def expected(session: dict, port: int | None = None, host: str = "127.0.0.1") -> list[HttpExchange]:
    """The exchanges :func:`run_session` should record for ``session``, computed without a network.

    With ``port=None`` the Host of a session without one is left as ``host:?``.
    """
    sent_host = session["host"] or f"{host}:{'?' if port is None else port}"
    done = []
    for method, uri, body in session["requests"]:
        status, _, _, entity = response(method, uri, body)
        done.append(HttpExchange(method, sent_host, uri, session["user_agent"], len(body), status,
                                 0 if method == "HEAD" else len(entity)))
    return done


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class HttpServer:
    """The HTTP server on ``host``, port chosen free (0) unless given.

    A context manager: bound on construction, served from a thread after
    :meth:`start`, closed by :meth:`close`.  ``received`` lists an
    :class:`HttpExchange` per request answered.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.received: list[HttpExchange] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.server = _Server((host, port), _Handler)
        self.server.owner = self
        self.port = self.server.server_address[1]

    def record(self, exchange: HttpExchange) -> None:
        with self._lock:
            self.received.append(exchange)

    def start(self) -> "HttpServer":
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="netsift-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> "HttpServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------
# The client

USER_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
               "curl/8.5.0", "python-http.client/3.11 netsift-loopback", "Wget/1.21.4")
HOSTS = ("www.netsift.test", "api.netsift.test:8080", None)      # None: http.client's own Host header


def plan(rng: random.Random, count: int) -> list[dict]:
    """``count`` sessions, each ``{"host", "user_agent", "requests": [(method, uri, body), …]}``.

    The first sessions cover, between them, GET, HEAD, POST, chunked, gzip and a 404.
    """
    kinds = ["page", "head", "post", "chunked", "gzip", "missing"]
    sessions = []
    for index in range(count):
        requests = []
        first = kinds[(2 * index) % len(kinds)], kinds[(2 * index + 1) % len(kinds)]
        for kind in list(first) + rng.sample(kinds, rng.randrange(0, 3)):
            size = rng.randrange(200, 6000)
            if kind == "post":
                requests.append(("POST", "/submit", bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 3000)))))
            elif kind == "head":
                requests.append(("HEAD", f"/page/{size}", b""))
            elif kind == "missing":
                requests.append(("GET", f"/nothing/here-{rng.randrange(100)}", b""))
            else:
                requests.append(("GET", f"/{kind}/{size}", b""))
        sessions.append({"host": HOSTS[index % len(HOSTS)], "user_agent": rng.choice(USER_AGENTS),
                         "requests": requests})
    return sessions


def run_session(session: dict, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> list[HttpExchange]:
    """Send one session's requests over one persistent connection; the exchanges as the client saw them."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    done = []
    try:
        for method, uri, body in session["requests"]:
            headers = {"User-Agent": session["user_agent"], "Accept": "*/*"}
            if session["host"]:
                headers["Host"] = session["host"]
            if body:
                headers["Content-Type"] = "application/octet-stream"
            connection.request(method, uri, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.getheader("Content-Encoding") == "gzip":
                payload = gzip.decompress(payload)
            sent_host = session["host"] or f"{host}:{port}"        # http.client's default Host
            done.append(HttpExchange(method, sent_host, uri, session["user_agent"], len(body),
                                     response.status, len(payload)))
    finally:
        connection.close()
    return done
