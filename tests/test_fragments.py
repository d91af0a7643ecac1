"""The compiled pass of IP fragment reassembly (analyzer.reassembly.fragments) against the Python one."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

import analyzer.reassembly.ip as ip
from analyzer.reassembly import FragmentReassembler, fragments
from captures.batch import PacketBatch
from dissectors import dissect

NS = 1_000_000_000
ETHER = bytes.fromhex("020000000002" "020000000001")
SOURCES = (bytes([192, 0, 2, 1]), bytes([203, 0, 113, 200]))
DESTINATION = bytes([198, 51, 100, 2])


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def v4(ident, offset, data, more, proto=17, src=SOURCES[0], df=False, options=b"", evil=False):
    """An Ethernet frame holding one IPv4 fragment (RFC 791 §3.1), built by hand."""
    hl = 20 + len(options)
    flags = (0x8000 if evil else 0) | (0x4000 if df else 0) | (0x2000 if more else 0) | (offset // 8)
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(data), ident, flags, 64, proto, 0,
                         src, DESTINATION) + options
    header = header[:10] + _checksum(header).to_bytes(2, "big") + header[12:]
    return ETHER + b"\x08\x00" + header + data


def v6(ident, offset, data, more, src=SOURCES[0]):
    """An Ethernet frame holding one IPv6 fragment (RFC 8200 §4.5), built by hand."""
    address = b"\x20\x01\x0d\xb8" + bytes(11) + src[-1:]
    header = struct.pack("!IHBB16s16s", 6 << 28, 8 + len(data), 44, 64, address, b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02")
    return ETHER + b"\x86\xdd" + header + struct.pack("!BBHI", 17, 0, (offset // 8) << 3 | int(more), ident) + data


FAULTS = ("missing", "duplicate", "overlap", "longer end", "empty", "shifted", "early end", "DF",
          "header length", "tiny", "IPv6", "truncated", "late", "reused ident")


def traffic(rng: random.Random, datagrams: int = 12, fault: str | None = None):
    """Frames, times and wire lengths of fragment traffic: clean IPv4 datagrams, interleaved and in
    any order, and datagrams with one or two of :data:`FAULTS` (or every other one with ``fault``)."""
    events = []
    for count in range(datagrams):
        if fault is not None:
            faults = {fault} if count % 2 else set()
        else:
            faults = set(rng.sample(FAULTS, rng.choice((1, 1, 2)))) if rng.random() < 0.4 else set()
        ident = rng.choice((1, 2)) if "reused ident" in faults else rng.randrange(65536)
        src = rng.choice(SOURCES)
        proto = rng.choice((17, 17, 6))
        options = b"\x01\x01\x01\x00" if rng.random() < 0.1 else b""
        evil = rng.random() < 0.1                                      # RFC 3514: kept, as the DF bit
        payload = rng.randbytes(rng.choice((8, 40, 100, 600, 1400, 3000)))
        step = rng.choice((8, 16) if "tiny" in faults else (48, 208, 208, 600, 1480))
        if step < 48:
            payload = payload[:160]                                    # not too many fragments
        pieces = [[offset, payload[offset:offset + step], offset + step < len(payload)]
                  for offset in range(0, len(payload), step)]
        if "missing" in faults and len(pieces) > 1:
            pieces.pop(rng.randrange(len(pieces)))
        if "duplicate" in faults:
            pieces.append(list(rng.choice(pieces)))
        if "overlap" in faults:                                        # other bytes
            offset, data, more = rng.choice(pieces)
            pieces.append([max(0, offset - 8), rng.randbytes(len(data)), more])
        if "longer end" in faults:
            pieces.append([len(payload) + 8, b"x" * 8, False])
        if "empty" in faults:
            pieces.append([rng.choice((0, 8, len(payload))), b"", rng.random() < 0.5])
        if "shifted" in faults and len(pieces) > 1:                   # a hole and an overlap, same bytes count
            pieces[-1][0] = max(0, pieces[-1][0] - 8)
        if "early end" in faults and len(pieces) > 2:                # not at offset 0: a whole datagram
            pieces[-2][2] = False
        if rng.random() < 0.5:
            rng.shuffle(pieces)
        start = rng.randrange(0, 120) * NS // 2
        gap = rng.choice((NS // 1000, NS // 10))
        for number, (offset, data, more) in enumerate(pieces):
            if "IPv6" in faults:
                frame = v6(ident, offset, data, more, src=src)
            else:
                other = "header length" in faults and rng.random() < 0.3
                frame = v4(ident, offset, data, more, proto=proto, src=src, evil=evil,
                           options=(b"" if options else b"\x01" * 4) if other else options,
                           df="DF" in faults and rng.random() < 0.3)
            wire = len(frame)
            if "truncated" in faults and rng.random() < 0.3:
                frame = frame[:rng.randrange(30, len(frame))]           # incompletely captured
            late = "late" in faults and rng.random() < 0.3
            events.append((start + number * gap + rng.randrange(gap) + (61 * NS if late else 0), frame, wire))
    events.sort(key=lambda event: event[0])
    if rng.random() < 0.2:                                             # times out of order
        for _ in range(len(events) // 4):
            i, j = rng.randrange(len(events)), rng.randrange(len(events))
            events[i], events[j] = events[j], events[i]
    return [e[1] for e in events], [e[0] for e in events], [e[2] for e in events]


def run(frames, times, wires, per_batch, compiled, monkeypatch, numbered=False, **options):
    """Everything the reassembler says, batch by batch, with datagrams fed back in as a tunnel's would."""
    monkeypatch.setattr(ip, "COMPILED", compiled)
    reassembler = FragmentReassembler(**options)
    said = []

    def feed(batch, numbers, depth):
        kwargs = {} if numbers is None else {"frame_numbers": numbers}
        out, done = reassembler.feed(batch, dissect(batch), **kwargs)
        said.append((out.data.tobytes(), out.offset.tolist(), out.cap_len.tolist(), out.wire_len.tolist(),
                     out.ts_ns.tolist(), out.link_type.tolist(), out.interface_id.tolist(), out.first_number,
                     out.data.flags.writeable, done.tolist(), done.dtype.str, reassembler.pending,
                     sorted(reassembler.stats.items()), reassembler.pop_weirds()))
        if len(out) and depth < 2:
            feed(out, done, depth + 1)

    for at in range(0, len(frames), per_batch):
        batch = PacketBatch.from_frames(frames[at:at + per_batch], ts_ns=times[at:at + per_batch],
                                        wire_len=wires[at:at + per_batch], first_number=at + 1)
        feed(batch, np.arange(len(batch), dtype=np.int64) * 2 + 5 * at + 3 if numbered else None, 0)
    said.append(reassembler.flush())
    return said


OPTIONS = ({}, {"timeout_ns": 3 * NS}, {"timeout_ns": 0}, {"max_bytes": 6000},
           {"ipv6_overlaps": "rfc5722", "timeout_ns": 20 * NS}, {"timeout_ns": -1})


@pytest.mark.parametrize("seed", range(100))
def test_compiled_pass_gives_what_python_gives(seed, monkeypatch):
    rng = random.Random(seed)
    frames, times, wires = traffic(rng, datagrams=rng.choice((1, 4, 12, 30)))
    per_batch = rng.choice((1, 7, 40, 40, 10_000, 10_000))
    options = OPTIONS[seed % len(OPTIONS)]
    numbered = seed % 3 == 0
    python = run(frames, times, wires, per_batch, False, monkeypatch, numbered, **options)
    compiled = run(frames, times, wires, per_batch, True, monkeypatch, numbered, **options)
    assert compiled == python


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_gives_what_python_gives(fault, monkeypatch):
    for seed in range(6):
        rng = random.Random(seed)
        frames, times, wires = traffic(rng, datagrams=10, fault=fault)
        options = OPTIONS[seed % len(OPTIONS)]
        python = run(frames, times, wires, 10_000, False, monkeypatch, **options)
        assert run(frames, times, wires, 10_000, True, monkeypatch, **options) == python


def test_compiled_pass_takes_the_common_case(monkeypatch):
    """Clean IPv4 datagrams, in and out of order, interleaved, are all built without Python's _add."""
    rng = random.Random(5)
    frames, expected = [], []
    for ident in range(20):
        payload = rng.randbytes(1000 + ident)
        parts = [v4(ident, offset, payload[offset:offset + 208], offset + 208 < len(payload))
                 for offset in range(0, len(payload), 208)]
        if ident % 2:
            parts.reverse()
        frames += parts
        expected.append(payload)
    taken = []
    plan = fragments.plan
    monkeypatch.setattr(fragments, "plan", lambda *a: taken.append(plan(*a)) or taken[-1])
    monkeypatch.setattr(FragmentReassembler, "_add", lambda *a: pytest.fail("left to Python"))
    batch = PacketBatch.from_frames(frames)
    out, done = FragmentReassembler().feed(batch, dissect(batch))
    assert taken and taken[0].taken.all() and len(taken[0].position) == 20
    assert [out.frame(i)[20:] for i in range(len(out))] == expected
    assert done.tolist() == [i * 5 + 5 for i in range(20)]
    # The header is the offset-0 fragment's with MF and offset cleared, length and checksum redone.
    first = out.frame(0)
    assert struct.unpack("!H", first[2:4])[0] == len(first) and first[6:8] == b"\0\0"
    assert _checksum(first[:20]) == 0


def test_key_held_from_an_earlier_batch_is_left_to_python(monkeypatch):
    payload = bytes(range(256)) * 4
    frames = [v4(9, offset, payload[offset:offset + 256], offset + 256 < len(payload))
              for offset in range(0, len(payload), 256)]
    reassembler = FragmentReassembler()
    first = PacketBatch.from_frames(frames[:1])
    reassembler.feed(first, dissect(first))
    assert reassembler.pending == 1
    calls = []
    add = FragmentReassembler._add
    monkeypatch.setattr(FragmentReassembler, "_add", lambda self, *a: calls.append(1) or add(self, *a))
    rest = PacketBatch.from_frames(frames[1:], first_number=2)
    out, done = reassembler.feed(rest, dissect(rest))
    assert len(calls) == 3 and done.tolist() == [4] and out.frame(0)[20:] == payload
    assert reassembler.pending == 0


@pytest.mark.parametrize("times", [
    [0, NS, 200 * NS, 3 * NS],             # the datagram's last fragment comes after the timeout
    [10 * NS, 5 * NS, 11 * NS, 12 * NS],   # a fragment of another datagram arrives earlier than its first
])
def test_timeout_edges_match_python(times, monkeypatch):
    payload = bytes(range(200)) * 4
    frames = [v4(1, 0, payload[:400], True), v4(2, 0, payload[:64], True),
              v4(1, 400, payload[400:], False), v4(2, 64, payload[64:128], False)]
    wires = [len(f) for f in frames]
    for per_batch in (1, 2, 4):
        assert (run(frames, times, wires, per_batch, True, monkeypatch)
                == run(frames, times, wires, per_batch, False, monkeypatch))


def test_memory_cap_leaves_the_batch_to_python(monkeypatch):
    payload = bytes(3000)
    frames = [v4(ident, offset, payload[offset:offset + 1000], offset + 1000 < len(payload))
              for ident in range(3) for offset in range(0, len(payload), 1000)]
    times = list(range(len(frames)))
    called = []
    monkeypatch.setattr(fragments, "plan", lambda *a: called.append(1))
    monkeypatch.setattr(ip, "COMPILED", True)
    reassembler = FragmentReassembler(max_bytes=4000)
    batch = PacketBatch.from_frames(frames, ts_ns=times)
    out, _ = reassembler.feed(batch, dissect(batch))
    assert not called and len(out) == 3


def test_expiry_at_rows_the_compiled_pass_takes(monkeypatch):
    """A held datagram times out at the time of rows the compiled pass takes (RFC 8200 §4.5's timeout)."""
    old = v4(7, 0, bytes(64), True)
    clean = [v4(8, 0, bytes(64), True), v4(8, 64, bytes(8), False)]
    again = v4(7, 64, bytes(8), False)           # would complete the old datagram, were it not expired
    cases = [
        ([old] + clean, [0, 70 * NS, 70 * NS]),                           # expiry after the batch's last row
        ([clean[0], old, clean[1]], [100 * NS, 10 * NS, 100 * NS]),       # the taken datagram would hold it
        ([old] + clean + [again], [0, 70 * NS, 70 * NS, 50 * NS]),        # at a later row, itself older
        ([old] + clean + [again], [0, 70 * NS, 70 * NS, 80 * NS]),
    ]
    for frames, times in cases:
        wires = [len(f) for f in frames]
        for per_batch in (1, 3, 4):
            python = run(frames, times, wires, per_batch, False, monkeypatch)
            assert run(frames, times, wires, per_batch, True, monkeypatch) == python


def test_largest_datagrams_match_python(monkeypatch):
    """Zeek's 64,000-byte bound (excessively_large_fragment), just under and just over it."""
    for size in (64000, 64008):
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        frames = [v4(3, offset, payload[offset:offset + 1480], offset + 1480 < size, evil=True)
                  for offset in range(0, size, 1480)]
        wires = [len(f) for f in frames]
        times = list(range(len(frames)))
        python = run(frames, times, wires, 100, False, monkeypatch)
        assert run(frames, times, wires, 100, True, monkeypatch) == python
