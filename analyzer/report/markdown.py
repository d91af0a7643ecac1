"""The report as GitHub-flavoured Markdown: one heading per section, pipe tables, no charts.

Capture-derived text is escaped for Markdown and HTML (renderers pass raw HTML
through): ``& < >`` become entities, ``| \\ ` * _ [ ]`` get a backslash, and
line breaks become spaces.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from .model import SECTION_TITLES, TABLE_TITLES, Report, number_text

_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def escape(value) -> str:
    """Text safe in a Markdown table cell."""
    number = number_text(value, lambda x: f"{x:,.6g}")
    if number is not None:
        return number
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    text = html.escape(str(value), quote=False)
    text = re.sub(r"[\r\n\t]+", " ", text)
    return _SPECIAL.sub(r"\\\1", text)


def table_markdown(frame: pd.DataFrame) -> str:
    """A pipe table; numeric columns right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    lines = ["| " + " | ".join(escape(c) for c in frame.columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    columns = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    for row in range(len(frame)):
        lines.append("| " + " | ".join(escape(values[row]) for values in columns) + " |")
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    parts = [f"# {escape(report.title)}", ""]
    for key, tables in report.sections.items():
        parts += [f"## {SECTION_TITLES.get(key, key)}", ""]
        for note in report.notes.get(key, []):
            parts += [f"_{escape(note)}_", ""]
        for name, frame in tables.items():
            title = TABLE_TITLES.get((key, name), name.replace("_", " ").capitalize())
            parts += [f"### {escape(title)}", "", table_markdown(frame), ""]
    for key, reason in report.skipped.items():
        parts += [f"_{escape(SECTION_TITLES.get(key, key))}: {escape(reason)}._", ""]
    return "\n".join(parts)
