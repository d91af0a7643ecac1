"""The conformance corpus: where it is, which capture goes with which baseline, how Zeek was run.

The corpus (``shared/corpus``, described by its README) holds third-party
captures in ``zeek/`` and ``malformed/``; beside a capture ``X.pcap`` stand
``X.pcap.tshark.tsv`` (a TShark 4.0.17 ``-T fields`` dump) and Zeek's btest
baselines ``X.conn.log``, ``X.dns.log`` …  ``ORACLES.tsv`` records, per
baseline (``oracle_file``), the ``capture`` and the ``zeek_command`` that made it.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

#: The directory above the ``analyzer`` package: the checkout when run from one.
REPO = Path(__file__).resolve().parent.parent.parent

#: Extensions a corpus capture has, in the order they are looked for beside a baseline.
CAPTURE_EXTENSIONS = (".pcap", ".pcapng")


class VerifyError(Exception):
    """The corpus (or a file it should hold) cannot be found."""


def corpus_dir(arg: str | os.PathLike | None = None, must_exist: bool = False) -> Path:
    """The corpus directory: ``arg``, else ``$NETSIFT_CORPUS``, else ``<repo>/../shared/corpus``.

    Raises:
        VerifyError: ``must_exist`` and the directory does not exist.
    """
    if arg:
        path = Path(arg)
    elif os.environ.get("NETSIFT_CORPUS"):
        path = Path(os.environ["NETSIFT_CORPUS"])
    else:
        path = REPO.parent / "shared" / "corpus"
    if must_exist and not path.is_dir():
        raise VerifyError(f"corpus directory not found: {path} (give --corpus DIR or set $NETSIFT_CORPUS)")
    return path


def relative_name(path: str | os.PathLike) -> str:
    """``zeek/x.pcap``: a corpus file's directory name and file name, as ORACLES.tsv and reports name it."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def capture_beside(directory: Path, stem: str) -> Path | None:
    """``directory/stem.pcap`` or ``directory/stem.pcapng``, whichever exists first; None when neither does."""
    return next((directory / (stem + ext) for ext in CAPTURE_EXTENSIONS if (directory / (stem + ext)).exists()),
                None)


def log_stem(capture: str | os.PathLike) -> str:
    """The baseline stem of a capture: ``x`` for ``x.pcap``, ``x.pcapng`` or ``x.pcap.gz``."""
    stem = Path(capture).name
    for ext in (".gz", ".pcapng", ".pcap"):
        stem = stem.removesuffix(ext)
    return stem


def oracle_commands(corpus: str | os.PathLike) -> dict[str, str]:
    """``{oracle_file: zeek_command}`` from the corpus's ``ORACLES.tsv`` (empty when it is absent)."""
    path = Path(corpus) / "ORACLES.tsv"
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as source:
        return {row.get("oracle_file") or "": row.get("zeek_command") or ""
                for row in csv.DictReader(source, delimiter="\t", quoting=csv.QUOTE_NONE)}


_IGNORE_CHECKSUMS = re.compile(r"(^|\s)-[a-zA-Z]*C")


def ignores_checksums(command: str) -> bool:
    """True when the Zeek command line has ``-C`` (alone or bundled, ``-Cr``, ``-bC``): checksums not validated."""
    return bool(_IGNORE_CHECKSUMS.search(command))


def baseline_pairs(captures: list[str | os.PathLike] | None, corpus: str | os.PathLike | None,
                   suffix: str) -> tuple[list[tuple[Path, Path, str]], list[tuple[str, str]]]:
    """The (capture, baseline log, Zeek command) triples to compare for one kind of log.

    ``suffix`` is the baseline's ending (``.conn.log``).  With ``captures``
    None: every ``zeek/*<suffix>`` of the corpus whose capture exists; else
    the baseline beside each capture (``x.pcap`` → ``x<suffix>``), the Zeek
    command read from the ORACLES.tsv two levels up.  The second list holds
    ``(name, reason)`` for what has no partner.

    Raises:
        VerifyError: ``captures`` is None and the corpus directory does not exist.
    """
    pairs, skipped = [], []
    if captures is None:
        root = corpus_dir(corpus, must_exist=True)
        commands = oracle_commands(root)
        for log in sorted((root / "zeek").glob("*" + suffix)):
            capture = capture_beside(log.parent, log.name[: -len(suffix)])
            if capture is None:
                skipped.append((relative_name(log), "no capture"))
            else:
                pairs.append((capture, log, commands.get(relative_name(log), "")))
        return pairs, skipped
    for capture in map(Path, captures):
        log = capture.with_name(log_stem(capture) + suffix)
        if not log.exists():
            skipped.append((str(capture), f"no Zeek {suffix[1:]} beside it ({log.name})"))
            continue
        commands = oracle_commands(capture.parent.parent)
        pairs.append((capture, log, commands.get(relative_name(log), "")))
    return pairs, skipped
