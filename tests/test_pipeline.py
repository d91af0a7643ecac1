"""The pipeline across stages: fragments reassembled into the packets and conn tables."""

from __future__ import annotations

import os
import random

import pytest
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


def test_bad_checksum_segments_never_reach_the_application_stages():
    # Zeek's TCP analyzer drops a segment whose checksum fails before reassembly: no http row,
    # a C/c in history; with checksums ignored (zeek -C) the same bytes give the transaction.
    from analyzer.pipeline import Pipeline
    from scapy.layers.inet import TCP
    a, b = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    steps = [(a, b, "S", 100, 0, b""), (b, a, "SA", 500, 101, b""), (a, b, "A", 101, 501, b""),
             (a, b, "PA", 101, 501, request), (b, a, "PA", 501, 101 + len(request), response)]
    frames = []
    for (src, sport), (dst, dport), flags, seq, ack, payload in steps:
        packet = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
        packet = Ether(raw(packet / payload))
        if payload:
            packet[TCP].chksum ^= 0x5555
        frames.append(raw(packet))
    tables = {}
    for validate in (True, False):
        pipeline = Pipeline(validate_checksums=validate)
        pipeline.feed(PacketBatch.from_frames(frames))
        tables[validate] = pipeline.finish()
    assert len(tables[True]["http"]) == 0
    assert "C" in tables[True]["conn"]["history"].iloc[0] and "c" in tables[True]["conn"]["history"].iloc[0]
    assert tables[False]["http"][["method", "status_code"]].values.tolist() == [["GET", 200]]


def test_checksum_offloading_is_one_warning_like_zeek():
    # The bundled loopback capture was made on the sending host: the kernel left the transport
    # checksums unset (offload), as Zeek's find-checksum-offloading would report.
    import warnings

    from analyzer.pipeline import SAMPLE, analyze
    live = os.path.join(os.path.dirname(SAMPLE), "live.pcap")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        validated = analyze(live)
        ignored = analyze(live, validate_checksums=False)
        clean = analyze(SAMPLE)
    assert [m for m in validated.warnings if "checksum offloading" in m]
    assert ignored.warnings == [] and clean.warnings == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ShADadFfRrCcTtWwIiQqGgX^", max_size=12), max_size=20))
def test_strings_from_rows_equals_python_strings(texts):
    """frames.strings_from_rows (pyarrow from byte rows) gives what pd.array of the texts gives, '' as null."""
    import numpy as np
    import pandas as pd

    from analyzer.frames import strings_from_rows
    chars = np.zeros((len(texts), 12), dtype=np.uint8)
    for i, text in enumerate(texts):
        chars[i, :len(text)] = np.frombuffer(text.encode(), dtype=np.uint8)
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    got = strings_from_rows(chars, lengths)
    expected = pd.array([text or None for text in texts], dtype="string")
    assert got.dtype == expected.dtype and got.equals(expected)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["mac", "ipv4", "ipv6"]), st.integers(0, 3000), st.integers(1, 2000), st.floats(0, 1),
       st.integers(0, 2**32 - 1))
def test_address_categoricals_equal_numpy_unique(kind, n, distinct, null_share, seed):
    """frames._addresses (compiled hash grouping, categories in byte order) codes and names addresses
    as ``np.unique`` and ``socket`` do, across table growth (up to 2,000 distinct) and nulls."""
    import socket

    import numpy as np

    from analyzer.frames import _addresses
    rng = np.random.default_rng(seed)
    width = {"mac": 6, "ipv4": 4, "ipv6": 16}[kind]
    pool = rng.integers(0, 256, size=(distinct, width), dtype=np.uint8)
    pool[::3, :width // 2] = 0          # shared prefixes, runs of zeros (RFC 5952 "::")
    raw = pool[rng.integers(0, distinct, n)] if n else np.zeros((0, width), np.uint8)
    mask = rng.random(n) < null_share
    if kind == "ipv6":
        values = np.ascontiguousarray(raw).view("V16").reshape(n)
    else:
        values = np.zeros(n, np.uint64)
        for byte in range(width):
            values = (values << np.uint64(8)) | raw[:, byte].astype(np.uint64)
        values = values.astype(np.uint32 if kind == "ipv4" else np.uint64)
    got = _addresses(kind, values, mask)
    unique, inverse = np.unique(raw[~mask], axis=0, return_inverse=True)
    expected_codes = np.full(n, -1)
    expected_codes[~mask] = inverse.reshape(-1)
    if kind == "ipv6":
        names = [socket.inet_ntop(socket.AF_INET6, row.tobytes()) for row in unique]
    elif kind == "ipv4":
        names = [socket.inet_ntoa(row.tobytes()) for row in unique]
    else:
        names = [row.tobytes().hex(":") for row in unique]
    assert np.array_equal(np.asarray(got.codes), expected_codes)
    assert list(got.categories) == names
    assert got.codes.dtype == (np.int8 if len(unique) < 127 else np.int16)   # pandas' smallest code dtype


_CORPUS = os.environ.get("NETSIFT_CORPUS") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")
# Captures whose tables depend on where batches are cut (known, see the closing note): an ACK for data
# not yet seen, at a batch boundary, makes the TCP reassembly give that data up before it arrives.
_BATCH_DEPENDENT = {"ipv6-http-atomic-frag.pcap", "tcp-miss_end_data.pcap"}


@pytest.mark.skipif(not os.path.isdir(os.path.join(_CORPUS, "zeek")), reason=f"corpus not found at {_CORPUS}")
@pytest.mark.filterwarnings("ignore::analyzer.CaptureWarning")   # the corpus's checksum-offloaded captures
@pytest.mark.parametrize("pattern", ["*frag*", "*dns*", "smtp*", "http-[a-h]*", "tunnels-*"])
def test_tables_do_not_depend_on_where_batches_are_cut(pattern):
    """Every table of a capture analysed in 7-frame batches equals the one-batch analysis: a datagram
    completed by a fragment keeps its connection, uid and DNS pairing, rows keep capture order."""
    import glob

    from analyzer import analyze
    paths = [path for path in sorted(glob.glob(os.path.join(_CORPUS, "zeek", pattern)))
             if path.endswith((".pcap", ".pcapng")) and os.path.basename(path) not in _BATCH_DEPENDENT]
    assert paths
    for path in paths:
        whole, cut = analyze(path), analyze(path, batch_packets=7)
        assert whole.tables.keys() == cut.tables.keys()
        for name, table in whole.tables.items():
            assert table.astype(str).equals(cut.tables[name].astype(str)), (os.path.basename(path), name)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc/self/statm")
def test_prefault_backs_memory_on_a_helper_thread():
    """analyzer.prefault: the ranges given are resident after Ahead.wait(), before anything is written,
    and still read as zeros and take writes (or, on a kernel without the advice, nothing happens)."""
    import mmap

    import numpy as np

    from analyzer import prefault

    def resident_bytes():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * mmap.PAGESIZE

    size = 64 << 20
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    view = np.frombuffer(memory, np.uint8)
    before = resident_bytes()
    ahead = prefault.Ahead()
    ahead.start([(view.ctypes.data + 4096, size - 8192)], owners=[memory])
    ahead.wait()
    grown = resident_bytes() - before
    if prefault._MADVISE[0] is not None:
        assert grown > size * 0.9
    assert not view.any()
    view[::4096] = 7
    assert int(view.sum()) == 7 * (size // 4096)
    del view
    memory.close()
