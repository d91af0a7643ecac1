"""DNS frame builders against plain-Python references: address text, record lists, key and tuple indexes.

The compiled helpers of :mod:`analyzer.dns.columns`, :mod:`analyzer.dns.texts`
and :func:`analyzer.dns.pairing.lookup_tuples` replace Python code that was
simple to read; each is checked here against that simple code on edge cases
and random inputs.
"""

from __future__ import annotations

import socket

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.dns import pairing as pr
from analyzer.dns.columns import address_texts, group_records, slice_lists
from analyzer.dns.texts import KeyIndex

MAPPED = bytes(10) + b"\xff\xff"


def _text(raw: bytes) -> str:
    if raw[:12] == MAPPED:
        return socket.inet_ntoa(raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)


def _edge_addresses(rng) -> np.ndarray:
    rows = []
    for pattern in range(256):                     # every layout of zero words: where "::" goes
        for width in (1, 2, 4):
            words = np.array([rng.integers(1, 16 ** width) if pattern >> w & 1 else 0 for w in range(8)])
            rows.append(words.astype(">u2").tobytes())
    rows += [bytes(16), bytes(15) + b"\x01", bytes(12) + b"\x01\x02\x03\x04",      # ::, ::1, IPv4-compatible
             bytes(10) + b"\xff\xff" + bytes(4), MAPPED + b"\xff" * 4, b"\xff" * 16,
             bytes(8) + b"\x00\x00\xff\xff\x01\x02\x03\x04"]                       # ::ffff:0:x (not mapped)
    rows += [MAPPED + bytes(o) for o in rng.integers(0, 256, (300, 4), dtype=np.uint8)]
    rows += [bytes(r) for r in rng.integers(0, 256, (300, 16), dtype=np.uint8)]
    return np.frombuffer(b"".join(rows + rows[::7]), dtype=np.uint8).reshape(-1, 16)


def test_address_texts_match_inet_ntop_and_order():
    raw = _edge_addresses(np.random.default_rng(7))
    texts, codes = address_texts(raw)
    texts = texts.to_pylist()
    assert [texts[c] for c in codes] == [_text(r.tobytes()) for r in raw]
    distinct = sorted({r.tobytes() for r in raw}, key=lambda b: (b[:12] != MAPPED, b))
    assert texts == [_text(b) for b in distinct]         # IPv4 by value first, then IPv6 by bytes


def _reference_lists(serials, owner, part, text, ttl, texts):
    """The lists as the stage built them before: per row, its session's records in arrival order."""
    out = {name: [] for name in ("answers", "TTLs", "auth", "addl")}
    for s in serials:
        mine = [i for i in range(len(owner)) if owner[i] == s]
        answers = [i for i in mine if part[i] == 0 and text[i] != 0]
        out["answers"].append([texts[text[i]] for i in answers] or None)
        out["TTLs"].append([float(ttl[i]) for i in answers] or None)
        for p, name in ((1, "auth"), (2, "addl")):
            values = [texts[text[i]] for i in mine if part[i] == p]
            out[name].append(list(dict.fromkeys(values)) or None)
    return out


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_group_records_matches_reference(data):
    nserial = data.draw(st.integers(1, 12))
    k = data.draw(st.integers(0, 60))
    owner = np.array(data.draw(st.lists(st.integers(0, nserial - 1), min_size=k, max_size=k)), dtype=np.int64)
    part = np.array(data.draw(st.lists(st.integers(0, 2), min_size=k, max_size=k)), dtype=np.int8)
    text = np.array(data.draw(st.lists(st.integers(0, 5), min_size=k, max_size=k)), dtype=np.int32)
    ttl = np.array(data.draw(st.lists(st.integers(0, 2**32 - 1), min_size=k, max_size=k)), dtype=np.uint32)
    # Rows name sessions in any order, some twice, some past every owner.
    serials = np.array(data.draw(st.lists(st.integers(0, nserial + 2), max_size=15)), dtype=np.int64)
    texts = ["", "a", "b.example", "c", "d", "e"]
    ids, seconds, offsets, same_as = group_records(serials, owner, part, text, ttl, len(texts))
    values = np.array(texts, dtype=object)
    got = {"answers": slice_lists(values[ids[0]].tolist(), offsets[0, :-1], offsets[0, 1:]),
           "TTLs": slice_lists(seconds.tolist(), offsets[0, :-1], offsets[0, 1:]),
           "auth": slice_lists(values[ids[1]].tolist(), offsets[1, :-1], offsets[1, 1:]),
           "addl": slice_lists(values[ids[2]].tolist(), offsets[2, :-1], offsets[2, 1:])}
    for row, first in enumerate(same_as.tolist()):
        if first >= 0:
            assert serials[first] == serials[row] and first < row
            for column in got.values():
                column[row] = column[first]
    want = _reference_lists(serials.tolist(), owner.tolist(), part.tolist(), text.tolist(), ttl.tolist(), texts)
    assert {name: list(column) for name, column in got.items()} == want


def test_key_index_matches_dict_across_growth():
    rng = np.random.default_rng(3)
    index, reference = KeyIndex(capacity=4), {}
    for _ in range(30):
        keys = np.unique(rng.integers(-2**63, 2**63 - 1, 200, dtype=np.int64))
        keys = keys[[int(k) not in reference for k in keys]]
        ids = rng.integers(0, 1000, len(keys))
        index.add(keys, ids)
        reference.update(zip(keys.tolist(), ids.tolist()))
        probe = np.concatenate([np.array(list(reference), dtype=np.int64), rng.integers(0, 50, 20)])
        assert index.find(probe).tolist() == [reference.get(int(k), -1) for k in probe]
    assert len(index) == len(reference)


def test_lookup_tuples_one_id_per_five_tuple_either_direction():
    rng = np.random.default_rng(5)
    hosts = [MAPPED + bytes(o) for o in rng.integers(0, 256, (6, 4), dtype=np.uint8)]
    hosts += [bytes(r) for r in rng.integers(0, 256, (3, 16), dtype=np.uint8)] + [MAPPED + b"\xe0\0\0\xfb"]
    likely = np.zeros(65536, dtype=np.bool_)
    likely[53] = True
    n = 4000
    a, b = rng.integers(0, len(hosts), n), rng.integers(0, len(hosts), n)
    pa_, pb = rng.choice([53, 1024, 1025, 5353], n), rng.choice([53, 1024, 1025], n)
    src = np.frombuffer(b"".join(hosts[i] for i in a), dtype=np.uint8).reshape(n, 16)
    dst = np.frombuffer(b"".join(hosts[i] for i in b), dtype=np.uint8).reshape(n, 16)
    addr, port, tup = np.zeros((n, 2, 16), np.uint8), np.zeros((n, 2), np.int64), np.zeros((n, pr.NTP), np.int64)
    index, count, got, lo_flags = pr.new_index(16), 0, [], []
    for chunk in np.array_split(np.arange(n), 25):           # small batches: the index is rebuilt as it grows
        index = pr.reserve_index(index, addr, port, np.ones(count, bool), count, len(chunk))
        ids, src_lo, count = pr.lookup_tuples(index, addr, port, tup, likely, count, src[chunk], dst[chunk],
                                              pa_[chunk].astype(np.int64), pb[chunk].astype(np.int64))
        got += ids.tolist()
        lo_flags += src_lo.tolist()
    seen: dict = {}
    for i in range(n):
        ends = sorted([(hosts[a[i]], int(pa_[i])), (hosts[b[i]], int(pb[i]))])
        assert got[i] == seen.setdefault(tuple(ends), len(seen))
        assert lo_flags[i] == int((hosts[a[i]], int(pa_[i])) == ends[0])
        t = got[i]
        assert tup[t, pr.TP_INST] == -1 and tup[t, pr.TP_LO_LIKELY] == (ends[0][1] == 53)
        for side, (host, _) in ((pr.TP_LO_MC, ends[0]), (pr.TP_HI_MC, ends[1])):     # 224.0.0.0/4, ff00::/8
            assert tup[t, side] == (host[12] >> 4 == 0xE if host[:12] == MAPPED else host[0] == 0xFF)
    assert count == len(seen)
