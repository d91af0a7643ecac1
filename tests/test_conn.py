"""Connection tracking (analyzer.conn): Zeek conn.log semantics."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from analyzer.conn import ConnStage, community_id
from captures.batch import PacketBatch
from dissectors import dissect

A, B = "10.0.0.1", "10.0.0.2"
FLAGS = {"S": "S", "SA": "SA", "A": "A", "D": "PA", "F": "FA", "R": "RA"}


def conn_frame(frames, times=None, **kwargs):
    ts = None if times is None else (np.asarray(times, dtype=np.float64) * 1e9).astype(np.int64)
    batch = PacketBatch.from_frames([bytes(f) for f in frames], ts_ns=ts)
    stage = ConnStage(**kwargs)
    stage.feed(batch, dissect(batch))
    frame = stage.finish()["conn"]
    return frame, stage


def tcp(src, dst, sport, dport, flags, seq=0, ack=0, payload=b"", window=8192):
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                                window=window) / payload


def exchange(steps, sport=40000, dport=8080):
    """Frames for steps (direction 'o'/'r', kind in FLAGS) with consistent sequence numbers."""
    nxt = {"o": 1000, "r": 5000}
    seen = {"o": False, "r": False}
    frames = []
    for who, kind in steps:
        other = "r" if who == "o" else "o"
        src, dst, sp, dp = (A, B, sport, dport) if who == "o" else (B, A, dport, sport)
        payload = b"x" * 10 if kind == "D" else b""
        ack = nxt[other] if seen[other] else 0
        frames.append(tcp(src, dst, sp, dp, FLAGS[kind], seq=nxt[who], ack=ack, payload=payload))
        seen[who] = True
        nxt[who] += len(payload) + (1 if kind in ("S", "SA", "F") else 0)
    return frames


def row(frame, i=0):
    return frame.iloc[i]


# ---- Community ID v1 (corelight/community-id-spec test vectors) ------------------------

@pytest.mark.parametrize("src,dst,proto,sport,dport,expected", [
    ("1.2.3.4", "5.6.7.8", 6, 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    ("5.6.7.8", "1.2.3.4", 6, 3344, 1122, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
    ("1.2.3.4", "5.6.7.8", 17, 1122, 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    ("5.6.7.8", "1.2.3.4", 17, 3344, 1122, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    ("1.2.3.4", "5.6.7.8", 132, 1122, 3344, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8="),
    ("1.2.3.4", "5.6.7.8", 1, 8, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    ("5.6.7.8", "1.2.3.4", 1, 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="),
    ("1.2.3.4", "5.6.7.8", 1, 11, 0, "1:f/YiSyWqczrTgfUCZlBUnvHRcPk="),
    ("fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 58, 128, 0,
     "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
    ("1.2.3.4", "5.6.7.8", 46, None, None, "1:ikv3kmf89luf73WPz1jOs49S768="),
])
def test_community_id_vectors(src, dst, proto, sport, dport, expected):
    assert community_id(src, dst, proto, sport, dport) == expected


@pytest.mark.parametrize("seed,proto,sport,dport,expected", [
    (1, 6, 1122, 3344, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (1, 17, 1122, 3344, "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (1, 1, 8, 0, "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
])
def test_community_id_seed(seed, proto, sport, dport, expected):
    assert community_id("1.2.3.4", "5.6.7.8", proto, sport, dport, seed=seed) == expected


def test_community_id_column_matches_function():
    frame, _ = conn_frame(exchange([("o", "S"), ("r", "SA"), ("o", "A")]))
    assert row(frame)["community_id"] == community_id(A, B, 6, 40000, 8080)


# ---- TCP flag sequences -> history / conn_state (Zeek's conn.log documentation) ---------

@pytest.mark.parametrize("steps,history,state", [
    ([("o", "S")], "S", "S0"),
    ([("o", "S"), ("r", "SA")], "Sh", "S1"),
    ([("o", "S"), ("r", "SA"), ("o", "A")], "ShA", "S1"),
    ([("o", "S"), ("r", "SA"), ("o", "A"), ("o", "D"), ("r", "D"), ("o", "F"), ("r", "F"), ("o", "A")],
     "ShADdFf", "SF"),
    ([("o", "S"), ("r", "R")], "Sr", "REJ"),
    ([("o", "S"), ("r", "SA"), ("o", "A"), ("o", "F")], "ShAF", "S2"),
    ([("o", "S"), ("r", "SA"), ("o", "A"), ("r", "F")], "ShAf", "S3"),
    ([("o", "S"), ("r", "SA"), ("o", "A"), ("o", "R")], "ShAR", "RSTO"),
    ([("o", "S"), ("r", "SA"), ("o", "A"), ("r", "R")], "ShAr", "RSTR"),
    ([("o", "S"), ("o", "R")], "SR", "RSTOS0"),
    ([("o", "S"), ("o", "F")], "SF", "SH"),
    ([("o", "D"), ("r", "D")], "Dd", "OTH"),
])
def test_tcp_history_and_state(steps, history, state):
    frame, _ = conn_frame(exchange(steps))
    assert len(frame) == 1
    assert row(frame)["history"] == history
    assert row(frame)["conn_state"] == state


def test_syn_ack_first_flips_and_rstrh_shr():
    # A SYN-ACK seen first: its receiver is the originator, history starts with ^.
    frame, _ = conn_frame([tcp(B, A, 80, 40000, "SA", seq=5000, ack=1001)])
    r = row(frame)
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_p"]) == (A, 40000, 80)
    assert r["history"] == "^h" and r["conn_state"] == "OTH"
    frame, _ = conn_frame([tcp(B, A, 80, 40000, "SA", seq=5000, ack=1001),
                           tcp(B, A, 80, 40000, "R", seq=5001)], times=[0, 1])
    assert row(frame)["conn_state"] == "RSTRH"
    frame, _ = conn_frame([tcp(B, A, 80, 40000, "SA", seq=5000, ack=1001),
                           tcp(B, A, 80, 40000, "FA", seq=5001, ack=1001)], times=[0, 1])
    assert row(frame)["conn_state"] == "SHR"


def test_bytes_from_sequence_numbers_with_wraparound():
    isn = 0xFFFFFFF0
    frames = [tcp(A, B, 40000, 8080, "S", seq=isn),
              tcp(B, A, 8080, 40000, "SA", seq=7, ack=(isn + 1) & 0xFFFFFFFF),
              tcp(A, B, 40000, 8080, "PA", seq=(isn + 1) & 0xFFFFFFFF, ack=8, payload=b"y" * 100),
              tcp(B, A, 8080, 40000, "A", seq=8, ack=(isn + 101) & 0xFFFFFFFF),
              tcp(A, B, 40000, 8080, "FA", seq=(isn + 101) & 0xFFFFFFFF, ack=8),
              tcp(B, A, 8080, 40000, "FA", seq=8, ack=(isn + 102) & 0xFFFFFFFF)]
    frame, _ = conn_frame(frames, times=[0, 0.1, 0.2, 0.3, 0.4, 0.5])
    r = row(frame)
    assert r["orig_bytes"] == 100 and r["resp_bytes"] == 0
    assert r["conn_state"] == "SF"
    assert r["orig_pkts"] == 3 and r["orig_ip_bytes"] == 40 + 140 + 40


def test_retransmission_and_zero_window_are_logarithmic():
    frames = exchange([("o", "S"), ("r", "SA"), ("o", "A"), ("o", "D")])
    again = frames[-1]
    frames += [again] * 12     # 12 retransmissions: 'T' once (1st), again at the 10th
    frames += [tcp(B, A, 8080, 40000, "A", seq=5001, ack=1011, window=0)] * 10
    frame, _ = conn_frame(frames)
    h = row(frame)["history"]
    assert h.count("T") == 2
    assert h.count("w") == 2
    assert h.startswith("ShAD")


def test_content_gap_counts_missed_bytes():
    frames = exchange([("o", "S"), ("r", "SA"), ("o", "A")])
    frames.append(tcp(A, B, 40000, 8080, "PA", seq=1001, ack=5001, payload=b"a" * 10))
    # 20 bytes never seen, then acknowledged by the responder
    frames.append(tcp(A, B, 40000, 8080, "PA", seq=1031, ack=5001, payload=b"b" * 10))
    frames.append(tcp(B, A, 8080, 40000, "A", seq=5001, ack=1041))
    frame, _ = conn_frame(frames)
    r = row(frame)
    assert r["missed_bytes"] == 20
    assert "g" in r["history"].lower()


@pytest.mark.parametrize("sent,missed", [
    ([0, 2, 4], 20),           # two holes, the blocks in order
    ([4, 2, 0], 20),           # the same blocks arriving backwards
    # Eleven blocks held out of order, three more than NBLK (8): the closest are joined, three
    # of the eleven 10-byte holes go uncounted.
    ([0, 3, 1, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23], 80),
])
def test_every_hole_an_acknowledgement_passes_is_missed(sent, missed):
    """Zeek counts each hole the peer acknowledges (TCP_Reassembler::Undelivered), not only the first."""
    frames = exchange([("o", "S"), ("r", "SA"), ("o", "A")])
    for k in sent:
        frames.append(tcp(A, B, 40000, 8080, "PA", seq=1001 + 10 * k, ack=5001, payload=bytes([65 + k]) * 10))
    frames.append(tcp(B, A, 8080, 40000, "A", seq=5001, ack=1001 + 10 * (max(sent) + 1)))
    frame, _ = conn_frame(frames)
    assert row(frame)["missed_bytes"] == missed


# ---- timeouts, UDP flip, ICMP keying, determinism -------------------------------------------

def test_udp_inactivity_timeout_splits():
    u = lambda: Ether() / IP(src=A, dst=B) / UDP(sport=40000, dport=9999) / b"q"
    frame, _ = conn_frame([u(), u(), u()], times=[0, 30, 200])
    assert len(frame) == 2
    assert list(frame["orig_pkts"]) == [2, 1]


def test_tcp_inactivity_timeout_splits():
    frames = exchange([("o", "S"), ("r", "SA"), ("o", "A"), ("o", "D"), ("o", "D")])
    frame, _ = conn_frame(frames, times=[0, 0.1, 0.2, 0.3, 0.3 + 301])
    assert len(frame) == 2
    assert list(frame["history"]) == ["ShAD", "D"]


def test_udp_flip_from_server_port():
    frame, _ = conn_frame([Ether() / IP(src=B, dst=A) / UDP(sport=53, dport=40000) / b"answer"])
    r = row(frame)
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) == (A, 40000, B, 53)
    assert r["history"] == "^d" and r["conn_state"] == "SHR"
    # both ports ephemeral: no flip
    frame, _ = conn_frame([Ether() / IP(src=B, dst=A) / UDP(sport=41000, dport=40000) / b"x"])
    assert row(frame)["history"] == "D"


def test_dns_response_first_from_originator_flips_roles():
    """Zeek's DNS analyzer flips a connection whose first message, sent by the originator, is a response."""
    from scapy.layers.dns import DNS, DNSQR
    response = DNS(id=7, qr=1, qd=DNSQR(qname="a."))
    frame, _ = conn_frame([Ether() / IP(src=A, dst=B) / UDP(sport=40000, dport=53) / response])
    r = row(frame)
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) == (B, 53, A, 40000)
    # The letters keep their case (Zeek's FlipRoles leaves the history alone): the packet is now the responder's.
    assert (r["history"], r["orig_pkts"], r["resp_pkts"]) == ("D^", 0, 1)
    # A query first, a multicast responder, or a payload shorter than a DNS header: no flip.
    query = DNS(id=7, qr=0, qd=DNSQR(qname="a."))
    for dst, payload in ((B, query), ("224.0.0.251", response), (B, bytes(response)[:11])):
        frame, _ = conn_frame([Ether() / IP(src=A, dst=dst) / UDP(sport=40000, dport=53) / payload])
        assert (row(frame)["id.orig_h"], row(frame)["history"]) == (A, "D")


def test_udp_request_reply_sizes():
    frames = [Ether() / IP(src=A, dst=B) / UDP(sport=40000, dport=53) / (b"q" * 30),
              Ether() / IP(src=B, dst=A) / UDP(sport=53, dport=40000) / (b"r" * 70)]
    frame, _ = conn_frame(frames, times=[0, 0.5])
    r = row(frame)
    assert (r["history"], r["conn_state"], r["orig_bytes"], r["resp_bytes"]) == ("Dd", "SF", 30, 70)
    assert (r["orig_ip_bytes"], r["resp_ip_bytes"]) == (58, 98)
    assert r["duration"] == pytest.approx(0.5)


def test_icmp_echo_keying_and_one_way():
    frames = [Ether() / IP(src=A, dst=B) / ICMP(type=8, id=1, seq=1) / b"ping",
              Ether() / IP(src=B, dst=A) / ICMP(type=0, id=1, seq=1) / b"ping",
              Ether() / IP(src=B, dst=A) / ICMP(type=3, code=3) / bytes(IP(src=A, dst=B) / UDP(sport=1, dport=2)),
              Ether() / IP(src=A, dst=B) / ICMP(type=3, code=3) / bytes(IP(src=B, dst=A) / UDP(sport=1, dport=2))]
    frame, _ = conn_frame(frames, times=[0, 0.25, 1, 2])
    echo = frame[(frame["id.orig_p"] == 8)].iloc[0]
    assert (echo["id.orig_h"], echo["id.resp_p"], echo["orig_pkts"], echo["resp_pkts"]) == (A, 0, 1, 1)
    assert echo["proto"] == "icmp" and echo["conn_state"] == "OTH" and echo["orig_bytes"] == 4
    unreachable = frame[frame["id.orig_p"] == 3]
    assert len(unreachable) == 2            # one-way messages are not paired
    assert set(unreachable["id.resp_p"]) == {3}


def test_uids_deterministic_and_packet_uid():
    frames = exchange([("o", "S"), ("r", "SA"), ("o", "A")]) + [Ether() / IP(src=A, dst=B, flags="MF") / (b"x" * 16)]
    f1, s1 = conn_frame(frames)
    f2, s2 = conn_frame(frames)
    assert list(f1["uid"]) == list(f2["uid"])
    uid = f1["uid"].iloc[0]
    assert re.fullmatch(r"C[0-9A-Za-z]{16,17}", uid)
    assert list(s1.packet_uid[:3]) == [uid] * 3
    assert s1.packet_uid.isna()[3]          # a fragment belongs to no connection


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=64), st.integers(0, 64), st.integers(0, 64), st.booleans())
def test_checksum_sum_over_aligned_words_matches_rfc1071(payload, start, length, odd_buffer):
    """flows._sum16 (native words, byte order fixed at the end) agrees with the plain big-endian sum."""
    from analyzer.conn.flows import _sum16
    data = np.frombuffer(payload + (b"\x01" if odd_buffer and len(payload) % 2 == 0 else b""), dtype=np.uint8)
    start = min(start, len(data))
    length = min(length, len(data) - start)
    piece = bytes(data[start:start + length]) + b"\0" * (length % 2)
    reference = sum(int.from_bytes(piece[i:i + 2], "big") for i in range(0, len(piece), 2))
    words = data[:len(data) & ~1].view(np.uint16)
    assert _sum16(data, words, start, length) % 0xFFFF == reference % 0xFFFF


def test_bad_checksum_dropped_unless_ignored():
    good = exchange([("o", "S"), ("r", "SA")])
    broken = Ether(bytes(good[1]))
    broken[TCP].chksum = (broken[TCP].chksum + 1) & 0xFFFF
    frame, _ = conn_frame([good[0], broken])
    assert row(frame)["history"] == "Sc" and row(frame)["resp_pkts"] == 0
    frame, _ = conn_frame([good[0], broken], validate_checksums=False)
    assert row(frame)["history"] == "Sh"


def test_service_set_during_streaming():
    batch = PacketBatch.from_frames([bytes(f) for f in exchange([("o", "S"), ("r", "SA")])])
    stage = ConnStage()
    stage.feed(batch, dissect(batch))
    serial = int(stage.batch_serial[0])
    stage.set_service(serial, "HTTP")
    stage.set_service(serial, "ssl")
    stage.set_service(serial, "HTTP")
    assert stage.finish()["conn"]["service"].iloc[0] == "http,ssl"


def test_services_in_confirmation_order_and_removed_on_violation():
    batch = PacketBatch.from_frames([bytes(f) for f in exchange([("o", "S"), ("r", "SA")])])
    stage = ConnStage()
    stage.feed(batch, dissect(batch))
    serial = int(stage.batch_serial[0])
    stage.set_service(serial, "smtp", ts=20)      # recorded first, confirmed later (HTTP CONNECT)
    stage.set_service(serial, "http", ts=10)
    stage.set_service(serial, "dns")
    stage.remove_service(serial, "dns")
    assert stage.finish()["conn"]["service"].iloc[0] == "http,smtp"


def test_limit_reached_adds_x_in_frame_order():
    # Zeek's LimitReachedWeird: "X" once, after the letters of the packets up to the limit's frame.
    frames = exchange([("o", "S"), ("r", "SA"), ("o", "A"), ("o", "D"), ("r", "D"), ("o", "F"), ("r", "F")])
    batch = PacketBatch.from_frames([bytes(f) for f in frames])
    stage = ConnStage()
    stage.feed(batch, dissect(batch))
    stage.mark_partial([5, 6])
    assert stage.finish()["conn"]["history"].iloc[0] == "ShADdXFf"
    untouched, _ = conn_frame(frames)
    assert untouched["history"].iloc[0] == "ShADdFf"


# ---- tunnels: Teredo by content, tunnel services ------------------------------------------

def _teredo(src, dst, sport, dport, inner, origin=False):
    """A UDP datagram carrying ``inner`` (an IPv6 packet), after an origin indication if asked (RFC 4380 §5.1.1)."""
    prefix = bytes.fromhex("0000") + b"\xff" * 6 if origin else b""
    return Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (prefix + bytes(inner))


def test_teredo_recognised_by_content_for_conn_but_not_for_packets():
    from scapy.layers.inet6 import IPv6
    client, server = "2001:0:4137:9e50::1", "2001:db8::80"
    inner = [IPv6(src=client, dst=server) / TCP(sport=1286, dport=80, flags="S", seq=1),
             IPv6(src=server, dst=client) / TCP(sport=80, dport=1286, flags="SA", seq=9, ack=2)]
    frames = [_teredo(A, B, 3797, 32900, inner[0]), _teredo(B, A, 32900, 3797, inner[1], origin=True)]
    batch = PacketBatch.from_frames([bytes(f) for f in frames])
    fields = dissect(batch)
    # Wireshark's view: a UDP datagram, nothing inside (its Teredo heuristic is off by default).
    assert "tcp.srcport" not in fields.values or not fields.valid["tcp.srcport"].any()
    assert fields.valid["udp.srcport"].all()
    frame, _ = conn_frame(frames)
    by_proto = {p: frame[frame["proto"] == p].iloc[0] for p in ("tcp", "udp")}
    assert (by_proto["tcp"]["id.orig_h"], by_proto["tcp"]["id.resp_p"], by_proto["tcp"]["history"]) == \
        (client, 80, "Sh")
    assert by_proto["tcp"]["tunnel_parents"] == [by_proto["udp"]["uid"]]
    # Both endpoints sent Teredo: confirmed (Zeek's Tunnel::delay_teredo_confirmation).
    assert by_proto["udp"]["service"] == "teredo"
    one_way, _ = conn_frame(frames[:1])
    assert one_way[one_way["proto"] == "udp"]["service"].isna().all()
    # Plain IPv6 in UDP without a Teredo address is not taken for Teredo.
    plain = IPv6(src="2001:db8::1", dst=server) / TCP(sport=1, dport=80, flags="S")
    other, _ = conn_frame([_teredo(A, B, 3797, 32900, plain)])
    assert list(other["proto"]) == ["udp"]


def test_tunnel_outer_connection_gets_zeek_service():
    from scapy.layers.vxlan import VXLAN
    frame_bytes = Ether() / IP(src=A, dst=B) / UDP(sport=50000, dport=4789) / VXLAN(vni=5) / \
        tcp("192.168.0.1", "192.168.0.2", 4000, 80, "S")
    frame, _ = conn_frame([frame_bytes])
    assert frame.set_index("proto").loc["udp", "service"] == "vxlan"
    assert frame.set_index("proto").loc["tcp", "service"] is pd.NA


# ---- property test against a small reference model of Zeek's documented rules -----------

INACTIVE, SYN_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = "INACTIVE", "SYN_SENT", "PARTIAL", "EST", "CLOSED", "RESET"


def reference(steps):
    """History and conn_state from Zeek's documented rules, for flows opened by an originator SYN."""
    state = {"o": INACTIVE, "r": INACTIVE}
    prev = {"o": INACTIVE, "r": INACTIVE}
    data = {"o": 0, "r": 0}
    seen = set()
    history = ""

    def go(who, new):
        if state[who] != new:
            prev[who], state[who] = state[who], new

    for who, kind in steps:
        other = "r" if who == "o" else "o"
        cls = {"S": "syn", "SA": "syn", "F": "fin", "R": "rst", "D": "data", "A": "ack"}[kind]
        letter = {"S": "S", "SA": "H", "F": "F", "R": "R", "D": "D", "A": "A"}[kind]
        if (who, cls) not in seen:
            seen.add((who, cls))
            history += letter if who == "o" else letter.lower()
        if kind == "D":
            data[who] += 10
        s = state[who]
        if kind == "S":
            go(who, SYN_SENT)
        elif kind == "SA":
            go(who, ESTABLISHED)
            if state[other] == SYN_SENT:
                go(other, ESTABLISHED)
        elif kind == "F":
            if s in (INACTIVE, SYN_SENT, ESTABLISHED, PARTIAL):
                go(who, CLOSED)
                # a FIN after the peer's FIN+RST on an open connection: a normal close
                if s in (ESTABLISHED, PARTIAL) and state[other] == RESET and prev[other] == CLOSED:
                    go(other, CLOSED)
        elif kind == "R":
            if s in (INACTIVE, SYN_SENT, ESTABLISHED, PARTIAL) or (s == CLOSED and state[other] != CLOSED):
                go(who, RESET)
        elif s == INACTIVE:
            if not (who == "r" and kind == "A" and state["o"] == SYN_SENT):
                go(who, PARTIAL)

    def size(who):
        if prev[who] == SYN_SENT and state[who] == RESET and state["r" if who == "o" else "o"] == INACTIVE:
            return 0
        return data[who]

    os_, rs = state["o"], state["r"]
    o_in, r_in = os_ in (INACTIVE, PARTIAL), rs in (INACTIVE, PARTIAL)
    if rs == RESET:
        if os_ == SYN_SENT or (os_ == RESET and size("o") == 0 and size("r") == 0):
            cs = "REJ"
        else:
            cs = "RSTRH" if o_in else "RSTR"
    elif os_ == RESET:
        cs = ("RSTOS0" if re.fullmatch(r"\^?S[^HAFGIQ]*R.*", history) else "OTH") if r_in else "RSTO"
    elif os_ == CLOSED and rs == CLOSED:
        cs = "SF"
    elif os_ == CLOSED:
        cs = "SH" if r_in else "S2"
    elif rs == CLOSED:
        cs = "SHR" if o_in else "S3"
    elif os_ == SYN_SENT and rs == INACTIVE:
        cs = "S0"
    elif os_ == ESTABLISHED and rs == ESTABLISHED:
        cs = "S1"
    else:
        cs = "OTH"
    return history, cs


@st.composite
def flag_sequences(draw):
    steps = [("o", "S")]
    used = {("o", "S")}
    closed = set()
    resp_spoke = False
    for _ in range(draw(st.integers(0, 8))):
        who = draw(st.sampled_from(["o", "r"]))
        options = ["A", "D", "F", "R"]
        if who == "r" and not resp_spoke:
            options.append("SA")
        kind = draw(st.sampled_from(options))
        if kind in ("F", "R", "SA") and (who, kind) in used:
            continue
        if kind in ("F", "R") and (who, "F") in used | {(w, "F") for w in ()} and (who, "R") in used:
            continue
        if kind == "D" and who in closed:
            continue
        if (who, "R") in used and kind in ("F",):
            continue
        used.add((who, kind))
        if kind in ("F", "R"):
            closed.add(who)
        resp_spoke |= who == "r"
        steps.append((who, kind))
    return steps


@settings(max_examples=150, deadline=None)
@given(flag_sequences())
def test_history_and_state_against_reference(steps):
    frame, _ = conn_frame(exchange(steps), times=[i * 0.01 for i in range(len(steps))])
    assert len(frame) == 1
    history, state = reference(steps)
    assert (row(frame)["history"], row(frame)["conn_state"]) == (history, state), steps


# ---- corpus conformance ---------------------------------------------------------------------

CORPUS = os.environ.get("NETSIFT_CORPUS") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")


@pytest.mark.skipif(not os.path.isdir(os.path.join(CORPUS, "zeek")), reason=f"corpus not found at {CORPUS}")
def test_corpus_conformance():
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    from zeek_conformance import conformance_conn
    result = conformance_conn(CORPUS, verbose=False)
    # Every remaining difference is explained (and quoted in the issue notes):
    # * service of protocols netsift has no stage for (ftp, ftp-data, ntp, dhcp, ssh): 11 cells,
    #   set apart in ``percent_dissected``;
    # * a '^' from Zeek's DNS analyzer flipping on the QR bit (dns-max-compression-depth);
    # * GTP with unreassembled outer fragments: four holes open at once, the state machine's
    #   one-hole model counts one (missed_bytes).
    assert result["percent"] >= 99.0
    assert result["percent_dissected"] >= 99.5
    assert len(result["missing"]) == 0
    assert len(result["extra"]) == 0


# ---- growth of the slot table and the compiled Community ID ------------------------------

def _stage_run(path, capacity, batch_packets):
    from analyzer.reassembly import FragmentReassembler
    from captures import open_capture
    stage, fragments = ConnStage(capacity=capacity), FragmentReassembler()
    with open_capture(path) as reader:
        for batch in reader.batches(max_packets=batch_packets):
            fields = dissect(batch)
            datagrams, numbers = fragments.feed(batch, fields)
            parts = [(datagrams, dissect(datagrams), numbers - batch.first_number)] if len(datagrams) else []
            stage.feed(batch, fields, datagrams=parts)
    return stage.finish()["conn"], stage.packet_uid


def test_slot_table_grows_mid_batch_without_changing_output():
    # Many connections open at once: a one-slot table must double while the events run
    # (process_events stops and resumes), and give what a roomy table gives.
    frames = [tcp(A, B, 40000 + i, 80, "S", seq=i) for i in range(300)]
    frames += [tcp(B, A, 80, 40000 + i, "SA", seq=7, ack=i + 1) for i in range(0, 300, 3)]
    times = np.arange(len(frames)) * 0.001
    small, small_stage = conn_frame(frames, times, capacity=1)
    roomy, roomy_stage = conn_frame(frames, times, capacity=4096)
    pd.testing.assert_frame_equal(small, roomy)
    assert small_stage.packet_uid.equals(roomy_stage.packet_uid)
    assert len(small) == 300 and 300 <= small_stage.C.shape[0] < 4096


@pytest.mark.skipif(not os.path.isdir(os.path.join(CORPUS, "zeek")), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", ["ipv4-fragmented-4.pcap", "ipv6-fragmented-dns.pcap"])
def test_reassembled_datagrams_interleaved_and_growth(name):
    path = os.path.join(CORPUS, "zeek", name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not in the corpus")
    whole, whole_uid = _stage_run(path, 4096, 65536)
    small, small_uid = _stage_run(path, 1, 7)
    pd.testing.assert_frame_equal(whole, small)
    assert whole_uid.equals(small_uid)
