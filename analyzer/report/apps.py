"""The application sections: DNS (dns.log), HTTP (http.log), SMTP (smtp.log).

Each takes the table with Zeek's column names and returns ``{table name:
DataFrame}``; columns a table lacks are skipped (Zeek's bare-mode logs and
hand-made frames carry only some), so a section shows what its input has.
Set/vector columns (``answers``, ``rcptto``, ``resp_mime_types``, ``fuids``…)
may be lists, tuples, sets, arrays or Zeek's comma-separated text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._util import (
    as_text,
    counts,
    explode_sets,
    flags,
    has_columns,
    histogram,
    numeric,
    percent,
    quantile_table,
    set_sizes,
)

#: RTT / latency buckets, seconds, and their labels.
TIME_EDGES = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, np.inf]
TIME_LABELS = ["<1 ms", "1–2 ms", "2–5 ms", "5–10 ms", "10–20 ms", "20–50 ms", "50–100 ms", "100–200 ms",
               "200–500 ms", "0.5–1 s", "1–2 s", "2–5 s", "≥5 s"]
#: Body size buckets, bytes.
SIZE_EDGES = [0, 1, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, np.inf]
SIZE_LABELS = ["0 B", "1 B–1 kB", "1–10 kB", "10–100 kB", "100 kB–1 MB", "1–10 MB", "≥10 MB"]


def _figures(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["figure", "value"]).astype({"value": object})


def _rate(part: int, whole: int) -> str:
    return f"{part:,} ({percent(part, whole):.2f} %)" if whole else f"{part:,}"


# ---- DNS -------------------------------------------------------------------------------------


def dns_section(dns: pd.DataFrame, top: int = 20) -> dict[str, pd.DataFrame]:
    """Like ``tshark -z dns,tree`` on Zeek's dns.log: one row of ``dns`` is a query (and its reply).

    Tables: ``summary`` (queries, answered, unanswered, NXDOMAIN and SERVFAIL
    rates of the answered, rtt median/p95); ``qtypes``; ``rcodes`` (of the
    answered); ``top_names`` (with their NXDOMAIN count); ``top_servers``
    (``id.resp_h``: queries, unanswered, NXDOMAIN, median rtt ms);
    ``top_clients``; ``unanswered`` (top names with no reply, and their
    server); ``rtt`` (quantiles, ms) and ``rtt_histogram`` (buckets).
    A query is unanswered when its ``rcode`` is unset (Zeek logs it at timeout).
    """
    total = len(dns)
    answered = dns["rcode"].notna() if "rcode" in dns.columns else (
        dns["rcode_name"].notna() if "rcode_name" in dns.columns else pd.Series(True, index=dns.index))
    rcode_name = _rcode_names(dns)
    nx = (rcode_name == "NXDOMAIN") & answered
    servfail = (rcode_name == "SERVFAIL") & answered
    n_answered = int(answered.sum())
    rtt = numeric(dns["rtt"]) if "rtt" in dns.columns else np.array([])
    summary = [("queries", f"{total:,}"), ("answered", _rate(n_answered, total)),
               ("unanswered", _rate(total - n_answered, total)),
               ("NXDOMAIN (of answered)", _rate(int(nx.sum()), n_answered)),
               ("SERVFAIL (of answered)", _rate(int(servfail.sum()), n_answered))]
    if "query" in dns.columns:
        summary.append(("distinct names", f"{dns['query'].nunique():,}"))
    if "id.resp_h" in dns.columns:
        summary.append(("servers", f"{dns['id.resp_h'].nunique():,}"))
    if "proto" in dns.columns:
        for proto, number in as_text(dns["proto"], "-").value_counts().items():
            summary.append((f"over {proto}", _rate(int(number), total)))
    if "rejected" in dns.columns:
        summary.append(("rejected", _rate(int(flags(dns["rejected"]).sum()), total)))
    if len(rtt):
        summary += [("rtt median (ms)", f"{np.median(rtt) * 1000:.3f}"),
                    ("rtt p95 (ms)", f"{np.percentile(rtt, 95) * 1000:.3f}")]
    tables = {"summary": _figures(summary)}
    if "qtype_name" in dns.columns or "qtype" in dns.columns:
        qtype = dns["qtype_name"] if "qtype_name" in dns.columns else dns["qtype"]
        if "qtype_name" in dns.columns and "qtype" in dns.columns:
            qtype = dns["qtype_name"].astype("string").fillna(dns["qtype"].astype("string"))
        tables["qtypes"] = counts(qtype, "qtype", top, count_name="queries")
    if "rcode" in dns.columns or "rcode_name" in dns.columns:
        tables["rcodes"] = counts(rcode_name[answered], "rcode", None, count_name="responses", unset="-")
    if "query" in dns.columns:
        tables["top_names"] = _ranked(dns, "query", top, nx)
    if "id.resp_h" in dns.columns:
        tables["top_servers"] = _ranked(dns, "id.resp_h", top, nx, answered, rtt_column="rtt")
    if "id.orig_h" in dns.columns:
        tables["top_clients"] = _ranked(dns, "id.orig_h", top, nx, answered)
    unanswered = dns[~answered]
    if len(unanswered) and "query" in dns.columns:
        keys = [column for column in ("query", "id.resp_h") if column in dns.columns]
        frame = pd.DataFrame({column: as_text(unanswered[column]).to_numpy() for column in keys})
        tally = frame.groupby(keys, sort=False).size().rename("queries").reset_index()
        tables["unanswered"] = tally.sort_values("queries", ascending=False, kind="stable").head(top) \
            .reset_index(drop=True)
    if len(rtt):
        tables["rtt"] = quantile_table(rtt, "ms", 1000.0)
        tables["rtt_histogram"] = histogram(rtt, TIME_EDGES, TIME_LABELS, "rtt", "queries")
    return tables


def _rcode_names(dns: pd.DataFrame) -> pd.Series:
    """rcode_name, else the rcode number as text (``-`` unset)."""
    if "rcode_name" in dns.columns:
        names = dns["rcode_name"].astype("string")
        if "rcode" in dns.columns:
            names = names.fillna(dns["rcode"].astype("string"))
        return names.fillna("-").astype(object)
    if "rcode" in dns.columns:
        standard = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
        return dns["rcode"].map(lambda v: "-" if v is pd.NA or v != v else standard.get(int(v), str(v))) \
            .astype(object)
    return pd.Series("-", index=dns.index, dtype=object)


def _ranked(frame: pd.DataFrame, column: str, top: int, nx: pd.Series, answered: pd.Series | None = None,
            rtt_column: str | None = None) -> pd.DataFrame:
    """Queries per value of ``column`` (the ``top`` most), with NXDOMAIN, unanswered and median rtt."""
    data = pd.DataFrame({column: as_text(frame[column]).to_numpy(), "queries": 1, "NXDOMAIN": nx.to_numpy(int)})
    if answered is not None:
        data["unanswered"] = (~answered).to_numpy(int)
    grouped = data.groupby(column, sort=False).sum()
    if rtt_column and rtt_column in frame.columns:
        rtt = pd.to_numeric(frame[rtt_column], errors="coerce").astype(float).to_numpy() * 1000
        grouped["median rtt (ms)"] = pd.Series(rtt).groupby(data[column].to_numpy()).median().round(3)
    grouped["share %"] = percent(grouped["queries"], len(frame))
    grouped = grouped.sort_values("queries", ascending=False, kind="stable").head(top)
    return grouped.reset_index()


# ---- HTTP ------------------------------------------------------------------------------------

LATENCY_COLUMNS = ("latency", "response_time", "rtt")
RESPONSE_TIME_COLUMNS = ("resp_ts", "response_ts", "response_time_ts")


def http_latency(http: pd.DataFrame) -> np.ndarray:
    """Request-to-response seconds, when the table has them (Zeek's http.log has none).

    Read from a ``latency``/``response_time``/``rtt`` column (seconds), or
    ``resp_ts - ts`` when a response timestamp column exists.
    """
    for column in LATENCY_COLUMNS:
        if column in http.columns:
            return numeric(http[column])
    for column in RESPONSE_TIME_COLUMNS:
        if column in http.columns and "ts" in http.columns:
            delta = pd.to_numeric(http[column], errors="coerce") - pd.to_numeric(http["ts"], errors="coerce")
            return numeric(delta)
    return np.array([])


def http_section(http: pd.DataFrame, top: int = 20) -> dict[str, pd.DataFrame]:
    """Zeek http.log: methods, status codes, top hosts and URIs, user agents, content types, sizes, latency.

    Tables: ``summary``; ``methods``; ``status_codes`` (code, message,
    responses); ``top_hosts`` (requests, response bytes); ``top_uris``
    (host + uri); ``user_agents``; ``content_types`` (``resp_mime_types``
    elements); ``response_sizes`` (quantiles of ``response_body_len``,
    bytes) and ``response_size_histogram``; ``latency`` and
    ``latency_histogram`` when the table has a response time (see
    :func:`http_latency`).
    """
    total = len(http)
    status = pd.to_numeric(http["status_code"], errors="coerce") if "status_code" in http.columns \
        else pd.Series(np.nan, index=http.index)
    answered = status.notna()
    summary = [("requests", f"{total:,}"), ("with a response", _rate(int(answered.sum()), total)),
               ("without a response", _rate(int((~answered).sum()), total))]
    for low, label in ((200, "2xx"), (300, "3xx"), (400, "4xx"), (500, "5xx")):
        summary.append((f"{label} responses", _rate(int(((status >= low) & (status < low + 100)).sum()),
                                                    int(answered.sum()))))
    if "host" in http.columns:
        summary.append(("distinct hosts", f"{http['host'].nunique():,}"))
    for column, label in (("request_body_len", "request body bytes"), ("response_body_len", "response body bytes")):
        if column in http.columns:
            summary.append((label, f"{int(numeric(http[column]).sum()):,}"))
    tables = {"summary": _figures(summary)}
    if "method" in http.columns:
        tables["methods"] = counts(http["method"], "method", top, count_name="requests")
    if "status_code" in http.columns:
        codes = pd.DataFrame({"status": status.astype("Int64").astype("string").fillna("-").to_numpy(dtype=object),
                              "message": as_text(http["status_msg"], "").to_numpy() if "status_msg" in http.columns
                              else ""})
        grouped = codes.groupby("status", sort=False).agg(
            message=("message", lambda s: next((v for v in s if v), "")), responses=("message", "size"))
        grouped["share %"] = percent(grouped["responses"], total)
        tables["status_codes"] = grouped.sort_values("responses", ascending=False, kind="stable").head(top) \
            .reset_index()
    if "host" in http.columns:
        data = pd.DataFrame({"host": as_text(http["host"]).to_numpy(), "requests": 1})
        if "response_body_len" in http.columns:
            data["response bytes"] = pd.to_numeric(http["response_body_len"], errors="coerce").fillna(0) \
                .astype(np.int64).to_numpy()
        grouped = data.groupby("host", sort=False).sum()
        grouped["share %"] = percent(grouped["requests"], total)
        tables["top_hosts"] = grouped.sort_values("requests", ascending=False, kind="stable").head(top).reset_index()
    if "uri" in http.columns:
        host = as_text(http["host"], "") if "host" in http.columns else pd.Series("", index=http.index)
        uri = host + as_text(http["uri"], "-")
        tables["top_uris"] = counts(uri, "host + uri", top, count_name="requests")
    if "user_agent" in http.columns:
        tables["user_agents"] = counts(http["user_agent"], "user agent", top, count_name="requests")
    if "resp_mime_types" in http.columns:
        types = explode_sets(http["resp_mime_types"])
        tables["content_types"] = counts(types, "content type", top, count_name="responses", unset=None,
                                         total=total)
    if "response_body_len" in http.columns:
        sizes = numeric(http["response_body_len"])
        tables["response_sizes"] = quantile_table(sizes, "bytes")
        tables["response_size_histogram"] = histogram(sizes, SIZE_EDGES, SIZE_LABELS, "body size", "responses")
    latency = http_latency(http)
    if len(latency):
        tables["latency"] = quantile_table(latency, "ms", 1000.0)
        tables["latency_histogram"] = histogram(latency, TIME_EDGES, TIME_LABELS, "latency", "requests")
    return tables


# ---- SMTP ------------------------------------------------------------------------------------


def smtp_section(smtp: pd.DataFrame, top: int = 20) -> dict[str, pd.DataFrame]:
    """Zeek smtp.log (one row per mail transaction): senders, recipients, subjects, replies, TLS, files.

    Tables: ``summary`` (transactions, connections, STARTTLS share, with
    files, files); ``senders`` (``mailfrom``); ``from_headers`` (``from``);
    ``recipients`` (``rcptto`` elements); ``subjects``; ``reply_codes``
    (first 3 digits of ``last_reply``, with an example); ``servers``
    (``id.resp_h`` and ``helo``); ``files`` (transactions by number of ``fuids``);
    ``attachment_types`` and ``attachment_names`` from netsift's ``attachments``
    column (list of dicts: ``filename``, ``content_type``, ``mime_type``,
    ``size``); ``auth_mechanisms``.  The summary's STARTTLS figures: transactions
    with ``tls`` set (STARTTLS succeeded), and those whose server listed
    STARTTLS in its EHLO reply (``extensions``).
    """
    total = len(smtp)
    summary = [("transactions", f"{total:,}")]
    if "uid" in smtp.columns:
        summary.append(("connections", f"{smtp['uid'].nunique():,}"))
    if "tls" in smtp.columns:
        tls = flags(smtp["tls"])
        summary.append(("with STARTTLS (tls)", _rate(int(tls.sum()), total)))
        if "uid" in smtp.columns:
            per_conn = tls.groupby(smtp["uid"].astype("string").fillna("-").to_numpy()).any()
            summary.append(("connections with STARTTLS", _rate(int(per_conn.sum()), len(per_conn))))
    if "fuids" in smtp.columns:
        files = set_sizes(smtp["fuids"])
        summary += [("with files (fuids)", _rate(int((files > 0).sum()), total)),
                    ("files (fuids)", f"{int(files.sum()):,}")]
    attachments = _attachments(smtp) if "attachments" in smtp.columns else None
    if attachments is not None:
        with_any = int(attachments["row"].nunique()) if len(attachments) else 0
        summary += [("with attachments", _rate(with_any, total)), ("attachments", f"{len(attachments):,}"),
                    ("attachment bytes", f"{int(attachments['size'].sum()):,}")]
    if "extensions" in smtp.columns:
        offered = explode_sets(smtp["extensions"]).astype(str).str.upper() == "STARTTLS"
        rows_offering = offered[offered].index.nunique()
        summary.append(("server offered STARTTLS (EHLO reply)", _rate(int(rows_offering), total)))
    if "rcptto" in smtp.columns:
        recipients = explode_sets(smtp["rcptto"])
        summary += [("recipients (in all)", f"{len(recipients):,}"),
                    ("distinct recipients", f"{recipients.nunique():,}")]
    if "mailfrom" in smtp.columns:
        summary.append(("distinct senders", f"{smtp['mailfrom'].nunique():,}"))
    if "is_webmail" in smtp.columns:
        webmail = flags(smtp["is_webmail"])
        summary.append(("webmail", _rate(int(webmail.sum()), total)))
    tables = {"summary": _figures(summary)}
    if "mailfrom" in smtp.columns:
        tables["senders"] = counts(smtp["mailfrom"], "mailfrom", top, count_name="transactions")
    if "from" in smtp.columns:
        tables["from_headers"] = counts(smtp["from"], "from", top, count_name="transactions")
    if "rcptto" in smtp.columns:
        tables["recipients"] = counts(explode_sets(smtp["rcptto"]), "rcptto", top, count_name="transactions",
                                      unset=None, total=total)
    if "subject" in smtp.columns:
        tables["subjects"] = counts(smtp["subject"], "subject", top, count_name="transactions")
    if "last_reply" in smtp.columns:
        reply = as_text(smtp["last_reply"], "-")
        code = reply.str.extract(r"^\s*(\d{3})", expand=False).fillna("-")
        frame = pd.DataFrame({"code": code.to_numpy(dtype=object), "reply": reply.to_numpy()})
        grouped = frame.groupby("code", sort=False).agg(example=("reply", "first"), transactions=("reply", "size"))
        grouped["share %"] = percent(grouped["transactions"], total)
        tables["reply_codes"] = grouped.sort_values("transactions", ascending=False, kind="stable").head(top) \
            .reset_index()
    if "id.resp_h" in smtp.columns:
        keys = [column for column in ("id.resp_h", "helo") if column in smtp.columns]
        frame = pd.DataFrame({column: as_text(smtp[column]).to_numpy() for column in keys})
        tally = frame.groupby(keys, sort=False).size().rename("transactions").reset_index()
        tables["servers"] = tally.sort_values("transactions", ascending=False, kind="stable").head(top) \
            .reset_index(drop=True)
    if attachments is not None and len(attachments):
        grouped = attachments.groupby("type", sort=False).agg(attachments=("size", "size"), bytes=("size", "sum"))
        grouped["share %"] = percent(grouped["attachments"], len(attachments))
        tables["attachment_types"] = grouped.sort_values("attachments", ascending=False, kind="stable") \
            .head(top).reset_index()
        tables["attachment_names"] = counts(attachments["filename"], "filename", top, count_name="attachments")
    if "auth_mechanism" in smtp.columns and smtp["auth_mechanism"].notna().any():
        tables["auth_mechanisms"] = counts(smtp["auth_mechanism"], "mechanism", top, count_name="transactions")
    if "fuids" in smtp.columns:
        files = set_sizes(smtp["fuids"])
        tally = files.value_counts().sort_index()
        tables["files"] = pd.DataFrame({"files per transaction": tally.index.astype(np.int64),
                                        "transactions": tally.to_numpy(dtype=np.int64)})
        tables["files"]["share %"] = percent(tables["files"]["transactions"], total)
    return tables


def _attachments(smtp: pd.DataFrame) -> pd.DataFrame:
    """One row per attachment of the ``attachments`` column (netsift's: a list of dicts per transaction).

    Columns: ``row`` (the transaction's index), ``type`` (sniffed ``mime_type``, else the declared
    ``content_type``), ``filename``, ``size`` (decoded bytes, 0 when unknown).
    """
    rows, types, names, sizes = [], [], [], []
    for index, cell in zip(smtp.index, smtp["attachments"]):
        if cell is None or cell is pd.NA or isinstance(cell, (float, str)):
            continue
        for item in cell:
            if not isinstance(item, dict):
                item = {"filename": str(item)}
            rows.append(index)
            types.append(item.get("mime_type") or item.get("content_type") or "-")
            names.append(item.get("filename"))
            size = item.get("size")
            sizes.append(int(size) if isinstance(size, (int, float, np.integer)) and size == size else 0)
    return pd.DataFrame({"row": rows, "type": pd.Series(types, dtype=object).astype(str),
                         "filename": pd.Series(names, dtype=object), "size": pd.Series(sizes, dtype=np.int64)})


APP_SECTIONS = {"dns": dns_section, "http": http_section, "smtp": smtp_section}


def app_section(name: str, table: pd.DataFrame | None, top: int = 20) -> dict[str, pd.DataFrame] | None:
    """The section for table ``name`` (``dns``, ``http``, ``smtp``), None when the table is absent."""
    if table is None or not has_columns(table):
        return None
    return APP_SECTIONS[name](table, top)
