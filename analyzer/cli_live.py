"""Live capture commands: ``netsift interfaces``, ``netsift capture``, and ``-i IFACE`` for ``analyze``/``report``.

Registration in :mod:`analyzer.cli`::

    from .cli_live import capture, interfaces, live_options, run_live_analysis
    main.add_command(interfaces)
    main.add_command(capture)

and for a command that analyses (``analyze``, ``report``): decorate it with
``@live_options`` (adds ``-i``, ``-f``, ``-c``, ``-a``, ``-w``, ``-b``, ``-s``,
``-B``, ``-p``, ``--dashboard/--no-dashboard``; the values arrive as keyword
arguments named in :data:`LIVE_OPTION_NAMES`), and get its result with
``run_live_analysis(**live)`` when ``live["interface"]`` is set.

Option names and meanings follow dumpcap and tshark.  Errors (unknown
interface, no privileges, bad filter, bad option) are one line on stderr and
exit status 2.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time

import click

from captures import live as live_capture
from captures.live import DEFAULT_BUFFER_MB, DEFAULT_SNAPLEN, LiveCapture, LiveCaptureError, stop_on_signals
from captures.ring import CaptureFileWriter, OptionError, parse_autostop, parse_ring_buffer

#: Keyword arguments :func:`live_options` adds to a command.
LIVE_OPTION_NAMES = ("interface", "capture_filter", "count", "autostop", "write", "ring_buffer", "snaplen",
                     "buffer_size", "no_promiscuous", "dashboard")


def _fail(error) -> None:
    """One line on stderr, exit status 2 (as :func:`analyzer.cli._fail`)."""
    click.echo(f"netsift: error: {error}", err=True)
    sys.exit(2)


def _os_error(error):
    """``PATH: reason`` for an OSError about a file, else the error itself."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return error


def _interface_option(required: bool):
    return click.option("-i", "--interface", "interface", required=required, metavar="IFACE",
                        help="Interface to capture on: a name or a number from 'netsift interfaces'.")


_COMMON = [
    click.option("-f", "capture_filter", metavar="FILTER",
                 help="Capture filter in pcap-filter (tcpdump) syntax, compiled by libpcap."),
    click.option("-c", "count", type=int, metavar="COUNT", help="Stop after COUNT packets."),
    click.option("-a", "--autostop", "autostop", multiple=True, metavar="COND:VALUE",
                 help="Stop condition: duration:SECONDS, filesize:KB, files:N, packets:N (repeatable)."),
    click.option("-w", "write", metavar="FILE",
                 help="Write the packets to FILE (pcapng if it ends .pcapng, else pcap; '-' = stdout)."),
    click.option("-b", "--ring-buffer", "ring_buffer", multiple=True, metavar="COND:VALUE",
                 help="Ring buffer: filesize:KB, duration:SECONDS, interval:SECONDS, packets:N, files:N "
                      "(repeatable or comma-separated); files are PREFIX_NNNNN_YYYYMMDDHHMMSS.EXT."),
    click.option("-s", "--snapshot-length", "snaplen", type=int, default=DEFAULT_SNAPLEN, show_default=True,
                 metavar="SNAPLEN", help="Bytes kept per packet."),
    click.option("-B", "--buffer-size", "buffer_size", type=int, default=DEFAULT_BUFFER_MB, show_default=True,
                 metavar="MIB", help="Kernel capture buffer in MiB."),
    click.option("-p", "--no-promiscuous-mode", "no_promiscuous", is_flag=True,
                 help="Do not put the interface in promiscuous mode."),
]


def _apply(options, command):
    for option in reversed(options):
        command = option(command)
    return command


def _check_options(autostop, count, ring_buffer, write):
    try:
        stop = parse_autostop(autostop, count)
        ring = parse_ring_buffer(ring_buffer)
    except OptionError as error:
        _fail(error)
    if ring.enabled and not write:
        _fail("a ring buffer (-b) needs an output file (-w FILE)")
    if ring.enabled and not ring.switches:
        _fail("ring buffer requested, but no filesize, duration, interval or packets condition "
              "to switch files")
    return stop, ring


# ---------------------------------------------------------------------------
# netsift interfaces


@click.command()
def interfaces() -> None:
    """List the interfaces netsift can capture on (like dumpcap -D): number, name, index, state, addresses."""
    try:
        found = live_capture.interfaces()
    except LiveCaptureError as error:
        _fail(error)
    width = max((len(i.name) for i in found), default=4)
    for interface in found:
        index = "-" if interface.index is None else str(interface.index)
        notes = []
        if interface.loopback:
            notes.append("Loopback")
        if interface.description:
            notes.append(interface.description)
        addresses = ", ".join(interface.addresses)
        line = f"{interface.number:>2}. {interface.name:<{width}}  ifindex {index:>3}  {interface.state:<4}"
        if addresses:
            line += f"  {addresses}"
        if notes:
            line += f"  ({'; '.join(notes)})"
        click.echo(line.rstrip())


# ---------------------------------------------------------------------------
# netsift capture


@click.command()
@_interface_option(required=True)
@functools.partial(_apply, _COMMON)
@click.option("-n", "file_format", flag_value="pcapng", help="Write pcapng (default: by the file name).")
@click.option("-P", "file_format", flag_value="pcap", help="Write pcap (default: by the file name).")
@click.option("-q", "--quiet", is_flag=True, help="Do not show the running packet count.")
def capture(interface, capture_filter, count, autostop, write, ring_buffer, snaplen, buffer_size,
            no_promiscuous, file_format, quiet) -> None:
    """Capture packets on an interface into a file, like dumpcap.

    Without -w the packets go to a temporary pcapng file, whose name is
    printed.  Ctrl-C (or SIGTERM) stops the capture; the file is always
    complete.  At the end, tcpdump's statistics are printed on stderr.
    """
    stop, ring = _check_options(autostop, count, ring_buffer, write)
    pcapng = None if file_format is None else file_format == "pcapng"
    try:
        session = LiveCapture(interface, capture_filter, snaplen, promisc=not no_promiscuous,
                              buffer_mb=buffer_size, count=stop.packets, duration=stop.duration)
    except LiveCaptureError as error:
        _fail(error)
    show_files = write != "-"
    if not write:
        handle, write = tempfile.mkstemp(prefix=f"netsift_{session.iface}_", suffix=".pcapng")
        os.close(handle)
        pcapng = True if pcapng is None else pcapng

    def announce(name):
        if show_files:
            click.echo(f"File: {name}", err=True)

    writer = None
    error = None
    counter = sys.stderr.isatty() and not quiet
    try:
        try:
            writer = CaptureFileWriter(write, session.link_type, session.snaplen, pcapng=pcapng, ring=ring,
                                       autostop=stop)
        except (OSError, OptionError) as problem:
            _fail(_os_error(problem))
        click.echo(f"Capturing on '{session.iface}'", err=True)
        announce(writer.current)
        writer.on_file = announce
        heartbeat = 0.25 if ring.enabled or counter else None
        shown = time.monotonic()
        with stop_on_signals(session.stop):
            try:
                for batch in session.batches(heartbeat=heartbeat):
                    if len(batch):
                        writer.write_batch(batch)
                    else:
                        writer.tick()
                    if counter and time.monotonic() - shown >= 1.0:
                        click.echo(f"\rPackets: {writer.packets}", err=True, nl=False)
                        shown = time.monotonic()
                    if writer.full:
                        break
            except LiveCaptureError as problem:
                error = problem
    finally:
        if writer is not None:
            writer.close()
        session.close()
    if counter:
        click.echo(f"\rPackets: {writer.packets}", err=True)
    stats = session.stats()
    stats.captured = writer.packets
    for line in stats.lines():
        click.echo(line, err=True)
    if error is not None:
        _fail(error)


# ---------------------------------------------------------------------------
# -i IFACE for analyze / report


def live_options(command):
    """Add live capture options to an analysing command (``-i`` optional; see :data:`LIVE_OPTION_NAMES`)."""
    command = click.option("--dashboard/--no-dashboard", "dashboard", default=True, show_default=True,
                           help="With -i: show the live dashboard (on a terminal).")(command)
    command = _apply(_COMMON, command)
    return _interface_option(required=False)(command)


def run_live_analysis(interface, capture_filter=None, count=None, autostop=(), write=None, ring_buffer=(),
                      snaplen=DEFAULT_SNAPLEN, buffer_size=DEFAULT_BUFFER_MB, no_promiscuous=False,
                      dashboard=True, validate_checksums=False):
    """Capture on ``interface`` and analyse (the values of :func:`live_options`).

    ``validate_checksums`` stays off for live captures by default: the capturing
    host sees its own outgoing packets before the NIC (or loopback) fills in
    their checksums, so Zeek's checksum rule would drop them from ``conn``.

    Errors are one line and exit status 2; the capture statistics are printed
    on stderr as tcpdump prints them.  Returns the
    :class:`~analyzer.pipeline.AnalysisResult`.
    """
    from .live import analyze_live

    stop, ring = _check_options(autostop, count, ring_buffer, write)
    if write == "-":
        _fail("-w - (standard output) cannot be used while analysing")

    def ready(session):
        click.echo(f"Capturing on '{session.iface}'", err=True)

    try:
        result = analyze_live(interface, capture_filter, write=write, dashboard=dashboard, snaplen=snaplen,
                              promisc=not no_promiscuous, buffer_mb=buffer_size, ring=ring, autostop=stop,
                              on_ready=ready, on_file=lambda name: click.echo(f"File: {name}", err=True),
                              validate_checksums=validate_checksums)
    except (LiveCaptureError, OptionError, OSError) as error:
        _fail(_os_error(error))
    for line in result.live_stats.lines():
        click.echo(line, err=True)
    return result


# ---------------------------------------------------------------------------
# Standalone entry point (until analyzer.cli registers the commands):
#   python -m analyzer.cli_live interfaces | capture ... | analyze -i IFACE ...


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """netsift live capture commands."""


main.add_command(interfaces)
main.add_command(capture)


@main.command(name="analyze")
@live_options
def _analyze(**live) -> None:
    """Capture with -i and print a summary (what 'netsift analyze -i' does once registered)."""
    if not live["interface"]:
        _fail("-i IFACE is required here")
    result = run_live_analysis(**live)
    rows = result.stats.rows(result.capture, result.warnings)
    rows += [(f"{name} rows", f"{len(frame):,}") for name, frame in result.tables.items()]
    for label, value in rows:
        click.echo(f"{label}: {value}")


if __name__ == "__main__":
    main()
