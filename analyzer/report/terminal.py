"""The report's terminal summary with rich tables.

Cells are :class:`rich.text.Text`, so capture-derived text is never read as
rich markup (``[bold]`` in a hostname stays literal).
"""

from __future__ import annotations


import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .model import SECTION_TITLES, TABLE_TITLES, Report, number_text

#: The tables shown per section on the terminal (others are in the written report).
TERMINAL_TABLES = {
    "capture": ("summary",),
    "hierarchy": ("protocols",),
    "traffic": ("interval",),
    "conversations": ("summary", "conversations", "endpoints", "conn_states"),
    "dns": ("summary", "qtypes", "rcodes", "top_names"),
    "http": ("summary", "methods", "status_codes", "top_hosts"),
    "smtp": ("summary", "senders", "reply_codes"),
    "anomalies": ("summary", "weird", "tcp"),
}
#: Columns left out on the terminal (kept in the written report).
HIDDEN = {("hierarchy", "protocols"): {"protocol", "depth"},
          ("conversations", "conversations"): {"rel start", "frames A→B", "bytes A→B", "frames B→A", "bytes B→A",
                                               "family", "duration", "connections"},
          ("conversations", "endpoints"): {"tx frames", "rx frames", "family"}}


def _cell(value) -> str:
    number = number_text(value, lambda x: f"{x:,.3f}".rstrip("0").rstrip("."))
    return str(value) if number is None else number


def print_report(report: Report, console: Console | None = None, rows: int = 10) -> None:
    console = console or Console()
    for key, tables in report.sections.items():
        console.rule(Text(SECTION_TITLES.get(key, key), style="bold"))
        for name in TERMINAL_TABLES.get(key, tuple(tables)[:2]):
            frame = tables.get(name)
            if frame is None or not len(frame):
                continue
            hidden = HIDDEN.get((key, name), set())
            columns = [c for c in frame.columns if c not in hidden]
            figures = name in ("summary", "interval") and len(frame.columns) == 2
            title = TABLE_TITLES.get((key, name), name.replace("_", " ").capitalize())
            table = Table(title=Text(title), title_justify="left", show_header=not figures,
                          header_style="bold", pad_edge=False)
            indent = frame["depth"].to_numpy() if (key, name) == ("hierarchy", "protocols") else None
            for column in columns:
                numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
                table.add_column(Text(str(column)), justify="right" if numeric else "left",
                                 style="bold" if figures and column == columns[0] else None,
                                 overflow="fold", max_width=48)
            limit = len(frame) if figures or (key, name) == ("hierarchy", "protocols") else rows
            for row in range(min(limit, len(frame))):
                cells = []
                for column in columns:
                    text = _cell(frame[column].iat[row])
                    if indent is not None and column == "layer":
                        text = "  " * int(indent[row]) + text
                    cells.append(Text(text))
                table.add_row(*cells)
            if len(frame) > limit:
                table.caption = Text(f"{limit} of {len(frame)} rows; all in the written report")
            console.print(table)
    for key, reason in report.skipped.items():
        console.print(Text(f"{SECTION_TITLES.get(key, key)}: {reason}", style="dim"))
