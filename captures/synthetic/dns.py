"""DNS exchanges: messages built with scapy, ground truth in Zeek dns.log form.

An exchange is one question and its answer: A, AAAA, CNAME chains, MX, TXT,
NS, PTR, SOA, SRV or NXDOMAIN (with the zone's SOA in the authority section).
Messages are built once per distinct exchange with scapy's DNS layer (names
compressed as servers do) and reused with a fresh transaction ID.

Zeek conventions used by :func:`truth_fields`: ``query`` without the final
dot; ``answers`` holds the answer section only, rendered as Zeek does (address
for A/AAAA, target name for CNAME/NS/PTR/MX/SRV, MNAME for SOA,
``TXT <len> <string>`` joined by spaces for TXT); ``TTLs`` are seconds as
floats; unset fields (no answers) are left out, as in Zeek's JSON logs;
``TC`` is the query's bit (``dns_request`` in ``base/protocols/dns/main.zeek``),
so a truncated UDP answer still logs ``TC: false``; ``AA``/``RA`` are the
response's bits only when it carries an answer record (``DNS::do_reply``),
else false (NXDOMAIN, truncated).
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct

from scapy.layers.dns import (DNS, DNSQR, DNSRR, DNSRRMX, DNSRROPT, DNSRRSOA,
                              DNSRRSRV)

from .model import domain, word

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
          "AAAA": 28, "SRV": 33}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
               5: "REFUSED"}

KINDS = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "PTR", "SOA", "SRV", "NXDOMAIN")
_WEIGHTS = (30, 14, 12, 6, 6, 5, 7, 4, 4, 8)


def _v4(rng: random.Random) -> str:
    first = rng.choice((192, 198, 203, 151, 104))
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _v6(rng: random.Random) -> str:
    words = [0x2001, 0xDB8, rng.randrange(0x10000), rng.choice((0, rng.randrange(0x10000))),
             0, 0, rng.choice((0, rng.randrange(0x10000))), rng.randrange(1, 0x10000)]
    return socket.inet_ntop(socket.AF_INET6, struct.pack("!8H", *words))


def make_exchange(rng: random.Random, big: bool = False) -> dict:
    """A random exchange: question, answer/authority records, flags.

    Records are ``(name, type, ttl, value)``; value is an address, a name,
    ``(preference, exchange)`` for MX, ``(priority, weight, port, target)`` for
    SRV, a list of strings for TXT, a tuple of SOA fields for SOA.
    ``big=True`` makes an answer too large for 512-byte UDP (the server truncates).
    """
    kind = "A" if big else rng.choices(KINDS, _WEIGHTS)[0]
    zone = domain(rng)
    ttl = rng.choice((30, 60, 300, 600, 900, 3600, 86400))
    ans, auth, rcode, aa = [], [], 0, rng.random() < 0.2
    qname, qtype = f"{rng.choice(('www', 'api', 'cdn', 'mail', 'static', word(rng)))}.{zone}", kind
    soa = (f"ns1.{zone}", f"hostmaster.{zone}", 2024010100 + rng.randrange(99),
           7200, 3600, 1209600, 300)
    if kind == "A":
        n = rng.randint(12, 30) if big else rng.randint(1, 4)
        ans = [(qname, "A", ttl, _v4(rng)) for _ in range(n)]
        if big:
            qtype = "TXT" if rng.random() < 0.3 else "A"
            if qtype == "TXT":
                ans = [(qname, "TXT", ttl, [f"v=key{i} " + "".join(rng.choice("abcdef0123456789")
                                                               for _ in range(60))])
                       for i in range(rng.randint(8, 12))]
    elif kind == "AAAA":
        ans = [(qname, "AAAA", ttl, _v6(rng)) for _ in range(rng.randint(1, 3))]
    elif kind == "CNAME":
        qtype = "A" if rng.random() < 0.8 else "AAAA"
        chain = [qname] + [f"{word(rng)}{i}.{domain(rng)}" for i in range(rng.randint(1, 3))]
        ans = [(chain[i], "CNAME", rng.choice((60, 300, 3600)), chain[i + 1])
               for i in range(len(chain) - 1)]
        last = chain[-1]
        ans += [(last, qtype, ttl, _v4(rng) if qtype == "A" else _v6(rng))
                for _ in range(rng.randint(1, 2))]
    elif kind == "MX":
        qname = zone
        ans = [(zone, "MX", ttl, (10 * (i + 1), f"mx{i + 1}.{zone}"))
               for i in range(rng.randint(1, 3))]
    elif kind == "TXT":
        qname = zone
        token = "".join(rng.choice("ABCDEFabcdef0123456789") for _ in range(24))
        pool = [f"v=spf1 include:_spf.{zone} ~all", f"google-site-verification={token}",
                f"{word(rng)}={word(rng)}"]
        ans = [(zone, "TXT", ttl, rng.sample(pool, rng.randint(1, 2))) for _ in range(rng.randint(1, 2))]
    elif kind == "NS":
        qname = zone
        ans = [(zone, "NS", 86400, f"ns{i + 1}.{zone}") for i in range(rng.randint(2, 4))]
    elif kind == "PTR":
        if rng.random() < 0.7:
            ip = _v4(rng)
        else:
            ip = _v6(rng)
        qname = ipaddress.ip_address(ip).reverse_pointer
        ans = [(qname, "PTR", ttl, f"host-{rng.randrange(1000)}.{zone}")]
    elif kind == "SOA":
        qname = zone
        ans = [(zone, "SOA", 3600, soa)]
    elif kind == "SRV":
        svc = rng.choice((("_sip", "_tcp", 5060), ("_xmpp-client", "_tcp", 5222),
                          ("_ldap", "_tcp", 389), ("_imaps", "_tcp", 993)))
        qname = f"{svc[0]}.{svc[1]}.{zone}"
        ans = [(qname, "SRV", ttl, (10, rng.randint(0, 100), svc[2], f"srv{i + 1}.{zone}"))
               for i in range(rng.randint(1, 2))]
    elif kind == "NXDOMAIN":
        qtype = rng.choice(("A", "AAAA"))
        qname = f"{word(rng)}-{rng.randrange(10000)}.{zone}"
        rcode, aa = 3, rng.random() < 0.5
        auth = [(zone, "SOA", 300, soa)]
    return {"qname": qname, "qtype": qtype, "answers": ans, "authority": auth,
            "rcode": rcode, "aa": aa, "edns": rng.random() < 0.4}


def _rr(rec):
    name, typ, ttl, val = rec
    if typ == "MX":
        return DNSRRMX(rrname=name, ttl=ttl, preference=val[0], exchange=val[1])
    if typ == "SRV":
        return DNSRRSRV(rrname=name, ttl=ttl, priority=val[0], weight=val[1], port=val[2],
                        target=val[3])
    if typ == "SOA":
        return DNSRRSOA(rrname=name, ttl=ttl, mname=val[0], rname=val[1], serial=val[2],
                        refresh=val[3], retry=val[4], expire=val[5], minimum=val[6])
    if typ == "TXT":
        return DNSRR(rrname=name, type="TXT", ttl=ttl, rdata=[s.encode() for s in val])
    return DNSRR(rrname=name, type=typ, ttl=ttl, rdata=val)


def encode(ex: dict, truncated: bool = False) -> tuple[bytes, bytes]:
    """(query, response) DNS messages with transaction ID 0.

    ``truncated``: the UDP response to a big question: TC set, no answers.
    """
    qd = DNSQR(qname=ex["qname"], qtype=QTYPES[ex["qtype"]])
    opt = [DNSRROPT(rclass=1232)] if ex["edns"] and not truncated else []
    query = DNS(id=0, rd=1, qd=[qd], ar=opt)
    an = [] if truncated else [_rr(r) for r in ex["answers"]]
    ns = [] if truncated else [_rr(r) for r in ex["authority"]]
    resp = DNS(id=0, qr=1, aa=int(ex["aa"]), tc=int(truncated), rd=1, ra=1,
               rcode=ex["rcode"], qd=[qd], an=an, ns=ns, ar=opt)
    return bytes(query.compress()), bytes(resp.compress())


def _render_answer(rec) -> str:
    typ, val = rec[1], rec[3]
    if typ in ("A", "CNAME", "NS", "PTR"):
        return val
    if typ == "AAAA":
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, val))
    if typ == "MX":
        return val[1]
    if typ == "SRV":
        return val[3]
    if typ == "SOA":
        return val[0]
    if typ == "TXT":
        return " ".join(f"TXT {len(s.encode())} {s}" for s in val)
    raise ValueError(typ)


def truth_fields(ex: dict, truncated: bool = False) -> dict:
    """Zeek dns.log fields from ``query`` on (``id.*``, ``proto``, ``trans_id`` come first)."""
    answered = bool(ex["answers"]) and not truncated
    # Zeek takes TC (and RD, Z) from the query, which never sets TC, and AA/RA
    # from the response only when it has an answer-section record (DNS::do_reply
    # for DNS_ANS); otherwise they keep their default F.
    rec = {"query": ex["qname"], "qclass": 1, "qclass_name": "C_INTERNET",
           "qtype": QTYPES[ex["qtype"]], "qtype_name": ex["qtype"],
           "rcode": ex["rcode"], "rcode_name": RCODE_NAMES[ex["rcode"]],
           "AA": answered and bool(ex["aa"]), "TC": False, "RD": True, "RA": answered, "Z": 0}
    if answered:
        rec["answers"] = [_render_answer(r) for r in ex["answers"]]
        rec["TTLs"] = [float(r[2]) for r in ex["answers"]]
    return rec
