"""Conformance with Wireshark on the shared corpus, and a crash/hang guard over every capture.

The corpus (``$NETSIFT_CORPUS`` or ``<repo>/../shared/corpus``; the comparison
is :mod:`analyzer.verify.tshark`, printed by ``bench/conformance.py``) holds
third-party captures: ``zeek/`` and ``malformed/``, each ``X.pcap`` with
``X.pcap.tshark.tsv`` made by TShark 4.0.17.  Without the corpus these tests
are skipped.
"""

from __future__ import annotations

import csv
import time

import pytest

from analyzer.verify import tshark as conformance
from analyzer.verify.corpus import corpus_dir, relative_name

CORPUS = corpus_dir()
HAVE_CORPUS = (CORPUS / "MANIFEST.tsv").exists()
NO_CORPUS = f"the shared corpus is not at {CORPUS} (set NETSIFT_CORPUS)"
SECONDS_PER_CAPTURE = 10.0   # a hang guard, not a benchmark


def _ids(paths):
    return [relative_name(path) for path in paths]


TSV_CAPTURES = conformance.tsv_captures(CORPUS) if HAVE_CORPUS else []
ALL_CAPTURES = conformance.all_captures(CORPUS) if HAVE_CORPUS else []


def _manifest() -> dict[str, dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
def test_corpus_has_tshark_references():
    assert len(TSV_CAPTURES) > 300
    assert len(ALL_CAPTURES) >= len(TSV_CAPTURES)


@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
@pytest.mark.parametrize("pcap", TSV_CAPTURES, ids=_ids(TSV_CAPTURES))
def test_packets_frame_agrees_with_tshark(pcap):
    """Every compared field agrees cell by cell, except the documented deliberate differences."""
    result = conformance.compare_file(pcap)
    assert result.error is None, result.error
    assert result.frames_ours == result.frames_theirs, (
        f"netsift read {result.frames_ours} frames, tshark {result.frames_theirs}; warnings {result.warnings}")
    unexplained = result.unexplained()
    lines = [f"{name}: ours {ours!r} vs tshark {theirs!r} x{count} (first frame {frame})"
             for (name, ours, theirs), (count, frame, _) in sorted(unexplained.items())]
    assert not unexplained, "\n".join([f"{result.file}: cells differ from tshark"] + lines[:30])


def test_every_deliberate_difference_has_a_reason():
    for entry in conformance.DELIBERATE_DIFFERENCES:
        assert entry.field in conformance.FIELDS, entry
        assert len(entry.reason) > 40, entry


@pytest.mark.skipif(not HAVE_CORPUS, reason=NO_CORPUS)
@pytest.mark.parametrize("capture", ALL_CAPTURES, ids=_ids(ALL_CAPTURES))
def test_every_capture_is_analysed_quickly_and_completely(capture):
    """No exception, well under the hang guard, and every frame the manifest counts (unless the reader warned)."""
    started = time.perf_counter()
    result = conformance.analyze_quietly(capture)
    elapsed = time.perf_counter() - started
    assert elapsed < SECONDS_PER_CAPTURE, f"{elapsed:.1f} s"
    expected = _manifest().get(relative_name(capture), {}).get("packets", "")
    if result.warnings:
        print(f"{relative_name(capture)}: {len(result.packets)} frames read, "
              f"manifest {expected or '?'}; reader warnings: {result.warnings}")
        return
    assert expected, "capture missing from MANIFEST.tsv"
    assert len(result.packets) == int(expected)
