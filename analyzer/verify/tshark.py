"""netsift's ``packets`` frame against Wireshark's tshark, field by field.

For a capture ``X`` with ``X.tshark.tsv`` beside it (a ``tshark -T fields
-E header=y -E occurrence=a -E aggregator=,`` dump made by TShark 4.0.17, see
the corpus README), :func:`compare_file` runs :func:`analyzer.analyze` and
compares its ``packets`` frame with the tsv frame by frame (joined on
``frame.number``), for every field in :data:`FIELDS` that both have.

Rules of the comparison:

- Only the **first** comma-separated value of a tsv cell is used: the
  outermost occurrence, which is what netsift's first-occurrence-wins
  columns hold.
- A cell agrees when both sides are empty, or both are set and equal after
  normalising their text: integers are compared as integers (tshark prints
  ``tcp.flags`` in hex, ``0x0018``), booleans as 0/1, addresses as
  lower-case text.
- ``frame.time_epoch`` is compared **at nanosecond precision**: the tsv has 9
  decimals, parsed as an exact integer of ns; netsift's side is the integer
  ns of the ``ts`` column (``datetime64[ns]``), not the float64 seconds of
  ``frame.time_epoch`` (which cannot hold ns for present-day times).
- A frame present on one side only counts as a mismatch in every field
  (shown as ``<no frame>``).

Mismatches that are by design are listed in :data:`DELIBERATE_DIFFERENCES`
(each with its reason); :func:`field_totals` and :func:`mismatch_groups`
count them apart.  ``bench/conformance.py`` prints these figures and
``netsift verify`` shows them as tables.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .corpus import relative_name

# Fields compared, in report order: the tsv's L2–L4 header fields that the packets frame also has.
FIELDS = (
    "frame.number", "frame.time_epoch", "frame.len",
    "eth.src", "eth.dst", "vlan.id",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt", "ip.ttl",
    "ip.flags.mf", "ip.frag_offset",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
    "udp.srcport", "udp.dstport", "udp.length",
)
ADDRESS_FIELDS = {"eth.src", "eth.dst", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst"}
MISSING_FRAME = "<no frame>"


class Deliberate(NamedTuple):
    """An expected difference: ``field`` of the captures matching ``glob`` (``zeek/x.pcap``).

    With ``fragments_only``, only mismatches where netsift's cell is empty on
    an IP fragment (``ip.flags.mf``, ``ip.frag_offset``,
    ``ipv6.fraghdr.more`` or ``ipv6.fraghdr.offset`` non-zero) are expected:
    tshark's reassembly.
    """

    glob: str
    field: str
    reason: str
    fragments_only: bool = False


_OVERSIZE = ("two IPv6 datagrams of 46 fragments whose last fragments end beyond 64,000 bytes of "
             "payload: netsift's reassembler (analyzer/reassembly/ip.py) follows Zeek, which drops such "
             "a fragment (weird excessively_large_fragment, as in this trace's Zeek weird.log), so the "
             "datagram is never completed; tshark reassembles up to 65,535 bytes and shows the UDP header "
             "on the frame that completes it")
_QINQ = ("Wireshark dissects an 802.1ad S-tag (EtherType 0x88A8) as ieee8021ad.id, so its vlan.id is "
         "the first 802.1Q C-tag (none in an S-tag-only frame); netsift's schema defines vlan.id as the "
         "outermost tag of either kind (tests/vectors.py qinq-ipv4-udp expects the S-tag)")
_LINK = "link type {} is not dissected by netsift (the frame is a row with frame fields only)"
_WRAP = ("pcap record with an out-of-range microsecond field: tshark (wiretap) multiplies it by 1000 in "
         "32 bits and wraps; netsift adds it exactly (captures/pcap.py)")

# Every entry says why netsift is right or why the difference is a deliberate choice.
DELIBERATE_DIFFERENCES: tuple[Deliberate, ...] = (
    *(Deliberate("zeek/ipv6-reassembly-state-leak.pcap", name, _OVERSIZE, True)
      for name in ("udp.srcport", "udp.dstport", "udp.length")),
    Deliberate("malformed/802.1ad_QinQ.pcap", "vlan.id", _QINQ),
    Deliberate("malformed/arp-too-long-tha.pcap", "vlan.id", _QINQ),
    *(Deliberate("malformed/802_15_4-data.pcap", name, _LINK.format("195 (IEEE 802.15.4 with 6LoWPAN)"))
      for name in ("ipv6.src", "ipv6.dst", "ipv6.nxt")),
    *(Deliberate(f"malformed/{file}", name, _LINK.format("178 (Juniper Ethernet)"))
      for file in ("isis_poi.pcap", "juniper_header-heapoverflow.pcap") for name in ("eth.src", "eth.dst")),
    *(Deliberate(f"malformed/{file}", "frame.len",
                 "link type 123 (SunATM): wiretap removes the 4-byte ATM pseudo-header from frame.len; "
                 "netsift keeps the pcap record's original length and does not dissect SunATM")
      for file in ("atm-heapoverflow.pcap", "atm-oam-loopback-print-overrun.pcap")),
    Deliberate("malformed/atm-oam-loopback-print-overrun.pcap", "frame.time_epoch", _WRAP),
    Deliberate("malformed/timestamp_invalid_micro.pcap", "frame.time_epoch", _WRAP),
    Deliberate("malformed/tcp_header_heapoverflow.pcap", "tcp.seq_raw",
               "only 12 TCP bytes captured: netsift reads tcp.seq_raw once its 8 bytes are there "
               "(dissectors/tcp.py, tests/test_dissectors.py); tshark 4.0 reads up to the window "
               "(16 bytes) before adding it"),
)


@dataclass
class FileComparison:
    """The comparison of one capture with its tsv.

    Attributes:
        file: the capture's name relative to the corpus (``zeek/x.pcap``).
        counts: ``{field: (cells compared, cells equal)}``.
        mismatches: ``{(field, ours, theirs): (count, first frame.number, reassembly)}``;
            ``reassembly`` is true when every frame of the group is an IP
            fragment on which netsift's cell is empty.
        frames_ours, frames_theirs: rows on each side.
        warnings: the reader's warnings for the capture.
        error: the exception text if ``analyze`` raised (then nothing was compared).
    """

    file: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    mismatches: dict[tuple[str, str, str], tuple[int, int, bool]] = field(default_factory=dict)
    frames_ours: int = 0
    frames_theirs: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def failing_fields(self) -> list[str]:
        """Fields with at least one unequal cell."""
        return [name for name, (compared, equal) in self.counts.items() if compared != equal]

    def unexplained(self) -> dict[tuple[str, str, str], tuple[int, int, bool]]:
        """The mismatch groups that no :data:`DELIBERATE_DIFFERENCES` entry covers."""
        return {key: value for key, value in self.mismatches.items()
                if deliberate_reason(self.file, key[0], value[2]) is None}


def tsv_captures(corpus: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Captures under ``corpus`` (one level of subdirectories) that have a ``.tshark.tsv``, sorted.

    ``pattern`` is a glob on the relative name (``zeek/dns*``) or on the bare file name.
    """
    found = []
    for tsv in sorted(Path(corpus).glob("*/*.tshark.tsv")):
        pcap = tsv.with_name(tsv.name[: -len(".tshark.tsv")])
        if pcap.exists() and _matches(pcap, pattern):
            found.append(pcap)
    return found


def all_captures(corpus: str | os.PathLike, subdirs=("zeek", "malformed")) -> list[Path]:
    """Every capture file (``.pcap``, ``.pcapng``, ``.cap``…, not logs or tsvs) in ``subdirs``."""
    found = []
    for sub in subdirs:
        for path in sorted((Path(corpus) / sub).glob("*")):
            if path.is_file() and not path.name.endswith((".tsv", ".log", ".txt", ".md")):
                found.append(path)
    return found


def _matches(pcap: Path, pattern: str) -> bool:
    return fnmatch.fnmatch(relative_name(pcap), pattern) or fnmatch.fnmatch(pcap.name, pattern)


def deliberate_reason(file: str, field_name: str, reassembly: bool = False) -> str | None:
    """The reason recorded in :data:`DELIBERATE_DIFFERENCES` for ``field_name`` of ``file``, if any.

    ``reassembly``: the mismatch is on IP fragments where netsift's cell is empty.
    """
    for entry in DELIBERATE_DIFFERENCES:
        if (entry.field == field_name and fnmatch.fnmatch(file, entry.glob)
                and (reassembly or not entry.fragments_only)):
            return entry.reason
    return None


# ---- normalisation -------------------------------------------------------------------------


def load_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """The tsv as text (every cell a ``str``, empty for unset), one row per frame."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                       quoting=csv.QUOTE_NONE, encoding="utf-8", encoding_errors="replace")


def _epoch_ns_text(text: str) -> str:
    """Exact integer ns of tshark's ``seconds.fraction`` text (``''`` stays ``''``)."""
    if not text:
        return ""
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    # tshark prints "%u.%09u" of (seconds, nanoseconds); a record whose sub-second
    # field is out of range gives nanoseconds of 10 digits ("...370.1000000000" is 371 s).
    nanoseconds = int(fraction) if len(fraction) > 9 else int((fraction + "000000000")[:9])
    ns = int(whole or 0) * 1_000_000_000 + nanoseconds
    return str(-ns if negative else ns)


def _theirs(field_name: str, cell: str) -> str:
    """Normal form of the first occurrence in a tsv cell."""
    value = cell.split(",", 1)[0].strip()
    if not value:
        return ""
    if field_name == "frame.time_epoch":
        return _epoch_ns_text(value)
    if field_name in ADDRESS_FIELDS:
        return value.lower()
    if value in ("True", "False"):
        return "1" if value == "True" else "0"
    try:
        return str(int(value, 0))
    except ValueError:
        return value


def _ours(packets: pd.DataFrame, field_name: str) -> np.ndarray:
    """Normal form of netsift's column as an object array of ``str`` (``''`` for null)."""
    if field_name == "frame.time_epoch":
        stamps = packets["ts"]
        ns = stamps.array.asi8 if hasattr(stamps.array, "asi8") else stamps.astype("int64").to_numpy()
        text = ns.astype(str).astype(object)
        text[stamps.isna().to_numpy()] = ""
        return text
    column = packets[field_name]
    missing = column.isna().to_numpy()
    if field_name in ADDRESS_FIELDS:
        text = column.astype(object).to_numpy()
        text = np.array([str(v).lower() for v in text], dtype=object)
    else:
        values = column.to_numpy(dtype=object, na_value=0)
        text = np.array([str(int(v)) for v in values], dtype=object)
    text[missing] = ""
    return text


# ---- comparison ----------------------------------------------------------------------------


def analyze_quietly(pcap_path: str | os.PathLike):
    """``analyzer.analyze(pcap_path)`` with its CaptureWarnings kept in the result, not printed."""
    from analyzer import analyze

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze(pcap_path)


def compare_file(pcap_path: str | os.PathLike, tsv_path: str | os.PathLike | None = None) -> FileComparison:
    """Compare netsift's packets frame of ``pcap_path`` with its tshark tsv (default ``X.tshark.tsv``)."""
    pcap_path = Path(pcap_path)
    tsv_path = Path(tsv_path) if tsv_path else pcap_path.with_name(pcap_path.name + ".tshark.tsv")
    result = FileComparison(relative_name(pcap_path))
    theirs = load_tsv(tsv_path)
    result.frames_theirs = len(theirs)
    try:
        analysis = analyze_quietly(pcap_path)
    except Exception as error:  # reported, and the test fails on it
        result.error = f"{type(error).__name__}: {error}"
        return result
    packets = analysis.packets
    result.warnings = list(analysis.warnings)
    result.frames_ours = len(packets)

    our_numbers = packets["frame.number"].to_numpy(dtype=np.int64, na_value=-1)
    their_numbers = theirs["frame.number"].astype(np.int64).to_numpy()
    numbers = np.union1d(our_numbers, their_numbers)
    our_index = pd.Index(our_numbers).get_indexer(numbers)
    their_index = pd.Index(their_numbers).get_indexer(numbers)

    fragment = np.zeros(len(numbers), dtype=bool)
    for name in ("ip.frag_offset", "ip.flags.mf", "ipv6.fraghdr.offset", "ipv6.fraghdr.more"):
        if name in packets.columns and len(packets):
            values = packets[name].to_numpy(dtype=np.int64, na_value=0)
            fragment |= (our_index >= 0) & (values[np.maximum(our_index, 0)] > 0)

    for name in FIELDS:
        if name not in theirs.columns or (name != "frame.time_epoch" and name not in packets.columns):
            continue
        ours_all = _ours(packets, name)
        theirs_all = np.array([_theirs(name, cell) for cell in theirs[name]], dtype=object)
        ours = np.where(our_index >= 0, ours_all[np.maximum(our_index, 0)] if len(ours_all) else "", MISSING_FRAME)
        theirs_col = np.where(their_index >= 0, theirs_all[np.maximum(their_index, 0)] if len(theirs_all) else "",
                              MISSING_FRAME)
        equal = ours == theirs_col
        result.counts[name] = (len(numbers), int(equal.sum()))
        for i in np.flatnonzero(~equal):
            key = (name, str(ours[i]), str(theirs_col[i]))
            count, example, reassembly = result.mismatches.get(key, (0, int(numbers[i]), True))
            reassembly = reassembly and ours[i] == "" and bool(fragment[i])
            result.mismatches[key] = (count + 1, example, reassembly)
    return result


# ---- totals over captures ------------------------------------------------------------------


def field_totals(results: list[FileComparison]) -> dict[str, list[int]]:
    """``{field: [cells compared, equal, deliberate]}`` summed over ``results``, in :data:`FIELDS` order.

    ``deliberate`` counts the unequal cells a :data:`DELIBERATE_DIFFERENCES` entry explains.
    """
    totals = {name: [0, 0, 0] for name in FIELDS}
    for result in results:
        for name, (compared, equal) in result.counts.items():
            totals[name][0] += compared
            totals[name][1] += equal
        for (name, _, _), (count, _, reassembly) in result.mismatches.items():
            if deliberate_reason(result.file, name, reassembly):
                totals[name][2] += count
    return totals


class MismatchGroup(NamedTuple):
    """Cells of one capture and field with the same pair of values (``first_frame``: the first frame.number)."""

    count: int
    file: str
    field: str
    ours: str
    theirs: str
    first_frame: int
    reason: str | None


def mismatch_groups(results: list[FileComparison]) -> list[MismatchGroup]:
    """Every mismatch group of ``results``: unexplained first, then by falling count, file and field."""
    groups = [MismatchGroup(count, r.file, name, ours, theirs, example, deliberate_reason(r.file, name, reassembly))
              for r in results
              for (name, ours, theirs), (count, example, reassembly) in r.mismatches.items()]
    groups.sort(key=lambda g: (g.reason is not None, -g.count, g.file, g.field))
    return groups
