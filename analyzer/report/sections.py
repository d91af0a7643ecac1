"""The report's sections on the capture as a whole: summary, hierarchy, traffic, conversations, anomalies.

Every function takes frames and returns ``{table name: DataFrame}`` of
aggregates (at most ``top`` rows for the ranked ones), never the input rows.
The application sections (DNS, HTTP, SMTP) are in :mod:`analyzer.report.apps`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ._util import as_text, categorical_codes, category_values, counts, int_array, percent
from .hierarchy import protocol_hierarchy

# ---- capture summary ---------------------------------------------------------------------------


def capture_section(result) -> dict[str, pd.DataFrame]:
    """capinfos figures (``summary``: field, value), per-interface figures and the tables' row counts."""
    from ..summary import link_type_name

    rows = result.stats.rows(result.capture, list(getattr(result, "warnings", []) or []))
    tables = {"summary": pd.DataFrame(rows, columns=["field", "value"])}
    packets = result.tables.get("packets")
    interfaces = list(getattr(result.capture, "interfaces", []) or [])
    if interfaces:
        frames = bytes_ = None
        if packets is not None and "frame.interface_id" in packets.columns and len(packets):
            ids = int_array(packets["frame.interface_id"], 0)
            ids = np.maximum(ids, 0)
            size = max(len(interfaces), int(ids.max()) + 1)
            frames = np.bincount(ids, minlength=size)
            bytes_ = np.bincount(ids, weights=int_array(packets["frame.len"], 0), minlength=size)
        tables["interfaces"] = pd.DataFrame({
            "interface": range(len(interfaces)),
            "name": [interface.name or "" for interface in interfaces],
            "link type": [link_type_name(interface.link_type) for interface in interfaces],
            "snaplen": [interface.snaplen for interface in interfaces],
            "frames": [int(frames[i]) if frames is not None else 0 for i in range(len(interfaces))],
            "bytes": [int(bytes_[i]) if bytes_ is not None else 0 for i in range(len(interfaces))],
        })
    tables["tables"] = pd.DataFrame({"table": list(result.tables),
                                     "rows": [len(frame) for frame in result.tables.values()]})
    return tables


# ---- protocol hierarchy ------------------------------------------------------------------------


def hierarchy_section(result) -> dict[str, pd.DataFrame]:
    """``protocols``: :func:`analyzer.report.hierarchy.protocol_hierarchy`."""
    link_types = [interface.link_type for interface in getattr(result.capture, "interfaces", []) or []] or [1]
    return {"protocols": protocol_hierarchy(result.tables["packets"], link_types, result.tables.get("conn"))}


# ---- traffic over time -------------------------------------------------------------------------

#: Interval steps (seconds), 1 ms … 1 h, then days for captures longer than MAX_BINS hours; the
#: smallest that gives fewer than MAX_BINS intervals is used.
STEPS = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 365 * 86400.0)
MAX_BINS = 300


def choose_interval(duration: float, max_bins: int = MAX_BINS) -> float:
    """The smallest step of :data:`STEPS` with fewer than ``max_bins`` intervals over ``duration`` seconds.

    A capture spanning centuries (bad timestamps) gets a step of whole years that keeps the bound.
    """
    for step in STEPS:
        if duration / step < max_bins:
            return step
    years = int(np.ceil(duration / STEPS[-1] / max_bins)) + 1
    return STEPS[-1] * years


def interval_label(step: float) -> str:
    """``1 ms``, ``100 ms``, ``10 s``, ``10 min``, ``1 h``."""
    if step < 1:
        return f"{step * 1000:g} ms"
    if step < 60:
        return f"{step:g} s"
    if step < 3600:
        return f"{step / 60:g} min"
    if step < 86400:
        return f"{step / 3600:g} h"
    if step < 365 * 86400:
        return f"{step / 86400:g} d"
    return f"{step / (365 * 86400):g} y"


def traffic_section(result) -> dict[str, pd.DataFrame]:
    """Like ``tshark -z io,stat,STEP``: frames and bytes per interval, TCP/UDP/other frames.

    ``io`` columns: ``start`` (seconds since the first frame), ``time`` (UTC),
    ``frames``, ``bytes``, ``bits/s``, ``tcp``, ``udp``, ``other`` (frames with
    that transport: ``ip_proto`` 6, 17, anything else).  ``interval``: the
    step and its reason.  Every interval from the first frame to the last is
    a row (zeros included).
    """
    packets = result.tables["packets"]
    if not len(packets):
        return {"interval": pd.DataFrame({"field": ["interval"], "value": ["n/a (no frames)"]})}
    if "ts" in packets.columns and pd.api.types.is_datetime64_any_dtype(packets["ts"]) \
            and not packets["ts"].isna().any():
        ns = np.asarray(packets["ts"].dt.as_unit("ns").array.asi8, dtype=np.int64)
    else:
        ns = np.round(packets["frame.time_epoch"].to_numpy(dtype=float, na_value=np.nan) * 1e9).astype(np.int64)
    first, last = int(ns.min()), int(ns.max())
    duration = (last - first) / 1e9
    step = choose_interval(duration)
    step_ns = int(round(step * 1e9))
    bins = (ns - first) // step_ns
    count = int(bins.max()) + 1
    sizes = int_array(packets["frame.len"], 0)
    frames = np.bincount(bins, minlength=count)
    volume = np.bincount(bins, weights=sizes, minlength=count).astype(np.int64)
    proto = int_array(packets["ip_proto"]) if "ip_proto" in packets.columns else np.full(len(packets), -1)
    tcp = np.bincount(bins[proto == 6], minlength=count)
    udp = np.bincount(bins[proto == 17], minlength=count)
    start = np.arange(count) * step
    io = pd.DataFrame({
        "start": np.round(start, 6),
        "time": pd.to_datetime(first + np.arange(count, dtype=np.int64) * step_ns, unit="ns", utc=True),
        "frames": frames.astype(np.int64),
        "bytes": volume,
        "bits/s": np.round(volume * 8 / step, 1),
        "tcp": tcp.astype(np.int64),
        "udp": udp.astype(np.int64),
        "other": (frames - tcp - udp).astype(np.int64),
    })
    busiest = int(np.argmax(frames))
    interval = pd.DataFrame({"field": ["interval", "intervals", "capture duration (s)", "busiest interval start (s)",
                                       "busiest interval frames", "peak bits/s", "mean bits/s"],
                             "value": [interval_label(step), f"{count:,}", f"{duration:.6f}", f"{start[busiest]:g}",
                                       f"{int(frames[busiest]):,}", f"{float(io['bits/s'].max()):,.1f}",
                                       f"{volume.sum() * 8 / duration:,.1f}" if duration > 0 else "n/a"]})
    return {"interval": interval, "io": io}


# ---- conversations and endpoints --------------------------------------------------------------

CONN_STATES = {
    "S0": "connection attempt seen, no reply",
    "S1": "connection established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, close attempt by originator seen (no reply from responder)",
    "S3": "established, close attempt by responder seen (no reply from originator)",
    "RSTO": "established, originator aborted (sent a RST)",
    "RSTR": "responder sent a RST",
    "RSTOS0": "originator sent a SYN followed by a RST, no SYN-ACK from the responder",
    "RSTRH": "responder sent a SYN ACK followed by a RST, no SYN from the (purported) originator",
    "SH": "originator sent a SYN followed by a FIN, no SYN ACK from the responder",
    "SHR": "responder sent a SYN ACK followed by a FIN, no SYN from the originator",
    "OTH": "no SYN seen, just midstream traffic (one that was not later closed)",
}


def _address_columns(packets: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index, np.ndarray]:
    """Source and destination address codes per frame (outer IPv4, else IPv6), the address index, is-IPv6."""
    names = [name for name in ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst") if name in packets.columns]
    addresses = pd.Index([], dtype=object)
    for name in names:
        addresses = addresses.append(category_values(packets[name]))
    addresses = addresses.unique()
    n = len(packets)

    def codes(name):
        if name not in packets.columns:
            return np.full(n, -1, dtype=np.int64)
        return categorical_codes(packets[name], addresses)

    src, dst = codes("ip.src"), codes("ip.dst")
    v6 = (src < 0) | (dst < 0)
    src = np.where(v6, codes("ipv6.src"), src)
    dst = np.where(v6, codes("ipv6.dst"), dst)
    return src, dst, addresses, v6


def _seconds(packets: pd.DataFrame) -> np.ndarray:
    return packets["frame.time_epoch"].to_numpy(dtype=float, na_value=np.nan)


def conversation_figures(packets: pd.DataFrame) -> pd.DataFrame:
    """Every IP conversation (unordered address pair, like ``tshark -z conv,ip`` and ``conv,ipv6``).

    Columns: ``address A`` (the source of the pair's first frame), ``address B``,
    ``family`` (``IPv4``/``IPv6``), ``frames A→B``, ``bytes A→B``,
    ``frames B→A``, ``bytes B→A``, ``frames``, ``bytes`` (``frame.len``),
    ``rel start`` (seconds after the capture's first frame), ``duration`` (s).
    Unsorted (first-seen order).  The outer IP header only: tunnelled
    conversations count as their tunnel endpoints' (tshark also lists the inner ones).
    """
    columns = ["address A", "address B", "family", "frames A→B", "bytes A→B", "frames B→A", "bytes B→A",
               "frames", "bytes", "rel start", "duration"]
    if not len(packets):
        return pd.DataFrame({name: [] for name in columns})
    src, dst, addresses, v6 = _address_columns(packets)
    keep = (src >= 0) & (dst >= 0)
    if not keep.any():
        return pd.DataFrame({name: [] for name in columns})
    src, dst, v6 = src[keep], dst[keep], v6[keep]
    seconds = _seconds(packets)
    capture_start = np.nanmin(seconds)
    seconds = seconds[keep]
    sizes = int_array(packets["frame.len"], 0)[keep]
    size = len(addresses)
    low, high = np.minimum(src, dst), np.maximum(src, dst)
    key = low * size + high
    pair, uniques = pd.factorize(key)
    _, first = np.unique(pair, return_index=True)
    a = src[first]
    forward = src == a[pair]
    k = len(uniques)
    frames_ab = np.bincount(pair[forward], minlength=k)
    frames_ba = np.bincount(pair[~forward], minlength=k)
    bytes_ab = np.bincount(pair[forward], weights=sizes[forward], minlength=k).astype(np.int64)
    bytes_ba = np.bincount(pair[~forward], weights=sizes[~forward], minlength=k).astype(np.int64)
    times = pd.DataFrame({"pair": pair, "t": seconds}).groupby("pair")["t"].agg(["min", "max"])
    low_u, high_u = np.asarray(uniques) // size, np.asarray(uniques) % size
    b = np.where(a == low_u, high_u, low_u)
    names = addresses.to_numpy(dtype=object)
    return pd.DataFrame({
        "address A": names[a], "address B": names[b],
        "family": np.where(v6[first], "IPv6", "IPv4"),
        "frames A→B": frames_ab.astype(np.int64), "bytes A→B": bytes_ab,
        "frames B→A": frames_ba.astype(np.int64), "bytes B→A": bytes_ba,
        "frames": (frames_ab + frames_ba).astype(np.int64), "bytes": bytes_ab + bytes_ba,
        "rel start": np.round(times["min"].to_numpy() - capture_start, 6),
        "duration": np.round(times["max"].to_numpy() - times["min"].to_numpy(), 6),
    })


def endpoint_figures(packets: pd.DataFrame) -> pd.DataFrame:
    """Every IP address (like ``tshark -z endpoints,ip``): frames and bytes sent, received and in all.

    Columns: ``address``, ``family``, ``frames``, ``bytes``, ``tx frames``,
    ``tx bytes``, ``rx frames``, ``rx bytes``.  Unsorted.
    """
    columns = ["address", "family", "frames", "bytes", "tx frames", "tx bytes", "rx frames", "rx bytes"]
    if not len(packets):
        return pd.DataFrame({name: [] for name in columns})
    src, dst, addresses, _ = _address_columns(packets)
    keep = (src >= 0) & (dst >= 0)
    src, dst = src[keep], dst[keep]
    sizes = int_array(packets["frame.len"], 0)[keep]
    k = len(addresses)
    tx_frames, rx_frames = np.bincount(src, minlength=k), np.bincount(dst, minlength=k)
    tx_bytes = np.bincount(src, weights=sizes, minlength=k).astype(np.int64)
    rx_bytes = np.bincount(dst, weights=sizes, minlength=k).astype(np.int64)
    seen = (tx_frames + rx_frames) > 0
    names = addresses.to_numpy(dtype=object)
    out = pd.DataFrame({
        "address": names, "family": np.where(pd.Series(names).str.contains(":", regex=False), "IPv6", "IPv4"),
        "frames": (tx_frames + rx_frames).astype(np.int64), "bytes": tx_bytes + rx_bytes,
        "tx frames": tx_frames.astype(np.int64), "tx bytes": tx_bytes,
        "rx frames": rx_frames.astype(np.int64), "rx bytes": rx_bytes,
    })
    return out[seen].reset_index(drop=True)


def _top_union(frame: pd.DataFrame, top: int, by=("bytes", "frames")) -> pd.DataFrame:
    """The rows among the first ``top`` by any of ``by``, sorted by the first of ``by`` (ties: the rest)."""
    if len(frame) <= top:
        return frame.sort_values(list(by), ascending=False, kind="stable").reset_index(drop=True)
    chosen = set()
    for column in by:
        chosen.update(frame.nlargest(top, column, keep="first").index)
    return frame.loc[sorted(chosen)].sort_values(list(by), ascending=False, kind="stable").reset_index(drop=True)


def _conn_pairs(conn: pd.DataFrame, conversations: pd.DataFrame) -> pd.DataFrame:
    """connections and conn_state counts per conversation row (by unordered address pair)."""
    out = pd.DataFrame({"connections": np.zeros(len(conversations), dtype=np.int64),
                        "conn states": [""] * len(conversations)})
    if conn is None or not len(conn) or not len(conversations) or \
            not {"id.orig_h", "id.resp_h"} <= set(conn.columns):
        return out
    index = {}
    for row, (a, b) in enumerate(zip(conversations["address A"], conversations["address B"])):
        index[(a, b)] = row
        index[(b, a)] = row
    wanted = pd.Index(pd.unique(pd.concat([conversations["address A"], conversations["address B"]])), dtype=object)
    orig = categorical_codes(conn["id.orig_h"], wanted)
    resp = categorical_codes(conn["id.resp_h"], wanted)
    rows = np.flatnonzero((orig >= 0) & (resp >= 0))
    if not len(rows):
        return out
    names = wanted.to_numpy(dtype=object)
    target = np.array([index.get((names[o], names[r]), -1) for o, r in zip(orig[rows], resp[rows])], dtype=np.int64)
    keep = target >= 0
    rows, target = rows[keep], target[keep]
    out["connections"] = np.bincount(target, minlength=len(conversations)).astype(np.int64)
    if "conn_state" in conn.columns:
        states = as_text(conn["conn_state"].iloc[rows], "-").to_numpy()
        tally = pd.DataFrame({"row": target, "state": states}).groupby(["row", "state"]).size()
        text = {}
        for (row, state), number in tally.sort_values(ascending=False, kind="stable").items():
            text.setdefault(row, []).append(f"{state} {number}")
        out["conn states"] = [", ".join(text.get(row, [])) for row in range(len(conversations))]
    return out


def conversations_section(result, top: int = 20) -> dict[str, pd.DataFrame]:
    """Top conversations and endpoints (by bytes and by frames), services and conn states from ``conn``.

    Tables: ``summary``; ``conversations`` (the union of the ``top`` by bytes
    and the ``top`` by frames, with ``connections`` and ``conn states`` from
    conn.log); ``endpoints`` (same rule); ``services`` (conn.log by service,
    or ``proto/port`` where Zeek set none); ``conn_states``.
    """
    packets = result.tables["packets"]
    conn = result.tables.get("conn")
    conversations = conversation_figures(packets)
    endpoints = endpoint_figures(packets)
    summary = [("IPv4 conversations", int((conversations["family"] == "IPv4").sum())),
               ("IPv6 conversations", int((conversations["family"] == "IPv6").sum())),
               ("IP endpoints", len(endpoints)),
               ("frames with an IP address pair", int(conversations["frames"].sum()))]
    top_conversations = _top_union(conversations, top)
    top_conversations = pd.concat([top_conversations, _conn_pairs(conn, top_conversations)], axis=1)
    tables = {"conversations": top_conversations, "endpoints": _top_union(endpoints, top)}
    if conn is not None and len(conn):
        summary += [("connections (conn.log)", len(conn))]
        for proto in ("tcp", "udp", "icmp"):
            if "proto" in conn.columns:
                summary.append((f"{proto} connections", int((conn["proto"].astype(str) == proto).sum())))
        tables["services"] = _services(conn, top)
        tables["conn_states"] = _conn_states(conn)
    tables = {"summary": pd.DataFrame(summary, columns=["figure", "value"]), **tables}
    return tables


def _services(conn: pd.DataFrame, top: int) -> pd.DataFrame:
    """conn.log grouped by service (``proto/resp_p`` where unset): connections, packets, payload bytes."""
    service = conn["service"].astype("string") if "service" in conn.columns else pd.Series(pd.NA, index=conn.index)
    port = conn["proto"].astype(str) + "/" + conn["id.resp_p"].astype("string").fillna("-")
    label = service.fillna(port.astype("string")).astype(object)
    frame = pd.DataFrame({
        "service": label,
        "connections": 1,
        "orig bytes": conn["orig_bytes"].fillna(0).astype(np.int64) if "orig_bytes" in conn else 0,
        "resp bytes": conn["resp_bytes"].fillna(0).astype(np.int64) if "resp_bytes" in conn else 0,
        "packets": (conn["orig_pkts"].fillna(0) + conn["resp_pkts"].fillna(0)).astype(np.int64)
        if {"orig_pkts", "resp_pkts"} <= set(conn.columns) else 0,
    })
    grouped = frame.groupby("service", sort=False).sum()
    grouped["share %"] = percent(grouped["connections"], len(conn))
    grouped = grouped.sort_values(["connections", "packets"], ascending=False, kind="stable").head(top)
    return grouped.reset_index()


def _conn_states(conn: pd.DataFrame) -> pd.DataFrame:
    if "conn_state" not in conn.columns:
        return pd.DataFrame({"conn_state": [], "meaning": [], "connections": [], "share %": []})
    table = counts(conn["conn_state"], "conn_state", None, count_name="connections", unset="-")
    table.insert(1, "meaning", [CONN_STATES.get(state, "") for state in table["conn_state"]])
    return table


# ---- anomalies ---------------------------------------------------------------------------------

HISTORY_LETTERS = {
    "s": "SYN without ACK", "h": "SYN-ACK", "a": "pure ACK", "d": "packet with payload", "f": "FIN",
    "r": "RST", "c": "bad checksum", "g": "content gap", "t": "retransmitted payload",
    "w": "zero window", "i": "inconsistent packet", "q": "multi-flag packet",
}


def _history_letters(history: pd.Series) -> pd.DataFrame:
    """Per Zeek history letter: connections where the originator (upper case) / responder (lower) showed it."""
    text = history.astype("string").fillna("")
    rows = []
    for letter, meaning in HISTORY_LETTERS.items():
        orig = int(text.str.contains(letter.upper(), regex=False).sum())
        resp = int(text.str.contains(letter, regex=False).sum())
        rows.append((f"{letter.upper()}/{letter}", meaning, orig, resp))
    rows.append(("^", "direction flipped (Zeek's heuristic)", int(text.str.contains("^", regex=False).sum()), 0))
    return pd.DataFrame(rows, columns=["letters", "meaning", "originator", "responder"])


def anomalies_section(result, top: int = 20) -> dict[str, pd.DataFrame]:
    """weird.log by name, TCP retransmissions and gaps (conn history and missed_bytes), malformed frames.

    Tables: ``summary``; ``weird`` (name, count, connections, first ts,
    example addl, source); ``tcp`` (conn figures); ``history`` (every history
    letter); ``gaps`` (the connections with the most missed bytes).
    """
    weird = result.tables.get("weird")
    conn = result.tables.get("conn")
    stats = result.stats
    summary = [("frames cut by the snaplen", int(stats.cut_frames)),
               ("reader warnings", len(getattr(result, "warnings", []) or []))]
    tables: dict[str, pd.DataFrame] = {}
    if weird is not None:
        summary.append(("weird rows", len(weird)))
        if "frame.number" in weird.columns:
            summary.append(("frames with a weird", int(weird["frame.number"].nunique())))
        if len(weird):
            tables["weird"] = _weird_table(weird, top)
    if conn is not None and len(conn) and "history" in conn.columns:
        tcp = conn[conn["proto"].astype(str) == "tcp"] if "proto" in conn.columns else conn
        history = tcp["history"].astype("string").fillna("")
        missed = tcp["missed_bytes"].fillna(0).astype(np.int64) if "missed_bytes" in tcp.columns \
            else pd.Series(0, index=tcp.index)
        figures = [
            ("TCP connections", len(tcp)),
            ("with originator retransmissions (T)", int(history.str.contains("T", regex=False).sum())),
            ("with responder retransmissions (t)", int(history.str.contains("t", regex=False).sum())),
            ("with originator content gaps (G)", int(history.str.contains("G", regex=False).sum())),
            ("with responder content gaps (g)", int(history.str.contains("g", regex=False).sum())),
            ("with missed bytes", int((missed > 0).sum())),
            ("missed bytes in all", int(missed.sum())),
            ("with zero windows (W/w)", int(history.str.contains("[Ww]", regex=True).sum())),
            ("with bad checksums (C/c)", int(history.str.contains("[Cc]", regex=True).sum())),
        ]
        tables["tcp"] = pd.DataFrame(figures, columns=["figure", "connections"])
        tables["tcp"]["share %"] = percent(tables["tcp"]["connections"], len(tcp))
        tables["tcp"].loc[tables["tcp"]["figure"] == "missed bytes in all", "share %"] = np.nan
        tables["history"] = _history_letters(conn["history"])
        if (missed > 0).any():
            gaps = tcp.loc[missed[missed > 0].sort_values(ascending=False, kind="stable").index[:top]]
            columns = [c for c in ("uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "service",
                                   "missed_bytes", "history", "conn_state") if c in gaps.columns]
            tables["gaps"] = gaps[columns].reset_index(drop=True)
    return {"summary": pd.DataFrame(summary, columns=["figure", "value"]), **tables}


def _weird_table(weird: pd.DataFrame, top: int) -> pd.DataFrame:
    names = as_text(weird["name"], "-")
    frame = pd.DataFrame({"name": names.to_numpy()})
    frame["uid"] = weird["uid"].astype("string").to_numpy() if "uid" in weird.columns else pd.NA
    frame["ts"] = pd.to_numeric(weird["ts"], errors="coerce").to_numpy() if "ts" in weird.columns else np.nan
    frame["addl"] = as_text(weird["addl"], "").to_numpy() if "addl" in weird.columns else ""
    frame["source"] = as_text(weird["source"], "").to_numpy() if "source" in weird.columns else ""
    grouped = frame.groupby("name", sort=False)
    out = pd.DataFrame({
        "count": grouped.size(),
        "connections": grouped["uid"].nunique(),
        "first ts": grouped["ts"].min(),
        "example addl": grouped["addl"].agg(lambda s: next((v for v in s if v), "")),
        "source": grouped["source"].agg(lambda s: next((v for v in s if v), "")),
    })
    out["first time (UTC)"] = [
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="microseconds") if not np.isnan(t) else ""
        for t in out["first ts"]]
    out = out.drop(columns=["first ts"]).sort_values("count", ascending=False, kind="stable").head(top)
    return out.reset_index()
