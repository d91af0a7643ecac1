"""The pipeline across stages: fragments reassembled into the packets and conn tables."""

from __future__ import annotations

import random

import pandas as pd
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import raw

from analyzer import analyze_batch
from captures.batch import PacketBatch


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
