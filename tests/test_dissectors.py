"""Dissector tests: byte vectors per protocol, every-prefix truncation, random bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import analyze_batch, schema
from captures.batch import PacketBatch
from dissectors import dissect

from .vectors import LINK_TYPES, VECTORS

KNOWN_WEIRDS = {
    "truncated_ethernet_frame", "truncated_link_header", "truncated_pppoe_header",
    "truncated_Linux_SLL_header", "truncated_Linux_SLL2_header", "truncated_IP", "truncated_IPv6",
    "unknown_ip_version", "IPv4_min_header_size", "internally_truncated_header", "ip_hdr_len_zero",
    "invalid_IP_header_size", "truncated_header", "bad_TCP_header_len", "truncated_GRE",
    "unknown_link_type", "exceeded_tunnel_max_depth",
    # IP fragment reassembly (Zeek's names), for fragments fed through the pipeline.
    "excessively_small_fragment", "incompletely_captured_fragment", "fragment_inconsistency",
}


def packets_of(frames, link_type, wire_len=None):
    batch = PacketBatch.from_frames(frames, link_type=link_type, wire_len=wire_len)
    tables = analyze_batch(batch)
    return tables["packets"], tables["weird"]


def cell(frame: pd.DataFrame, row: int, name: str):
    value = frame[name].iloc[row]
    return None if pd.isna(value) else value


@pytest.mark.parametrize("name,link_type,frame,expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_fields(name, link_type, frame, expected):
    packets, weird = packets_of([frame], link_type)
    assert len(packets) == 1
    assert cell(packets, 0, "frame.len") == len(frame)
    for field, value in expected.items():
        assert cell(packets, 0, field) == value, field
    assert weird.empty, weird["name"].tolist()


@pytest.mark.parametrize("name,link_type,frame,expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_every_prefix_is_a_row_that_invents_nothing(name, link_type, frame, expected):
    """Each prefix, cut by a snaplen (wire length kept) or truly truncated, is one row.

    Snaplen cut: every field present equals the whole frame's value (nothing is
    read past the captured bytes, nothing made up). Truncation: every weird
    name is one we document.
    """
    whole, _ = packets_of([frame], link_type)
    prefixes = [frame[:cut] for cut in range(len(frame))]
    cut_rows, _ = packets_of(prefixes, link_type, wire_len=[len(frame)] * len(prefixes))
    truncated, weird = packets_of(prefixes, link_type)
    assert len(cut_rows) == len(truncated) == len(frame)
    for column in whole.columns:
        if column in ("frame.number", "frame.time_epoch", "ts", "frame.cap_len", "frame.len", "uid"):
            continue
        present = cut_rows[column].notna().to_numpy()
        expected_value = whole[column].iloc[0]
        assert (cut_rows[column][present] == expected_value).all(), column
    assert set(weird["name"]) <= KNOWN_WEIRDS
    # A frame cut inside its first header is flagged.
    assert 1 in set(weird["frame.number"]) or link_type in (12, 14, 101, 228, 229)


def test_outermost_occurrence_wins_and_tunnels_fill_inner_transport():
    frames = [frame for name, _, frame, _ in VECTORS if name.startswith(("gre", "vxlan"))]
    packets, _ = packets_of(frames, 1)
    assert packets["ip.src"].tolist() == ["1.1.1.1", "3.3.3.3"]
    assert packets["tcp.srcport"].tolist()[0] == 1000
    assert packets["udp.srcport"].tolist()[1] == 40000   # outer UDP, not the inner DNS


def test_mixed_link_types_in_one_batch_keep_file_order():
    chosen = [v for v in VECTORS if v[1] in (1, 113, 0, 276)]
    frames = [frame for _, _, frame, _ in chosen]
    batch = PacketBatch.from_frames(frames, link_type=[link for _, link, _, _ in chosen])
    packets = analyze_batch(batch)["packets"]
    assert packets["frame.number"].tolist() == list(range(1, len(chosen) + 1))
    for row, (_, _, _, expected) in enumerate(chosen):
        for field, value in expected.items():
            assert cell(packets, row, field) == value


def test_unknown_link_type_is_a_row_and_a_weird():
    packets, weird = packets_of([b"\x01\x02\x03"], 147)
    assert len(packets) == 1 and cell(packets, 0, "frame.len") == 3
    assert weird["name"].tolist() == ["unknown_link_type"] and weird["addl"].tolist() == ["147"]


def test_frame_dtypes_follow_the_schema_and_have_no_object_columns():
    packets, weird = packets_of([VECTORS[0][2]], 1)
    assert list(packets.columns) == [c.name for c in schema.PACKETS]
    for column in schema.PACKETS:
        assert str(packets[column.name].dtype) == column.dtype, column.name
    assert not any(dtype == object for dtype in packets.dtypes)
    assert list(weird.columns) == [c.name for c in schema.WEIRD]


def test_snaplen_cut_payload_is_not_an_anomaly():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80) / (b"p" * 1000))
    packets, weird = packets_of([frame[:64]], 1, wire_len=[len(frame)])
    assert weird.empty
    assert cell(packets, 0, "tcp.len") == 1000 and cell(packets, 0, "frame.cap_len") == 64


def test_truncated_tcp_header_keeps_what_was_captured():
    frame = VECTORS[0][2]
    packets, weird = packets_of([frame[:14 + 20 + 9]], 1)
    assert cell(packets, 0, "tcp.seq_raw") == 0x01020304 and cell(packets, 0, "tcp.ack_raw") is None
    assert cell(packets, 0, "ip.src") == "192.0.2.1"
    assert "truncated_IP" in set(weird["name"])   # the IP total length runs past the frame


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(st.binary(max_size=120), min_size=1, max_size=8), link_type=st.sampled_from(LINK_TYPES))
def test_random_bytes_never_raise(frames, link_type):
    fields = dissect(PacketBatch.from_frames(frames, link_type=link_type))
    for name, values in fields.values.items():
        assert len(values) == len(frames), name
    for rows, name, _ in fields.weird:
        assert ((rows >= 0) & (rows < len(frames))).all() and name in KNOWN_WEIRDS


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_vectors_never_raise(data):
    _, link_type, frame, _ = data.draw(st.sampled_from(VECTORS))
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 6))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    fields = dissect(PacketBatch.from_frames([bytes(mutated)], link_type=link_type))
    assert all(len(v) == 1 for v in fields.values.values())
    assert np.all([name in KNOWN_WEIRDS for _, name, _ in fields.weird])
