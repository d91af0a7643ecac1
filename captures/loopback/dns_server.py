"""A DNS server on loopback (UDP and TCP) answering from an in-memory zone, and dnspython clients for it.

The server parses queries with dnspython (``dns.message.from_wire``) and
answers from :class:`Zone`: A, AAAA, MX and TXT records, CNAMEs followed
within the zone (the chain then the target's records, in that order, as a
recursive resolver returns them), NXDOMAIN with the zone's SOA in the
authority section for names it does not hold (RFC 2308 §3), NOERROR with no
answer for a name without records of the asked type.  Over TCP each message
has a two-byte length prefix and several queries may share a connection
(RFC 1035 §4.2.2, RFC 7766 §6.2.1).  Names are under ``netsift.test``
(RFC 6761 §6.2), IPv4 addresses from 192.0.2.0/24 (RFC 5737) and IPv6 ones
from 2001:db8::/32 (RFC 3849).

The clients are dnspython's own: :class:`dns.resolver.Resolver` pointed at
the server (UDP) and :func:`dns.query.tcp` (TCP).  Both sides record each
exchange with the fields of Zeek's ``dns.log`` (``query``, ``qtype_name``,
``rcode_name``, ``answers``, ``TTLs``, ``trans_id``), rendered as
``base/protocols/dns/main.zeek`` renders them (see :func:`zeek_answers`).
"""

from __future__ import annotations

import ipaddress
import random
import socketserver
import struct
import threading
from dataclasses import dataclass, field

ORIGIN = "netsift.test."
_TTL = 300


@dataclass
class DnsExchange:
    """One DNS query and its response, as one side saw it (Zeek ``dns.log`` field names).

    Attributes:
        proto: ``"udp"`` or ``"tcp"``.
        trans_id: the 16-bit message ID.
        query: the name asked, without the final dot (Zeek ``query``).
        qtype_name: RR type mnemonic (``"A"``, ``"MX"`` …).
        rcode_name: response code mnemonic (``"NOERROR"``, ``"NXDOMAIN"``).
        answers: answer section rendered as Zeek does (addresses, names, ``TXT <len> <text>``).
        TTLs: TTL of each answer, seconds.
    """

    proto: str
    trans_id: int
    query: str
    qtype_name: str
    rcode_name: str
    answers: list[str] = field(default_factory=list)
    TTLs: list[float] = field(default_factory=list)


def zeek_answers(message) -> tuple[list[str], list[float]]:
    """``(answers, TTLs)`` of a dnspython message's answer section as Zeek's dns.log writes them.

    A/AAAA: the address; CNAME: the target; MX: the exchange (Zeek's
    ``dns_MX_reply`` logs the name only); TXT: ``TXT <length> <string>`` per
    character-string, joined by spaces (``dns_TXT_reply`` in
    ``base/protocols/dns/main.zeek``).  Names lose their final dot.
    """
    import dns.rdatatype as T
    answers, ttls = [], []
    for rrset in message.answer:
        for rdata in rrset:
            if rrset.rdtype in (T.A, T.AAAA):
                text = ipaddress.ip_address(rdata.address).compressed
            elif rrset.rdtype == T.CNAME:
                text = rdata.target.to_text(omit_final_dot=True)
            elif rrset.rdtype == T.MX:
                text = rdata.exchange.to_text(omit_final_dot=True)
            elif rrset.rdtype == T.TXT:
                text = " ".join(f"TXT {len(s)} {s.decode('ascii', 'replace')}" for s in rdata.strings)
            else:
                text = rdata.to_text()
            answers.append(text)
            ttls.append(float(rrset.ttl))
    return answers, ttls


def _exchange(proto: str, message) -> DnsExchange:
    import dns.rcode
    import dns.rdatatype
    question = message.question[0]
    answers, ttls = zeek_answers(message)
    return DnsExchange(proto, message.id, question.name.to_text(omit_final_dot=True).lower(),
                       dns.rdatatype.to_text(question.rdtype), dns.rcode.to_text(message.rcode()), answers, ttls)


# ---------------------------------------------------------------------------
# The zone


class Zone:
    """An in-memory zone under :data:`ORIGIN`, drawn from ``rng``.

    Attributes:
        records: ``{(name, type): [rdata text, …]}``, names absolute and lower case.
        questions: ``(name, type)`` pairs worth asking: each record kind, a
            CNAME chain, a name without the asked type, a name that does not exist.
    """

    def __init__(self, rng: random.Random):
        labels = rng.sample(["www", "api", "cdn", "mail", "files", "wiki", "shop", "news", "git", "login"], 6)
        www, api, cdn, mail, files, alias = (f"{label}.{ORIGIN}" for label in labels)
        net = rng.randrange(1, 250)
        self.records: dict[tuple[str, str], list[str]] = {
            (ORIGIN, "SOA"): [f"ns1.{ORIGIN} hostmaster.{ORIGIN} {rng.randrange(1, 99999)} 3600 600 86400 300"],
            (ORIGIN, "MX"): [f"10 {mail}", f"20 backup-{mail}"],
            (ORIGIN, "TXT"): [f'"v=spf1 ip4:192.0.2.{net}/32 -all"'],
            (www, "A"): [f"192.0.2.{net}", f"192.0.2.{net + 1}"],
            (www, "AAAA"): [f"2001:db8::{net:x}"],
            (api, "A"): [f"192.0.2.{net + 2}"],
            (api, "TXT"): ['"build 17"', '"part one" "part two"'],
            (mail, "A"): [f"192.0.2.{net + 3}"],
            (cdn, "CNAME"): [alias],
            (alias, "CNAME"): [www],
            (files, "AAAA"): [f"2001:db8:{net:x}::10"],
        }
        self.questions = [(www, "A"), (www, "AAAA"), (ORIGIN, "MX"), (ORIGIN, "TXT"), (api, "TXT"), (cdn, "A"),
                          (files, "A"), (f"missing-{rng.randrange(1000)}.{ORIGIN}", "A"), (mail, "A")]

    def answer(self, query):
        """The response to a dnspython query message (``dns.message.Message``)."""
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        response = dns.message.make_response(query)
        response.flags |= 0x0400 | 0x0080          # AA, RA (RFC 1035 §4.1.1)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name, kind = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        seen = set()
        while (name, "CNAME") in self.records and kind != "CNAME" and name not in seen:
            seen.add(name)
            target = self.records[(name, "CNAME")][0]
            response.answer.append(dns.rrset.from_text(name, _TTL, "IN", "CNAME", target))
            name = target
        values = self.records.get((name, kind))
        if values:
            response.answer.append(dns.rrset.from_text_list(name, _TTL, "IN", kind, values))
        elif not any(owner == name for owner, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text_list(ORIGIN, _TTL, "IN", "SOA",
                                                               self.records[(ORIGIN, "SOA")]))
        return response


# ---------------------------------------------------------------------------
# The server


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        reply = self.server.owner.respond("udp", data)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        stream = self.request.makefile("rb")
        while True:
            prefix = stream.read(2)
            if len(prefix) < 2:
                return
            (length,) = struct.unpack("!H", prefix)
            reply = self.server.owner.respond("tcp", stream.read(length))
            if reply is None:
                return
            self.request.sendall(struct.pack("!H", len(reply)) + reply)


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = True


class DnsServer:
    """DNS over UDP and TCP on ``host:port`` (the same port for both), answering from ``zone``.

    A context manager: the sockets are bound on construction and closed by
    :meth:`close` (or on leaving the ``with`` block); :meth:`start` serves in
    two threads.  ``received`` lists a :class:`DnsExchange` per query answered
    (the query as received, the answer as sent).

    Raises:
        OSError: the port cannot be bound (in use, or below 1024 without privileges).
    """

    def __init__(self, zone: Zone, host: str = "127.0.0.1", port: int = 53):
        self.zone = zone
        self.received: list[DnsExchange] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.udp = _UdpServer((host, port), _UdpHandler)
        try:
            self.port = self.udp.server_address[1]
            self.tcp = _TcpServer((host, self.port), _TcpHandler)
        except BaseException:
            self.udp.server_close()
            raise
        self.udp.owner = self.tcp.owner = self

    def respond(self, proto: str, wire: bytes) -> bytes | None:
        """The response to the query in ``wire`` (``None`` for bytes that are not a DNS query)."""
        import dns.exception
        import dns.message
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        # dnspython shuffles each RRset when rendering unless told not to: the zone's order is kept so
        # that a seed gives the same answers, and what is recorded is the message as sent.
        wire = self.zone.answer(query).to_wire(want_shuffle=False)
        sent = dns.message.from_wire(wire)
        if sent.question:
            with self._lock:
                self.received.append(_exchange(proto, sent))
        return wire

    def start(self) -> "DnsServer":
        for server in (self.udp, self.tcp):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"netsift-dns-{server.socket_type}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving and close both sockets (idempotent)."""
        for server in (self.udp, self.tcp):
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def __enter__(self) -> "DnsServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------
# The clients


def plan(rng: random.Random, zone: Zone, count: int) -> list[tuple[str, str, str]]:
    """``count`` queries ``(proto, name, type)``: the zone's questions in a drawn order, every fourth over TCP."""
    questions = rng.sample(zone.questions, len(zone.questions))
    return [("tcp" if i % 4 == 3 else "udp",) + questions[i % len(questions)] for i in range(count)]


def expected(zone: Zone, proto: str, name: str, kind: str) -> DnsExchange:
    """The exchange :func:`ask` should record, computed from the zone without a network (``trans_id`` 0)."""
    import dns.message
    query = dns.message.make_query(name, kind)
    query.id = 0
    return _exchange(proto, dns.message.from_wire(zone.answer(query).to_wire(want_shuffle=False)))


def ask(proto: str, name: str, kind: str, port: int, host: str = "127.0.0.1", timeout: float = 5.0
        ) -> DnsExchange:
    """Ask ``name``/``kind`` of the server at ``host:port``: UDP through a dnspython Resolver, TCP with dns.query.tcp.

    The Resolver gets no retries to hide: a timeout raises
    :class:`dns.exception.Timeout` rather than sending again.
    """
    import dns.message
    import dns.query
    import dns.resolver
    if proto == "tcp":
        response = dns.query.tcp(dns.message.make_query(name, kind), host, timeout=timeout, port=port)
        return _exchange("tcp", response)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.timeout = resolver.lifetime = timeout
    try:
        answer = resolver.resolve(name, kind, raise_on_no_answer=False, search=False)
        response = answer.response
    except dns.resolver.NXDOMAIN as error:
        (response,) = error.responses().values()
    return _exchange("udp", response)
