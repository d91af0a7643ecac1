"""An SMTP server on loopback (aiosmtpd, STARTTLS offered) and an smtplib client for it.

The server is aiosmtpd's :class:`~aiosmtpd.controller.Controller` with a
throwaway self-signed certificate (:mod:`captures.loopback.tls`) so that it
offers STARTTLS (RFC 3207); it accepts every message and records it.  The
listening socket is bound to port 0 before the controller starts, so the
port is chosen free by the kernel.

Each mail transaction is recorded with the fields of Zeek's ``smtp.log``:
``helo``, ``mailfrom``, ``rcptto`` (envelope, RFC 5321 §4.1.1), ``from``,
``to``, ``subject`` (message headers, RFC 5322 §3.6), ``tls``.  Zeek sees
nothing after STARTTLS, so for such a session its row holds only ``helo``
and ``tls`` (the recorded values are still the real ones: see
:meth:`SmtpExchange.as_zeek_sees_it`).
"""

from __future__ import annotations

import email
import email.policy
import random
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

from .tls import self_signed_context

DOMAIN = "netsift.test"
REPLY = "250 Message accepted for delivery"


@dataclass
class SmtpExchange:
    """One mail transaction, as one side saw it (Zeek ``smtp.log`` field names).

    Attributes:
        helo: the EHLO/HELO argument.
        mailfrom: the MAIL FROM address.
        rcptto: the RCPT TO addresses, in order.
        from_: the From header (Zeek ``from``).
        to: the To header's addresses, split at commas.
        subject: the Subject header.
        tls: the transaction ran after STARTTLS.
        size: message bytes (headers and body, CRLF line ends).
        attachments: file names of the MIME attachments.
    """

    helo: str
    mailfrom: str
    rcptto: list[str]
    from_: str
    to: list[str]
    subject: str
    tls: bool
    size: int = 0
    attachments: list[str] = field(default_factory=list)

    def as_zeek_sees_it(self) -> dict:
        """The smtp.log fields a passive observer can know: after STARTTLS only ``helo`` and ``tls``."""
        if self.tls:
            return {"helo": self.helo, "mailfrom": None, "rcptto": None, "from": None, "to": None,
                    "subject": None, "tls": True}
        return {"helo": self.helo, "mailfrom": self.mailfrom, "rcptto": self.rcptto, "from": self.from_,
                "to": self.to, "subject": self.subject, "tls": False}


def _exchange(helo: str, mailfrom: str, rcptto: list[str], raw: bytes, tls: bool) -> SmtpExchange:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    to = [part.strip() for part in (message.get("To") or "").split(",") if part.strip()]
    names = [part.get_filename() for part in message.walk() if part.get_filename()]
    return SmtpExchange(helo, mailfrom, list(rcptto), message.get("From"), to, message.get("Subject"), tls,
                        len(raw), names)


class _Recorder:
    """aiosmtpd handler: accept every message, record it."""

    def __init__(self, owner: "SmtpServer"):
        self.owner = owner

    async def handle_DATA(self, server, session, envelope):
        self.owner.record(_exchange(session.host_name, envelope.mail_from, envelope.rcpt_tos,
                                    envelope.original_content or envelope.content, session.ssl is not None))
        return REPLY


class SmtpServer:
    """The aiosmtpd server on ``host``, STARTTLS offered, port chosen free unless given.

    A context manager: :meth:`start` binds and serves (in aiosmtpd's thread),
    :meth:`close` stops it.  ``received`` lists an :class:`SmtpExchange` per
    message accepted.

    Raises:
        ImportError: aiosmtpd or cryptography missing (``pip install 'netsift[live]'``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, server_hostname: str = f"mx.{DOMAIN}"):
        from aiosmtpd.controller import Controller

        self.received: list[SmtpExchange] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        listener = self.listener

        class _BoundController(Controller):
            # aiosmtpd binds host:port itself and then connects to it to check; with port 0 that
            # check would dial port 0, so it is handed a socket already bound instead.
            def _create_server(self):
                return self.loop.create_server(self._factory_invoker, sock=listener)

        self.controller = _BoundController(_Recorder(self), hostname=host, port=self.port,
                                           tls_context=self_signed_context(), require_starttls=False,
                                           server_hostname=server_hostname)
        self._started = False

    def record(self, exchange: SmtpExchange) -> None:
        with self._lock:
            self.received.append(exchange)

    def start(self) -> "SmtpServer":
        self.controller.start()
        self._started = True
        return self

    def close(self) -> None:
        """Stop the server and close its socket (idempotent)."""
        if self._started:
            self._started = False
            self.controller.stop()
        self.listener.close()

    def __enter__(self) -> "SmtpServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------
# The client

_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
_SUBJECTS = ("Quarterly report", "Lunch on Friday?", "Build 17 results", "Minutes of the meeting",
             "Invoice 2024-031", "Re: holiday plans")


def plan(rng: random.Random, count: int) -> list[dict]:
    """``count`` sessions, each ``{"helo", "starttls", "messages": [EmailMessage with envelope], …}``.

    Session 1 (the second) uses STARTTLS and sends one message (Zeek logs one
    row for it, since it cannot see the transactions); the others are in clear text, with
    two to four recipients (some only on Cc or only in the envelope) and a
    MIME attachment on every other message.
    """
    sessions = []
    for index in range(count):
        messages = []
        starttls = index == 1
        for depth in range(1 if starttls else 1 + (rng.random() < 0.3)):
            sender, *others = rng.sample(_PEOPLE, 5)
            recipients = [f"{name}@mx.{DOMAIN}" for name in others[:rng.randrange(2, 5)]]
            message = EmailMessage()
            message["From"] = f"{sender.title()} Example <{sender}@client.{DOMAIN}>"
            message["To"] = ", ".join(recipients[:2])
            if len(recipients) > 2:
                message["Cc"] = ", ".join(recipients[2:])
            message["Subject"] = rng.choice(_SUBJECTS)
            message["Message-ID"] = f"<{index}.{depth}.{rng.getrandbits(32):08x}@client.{DOMAIN}>"
            message.set_content("Hello,\n.a line that starts with a dot\nregards\n" * rng.randrange(1, 20))
            if (index + depth) % 2 == 0:
                attachment = bytes(rng.getrandbits(8) for _ in range(rng.randrange(500, 6000)))
                message.add_attachment(attachment, maintype="application", subtype="octet-stream",
                                       filename=f"report-{index}-{depth}.bin")
            messages.append((f"{sender}@client.{DOMAIN}", recipients, message))
        sessions.append({"helo": f"client{index}.{DOMAIN}", "starttls": starttls, "messages": messages})
    return sessions


def run_session(session: dict, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> list[SmtpExchange]:
    """Send one session's messages over one SMTP connection; the transactions as the client made them."""
    done = []
    with smtplib.SMTP(host, port, local_hostname=session["helo"], timeout=timeout) as client:
        client.ehlo()
        if session["starttls"]:
            client.starttls(context=ssl._create_unverified_context())   # the throwaway certificate
            client.ehlo()
        for (mailfrom, recipients, message), exchange in zip(session["messages"], expected(session)):
            client.send_message(message, from_addr=mailfrom, to_addrs=recipients)
            done.append(exchange)
    return done


def expected(session: dict) -> list[SmtpExchange]:
    """The transactions of ``session`` as :func:`run_session` records them (the message as smtplib sends it)."""
    return [_exchange(session["helo"], mailfrom, recipients, message.as_bytes(policy=email.policy.SMTP),
                      session["starttls"]) for mailfrom, recipients, message in session["messages"]]
