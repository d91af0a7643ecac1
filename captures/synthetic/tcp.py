"""TCP conversations with consistent sequence and acknowledgement numbers.

:func:`build_tcp` turns an application script (turns of bytes sent by one side)
into packet tuples: 3-way handshake (SYN carries MSS/SACK-permitted options),
data segments cut by the segmentation mode with PSH on a turn's last segment,
delayed ACKs from the receiver every second segment and at the end of a turn,
then a FIN/FIN/ACK teardown by either side or a RST.

Each side's sequence numbers start at a random ISN; the payload of direction
``d`` occupies relative sequence numbers ``1 .. stream_len[d]``, so
reassembling a direction by ``seq - ISN - 1`` gives exactly its byte stream.
"""

from __future__ import annotations

import random

from .model import ACK, FIN, K_TCP, K_TCP_SYN, PSH, RST, SYN, Capture, Flow

MSS = {False: 1460, True: 1440}
SEGMENT_MODES = ("mss", "random", "every-byte")

# Teardown styles.
FIN_ORIG, FIN_RESP, RST_ORIG, RST_RESP = "fin-orig", "fin-resp", "rst-orig", "rst-resp"


def split_sizes(n: int, mode: str, mss: int, rng: random.Random) -> list[int]:
    """Sizes of the segments carrying ``n`` bytes."""
    if n <= 0:
        return []
    if mode == "every-byte":
        return [1] * n
    if mode == "random":
        sizes = []
        while n > 0:
            s = min(n, rng.randint(1, mss))
            sizes.append(s)
            n -= s
        return sizes
    full, rest = divmod(n, mss)
    return [mss] * full + ([rest] if rest else [])


def build_tcp(cap: Capture, flow_id: int, turns, t0: int, rng: random.Random, *,
              segment: str = "mss", teardown: str = FIN_ORIG, rtt: int = 20_000_000,
              seg_rng: random.Random | None = None,
              key=None) -> tuple[list[tuple], int]:
    """The packets of one TCP conversation, in time order, and the time it ends.

    Args:
        cap: the capture being built.
        flow_id: index of the flow in ``cap.flows``.
        turns: ``[(direction, bytes, think_ns), ...]``: what each side sends,
            in order; ``think_ns`` is the sender's delay before the turn.
        t0: time of the SYN (ns).
        segment: ``"mss"``, ``"random"`` or ``"every-byte"``.
        teardown: ``"fin-orig"``, ``"fin-resp"``, ``"rst-orig"`` or ``"rst-resp"``.
        rtt: round-trip time between the capture point (at the client) and the server.
        seg_rng: RNG for random segment sizes (default ``rng``), so that
            segmentation does not change the content drawn from ``rng``.
        key: if given, the byte streams are stored in the arena once per key
            (sessions reused from a pool share their bytes).
    """
    flow: Flow = cap.flows[flow_id]
    mss = MSS[flow.v6]
    pk: list[tuple] = []
    isn = [rng.getrandbits(32), rng.getrandbits(32)]
    nxt = [isn[0] + 1, isn[1] + 1]
    # Each direction's stream goes into the arena in one piece.
    streams = [b"".join(t[1] for t in turns if t[0] == d) for d in (0, 1)]
    if key is None:
        base = [cap.store(streams[0]), cap.store(streams[1])]
    else:
        base = [cap.store_once((key, 0), streams[0]), cap.store_once((key, 1), streams[1])]
    seg_rng = seg_rng or rng
    flow.stream_len = [len(streams[0]), len(streams[1])]
    flow.teardown = teardown
    rel = [0, 0]
    half = rtt // 2
    t = t0
    pk.append((t, flow_id, 0, K_TCP_SYN, SYN, isn[0], 0, 0, 0))
    t += rtt
    pk.append((t, flow_id, 1, K_TCP_SYN, SYN | ACK, isn[1], nxt[0], 0, 0))
    t += 40_000
    pk.append((t, flow_id, 0, K_TCP, ACK, nxt[0], nxt[1], 0, 0))
    prev_dir = 0
    nturns = len(turns)
    for ti in range(nturns):
        d, data, think = turns[ti]
        e = 1 - d
        # The server's packets reach the capture point half an RTT after it sends
        # them; the client's are seen as they leave.
        t += think + (rtt if d == 1 and prev_dir == 0 else 15_000 + rng.randrange(30_000))
        sizes = split_sizes(len(data), segment, mss, seg_rng)
        last = len(sizes) - 1
        tx = 12_000 if d else 4_000
        for si, n in enumerate(sizes):
            pk.append((t, flow_id, d, K_TCP, (PSH | ACK) if si == last else ACK,
                       nxt[d], nxt[e], base[d] + rel[d], n))
            nxt[d] += n
            rel[d] += n
            t += tx + n * 2
            if si & 1 and si != last:
                # Delayed ACK every second segment.
                pk.append((t, flow_id, e, K_TCP, ACK, nxt[e], nxt[d], 0, 0))
                t += 1_000
        nd = turns[ti + 1][0] if ti + 1 < nturns else None
        if nd != e:
            # Peer has nothing to say right away: pure ACK.
            t += half if d == 0 else 40_000 + rng.randrange(20_000)
            pk.append((t, flow_id, e, K_TCP, ACK, nxt[e], nxt[d], 0, 0))
        prev_dir = d
    t += 50_000 + rng.randrange(200_000)
    if teardown in (RST_ORIG, RST_RESP):
        d = 0 if teardown == RST_ORIG else 1
        pk.append((t, flow_id, d, K_TCP, RST | ACK, nxt[d], nxt[1 - d], 0, 0))
        return pk, t
    d = 0 if teardown == FIN_ORIG else 1
    e = 1 - d
    pk.append((t, flow_id, d, K_TCP, FIN | ACK, nxt[d], nxt[e], 0, 0))
    nxt[d] += 1
    t += rtt if d == 0 else 60_000
    pk.append((t, flow_id, e, K_TCP, FIN | ACK, nxt[e], nxt[d], 0, 0))
    nxt[e] += 1
    t += 40_000 if d == 0 else rtt
    pk.append((t, flow_id, d, K_TCP, ACK, nxt[d], nxt[e], 0, 0))
    return pk, t


def pick_teardown(rng: random.Random, closer: int = 0) -> str:
    """Mostly a FIN exchange started by ``closer``; one in ten ends with a RST."""
    r = rng.random()
    if r < 0.06:
        return RST_ORIG
    if r < 0.10:
        return RST_RESP
    return FIN_ORIG if closer == 0 else FIN_RESP
