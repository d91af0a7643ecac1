"""HTTP/1.1 sessions as raw request/response bytes, ground truth in Zeek http.log form.

A session is one keep-alive connection with one to five transactions: GET,
POST (form or JSON, sometimes ``Expect: 100-continue``), HEAD; responses with
Content-Length, chunked with trailers, gzip-encoded (optionally chunked too),
204, 304, larger binary bodies spread over many segments.  Some sessions
pipeline their requests.  The last request may say ``Connection: close``;
then the server closes.

Truth follows Zeek: ``response_body_len``/``request_body_len`` count the
entity after removing chunked framing and gzip encoding; a 1xx interim reply
sets ``info_code``/``info_msg``; a HEAD, 204 or 304 response has no body.
"""

from __future__ import annotations

import gzip
import json
import random

from .model import domain, sentence, word

USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.31.0",
)
SERVERS = ("nginx/1.24.0", "Apache/2.4.58 (Debian)", "netsift-test/1.0")
KINDS = ("get", "get_large", "chunked", "gzip", "cond", "ping", "head", "post", "post_continue")
_WEIGHTS = (30, 8, 12, 10, 8, 5, 7, 12, 8)


def _html(rng: random.Random, size: int) -> bytes:
    parts = [f"<!DOCTYPE html>\n<html><head><title>{sentence(rng, 3)}</title></head><body>\n"]
    n = len(parts[0])
    while n < size:
        p = f"<p>{sentence(rng, rng.randint(8, 30))}</p>\n"
        parts.append(p)
        n += len(p)
    parts.append("</body></html>\n")
    return "".join(parts).encode()


def _date(rng: random.Random) -> str:
    return f"Mon, 01 Jan 2024 {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} GMT"


def _chunk(body: bytes, rng: random.Random, trailer: str | None) -> bytes:
    out, pos = [], 0
    while pos < len(body):
        n = min(len(body) - pos, rng.randint(64, 4096 if len(body) > 2000 else 256))
        out.append(b"%x\r\n" % n + body[pos:pos + n] + b"\r\n")
        pos += n
    out.append(b"0\r\n" + (trailer.encode() + b"\r\n" if trailer else b"") + b"\r\n")
    return b"".join(out)


def _response(rng: random.Random, code: int, msg: str, headers: list[str], body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {code} {msg}", f"Date: {_date(rng)}", f"Server: {rng.choice(SERVERS)}"]
    head += headers
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def session(rng: random.Random, small: bool = False):
    """One connection's worth of HTTP.

    Returns ``(turns, records, closer, skippable)``: ``turns`` are
    ``(direction, bytes, think_ns)``; ``records`` Zeek http.log fields from
    ``trans_depth`` on, one per transaction; ``closer`` the side that starts
    the teardown; ``skippable`` per direction the ``(start, end)`` offsets in
    that direction's byte stream that a content gap may hit without changing
    the log (see :data:`..tcp` loss): the bytes of a body framed by
    Content-Length without content coding, after its first byte.  Zeek's
    ``HTTP_Entity::Undelivered`` skips a gap there (parsing goes on, the gap
    counts in the body length) unless no body byte was delivered yet.
    """
    host = f"www.{domain(rng)}"
    ua = rng.choice(USER_AGENTS)
    n = rng.choice((1, 2)) if small else rng.choice((1, 1, 2, 3, 4, 5))
    kinds = rng.choices(KINDS, _WEIGHTS, k=n)
    close = rng.random() < 0.5
    # No HEAD in a pipeline: Wireshark pairs every response of a pipelined burst
    # with its last request, so a HEAD there breaks its parsing of the bodies.
    pipelined = (n > 1 and "post_continue" not in kinds and "head" not in kinds
                 and rng.random() < 0.3)
    referrer = None
    txs = []          # (request parts, response parts, record)
    for i, kind in enumerate(kinds):
        last = i == n - 1
        path = f"/{word(rng)}/{word(rng)}{rng.randrange(100)}"
        method, req_body, extra = "GET", b"", []
        if kind == "head":
            method = "HEAD"
        elif kind in ("post", "post_continue"):
            method = "POST"
            if rng.random() < 0.5:
                req_body = json.dumps({"name": word(rng), "count": rng.randrange(1000),
                                       "note": sentence(rng, rng.randint(3, 12))}).encode()
                extra.append("Content-Type: application/json")
            else:
                user = word(rng)
                words = sentence(rng, rng.randint(3, 20)).split()
                req_body = (f"user={user}&msg=" + "+".join(words)).encode()
                extra.append("Content-Type: application/x-www-form-urlencoded")
            if kind == "post_continue":
                req_body *= 1 if small else rng.randint(20, 60)
                extra.append("Expect: 100-continue")
            extra.append(f"Content-Length: {len(req_body)}")
        elif kind == "cond":
            extra.append(f'If-None-Match: "{rng.getrandbits(48):012x}"')
        elif kind == "gzip":
            extra.append("Accept-Encoding: gzip, deflate")
        if kind == "get_large":
            path = f"/downloads/{word(rng)}{rng.randrange(1000)}.bin"
        uri = path + (f"?q={word(rng)}&page={rng.randrange(10)}" if rng.random() < 0.3 else "")
        lines = [f"{method} {uri} HTTP/1.1", f"Host: {host}", f"User-Agent: {ua}", "Accept: */*"]
        if referrer:
            lines.append(f"Referer: {referrer}")
        lines += extra
        if last and close:
            lines.append("Connection: close")
        req_head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        rec = {"trans_depth": i + 1, "method": method, "host": host, "uri": uri}
        if referrer:
            rec["referrer"] = referrer
        rec.update({"version": "1.1", "user_agent": ua, "request_body_len": len(req_body)})
        conn_hdr = ["Connection: close"] if last and close else ["Keep-Alive: timeout=5"]
        body_len = 0
        plain = 0         # length of the response's Content-Length body without content coding
        interim = None
        if kind in ("get", "head"):
            body = _html(rng, rng.randint(200, 400) if small else rng.randint(200, 6000))
            resp = _response(rng, 200, "OK", ["Content-Type: text/html; charset=utf-8",
                                              f"Content-Length: {len(body)}"] + conn_hdr,
                             body if method == "GET" else b"")
            code, msg, body_len = 200, "OK", len(body) if method == "GET" else 0
            plain = body_len
        elif kind == "get_large":
            body = rng.randbytes(rng.randint(300, 500) if small else rng.randint(20_000, 120_000))
            resp = _response(rng, 200, "OK", ["Content-Type: application/octet-stream",
                                              f"Content-Length: {len(body)}"] + conn_hdr, body)
            code, msg, body_len = 200, "OK", len(body)
            plain = body_len
        elif kind == "chunked":
            body = _html(rng, rng.randint(300, 500) if small else rng.randint(300, 12000))
            trailer = f"X-Content-Checksum: {rng.getrandbits(64):016x}"
            resp = _response(rng, 200, "OK", ["Content-Type: text/html; charset=utf-8",
                                              "Transfer-Encoding: chunked",
                                              "Trailer: X-Content-Checksum"] + conn_hdr,
                             _chunk(body, rng, trailer))
            code, msg, body_len = 200, "OK", len(body)
        elif kind == "gzip":
            body = _html(rng, rng.randint(300, 600) if small else rng.randint(300, 20000))
            z = gzip.compress(body, compresslevel=6, mtime=0)
            if rng.random() < 0.3:
                hdrs = ["Transfer-Encoding: chunked"]
                payload = _chunk(z, rng, None)
            else:
                hdrs = [f"Content-Length: {len(z)}"]
                payload = z
            resp = _response(rng, 200, "OK", ["Content-Type: text/html; charset=utf-8",
                                              "Content-Encoding: gzip", "Vary: Accept-Encoding"]
                             + hdrs + conn_hdr, payload)
            code, msg, body_len = 200, "OK", len(body)
        elif kind == "cond":
            resp = _response(rng, 304, "Not Modified", [f'ETag: "{rng.getrandbits(48):012x}"'] + conn_hdr)
            code, msg = 304, "Not Modified"
        elif kind == "ping":
            resp = _response(rng, 204, "No Content", conn_hdr)
            code, msg = 204, "No Content"
        else:   # post, post_continue
            body = json.dumps({"ok": True, "id": rng.randrange(10**6)}).encode()
            code, msg = (201, "Created") if rng.random() < 0.4 else (200, "OK")
            resp = _response(rng, code, msg, ["Content-Type: application/json",
                                              f"Content-Length: {len(body)}"] + conn_hdr, body)
            body_len = plain = len(body)
            if kind == "post_continue":
                interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        rec.update({"response_body_len": body_len, "status_code": code, "status_msg": msg})
        if interim:
            rec.update({"info_code": 100, "info_msg": "Continue"})
        txs.append((req_head, req_body, interim, resp, rec, plain))
        if kind == "get" and rng.random() < 0.6:
            referrer = f"http://{host}{uri}"

    turns = []
    pos = [0, 0]
    skippable = ([], [])

    def send(d, parts, think):
        # parts: (bytes, length of its skippable Content-Length body at the end)
        for data, body in parts:
            if body > 1:
                skippable[d].append((pos[d] + len(data) - body + 1, pos[d] + len(data)))
            pos[d] += len(data)
        turns.append((d, b"".join(p[0] for p in parts), think))

    if pipelined:
        send(0, [(t[0] + t[1], len(t[1])) for t in txs], 0)
        for t in txs:
            send(1, [(t[3], t[5])], rng.randrange(100_000, 3_000_000))
    else:
        for t in txs:
            think = rng.randrange(1_000_000, 80_000_000) if turns else rng.randrange(100_000)
            if t[2]:
                send(0, [(t[0], 0)], think)
                send(1, [(t[2], 0)], rng.randrange(50_000, 500_000))
                send(0, [(t[1], len(t[1]))], rng.randrange(20_000, 200_000))
            else:
                send(0, [(t[0] + t[1], len(t[1]))], think)
            send(1, [(t[3], t[5])], rng.randrange(100_000, 20_000_000))
    return turns, [t[4] for t in txs], 1 if close else 0, skippable
