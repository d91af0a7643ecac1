"""``netsift report`` and ``netsift verify`` (click commands, registered on :func:`analyzer.cli.main`).

Register with (anywhere in ``analyzer/cli.py``; this module imports ``cli`` lazily)::

    from .cli_report import report, verify
    main.add_command(report)
    main.add_command(verify)
"""

from __future__ import annotations

import os
import sys
import time

import click

from .cli_live import live_options
from rich.console import Console
from rich.table import Table
from rich.text import Text


FORMATS = {"html": ".html", "md": ".md", "json": ".json"}


def _format_for(output: str | None, file_format: str | None) -> str:
    if file_format:
        return file_format
    if output and output != "-":
        extension = os.path.splitext(output)[1].lower()
        for name, suffix in FORMATS.items():
            if extension == suffix or (name == "md" and extension == ".markdown"):
                return name
    return "html"


@click.command()
@click.argument("capture", required=False, type=click.Path(dir_okay=True))
@live_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (default report.html / report.md / report.json; '-' for standard output).")
@click.option("--format", "file_format", type=click.Choice(sorted(FORMATS)), default=None,
              help="Report format (default: from the -o extension, else html).")
@click.option("--top", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Rows in each ranked table (top talkers, names, hosts, …).")
@click.option("-q", "--quiet", is_flag=True, help="No terminal summary.")
def report(capture: str | None, output: str | None, file_format: str | None, top: int, quiet: bool,
           **live) -> None:
    """Report on CAPTURE (default: the bundled sample): protocols, traffic, conversations, DNS/HTTP/SMTP, anomalies.

    Prints a summary on the terminal and writes the report: one self-contained
    HTML page with charts (works offline), Markdown, or JSON.
    """
    from .cli import _fail, _result  # here, not at the top: cli.py imports this module to register it
    from .report import build_report

    file_format = _format_for(output, file_format)
    output = output or f"report{FORMATS[file_format]}"
    started = time.monotonic()
    result = _result(capture, live)
    for message in result.warnings:
        click.echo(f"netsift: warning: {message}", err=True)
    built = build_report(result, top=top)
    to_stdout = output == "-"
    if not quiet and not to_stdout:
        built.print(Console())
    try:
        if to_stdout:
            text = {"html": built.to_html, "md": built.to_markdown, "json": built.to_json}[file_format]()
            click.echo(text)
        else:
            built.write(output, file_format)
    except OSError as error:
        _fail(error)
    if not to_stdout:
        size = os.path.getsize(output)
        click.echo(f"wrote {output} ({size:,} bytes, {time.monotonic() - started:.1f} s)")


def _print_frame(console: Console, title: str, frame, caption: str | None = None) -> None:
    table = Table(title=Text(title), title_justify="left", header_style="bold", pad_edge=False)
    for column in frame.columns:
        numeric = frame[column].dtype.kind in "iuf"
        table.add_column(Text(str(column)), justify="right" if numeric else "left", overflow="fold", max_width=60)
    for row in frame.itertuples(index=False):
        table.add_row(*(Text(f"{v:,}" if isinstance(v, int) else f"{v:.3f}" if isinstance(v, float) else str(v))
                        for v in row))
    if caption:
        table.caption = Text(caption)
    console.print(table)


@click.command()
@click.argument("captures", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--corpus", type=click.Path(file_okay=False),
              help="Corpus directory (default $NETSIFT_CORPUS, else <repo>/../shared/corpus).")
@click.option("--tables", default="packets,conn,dns,http,smtp", show_default=True,
              help="Comparisons to run: packets (tshark dumps), conn, dns, http, smtp (Zeek logs).")
@click.option("--top", type=click.IntRange(1, 1000), default=20, show_default=True, help="Mismatch rows to show.")
@click.option("--strict", is_flag=True, help="Exit 1 when any difference is unexplained.")
def verify(captures: tuple[str, ...], corpus: str | None, tables: str, top: int, strict: bool) -> None:
    """Compare netsift with tshark and Zeek on CAPTURES (default: the shared corpus) and print the figures.

    packets: every field of the packets frame against the capture's
    X.tshark.tsv (tshark -T fields); conn: the conn frame against X.conn.log
    (Zeek); dns, http, smtp: those frames against X.dns.log, X.http.log,
    X.smtp.log (one row each).  Differences recorded as deliberate in
    analyzer/verify/tshark.py are counted apart.  Exit status 0 (with
    --strict: 1 when a difference is unexplained), 2 when the corpus is missing.
    """
    import warnings

    from captures import CaptureError

    from .cli import _fail
    from .verify import TABLES, VerifyError
    from .verify import verify as run_verify

    names = tuple(name.strip() for name in tables.split(",") if name.strip())
    unknown = [name for name in names if name not in TABLES]
    if unknown or not names:
        _fail(click.BadParameter(f"unknown comparison {', '.join(unknown) or '(none)'}; "
                                 f"choose from {', '.join(TABLES)}"))
    for capture in captures:
        if not os.path.exists(capture):
            _fail(FileNotFoundError(f"No such file: {capture}"))
    console = Console()
    started = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_verify(list(captures) or None, corpus, names, top)
    except (VerifyError, CaptureError, OSError) as error:
        _fail(error)
    packets, conn, logs = result.packets, result.conn, result.logs
    if packets is not None:
        console.rule(Text("packets frame vs tshark", style="bold"))
        if packets.captures:
            overall = packets.fields.iloc[-1]
            _print_frame(console, f"{packets.captures} captures compared with tshark, field by field",
                         packets.fields, "frame.time_epoch compared as integer ns")
            console.print(Text(f"overall: {overall['%']:.3f} % of {int(overall['compared']):,} cells equal; "
                               f"{overall['% excl. deliberate']:.3f} % counting deliberate differences; "
                               f"{packets.unexplained:,} unexplained cells"))
        for title, frame in (("analyze() raised", packets.errors), ("frame counts differ", packets.frame_counts),
                             ("mismatch groups (unexplained first)", packets.mismatches),
                             ("not compared", packets.skipped)):
            if len(frame):
                _print_frame(console, title, frame)
    if conn is not None:
        console.rule(Text("conn frame vs Zeek conn.log", style="bold"))
        if conn.logs:
            overall = conn.columns.iloc[-1] if len(conn.columns) else None
            _print_frame(console, f"{conn.logs} conn.log baselines compared, column by column", conn.columns)
            if overall is not None:
                console.print(Text(f"overall: {overall['%']:.2f} % of {int(overall['cells']):,} cells agree; "
                                   f"service (needs the application dissectors): {conn.service[0]}/{conn.service[1]}; "
                                   f"missing connections {len(conn.missing)}, extra {len(conn.extra)}"))
        for title, frame in (("top mismatches", conn.mismatches), ("missing connections (Zeek's, not ours)",
                                                                    conn.missing.head(top)),
                             ("extra connections (ours, not Zeek's)", conn.extra.head(top)),
                             ("not compared", conn.skipped)):
            if len(frame):
                _print_frame(console, title, frame)
    if logs is not None:
        console.rule(Text("dns, http, smtp frames vs Zeek logs", style="bold"))
        if len(logs.logs):
            _print_frame(console, "Zeek log baselines compared, cell by cell", logs.logs,
                         "http: non-MIME columns of matched rows; dns, smtp: the cells of missing or extra "
                         "rows count as unequal")
        if len(logs.skipped):
            _print_frame(console, "not compared", logs.skipped)
    click.echo(f"verify took {time.monotonic() - started:.1f} s")
    if strict and not result.clean:
        sys.exit(1)
