"""Where DNS messages come from: UDP datagrams of a batch, and TCP streams.

UDP: the datagrams on the DNS ports (either port), taken from the innermost
hidden columns of :func:`dissectors.dissect` (so tunnelled DNS counts, as in
Zeek); their checksums are verified as Zeek does (a datagram with a bad
checksum creates or refreshes its connection but is not given to the DNS
analyzer; ``-C`` in Zeek, ``ignore_checksums`` here, turns that off).

TCP: :class:`TcpFramer` cuts a byte stream into messages on the 2-byte length
prefix (RFC 1035 §4.2.2), like Zeek's ``Contents_DNS``: messages split
across deliveries are buffered, several messages per delivery are all cut,
and what is buffered when the stream closes is delivered as a partial message.
"""

from __future__ import annotations

import socket

import numba
import numpy as np

V4_MAPPED = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)


@numba.njit(cache=True)
def _checksum_ok(data, l4, end, version, src4, dst4, src6, dst6):
    n = l4.shape[0]
    ok = np.ones(n, dtype=np.bool_)
    for i in range(n):
        s = l4[i]
        if end[i] - s < 8:
            continue
        length = (np.int64(data[s + 4]) << 8) | np.int64(data[s + 5])
        if length < 8 or s + length != end[i]:
            continue            # not all captured: Zeek does not verify
        field = (np.int64(data[s + 6]) << 8) | np.int64(data[s + 7])
        total = np.int64(0)
        if version[i] == 4:
            if field == 0:
                continue        # no checksum (IPv4 only)
            total += (src4[i] >> 16) + (src4[i] & 0xFFFF) + (dst4[i] >> 16) + (dst4[i] & 0xFFFF)
            total += 17 + length
        else:
            for k in range(0, 16, 2):
                total += (np.int64(src6[i, k]) << 8) | np.int64(src6[i, k + 1])
                total += (np.int64(dst6[i, k]) << 8) | np.int64(dst6[i, k + 1])
            total += (length >> 16) + (length & 0xFFFF) + 17
        k = s
        while k + 1 < s + length:
            total += (np.int64(data[k]) << 8) | np.int64(data[k + 1])
            k += 2
        if k < s + length:
            total += np.int64(data[k]) << 8
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        ok[i] = total == 0xFFFF
    return ok


@numba.njit(cache=True)
def _addresses(rows, version, src4, dst4, src6, dst6, have6):
    """16-byte source and destination addresses of ``rows`` (IPv4 as IPv4-mapped IPv6, RFC 4291 §2.5.5.2)."""
    k = rows.shape[0]
    src = np.zeros((k, 16), dtype=np.uint8)
    dst = np.zeros((k, 16), dtype=np.uint8)
    for i in range(k):
        r = rows[i]
        if version[r] == 4:
            src[i, 10] = src[i, 11] = dst[i, 10] = dst[i, 11] = 0xFF
            for j in range(4):
                shift = 24 - 8 * j
                src[i, 12 + j] = (src4[r] >> shift) & 0xFF
                dst[i, 12 + j] = (dst4[r] >> shift) & 0xFF
        elif have6:
            for j in range(16):
                src[i, j] = src6[r, j]
                dst[i, j] = dst6[r, j]
    return src, dst


class UdpDatagrams:
    """The DNS-port UDP datagrams of one batch (rows, ports, 16-byte addresses, payload offsets)."""

    __slots__ = ("delivered", "dport", "dst", "end", "rows", "sport", "src", "start")

    def __init__(self, rows, sport, dport, src, dst, start, end, delivered):
        self.rows, self.sport, self.dport, self.src, self.dst = rows, sport, dport, src, dst
        self.start, self.end, self.delivered = start, end, delivered

    def __len__(self) -> int:
        return len(self.rows)


def _column(fields, name, n, dtype=np.int64):
    values = fields.values.get(name)
    if values is None:
        return np.zeros(n, dtype=dtype), np.zeros(n, dtype=bool)
    return values, fields.valid[name]


def udp_datagrams(batch, fields, ports: np.ndarray, verify_checksums: bool) -> UdpDatagrams:
    """Select the UDP datagrams of ``batch`` with a port in ``ports`` and check their checksums."""
    n = len(batch)
    start, has_start = _column(fields, "_payload.start", n)
    end, _ = _column(fields, "_payload.end", n)
    sport, has_ports = _column(fields, "_l4.srcport", n)
    dport, _ = _column(fields, "_l4.dstport", n)
    proto, has_proto = _column(fields, "_ip.proto", n)
    l4, has_l4 = _column(fields, "_l4.start", n)
    fragment, has_fragment = _column(fields, "_ip.fragment", n, bool)
    version, _ = _column(fields, "_ip.version", n)
    select = has_start & has_ports & has_proto & has_l4 & (proto == 17) & (start == l4 + 8)
    select &= ~(fragment.astype(bool) & has_fragment)
    dns_port = np.zeros(65536, dtype=bool)
    dns_port[ports] = True
    select &= dns_port[sport & 0xFFFF] | dns_port[dport & 0xFFFF]
    rows = np.flatnonzero(select)
    k = len(rows)
    ver = version[rows]
    src4, _ = _column(fields, "_ip.src4", n)
    dst4, _ = _column(fields, "_ip.dst4", n)
    src6 = fields.values.get("_ip.src6")
    dst6 = fields.values.get("_ip.dst6")
    have6 = src6 is not None and dst6 is not None
    if not have6:
        src6 = dst6 = np.zeros((0, 16), dtype=np.uint8)
    src, dst = _addresses(rows, np.ascontiguousarray(version, dtype=np.int64),
                          np.ascontiguousarray(src4, dtype=np.int64), np.ascontiguousarray(dst4, dtype=np.int64),
                          np.ascontiguousarray(src6, dtype=np.uint8), np.ascontiguousarray(dst6, dtype=np.uint8),
                          have6)
    if verify_checksums and k:
        s4 = np.ascontiguousarray(src4[rows], dtype=np.int64)
        d4 = np.ascontiguousarray(dst4[rows], dtype=np.int64)
        delivered = _checksum_ok(batch.data, np.ascontiguousarray(l4[rows], dtype=np.int64),
                                 np.ascontiguousarray(end[rows], dtype=np.int64),
                                 np.ascontiguousarray(ver, dtype=np.int64), s4, d4, src, dst)
    else:
        delivered = np.ones(k, dtype=bool)
    return UdpDatagrams(rows, sport[rows].astype(np.int64), dport[rows].astype(np.int64), src, dst,
                        start[rows].astype(np.int64), end[rows].astype(np.int64), delivered)


_MAPPED_PREFIX = bytes(V4_MAPPED)


def address_bytes(text: str) -> bytes:
    """16 bytes of an address given as text (IPv4 as IPv4-mapped IPv6).

    Raises:
        ValueError: not an IPv4 or IPv6 address.
    """
    try:
        return _MAPPED_PREFIX + socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except OSError as error:
        raise ValueError(f"not an IP address: {text!r}") from error


def format_address(raw: bytes) -> str:
    """Zeek's text of a 16-byte address (IPv4-mapped as a dotted quad)."""
    if raw[:12] == bytes(V4_MAPPED):
        return socket.inet_ntoa(raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)


class TcpFramer:
    """One direction of a DNS-over-TCP stream, cut into messages as Zeek's Contents_DNS does."""

    __slots__ = ("buffer", "size", "state")

    LEN_HI, LEN_LO, MESSAGE = 0, 1, 2

    def __init__(self):
        self.state = self.LEN_HI
        self.size = 0
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Messages completed by ``data``."""
        out = []
        pos, n = 0, len(data)
        while pos < n:
            if self.state == self.LEN_HI:
                self.size = data[pos] << 8
                self.state = self.LEN_LO
                pos += 1
                if pos == n:
                    break
            if self.state == self.LEN_LO:
                self.size += data[pos]
                self.state = self.MESSAGE
                self.buffer = bytearray()
                pos += 1
                if pos == n:
                    break
            take = min(self.size - len(self.buffer), n - pos)
            self.buffer += data[pos:pos + take]
            pos += take
            if len(self.buffer) < self.size:
                break
            out.append(bytes(self.buffer))
            self.buffer = bytearray()
            self.state = self.LEN_HI
        return out

    def flush(self) -> bytes | None:
        """What is buffered of an unfinished message (Zeek delivers it when the connection closes)."""
        if self.state == self.MESSAGE and self.buffer:
            partial = bytes(self.buffer)
            self.buffer = bytearray()
            return partial
        return None
