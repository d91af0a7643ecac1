"""Impairments: loss, duplication and reordering per TCP flow; IP fragmentation
and malformed copies on the rendered frames.

Loss hits only data segments inside the ``skippable`` stream ranges a session
declares (content whose gap Zeek's application analyzers skip without a
change to their logs), so the ground truth stays exact.

Per-flow impairments work on a flow's packet tuples in time order and keep the
file time-ordered: reordering swaps the *contents* of two data segments going
the same way (up to three apart, nothing from the other side between them)
and keeps the time slots, a duplicate gets its original's time plus 1 µs.  The
three-way handshake is never reordered (Zeek would flip the direction).

Fragmentation (IPv4 at 8-byte multiples with MF/offset and a fresh header
checksum; IPv6 with a Fragment extension header, RFC 8200 §4.5) and the
malformed copies work on frames, after checksums are computed.
"""

from __future__ import annotations

import random
import struct

from .model import RST, SYN, FIN

MALFORM_KINDS = ("truncated-ip-header", "truncated-l4-header", "bad-ip-length")


def impair_flow(pkts: list[tuple], rng: random.Random, loss: float, duplicate: float,
                reorder: float, flow, skippable=((), ())) -> list[tuple]:
    """Apply loss, then duplication, then reordering to one TCP flow's packets.

    ``pkts`` start with the SYN and SYN/ACK (:func:`..tcp.build_tcp`), whose
    sequence numbers give each direction's ISN.  ``skippable``: per direction,
    ``(start, end)`` offsets in that direction's byte stream; only a data
    segment lying wholly inside one of them can be lost.
    """
    hit = False
    if loss > 0:
        isn = [pkts[0][5], pkts[1][5]] if len(pkts) > 1 else [0, 0]
        kept = []
        for p in pkts:
            # Only pure data segments (no SYN/FIN/RST) inside skippable content are lost:
            # a real gap that the application log does not depend on.
            rel = p[5] - isn[p[2]] - 1
            if (p[8] and not p[4] & (SYN | FIN | RST)
                    and any(a <= rel and rel + p[8] <= b for a, b in skippable[p[2]])
                    and rng.random() < loss):
                flow.missed[p[2]] += p[8]
                hit = True
                continue
            kept.append(p)
        pkts = kept
    if duplicate > 0:
        out = []
        for p in pkts:
            out.append(p)
            if rng.random() < duplicate:
                out.append((p[0] + 1_000,) + p[1:])
                hit = True
        pkts = out
    if reorder > 0 and len(pkts) > 4:
        ts = [p[0] for p in pkts]
        body = [p[1:] for p in pkts]
        n = len(body)
        movable = [bool(p[7]) and not p[3] & (SYN | FIN | RST) for p in body]
        for i in range(3, n - 1):
            if movable[i] and rng.random() < reorder:
                # Swap with one of the next three data segments going the same
                # way, with nothing from the other side in between: a path
                # reorders its own packets, and the receiver's ACKs (which
                # assume in-order arrival) never get ahead of the data.
                d, j = body[i][1], i
                for _ in range(rng.randint(1, 3)):
                    if j + 1 < n and movable[j + 1] and body[j + 1][1] == d:
                        j += 1
                    else:
                        break
                if j != i:
                    body[i], body[j] = body[j], body[i]
                    hit = True
        pkts = [(ts[i],) + body[i] for i in range(n)]
    if hit:
        flow.impaired = True
    return pkts


def _ip4_checksum(hdr: bytearray) -> None:
    hdr[10:12] = b"\0\0"
    s = sum(struct.unpack("!10H", bytes(hdr[:20])))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    hdr[10:12] = struct.pack("!H", ~s & 0xFFFF)


def fragment_frame(frame: bytes, l3: int, mtu: int, ident: int) -> list[bytes] | None:
    """Fragments of ``frame`` whose IP packet is larger than ``mtu``, else ``None``.

    ``ident`` is the IPv6 Fragment header identification (IPv4 keeps its ID).
    """
    link, ip = frame[:l3], frame[l3:]
    if len(ip) <= mtu:
        return None
    frags = []
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0F) * 4
        hdr, data = ip[:ihl], ip[ihl:]
        step = (mtu - ihl) // 8 * 8
        for pos in range(0, len(data), step):
            chunk = data[pos:pos + step]
            more = pos + step < len(data)
            h = bytearray(hdr)
            h[2:4] = struct.pack("!H", ihl + len(chunk))
            h[6:8] = struct.pack("!H", (0x2000 if more else 0) | (pos // 8))
            _ip4_checksum(h)
            frags.append(link + bytes(h) + chunk)
    else:
        hdr, data = ip[:40], ip[40:]
        nh = hdr[6]
        step = (mtu - 48) // 8 * 8
        for pos in range(0, len(data), step):
            chunk = data[pos:pos + step]
            more = pos + step < len(data)
            h = bytearray(hdr)
            h[4:6] = struct.pack("!H", 8 + len(chunk))
            h[6] = 44
            fh = struct.pack("!BBHI", nh, 0, (pos // 8) << 3 | (1 if more else 0), ident)
            frags.append(link + bytes(h) + fh + chunk)
    return frags


def malform_frame(frame: bytes, l3: int, rng: random.Random) -> tuple[bytes, str]:
    """A damaged copy of ``frame``: cut inside its IP or transport header, or a bad IP length."""
    ip = frame[l3:]
    v6 = ip[0] >> 4 == 6
    ihl = 40 if v6 else (ip[0] & 0x0F) * 4
    nh = ip[6] if v6 else ip[9]
    first_fragment = True
    if nh == 44:                            # IPv6 fragment: its header is part of L3 here
        first_fragment = (struct.unpack("!H", ip[42:44])[0] >> 3) == 0
        nh = ip[40]
        ihl += 8
    elif not v6:
        first_fragment = (struct.unpack("!H", ip[6:8])[0] & 0x1FFF) == 0
    l4hdr = {6: 20, 17: 8}.get(nh, 8)
    kind = MALFORM_KINDS[rng.randrange(3)]
    if kind == "truncated-l4-header" and (not first_fragment or ihl == 48):
        # Wireshark does not look inside an unreassembled fragment (and an
        # IPv6 fragment is never reassembled alone): cut the IP headers instead.
        kind = "truncated-ip-header"
    if kind == "truncated-ip-header":
        return frame[:l3 + rng.randint(1, ihl - 1)], kind
    if kind == "truncated-l4-header":
        return frame[:l3 + ihl + rng.randint(1, l4hdr - 1)], kind
    h = bytearray(ip)
    if v6:
        # Shorter than what follows the fixed header needs: Wireshark reports
        # an IPv6 payload length larger than the frame only as a warning.
        need = 8 if ihl == 48 else l4hdr
        h[4:6] = struct.pack("!H", rng.randint(1, need - 1))
    else:
        real = len(ip)
        # 0 would read as "TCP segmentation offload", not as an error.
        bad = real + rng.randint(1, 400) if rng.random() < 0.5 else rng.randint(1, 19)
        h[2:4] = struct.pack("!H", bad)
        _ip4_checksum(h)
    return frame[:l3] + bytes(h), kind
