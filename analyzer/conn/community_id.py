"""Community ID flow hashing, version 1 (corelight/community-id-spec).

``1:`` + base64(SHA-1(seed (2 bytes, big-endian) | source address | destination
address | protocol (1 byte) | 0 (1 byte) | source port | destination port)),
the endpoints ordered so that both directions give the same value; ICMP types
and codes stand in for ports as Zeek maps them (a request/reply type's port
equivalent is its counterpart type; one-way messages keep their orientation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import struct

import numpy as np

from .flows import ICMP4_COUNTERPART, ICMP6_COUNTERPART

PORTED = (6, 17, 132)


def community_id(src: str, dst: str, proto: int, sport: int | None = None, dport: int | None = None,
                 seed: int = 0) -> str:
    """The Community ID of one flow given as text addresses (IPv4 or IPv6) and ports.

    For ICMP (1) and ICMPv6 (58) ``sport``/``dport`` are the type and code.
    """
    a = ipaddress.ip_address(src).packed
    b = ipaddress.ip_address(dst).packed
    one_way = False
    if proto in (1, 58) and sport is not None:
        table = ICMP4_COUNTERPART if proto == 1 else ICMP6_COUNTERPART
        counterpart = int(table[sport]) if 0 <= sport < 256 else -1
        if counterpart >= 0:
            dport = counterpart
        else:
            one_way = True
    return community_id_packed(a, b, proto, sport, dport, seed, one_way)


def community_id_packed(a: bytes, b: bytes, proto: int, sport, dport, seed: int = 0,
                        one_way: bool = False) -> str:
    """The Community ID from packed addresses and port equivalents (already mapped for ICMP)."""
    has_ports = sport is not None and dport is not None and (proto in PORTED or proto in (1, 58))
    if not one_way:
        if (b, dport if has_ports else 0) < (a, sport if has_ports else 0):
            a, b, sport, dport = b, a, dport, sport
    data = struct.pack("!H", seed) + a + b + struct.pack("!BB", proto, 0)
    if has_ports:
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def community_id_rows(buf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Community IDs (``uint8[m, 30]``, ASCII ``1:`` + 28 base64 characters) of packed inputs.

    ``buf`` (``uint8[m, w]``) holds each row's hash input (seed, addresses,
    protocol, pad, ports, as :func:`community_id_packed` packs them) in its
    first ``lengths[i]`` (``int64[m]``) bytes.  SHA-1 and base64 are hashlib's
    and binascii's, one call each per row; the packing is what is vectorised.
    """
    m, width = buf.shape
    raw = np.ascontiguousarray(buf).tobytes()
    sha1, b64 = hashlib.sha1, binascii.b2a_base64
    text = b"".join([b64(sha1(raw[start:start + n]).digest(), newline=False)
                     for start, n in zip(range(0, m * width, width), np.asarray(lengths).tolist())])
    out = np.empty((m, 30), dtype=np.uint8)
    out[:, 0], out[:, 1] = ord("1"), ord(":")
    out[:, 2:] = np.frombuffer(text, dtype=np.uint8).reshape(m, 28)
    return out
