"""The command line and the pipeline, end to end, on captures written by our own writer."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from analyzer import analyze
from analyzer.cli import main
from captures import write_pcap, write_pcapng

from .vectors import VECTORS

ETHERNET_FRAMES = [frame for _, link, frame, _ in VECTORS if link == 1]


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "frames.pcap"
    write_pcap(path, ETHERNET_FRAMES * 5, ts_ns=[i * 1_500_000_000 for i in range(len(ETHERNET_FRAMES) * 5)])
    return path


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("content,problem", [
    (None, "No such file"),
    (b"hello, this is text\n" * 3, "not a pcap or pcapng"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "header"),
    (b"", "empty"),
])
def test_unreadable_file_is_one_error_line_and_exit_2(tmp_path, content, problem):
    path = tmp_path / "bad.pcap"
    if content is not None:
        path.write_bytes(content)
    for command in ("analyze", "info"):
        code, out, err = run(command, path)
        assert code == 2, (command, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in err
        assert problem.lower() in lines[0].lower()


def test_truncated_file_is_analysed_up_to_the_damage(tmp_path, capture):
    data = capture.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    code, out, err = run("analyze", cut)
    assert code == 0
    assert err.count("warning") == 1 and "byte offset" in err
    with pytest.warns(UserWarning, match="byte offset"):
        result = analyze(cut)
    assert len(result.packets) == len(ETHERNET_FRAMES) * 5 - 1
    assert result.warnings and len(result.warnings) == 1


@pytest.mark.parametrize("file_format", ["parquet", "csv", "jsonl"])
def test_analyze_writes_one_file_per_table(tmp_path, capture, file_format):
    out_dir = tmp_path / "out"
    code, out, err = run("analyze", capture, "-o", out_dir, "--format", file_format)
    assert code == 0, err
    expected = analyze(capture).packets
    path = out_dir / f"packets.{file_format}"
    assert (out_dir / f"weird.{file_format}").exists()
    if file_format == "parquet":
        back = pd.read_parquet(path)
        assert back["ip.src"].astype(str).tolist() == expected["ip.src"].astype(str).tolist()
        assert str(back["tcp.srcport"].dtype) == "UInt16"
        pd.testing.assert_frame_equal(back, expected, check_categorical=False)
    elif file_format == "csv":
        back = pd.read_csv(path)
        assert len(back) == len(expected) and back["frame.len"].tolist() == expected["frame.len"].tolist()
    else:
        back = pd.read_json(path, lines=True)
        assert back["tcp.dstport"].dropna().astype(int).tolist() == expected["tcp.dstport"].dropna().tolist()


def test_unknown_table_is_an_error(capture):
    code, out, err = run("analyze", capture, "--tables", "packets,nope")
    assert code == 2 and "nope" in err


def test_info_prints_capinfos_figures(capture):
    code, out, err = run("info", capture)
    assert code == 0
    assert "Number of packets" in out and f"{len(ETHERNET_FRAMES) * 5}" in out
    assert "Ethernet (1)" in out


def test_batches_gzip_and_pcapng_give_the_same_frame(tmp_path, capture):
    reference = analyze(capture).packets
    assert analyze(capture, batch_packets=3).packets.equals(reference)
    compressed = tmp_path / "frames.pcap.gz"
    compressed.write_bytes(gzip.compress(capture.read_bytes()))
    assert analyze(compressed).packets.equals(reference)
    as_pcapng = tmp_path / "frames.pcapng"
    write_pcapng(as_pcapng, ETHERNET_FRAMES * 5, ts_ns=[i * 1_500_000_000 for i in range(len(ETHERNET_FRAMES) * 5)])
    pd.testing.assert_frame_equal(analyze(as_pcapng).packets, reference)


def test_console_script_runs_without_traceback(tmp_path):
    missing = tmp_path / "missing.pcap"
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "analyze", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("netsift: error:")


def test_zeek_formats_write_only_tables_zeek_has(tmp_path, capture):
    out_dir = tmp_path / "zeek"
    code, out, err = run("analyze", capture, "-o", out_dir, "--format", "zeek")
    assert code == 0, err
    assert (out_dir / "weird.log").read_text().startswith("#separator \\x09\n")
    assert not (out_dir / "packets.log").exists()
    code, out, err = run("analyze", capture, "-o", out_dir, "--format", "zeek", "--tables", "packets")
    assert code == 2 and "Zeek has no log for: packets" in err


def test_generate_is_deterministic_and_analyses(tmp_path):
    paths = [tmp_path / f"g{i}.pcap" for i in range(2)]
    for path in paths:
        code, out, err = run("generate", "mixed", "-o", path, "--seed", 5, "--count", 4, "--vlan", "7")
        assert code == 0, err
        assert "packets" in out
    assert paths[0].read_bytes() == paths[1].read_bytes()
    packets = analyze(paths[0]).packets
    assert (packets["vlan.id"] == 7).all()
    code, out, err = run("generate", "mixed", "-o", tmp_path / "x.pcap", "--vlan", "a,b")
    assert code == 2
