"""Protocol reports: a capture's statistics as small tables, charts, and HTML/Markdown/JSON/terminal output.

>>> from analyzer import analyze
>>> from analyzer.report import build_report
>>> report = build_report(analyze("capture.pcap"))          # doctest: +SKIP
>>> report.sections["hierarchy"]["protocols"]               # doctest: +SKIP
>>> report.to_html("report.html")                           # doctest: +SKIP

``Report.sections`` is ``{section: {table: DataFrame}}``; sections, in order:
``capture`` (capinfos figures), ``hierarchy`` (``tshark -z io,phs``),
``traffic`` (``-z io,stat``), ``conversations`` (``-z conv,ip``,
``-z endpoints,ip`` and conn.log states), ``dns`` / ``http`` / ``smtp``
(when the analysis has those tables), ``anomalies`` (weird.log, conn history,
missed bytes).  Modules: :mod:`.sections` and :mod:`.apps` compute the tables,
:mod:`.hierarchy` the protocol paths, :mod:`.charts` the SVG charts,
:mod:`.html`, :mod:`.markdown`, :mod:`.terminal` render.
"""

from .model import SECTION_TITLES, Report, build_report

__all__ = ["SECTION_TITLES", "Report", "build_report"]
