"""Reassembly: IP fragments (analyzer.reassembly.ip) and TCP streams (stream, tcp)."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.reassembly import (
    Chunk,
    FragmentReassembler,
    StreamReassembler,
    TcpReassembly,
    Weird,
)
from analyzer.reassembly.ip import MEMORY_WEIRD
from captures import CaptureError, open_capture
from captures.batch import PacketBatch
from dissectors import dissect

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import (
    GRE,
    IP,
    TCP,
    UDP,
    Dot1Q,
    Ether,
    IPOption_NOP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    Raw,
    fragment,
    fragment6,
)

CORPUS = Path(os.environ.get("NETSIFT_CORPUS")
              or Path(__file__).resolve().parents[2] / "shared" / "corpus")
NS = 1_000_000_000
ETHER = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
PAYLOAD = random.Random(7).randbytes(3000)


# -- helpers ------------------------------------------------------------------------------------

def eth(packet) -> bytes:
    return bytes(Ether(**ETHER) / packet)


def batch_of(frames, ts_ns=None, first_number=1, wire_len=None, link_type=1):
    return PacketBatch.from_frames(frames, link_type=link_type, ts_ns=ts_ns, first_number=first_number,
                                   wire_len=wire_len)


def reassemble(frames, reassembler=None, per_batch=1_000_000, ts_ns=None, wire_len=None):
    """Feed ``frames`` (in ``per_batch`` batches); returns (datagrams, frame numbers, weird names)."""
    reassembler = reassembler or FragmentReassembler()
    datagrams, numbers = [], []
    for start in range(0, len(frames), per_batch):
        part = frames[start:start + per_batch]
        ts = None if ts_ns is None else ts_ns[start:start + per_batch]
        wl = None if wire_len is None else wire_len[start:start + per_batch]
        batch = batch_of(part, ts_ns=ts, first_number=start + 1, wire_len=wl)
        out, frames_done = reassembler.feed(batch, dissect(batch))
        assert len(out) == len(frames_done)
        datagrams += [out.frame(i) for i in range(len(out))]
        numbers += frames_done.tolist()
    weirds = reassembler.pop_weirds()
    assert all(isinstance(w, Weird) for w in weirds)
    return datagrams, numbers, [w.name for w in weirds]


def v4_datagram(ident=4321, size=1400, proto_payload=None, flags=0):
    packet = IP(src="192.0.2.1", dst="198.51.100.2", id=ident, flags=flags) / UDP(sport=5000, dport=53) / Raw(
        proto_payload if proto_payload is not None else PAYLOAD[:size])
    return IP(bytes(packet))


def v4_fragments(packet, fragsize):
    return [eth(f) for f in fragment(packet, fragsize=fragsize)]


def v6_datagram(ident=99, size=1400, extensions=()):
    layers = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for ext in extensions:
        layers = layers / ext
    whole = layers / UDP(sport=5000, dport=53) / Raw(PAYLOAD[:size])
    return bytes(whole)


def v6_fragments(ident=99, size=1400, fragsize=500, before=(), after=()):
    """``(original bytes, fragment frames)``: ``before`` headers are unfragmentable, ``after`` not."""
    original = v6_datagram(ident, size, tuple(before) + tuple(after))
    layers = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for ext in before:
        layers = layers / ext
    layers = layers / IPv6ExtHdrFragment(id=ident)
    for ext in after:
        layers = layers / ext
    packet = layers / UDP(sport=5000, dport=53) / Raw(PAYLOAD[:size])
    packet = IPv6(bytes(packet))
    return original, [eth(f) for f in fragment6(packet, fragsize)]


def raw_v4_fragment(ident, offset, data, more, proto=17, src="192.0.2.1", dst="198.51.100.2", df=False):
    flags = (2 if df else 0) | (1 if more else 0)
    return eth(IP(src=src, dst=dst, id=ident, proto=proto, flags=flags, frag=offset // 8) / Raw(data))


# -- IPv4 fragments ------------------------------------------------------------------------------

def test_v4_every_order_of_four_fragments_gives_the_original():
    original = v4_datagram(size=1400)
    frames = v4_fragments(original, 400)
    assert len(frames) == 4
    for order in itertools.permutations(range(4)):
        shuffled = [frames[i] for i in order]
        datagrams, numbers, weirds = reassemble(shuffled)
        assert datagrams == [bytes(original)], order
        assert numbers == [4]
        assert weirds == []


def test_v4_fragments_across_batches_and_frame_numbers():
    original = v4_datagram(size=2000)
    frames = v4_fragments(original, 300)
    order = list(range(len(frames)))
    random.Random(1).shuffle(order)
    noise = eth(IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(b"x" * 10))
    stream = []
    for i in order:
        stream += [noise, frames[i]]
    datagrams, numbers, _ = reassemble(stream, per_batch=3)
    assert datagrams == [bytes(original)]
    assert numbers == [len(stream)]


@pytest.mark.parametrize("seed", range(20))
def test_v4_shuffled_with_duplicates_and_overlaps(seed):
    rng = random.Random(seed)
    original = v4_datagram(size=2900)
    payload = bytes(original)[20:]
    pieces = []
    # Random overlapping pieces (8-byte aligned starts) covering the payload, plus the last one.
    position = 0
    while position < len(payload):
        length = rng.choice([8, 16, 24, 64, 200, 512])
        start = max(0, position - rng.choice([0, 0, 8, 16]))
        end = min(len(payload), position + length)
        pieces.append((start, end))
        position = end
    pieces += [rng.choice(pieces) for _ in range(rng.randrange(0, 5))]       # duplicates
    rng.shuffle(pieces)
    frames = [raw_v4_fragment(4321, s, payload[s:e], more=e < len(payload)) for s, e in pieces]
    datagrams, _, weirds = reassemble(frames)
    # Pieces after completion start a new datagram that never completes; the first is exact.
    assert datagrams[:1] == [bytes(original)]
    assert set(weirds) <= {"fragment_overlap", "excessively_small_fragment"}


def test_v4_inconsistent_overlap_is_first_wins():
    data = bytes(range(64)) * 2
    good = raw_v4_fragment(7, 0, data[:64], more=True)
    liar = raw_v4_fragment(7, 32, b"\xee" * 64, more=True)
    tail = raw_v4_fragment(7, 64, data[64:], more=False)
    datagrams, _, weirds = reassemble([good, liar, tail])
    assert len(datagrams) == 1
    body = datagrams[0][20:]
    assert body == data[:64] + b"\xee" * 32 + data[96:]
    assert "fragment_inconsistency" in weirds


def test_v4_header_fixed_up_and_dissectable():
    original = v4_datagram(size=1000)
    frames = v4_fragments(original, 256)
    datagrams, _, _ = reassemble(frames[::-1])
    batch = batch_of(datagrams, link_type=228)
    fields = dissect(batch)
    assert fields.values["ip.len"][0] == len(original)
    assert fields.values["ip.flags.mf"][0] == 0 and fields.values["ip.frag_offset"][0] == 0
    assert not fields.values["_ip.fragment"][0]
    assert fields.values["udp.dstport"][0] == 53 and fields.values["udp.length"][0] == 1008


def test_v4_reassembled_batch_metadata():
    original = v4_datagram(size=1000)
    frames = v4_fragments(original, 256)
    batch = batch_of(frames, ts_ns=[5 * NS + i for i in range(len(frames))])
    out, numbers = FragmentReassembler().feed(batch, dissect(batch))
    assert len(out) == 1
    assert out.link_type.tolist() == [228]
    assert out.ts_ns.tolist() == [5 * NS + len(frames) - 1]
    assert out.cap_len.tolist() == out.wire_len.tolist() == [len(original)]
    assert numbers.dtype == np.int64 and numbers.tolist() == [len(frames)]


def test_v4_key_includes_protocol_and_identification():
    a = v4_datagram(ident=1, size=600)
    b = v4_datagram(ident=2, size=600)
    fa, fb = v4_fragments(a, 200), v4_fragments(b, 200)
    interleaved = [f for pair in itertools.zip_longest(fa, fb) for f in pair if f]
    datagrams, _, _ = reassemble(interleaved)
    assert sorted(datagrams) == sorted([bytes(a), bytes(b)])
    # Same id, different protocol: two datagrams, neither complete.
    frames = [raw_v4_fragment(9, 0, b"a" * 64, True, proto=17), raw_v4_fragment(9, 64, b"b" * 8, False, proto=6)]
    assert reassemble(frames)[0] == []


def test_v4_fragment_with_df_and_small_fragment_weirds():
    frames = [raw_v4_fragment(5, 0, b"a" * 16, True, df=True), raw_v4_fragment(5, 16, b"b" * 16, False)]
    datagrams, _, weirds = reassemble(frames)
    assert len(datagrams) == 1
    assert "fragment_with_DF" in weirds and "excessively_small_fragment" in weirds
    # DF survives the fix-up; MF and offset are cleared.
    assert datagrams[0][6] & 0x40 and not datagrams[0][6] & 0x3F and datagrams[0][7] == 0


def test_v4_longer_last_fragment_after_completion_starts_anew():
    frames = [raw_v4_fragment(5, 0, b"a" * 64, True), raw_v4_fragment(5, 64, b"b" * 64, False),
              raw_v4_fragment(5, 64, b"b" * 128, False)]
    datagrams, _, weirds = reassemble(frames)
    assert datagrams and len(datagrams[0]) == 20 + 128
    assert "fragment_size_inconsistency" not in weirds  # completed at the second fragment


def test_v4_last_fragments_disagree():
    frames = [raw_v4_fragment(5, 64, b"b" * 64, False), raw_v4_fragment(5, 64, b"b" * 128, False),
              raw_v4_fragment(5, 0, b"a" * 64, True)]
    datagrams, _, weirds = reassemble(frames)
    assert "fragment_size_inconsistency" in weirds
    assert len(datagrams) == 1 and datagrams[0][20:] == b"a" * 64 + b"b" * 128


def test_v4_timeout():
    original = v4_datagram(size=1000)
    frames = v4_fragments(original, 256)
    late = [0] + [61 * NS] * (len(frames) - 1)
    assert reassemble(frames, ts_ns=late)[0] == []
    early = [0] + [59 * NS] * (len(frames) - 1)
    assert reassemble(frames, ts_ns=early)[0] == [bytes(original)]
    # Zeek's bare default: no timeout at all.
    assert reassemble(frames, FragmentReassembler(timeout_ns=0), ts_ns=[0] + [10**6 * NS] * 3)[0] == [
        bytes(original)]


def test_v4_datagram_size_cap():
    # A fragment ending beyond 65,535 - 20 bytes of payload cannot be stated: dropped.
    frames = [raw_v4_fragment(5, 0, b"a" * 64, True), raw_v4_fragment(5, 65512, b"z" * 16, False)]
    datagrams, _, weirds = reassemble(frames)
    assert datagrams == [] and "excessively_large_fragment" in weirds
    # Exactly at the limit it is kept (and still reported beyond 64,000 as Zeek does).
    r = FragmentReassembler()
    frames = [raw_v4_fragment(5, 65512, b"z" * 3, False)]
    _, _, weirds = reassemble(frames, r)
    assert "excessively_large_fragment" in weirds and r.pending == 1


def test_v4_longer_first_header_cannot_overflow_the_length_field():
    """The size limit comes from the first fragment to arrive; a longer offset-0 header is caught."""
    last = raw_v4_fragment(5, 65512, b"z" * 3, False)            # 20-byte header: limit 65,515
    first = IP(bytes(IP(src="192.0.2.1", dst="198.51.100.2", id=5, proto=17, flags=1,
                        options=[IPOption_NOP()] * 4) / Raw(b"a" * 1480)))
    assert first.ihl == 6
    middle = [raw_v4_fragment(5, o, b"m" * min(1480, 65512 - o), True) for o in range(1480, 65512, 1480)]
    datagrams, _, weirds = reassemble([last] + middle + [eth(first)])
    assert datagrams == [] and "excessively_large_fragment" in weirds


def test_total_memory_cap_drops_oldest():
    r = FragmentReassembler(max_bytes=3000)
    frames = [raw_v4_fragment(i, 0, bytes([i]) * 800, True) for i in range(1, 5)]
    _, _, weirds = reassemble(frames, r)
    assert MEMORY_WEIRD in weirds
    assert r.stats["evicted"] >= 1 and r.stats["held_bytes"] <= 3000
    # The newest datagram is still there and completes.
    datagrams, _, _ = reassemble([raw_v4_fragment(4, 800, b"end", False)], r)
    assert len(datagrams) == 1 and datagrams[0][20:] == b"\x04" * 800 + b"end"
    # The oldest is gone: its tail does not complete it.
    assert reassemble([raw_v4_fragment(1, 800, b"end", False)], r)[0] == []


def test_incompletely_captured_fragment():
    original = v4_datagram(size=1000)
    frames = v4_fragments(original, 256)
    cut = [f if i != 1 else f[:100] for i, f in enumerate(frames)]
    wire = [len(f) for f in frames]
    datagrams, _, weirds = reassemble(cut, wire_len=wire)
    assert datagrams == [] and "incompletely_captured_fragment" in weirds
    # Truly truncated (wire length says so too): the dissector's truncated_IP, nothing from us.
    datagrams, _, weirds = reassemble(cut)
    assert datagrams == [] and "incompletely_captured_fragment" not in weirds


def test_v4_fragments_in_vlan_and_gre_tunnel():
    original = v4_datagram(size=1200)
    inner = fragment(original, fragsize=400)
    vlan = [bytes(Ether(**ETHER) / Dot1Q(vlan=7) / f) for f in inner]
    assert reassemble(vlan[::-1])[0] == [bytes(original)]
    gre = [eth(IP(src="10.9.9.1", dst="10.9.9.2") / GRE() / f) for f in inner]
    assert reassemble(gre[::-1])[0] == [bytes(original)]


def test_v4_outer_fragments_of_a_tunnel():
    inner = IP(src="10.1.1.1", dst="10.1.1.2") / UDP(sport=1, dport=2) / Raw(PAYLOAD[:1500])
    outer = IP(bytes(IP(src="192.0.2.1", dst="192.0.2.2", id=77) / inner))
    frames = v4_fragments(outer, 512)
    datagrams, _, _ = reassemble(frames)
    assert datagrams == [bytes(outer)]
    batch = batch_of(datagrams, link_type=228)
    fields = dissect(batch)
    assert fields.values["_ip.src4"][0] == 0x0A010101 and fields.values["udp.dstport"][0] == 2


# -- IPv6 fragments ------------------------------------------------------------------------------

def test_v6_every_order():
    original, frames = v6_fragments(size=1400, fragsize=500)
    assert len(frames) == 4
    for order in itertools.permutations(range(len(frames))):
        datagrams, _, weirds = reassemble([frames[i] for i in order])
        assert datagrams == [original], order
        assert weirds == []


@pytest.mark.parametrize("seed", range(10))
def test_v6_shuffled_with_duplicates(seed):
    rng = random.Random(seed)
    original, frames = v6_fragments(size=2900, fragsize=300)
    stream = frames + [rng.choice(frames) for _ in range(3)]
    rng.shuffle(stream)
    datagrams, _, weirds = reassemble(stream)
    assert datagrams[0] == original
    assert set(weirds) <= {"fragment_overlap"}


def test_v6_with_extension_headers():
    original, frames = v6_fragments(size=1400, fragsize=600, before=[IPv6ExtHdrHopByHop()],
                                    after=[IPv6ExtHdrDestOpt()])
    datagrams, _, _ = reassemble(frames[::-1])
    assert datagrams == [original]
    fields = dissect(batch_of(datagrams, link_type=229))
    assert fields.values["udp.dstport"][0] == 53


def _v6_raw_fragment(ident, offset, data, more):
    return eth(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(
        id=ident, offset=offset // 8, m=int(more), nh=17) / Raw(data))


def test_v6_overlap_policies():
    frames = [_v6_raw_fragment(3, 0, b"a" * 64, True), _v6_raw_fragment(3, 32, b"b" * 64, True),
              _v6_raw_fragment(3, 96, b"c" * 8, False)]
    datagrams, _, weirds = reassemble(frames)
    assert len(datagrams) == 1 and datagrams[0][40:] == b"a" * 64 + b"b" * 32 + b"c" * 8
    assert "fragment_inconsistency" in weirds
    strict = FragmentReassembler(ipv6_overlaps="rfc5722")
    datagrams, _, weirds = reassemble(frames, strict)
    assert datagrams == [] and strict.stats["discarded"] == 1
    # Exact duplicates are fine under RFC 8200 §4.5.
    dup = [frames[0], frames[0], _v6_raw_fragment(3, 64, b"c" * 8, False)]
    datagrams, _, weirds = reassemble(dup, FragmentReassembler(ipv6_overlaps="rfc5722"))
    assert len(datagrams) == 1 and "fragment_overlap" in weirds


def test_flush_drops_incomplete_silently():
    r = FragmentReassembler()
    reassemble([raw_v4_fragment(5, 0, b"a" * 64, True)], r)
    assert r.pending == 1
    assert r.flush() == [] and r.pending == 0


def test_feed_without_fragments():
    batch = batch_of([eth(IP() / UDP() / Raw(b"x"))])
    out, numbers = FragmentReassembler().feed(batch, dissect(batch))
    assert len(out) == 0 and len(numbers) == 0


# -- TCP: one direction (StreamReassembler) -------------------------------------------------------

DATA = random.Random(3).randbytes(64)


def stream_of(chunks) -> bytes:
    return b"".join(c.data for c in chunks)


def run(segments, isn=None, close=True, **kw):
    """Feed ``(seq, bytes)`` segments after an optional SYN; returns (chunks, reassembler)."""
    s = StreamReassembler(**kw)
    chunks = []
    if isn is not None:
        chunks += s.add(isn, b"", 0, flags=0x02)
    for t, (seq, data) in enumerate(segments):
        chunks += s.add(seq & 0xFFFFFFFF, data, t + 1, flags=0x10)
    if close:
        chunks += s.close(99)
    return chunks, s


@pytest.mark.parametrize("isn", [1000, 2**32 - 1, 2**32 - 10, 2**32 - 64])
def test_every_split_point_both_orders(isn):
    for cut in range(1, len(DATA)):
        first, second = (isn + 1, DATA[:cut]), (isn + 1 + cut, DATA[cut:])
        for segments in ([first, second], [second, first]):
            chunks, s = run(segments, isn=isn)
            assert stream_of(chunks) == DATA
            assert s.missed_bytes == 0 and sum(c.gap_before for c in chunks) == 0
            assert chunks[-1].eof and chunks[-1].data == b""


@pytest.mark.parametrize("seed", range(30))
def test_single_byte_segments_shuffled_duplicated(seed):
    rng = random.Random(seed)
    isn = rng.choice([0, 12345, 2**32 - 20, 2**32 - 1])
    segments = [(isn + 1 + i, DATA[i:i + 1]) for i in range(len(DATA))]
    segments += [rng.choice(segments) for _ in range(20)]
    rng.shuffle(segments)
    chunks, s = run(segments, isn=isn)
    assert stream_of(chunks) == DATA and s.missed_bytes == 0
    assert s.weirds == []


@pytest.mark.parametrize("seed", range(30))
def test_overlapping_segments_across_wrap(seed):
    rng = random.Random(seed)
    isn = 2**32 - rng.randrange(1, 40)
    segments = []
    for _ in range(40):
        a = rng.randrange(len(DATA))
        b = rng.randrange(a + 1, len(DATA) + 1)
        segments.append((isn + 1 + a, DATA[a:b]))
    segments.append((isn + 1, DATA))            # guarantees coverage
    rng.shuffle(segments)
    chunks, s = run(segments, isn=isn)
    assert stream_of(chunks) == DATA and s.missed_bytes == 0 and s.weirds == []


def test_timestamps_follow_the_carrying_segment():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    assert s.add(6, b"world", 20, frame=2) == []
    chunks = s.add(1, b"hello", 10, frame=1)
    assert chunks == [Chunk(b"hello", 10, 0, 1), Chunk(b"world", 20, 0, 2)]


def test_mid_stream_start():
    seq = 3_000_000_000
    chunks, s = run([(seq, DATA[:10]), (seq + 10, DATA[10:])], isn=None)
    assert stream_of(chunks) == DATA
    assert not s.saw_syn
    # A segment from before the first one seen is before the stream: weird, dropped.
    s2 = StreamReassembler()
    s2.add(seq + 10, DATA[10:20], 1)
    out = s2.add(seq, DATA[:20], 2)
    assert stream_of(out) == b""
    assert ("TCP_seq_underflow_or_misorder", None) in s2.weirds
    # A keep-alive (one byte at the octet before the next) is no underflow, even at the start.
    s3 = StreamReassembler()
    s3.add(seq, b"", 0, flags=0x02)
    assert s3.add(seq, b"\0", 1, flags=0x10) == [] and s3.weirds == []


def test_dropped_segment_gap_on_close():
    isn = 2**32 - 5
    segments = [(isn + 1, DATA[:10]), (isn + 21, DATA[20:40]), (isn + 45, DATA[44:])]
    chunks, s = run(segments, isn=isn)
    assert s.missed_bytes == 10 + 4
    assert [c.gap_before for c in chunks if c.gap_before] == [10, 4]
    assert stream_of(chunks) == DATA[:10] + DATA[20:40] + DATA[44:]
    # The gap sits right before the bytes that follow it.
    first_after = next(c for c in chunks if c.gap_before == 10)
    assert first_after.data.startswith(DATA[20:24])


def test_gap_before_fin():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    s.add(1, DATA[:10], 1)
    out = s.add(31, b"", 2, flags=0x11)                  # FIN at offset 30: 20 bytes missing
    assert out == []
    out = s.close(3)
    assert [(c.data, c.gap_before, c.eof) for c in out] == [(b"", 20, False), (b"", 0, True)]
    assert s.missed_bytes == 20


def test_ack_gives_up_holes():
    s = StreamReassembler()
    s.add(100, b"", 0, flags=0x02)
    s.add(101, DATA[:10], 1)
    s.add(121, DATA[20:30], 2)
    assert s.buffered == 10
    out = s.ack(111, 3)                                   # nothing missing yet below 111
    assert out == []
    out = s.ack(131, 4, frame=9)
    assert [(c.data, c.gap_before) for c in out] == [(DATA[20:30], 10)]
    out = s.ack(141, 5, frame=10)                         # acked beyond anything seen
    assert [(c.data, c.gap_before, c.frame) for c in out] == [(b"", 10, 10)]
    assert s.missed_bytes == 20
    # The late original is now old data.
    assert s.add(111, DATA[10:20], 6) == []


def test_fin_and_data_after_it():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    out = s.add(1, DATA[:10], 1, flags=0x11)
    assert [(c.data, c.eof) for c in out] == [(DATA[:10], False), (b"", True)]
    assert s.add(11, b"more", 2) == []
    assert s.close(3) == []


def test_fin_before_last_data():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    assert s.add(11, DATA[10:20], 1, flags=0x11) == []
    out = s.add(1, DATA[:10], 2)
    assert stream_of(out) == DATA[:20] and out[-1].eof


def test_inconsistent_retransmission_is_first_wins():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    s.add(11, b"ABCDEFGHIJ", 1)
    s.add(6, b"xxxxxabcdeXXXXXtail", 2)           # offsets 5..23, over ABCDEFGHIJ at 10..19
    out = s.add(1, b"01234", 3)
    assert stream_of(out) == b"01234xxxxxABCDEFGHIJtail"
    assert ("rexmit_inconsistency", None) in s.weirds


def test_truncated_payload_not_used():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    out = s.add(1, DATA[:5], 1, length=10)
    assert out == [] and ("truncated_tcp_payload", None) in s.weirds
    out = s.add(11, DATA[10:20], 2)
    assert out == []
    out = s.close(3)
    assert [(c.data, c.gap_before) for c in out[:1]] == [(DATA[10:20], 10)]


def test_syn_seq_jump_and_retransmitted_syn():
    s = StreamReassembler()
    s.add(500, b"", 0, flags=0x02)
    assert s.add(500, b"", 1, flags=0x02) == []          # retransmitted SYN
    assert s.weirds == []
    s.add(9000, b"", 2, flags=0x02)
    assert ("SYN_seq_jump", None) in s.weirds
    assert stream_of(s.add(501, b"abc", 3)) == b"abc"


def test_syn_with_data():
    s = StreamReassembler()
    assert stream_of(s.add(7, b"hello", 0, flags=0x02)) == b"hello"
    assert s.next_seq == 13


def test_buffer_cap_skips_ahead():
    s = StreamReassembler(max_buffered=100)
    s.add(0, b"", 0, flags=0x02)
    out = []
    for i in range(5):
        out += s.add(1 + 50 + 40 * i, DATA[:40], i + 1)
    assert ("excessive_data_without_further_acks", None) in s.weirds
    assert s.buffered <= 100
    assert out and out[0].gap_before == 50
    assert s.missed_bytes == 50


def test_rst_then_close():
    s = StreamReassembler()
    s.add(0, b"", 0, flags=0x02)
    s.add(1, b"abc", 1)
    s.add(4, b"", 2, flags=0x04)
    assert s.reset
    out = s.close(3)
    assert [(c.data, c.eof) for c in out] == [(b"", True)]


@st.composite
def segmentations(draw):
    data = draw(st.binary(min_size=1, max_size=300))
    isn = draw(st.integers(0, 2**32 - 1))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=30)))
    bounds = [0] + [c for c in cuts if c < len(data)] + [len(data)]
    segments = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    extra = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 50)), max_size=10))
    segments += [(a, min(len(data), a + n)) for a, n in extra]               # overlaps, duplicates
    order = draw(st.permutations(range(len(segments))))
    syn = draw(st.booleans())
    return data, isn, [segments[i] for i in order], syn


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segmentations())
def test_property_any_segmentation_order_duplication(case):
    data, isn, segments, syn = case
    s = StreamReassembler()
    out = []
    if syn:
        out += s.add(isn, b"", 0, flags=0x02)
        base = isn + 1
    else:
        # Mid-stream: the first segment seen defines the start, so send byte 0 first.
        base = isn
        out += s.add(base & 0xFFFFFFFF, data[:1], 0)
    for t, (a, b) in enumerate(segments):
        out += s.add((base + a) & 0xFFFFFFFF, data[a:b], t + 1)
    out += s.close(10**6)
    assert stream_of(out) == data
    assert s.missed_bytes == 0 and s.delivered_bytes == len(data)
    assert s.weirds == []


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=200), st.integers(0, 2**32 - 1), st.data())
def test_property_dropped_segments_are_exact_gaps(data, isn, draw):
    n = len(data)
    cuts = sorted(draw.draw(st.sets(st.integers(1, n - 1), max_size=20)))
    bounds = [0] + cuts + [n]
    segments = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    dropped = draw.draw(st.sets(st.integers(0, len(segments) - 1), max_size=len(segments) - 1))
    kept = [seg for i, seg in enumerate(segments) if i not in dropped]
    order = draw.draw(st.permutations(kept))
    s = StreamReassembler()
    out = s.add(isn, b"", 0, flags=0x02)
    for t, (a, b) in enumerate(order):
        out += s.add((isn + 1 + a) & 0xFFFFFFFF, data[a:b], t + 1)
    out += s.add((isn + 1 + n) & 0xFFFFFFFF, b"", 10**5, flags=0x11)       # FIN marks the end
    out += s.close(10**6)
    expected = b"".join(data[a:b] for a, b in kept)
    missing = sum(b - a for i, (a, b) in enumerate(segments) if i in dropped)
    assert stream_of(out) == expected
    assert s.missed_bytes == missing == sum(c.gap_before for c in out)
    # Each chunk's position: offset so far plus its gap.
    position = 0
    for chunk in out:
        position += chunk.gap_before
        assert data[position:position + len(chunk.data)] == chunk.data
        position += len(chunk.data)
    assert position == n


# -- TCP: whole captures (TcpReassembly) ----------------------------------------------------------

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 80)
CLIENT6, SERVER6 = ("2001:db8::a", 40000), ("2001:db8::b", 80)


def tcp_frame(src, dst, seq, ack, flags, data=b"", v6=False):
    ip = IPv6(src=src[0], dst=dst[0]) if v6 else IP(src=src[0], dst=dst[0])
    return eth(ip / TCP(sport=src[1], dport=dst[1], seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                        flags=flags) / Raw(data))


def conversation(request, response, c_isn=2**32 - 100, s_isn=5000, mss=7, rng=None, v6=False,
                 client=CLIENT, server=SERVER):
    """Frames of a whole connection; each direction's data segments shuffled when ``rng`` given."""
    f = []
    f.append(tcp_frame(client, server, c_isn, 0, "S", v6=v6))
    f.append(tcp_frame(server, client, s_isn, c_isn + 1, "SA", v6=v6))
    f.append(tcp_frame(client, server, c_isn + 1, s_isn + 1, "A", v6=v6))
    for data, src, dst, isn, peer_isn in ((request, client, server, c_isn, s_isn),
                                          (response, server, client, s_isn, c_isn)):
        segs = [tcp_frame(src, dst, isn + 1 + i, peer_isn + 1, "PA", data[i:i + mss], v6=v6)
                for i in range(0, len(data), mss)]
        if rng:
            segs += [rng.choice(segs) for _ in range(3)]
            rng.shuffle(segs)
        f += segs
    f.append(tcp_frame(client, server, c_isn + 1 + len(request), s_isn + 1 + len(response), "FA", v6=v6))
    f.append(tcp_frame(server, client, s_isn + 1 + len(response), c_isn + 2 + len(request), "FA", v6=v6))
    return f


def run_capture(frames, per_batch=5, flush=True, reassembly=None, ts_step=NS // 1000, uids=None):
    r = reassembly or TcpReassembly()
    out = []
    for start in range(0, len(frames), per_batch):
        part = frames[start:start + per_batch]
        batch = batch_of(part, first_number=start + 1,
                         ts_ns=[(start + i) * ts_step for i in range(len(part))])
        out += r.feed(batch, dissect(batch),
                      uid_per_row=None if uids is None else uids[start:start + per_batch])
    if flush:
        out += r.flush()
    return out, r


def streams(deliveries):
    result = {}
    for d in deliveries:
        result.setdefault((d.key, d.is_orig), []).append(d.chunk)
    return result


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("per_batch", [1, 4, 1000])
def test_capture_both_directions(seed, per_batch):
    rng = random.Random(seed)
    request, response = PAYLOAD[:200], PAYLOAD[200:700]
    v6 = seed % 2 == 1
    client, server = (CLIENT6, SERVER6) if v6 else (CLIENT, SERVER)
    frames = conversation(request, response, rng=rng, v6=v6, client=client, server=server)
    out, r = run_capture(frames, per_batch=per_batch)
    by = streams(out)
    assert len(by) == 2
    keys = {key for key, _ in by}
    assert len(keys) == 1
    key = keys.pop()
    assert (key.orig_h, key.orig_p, key.resp_h, key.resp_p) == client + server
    assert stream_of(by[(key, True)]) == request
    assert stream_of(by[(key, False)]) == response
    for side in (True, False):
        chunks = by[(key, side)]
        assert chunks[-1].eof and sum(c.eof for c in chunks) == 1
        assert sum(c.gap_before for c in chunks) == 0
        assert all(c.frame >= 1 for c in chunks[:-1])
    assert r.pop_weirds() == []


def test_capture_first_seen_syn_ack_makes_receiver_originator():
    frames = conversation(b"hello", b"world")[1:]           # the SYN was not captured
    out, _ = run_capture(frames)
    by = streams(out)
    key = next(iter(by))[0]
    assert (key.orig_h, key.orig_p) == CLIENT
    assert stream_of(by[(key, True)]) == b"hello" and stream_of(by[(key, False)]) == b"world"


def test_capture_ack_driven_gap():
    request = PAYLOAD[:70]
    frames = conversation(request, b"", mss=10)
    lost = [f for f in frames if request[20:30] in f]
    assert len(lost) == 1
    frames.remove(lost[0])
    # The server acknowledges all of the request before the FINs.
    ack = tcp_frame(SERVER, CLIENT, 5001, 2**32 - 100 + 1 + 70, "A")
    frames.insert(len(frames) - 2, ack)
    out, r = run_capture(frames, per_batch=len(frames) - 2, flush=False)
    by = streams(out)
    (key, _), = [k for k in by if k[1]]
    chunks = by[(key, True)]
    assert stream_of(chunks) == request[:20] + request[30:]
    assert sum(c.gap_before for c in chunks) == 10
    gap_chunk = next(c for c in chunks if c.gap_before)
    assert gap_chunk.data.startswith(request[30:40])
    r.flush()
    assert r.stats["missed_bytes"] == 10


def test_capture_gap_without_ack_given_up_at_flush():
    request = PAYLOAD[:70]
    frames = [f for f in conversation(request, b"", mss=10) if request[20:30] not in f]
    out, _ = run_capture(frames, per_batch=3)
    by = streams(out)
    chunks = next(v for (k, side), v in by.items() if side)
    assert stream_of(chunks) == request[:20] + request[30:]
    assert sum(c.gap_before for c in chunks) == 10


def test_capture_connection_reuse_and_uids():
    first = conversation(b"one", b"1", c_isn=100, s_isn=200)
    second = conversation(b"two", b"2", c_isn=900, s_isn=800)
    reassembly = TcpReassembly(close_delay_ns=10 * NS)
    out, _ = run_capture(first + second, per_batch=4, reassembly=reassembly)
    by = streams(out)
    keys = sorted({k for k, _ in by}, key=lambda k: k.uid)
    assert len(keys) == 2 and keys[0][:4] == keys[1][:4] and keys[0].uid != keys[1].uid
    assert stream_of(by[(keys[0], True)]) == b"one" and stream_of(by[(keys[1], True)]) == b"two"
    uids = ["Ca"] * len(first) + ["Cb"] * len(second)
    out, _ = run_capture(first + second, per_batch=3, uids=uids)
    by = streams(out)
    assert {k.uid for k, _ in by} == {"Ca", "Cb"}
    assert stream_of(by[(next(k for k, _ in by if k.uid == "Cb"), True)]) == b"two"


def test_capture_integer_uids_and_rows_in_no_connection():
    frames = conversation(b"hello", b"world", mss=2)
    uids = np.full(len(frames), 7, dtype=np.int64)
    bad = next(i for i, f in enumerate(frames) if b"ll" in f)
    uids[bad] = -1                      # e.g. a bad checksum: the tracker put it in no connection
    out, _ = run_capture(frames, per_batch=4, uids=uids)
    by = streams(out)
    assert {k.uid for k, _ in by} == {7}
    chunks = by[next(k for k in by if k[1])]
    assert stream_of(chunks) == b"heo" and sum(c.gap_before for c in chunks) == 2


def test_capture_closed_connection_expires_after_close_delay():
    frames = conversation(b"abc", b"def")
    r = TcpReassembly()
    run_capture(frames, flush=False, reassembly=r)
    assert r.connections == 1
    later = tcp_frame(("10.9.9.9", 1), ("10.9.9.8", 2), 1, 0, "S")
    batch = batch_of([later], ts_ns=[60 * NS])
    r.feed(batch, dissect(batch))
    assert r.connections == 1                      # only the new one


def test_capture_inactivity_timeout():
    frames = [tcp_frame(CLIENT, SERVER, 10, 0, "S"), tcp_frame(CLIENT, SERVER, 11, 0, "A", b"abc"),
              tcp_frame(CLIENT, SERVER, 20, 0, "A", b"xyz")]
    r = TcpReassembly(inactivity_timeout_ns=30 * NS)
    run_capture(frames, flush=False, reassembly=r)
    assert r.connections == 1
    batch = batch_of([tcp_frame(("10.9.9.9", 1), ("10.9.9.8", 2), 1, 0, "S")], ts_ns=[100 * NS])
    late = r.feed(batch, dissect(batch))
    chunks = [d.chunk for d in late if d.key.orig_p == CLIENT[1]]
    assert [(c.data, c.gap_before) for c in chunks] == [(b"xyz", 6), (b"", 0)]
    assert chunks[-1].eof


def test_capture_total_buffer_cap():
    frames = [tcp_frame(CLIENT, SERVER, 10, 0, "S")]
    frames += [tcp_frame(CLIENT, SERVER, 1000 + 100 * i, 0, "A", bytes([i]) * 50) for i in range(10)]
    r = TcpReassembly(max_total_buffered=300)
    out, _ = run_capture(frames, per_batch=len(frames), flush=False, reassembly=r)
    assert "excessive_data_without_further_acks" in [w.name for w in r.pop_weirds()]
    assert r.stats["buffered_bytes"] <= 150
    assert out and out[0].chunk.gap_before == 1000 - 11


def test_capture_truncated_payload_weird():
    frame = tcp_frame(CLIENT, SERVER, 10, 0, "A", b"x" * 100)
    batch = batch_of([frame[:-40]], wire_len=[len(frame)])
    r = TcpReassembly()
    assert r.feed(batch, dissect(batch)) == []
    assert [w.name for w in r.pop_weirds()] == ["truncated_tcp_payload"]


def test_capture_tcp_in_reassembled_fragments():
    """A TCP segment fragmented at the IP layer reaches the stream once reassembled.

    The server's ACK of it comes later in the same batch: fed together (``more``), the
    reassembled segment is not taken for data lost before that ACK.
    """
    syn = tcp_frame(CLIENT, SERVER, 10, 0, "S")
    synack = tcp_frame(SERVER, CLIENT, 70, 11, "SA")
    segment = IP(bytes(IP(src=CLIENT[0], dst=SERVER[0], id=5) / TCP(sport=CLIENT[1], dport=SERVER[1],
                                                                   seq=11, ack=71, flags="A") / Raw(PAYLOAD[:1000])))
    ack = tcp_frame(SERVER, CLIENT, 71, 1011, "A")
    frames = [syn, synack] + v4_fragments(segment, 256) + [ack]
    batch = batch_of(frames)
    fields = dissect(batch)
    frag, tcp = FragmentReassembler(), TcpReassembly()
    datagrams, numbers = frag.feed(batch, fields)
    assert len(datagrams) == 1
    out = tcp.feed(batch, fields, more=[(datagrams, dissect(datagrams), None, numbers)])
    out += tcp.flush()
    data = [d.chunk for d in out if d.chunk.data]
    assert stream_of(data) == PAYLOAD[:1000] and data[0].frame == len(frames) - 1
    assert sum(d.chunk.gap_before for d in out) == 0


def test_capture_fragmented_syn_keeps_the_originator():
    syn = IP(bytes(IP(src=CLIENT[0], dst=SERVER[0], id=9) / TCP(sport=CLIENT[1], dport=SERVER[1], seq=10,
                                                               flags="S") / Raw(b"early")))
    frames = v4_fragments(syn, 8) + [tcp_frame(SERVER, CLIENT, 70, 16, "SA"),
                                     tcp_frame(CLIENT, SERVER, 16, 71, "A", b"late")]
    batch = batch_of(frames)
    fields = dissect(batch)
    datagrams, numbers = FragmentReassembler().feed(batch, fields)
    r = TcpReassembly()
    out = r.feed(batch, fields, more=[(datagrams, dissect(datagrams), None, numbers)]) + r.flush()
    by = streams(out)
    key = next(iter(by))[0]
    assert (key.orig_h, key.orig_p) == CLIENT
    assert stream_of(by[(key, True)]) == b"earlylate"


# -- TCP: the compiled in-order pass (analyzer.reassembly.kernels) must change nothing ------------

def mixed_capture(rng):
    """Frames and integer uids of interleaved connections: in order, shuffled, lost segments, keep-alives,
    retransmitted SYNs, RST endings, missing SYNs, a four-tuple reused with a new uid."""
    conns = []
    for n in range(10):
        client = (f"10.0.0.{1 + n % 2}", 40000 + n % 3)          # some four-tuples come back
        request, response = PAYLOAD[:rng.randrange(0, 400)], PAYLOAD[:rng.randrange(0, 900)]
        frames = conversation(request, response, c_isn=rng.randrange(2**32), s_isn=rng.randrange(2**32),
                              mss=rng.choice([7, 60, 500]), rng=rng if rng.random() < 0.3 else None,
                              client=client)
        if rng.random() < 0.3 and len(frames) > 6:               # a lost segment (ACKs give it up)
            del frames[rng.randrange(3, len(frames) - 2)]
        if rng.random() < 0.3:                                     # a keep-alive, a retransmitted SYN
            frames.insert(4, tcp_frame(client, SERVER, 0, 0, "A", b"k"))
            frames.insert(1, frames[0])
        if rng.random() < 0.3:                                     # reset instead of the FINs
            frames[-2:] = [tcp_frame(client, SERVER, 0, 0, "R")]
        if rng.random() < 0.2:                                     # the SYN was not captured
            frames = frames[1:]
        conns.append((frames, n))
    frames, uids = [], []
    cursors = [0] * len(conns)
    while any(cursor < len(f) for cursor, (f, _) in zip(cursors, conns)):
        i = rng.choice([i for i, (f, _) in enumerate(conns) if cursors[i] < len(f)])
        frames.append(conns[i][0][cursors[i]])
        uids.append(conns[i][1])
        cursors[i] += 1
    return frames, uids


def typed(deliveries):
    """Deliveries with the types of their values, so that e.g. 1 and True differ."""
    return [(d.key, type(d.is_orig), d.is_orig, tuple((type(v), v) for v in d.chunk)) for d in deliveries]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("per_batch", [1, 9, 10_000])
def test_compiled_pass_delivers_as_python(seed, per_batch):
    """Integer uids take the compiled pass, the same uids as a list only the Python loop."""
    frames, uids = mixed_capture(random.Random(seed))
    compiled, r_compiled = run_capture(frames, per_batch=per_batch, uids=np.array(uids, dtype=np.int64))
    python, r_python = run_capture(frames, per_batch=per_batch, uids=list(uids))
    assert typed(compiled) == typed(python)
    assert r_compiled.pop_weirds() == r_python.pop_weirds()
    assert r_compiled.stats == r_python.stats


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_batch", [9, 10_000])
def test_columns_are_the_deliveries(seed, per_batch):
    """feed_columns gives what feed gives, as objects and as a byte count, with both kinds of pieces."""
    frames, uids = mixed_capture(random.Random(seed))
    uids = np.array(uids, dtype=np.int64)
    expected, _ = run_capture(frames, per_batch=per_batch, uids=uids.tolist(), flush=False)   # Python's path
    r = TcpReassembly()
    got, kinds = [], set()
    for start in range(0, len(frames), per_batch):
        part = frames[start:start + per_batch]
        batch = batch_of(part, first_number=start + 1, ts_ns=[(start + i) * (NS // 1000) for i in range(len(part))])
        deliveries = r.feed_columns(batch, dissect(batch), uid_per_row=uids[start:start + per_batch])
        kinds.update(type(piece).__name__ for piece in deliveries.pieces)
        objects = list(deliveries)
        assert len(deliveries) == len(objects)
        assert deliveries.total_bytes == sum(len(d.chunk.data) for d in objects)
        got += objects
    assert typed(got) == typed(expected)
    assert kinds == {"CompiledRun", "list"}


def test_wanted_skips_only_what_a_reader_ignores():
    """Each reader is given, in order, every delivery except those of the compiled runs' connections
    it said it ignores (the Python path's deliveries all); a reader without ``ignores`` gets everything."""
    frames, uids = mixed_capture(random.Random(3))
    batch = batch_of(frames, first_number=1, ts_ns=[i * (NS // 1000) for i in range(len(frames))])
    deliveries = TcpReassembly().feed_columns(batch, dissect(batch), uid_per_row=np.array(uids, dtype=np.int64))
    odd = lambda key: key.uid % 2 == 1          # noqa: E731  (a reader that gave up on odd uids)
    never = lambda key: True                    # noqa: E731
    expected = [[], [], []]
    for piece in deliveries.pieces:
        compiled = not isinstance(piece, list)
        for delivery in (piece.objects(deliveries.buffers) if compiled else piece):
            for i, ignores in enumerate((odd, None, never)):
                if not (compiled and ignores is not None and ignores(delivery.key)):
                    expected[i].append(delivery)
    given = [[], [], []]
    for objects, readers in deliveries.wanted([odd, None, never]):
        for delivery, bits in zip(objects, readers or [0b111] * len(objects)):
            for i in range(3):
                if bits >> i & 1:
                    given[i].append(delivery)
    assert given == expected
    assert given[1] == list(deliveries)
    assert len(given[1]) > len(given[0]) > len(given[2])
    assert any(not isinstance(piece, list) for piece in deliveries.pieces)


def test_compiled_pass_takes_in_order_segments(monkeypatch):
    """Only what it cannot reproduce is left to the Python loop: here the out-of-order segment and
    the rest of its connection in the batch."""
    taken = []
    python_segments = TcpReassembly._python_segments

    def spy(self, part, *args):
        taken.append(len(part))
        return python_segments(self, part, *args)

    monkeypatch.setattr(TcpReassembly, "_python_segments", spy)
    frames = conversation(PAYLOAD[:100], PAYLOAD[:300], mss=50)
    out, _ = run_capture(frames, per_batch=len(frames), flush=False)
    assert taken == [1]                 # the connection opened; every segment compiled
    assert stream_of([d.chunk for d in out if d.is_orig]) == PAYLOAD[:100]
    swapped = frames[:3] + [frames[4], frames[3]] + frames[5:]       # the request's two segments
    taken.clear()
    out, _ = run_capture(swapped, per_batch=len(frames), flush=False)
    assert taken == [1 + len(frames) - 3]
    assert stream_of([d.chunk for d in out if d.is_orig]) == PAYLOAD[:100]


def test_compiled_connections_need_no_stream_objects():
    """A connection only the compiled pass took (handshake, data, FINs and their ACKs) keeps its
    streams' state as rows, and closing it from them gives what the stream objects give."""
    frames = conversation(PAYLOAD[:100], PAYLOAD[:300], mss=50)
    rows_path, r_rows = run_capture(frames, per_batch=len(frames), uids=np.zeros(len(frames), dtype=np.int64),
                                    flush=False)
    (conn,) = r_rows._conns.values()
    assert conn._streams is None and conn.rows is not None
    objects_path, r_objects = run_capture(frames, per_batch=len(frames), uids=[0] * len(frames), flush=False)
    assert typed(rows_path + r_rows.flush()) == typed(objects_path + r_objects.flush())
    assert r_rows.stats == r_objects.stats


def test_compiled_pass_uids_it_cannot_compare():
    """A connection whose uid is no int64 (an earlier batch gave objects) is left to Python."""
    frames = conversation(b"hello", b"world", mss=2)
    r = TcpReassembly()
    out, _ = run_capture(frames[:4], per_batch=4, flush=False, reassembly=r, uids=["C1"] * 4)
    batch = batch_of(frames[4:], first_number=5)
    out += r.feed(batch, dissect(batch), uid_per_row=np.full(len(frames) - 4, 7, dtype=np.int64))
    out += r.flush()
    assert [k.uid for k in dict.fromkeys(d.key for d in out)] == ["C1", 7]


# -- the corpus ---------------------------------------------------------------------------------

def _corpus_files():
    files = []
    for sub in ("zeek", "malformed"):
        folder = CORPUS / sub
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return files


@pytest.mark.parametrize("path", _corpus_files() or [pytest.param(
    None, marks=pytest.mark.skip(reason=f"test corpus not found at {CORPUS} (set NETSIFT_CORPUS)"))],
    ids=lambda p: p.name if p else "none")
def test_corpus_reassembles_without_exception(path):
    fragments, tcp = FragmentReassembler(), TcpReassembly()
    delivered = 0
    try:
        reader = open_capture(path)
    except CaptureError as error:       # unreadable captures are the readers' business
        pytest.skip(f"unreadable: {error}")
    with reader:
        for batch in reader.batches(512):
            fields = dissect(batch)
            datagrams, numbers = fragments.feed(batch, fields)
            more = []
            while len(datagrams) and len(more) < 4:      # fragments inside reassembled tunnels
                inner = dissect(datagrams)
                more.append((datagrams, inner, None, numbers))
                datagrams, numbers = fragments.feed(datagrams, inner, frame_numbers=numbers)
            out = tcp.feed(batch, fields, more=more)
            delivered += sum(len(d.chunk.data) for d in out)
    out = tcp.flush()
    fragments.flush()
    for d in out:
        assert isinstance(d.chunk, Chunk)
    for weird in tcp.pop_weirds() + fragments.pop_weirds():
        assert isinstance(weird.frame, int) and weird.frame >= 1


def test_corpus_fragmented_captures_reassemble():
    names = ["ipv4-fragmented-1.pcap", "ipv4-fragmented-4.pcap", "ipv6-fragmented-dns.pcap",
             "tunnels-gtp-gtp1_gn_normal_incl_fragmentation.pcap"]
    if not (CORPUS / "zeek").is_dir():
        pytest.skip(f"test corpus not found at {CORPUS}")
    for name in names:
        path = CORPUS / "zeek" / name
        if not path.exists():
            continue
        fragments = FragmentReassembler()
        total = 0
        with open_capture(path) as reader:
            for batch in reader.batches():
                datagrams, _ = fragments.feed(batch, dissect(batch))
                total += len(datagrams)
                if len(datagrams):
                    inner = dissect(datagrams)
                    assert not inner.values["_ip.fragment"][inner.valid["_ip.fragment"]].any()
        assert total >= 1, name
