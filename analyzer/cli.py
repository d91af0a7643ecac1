"""The ``netsift`` command line (click).  Thin: each command parses options and calls one function."""

from __future__ import annotations

import sys
import time
import warnings

import click
from rich.console import Console
from rich.table import Table

from captures import CaptureError

from . import export
from .cli_live import capture as capture_command
from .cli_live import interfaces, live_options, run_live_analysis
from .pipeline import SAMPLE, SCHEMAS, AnalysisResult, CaptureWarning, analyze, capture_stats

TABLE_NAMES = tuple(SCHEMAS)
stderr = Console(stderr=True)


def _fail(error: Exception) -> None:
    """One line on stderr, exit status 2: bad input never shows a traceback."""
    click.echo(f"netsift: error: {error}", err=True)
    sys.exit(2)


class _Progress:
    """A rich progress display on stderr, shown only on a terminal and only after the first second."""

    def __init__(self):
        self.started = time.monotonic()
        self.live = None
        self.task = None

    def __call__(self, packets: int) -> None:
        if not stderr.is_terminal or time.monotonic() - self.started < 1.0:
            return
        if self.live is None:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            self.live = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=stderr, transient=True)
            self.live.start()
            self.task = self.live.add_task("reading")
        self.live.update(self.task, description=f"{packets:,} packets")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _run_analysis(capture: str, **options) -> AnalysisResult:
    progress = _Progress()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CaptureWarning)   # printed below, once
            return analyze(capture, progress=progress, **options)
    except CaptureError as error:
        _fail(error)
    finally:
        progress.close()


def _result(capture: str | None, live: dict, **options) -> AnalysisResult:
    """Analyse CAPTURE, or capture live with ``-i`` (one or the other); no CAPTURE and no -i: the sample."""
    if live.get("interface"):
        if capture is not None:
            _fail(click.UsageError("give a capture file or -i INTERFACE, not both"))
        return run_live_analysis(**live)
    return _run_analysis(SAMPLE if capture is None else capture, **options)


def _print_rows(title: str, rows) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    Console().print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netsift")
def main() -> None:
    """netsift: packet captures to pandas frames, with Wireshark and Zeek field names."""


@main.command()
@click.argument("capture", required=False, default=SAMPLE, type=click.Path(dir_okay=True))
def info(capture: str) -> None:
    """Summarise CAPTURE like capinfos (default: the bundled sample)."""
    try:
        capture_info, stats, reader_warnings = capture_stats(capture)
    except CaptureError as error:
        _fail(error)
    for message in reader_warnings:
        click.echo(f"netsift: warning: {message}", err=True)
    _print_rows("Capture", stats.rows(capture_info))


@main.command(name="analyze")
@click.argument("capture", required=False, type=click.Path(dir_okay=True))
@live_options
@click.option("-o", "--output", "output", type=click.Path(file_okay=False),
              help="Directory to write one file per table into.")
@click.option("--format", "file_format", type=click.Choice(sorted(export.EXTENSIONS)), default="parquet",
              show_default=True, help="File format of the tables written with -o.")
@click.option("--tables", default=None, help="Comma-separated tables to write (default: all; for the Zeek "
              "formats, all that Zeek has a log for).")
@click.option("-C", "--ignore-checksums", is_flag=True,
              help="Track connections through bad checksums (Zeek's -C; for checksum-offloaded captures).")
@click.option("--extract-files", "extract_dir", type=click.Path(file_okay=False),
              help="Save HTTP bodies and SMTP attachments here, named by SHA-256 (adds a files table).")
@click.option("--capture-passwords", is_flag=True, help="Log HTTP Basic-auth passwords (off, as in Zeek).")
def analyze_command(capture: str | None, output: str | None, file_format: str, tables: str | None,
                    ignore_checksums: bool, extract_dir: str | None, capture_passwords: bool, **live) -> None:
    """Dissect CAPTURE (pcap or pcapng, gzip allowed; default: the bundled sample) and summarise it.

    With -i INTERFACE, capture live instead (dumpcap's options; a rolling
    dashboard on a terminal; Ctrl-C stops). With -o, write the tables to files
    as well: parquet, csv, jsonl, or Zeek's ASCII logs (zeek) and JSON logs (json).
    """
    names = None if tables is None else [name.strip() for name in tables.split(",") if name.strip()]
    unknown = [name for name in names or () if name not in TABLE_NAMES]
    if unknown:
        _fail(click.BadParameter(f"unknown table {', '.join(unknown)}; choose from {', '.join(TABLE_NAMES)}"))
    result = _result(capture, live, validate_checksums=not ignore_checksums, extract_dir=extract_dir,
                     capture_passwords=capture_passwords)
    for message in result.warnings:
        click.echo(f"netsift: warning: {message}", err=True)
    rows = result.stats.rows(result.capture)
    rows += [(f"{name} rows", f"{len(frame):,}") for name, frame in result.tables.items()]
    if len(result.weird):
        counts = result.weird["name"].value_counts()
        rows += [(f"weird: {name}", f"{count:,}") for name, count in counts.head(10).items()]
    _print_rows("netsift analysis", rows)
    if output:
        try:
            paths = export.write_tables(result.tables, output, file_format, names, SCHEMAS)
        except (OSError, KeyError) as error:
            _fail(error)
        for path in paths:
            click.echo(f"wrote {path}")


def _vlan_ids(context, parameter, text):
    try:
        return tuple(int(value) for value in (text or "").split(",") if value.strip())
    except ValueError:
        raise click.BadParameter(f"VLAN IDs are comma-separated numbers: {text!r}")


@main.command()
@click.argument("scenario", type=click.Choice(["dns", "http", "smtp", "mixed"]))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Capture file to write.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, byte-identical file.")
@click.option("--count", type=int, default=10, show_default=True, help="Conversations to generate.")
@click.option("--truth", type=click.Path(dir_okay=False), help="Write the ground truth (JSON lines) here.")
@click.option("--segment", type=click.Choice(["mss", "random", "every-byte"]), default="mss", show_default=True)
@click.option("--reorder", type=float, default=0.0, metavar="P", help="Probability of reordering a segment.")
@click.option("--duplicate", type=float, default=0.0, metavar="P", help="Probability of duplicating a segment.")
@click.option("--loss", type=float, default=0.0, metavar="P", help="Probability of losing a data segment (a real gap), only in content the logs do not "
              "depend on: HTTP bodies framed by Content-Length, TLS after STARTTLS.")
@click.option("--fragment", type=int, metavar="MTU", help="Fragment IP packets to this MTU.")
@click.option("--vlan", callback=_vlan_ids, metavar="ID[,ID]", help="VLAN tag, or QinQ as OUTER,INNER.")
@click.option("--ipv6", is_flag=True, help="Every conversation over IPv6.")
@click.option("--snaplen", type=int, help="Cut frames to this many bytes.")
@click.option("--malformed", type=float, default=0.0, metavar="P", help="Probability of a damaged copy.")
@click.option("--nanosecond", is_flag=True, help="Nanosecond timestamps.")
@click.option("--pcapng", is_flag=True, help="Write pcapng instead of pcap.")
@click.option("--live", is_flag=True, help="Run real servers and clients on 127.0.0.1 and capture them on lo "
              "(needs root or CAP_NET_RAW and netsift[live]; no impairments, no truth file).")
@click.pass_context
def generate(context: click.Context, scenario: str, output: str, live: bool, **options) -> None:
    """Write a deterministic synthetic capture of SCENARIO (dns, http, smtp, mixed), with ground truth.

    With --live, capture real traffic on loopback instead (not byte-reproducible: ports and times change).
    """
    if live:
        given = [f"--{name.replace('_', '-')}" for name in options if name not in ("seed", "count")
                 and context.get_parameter_source(name) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be used with --live")
        _generate_live(scenario, output, options["seed"], options["count"])
        return
    from captures.synthetic import generate as generate_capture
    try:
        summary = generate_capture(scenario, output, truth_path=options.pop("truth"), **options)
    except (ValueError, OSError) as error:
        _fail(error)
    protocols = ", ".join(f"{name} {count}" for name, count in sorted(summary.protocols.items()))
    click.echo(f"{summary.path}: {summary.packets} packets, {summary.conversations} conversations ({protocols})")


def _generate_live(scenario: str, output: str, seed: int, count: int) -> None:
    from captures.live import LiveCaptureError
    from captures.loopback import LoopbackError, generate_live
    try:
        run = generate_live(scenario, output, seed=seed, count=count)
    except (LoopbackError, LiveCaptureError, ValueError, OSError) as error:
        if isinstance(error, OSError) and error.filename and error.strerror:
            error = f"{error.filename}: {error.strerror}"
        _fail(error)
    protocols = ", ".join(f"{name} {number}" for name, number in sorted(run.conversations.items()))
    ports = ", ".join(f"{name} {port}" for name, port in sorted(run.ports.items()))
    click.echo(f"{run.path}: {run.packets} packets, {sum(run.conversations.values())} conversations ({protocols}); "
               f"captured on lo, ports {ports}; loopback checksums are not filled in: analyse with -C")
    if run.stats.dropped:
        click.echo(f"netsift: warning: the kernel dropped {run.stats.dropped} packets", err=True)


from .cli_report import report, verify  # noqa: E402 - registered on the group defined above

main.add_command(report)
main.add_command(verify)
main.add_command(interfaces)
main.add_command(capture_command)


if __name__ == "__main__":
    main()
