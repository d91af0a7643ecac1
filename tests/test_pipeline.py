"""The pipeline across stages: fragments reassembled into the packets and conn tables."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import raw

from analyzer import analyze_batch
from captures.batch import PacketBatch

from .vectors import VECTORS


def test_fragmented_datagram_fills_the_completing_frame_like_wireshark():
    datagram = Ether() / IP(src="10.1.0.1", dst="10.1.0.2", id=77) / UDP(sport=5000, dport=53) / (b"q" * 3000)
    pieces = [raw(p) for p in fragment(datagram, fragsize=1000)]
    random.Random(3).shuffle(pieces)   # in any order, the last fragment fed completes the datagram
    tables = analyze_batch(PacketBatch.from_frames(pieces))
    packets, conn = tables["packets"], tables["conn"]
    completing = len(pieces) - 1
    assert packets["udp.srcport"].notna().tolist() == [i == completing for i in range(len(pieces))]
    assert packets["udp.length"].iloc[completing] == 3008
    assert len(conn) == 1 and conn["orig_pkts"].iloc[0] == 1 and conn["orig_ip_bytes"].iloc[0] == 3028
    assert packets["uid"].isna().tolist() == [True] * completing + [False]
    assert packets["uid"].iloc[completing] == conn["uid"].iloc[0]


def test_fragment_with_a_short_header_length_is_not_a_crash():
    # An IPv4 fragment (MF) whose header length field says 0 bytes, cut by the snaplen.
    frame = bytes.fromhex("66778899aabb00112233445508004000000000140609000102030405060708090a0b")
    tables = analyze_batch(PacketBatch.from_frames([frame], wire_len=[74]))
    assert len(tables["packets"]) == 1
    assert "IPv4_min_header_size" in set(tables["weird"]["name"])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_stage_survives_mutated_frames(data):
    """Bad input never raises anywhere in the pipeline (reassembly and application stages included)."""
    frames = []
    for _ in range(data.draw(st.integers(1, 6))):
        _, link_type, frame, _ = data.draw(st.sampled_from([v for v in VECTORS if v[1] == 1]))
        mutated = bytearray(frame)
        for _ in range(data.draw(st.integers(0, 6))):
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
        frames.append(bytes(mutated[:data.draw(st.integers(0, len(mutated)))]))
    tables = analyze_batch(PacketBatch.from_frames(frames))
    assert len(tables["packets"]) == len(frames)
