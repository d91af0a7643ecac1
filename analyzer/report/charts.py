"""Charts for the HTML report: matplotlib figures rendered to inline SVG.

Why matplotlib to SVG, inline:

- The report must be one file that works offline.  A JavaScript chart
  library would have to be embedded whole (hundreds of kB, a licence to carry,
  code to audit); an SVG is the drawing itself: a chart is 20–60 kB.
- SVG is vector: crisp at any zoom and in print, and the browser renders it
  without running code (nothing to break, no console errors).
- Text stays text (``svg.fonttype = "none"``): small, selectable, and drawn in
  the page's sans-serif font.
- Matplotlib is used without pyplot (a bare :class:`~matplotlib.figure.Figure`),
  so no GUI backend or global state is touched; ids are made deterministic
  (``svg.hashsalt``) and prefixed per chart, so several SVGs share a page.

Charts only show figures and fixed labels (never capture-derived text), so
matplotlib's mathtext (``$…$``) cannot be triggered by a capture; SVG text is
XML-escaped by matplotlib anyway.

:data:`CHARTS` maps ``(section, table)`` to the function that draws that
table; :func:`render_svg` returns the ``<svg>`` text or None without matplotlib.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pandas as pd

WIDTH, HEIGHT = 10.0, 3.2       # inches; the page scales the SVG to its width
BLUE, ORANGE, GREEN, GREY = "#3b6ea5", "#e08a2c", "#4c9a5b", "#9aa0a6"


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(rows: int = 1, height: float = HEIGHT):
    from matplotlib.figure import Figure
    figure = Figure(figsize=(WIDTH, height), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#e3e3e3", linewidth=0.8)
        ax.set_axisbelow(True)
    return figure, axes


def _human(value: float, _position=None) -> str:
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def traffic_chart(io_table: pd.DataFrame, step_label: str = ""):
    """Frames per interval (stacked: TCP, UDP, other) above bits per second."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    figure, (top, bottom) = _figure(2, HEIGHT * 1.5)
    x = io_table["start"].to_numpy(dtype=float)
    step = float(x[1] - x[0]) if len(x) > 1 else 1.0
    edges = list(x) + [(x[-1] if len(x) else 0.0) + step]
    base = 0.0
    for column, colour, label in (("tcp", BLUE, "TCP"), ("udp", ORANGE, "UDP"), ("other", GREY, "other")):
        values = io_table[column].to_numpy(dtype=float)
        top.stairs(base + values, edges, baseline=base, fill=True, color=colour, label=label, linewidth=0)
        base = base + values
    top.set_ylabel("frames / interval")
    top.legend(loc="upper right", frameon=False, ncols=3, fontsize=9)
    top.yaxis.set_major_formatter(FuncFormatter(_human))
    top.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    bits = io_table["bits/s"].to_numpy(dtype=float)
    bottom.stairs(bits, edges, fill=True, color=GREEN, alpha=0.2, linewidth=0)
    bottom.stairs(bits, edges, color=GREEN, linewidth=1.2)
    bottom.set_ylabel("bits / s")
    bottom.yaxis.set_major_formatter(FuncFormatter(_human))
    bottom.yaxis.set_major_locator(MaxNLocator(5))
    bottom.set_xlabel(f"seconds since the first frame{f' (interval {step_label})' if step_label else ''}")
    bottom.set_xlim(x[0] if len(x) else 0, (x[-1] + step) if len(x) else 1)
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
    return figure


def bar_chart(table: pd.DataFrame, label_column: str, value_column: str, xlabel: str, ylabel: str,
              colour: str = BLUE):
    """Vertical bars of ``value_column`` per ``label_column`` (fixed bucket names)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    figure, (ax,) = _figure(1, HEIGHT * 0.8)
    positions = range(len(table))
    ax.bar(positions, table[value_column].to_numpy(dtype=float), color=colour, width=0.75)
    ax.set_xticks(list(positions), [str(label) for label in table[label_column]], fontsize=8.5,
                  rotation=30 if len(table) > 8 else 0, ha="right" if len(table) > 8 else "center",
                  rotation_mode="anchor")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(FuncFormatter(_human))
    ax.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    return figure


def _interval(report_tables: dict[str, pd.DataFrame]) -> str:
    table = report_tables.get("interval")
    if table is None:
        return ""
    values = dict(zip(table["field"], table["value"]))
    return str(values.get("interval", ""))


#: ``(section, table)`` to ``(title, draw(table, section_tables) -> Figure)``.
CHARTS: dict[tuple[str, str], tuple[str, Callable]] = {
    ("traffic", "io"): ("Traffic over time", lambda t, s: traffic_chart(t, _interval(s))),
    ("dns", "rtt_histogram"): ("DNS response time", lambda t, s: bar_chart(
        t, "rtt", "queries", "response time (rtt)", "queries")),
    ("http", "response_size_histogram"): ("HTTP response body sizes", lambda t, s: bar_chart(
        t, "body size", "responses", "response_body_len", "responses", ORANGE)),
    ("http", "latency_histogram"): ("HTTP latency", lambda t, s: bar_chart(
        t, "latency", "requests", "request to response", "requests", GREEN)),
}


def svg_text(figure, prefix: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), its ids prefixed with ``prefix``."""
    import matplotlib
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "netsift", "font.size": 10,
                                "font.family": "sans-serif"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f'url(#{prefix}-{m.group(1)})', text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', text)
    return text


def render_svg(section: str, name: str, tables: dict[str, pd.DataFrame]) -> str | None:
    """The chart of ``tables[name]`` of ``section`` as SVG text; None when there is no chart or no matplotlib."""
    spec = CHARTS.get((section, name))
    table = tables.get(name)
    if spec is None or table is None or not len(table) or not available():
        return None
    figure = spec[1](table, tables)
    return svg_text(figure, f"{section}-{name}".replace("_", "-"))
