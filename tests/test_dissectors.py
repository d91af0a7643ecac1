"""Dissector tests: byte vectors per protocol, every-prefix truncation, random bytes."""

from __future__ import annotations

import struct

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
    assert not dissect(PacketBatch.from_frames([frame[:64]], wire_len=[len(frame)])).weird
    # Only TCP reassembly notes, as Zeek does, that the segment's data cannot be delivered.
    assert weird["name"].tolist() == ["truncated_tcp_payload"]
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


# -- the reader's reuse_buffers option (open_capture(path, reuse_buffers=True)) ---------------

def _consume(path, reuse, chunk_bytes, max_packets):
    """Per frame: bytes, reader columns and dissected cells, each batch used before the next is requested.

    Batch boundaries may differ (a reused buffer can be larger than the
    chunk size after a long record), so frames are compared, not batches;
    offsets into a batch's buffer are left out for the same reason.
    """
    from captures import open_capture
    frames, columns, cells = [], [], {}
    with open_capture(path, reuse_buffers=reuse, chunk_bytes=chunk_bytes) as reader:
        for batch in reader.batches(max_packets):
            assert len(batch) <= max_packets
            fields = dissect(batch)
            for i in range(len(batch)):
                frames.append(batch.frame(i))
                columns.append(tuple(int(getattr(batch, name)[i]) for name in
                                     ("cap_len", "wire_len", "ts_ns", "link_type", "interface_id")))
                assert columns[-1][0] == len(frames[-1]) and batch.first_number + i == len(frames)
            for name, values in fields.values.items():
                if not name.startswith(("_l4.start", "_payload.")):
                    valid = fields.valid[name]
                    for i in np.flatnonzero(valid):
                        cells[name, batch.first_number + i] = values[i].tolist()
        warnings, truncated = list(reader.warnings), reader.truncated_at
    return frames, columns, cells, warnings, truncated


def _same_reads(a, b):
    assert a == b


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reused_buffers_give_the_same_batches(tmp_path_factory, data):
    """With reuse_buffers, every batch (used before the next is requested) is the default's."""
    import gzip

    from captures import write_pcap, write_pcapng
    frames = data.draw(st.lists(st.sampled_from([v[2] for v in VECTORS if v[1] == 1])
                                | st.binary(max_size=300), min_size=0, max_size=60))
    path = tmp_path_factory.mktemp("reuse") / "capture"
    (write_pcapng if data.draw(st.booleans()) else write_pcap)(str(path), frames)
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, 200))
    if cut:
        path.write_bytes(raw[:max(30, len(raw) - cut)])   # damage at the end: same warning either way
    if data.draw(st.booleans()):
        path.write_bytes(gzip.compress(path.read_bytes()))
    chunk_bytes = data.draw(st.sampled_from([64, 100, 512, 4096, 1 << 20]))
    max_packets = data.draw(st.sampled_from([1, 3, 7, 65536]))
    _same_reads(_consume(path, False, chunk_bytes, max_packets), _consume(path, True, chunk_bytes, max_packets))


def test_reused_buffers_on_the_sample_capture():
    from analyzer.pipeline import SAMPLE
    for chunk_bytes, max_packets in ((1 << 12, 64), (1 << 16, 1000), (1 << 24, 65536)):
        _same_reads(_consume(SAMPLE, False, chunk_bytes, max_packets), _consume(SAMPLE, True, chunk_bytes, max_packets))


def test_reused_buffers_are_reused():
    """The point of the option: one chunk buffer for the whole file."""
    from analyzer.pipeline import SAMPLE
    from captures import open_capture
    buffers = set()
    with open_capture(SAMPLE, reuse_buffers=True, chunk_bytes=1 << 14) as reader:
        for batch in reader.batches(256):
            base = batch.data
            while base.base is not None and isinstance(base.base, np.ndarray):
                base = base.base
            buffers.add(base.ctypes.data)
    assert len(buffers) == 1


# -- structured random frames: header lengths, options and length fields near their consistent values ------

@st.composite
def _length_near(draw, value, low=0, high=0xFFFF):
    """A length field: the consistent value, a little off, or anything."""
    return draw(st.one_of(st.just(value), st.integers(value - 4, value + 4), st.integers(low, high))
                .map(lambda v: min(max(v, low), high)))


@st.composite
def _tcp(draw):
    options = b"".join(draw(st.lists(st.sampled_from([
        b"\x02\x04\x05\xb4", b"\x01", b"\x00", b"\x03\x03\x07", b"\x04\x02", b"\x08\x0a" + bytes(range(8)),
        b"\x02\x03\x05", b"\x08\x02", b"\x05\x0a" + bytes(8), b"\x01\x01\x01"]), max_size=8)))[:40]
    options += b"\x00" * (-len(options) % 4)
    offset = draw(_length_near((20 + len(options)) // 4, 0, 15))
    payload = draw(st.binary(max_size=24))
    return (struct.pack("!HHIIBBHHH", draw(st.integers(0, 0xFFFF)), draw(st.sampled_from([80, 53, 4789])),
                        draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), offset << 4,
                        draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)), 0, 0) + options + payload)


@st.composite
def _udp(draw):
    payload = draw(st.binary(max_size=24))
    return struct.pack("!HHHH", draw(st.sampled_from([53, 4789, 3544, 2152, 5072, 6081, 40000])),
                       draw(st.sampled_from([53, 123, 40000])), draw(_length_near(8 + len(payload))), 0) + payload


@st.composite
def _ipv4(draw):
    protocol = draw(st.sampled_from([6, 17, 1]))
    body = draw(_tcp()) if protocol == 6 else draw(_udp()) if protocol == 17 else bytes([3, 3, 0, 0, 0, 0, 0, 0])
    ihl = draw(st.sampled_from([5, 5, 6, 15, 4, 0]))
    options = bytes(max(0, ihl * 4 - 20))
    flags = draw(st.sampled_from([0, 0x4000, 0x2000, 0x2000 | 185, 185]))
    total = draw(_length_near(20 + len(options) + len(body)))
    version = draw(st.sampled_from([4, 4, 4, 6, 5]))
    return struct.pack("!BBHHHBBHII", version << 4 | ihl, 0, total, 7, flags, 64, protocol, 0, 0xC0000201,
                       0xC6336402) + options + body


@st.composite
def _ipv6(draw):
    chain = draw(st.lists(st.sampled_from([0, 43, 44, 60, 51]), max_size=3))
    upper = draw(st.sampled_from([6, 17, 58]))
    headers = chain + [upper]
    extension = b""
    for i, kind in enumerate(chain):
        if kind == 44:
            extension += struct.pack("!BBHI", headers[i + 1], 0, draw(st.sampled_from([0, 1, 80, 81, 6])), 0xABCDEF)
        elif kind == 51:
            extension += bytes([headers[i + 1], 1]) + bytes(10)
        else:
            extension += bytes([headers[i + 1], 0]) + draw(st.sampled_from(
                [bytes(6), b"\x01\x04" + bytes(4), b"\x01\x05" + bytes(4), b"\xc9\x04" + bytes(4)]))
    body = draw(_tcp()) if upper == 6 else draw(_udp()) if upper == 17 else bytes([1, 4, 0, 0, 0, 0, 0, 0])
    length = draw(_length_near(len(extension) + len(body)))
    version = draw(st.sampled_from([6, 6, 6, 4]))
    return (struct.pack("!IHBB", version << 28, length, headers[0], 9) + bytes(range(32)) + extension + body)


@st.composite
def _ethernet_frame(draw):
    ip = draw(st.one_of(_ipv4(), _ipv6()))
    ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    tags = b"".join(struct.pack("!HH", kind, 100) for kind in draw(st.lists(st.sampled_from([0x8100, 0x88A8]),
                                                                              max_size=2)))
    return bytes.fromhex("66778899aabb001122334455") + tags + struct.pack("!H", ethertype) + ip + bytes(
        draw(st.sampled_from([0, 0, 6])))


def _dissected_packets(frames, wire_len=None):
    """The packets frame of the dissectors alone (no reassembly or application stages), and the weird names."""
    from analyzer.pipeline import PacketsStage
    batch = PacketBatch.from_frames(frames, link_type=1, wire_len=wire_len)
    fields = dissect(batch)
    stage = PacketsStage()
    stage.feed(batch, fields)
    return stage.finish()["packets"], {name for _, name, _ in fields.weird}


@settings(max_examples=150, deadline=None)
@given(frame=_ethernet_frame())
def test_structured_random_frames_every_prefix_invents_nothing(frame):
    """Malformed-but-plausible headers: each snaplen-cut prefix keeps the whole frame's values, weirds are known."""
    whole, _ = _dissected_packets([frame])
    prefixes = [frame[:cut] for cut in range(len(frame))]
    cut_rows, weird = _dissected_packets(prefixes, wire_len=[len(frame)] * len(prefixes))
    assert len(cut_rows) == len(frame)
    for column in whole.columns:
        if column in ("frame.number", "frame.time_epoch", "ts", "frame.cap_len", "frame.len", "uid"):
            continue
        if pd.isna(whole[column].iloc[0]):
            continue
        present = cut_rows[column].notna().to_numpy()
        assert (cut_rows[column][present] == whole[column].iloc[0]).all(), column
    _, truncated_weird = _dissected_packets(prefixes)
    assert weird | truncated_weird <= KNOWN_WEIRDS


def test_arena_memory_is_reused_only_when_nothing_views_it():
    # Fields of a large batch carve their columns from a reused arena: a column still held by
    # anyone (a stage keeping it) must never be handed to the next batch.
    from dissectors import arena, wire
    n = arena.ARENA_MIN_ROWS
    first = wire.Fields(n)
    kept, _ = first.column("_kept", np.int64)
    kept[:] = 7
    del first                                  # the batch is done; one of its columns is still held
    second = wire.Fields(n)
    other, _ = second.column("_other", np.int64)
    other[:] = 9
    assert not np.shares_memory(kept, other) and (kept == 7).all()
    used = [arena for block in arena._arenas if np.shares_memory(other, block)]
    assert len(used) == 1                      # the second batch did get an arena
    del second, other, kept, used
    third = wire.Fields(n)
    again, _ = third.column("_again", np.int64)
    # Nothing views the earlier arenas any more: the next batch takes one of them again.
    assert any(np.shares_memory(again, block) for block in arena._arenas)
