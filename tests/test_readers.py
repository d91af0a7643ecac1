"""Capture readers and writers: formats, damage, streaming, corpus cross-checks."""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import struct
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captures import (CaptureError, PacketBatch, PcapWriter, open_capture, write_pcap,
                      write_pcapng)

CORPUS = Path(os.environ.get("NETSIFT_CORPUS")
              or Path(__file__).resolve().parents[2] / "shared" / "corpus")
NS = 1_000_000_000


# -- helpers ------------------------------------------------------------------

def read_all(path, max_packets=65536, **kw):
    """``(rows, reader)``: one (bytes, ts_ns, wire, link, iface, number) per frame."""
    with open_capture(path, **kw) as r:
        batches = list(r.batches(max_packets))
    rows = []
    for b in batches:      # read after all batches exist: earlier data must still be valid
        assert b.data.dtype == np.uint8
        for col in (b.offset, b.cap_len, b.wire_len, b.ts_ns):
            assert col.dtype == np.int64 and len(col) == len(b)
        assert b.link_type.dtype == np.int32 and b.interface_id.dtype == np.int32
        assert (b.end <= len(b.data)).all()
        for i in range(len(b)):
            rows.append((b.frame(i), int(b.ts_ns[i]), int(b.wire_len[i]), int(b.link_type[i]),
                         int(b.interface_id[i]), b.first_number + i))
    assert [row[5] for row in rows] == list(range(1, len(rows) + 1))
    assert r.packets == len(rows)
    return rows, r


def stops(reader):
    """The warnings that end reading early."""
    return [w for w in reader.warnings if w.startswith(("file truncated", "damaged record"))]


def pcap_bytes(records, big=False, nano=False, snaplen=65535, lt_field=1):
    """Hand-built classic pcap: records are (sec, frac, data, wire) or (sec, frac, data, wire, caplen)."""
    e = ">" if big else "<"
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0,
                       snaplen, lt_field)]
    ends = [len(out[0])]
    for rec in records:
        sec, frac, data, wire = rec[:4]
        caplen = rec[4] if len(rec) > 4 else len(data)
        out.append(struct.pack(e + "IIII", sec, frac, caplen, wire) + data)
        ends.append(ends[-1] + len(out[-1]))
    return b"".join(out), ends


def _pad(b):
    return b + bytes(-len(b) % 4)


def block(e, btype, body):
    body = _pad(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def opts(e, *pairs):
    return b"".join(struct.pack(e + "HH", c, len(v)) + _pad(v) for c, v in pairs) + \
        struct.pack(e + "HH", 0, 0)


def shb(e, major=1):
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, major, 0, -1)
                 + opts(e, (4, b"netsift tests")))


def idb(e, link, snaplen=0, *options):
    return block(e, 1, struct.pack(e + "HHI", link, 0, snaplen) + (opts(e, *options) if options else b""))


def epb(e, iface, units, data, wire=None, caplen=None):
    caplen = len(data) if caplen is None else caplen
    return block(e, 6, struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, caplen,
                                   len(data) if wire is None else wire) + _pad(data)
                 + opts(e, (1, b"comment")))


def pb(e, iface, units, data, wire):
    return block(e, 2, struct.pack(e + "HHIIII", iface, 7, units >> 32, units & 0xFFFFFFFF,
                                   len(data), wire) + _pad(data))


def spb(e, wire, data):
    return block(e, 3, struct.pack(e + "I", wire) + data)


def multi_section_pcapng():
    """Two sections (LE then BE), three interfaces, every packet block type, skipped blocks.

    Returns ``(bytes, block_ends, packet_ends, expected_rows)``.
    """
    L, B = "<", ">"
    t0_us = 1_700_000_000_123_456
    t1_ns = 1_700_000_001_000_000_001
    t3_ns = 1_700_000_001_500_000_000
    t4_units = (1_700_000_002 << 10) + 512           # 2^-10 s units: .5 s
    blocks = [
        (shb(L), None),
        (idb(L, 1, 0, (2, b"eth0\0junk"), (14, struct.pack("<q", 100))), None),
        (idb(L, 101, 65535, (9, b"\x09")), None),
        (block(L, 4, b"\x01\x00\x08\x00\xc0\x00\x02\x01host\x00\x00\x00\x00"), None),   # NRB
        (epb(L, 0, t0_us, b"A" * 14, wire=60),
         (b"A" * 14, t0_us * 1000 + 100 * NS, 60, 1, 0)),
        (epb(L, 1, t1_ns, b"B" * 20), (b"B" * 20, t1_ns, 20, 101, 1)),
        (spb(L, 10, b"C" * 10), (b"C" * 10, t1_ns, 10, 1, 0)),      # SPB: previous timestamp
        (block(L, 5, struct.pack("<III", 1, 0, 0)), None),            # ISB
        (block(L, 0x00000BAD, struct.pack("<I", 32473) + b"custom"), None),
        (pb(L, 1, t3_ns, b"", 1514), (b"", t3_ns, 1514, 101, 1)),   # caplen 0 is a row
        (block(L, 0x80001234, b"local use"), None),
        (shb(B), None),
        (idb(B, 113, 64, (9, b"\x8a")), None),
        (epb(B, 0, t4_units, b"D" * 16), (b"D" * 16, 1_700_000_002_500_000_000, 16, 113, 2)),
        (spb(B, 100, b"E" * 100), (b"E" * 64, 1_700_000_002_500_000_000, 100, 113, 2)),
        (epb(B, 0, t4_units + 1, b"FFF", wire=2),                      # caplen > wire: kept
         (b"FFF", 1_700_000_002_500_976_562, 2, 113, 2)),
    ]
    data, block_ends, packet_ends, rows = b"", [], [], []
    for raw, row in blocks:
        data += raw
        block_ends.append(len(data))
        if row is not None:
            packet_ends.append(len(data))
            rows.append(row)
    return data, block_ends, packet_ends, rows


def small_pcap():
    records = [(1_600_000_000 + i, 1000 * i, bytes([i]) * (i * 7 % 23), 64) for i in range(6)]
    return pcap_bytes(records)


def corpus_dir():
    if not CORPUS.is_dir():
        pytest.skip(f"test corpus not found at {CORPUS} (set NETSIFT_CORPUS)")
    return CORPUS


# -- writer round trips -------------------------------------------------------

FRAMES = [b"", b"\x01", bytes(range(60)), bytes(300), b"\xff" * 1500]
TS = [0, 1, 999_999_999, 1_700_000_000_123_456_789, 4_294_967_295 * NS + 999_999_999]


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_writer_round_trip(tmp_path, writer, nanosecond, big_endian):
    path = tmp_path / "x.cap"
    assert writer(path, FRAMES, ts_ns=TS, link_type=113, snaplen=1000, nanosecond=nanosecond,
                  big_endian=big_endian) == len(FRAMES)
    rows, r = read_all(path)
    assert r.warnings == [] and r.truncated_at is None
    assert r.info.file_format == ("pcap" if writer is write_pcap else "pcapng")
    assert r.info.byte_order == ("big" if big_endian else "little")
    assert r.info.link_types == [113] and r.info.interfaces[0].snaplen == 1000
    unit = 1 if nanosecond else 1000
    assert [x[0] for x in rows] == [f[:1000] for f in FRAMES]
    assert [x[1] for x in rows] == [t // unit * unit for t in TS]
    assert [x[2] for x in rows] == [len(f) for f in FRAMES]
    expected = "ns" if nanosecond else "us"
    assert r.info.time_precision == (expected if writer is write_pcap else (expected,))


def test_pcap_writer_incremental_and_batches(tmp_path):
    path = tmp_path / "w.pcap"
    with PcapWriter(path, link_type=1, snaplen=4) as w:
        w.write(b"abcdef", 5 * NS, wire_len=100)
        w.write_batch(PacketBatch.from_frames([b"xy", b"123456"], ts_ns=[6 * NS, 7 * NS]))
        with pytest.raises(ValueError):
            w.write(b"neg", -1)
        with pytest.raises(ValueError):
            w.write(b"lt", 0, link_type=105)
    rows, r = read_all(path)
    assert [(x[0], x[1], x[2]) for x in rows] == [
        (b"abcd", 5 * NS, 100), (b"xy", 6 * NS, 2), (b"1234", 7 * NS, 6)]


def test_pcapng_writer_one_idb_per_link_type_and_fileobj(tmp_path):
    buf = io.BytesIO()
    batch = PacketBatch.from_frames([b"a", b"bb", b"ccc"], link_type=[1, 113, 1])
    with PcapWriter(buf, link_type=1, pcapng=True, nanosecond=True) as w:
        w.write_batch(batch)
        w.write(b"dddd", 9, link_type=101)
    assert not buf.closed
    (tmp_path / "w.pcapng").write_bytes(buf.getvalue())
    rows, r = read_all(tmp_path / "w.pcapng")
    assert [(x[0], x[3], x[4]) for x in rows] == [
        (b"a", 1, 0), (b"bb", 113, 1), (b"ccc", 1, 0), (b"dddd", 101, 2)]
    assert r.info.link_types == [1, 101, 113]
    assert r.info.time_precision == ("ns", "ns", "ns")


def test_write_pcap_gz_and_batch_argument(tmp_path):
    path = tmp_path / "x.pcap.gz"
    batch = PacketBatch.from_frames([b"one", b"two"], ts_ns=[NS, 2 * NS], wire_len=[10, 20])
    write_pcap(path, batch)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    rows, r = read_all(path)
    assert r.info.compressed and r.warnings == []
    assert [(x[0], x[1], x[2]) for x in rows] == [(b"one", NS, 10), (b"two", 2 * NS, 20)]


# -- classic pcap -------------------------------------------------------------

@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_hand_built_pcap(tmp_path, big, nano):
    records = [(4_291_747_200, 999_999, b"\x00\x01", 2),   # seconds past 2038: unsigned
               (1, 1_000_000, b"", 0),                     # fraction >= 1 s kept, caplen 0
               (7, 5, b"xyz", 2)]                          # caplen > wire kept
    raw, _ = pcap_bytes(records, big=big, nano=nano, snaplen=1)
    (tmp_path / "h.pcap").write_bytes(raw)
    rows, r = read_all(tmp_path / "h.pcap")
    unit = 1 if nano else 1000
    assert [(x[0], x[1], x[2]) for x in rows] == [
        (b"\x00\x01", 4_291_747_200 * NS + 999_999 * unit, 2),
        (b"", NS + 1_000_000 * unit, 0),
        (b"xyz", 7 * NS + 5 * unit, 2)]
    assert r.warnings == []
    assert r.info.snaplen == 1 and r.info.time_precision == ("ns" if nano else "us")


def test_pcap_linktype_field_fcs_bits(tmp_path):
    # draft §4: low 16 bits link type; top 4 bits FCS length in 16-bit words if P (bit 5) is set.
    for field, link, fcs in [(0x30000001, 1, None), (0x24000001, 1, 4), (0x0400_0069, 105, 0)]:
        raw, _ = pcap_bytes([(0, 0, b"x", 1)], lt_field=field)
        (tmp_path / "f.pcap").write_bytes(raw)
        rows, r = read_all(tmp_path / "f.pcap")
        assert r.info.link_types == [link] and rows[0][3] == link
        assert r.info.interfaces[0].fcs_len == fcs and r.warnings == []
    raw, _ = pcap_bytes([(0, 0, b"x", 1)], lt_field=0x00010001)     # Reserved3 bit set
    (tmp_path / "f.pcap").write_bytes(raw)
    rows, r = read_all(tmp_path / "f.pcap")
    assert len(rows) == 1 and r.info.link_types == [1]
    assert len(r.warnings) == 1 and "reserved bits" in r.warnings[0] and not stops(r)


def test_pcap_absurd_caplen_is_damage(tmp_path):
    raw, ends = pcap_bytes([(0, 0, b"ok", 2), (0, 0, b"", 0, 0x40001), (0, 0, b"z", 1)])
    (tmp_path / "d.pcap").write_bytes(raw)
    rows, r = read_all(tmp_path / "d.pcap")
    assert [x[0] for x in rows] == [b"ok"]
    assert r.truncated_at == ends[1]
    assert r.warnings == [f"damaged record at byte offset {ends[1]}: captured length 262145 "
                          "exceeds the limit of 262144 bytes"]


def test_pcap_big_snaplen_raises_limit(tmp_path):
    big = bytes(300_000)
    raw, _ = pcap_bytes([(0, 0, big, len(big))], snaplen=400_000)
    (tmp_path / "s.pcap").write_bytes(raw)
    rows, r = read_all(tmp_path / "s.pcap", chunk_bytes=4096)     # record > chunk: buffer grows
    assert rows[0][0] == big and r.warnings == []


# -- pcapng -------------------------------------------------------------------

def test_pcapng_sections_interfaces_and_block_types(tmp_path):
    raw, _, _, expected = multi_section_pcapng()
    (tmp_path / "m.pcapng").write_bytes(raw)
    with open_capture(tmp_path / "m.pcapng") as r:
        # IDBs before the first packet are known at open time.
        assert [i.link_type for i in r.info.interfaces] == [1, 101]
    rows, r = read_all(tmp_path / "m.pcapng")
    assert r.warnings == []
    assert [x[:5] for x in rows] == expected
    info = r.info
    assert info.file_format == "pcapng" and info.snaplen is None and info.version == (1, 0)
    assert info.link_types == [1, 101, 113]
    assert info.time_precision == ("us", "ns", "2^-10")
    assert [(i.section, i.name, i.ts_offset_s, i.snaplen) for i in info.interfaces] == [
        (0, "eth0", 100, 0), (0, None, 0, 65535), (1, None, 0, 64)]
    assert info.interfaces[2].ts_resolution_ns == 1e9 / 1024


@pytest.mark.parametrize("tsresol,units,expected", [
    (6, 1_234_567, 1_234_567_000),
    (7, 17_000_000_123, 1_700_000_012_300),
    (9, 2**63 - 1, 2**63 - 1),
    (12, 1_000_000_000_999, 1_000_000_000),
    (0x80 | 10, 1025, NS + 976_562),
    (0x80 | 30, 3 * 2**30 + 1, 3 * NS + 0),
    (0x80 | 40, 2**40 + 2**39, NS + NS // 2),
    (0, 5, 5 * NS),
])
def test_pcapng_timestamp_resolution_exact(tmp_path, tsresol, units, expected):
    e = "<"
    raw = shb(e) + idb(e, 1, 0, (9, bytes([tsresol])), (14, struct.pack("<q", -1))) + \
        epb(e, 0, units, b"x")
    (tmp_path / "t.pcapng").write_bytes(raw)
    rows, r = read_all(tmp_path / "t.pcapng")
    assert rows[0][1] == expected - NS and r.warnings == []


@pytest.mark.parametrize("case", ["short", "unaligned", "trailer", "iface", "caplen", "spb"])
def test_pcapng_damage_stops_with_one_warning(tmp_path, case):
    e = "<"
    head = shb(e) + idb(e, 1) + epb(e, 0, 1, b"good")
    bad = {
        "short": struct.pack("<II", 6, 8) + b"\0" * 8,
        "unaligned": struct.pack("<II", 6, 34) + b"\0" * 30,
        "trailer": block(e, 6, struct.pack("<IIIII", 0, 0, 0, 0, 0))[:-4] + struct.pack("<I", 99),
        "iface": epb(e, 3, 1, b"x"),
        "caplen": block(e, 6, struct.pack("<IIIII", 0, 0, 0, 500, 500) + b"abcd"),
        "spb": spb(e, 4, b"abcd"),
    }[case]
    good = 1
    if case == "spb":       # a section without IDBs has no interface 0 for the SPB
        head, good = shb(e), 0
    raw = head + bad + epb(e, 0, 2, b"after")
    (tmp_path / "d.pcapng").write_bytes(raw)
    rows, r = read_all(tmp_path / "d.pcapng")
    assert len(rows) == good
    assert r.truncated_at == len(head)
    assert len(r.warnings) == 1
    assert r.warnings[0].startswith(f"damaged record at byte offset {len(head)}: ")


def test_pcapng_unsupported_section_version_is_skipped(tmp_path):
    e = "<"
    raw = shb(e, major=2) + idb(e, 1) + epb(e, 0, 1, b"skipped") + shb(e) + idb(e, 105) + \
        epb(e, 0, 1, b"read")
    (tmp_path / "v.pcapng").write_bytes(raw)
    rows, r = read_all(tmp_path / "v.pcapng")
    assert [x[0] for x in rows] == [b"read"] and rows[0][3] == 105
    assert len(r.warnings) == 1 and "unsupported pcapng version 2.0" in r.warnings[0]
    assert not stops(r)


def test_pcapng_big_endian_first_section(tmp_path):
    e = ">"
    raw = shb(e) + idb(e, 1, 0, (9, b"\x03")) + epb(e, 0, 1500, b"xyz")
    (tmp_path / "b.pcapng").write_bytes(raw)
    rows, r = read_all(tmp_path / "b.pcapng")
    assert r.info.byte_order == "big" and rows[0][:2] == (b"xyz", 1_500_000_000)
    assert r.info.time_precision == ("ms",)


# -- open errors ----------------------------------------------------------------

def test_open_errors(tmp_path):
    cases = {
        tmp_path / "missing.pcap": "no such file",
        tmp_path: "is a directory",
    }
    (tmp_path / "empty.pcap").write_bytes(b"")
    cases[tmp_path / "empty.pcap"] = "empty file"
    (tmp_path / "three").write_bytes(b"\xd4\xc3\xb2")
    cases[tmp_path / "three"] = "file too short to be a capture (3 bytes)"
    (tmp_path / "elf").write_bytes(b"\x7fELF" + bytes(100))
    cases[tmp_path / "elf"] = "not a pcap or pcapng capture (magic 0x7f454c46)"
    (tmp_path / "short.pcap").write_bytes(small_pcap()[0][:20])
    cases[tmp_path / "short.pcap"] = "corrupt pcap file header: file ends after 20 of 24 bytes"
    (tmp_path / "bom.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(24))
    cases[tmp_path / "bom.pcapng"] = ("corrupt pcapng section header block: bad byte-order "
                                      "magic 0x00000000 in section header block")
    (tmp_path / "shb.pcapng").write_bytes(shb("<")[:20])
    cases[tmp_path / "shb.pcapng"] = ("corrupt pcapng section header block: file ends inside a "
                                      f"section header block (20 of {len(shb('<'))} bytes present)")
    (tmp_path / "gz").write_bytes(gzip.compress(b"hello world"))
    cases[tmp_path / "gz"] = "not a pcap or pcapng capture (magic 0x68656c6c)"
    (tmp_path / "badgz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 20)
    for path, reason in cases.items():
        with pytest.raises(CaptureError) as info:
            open_capture(path)
        assert info.value.path == str(path)
        assert info.value.reason == reason
        assert str(info.value) == f"{path}: {reason}"
    with pytest.raises(CaptureError) as info:
        open_capture(tmp_path / "badgz")
    assert info.value.reason.startswith("corrupt or truncated gzip stream (")
    assert "\n" not in str(info.value)
    err = pickle.loads(pickle.dumps(CaptureError("a.pcap", "bad\nthing")))
    assert str(err) == "a.pcap: bad thing"


# -- gzip ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_transparent_and_truncated(tmp_path, kind):
    raw = small_pcap()[0] if kind == "pcap" else multi_section_pcapng()[0]
    (tmp_path / "plain").write_bytes(raw)
    (tmp_path / "capture.bin").write_bytes(gzip.compress(raw))    # name says nothing
    plain, _ = read_all(tmp_path / "plain")
    rows, r = read_all(tmp_path / "capture.bin")
    assert rows == plain and r.info.compressed and r.info.file_format == kind
    packed = gzip.compress(raw)
    for cut in range(len(packed) - 8, 20, -7):
        (tmp_path / "cut.gz").write_bytes(packed[:cut])
        try:
            rows, r = read_all(tmp_path / "cut.gz")
        except CaptureError:
            continue        # too little survived for the header
        assert rows == plain[:len(rows)]
        assert len(r.warnings) == 1 and "(decompressed)" in r.warnings[0]
        assert r.truncated_at is not None


def test_gzip_corrupt_never_raises(tmp_path):
    raw = b"".join([small_pcap()[0]] + [small_pcap()[0][24:]] * 50)
    packed = bytearray(gzip.compress(raw))
    for i in range(12, len(packed), max(1, len(packed) // 40)):
        bad = bytearray(packed)
        bad[i] ^= 0x55
        (tmp_path / "bad.gz").write_bytes(bytes(bad))
        try:
            rows, r = read_all(tmp_path / "bad.gz")
        except CaptureError:
            continue
        assert len(stops(r)) <= 1


# -- truncation at every byte ---------------------------------------------------

def test_every_prefix_of_pcap(tmp_path):
    raw, ends = small_pcap()
    (tmp_path / "full.pcap").write_bytes(raw)
    full, _ = read_all(tmp_path / "full.pcap")
    for cut in range(len(raw) + 1):
        path = tmp_path / "p.pcap"
        path.write_bytes(raw[:cut])
        if cut < 24:
            with pytest.raises(CaptureError):
                open_capture(path)
            continue
        rows, r = read_all(path)
        complete = sum(1 for end in ends[1:] if end <= cut)
        assert rows == full[:complete]
        if cut in ends:
            assert r.warnings == [] and r.truncated_at is None
        else:
            assert len(r.warnings) == 1 and r.warnings[0].startswith(
                f"file truncated at byte offset {ends[complete]}: file ends inside a ")
            assert r.truncated_at == ends[complete]


def test_every_prefix_of_pcapng(tmp_path):
    raw, block_ends, packet_ends, expected = multi_section_pcapng()
    first_shb = block_ends[0]
    for cut in range(len(raw) + 1):
        path = tmp_path / "p.pcapng"
        path.write_bytes(raw[:cut])
        if cut < first_shb:
            with pytest.raises(CaptureError):
                open_capture(path)
            continue
        rows, r = read_all(path)
        assert [x[:5] for x in rows] == expected[:sum(1 for e in packet_ends if e <= cut)]
        if cut in block_ends:
            assert r.warnings == []
        else:
            last = max(e for e in block_ends if e <= cut)
            assert len(r.warnings) == 1 and r.warnings[0].startswith(
                f"file truncated at byte offset {last}: file ends inside a ")
            assert r.truncated_at == last


# -- random input --------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tail=st.binary(max_size=600), kind=st.sampled_from(["pcap", "pcapng", "pcapng-be"]))
def test_random_bytes_after_valid_header_never_raise(tmp_path_factory, tail, kind):
    if kind == "pcap":
        head = small_pcap()[0][:24]
    else:
        e = ">" if kind == "pcapng-be" else "<"
        head = shb(e) + idb(e, 1, 0, (9, b"\x09"))
    path = tmp_path_factory.mktemp("rand") / "r.cap"
    path.write_bytes(head + tail)
    for max_packets in (1, 65536):
        with open_capture(path, chunk_bytes=256) as r:
            n = sum(len(b) for b in r.batches(max_packets))
        assert len(stops(r)) <= 1
        assert n == r.packets


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=200))
def test_random_files_raise_only_capture_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("blob") / "b.cap"
    for data in (blob, b"\x0a\x0d\x0d\x0a" + blob, b"\xd4\xc3\xb2\xa1" + blob, gzip.compress(blob)):
        path.write_bytes(data)
        try:
            with open_capture(path) as r:
                for _ in r.batches(3):
                    pass
        except CaptureError:
            pass


# -- batching and streaming ------------------------------------------------------

@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_batch_boundaries_do_not_change_the_result(tmp_path, kind):
    frames = [bytes([i % 256]) * (i % 97) for i in range(1000)]
    ts = [1_600_000_000 * NS + i * 1_001_000 for i in range(1000)]
    writer = write_pcap if kind == "pcap" else write_pcapng
    writer(tmp_path / "b", frames, ts_ns=ts)
    reference, _ = read_all(tmp_path / "b")
    assert [x[0] for x in reference] == frames and [x[1] for x in reference] == ts
    for max_packets, chunk in [(1, 1 << 20), (7, 1 << 20), (1000, 300), (65536, 4096), (3, 97)]:
        rows, r = read_all(tmp_path / "b", max_packets=max_packets, chunk_bytes=chunk)
        assert rows == reference and r.warnings == []
    with open_capture(tmp_path / "b", chunk_bytes=4096) as r:
        for b in r.batches(50):
            assert len(b) <= 50
            # data is a view of one read buffer, never the whole file
            assert (b.data.base if b.data.base is not None else b.data).nbytes <= 4096


def test_batches_resume_and_single_pass(tmp_path):
    write_pcap(tmp_path / "r.pcap", [b"a", b"b", b"c", b"d"])
    with open_capture(tmp_path / "r.pcap") as r:
        first = next(iter(r.batches(2)))
        rest = list(r.batches(2))
        assert first.first_number == 1 and [b.first_number for b in rest] == [3]
        assert list(r.batches()) == [] and r.packets == 4
    with pytest.raises(ValueError):
        list(open_capture(tmp_path / "r.pcap").batches(0))


# -- the third-party corpus --------------------------------------------------------

def _manifest():
    if not CORPUS.is_dir():
        return []
    with open(CORPUS / "MANIFEST.tsv", newline="") as f:
        return [(row["file"], int(row["packets"])) for row in csv.DictReader(f, delimiter="\t")
                if row["file"].startswith(("zeek/", "malformed/"))]


@pytest.mark.parametrize("name,packets", _manifest() or [pytest.param(
    "", 0, marks=pytest.mark.skip(reason=f"test corpus not found at {CORPUS}"))])
def test_corpus_packet_counts_match_manifest(name, packets):
    with open_capture(corpus_dir() / name) as r:
        n = sum(len(b) for b in r.batches())
    assert r.warnings == [], f"{name}: {r.warnings}"
    assert n == packets


SCAPY_FILES = ["zeek/dns-spf.pcap", "zeek/wikipedia.pcap", "zeek/nflog-http.pcap",
               "malformed/tcp-handshake-nano.pcap", "malformed/time_2106.pcap",
               "malformed/timestamp_invalid_micro.pcap"]


@pytest.mark.parametrize("name", SCAPY_FILES + ["*.pcapng"])
def test_corpus_matches_scapy(name):
    scapy_utils = pytest.importorskip("scapy.utils")
    root = corpus_dir()
    paths = sorted(root.glob(f"*/{name}")) if "*" in name else [root / name]
    paths = [p for p in paths if p.exists()]
    if not paths:
        pytest.skip(f"{name} not in the corpus")
    for path in paths:
        theirs = [(bytes(pkt.original if getattr(pkt, "original", None) is not None else pkt),
                   int(Decimal(pkt.time) * NS), int(pkt.wirelen))
                  for pkt in scapy_utils.rdpcap(str(path))]
        rows, r = read_all(path)
        assert [x[:3] for x in rows] == theirs, path
