"""The report as one self-contained HTML page: inline CSS, inline SVG charts, a few lines of inline JS.

Nothing is fetched: no CDN, no font, no image URL.  Every piece of text that
can come from a capture (addresses, names, URIs, user agents, subjects, weird
names, the file name…) goes through :func:`html.escape`: captures are
untrusted input.  Tables are the report's aggregates (top-N), so the page's
size does not grow with the capture.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from . import charts
from .model import SECTION_TITLES, TABLE_TITLES, Report

#: Tables shown as ``field: value`` lists rather than sortable tables.
FIGURE_TABLES = {"summary", "interval"}
#: Tables with more rows than this are folded into a <details> element (the hierarchy never is).
FOLD_ROWS = 40
NEVER_FOLD = {("hierarchy", "protocols")}

CSS = """
:root { --fg: #1d2329; --muted: #5f6b76; --line: #dde2e7; --head: #f3f5f7; --accent: #3b6ea5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: #fff; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 28px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
nav span.skipped { color: var(--muted); margin-right: 16px; white-space: nowrap; }
main { max-width: 1280px; padding: 0 28px 40px; }
section { margin-top: 26px; }
h2 { font-size: 19px; border-bottom: 2px solid var(--accent); padding-bottom: 3px; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.note { color: var(--muted); margin: 4px 0 10px; max-width: 100ch; }
.grid { display: flex; flex-wrap: wrap; gap: 6px 28px; align-items: flex-start; }
.grid > div { min-width: 0; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 2px 0 6px; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
td { max-width: 46ch; overflow-wrap: anywhere; }
th { background: var(--head); font-weight: 600; position: sticky; top: 38px; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #b3bcc4; font-size: 11px; }
table.sortable th[aria-sort=ascending]::after { content: " \\2191"; color: var(--fg); }
table.sortable th[aria-sort=descending]::after { content: " \\2193"; color: var(--fg); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fb; }
table.figures th { position: static; background: none; font-weight: 500; color: var(--muted); }
figure { margin: 8px 0 14px; }
figure svg { width: 100%; max-width: 1100px; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
footer { color: var(--muted); font-size: 12px; padding: 16px 28px; border-top: 1px solid var(--line); }
"""

# Click a heading to sort by that column; numbers sort by their data-v value, text case-insensitively.
JS = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-v');
    return v === null ? cell.textContent.trim().toLowerCase() : parseFloat(v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, column) {
      th.addEventListener('click', function () {
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[column]), y = key(b.cells[column]);
          return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _is_number_column(series: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _format_number(value) -> tuple[str, str]:
    """(display text, data-v) of a number cell."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "", "-Infinity"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}", str(int(value))
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}", repr(number)
    text = f"{number:,.6f}".rstrip("0").rstrip(".") if abs(number) < 1000 else f"{number:,.1f}"
    return text, repr(number)


def _format_text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return f"{int(value):,}"
    return str(value)


def table_html(frame: pd.DataFrame, section: str = "", name: str = "") -> str:
    """One table: ``figures`` (two columns, field: value) or ``sortable`` (every column a heading)."""
    if name in FIGURE_TABLES and len(frame.columns) == 2:
        rows = "".join(f"<tr><th>{_e(_format_text(label))}</th><td>{_e(_format_text(value))}</td></tr>"
                       for label, value in zip(frame.iloc[:, 0], frame.iloc[:, 1]))
        return f'<table class="figures"><tbody>{rows}</tbody></table>'
    numeric = [_is_number_column(frame[column]) for column in frame.columns]
    head = "".join(f'<th scope="col"{" class=num" if is_num else ""}>{_e(column)}</th>'
                   for column, is_num in zip(frame.columns, numeric))
    indent = frame["depth"].to_numpy() if (section, name) == ("hierarchy", "protocols") else None
    body = []
    columns = [frame[column].to_numpy(dtype=object) for column in frame.columns]
    for row in range(len(frame)):
        cells = []
        for index, (values, is_num) in enumerate(zip(columns, numeric)):
            value = values[row]
            if is_num:
                text, key = _format_number(value)
                cells.append(f'<td class="num" data-v="{_e(key)}">{_e(text)}</td>')
            else:
                text = _e(_format_text(value))
                if indent is not None and frame.columns[index] == "layer":
                    text = f'<span style="padding-left:{int(indent[row]) * 1.2:.1f}em">{text}</span>'
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = (f'<table class="sortable"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table>')
    if len(frame) > FOLD_ROWS and (section, name) not in NEVER_FOLD:
        table = f"<details><summary>Show the table ({len(frame):,} rows)</summary>{table}</details>"
    return table


def _title(section: str, name: str) -> str:
    return TABLE_TITLES.get((section, name), name.replace("_", " ").capitalize())


def section_html(report: Report, key: str) -> str:
    tables = report.sections[key]
    parts = [f'<section id="{_e(key)}"><h2>{_e(SECTION_TITLES.get(key, key))}</h2>']
    for note in report.notes.get(key, []):
        parts.append(f'<p class="note">{_e(note)}</p>')
    figures = []
    for name in tables:
        if (key, name) in charts.CHARTS:
            svg = charts.render_svg(key, name, tables)
            title = charts.CHARTS[(key, name)][0]
            if svg is not None:
                figures.append(f'<figure class="chart" data-chart="{_e(key)}-{_e(name)}">{svg}'
                               f"<figcaption>{_e(title)}</figcaption></figure>")
            else:
                figures.append(f'<p class="note">{_e(title)}: chart not drawn (matplotlib is not installed); '
                               f"the figures are in the table below.</p>")
    small, large = [], []
    for name, frame in tables.items():
        block = f'<div><h3>{_e(_title(key, name))}</h3>{table_html(frame, key, name)}</div>'
        (small if len(frame.columns) <= 4 and len(frame) <= FOLD_ROWS else large).append(block)
    if small:
        parts.append('<div class="grid">' + "".join(small) + "</div>")
    parts.extend(figures)
    parts.extend(large)
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """The whole page as text."""
    try:
        from importlib.metadata import version
        netsift_version = version("netsift")
    except Exception:   # not installed (running from a checkout)
        netsift_version = "dev"
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = [f'<a href="#{_e(key)}">{_e(SECTION_TITLES.get(key, key))}</a>' for key in report.sections]
    nav += [f'<span class="skipped" title="{_e(reason)}">{_e(SECTION_TITLES.get(key, key))}: none</span>'
            for key, reason in report.skipped.items()]
    body = [section_html(report, key) for key in report.sections]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network access from the page, whatever a capture's text says.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(report.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>{_e(report.title)}</h1><p>made by netsift {_e(netsift_version)} on {_e(made)}</p></header>",
        f"<nav>{''.join(nav)}</nav>",
        "<main>", *body, "</main>",
        "<footer>Tables are aggregates (top rows only); click a column heading to sort. "
        "Field names follow Wireshark and Zeek.</footer>",
        f"<script>{JS}</script>",
        "</body></html>",
    ])
