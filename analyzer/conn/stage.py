"""``ConnStage``: the pipeline stage that builds Zeek's conn.log as a pandas frame.

Streaming: each :meth:`ConnStage.feed` turns the batch into transport events
(:mod:`.flows`), runs them through the numba state machine (:mod:`.state`) over a
table of live connections, then sweeps the table with the batch's last
timestamp as network time: connections Zeek would have removed by then (close
delay after FIN/RST, attempt timer, linger, inactivity timeouts) are summarised
into compact numpy rows and their slots reused.  Memory therefore follows the
number of concurrent connections, plus the finished rows.  :meth:`finish`
flushes the rest (Zeek's end of input) and builds the frame.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa

from dissectors.stack import TUNNEL_SERVICES

from ..frames import strings_from_rows

from . import state as S
from .addresses import format_addresses, in_networks, networks
from .community_id import community_id_rows
from .flows import ICMP4_COUNTERPART, ICMP6_COUNTERPART, build_events, dropped_rows
from .schema import CONN
from .uid import encode as encode_uid
from .uid import encode_chars as encode_uid_chars

# Zeek's default Site::local_nets: Site::private_address_space (private_address_space_is_local
# is T).  224.0.0.0/24 and 239.0.0.0/8 as the corpus baselines show them local.
DEFAULT_LOCAL_NETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/24", "239.0.0.0/8", "240.0.0.0/4", "255.255.255.255/32",
    "2002::/24", "2002:a00::/24", "2002:6440::/26", "2002:7f00::/24", "2002:a9fe::/32",
    "2002:ac10::/28", "2002:c000::/40", "2002:c000:200::/40", "2002:c0a8::/32", "2002:c612::/31",
    "2002:c633:6400::/40", "2002:cb00:7100::/40", "2002:f000::/20", "2002:ffff:ffff::/48",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:2::/48", "2001:db8::/32",
    "fc00::/7", "fe80::/10",
)

# Ports of Zeek's default analyzers (likely_server_ports), per transport.
LIKELY_TCP = (21, 22, 23, 25, 53, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614,
              631, 636, 989, 990, 992, 993, 995, 1080, 1883, 2811, 3128, 3268, 3306, 3389, 5222, 5223,
              5269, 5432, 6379, 6666, 6667, 6668, 6669, 7000, 8000, 8080, 8888, 20000)
LIKELY_UDP = (53, 67, 68, 69, 88, 123, 137, 161, 162, 389, 443, 500, 514, 750, 1812, 2123, 2152, 3544,
              4500, 4789, 5060, 5072, 5353, 5355, 6081, 20000)

#: conn_state values, in the order of the frame's categories.
CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


def _port_table(ports) -> np.ndarray:
    table = np.zeros(65536, dtype=np.bool_)
    table[list(ports)] = True
    return table


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """The distinct rows of ``rows`` (``int64[k, w]``) in lexicographic order: ``np.unique(rows, axis=0)``,
    without its per-call overhead (it dominated for the few rows of a batch)."""
    if len(rows) < 2:
        return rows
    rows = rows[np.lexsort(rows.T[::-1])]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    return rows[keep]


#: Weirds Zeek raises through ``Analyzer::LimitReachedWeird`` (an analyzer gave up on part of the
#: connection): each also adds ``X`` to the connection's history (``Connection::CheckHistory``).
LIMIT_REACHED_WEIRDS = frozenset({"DNS_Conn_count_too_large", "DNS_max_compression_chain_depth_exceeded",
                                  "exceeded_mime_max_header_bytes"})


#: The columns of an ended connection's state that the conn frame reads: kept apart (about a fifth
#: of the slot's columns) so that collecting, ordering and framing them copies no more.
_RETIRED_NAMES = ("K_SERIAL", "K_PROTO", "K_IPPROTO", "K_OHI", "K_OLO", "K_RHI", "K_RLO", "K_OPORT", "K_RPORT",
                  "K_START", "K_LAST", "K_UIDA", "K_UIDB", "K_HLEN", "K_MISSED", "K_NPAR", "K_P1A", "K_P1B",
                  "K_P2A", "K_P2B")
RETIRED_COLUMNS = np.array([getattr(S, name) for name in _RETIRED_NAMES], dtype=np.int64)
#: Positions in RETIRED_COLUMNS by the state's column names (``R.K_START`` …).
R = SimpleNamespace(**{name: i for i, name in enumerate(_RETIRED_NAMES)})


class ConnStage:
    """Connection tracking with Zeek's conn.log semantics.

    Args:
        validate_checksums: drop packets with bad IPv4/TCP/UDP/ICMP checksums as
            Zeek does by default (``False``: Zeek's ``-C``).
        likely_server_ports_tcp/_udp: ports that make Zeek flip a connection whose
            first packet comes from them (default: Zeek's default analyzers' ports).
        local_nets: networks for ``local_orig``/``local_resp`` (default: Zeek's
            private address space; ``()`` leaves both unset, as Zeek with no local nets).
        capacity: initial connection slots (grows as needed).

    After :meth:`finish`, ``packet_uid`` is a categorical with one uid per frame
    fed, in order (null where the frame belongs to no connection).
    """

    def __init__(self, validate_checksums: bool = True, likely_server_ports_tcp=LIKELY_TCP,
                 likely_server_ports_udp=LIKELY_UDP, local_nets=DEFAULT_LOCAL_NETS, capacity: int = 4096,
                 uid_seed: int = 0):
        self.validate = validate_checksums
        self.likely_tcp = _port_table(likely_server_ports_tcp)
        self.likely_udp = _port_table(likely_server_ports_udp)
        self.local_nets = networks(local_nets) if local_nets else None
        self.uid_seed = np.int64(uid_seed)
        self.C = np.zeros((capacity, S.NF), dtype=np.int64)
        self.H = np.zeros((capacity, S.HSTRIDE), dtype=np.uint8)
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        self.n_free = capacity
        self.table = S.new_table()
        self.serial = 0
        self.now = None
        self._frame_serial: list[np.ndarray] = []
        self._rows: list[dict[str, np.ndarray]] = []
        self._services: dict[str, list[str]] = {}
        self._service_ts: dict[tuple, int] = {}
        self._removed_services: set[tuple] = set()
        self._teredo_senders: dict[int, set] = {}
        self._partial: list[int] = []
        self._first_frame = 1
        self.packet_uid = None
        self.batch_serial = np.zeros(0, dtype=np.int64)
        self.batch_checksum_ok = np.zeros(0, dtype=bool)
        #: Packets with a transport header seen, and those whose checksum failed (validation on).
        self.transport_packets = self.bad_checksums = 0
        self.frame: pd.DataFrame | None = None

    # -- streaming ---------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = self.C.shape[0]
        new_cap = max(cap * 2, cap + need)
        C = np.zeros((new_cap, S.NF), dtype=np.int64)
        C[:cap] = self.C
        H = np.zeros((new_cap, S.HSTRIDE), dtype=np.uint8)
        H[:cap] = self.H
        free = np.empty(new_cap, dtype=np.int64)
        free[:self.n_free] = self.free[:self.n_free]
        added = np.arange(new_cap - 1, cap - 1, -1, dtype=np.int64)
        free[self.n_free:self.n_free + len(added)] = added
        self.C, self.H, self.free = C, H, free
        self.n_free += len(added)

    def feed(self, batch, fields, frame_rows: np.ndarray | None = None, datagrams=()) -> None:
        """Track the connections of one batch (``PacketBatch`` and its dissected ``Fields``).

        ``datagrams``: the IP datagrams reassembled from this batch's fragments,
        ``(batch, fields, rows)`` each, datagram ``i`` completed by row
        ``rows[i]`` (``int64``) of ``batch``.  Their packets are processed at
        the place of the completing fragment, in capture order with the
        batch's own packets, as Zeek does (reassembly happens before
        connection lookup): processing them after the whole batch would show
        their data as gaps and then retransmissions (``g``/``t`` history,
        ``missed_bytes``).  That fragment frame takes the datagram's connection.

        ``frame_rows`` marks a batch of reassembled datagrams fed on its own
        after the batch they came from (``rows`` as above; kept for callers
        that feed them separately).
        """
        n = len(batch)
        if not self._frame_serial and frame_rows is None:
            self._first_frame = int(batch.first_number)
        parts = [(batch, fields, None)] + list(datagrams)
        events, keys, sizes = [], [], []
        for part_batch, part_fields, rows in parts:
            part_events = build_events(part_batch, part_fields, self.validate, dropped_rows(part_fields))
            row = part_events[:, S.V_ROW]
            if rows is not None:
                # A datagram is seen at the fragment that completed it: that frame's number (the datagram
                # batch's own numbering depends on how the capture was cut into batches).
                part_events[:, S.V_FRAME] = batch.first_number + rows[row]
            events.append(part_events)
            keys.append(row if rows is None else rows[row])
            sizes.append(len(part_batch))
        own = events[0]
        if len(parts) > 1:
            # Capture order: by (completing) row; within a row the batch's own events first.  The
            # kernel reads the datagrams' few events from their own matrix (``pick`` < 0), so the
            # batch's events are not copied into a merged one.
            source = np.concatenate([np.full(len(e), i) for i, e in enumerate(events)])
            order = np.lexsort((source, np.concatenate(keys)))
            extra = np.concatenate(events[1:])
            pick = np.where(order < len(own), order, len(own) - 1 - order)
        else:
            order, extra, pick = None, np.zeros((0, S.EV_N), dtype=np.int64), np.zeros(0, dtype=np.int64)
        k = len(own) + len(extra)
        done = np.empty(k + self.C.shape[0], dtype=np.int64)
        out_serial = np.empty(k, dtype=np.int64)
        out_a = np.empty(k, dtype=np.int64)
        out_b = np.empty(k, dtype=np.int64)
        at, n_done = 0, 0
        while True:
            at, self.n_free, n_done, self.serial = S.process_events(
                own, extra, pick, at, self.C, self.H, self.table, self.free, self.n_free, done, n_done, self.serial,
                self.likely_tcp, self.likely_udp, self.uid_seed, out_serial, out_a, out_b)
            if at == k:
                break
            # Out of free slots: double the table and go on (``done`` holds up to one slot per
            # event plus every slot, for the sweep).
            self._grow(1)
            done = np.concatenate([done[:n_done], np.empty(k + self.C.shape[0] - n_done, dtype=np.int64)])
        if order is not None:
            unsorted = np.empty(k, dtype=np.int64)
            unsorted[order] = out_serial
            out_serial = unsorted
        bounds = np.cumsum([0] + [len(e) for e in events])
        per_part = []
        for i, part_events in enumerate(events):
            part_serial = np.full(sizes[i], -1, dtype=np.int64)
            if len(part_events):
                part_serial[part_events[:, S.V_ROW]] = out_serial[bounds[i]:bounds[i + 1]]
                self._confirm_tunnels(parts[i][1], part_events, out_serial[bounds[i]:bounds[i + 1]])
            per_part.append(part_serial)
        frame_serial = per_part[0]
        # Rows whose innermost transport checksum failed: Zeek's TCP analyzer stops there, before
        # reassembly (TCPSessionAdapter::DeliverPacket, ValidateChecksum).
        checksum_ok = np.ones(n, dtype=bool)
        inner = np.flatnonzero(own[:, S.V_OUTER] == 0)
        inner_ok = own[inner, S.V_CHKOK] != 0
        checksum_ok[own[inner, S.V_ROW]] = inner_ok
        self.transport_packets += len(inner)
        self.bad_checksums += len(inner) - int(np.count_nonzero(inner_ok))
        for (_, _, rows), part_serial in zip(parts[1:], per_part[1:]):
            # Each datagram's connection goes to the fragment frame that completed it.
            frame_serial[rows] = part_serial
        if frame_rows is None:
            self._frame_serial.append(frame_serial)
            self.batch_serial = frame_serial   # per frame of the last batch: connection serial, -1 for none
            self.batch_checksum_ok = checksum_ok   # per frame of the last batch: transport checksum valid
        elif self._frame_serial:
            self._frame_serial[-1][frame_rows] = frame_serial
        if n:
            now = int(batch.ts_ns.max())
            self.now = now if self.now is None else max(self.now, now)
        if self.now is not None:
            n_done = S.sweep(self.C, self.table, self.now, done, n_done, False)
        self._retire(done[:n_done])

    def _retire(self, slots: np.ndarray) -> None:
        if len(slots):
            self._rows.append(self._summarise(slots))
            self.n_free = S.release(self.C, self.table, slots, self.free, self.n_free)

    def _summarise(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        C = self.C[np.ix_(slots, RETIRED_COLUMNS)]
        ep = S.endpoint_summary(self.C, slots)
        # Letters and their frame stamps apart: the stamps are read only to insert X marks.
        return {"C": C, "ep": ep, "letters": self.H[slots, :S.HMAX], "stamps": self.H[slots, S.HMAX:]}

    def _confirm_tunnels(self, fields, events: np.ndarray, serials: np.ndarray) -> None:
        """Give a tunnel's outer UDP connection its ``service`` (Zeek's analyzer confirmation).

        Zeek confirms VXLAN, Geneve, AYIYA and GTP on the first packet that
        decodes; Teredo only once both endpoints sent one
        (``Tunnel::delay_teredo_confirmation``, default true), since its
        recognition by content is loose.
        """
        code = fields.values.get("_tunnel.service")
        if code is None:
            return
        outer = np.flatnonzero(events[:, S.V_OUTER] == 1)
        rows = events[outer, S.V_ROW]
        decoded = fields.valid["_tunnel.service"][rows]
        outer, rows = outer[decoded], rows[decoded]
        senders = _unique_rows(np.column_stack([serials[outer], code[rows], events[outer, S.V_SHI],
                                                events[outer, S.V_SLO], events[outer, S.V_SPORT]]))
        for serial, tunnel, host_hi, host_lo, port in senders.tolist():
            name = TUNNEL_SERVICES[tunnel]
            if name == "teredo":
                senders = self._teredo_senders.setdefault(serial, set())
                senders.add((host_hi, host_lo, port))
                if len(senders) < 2:
                    continue
            self.set_service(serial, name)

    def mark_partial(self, frame_numbers) -> None:
        """Application stages hit a limit at these frames (Zeek's ``LimitReachedWeird``).

        Zeek then adds ``X`` ("connection analysis partial", once) to the
        connection's history, after the letters of the packets seen so far;
        :meth:`finish` does the same.  ``frame_numbers``: iterable of int.
        """
        for frame in frame_numbers:
            if frame is not None and frame > 0:
                self._partial.append(int(frame))

    def _mark_partial(self, hist: np.ndarray, C: np.ndarray, frame_serial: np.ndarray) -> None:
        """Insert ``X`` into the histories (rows of ``hist``) of the connections :meth:`mark_partial` named."""
        index = np.asarray(self._partial, dtype=np.int64) - self._first_frame
        known = (index >= 0) & (index < len(frame_serial))
        serials = frame_serial[index[known]]
        first: dict[int, int] = {}
        for serial, frame in zip(serials.tolist(), np.asarray(self._partial)[known].tolist()):
            if serial >= 0:
                first[serial] = min(frame, first.get(serial, frame))
        rows = {serial: j for j, serial in enumerate(C[:, R.K_SERIAL].tolist()) if serial in first}
        for serial, j in rows.items():
            count = int(C[j, R.K_HLEN])
            letters = hist[j, :count]
            if count >= S.HMAX or (letters == ord("X")).any():
                continue
            stamps = hist[j, S.HMAX:S.HMAX + 4 * count].view("<u4").astype(np.int64)
            # Letters of that packet and earlier come first (the transport sees a packet before its analyzer).
            at = int(np.count_nonzero(stamps <= (first[serial] & 0xFFFFFFFF)))
            hist[j, at + 1:count + 1] = letters[at:count].copy()
            hist[j, at] = ord("X")
            C[j, R.K_HLEN] = count + 1

    def set_service(self, conn, name: str, ts: int | None = None) -> None:
        """Record an application protocol confirmed on a connection (joined with commas, as Zeek).

        ``conn`` is the connection's uid, or (during streaming, before its uid is
        written out) its serial number from :attr:`batch_serial`.  ``ts``
        (ns since the epoch): when the analyzer confirmed it; Zeek lists a
        connection's services in confirmation order (e.g. ``http,smtp`` after
        an HTTP CONNECT), names without a time come after, as recorded.
        """
        names = self._services.setdefault(conn, [])
        if name not in names:
            names.append(name)
        if ts is not None:
            self._service_ts[conn, name] = min(ts, self._service_ts.get((conn, name), ts))

    def remove_service(self, conn, name: str) -> None:
        """An analyzer violation after confirmation: Zeek removes the service (``base/frameworks/analyzer/dpd``)."""
        self._removed_services.add((conn, name))

    def _service_text(self, uid: str, serial: int) -> str | None:
        by_uid, by_serial = self._services.get(uid), self._services.get(serial)
        if (by_uid is None) != (by_serial is None) and not self._removed_services:
            # The common case, one service recorded one way: nothing to merge, order or remove.
            names = by_uid or by_serial
            if len(names) == 1:
                return names[0].lower() or None
        names = self._services.get(uid, []) + [x for x in self._services.get(serial, [])
                                               if x not in self._services.get(uid, [])]
        inf = float("inf")
        kept = [(min(self._service_ts.get((uid, x), inf), self._service_ts.get((serial, x), inf)), i, x)
                for i, x in enumerate(names)
                if (uid, x) not in self._removed_services and (serial, x) not in self._removed_services]
        return ",".join(x for _, _, x in sorted(kept)).lower() or None

    # -- output ------------------------------------------------------------------

    def checksum_offloading(self, share: float = 0.05) -> str | None:
        """A one-line warning when more than ``share`` of the transport checksums failed, else None.

        Like Zeek's ``base/misc/find-checksum-offloading`` (5 %): a capture made
        on the sending host with checksum offload (loopback included) has bad
        checksums on most packets, and connection tracking then drops them.
        """
        if self.transport_packets and self.bad_checksums > share * self.transport_packets:
            return (f"{self.bad_checksums:,} of {self.transport_packets:,} packets "
                    f"({100 * self.bad_checksums / self.transport_packets:.0f} %) have bad TCP/UDP/ICMP checksums, "
                    "most likely from checksum offloading: those packets are left out of connections and "
                    "streams; analyse with -C (validate_checksums=False) to keep them")
        return None

    def finish(self) -> dict[str, pd.DataFrame]:
        """Flush every live connection (end of input) and return ``{"conn": frame}``."""
        done = np.empty(self.C.shape[0], dtype=np.int64)
        n_done = S.sweep(self.C, self.table, 0, done, 0, True)
        self._retire(done[:n_done])
        self.frame = self._frame()
        self._rows = []
        return {"conn": self.frame}

    def _frame(self) -> pd.DataFrame:
        if self._rows:
            C = np.concatenate([r["C"] for r in self._rows])
            ep = np.concatenate([r["ep"] for r in self._rows])
            hist = np.concatenate([r["letters"] for r in self._rows])
            if self._partial:
                hist = np.concatenate([hist, np.concatenate([r["stamps"] for r in self._rows])], axis=1)
        else:
            C = np.zeros((0, len(RETIRED_COLUMNS)), dtype=np.int64)
            ep = np.zeros((0, 8), dtype=np.int64)
            hist = np.zeros((0, S.HSTRIDE), dtype=np.uint8)
        order = np.lexsort((C[:, R.K_SERIAL], C[:, R.K_START]))
        m = len(C)
        C, ep, hist = C[order], ep[order], hist[order]
        uid_chars = encode_uid_chars(C[:, R.K_UIDA], C[:, R.K_UIDB])
        # packet uids: categories indexed by serial
        by_serial = np.zeros((self.serial, uid_chars.shape[1]), dtype=np.uint8)
        by_serial[C[:, R.K_SERIAL]] = uid_chars
        frame_serial = (np.concatenate(self._frame_serial) if self._frame_serial
                        else np.zeros(0, dtype=np.int64))
        self._frame_serial = []
        known = np.zeros(self.serial, dtype=bool)
        known[C[:, R.K_SERIAL]] = True
        serial_texts = strings_from_rows(by_serial, np.where(known, by_serial.shape[1], 0))
        try:
            self.packet_uid = pd.Categorical.from_codes(frame_serial, categories=pd.Index(serial_texts, dtype="str"))
        except ValueError:   # duplicate uids (a 96-bit hash collision), or a null: plain strings
            texts = serial_texts.to_numpy(dtype=object, na_value=None)
            self.packet_uid = pd.array(np.where(frame_serial >= 0, texts[np.maximum(frame_serial, 0)], None),
                                       dtype="string")
        proto_code = C[:, R.K_PROTO]
        start, last = C[:, R.K_START], C[:, R.K_LAST]
        dur_ns = last - start
        has_dur = dur_ns > 0
        ost, rst = ep[:, 2], ep[:, 3]
        if self._partial and m:
            self._mark_partial(hist, C, frame_serial)
        letters = hist[:, :S.HMAX].copy()
        # A reused slot keeps an earlier connection's letters past its own count.
        letter_count = np.minimum(C[:, R.K_HLEN], S.HMAX)
        letters[np.arange(S.HMAX)[None, :] >= letter_count[:, None]] = 0
        states = self._conn_state(proto_code, ost, rst, ep[:, 0], ep[:, 1], letters)
        na = pd.NA
        data = {}
        data["ts"] = pd.arrays.FloatingArray(start / 1e9, np.zeros(m, dtype=bool))
        data["uid"] = strings_from_rows(uid_chars)
        data["id.orig_h"] = format_addresses(C[:, R.K_OHI], C[:, R.K_OLO])
        data["id.orig_p"] = pd.array(C[:, R.K_OPORT].astype(np.uint16), dtype="UInt16")
        data["id.resp_h"] = format_addresses(C[:, R.K_RHI], C[:, R.K_RLO])
        data["id.resp_p"] = pd.array(C[:, R.K_RPORT].astype(np.uint16), dtype="UInt16")
        data["proto"] = pd.Categorical.from_codes(proto_code, categories=["tcp", "udp", "icmp"])
        services = [None] * m
        if self._services:
            # Keys are serials (ints) or uids (text): find the rows named either way, then read
            # only their uid texts.
            uid_keys = [key for key in self._services if isinstance(key, str)]
            serial_keys = np.array([key for key in self._services if not isinstance(key, str)], dtype=np.int64)
            hit = np.isin(C[:, R.K_SERIAL], serial_keys)
            if uid_keys:
                hit |= np.asarray(data["uid"].isin(uid_keys), dtype=bool)
            rows = np.flatnonzero(hit)
            uids = data["uid"].take(rows).to_numpy(dtype=object) if uid_keys else [None] * len(rows)
            for j, u, serial in zip(rows.tolist(), uids, C[rows, R.K_SERIAL].tolist()):
                services[j] = self._service_text(u, serial)
        data["service"] = pd.array(pa.array(services, type=pa.string()), dtype="string")
        data["duration"] = pd.arrays.FloatingArray(dur_ns / 1e9, ~has_dur)
        data["orig_bytes"] = pd.arrays.IntegerArray(ep[:, 0].copy(), ~has_dur)
        data["resp_bytes"] = pd.arrays.IntegerArray(ep[:, 1].copy(), ~has_dur)
        data["conn_state"] = pd.Categorical.from_codes(states, categories=list(CONN_STATES))
        if self.local_nets is not None:
            lo_o = in_networks(C[:, R.K_OHI], C[:, R.K_OLO], self.local_nets)
            lo_r = in_networks(C[:, R.K_RHI], C[:, R.K_RLO], self.local_nets)
            data["local_orig"] = pd.arrays.BooleanArray(lo_o, np.zeros(m, dtype=bool))
            data["local_resp"] = pd.arrays.BooleanArray(lo_r, np.zeros(m, dtype=bool))
        else:
            data["local_orig"] = pd.array([na] * m, dtype="boolean")
            data["local_resp"] = pd.array([na] * m, dtype="boolean")
        data["missed_bytes"] = pd.arrays.IntegerArray(C[:, R.K_MISSED].copy(), np.zeros(m, dtype=bool))
        data["history"] = strings_from_rows(letters, letter_count)
        zero = np.zeros(m, dtype=bool)
        data["orig_pkts"] = pd.arrays.IntegerArray(ep[:, 4].copy(), zero)
        data["orig_ip_bytes"] = pd.arrays.IntegerArray(ep[:, 6].copy(), zero)
        data["resp_pkts"] = pd.arrays.IntegerArray(ep[:, 5].copy(), zero)
        data["resp_ip_bytes"] = pd.arrays.IntegerArray(ep[:, 7].copy(), zero)
        parents = np.full(m, None, dtype=object)
        npar = C[:, R.K_NPAR]
        if (npar > 0).any():
            one = np.flatnonzero(npar > 0)
            p1 = encode_uid(C[one, R.K_P1A], C[one, R.K_P1B])
            two = npar[one] > 1
            p2 = encode_uid(C[one[two], R.K_P2A], C[one[two], R.K_P2B])
            lists = [[u] for u in p1]
            for j, u in zip(np.flatnonzero(two), p2):
                lists[j] = sorted([lists[j][0], u])
            for j, lst in zip(one, lists):
                parents[j] = lst
        data["tunnel_parents"] = parents
        data["ip_proto"] = pd.array(C[:, R.K_IPPROTO].astype(np.uint8), dtype="UInt8")
        data["community_id"] = strings_from_rows(self._community_ids(C))
        frame = pd.DataFrame(data)
        return frame[[c.name for c in CONN]]

    @staticmethod
    def _conn_state(proto, os_, rs, osize, rsize, letters) -> np.ndarray:
        """Zeek's Conn::conn_state over arrays of endpoint states: ``int8[m]`` codes into :data:`CONN_STATES`.

        ``letters`` (``uint8[m, HMAX]``, zero past each history) is read only where the
        history decides (RSTOS0 or OTH), so only those rows become text.
        """
        m = len(proto)
        code = {name: i for i, name in enumerate(CONN_STATES)}
        out = np.full(m, code["OTH"], dtype=np.int8)
        tcp = proto == S.TCP
        o_in = (os_ == S.INACTIVE) | (os_ == S.PARTIAL)
        r_in = (rs == S.INACTIVE) | (rs == S.PARTIAL)
        decided = ~tcp.copy()
        def put(mask, value):
            nonlocal decided
            sel = tcp & ~decided & mask
            out[sel] = code[value]
            decided |= sel
        rr = rs == S.RESET
        put(rr & ((os_ == S.SYN_SENT) | (os_ == S.SYN_ACK_SENT) | ((os_ == S.RESET) & (osize == 0) & (rsize == 0))),
            "REJ")
        put(rr & o_in, "RSTRH")
        put(rr, "RSTR")
        orr = os_ == S.RESET
        cand = tcp & ~decided & orr & r_in
        rows = np.flatnonzero(cand)
        for j, history in zip(rows.tolist(), letters[rows].view(f"S{S.HMAX}").reshape(-1).astype(str).tolist()):
            out[j] = code["RSTOS0"] if RSTOS0.fullmatch(history) else code["OTH"]
        decided |= cand
        put(orr, "RSTO")
        oc, rc = os_ == S.CLOSED, rs == S.CLOSED
        put(oc & rc, "SF")
        put(oc & r_in, "SH")
        put(oc, "S2")
        put(rc & o_in, "SHR")
        put(rc, "S3")
        put((os_ == S.SYN_SENT) & (rs == S.INACTIVE), "S0")
        put((os_ == S.ESTABLISHED) & (rs == S.ESTABLISHED), "S1")
        udp = proto == S.UDP
        oa, ra = os_ == 1, rs == 1
        out[udp & oa & ra] = code["SF"]
        out[udp & oa & ~ra] = code["S0"]
        out[udp & ~oa & ra] = code["SHR"]
        out[udp & ~oa & ~ra] = code["OTH"]
        return out

    @staticmethod
    def _community_ids(C: np.ndarray) -> np.ndarray:
        """Community ID v1 (seed 0) of every row as ASCII bytes (``uint8[m, 30]``): the inputs packed into one
        matrix, hashed row by row by hashlib."""
        m = len(C)
        if m == 0:
            return np.zeros((0, 30), dtype=np.uint8)
        ipp = C[:, R.K_IPPROTO]
        sp, dp = C[:, R.K_OPORT].copy(), C[:, R.K_RPORT].copy()
        ohi, olo, rhi, rlo = C[:, R.K_OHI], C[:, R.K_OLO], C[:, R.K_RHI], C[:, R.K_RLO]
        icmp = (ipp == 1) | (ipp == 58)
        counter = np.where(ipp == 1, ICMP4_COUNTERPART[np.clip(sp, 0, 255)],
                           ICMP6_COUNTERPART[np.clip(sp, 0, 255)])
        one_way = icmp & ((counter < 0) | (sp > 255))
        # order (address, port) pairs unless one-way
        swap = ~one_way & ((rhi.view(np.uint64) < ohi.view(np.uint64))
                           | ((rhi == ohi) & (rlo.view(np.uint64) < olo.view(np.uint64)))
                           | ((rhi == ohi) & (rlo == olo) & (dp < sp)))
        ahi, alo = np.where(swap, rhi, ohi), np.where(swap, rlo, olo)
        bhi, blo = np.where(swap, ohi, rhi), np.where(swap, olo, olo * 0 + rlo)
        pa, pb = np.where(swap, dp, sp), np.where(swap, sp, dp)
        v4 = (ahi == 0) & ((alo >> 32) == 0xFFFF) & (bhi == 0) & ((blo >> 32) == 0xFFFF)
        buf = np.zeros((m, 40), dtype=np.uint8)
        # seed 0: bytes 0-1 stay zero
        a = np.stack([ahi, alo], axis=1).astype(">i8").view(np.uint8).reshape(m, 16)
        b = np.stack([bhi, blo], axis=1).astype(">i8").view(np.uint8).reshape(m, 16)
        tail = np.zeros((m, 6), dtype=np.uint8)
        tail[:, 0] = ipp
        tail[:, 2:4] = pa.astype(">u2").view(np.uint8).reshape(m, 2)
        tail[:, 4:6] = pb.astype(">u2").view(np.uint8).reshape(m, 2)
        buf[v4, 2:6] = a[v4, 12:16]
        buf[v4, 6:10] = b[v4, 12:16]
        buf[v4, 10:16] = tail[v4]
        buf[~v4, 2:18] = a[~v4]
        buf[~v4, 18:34] = b[~v4]
        buf[~v4, 34:40] = tail[~v4]
        lengths = np.where(v4, 16, 40)
        ported = np.isin(ipp, (1, 6, 17, 58, 132))
        lengths = np.where(ported, lengths, lengths - 4)
        return community_id_rows(buf, lengths)
