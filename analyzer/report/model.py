"""The :class:`Report` object and :func:`build_report`."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import apps, sections

#: Section keys in report order, with their titles.
SECTION_TITLES = {
    "capture": "Capture summary",
    "hierarchy": "Protocol hierarchy",
    "traffic": "Traffic over time",
    "conversations": "Conversations and endpoints",
    "dns": "DNS",
    "http": "HTTP",
    "smtp": "SMTP",
    "anomalies": "Anomalies",
}

#: Table titles for display; a table not listed shows its key with ``_`` as spaces.
TABLE_TITLES = {
    ("hierarchy", "protocols"): "Frames and bytes per protocol path (tshark -z io,phs)",
    ("traffic", "io"): "Frames and bytes per interval (tshark -z io,stat)",
    ("conversations", "conversations"): "Top IP conversations (tshark -z conv,ip / conv,ipv6)",
    ("conversations", "endpoints"): "Top IP endpoints (tshark -z endpoints,ip)",
    ("conversations", "services"): "Connections per service (conn.log; proto/port where Zeek set no service)",
    ("conversations", "conn_states"): "Connection states (conn.log conn_state)",
    ("anomalies", "weird"): "weird.log by name",
    ("anomalies", "tcp"): "TCP retransmissions, gaps, missed bytes (conn.log history and missed_bytes)",
    ("anomalies", "history"): "conn.log history letters (connections showing each)",
    ("anomalies", "gaps"): "Connections with the most missed bytes",
    ("dns", "rcodes"): "Response codes (answered queries)",
    ("dns", "rtt"): "Response time (rtt)",
    ("http", "response_sizes"): "Response body sizes (response_body_len)",
}

APP_NOTES = {
    "dns": "Zeek dns.log: one row per query and its reply; rates of NXDOMAIN and SERVFAIL are of the answered.",
    "http": "Zeek http.log: one row per request/response pair.",
    "smtp": "Zeek smtp.log: one row per mail transaction.",
}


def number_text(value, float_text) -> str | None:
    """A table cell's text for the Markdown and terminal reports when it is a number or a null.

    "" for a null, integers with thousands separators (whole floats too),
    other floats through ``float_text(float)``; None for anything else
    (each renderer writes those its own way).
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return f"{int(number):,}" if number.is_integer() and abs(number) < 1e15 else float_text(number)
    return None


@dataclass
class Report:
    """A capture's report: sections of small aggregate tables, and renderers.

    Attributes:
        title: the report's title (the capture's file name).
        sections: ``{section key: {table name: DataFrame}}`` in report order;
            keys are those of :data:`SECTION_TITLES` whose input exists (the
            ``dns``/``http``/``smtp`` sections only when ``result.tables`` has
            that table).  Every table is an aggregate of at most ``top`` rows
            for the ranked ones (``traffic.io`` has one row per interval, at
            most :data:`analyzer.report.sections.MAX_BINS` and a few).
        notes: ``{section key: [text]}``: how to read a section.
        skipped: ``{section key: reason}`` for sections left out.
    """

    title: str
    sections: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> dict[str, pd.DataFrame]:
        return self.sections[key]

    def table(self, section: str, name: str) -> pd.DataFrame:
        """One table, e.g. ``report.table("hierarchy", "protocols")``."""
        return self.sections[section][name]

    def to_html(self, path: str | os.PathLike | None = None) -> str:
        """The self-contained HTML page (written to ``path`` when given); returns the text."""
        from .html import render_html
        text = render_html(self)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        return text

    def to_markdown(self, path: str | os.PathLike | None = None) -> str:
        """GitHub-flavoured Markdown (no charts; their tables are there)."""
        from .markdown import render_markdown
        text = render_markdown(self)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        return text

    def to_dict(self) -> dict:
        """Plain JSON-ready data: ``{"title", "sections": {key: {table: [records]}}, "notes", "skipped"}``."""
        return {
            "title": self.title,
            "sections": {key: {name: json.loads(frame.to_json(orient="records", date_format="iso",
                                                              default_handler=str))
                               for name, frame in tables.items()}
                         for key, tables in self.sections.items()},
            "notes": self.notes,
            "skipped": self.skipped,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """:meth:`to_dict` as JSON text (written to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        return text

    def write(self, path: str | os.PathLike, file_format: str = "html") -> None:
        """Write in ``file_format`` (``html``, ``md``, ``json``)."""
        {"html": self.to_html, "md": self.to_markdown, "json": self.to_json}[file_format](path)

    def print(self, console=None, rows: int = 10) -> None:
        """A terminal summary with rich: each section's key tables, ``rows`` rows each."""
        from .terminal import print_report
        print_report(self, console, rows)


def build_report(result, top: int = 20) -> Report:
    """The report of an :class:`analyzer.AnalysisResult` (or anything with ``tables``, ``stats``, ``capture``).

    Args:
        result: the analysis; ``result.tables`` needs ``packets``; ``conn``,
            ``weird``, ``dns``, ``http``, ``smtp`` are used when present.
        top: rows kept in each ranked table (top names, talkers, …).
    """
    path = getattr(result.capture, "path", None)
    title = os.path.basename(str(path)) if path else "capture"
    report = Report(title=f"netsift report: {title}")
    report.sections["capture"] = sections.capture_section(result)
    report.sections["hierarchy"] = sections.hierarchy_section(result)
    report.notes["hierarchy"] = [
        "Layers come from which columns of the packets frame are set (tshark -z io,phs counts the same way for "
        "link, network and transport layers). Each row counts its descendants. The application layer is the "
        "connection's Zeek service (conn.log), so every frame of an HTTP connection counts under http, where "
        "tshark counts only the frames that carry HTTP data."]
    report.sections["traffic"] = sections.traffic_section(result)
    report.sections["conversations"] = sections.conversations_section(result, top)
    report.notes["conversations"] = [
        "A conversation is an unordered pair of outer IP addresses; A is the source of its first frame. "
        f"Tables list the top {top} by bytes together with the top {top} by frames (click a heading to sort)."]
    for name in ("dns", "http", "smtp"):
        table = result.tables.get(name)
        if table is None:
            report.skipped[name] = f"no {name} table in this analysis"
            continue
        report.sections[name] = apps.app_section(name, table, top)
        report.notes[name] = [APP_NOTES[name]]
    report.sections["anomalies"] = sections.anomalies_section(result, top)
    report.notes["anomalies"] = [
        "Zeek's history letters: upper case for the originator, lower case for the responder; "
        "T/t retransmitted payload, G/g content gap (missed_bytes counts the bytes in gaps)."]
    return report
