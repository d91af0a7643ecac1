"""Zeek's text helpers used by the SMTP script, reproduced: addresses in arguments and headers, IPs.

* :func:`extract_email_addrs` is ``extract_email_addrs_vec`` of
  ``base/utils/email.zeek`` (RCPT TO uses it as a set, MAIL FROM takes the
  first one).
* :func:`split_mime_email_addresses` is the function of that name (To and Cc).
* :func:`extract_ip_addresses` is ``extract_ip_addresses`` of
  ``base/utils/addrs.zeek``, with its ``check_wrapping`` rule; it returns the
  canonical text of each valid address.
* :func:`find_address_in_smtp_header` is the function of ``main.zeek`` that
  builds ``path`` from Received headers.

Zeek's regular expressions match leftmost-longest; the ones here are written
so that Python's leftmost-first matching finds the same text.
"""

from __future__ import annotations

import ipaddress
import re

_EMAIL = re.compile(r"(?:^|[<,:\t ])[^<,:\t @]+@[^>,;\t ]+(?:[>,;\t ]|$)")
_EMAIL_STRIP_CHARS = "<>,:;\t "                               # deleted from each match
_EMAIL_STRIP = dict.fromkeys(map(ord, _EMAIL_STRIP_CHARS))
_ORCPT = re.compile(r"ORCPT=rfc822;?")
_MIME_ADDR = re.compile(r'(?:"[^"]*")?[^,]+')

_DEC = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|0[0-9]{2}|[0-9]{2}|[0-9])"
_V4 = rf"{_DEC}\.{_DEC}\.{_DEC}\.{_DEC}"
_H = r"[0-9A-Fa-f]{1,4}"
_V6_PARTS = [
    rf"(?:{_H}:){{7}}{_H}",
    rf"(?:{_H}:){{6}}{_V4}",
]
for _lead in range(8):
    # Zeek's ipv6_compressed_lead_hextetsN: N hextets, "::", at most 7 - N more
    _head = "" if _lead == 0 else rf"{_H}(?::{_H}){{{_lead - 1}}}"
    _V6_PARTS.append(rf"{_head}::(?:{_H}(?::{_H}){{0,{6 - _lead}}})?" if _lead < 7 else rf"{_head}::")
for _lead in range(6):
    # Zeek's ipv6_compressed_hext4dec_lead_hextetsN (the dotted quad follows the hextets directly, as there)
    _head = "" if _lead == 0 else rf"{_H}(?::{_H}){{{_lead - 1}}}"
    _V6_PARTS.append(rf"{_head}::(?:{_H}(?::{_H}){{0,{4 - _lead}}})?{_V4}" if _lead < 5
                     else rf"{_head}::{_V4}")
_ALTERNATIVES = [re.compile(p) for p in _V6_PARTS + [_V4]]
_IP = re.compile("|".join(_V6_PARTS + [_V4]))


# A run of the characters addresses are made of: every match of _IP lies inside one run, so only
# runs that can hold an address are searched (the alternation is costly at every position of a text).
_IP_RUN = re.compile(r"[0-9A-Fa-f:.]{2,}")


def _longest_ips(text: str):
    """Spans of Zeek's ``ip_addr_regex`` matches, leftmost-longest, without overlap."""
    for run in _IP_RUN.finditer(text):
        chars = run.group()
        # An IPv4 address has three dots; an IPv6 one "::", or seven colons, or six and a dotted quad.
        if chars.count(".") < 3 and "::" not in chars and chars.count(":") < 6:
            continue
        pos, stop = run.span()
        while True:
            m = _IP.search(text, pos, stop)
            if m is None:
                break
            start = m.start()
            end = m.end()
            if ":" in text[start:end + 1]:         # IPv6 forms: take the longest alternative
                end = max((a.match(text, start, stop) or m).end() for a in _ALTERNATIVES)
            yield start, end
            pos = end if end > start else start + 1


def extract_email_addrs(text: str) -> list[str]:
    """Addresses in ``text`` in order (duplicates kept), Zeek's ``extract_email_addrs_vec``."""
    if "@" not in text:
        return []
    out = []
    for m in _EMAIL.findall(text):
        # The delimiters go with strip (str.translate with a table costs four times as much); only
        # "<>:;" can also be inside a match (",", tab and space cannot): then translate.
        addr = m.strip(_EMAIL_STRIP_CHARS)
        if "<" in addr or ">" in addr or ":" in addr or ";" in addr:
            addr = addr.translate(_EMAIL_STRIP)
        out.append(addr)
    return out


def rcpt_addresses(arg: str) -> list[str]:
    """The addresses a RCPT TO argument adds to ``rcptto`` (ORCPT= prefixes removed, as main.zeek)."""
    out = []
    for addr in extract_email_addrs(arg):
        if "ORCPT" in addr:
            addr = _ORCPT.sub("", addr)
        out.append(addr)
    return out


def split_mime_email_addresses(text: str) -> list[str]:
    """The parts of a To/Cc header value, Zeek's ``split_mime_email_addresses`` (stripped, in order)."""
    if '"' not in text:
        return [part.strip() for part in text.split(",") if part]
    return [m.strip() for m in _MIME_ADDR.findall(text)]


def _canonical(text: str) -> str | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def extract_ip_addresses(text: str, check_wrapping: bool = False) -> list[str]:
    """Valid IP addresses in ``text`` (canonical text), Zeek's ``extract_ip_addresses``.

    With ``check_wrapping`` only addresses that are the whole text, or wrapped
    in ``[]``, ``()``, ``{}`` or spaces, count.
    """
    out = []
    if "." not in text and ":" not in text:
        return out
    for start, end in _longest_ips(text):
        addr = _canonical(text[start:end])
        if addr is None:
            continue
        if check_wrapping:
            before = text[start - 1] if start > 0 else ""
            after = text[end] if end < len(text) else ""
            if not ((start == 0 and end == len(text)) or (before == "[" and after == "]")
                    or (before == "(" and after == ")") or (before == "{" and after == "}")
                    or (before == " " and after == " ")):
                continue
        out.append(addr)
    return out


def find_address_in_smtp_header(value: str) -> str | None:
    """The address a Received header contributes to ``path``: the second wrapped IP, else the first."""
    ips = extract_ip_addresses(value, True)
    if len(ips) > 1:
        return ips[1]
    return ips[0] if ips else None
