"""SMTP sessions as raw command/reply bytes, ground truth in Zeek smtp.log form.

A session: 220 greeting, EHLO with a multi-line 250 listing extensions, then
either STARTTLS (220, after which both sides exchange opaque random bytes) or
one to three mail transactions: MAIL FROM, several RCPT TO, then DATA with a
MIME message (Date/From/To/Cc/Subject/Message-ID headers, a text part, a
base64 attachment, lines starting with "." dot-stuffed), or BDAT (one or two
chunks, the last with LAST), or RSET (transaction abandoned); QUIT, 221.

:func:`session` replays Zeek's ``base/protocols/smtp/main.zeek`` logic over
the script to produce the log records: a record is written when the reply to
"." or to ``BDAT ... LAST`` arrives, when a new MAIL FROM follows a
transaction that was not finished (RSET), or at the end for STARTTLS;
``trans_depth`` is the number of finished messages plus one; ``last_reply``
is the last reply seen before the record was written.
"""

from __future__ import annotations

import base64
import random

from .model import domain, sentence, word

FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
LAST = ("smith", "jones", "garcia", "miller", "davis", "lopez", "clark", "lewis")


def _person(rng: random.Random, dom: str) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first.capitalize()} {last.capitalize()}", f"{first}.{last}{rng.randrange(100)}@{dom}"


def _message(rng: random.Random, sender, rcpts, small: bool):
    """(message bytes with CRLF line ends, header truth fields)."""
    date = (f"{rng.choice(('Mon', 'Tue', 'Wed'))}, {rng.randint(1, 28)} Jan 2024 "
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} +0000")
    to = rcpts[:max(1, len(rcpts) - rng.randint(0, 1))]
    cc = rcpts[len(to):]

    def fmt(p):
        return f"{p[0]} <{p[1]}>" if rng.random() < 0.6 else p[1]

    from_h = fmt(sender)
    to_h = [fmt(p) for p in to]
    cc_h = [fmt(p) for p in cc]
    subject = sentence(rng, rng.randint(2, 6)).capitalize()
    msg_id = f"<{rng.getrandbits(64):016x}.{rng.randrange(10**6)}@{sender[1].split('@')[1]}>"
    boundary = f"=_{rng.getrandbits(64):016x}"
    headers = [f"Date: {date}", f"From: {from_h}", f"To: {', '.join(to_h)}"]
    if cc_h:
        headers.append(f"Cc: {', '.join(cc_h)}")
    headers += [f"Subject: {subject}", f"Message-ID: {msg_id}", "MIME-Version: 1.0",
                f'Content-Type: multipart/mixed; boundary="{boundary}"']
    lines = rng.randint(1, 2) if small else rng.randint(2, 20)
    text = [sentence(rng, rng.randint(5, 14)).capitalize() + "." for _ in range(lines)]
    # Lines that need dot-stuffing.
    text.insert(rng.randrange(len(text) + 1), ".")
    text.insert(rng.randrange(len(text) + 1), f".{word(rng)} starts with a dot")
    attach = rng.randbytes(rng.randint(40, 120) if small else rng.randint(2000, 20000))
    b64 = base64.encodebytes(attach).decode().replace("\n", "\r\n")
    body = [f"--{boundary}", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 7bit", ""] + text + [
        f"--{boundary}", f'Content-Type: application/octet-stream; name="{word(rng)}.bin"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{word(rng)}.bin"', ""]
    msg = "\r\n".join(headers + [""] + body) + "\r\n" + b64 + f"--{boundary}--\r\n"
    fields = {"date": date, "from": from_h, "to": to_h}
    if cc_h:
        fields["cc"] = cc_h
    fields.update({"msg_id": msg_id, "subject": subject})
    return msg.encode(), fields


def _dot_stuff(msg: bytes) -> bytes:
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def session(rng: random.Random, small: bool = False):
    """One SMTP connection: ``(turns, records, closer, skippable)`` like :func:`..http.session`.

    ``skippable``: the TLS bytes after STARTTLS (smtp.log does not depend on
    them); nothing else, since a gap in a SMTP dialogue or message changes the
    log (Zeek's ``SMTP_Analyzer::Undelivered`` ends the data and stops
    pairing replies with commands).
    """
    server_dom = domain(rng)
    server = f"mail.{server_dom}"
    client_dom = domain(rng)
    helo = f"{rng.choice(('mx', 'smtp', 'relay', 'laptop'))}{rng.randrange(10)}.{client_dom}"
    steps = []                      # (client bytes or None, server reply lines, command)
    steps.append((None, [f"220 {server} ESMTP Postfix (Debian/GNU)"], None))
    steps.append((f"EHLO {helo}\r\n".encode(),
                  [f"250-{server}", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY",
                   "250-ETRN", "250-STARTTLS", "250-ENHANCEDSTATUSCODES", "250-8BITMIME",
                   "250-CHUNKING", "250 SMTPUTF8"], "EHLO"))
    tls = rng.random() < 0.15
    if tls:
        steps.append((b"STARTTLS\r\n", ["220 2.0.0 Ready to start TLS"], "STARTTLS"))
    else:
        ntx = rng.choice((1, 1, 2)) if small else rng.choice((1, 1, 1, 2, 3))
        modes = ["data"] * ntx
        if ntx > 1:
            modes[rng.randrange(ntx - 1)] = "rset"
        if rng.random() < 0.3:
            modes[-1] = "bdat"
        for mode in modes:
            sender = _person(rng, client_dom)
            rcpts = [_person(rng, rng.choice((server_dom, domain(rng))))
                     for _ in range(rng.randint(1, 2 if small else 4))]
            size = f" SIZE={rng.randint(1000, 50000)}" if rng.random() < 0.5 else ""
            steps.append((f"MAIL FROM:<{sender[1]}>{size}\r\n".encode(), ["250 2.1.0 Ok"], "MAIL"))
            for r in rcpts:
                steps.append((f"RCPT TO:<{r[1]}>\r\n".encode(), ["250 2.1.5 Ok"], "RCPT",
                              r[1]))
            qid = f"{rng.getrandbits(40):010X}"
            if mode == "rset":
                steps.append((b"RSET\r\n", ["250 2.0.0 Ok"], "RSET"))
                continue
            msg, fields = _message(rng, sender, rcpts, small)
            if mode == "data":
                steps.append((b"DATA\r\n", ["354 End data with <CR><LF>.<CR><LF>"], "DATA"))
                steps.append((_dot_stuff(msg) + b".\r\n", [f"250 2.0.0 Ok: queued as {qid}"], ".",
                              fields))
            else:
                chunks = [msg]
                if rng.random() < 0.5:
                    cut = rng.randrange(len(msg) // 3, len(msg) - 1)
                    chunks = [msg[:cut], msg[cut:]]
                if len(chunks) == 2:
                    steps.append((f"BDAT {len(chunks[0])}\r\n".encode() + chunks[0],
                                  [f"250 2.0.0 Ok: {len(chunks[0])} octets received"], "BDAT"))
                steps.append((f"BDAT {len(chunks[-1])} LAST\r\n".encode() + chunks[-1],
                              [f"250 2.0.0 Ok: {len(msg)} bytes queued as {qid}"], "BDAT LAST",
                              fields))
        steps.append((b"QUIT\r\n", ["221 2.0.0 Bye"], "QUIT"))

    turns = []
    for st in steps:
        client, reply = st[0], st[1]
        if client is not None:
            turns.append((0, client, rng.randrange(50_000, 3_000_000)))
        turns.append((1, ("\r\n".join(reply) + "\r\n").encode(), rng.randrange(100_000, 5_000_000)))
    # After STARTTLS the rest is TLS, which smtp.log does not look into: a gap there changes nothing.
    skippable = [[(sum(len(t[1]) for t in turns if t[0] == d), 1 << 62)] if tls else [] for d in (0, 1)]
    if tls:
        for i in range(rng.randint(2, 5)):
            if small:
                size = rng.randint(100, 200)
            else:
                size = rng.randint(200, 4000) if i % 2 else rng.randint(100, 600)
            turns.append((i % 2, rng.randbytes(size), rng.randrange(100_000, 5_000_000)))
    return turns, _zeek_records(steps, helo, tls), 0 if tls else 1, skippable


def _zeek_records(steps, helo: str, tls: bool) -> list[dict]:
    """Replay Zeek's smtp main.zeek over the steps (see the module docstring)."""
    records = []
    done = 0                                  # messages_transferred
    cur = {"helo": None, "active": False}

    def new():
        return {"trans_depth": done + 1, "helo": helo if seen_helo else None, "active": False}

    seen_helo = False
    cur = new()
    last_reply = None
    for st in steps:
        cmd = st[2]
        if cmd == "EHLO":
            seen_helo = True
            cur["helo"] = helo
        elif cmd == "MAIL":
            if cur["active"]:
                cur["last_reply"] = last_reply
                records.append(cur)
                cur = new()
            cur["mailfrom"] = st[0].decode().split("<", 1)[1].split(">", 1)[0]
            cur["active"] = True
        elif cmd == "RCPT":
            cur.setdefault("rcptto", []).append(st[3])
            cur["active"] = True
        elif cmd == "STARTTLS":
            cur["tls"] = True
            cur["active"] = True
        last_reply = st[1][-1]
        if cmd in (".", "BDAT LAST"):
            cur.update(st[3])
            cur["last_reply"] = last_reply
            done += 1
            records.append(cur)
            cur = new()
    if cur["active"]:
        cur["last_reply"] = last_reply
        records.append(cur)
    out = []
    order = ("trans_depth", "helo", "mailfrom", "rcptto", "date", "from", "to", "cc",
             "msg_id", "subject", "last_reply", "tls")
    for r in records:
        rec = {k: r[k] for k in order if r.get(k) is not None}
        rec["tls"] = bool(r.get("tls", False))
        out.append(rec)
    return out
