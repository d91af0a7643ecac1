"""Text of DNS names and RDATA, as Zeek's ``dns.log`` writes them.

:func:`dissectors.dns.parse` walks messages in numba and gives every name or
RDATA a 64-bit key of its text; the functions here build that text, once per
distinct key, from the message bytes and the offsets the walk recorded.  They
follow the same rules as the walk (Zeek's ``ExtractName``: backward pointers
only, a chain depth limit, lower-casing where Zeek lower-cases), and the
formats of Zeek's ``base/protocols/dns/main.zeek`` (``<unknown type=N>``,
``TXT 20 v=spf1 …``, ``RRSIG 48 upenn.edu``, ``DNSKEY 5`` …), and the names of
its ``consts.zeek`` tables.  Pure functions of bytes.
"""

from __future__ import annotations

import socket

from . import dns as wire

# Zeek's consts.zeek tables (base/protocols/dns/consts.zeek).
QUERY_TYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX",
    27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA",
    35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL",
    43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY",
    58: "TALINK", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID",
    105: "L32", 106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG",
    251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "*", 256: "URI", 257: "CAA",
    32768: "TA", 32769: "DLV", 65281: "WINS", 65282: "WINS-R", 65422: "XPF", 65521: "INTEGRITY",
}
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSet", 9: "NOTAUTH", 10: "NOTZONE", 11: "unassigned-11", 12: "unassigned-12",
    13: "unassigned-13", 14: "unassigned-14", 15: "unassigned-15", 16: "BADVERS", 17: "BADKEY",
    18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
    3842: "BADSIG",
}
CLASSES = {1: "C_INTERNET", 2: "C_CSNET", 3: "C_CHAOS", 4: "C_HESIOD", 254: "C_NONE", 255: "C_ANY"}
OPCODES = {0: "query", 1: "iquery", 2: "server-status", 4: "notify", 5: "dynamic-update", 6: "dso"}
NETBIOS_OPCODES = {0: "netbios-query", 5: "netbios-registration", 6: "netbios-release", 7: "netbios-wack",
                   8: "netbios-refresh"}


def qtype_name(value: int) -> str:
    """Zeek's ``DNS::query_types`` (``query-N`` when unnamed)."""
    return QUERY_TYPES.get(value) or f"query-{value}"


def rcode_name(value: int) -> str:
    """Zeek's ``DNS::base_errors`` (``rcode-N`` when unnamed)."""
    return RCODES.get(value) or f"rcode-{value}"


def qclass_name(value: int) -> str:
    """Zeek's ``DNS::classes`` (``qclass-N`` when unnamed)."""
    return CLASSES.get(value) or f"qclass-{value}"


def opcode_name(value: int, netbios: bool = False) -> str:
    """Zeek's ``DNS::opcodes`` or, for NetBIOS, ``DNS::netbios_opcodes``."""
    if netbios:
        return NETBIOS_OPCODES.get(value) or f"netbios-opcode-{value}"
    return OPCODES.get(value) or f"opcode-{value}"


def text(raw: bytes) -> str:
    """Zeek string bytes as Python text: UTF-8 where valid, other bytes as ``\\xNN``."""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def walk_name(msg: bytes, pos: int, netbios: bool = False, max_depth: int = wire.MAX_COMPRESSION_DEPTH,
              downcase_top: bool = True) -> bytes:
    """The text bytes Zeek's ExtractName makes of the name at ``msg[pos]``.

    Labels joined with ``.``; lower-cased when ``downcase_top`` (and always in
    the part reached through a compression pointer, as Zeek does); a name cut
    by the chain depth limit keeps the labels read so far.  A name Zeek cannot
    extract gives the labels read before the error (callers only ask for
    names the walk accepted).
    """
    labels: list[bytes] = []
    cur, lim, depth = pos, len(msg), 0
    remaining = wire.NAME_BUFFER
    while depth <= max_depth:
        jumped = False
        while True:
            if lim - cur <= 0:
                return b".".join(labels)
            size = msg[cur]
            cur += 1
            if size == 0:
                break
            if size & 0xC0 == 0xC0:
                if lim - cur <= 0:
                    return b".".join(labels)
                offset = ((size & 0x3F) << 8) | msg[cur]
                cur += 1
                pointer = cur - 2
                if offset >= pointer:
                    return b".".join(labels)
                lim, cur = pointer, offset
                depth += 1
                jumped = True
                break
            if size > lim - cur or (size > 63 and not netbios) or size >= remaining:
                return b".".join(labels)
            label = msg[cur:cur + size]
            labels.append(label.lower() if (downcase_top or depth > 0) else label)
            remaining -= size + 1
            cur += size
        if not jumped:
            break
    return b".".join(labels)


def name_text(msg: bytes, pos: int, netbios: bool = False, max_depth: int = wire.MAX_COMPRESSION_DEPTH,
              downcase_top: bool = True) -> str:
    """:func:`walk_name` as text."""
    return text(walk_name(msg, pos, netbios, max_depth, downcase_top))


def format_ipv4(value: int) -> str:
    """Dotted quad of a 32-bit address."""
    return f"{(value >> 24) & 255}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


_V4_MAPPED = bytes(10) + b"\xff\xff"


def format_ipv6(raw: bytes) -> str:
    """Zeek's text of a 16-byte address: an IPv4-mapped address prints as IPv4, others as inet_ntop."""
    if raw[:12] == _V4_MAPPED:
        return socket.inet_ntoa(raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)


def char_strings(msg: bytes, pos: int, rdlen: int) -> list[bytes]:
    """The character strings Zeek's TXT/SPF parser extracts (stops at one running past RDLENGTH)."""
    out = []
    while rdlen > 0 and pos < len(msg):
        size = msg[pos]
        rdlen -= 1
        pos += 1
        if size > rdlen:
            break
        out.append(msg[pos:pos + size])
        pos += size
        rdlen -= size
    return out


def _naptr(msg: bytes, rdpos: int, rdlen: int, name_pos: int, netbios: bool, max_depth: int) -> str:
    order = int.from_bytes(msg[rdpos:rdpos + 2], "big")
    preference = int.from_bytes(msg[rdpos + 2:rdpos + 4], "big")
    pos, left, strings = rdpos + 4, rdlen - 4, []
    for _ in range(3):
        size = msg[pos]
        strings.append(msg[pos + 1:pos + 1 + size])
        pos += 1 + size
        left -= 1 + size
    flags, service, regexp = (text(s) for s in strings)
    replacement = name_text(msg, name_pos, netbios, max_depth, downcase_top=False)
    tail = regexp
    if replacement:
        tail = f"{tail} {replacement}" if tail else replacement
    return f"NAPTR {order} {preference} {flags} {service} {tail}"


def render(kind: int, msg: bytes, row, base: int, netbios: bool = False,
           max_depth: int = wire.MAX_COMPRESSION_DEPTH, du_update: bool = False) -> str:
    """Zeek's text for record ``row`` (an ``R_*`` row of :func:`dissectors.dns.parse`) of kind ``kind``.

    ``msg`` is the whole message, ``base`` its offset in the parsed buffer
    (record offsets are buffer offsets).  ``du_update``: the record is in the
    update section of a dynamic update, which Zeek writes as ``add: …``.
    """
    npos = int(row[wire.R_NPOS]) - base
    rdpos = int(row[wire.R_RDPOS]) - base
    rdlen = int(row[wire.R_RDLEN])
    a1 = int(row[wire.R_A1])
    rtype = int(row[wire.R_TYPE])
    if kind == wire.K_QLOWER or kind == wire.K_OWNER:
        return name_text(msg, npos, netbios, max_depth, True)
    if kind == wire.K_QORIG:
        return name_text(msg, npos, netbios, max_depth, False)
    if kind == wire.K_PRE or kind == wire.K_DEL:
        owner = name_text(msg, npos, netbios, max_depth, True)
        rclass = int(row[wire.R_CLASS])
        tname = qtype_name(rtype)
        if kind == wire.K_PRE:
            if rclass == wire.CLASS_NONE and rtype == 255:
                what = f"NameNotInUse {owner}"
            elif rclass == wire.CLASS_ANY and rtype == 255:
                what = f"NameInUse {owner}"
            elif rclass == wire.CLASS_NONE:
                what = f"NoRRSet {tname} {owner}"
            else:
                what = f"RRSetExists {tname} {owner}"
            return f"pre: {what}"
        if rclass == wire.CLASS_ANY and rtype == 255:
            what = f"RRSet * {owner}"
        elif rclass == wire.CLASS_NONE:
            what = f"RR {tname} {owner}"
        else:
            what = f"RRSet {tname}"
        return f"del: {what}"
    value = _render_rdata(kind, msg, npos, rdpos, rdlen, a1, row, base, netbios, max_depth)
    if du_update:
        if kind in (wire.K_A, wire.K_AAAA):
            owner = name_text(msg, npos, netbios, max_depth, True)
            value = f"{'A' if rtype == wire.T_A else 'A6' if rtype == wire.T_A6 else 'AAAA'} {owner} {value}"
        if not value.startswith("del:"):
            value = f"add: {value}"
    return value


def _render_rdata(kind, msg, npos, rdpos, rdlen, a1, row, base, netbios, max_depth) -> str:
    if kind == wire.K_A:
        return format_ipv4(int.from_bytes(msg[rdpos:rdpos + 4], "big"))
    if kind == wire.K_AAAA:
        words = a1
        raw = msg[rdpos:rdpos + 4 * words] + bytes(4 * (4 - words))
        return format_ipv6(raw)
    if kind == wire.K_RDNAME:
        return name_text(msg, a1 - base, netbios, max_depth, True)
    if kind == wire.K_EMPTY:
        return ""
    if kind in (wire.K_TXT, wire.K_SPF):
        tag = "TXT" if kind == wire.K_TXT else "SPF"
        return " ".join(f"{tag} {len(s)} {text(s)}" for s in char_strings(msg, rdpos, rdlen))
    if kind == wire.K_RRSIG:
        signer = name_text(msg, int(row[wire.R_A2]) - base, netbios, max_depth, True)
        return f"RRSIG {a1} {signer or '<Root>'}"
    if kind == wire.K_DNSKEY:
        return f"DNSKEY {a1}"
    if kind == wire.K_NSEC:
        owner = name_text(msg, npos, netbios, max_depth, True)
        following = name_text(msg, a1 - base, netbios, max_depth, True)
        return f"NSEC {owner} {following}"
    if kind == wire.K_NSEC3:
        return "NSEC3"
    if kind == wire.K_NSEC3PARAM:
        return "NSEC3PARAM"
    if kind == wire.K_DS:
        return f"DS {a1} {int(row[wire.R_A2])}"
    if kind == wire.K_BINDS:
        return "BIND9 signing signal"
    if kind == wire.K_SSHFP:
        start = a1 - base
        return "SSHFP: " + msg[start:start + int(row[wire.R_A2])].hex()
    if kind == wire.K_LOC:
        return f"LOC:  {a1} {int(row[wire.R_A2])} {int(row[wire.R_A3])}"
    if kind == wire.K_NAPTR:
        return _naptr(msg, rdpos, rdlen, a1 - base, netbios, max_depth)
    if kind == wire.K_UNKNOWN:
        return f"<unknown type={a1}>"
    return ""


def decode_netbios_name(name: str) -> str:
    """Zeek's ``decode_netbios_name``: the NetBIOS first-level decoding of a 32-letter label, or ``""``."""
    raw = name.encode("latin-1", "replace")
    if len(raw) != 32:
        return ""
    out = bytearray()
    length = 0
    for i in range(16):
        c0, c1 = raw[2 * i], raw[2 * i + 1]
        c0 = c0 - 32 if 97 <= c0 <= 122 else c0
        c1 = c1 - 32 if 97 <= c1 <= 122 else c1
        if not (65 <= c0 <= 80 and 65 <= c1 <= 80):
            return ""
        value = ((c0 - 65) << 4) + (c1 - 65)
        out.append(value)
        ch = chr(value)
        if (value < 128 and (ch.isalnum() or (33 <= value <= 126 and not ch.isalnum()))) or value == 32 or value < 3:
            length += 1
        else:
            break
    if length == 16:
        length = 15
    while length and out[length - 1] in (0x20, 0x00):
        length -= 1
    return out[:length].decode("latin-1")
