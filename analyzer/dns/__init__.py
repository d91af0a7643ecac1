"""DNS: the ``dns`` frame, one row per query/response pair with Zeek's ``dns.log`` fields.

Usage in the pipeline (a stream stage, like HTTP)::

    stage = DnsStage(connections=pipeline.connections)   # sets conn.log service "dns"
    stage.feed(batch, fields, datagrams=completed)         # per batch: DNS over UDP, with the IP
                                                           # datagrams its fragments completed
    stage.feed_stream(delivery)                            # per reassembled TCP chunk (53/tcp)
    tables = stage.finish()                                # {"dns": …} (+ "dns_messages", "dns_weird" on request)
    stage.weirds                                           # [(frame.number, name, addl), …] for the weird table

Standalone, TCP bytes can also be given as values:
``stage.feed_stream(conn_key, is_orig, data, ts_ns, frame_number, conn_id=(orig_h, orig_p, resp_h, resp_p))``
and ``stage.close_stream(conn_key)``.

How it works, per batch: the DNS-port UDP datagrams are selected from the
dissectors' hidden columns (checksums verified as Zeek does), the messages are
walked in numba (:func:`dissectors.dns.parse`), paired in numba with Zeek's
rules (:mod:`analyzer.dns.pairing`), and text is made once per distinct name
or RDATA (:mod:`dissectors.dns_rdata`).  A pair is copied into a compact row
when Zeek would write it; the frames are built from those rows at
:meth:`finish`.  Memory holds the live sessions and connections, the rows and
the answer texts (ids into a table of distinct texts).

Semantics are Zeek's (``base/protocols/dns/main.zeek`` with the
``auth-addl`` and ``log-original-query-case`` add-ons): see ``DNS`` in
:mod:`analyzer.dns.schema` for the columns and :class:`DnsStage` for the options.
"""

from __future__ import annotations

import contextlib
import gc

import numpy as np
import pandas as pd

from dissectors import dns as wire
from dissectors import dns_rdata as rdata

from analyzer.conn.flows import dropped_rows

from . import pairing as pr
from .columns import address_texts, group_records, slice_lists
from .schema import DNS, DNS_MESSAGES
from .texts import KeyIndex
from .transport import V4_MAPPED, TcpFramer, address_bytes, udp_datagrams

__all__ = ["DEFAULT_PORTS", "DNS", "DNS_MESSAGES", "DnsStage"]

#: Zeek's DNS::ports for UDP (53/tcp is handled by :meth:`DnsStage.feed_stream`).
DEFAULT_PORTS = (53, 137, 5353, 5355)

_TCP_BATCH = 4096


def _payloads(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bytes ``data[start[i]:end[i]]`` of each datagram end to end (``uint8``), and where each begins."""
    lengths = np.maximum(end - start, 0)
    begins = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=begins[1:])
    offsets = np.repeat(start - begins, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
    return data[offsets], begins


class DnsStage:
    """Builds the ``dns`` frame (Zeek dns.log), ``dns_weird`` and optionally ``dns_messages``.

    Args:
        ports: UDP ports whose datagrams are DNS (either port), Zeek's DNS::ports.
        likely_server_ports: ports Zeek treats as servers when deciding who
            originated a UDP flow (a flow whose first datagram comes from one of
            these to a port that is not is turned round); default ``ports``.
        ignore_checksums: give datagrams with a bad UDP checksum to DNS anyway
            (Zeek's ``-C``).  By default they only create/refresh the connection.
        skip_auth, skip_addl: Zeek's ``dns_skip_all_auth``/``dns_skip_all_addl``.
            Default false (the auth-addl add-on): authority and additional
            sections are parsed, fill ``auth``/``addl`` and can raise weirds.
        max_queries: Zeek's ``dns_max_queries`` (25).
        max_compression_depth: Zeek's ``dns_max_compression_chain_depth`` (20).
        session_timeout: Zeek's ``dns_session_timeout`` in seconds (10).
        max_pending_msgs, max_pending_query_ids: Zeek's DNS options of those names (50).
        messages: also build ``dns_messages`` (one row per DNS message,
            Wireshark ``dns.*`` names).
        weird_table: also return the DNS weirds as a ``dns_weird`` frame (Zeek's
            weird.log fields, the connection's orientation as Zeek has it); they
            are always in :attr:`weirds` and :attr:`weird_frame` after :meth:`finish`.
        tcp_ports: responder ports of TCP connections whose streams are DNS (Zeek: 53/tcp).
        connections: the pipeline's :class:`analyzer.conn.ConnStage`; a connection
            whose DNS messages Zeek's analyzer confirms gets the service ``dns``.
    """

    def __init__(self, ports=DEFAULT_PORTS, likely_server_ports=None, ignore_checksums: bool = False,
                 skip_auth: bool = False, skip_addl: bool = False, max_queries: int = wire.MAX_QUERIES,
                 max_compression_depth: int = wire.MAX_COMPRESSION_DEPTH, session_timeout: float = 10.0,
                 max_pending_msgs: int = pr.MAX_PENDING_MSGS,
                 max_pending_query_ids: int = pr.MAX_PENDING_QUERY_IDS, messages: bool = False,
                 weird_table: bool = False, tcp_ports=(53,), connections=None):
        self.ports = np.asarray(sorted({int(p) for p in ports}), dtype=np.int64)
        likely = self.ports if likely_server_ports is None else likely_server_ports
        self.likely = np.asarray(sorted({int(p) for p in likely}), dtype=np.int64)
        self._likely_port = np.zeros(65536, dtype=np.bool_)
        self._likely_port[self.likely[(self.likely >= 0) & (self.likely < 65536)]] = True
        self.verify_checksums = not ignore_checksums
        self.skip_auth, self.skip_addl = bool(skip_auth), bool(skip_addl)
        self.max_queries = int(max_queries)
        self.max_depth = int(max_compression_depth)
        self.timeout = int(session_timeout * 1e9)
        self.max_msgs, self.max_ids = int(max_pending_msgs), int(max_pending_query_ids)
        self.want_messages = bool(messages)
        self.want_weird_table = bool(weird_table)
        self.tcp_ports = {int(p) for p in tcp_ports}
        self.connections = connections
        #: After :meth:`finish`: ``(frame.number, name, addl)`` per DNS weird (the pipeline's weird table).
        self.weirds: list[tuple[int, str, str | None]] = []
        #: After :meth:`finish`: the DNS weirds as a frame with Zeek's weird.log fields.
        self.weird_frame: pd.DataFrame | None = None
        self._eof: dict = {}
        #: DNS messages seen (datagrams or TCP messages given to the DNS walk).
        self.message_count = 0
        self._work = wire.Workspace()
        self._state = pr.State()
        # Connections: UDP 5-tuples (by hash, in numba) and TCP streams (by key).
        self._tcp_index: dict = {}
        self._udp_index = pr.new_index()
        self._ntuples = 0
        self._tcp_text: dict[int, tuple] = {}
        self._tcp_keys: dict[int, object] = {}                 # TCP tuple id -> connection key
        self._tup_addr = np.zeros((256, 2, 16), dtype=np.uint8)     # lo, hi address (IPv4 mapped)
        self._tup_port = np.full((256, 2), -1, dtype=np.int64)
        # Output: written rows, the records they own, and per-message columns for weirds/messages.
        self._rows: list[np.ndarray] = []
        self._owned: list[tuple[np.ndarray, ...]] = []         # (serial, part, text, ttl) per batch
        self._msgs: list[tuple[np.ndarray, ...]] = []          # dns_messages only: (ts, frame, tuple, src_lo, orig)
        self._nmsg = 0
        self._weirds: list[tuple[np.ndarray, ...]] = []        # (code/a/b, ts, frame, tuple, src_lo, orig)
        self._message_cols: list[dict] = []                    # dns_messages only
        # Text, once per distinct key; id 0 is "".
        self.texts: list[str] = [""]
        self._text_id = KeyIndex()                              # render key -> text id
        # TCP.
        self._framers: dict = {}
        self._tcp_pending: list[tuple] = []
        self._finished = None

    # ------------------------------------------------------------------ inputs

    #: The pipeline hands :meth:`feed` the datagrams reassembled from each batch's fragments.
    sees_datagrams = True

    def feed(self, batch, fields, frame_numbers: np.ndarray | None = None, datagrams=()) -> None:
        """Take the DNS-over-UDP datagrams of one dissected batch.

        ``frame_numbers``: the frame number of each row of ``batch`` when it is
        not ``batch.first_number + row`` (a batch of reassembled IP datagrams,
        each given the frame of the fragment that completed it).
        ``datagrams``: ``(batch, fields, rows, frame numbers)`` of the IP
        datagrams reassembled from this batch's fragments, datagram ``i``
        completed by row ``rows[i]``: taken with the batch's own, in capture
        order (each at its completing fragment, after that frame's own), so
        that pairing and timeouts do not depend on where batches are cut.
        """
        own = udp_datagrams(batch, fields, self.ports, self.verify_checksums)
        parts = [(batch, fields, None, frame_numbers, own)]
        for part_batch, part_fields, rows, numbers in datagrams:
            part = udp_datagrams(part_batch, part_fields, self.ports, self.verify_checksums)
            if len(part):
                parts.append((part_batch, part_fields, rows, numbers, part))
        if len(parts) == 1 and not len(own):
            return
        # Connection numbers for the batch's own datagrams (a batch of datagrams fed alone has none).
        serial = getattr(self.connections, "batch_serial", None) if frame_numbers is None else None
        if serial is not None and len(serial) != len(batch):
            serial = None
        self._feed_parts(batch, parts, serial)

    def _feed_parts(self, batch, parts, serial) -> None:
        """The DNS datagrams of a batch and of the IP datagrams reassembled from its fragments, as one timeline.

        ``parts``: ``(batch, fields, completing rows or None, frame numbers or
        None, UdpDatagrams)``, the batch itself first.  The timeline is the
        batch's packets with each reassembled datagram after the fragment that
        completed it; with datagrams, the payloads are read from one buffer
        that holds only them (the DNS messages, not the whole batch).
        """
        n, own = len(batch), parts[0][4]
        if len(parts) == 1:
            position, pkt_ts, data = None, batch.ts_ns.astype(np.int64, copy=False), batch.data
            starts, ends = [own.start], [own.end]
        else:
            anchors = [np.arange(n, dtype=np.int64)] + [rows[part.rows] for _, _, rows, _, part in parts[1:]]
            order = np.lexsort((np.concatenate([np.full(len(a), i) for i, a in enumerate(anchors)]),
                                np.concatenate(anchors)))
            position = np.empty(len(order), dtype=np.int64)
            position[order] = np.arange(len(order))
            pkt_ts = np.concatenate([batch.ts_ns.astype(np.int64)] + [
                part_batch.ts_ns[part.rows].astype(np.int64) for part_batch, *_, part in parts[1:]])[order]
            payloads = [_payloads(part_batch.data, part.start, part.end) for part_batch, *_, part in parts]
            bases = np.cumsum([0] + [len(data) for data, _ in payloads[:-1]])
            # (A byte more, so that the buffer is never empty, as feed_datagram's.)
            data = np.concatenate([data for data, _ in payloads] + [np.zeros(1, np.uint8)])
            starts = [begins + base for (_, begins), base in zip(payloads, bases)]
            ends = [start + np.maximum(part.end - part.start, 0) for start, (*_, part) in zip(starts, parts)]
        # Each datagram's place on the timeline: a batch packet's at its row, the others' after the batch's.
        places, at = [own.rows], n
        for *_, part in parts[1:]:
            places.append(at + np.arange(len(part), dtype=np.int64))
            at += len(part)
        event_rows = np.concatenate(places if position is None else [position[place] for place in places])
        events = np.argsort(event_rows, kind="stable")

        def merged(values):
            return np.concatenate(values)[events]

        frames = [(part.rows + part_batch.first_number if numbers is None else np.asarray(numbers)[part.rows])
                  .astype(np.int64) for part_batch, _, _, numbers, part in parts]
        if serial is not None:
            # Only the batch's own datagrams confirm a connection's service.
            serial = merged([serial[own.rows]] + [np.full(len(part), -1, dtype=np.int64) for *_, part in parts[1:]])
        dropped = []
        for _, part_fields, _, _, part in parts:
            rows = dropped_rows(part_fields)
            dropped.append(np.zeros(len(part), dtype=bool) if rows is None else np.isin(part.rows, rows))
        with _gc_paused():
            self._udp(data, event_rows[events], merged([part.src for *_, part in parts]),
                      merged([part.dst for *_, part in parts]), merged([part.sport for *_, part in parts]),
                      merged([part.dport for *_, part in parts]), merged(starts), merged(ends),
                      merged([part.delivered for *_, part in parts]),
                      merged([part_batch.ts_ns[part.rows].astype(np.int64) for part_batch, *_, part in parts]),
                      merged(frames), pkt_ts, serial, merged(dropped))

    def feed_datagram(self, src_h: str, src_p: int, dst_h: str, dst_p: int, payload: bytes, ts_ns: int,
                      frame_number: int, checksum_ok: bool = True) -> None:
        """Take one UDP datagram given as values (e.g. from IP fragment reassembly)."""
        if not np.isin([src_p, dst_p], self.ports).any():
            return
        data = np.frombuffer(bytes(payload) or b"\0", dtype=np.uint8)
        src = np.frombuffer(address_bytes(src_h), dtype=np.uint8).reshape(1, 16)
        dst = np.frombuffer(address_bytes(dst_h), dtype=np.uint8).reshape(1, 16)
        one = np.zeros(1, dtype=np.int64)
        self._udp(data, one, src, dst, np.array([src_p], np.int64), np.array([dst_p], np.int64), one,
                  np.array([len(payload)], np.int64), np.array([checksum_ok]), np.array([ts_ns], np.int64),
                  np.array([frame_number], np.int64), np.array([ts_ns], np.int64))

    def ignores(self, key) -> bool:
        """Whether :meth:`feed_stream` drops every delivery of this connection (a
        :class:`~analyzer.reassembly.ConnKey`): neither port is one of ``tcp_ports``."""
        return key.resp_p not in self.tcp_ports and key.orig_p not in self.tcp_ports

    def feed_stream(self, connection_key, is_orig: bool | None = None, data: bytes = b"", ts_ns: int = 0,
                    frame_number: int = -1, conn_id=None) -> None:
        """Take reassembled DNS-over-TCP bytes of one direction of a connection.

        Either one :class:`analyzer.reassembly.Delivery` (the pipeline's TCP
        reassembly: connections whose responder port is in ``tcp_ports`` are
        read; a chunk's gap is passed over as Zeek does, its end of stream
        delivers a partial message, both ends close the connection), or values:

        Args:
            connection_key: any hashable naming the connection (the same for both directions).
            is_orig: the bytes were sent by the connection's originator (as
                connection tracking saw it; the DNS stage applies Zeek's role
                flip itself when the first message is a response from the originator).
            data: the next in-order bytes of that direction (any split: a message
                may span calls, a call may hold several messages).
            ts_ns, frame_number: time and frame of the packet that delivered ``data``.
            conn_id: ``(orig_h, orig_p, resp_h, resp_p)``; by default taken from
                ``connection_key`` when that is such a tuple.
        """
        if is_orig is None and hasattr(connection_key, "chunk"):
            delivery = connection_key
            key, chunk = delivery.key, delivery.chunk
            is_orig = bool(delivery.is_orig)
            conn_id = tuple(key[:4])
            if key.resp_p not in self.tcp_ports:
                if key.orig_p not in self.tcp_ports:
                    return
                # A stream picked up from the server's side (no handshake seen): Zeek takes the
                # endpoint on the likely server port for the responder.
                conn_id = (key.resp_h, key.resp_p, key.orig_h, key.orig_p)
                is_orig = not is_orig
            self._stream(key, is_orig, chunk.data, int(chunk.ts), int(chunk.frame), conn_id)
            if chunk.eof:
                self._end_of_stream(key, is_orig, int(chunk.ts), int(chunk.frame))
            return
        self._stream(connection_key, bool(is_orig), data, int(ts_ns), int(frame_number), conn_id)

    def _stream(self, connection_key, is_orig: bool, data: bytes, ts_ns: int, frame_number: int, conn_id) -> None:
        tup = self._tcp_tuple(connection_key, conn_id)
        if not data:
            return
        framer = self._framers.get((connection_key, is_orig))
        if framer is None:
            framer = self._framers[(connection_key, is_orig)] = TcpFramer()
        for message in framer.feed(bytes(data)):
            self._tcp_pending.append((tup, 1 if is_orig else 0, message, ts_ns, frame_number, pr.EV_TCPMSG))
        if len(self._tcp_pending) >= _TCP_BATCH:
            self._run_tcp()

    def _end_of_stream(self, key, is_orig: bool, ts_ns: int, frame: int) -> None:
        """One direction ended: its partial message is delivered; when both have, the connection ends."""
        tup = self._tcp_index.get(key)
        if tup is None:
            return
        framer = self._framers.pop((key, is_orig), None)
        partial = framer.flush() if framer is not None else None
        if partial is not None:
            self._tcp_pending.append((tup, 1 if is_orig else 0, partial, ts_ns, frame, pr.EV_TCPFLUSH))
        ended = self._eof.setdefault(key, set())
        ended.add(is_orig)
        if len(ended) == 2:
            del self._eof[key]
            self._tcp_pending.append((tup, 1, b"", ts_ns, frame, pr.EV_CLOSE))
            if len(self._tcp_pending) >= _TCP_BATCH:
                self._run_tcp()

    def close_stream(self, connection_key, ts_ns: int | None = None, frame_number: int | None = None) -> None:
        """The TCP connection ended: deliver partial messages (as Zeek's Flush) and write what is pending."""
        tup = self._tcp_index.get(connection_key)
        if tup is None:
            return
        when = int(ts_ns) if ts_ns is not None else 0
        frame = int(frame_number) if frame_number is not None else -1
        self._flush_framers(connection_key, when, frame)
        self._tcp_pending.append((tup, 1, b"", when, frame, pr.EV_CLOSE))
        if len(self._tcp_pending) >= _TCP_BATCH:
            self._run_tcp()

    # ------------------------------------------------------------------ connections

    def _tuples(self, src, dst, sport, dport):
        """Canonical 5-tuple ids (UDP; new ones registered) and whether each datagram's source is the 'lo' end."""
        k = len(sport)
        start = self._ntuples
        self._room(start + k)
        self._udp_index = pr.reserve_index(self._udp_index, self._tup_addr, self._tup_port,
                                           self._state.TUP[:start, pr.TP_TCP] == 0, start, k)
        ids, src_lo, count = pr.lookup_tuples(self._udp_index, self._tup_addr, self._tup_port, self._state.TUP,
                                              self._likely_port, start, np.ascontiguousarray(src),
                                              np.ascontiguousarray(dst), sport.astype(np.int64),
                                              dport.astype(np.int64))
        self._ntuples = count
        return ids, src_lo

    def _room(self, need: int) -> None:
        st = self._state
        if need > st.TUP.shape[0]:
            size = max(need, 2 * st.TUP.shape[0])
            n = self._ntuples
            st.TUP = pr._grow(st.TUP, size)
            addr = np.zeros((size, 2, 16), dtype=np.uint8)
            addr[:n] = self._tup_addr[:n]
            port = np.full((size, 2), -1, dtype=np.int64)
            port[:n] = self._tup_port[:n]
            self._tup_addr, self._tup_port = addr, port

    def _tcp_tuple(self, connection_key, conn_id) -> int:
        tid = self._tcp_index.get(connection_key)
        if tid is not None:
            return tid
        if conn_id is None and isinstance(connection_key, tuple) and len(connection_key) >= 4:
            conn_id = connection_key[:4]
        text = (None, None, None, None)
        tid = self._ntuples
        self._room(tid + 1)
        self._ntuples += 1
        lo = hi = b""
        if conn_id is not None:
            orig_h, orig_p, resp_h, resp_p = conn_id
            text = (str(orig_h), int(orig_p), str(resp_h), int(resp_p))
            try:
                lo, hi = address_bytes(text[0]), address_bytes(text[2])
                self._tup_addr[tid, 0] = np.frombuffer(lo, dtype=np.uint8)
                self._tup_addr[tid, 1] = np.frombuffer(hi, dtype=np.uint8)
            except ValueError:
                lo = hi = b""
            self._tup_port[tid] = (text[1], text[3])
        row = self._state.TUP[tid]
        row[:] = 0
        row[pr.TP_INST] = -1
        row[pr.TP_LO_MC] = _multicast1(lo)
        row[pr.TP_HI_MC] = _multicast1(hi)
        row[pr.TP_TCP] = 1
        self._tcp_index[connection_key] = tid
        self._tcp_keys[tid] = connection_key
        self._tcp_text[tid] = text
        return tid

    # ------------------------------------------------------------------ machinery

    def _udp(self, data, rows, src, dst, sport, dport, start, end, delivered, ts, frame, pkt_ts,
             serial=None, dropped=None) -> None:
        tuples, src_lo = self._tuples(src, dst, sport, dport)
        idx = np.flatnonzero(delivered)
        netbios = ((sport == 137) | (dport == 137))[idx]
        parsed = wire.parse(data, start[idx], end[idx], netbios, None, self.max_queries, self.max_depth,
                            self.skip_auth, self.skip_addl, self._work)
        if serial is not None and self.connections is not None:
            confirmed = np.unique(serial[idx][parsed.hdr[:, wire.H_CONFIRM] == 1])
            for conn in confirmed[confirmed >= 0].tolist():
                self.connections.set_service(int(conn), "dns")
        ev_msg = np.full(len(rows), -1, dtype=np.int64)
        ev_msg[idx] = np.arange(len(idx))
        ev_kind = np.where(delivered, pr.EV_MSG, pr.EV_NODELIVER).astype(np.int64)
        if dropped is not None:
            ev_kind[dropped] = pr.EV_SKIP     # Zeek drops the packet (truncated_IP ...): messages table only
        self._process(data, parsed, netbios, rows.astype(np.int64), ev_kind, tuples, src_lo, ev_msg, ts, frame,
                      pkt_ts, idx, advance=True)

    def _run_tcp(self) -> None:
        pending, self._tcp_pending = self._tcp_pending, []
        if not pending:
            return
        has = np.array([p[5] != pr.EV_CLOSE for p in pending], dtype=bool)
        messages = [p[2] for p in pending if p[5] != pr.EV_CLOSE]
        lengths = np.array([len(m) for m in messages], dtype=np.int64)
        starts = np.zeros(len(messages), dtype=np.int64)
        if len(messages):
            starts[1:] = np.cumsum(lengths)[:-1]
        data = np.frombuffer(b"".join(messages) or b"\0", dtype=np.uint8)
        ev_msg = np.full(len(pending), -1, dtype=np.int64)
        ev_msg[has] = np.arange(len(messages))
        netbios = np.zeros(len(messages), dtype=bool)
        with _gc_paused():
            parsed = wire.parse(data, starts, starts + lengths, netbios, np.ones(len(messages), dtype=bool),
                                self.max_queries, self.max_depth, self.skip_auth, self.skip_addl, self._work)
            if self.connections is not None:
                self._tcp_services(np.array([p[0] for p in pending if p[5] != pr.EV_CLOSE], dtype=np.int64),
                                   parsed.hdr)
            self._process(data, parsed, netbios, np.arange(len(pending), dtype=np.int64),
                          np.array([p[5] for p in pending], dtype=np.int64),
                          np.array([p[0] for p in pending], dtype=np.int64),
                          np.array([p[1] for p in pending], dtype=np.int64), ev_msg,
                          np.array([p[3] for p in pending], dtype=np.int64),
                          np.array([p[4] for p in pending], dtype=np.int64), np.zeros(0, np.int64),
                          np.flatnonzero(has), advance=False)

    def _tcp_services(self, tuples: np.ndarray, hdr: np.ndarray) -> None:
        """Confirm the ``dns`` service of the TCP connections (``tuples`` per message) Zeek's analyzer confirms."""
        confirmed = np.unique(tuples[hdr[:, wire.H_CONFIRM] == 1])
        if not len(confirmed):
            return
        for tup in confirmed.tolist():
            uid = getattr(self._tcp_keys.get(tup), "uid", None)
            if uid is not None:
                self.connections.set_service(uid, "dns")

    def _process(self, data, parsed, netbios, ev_pkt, ev_kind, ev_tuple, ev_src, ev_msg, ev_ts, ev_frame, pkt_ts,
                 msg_events, advance) -> None:
        """Pair one batch of events and keep what the frames need; ``msg_events[i]`` is message i's event."""
        hdr, rec, weird = parsed
        m, k = hdr.shape[0], rec.shape[0]
        self.message_count += m
        st = self._state
        st.reserve(len(ev_kind))
        m_orig = np.zeros(m, dtype=np.int64)
        rec_serial = np.full(k, -1, dtype=np.int64)
        rec_text = self._session_texts(data, hdr, rec, netbios)
        pr.pair(st.TUP, st.INS, st.ENT, st.SES, st.HEAP, st.ROWS, st.FREE_S, st.FREE_I, st.FREE_E, st.CNT, st.table,
                pkt_ts, ev_pkt, ev_kind, ev_tuple, ev_src, ev_msg, ev_ts, ev_frame, hdr, rec, rec_text, rec_serial,
                netbios, m_orig, advance, self.timeout, self.max_ids, self.max_msgs)
        self._rows.append(st.take_rows())
        # Records that went into a session's answers/auth/addl.
        owned, serial, part, key, ttl = pr.owned_records(rec, rec_serial)
        text = self._assign(owned, key, rec[:, wire.R_KIND], data, hdr, rec, netbios)
        self._owned.append((serial, part, text, ttl))
        # Weird rows, with what they need of their message (time, frame, connection, direction).
        if len(weird):
            weird = weird[ev_kind[msg_events[weird[:, wire.W_MSG]]] != pr.EV_SKIP]
        if len(weird):
            e = msg_events[weird[:, wire.W_MSG]]
            self._weirds.append((weird[:, 1:4].copy(), ev_ts[e], ev_frame[e], ev_tuple[e],
                                 ev_src[e].astype(np.int8), m_orig[weird[:, wire.W_MSG]].astype(np.int8)))
        if self.want_messages:
            self._msgs.append((ev_ts[msg_events], ev_frame[msg_events], ev_tuple[msg_events],
                               ev_src[msg_events].astype(np.int8), m_orig.astype(np.int8)))
            self._message_cols.append(self._message_columns(data, hdr, rec, netbios))
        self._nmsg += m

    def _session_texts(self, data, hdr, rec, netbios) -> np.ndarray:
        """Text ids records give a session: query (lower-cased), original query, answer owner."""
        k = rec.shape[0]
        out = np.full((k, 3), -1, dtype=np.int64)
        if not k:
            return out
        # The last question of a query sets the session's query (Zeek's dns_request, last one wins).
        last_q = hdr[:, wire.H_LASTQ]
        questions = last_q[(last_q >= 0) & (hdr[:, wire.H_QR] == 0)]
        out[questions, 0] = self._assign(questions, rec[questions, wire.R_OKEY], wire.K_QLOWER, data, hdr, rec,
                                         netbios)
        out[questions, 1] = self._assign(questions, rec[questions, wire.R_QKEY], wire.K_QORIG, data, hdr, rec,
                                         netbios)
        # The first answer of a response gives the query when none was seen (Zeek's do_reply).
        owners = pr.first_answers(hdr, rec)
        if len(owners):
            out[owners, 2] = self._assign(owners, rec[owners, wire.R_OKEY], wire.K_OWNER, data, hdr, rec, netbios)
        return out

    def _assign(self, where, wanted, kinds, data, hdr, rec, netbios) -> np.ndarray:
        """Text ids (``int32``) of records ``where`` whose keys are ``wanted``, rendering each new key once.

        ``kinds``: one render kind, or each record's (indexed by record).
        """
        if not len(where):
            return np.zeros(0, dtype=np.int32)
        ids = self._text_id.find(wanted)
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            distinct, first = np.unique(wanted[missing], return_index=True)
            found = np.empty(len(distinct), dtype=np.int64)
            for j in range(len(distinct)):
                r = int(where[missing[first[j]]])
                m = int(rec[r, wire.R_MSG])
                base, end = int(hdr[m, wire.H_BASE]), int(hdr[m, wire.H_END])
                du = rec[r, wire.R_SECT] == wire.SECT_UPDATE and hdr[m, wire.H_DU] == 1
                kind = int(kinds if np.isscalar(kinds) else kinds[r])
                value = rdata.render(kind, data[base:end].tobytes(), rec[r], base, bool(netbios[m]),
                                     self.max_depth, bool(du))
                if value == "":
                    found[j] = 0                      # id 0 is "" (Zeek's empty reply: not an answers entry)
                else:
                    found[j] = len(self.texts)
                    self.texts.append(value)
            self._text_id.add(distinct, found)
            ids[missing] = found[np.searchsorted(distinct, wanted[missing])]
        return ids.astype(np.int32)

    def _text(self, value: str) -> int:
        """Id of a text made outside the per-key cache (e.g. a decoded NetBIOS name)."""
        self.texts.append(value)
        return len(self.texts) - 1

    def _message_columns(self, data, hdr, rec, netbios) -> dict:
        """What ``dns_messages`` needs of one batch (only with ``messages=True``)."""
        k = rec.shape[0]
        rtype, sect = rec[:, wire.R_TYPE], rec[:, wire.R_SECT]
        question = np.flatnonzero(sect == wire.SECT_QUESTION)
        wanted = np.flatnonzero((sect != wire.SECT_QUESTION) & (rec[:, wire.R_KIND] != wire.K_NONE)
                                & ((rtype == wire.T_A) | (rtype == wire.T_AAAA) | (rtype == wire.T_CNAME)))
        qtext = self._assign(question, rec[question, wire.R_QKEY], wire.K_QORIG, data, hdr, rec, netbios)
        atext = self._assign(wanted, rec[wanted, wire.R_KEY], rec[:, wire.R_KIND], data, hdr, rec, netbios)
        extras = {}
        for m in np.flatnonzero(hdr[:, wire.H_ECS_FAMILY] >= 0).tolist():
            pos, length = int(hdr[m, wire.H_ECS_POS]), int(hdr[m, wire.H_ECS_LEN])
            family = int(hdr[m, wire.H_ECS_FAMILY])
            width = 4 if family == 1 else 16
            raw = (data[pos:pos + length].tobytes() + bytes(width))[:width]
            address = rdata.format_ipv4(int.from_bytes(raw, "big")) if family == 1 else rdata.format_ipv6(raw)
            extras.setdefault(m, {})["ecs"] = address
        for m in np.flatnonzero(hdr[:, wire.H_COOKIE_POS] >= 0).tolist():
            pos, length = int(hdr[m, wire.H_COOKIE_POS]), int(hdr[m, wire.H_COOKIE_LEN])
            raw = data[pos:pos + length].tobytes()
            extras.setdefault(m, {})["cookie"] = (raw[:8].hex(), raw[8:].hex() or None)
        del k
        return {"hdr": hdr.copy(), "q_msg": rec[question, wire.R_MSG] + self._nmsg, "q_type": rtype[question],
                "q_text": qtext, "a_msg": rec[wanted, wire.R_MSG] + self._nmsg, "a_type": rtype[wanted],
                "a_text": atext, "extras": {self._nmsg + m: v for m, v in extras.items()}}

    # ------------------------------------------------------------------ output

    def finish(self) -> dict[str, pd.DataFrame]:
        """End every connection (writing what is pending) and return the frames."""
        if self._finished is not None:
            return self._finished
        for key in list(self._tcp_index):
            self._flush_framers(key, 0, -1)
        self._eof.clear()
        self._run_tcp()
        st = self._state
        st.reserve(0)
        st.ROWS = pr._grow(st.ROWS, st.live("sessions") * 2 + 16)
        pr.finish_all(st.TUP, st.INS, st.ENT, st.SES, st.ROWS, st.FREE_S, st.FREE_I, st.FREE_E, st.CNT, st.table)
        self._rows.append(st.take_rows())
        with _gc_paused():
            tables = {"dns": self._dns_frame()}
            self.weird_frame = self._weird_frame()
            if self.want_messages:
                tables["dns_messages"] = self._messages_frame()
        if self.want_weird_table:
            tables["dns_weird"] = self.weird_frame
        w = self.weird_frame
        self.weirds = list(zip(w["frame.number"].to_numpy(dtype=np.int64, na_value=-1).tolist(),
                               w["name"].tolist(), [None if a is pd.NA else a for a in w["addl"].tolist()]))
        self._finished = tables
        return tables

    def _flush_framers(self, key, ts_ns, frame) -> None:
        tup = self._tcp_index[key]
        for is_orig in (True, False):
            framer = self._framers.pop((key, is_orig), None)
            partial = framer.flush() if framer is not None else None
            if partial is not None:
                self._tcp_pending.append((tup, 1 if is_orig else 0, partial, ts_ns, frame, pr.EV_TCPFLUSH))

    def _messages(self) -> dict[str, np.ndarray]:
        names = ("ts", "frame", "tuple_", "src_lo", "orig")
        if not self._msgs:
            return {name: np.zeros(0, dtype=np.int64) for name in names}
        return {name: np.concatenate([part[i] for part in self._msgs]) for i, name in enumerate(names)}

    def _endpoints(self, tup, orig_is_lo):
        """id.orig_h/id.orig_p/id.resp_h/id.resp_p/proto columns for tuple ids (-1: none) and orientation.

        Addresses are formatted once per distinct address of the tuples used.
        """
        k = len(tup)
        lo = np.where(orig_is_lo, 0, 1)
        hi = 1 - lo
        valid = tup >= 0
        safe = np.where(valid, tup, 0)
        used, inverse = _small_unique(safe, self._ntuples + 1)
        raw = self._tup_addr[used].reshape(-1, 16) if len(used) else np.zeros((0, 16), dtype=np.uint8)
        distinct, where = address_texts(raw)
        codes = where.reshape(-1, 2)
        if self._tcp_text:
            texts = distinct.to_pylist()
            tcp_ids = np.fromiter(self._tcp_text, dtype=np.int64, count=len(self._tcp_text))
            for j in np.flatnonzero(np.isin(used, tcp_ids)).tolist():
                text = self._tcp_text[int(used[j])]
                for side, value in ((0, text[0]), (1, text[2])):
                    if value is None:
                        codes[j, side] = -1
                    else:
                        texts.append(value)
                        codes[j, side] = len(texts) - 1
            texts, remap = _dedupe(texts)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)] if len(remap) else -1, -1)
            categories = pd.Index(texts, dtype="str")
        else:
            categories = pd.Index(distinct, dtype="str")
        row_codes = codes[inverse] if k else np.zeros((0, 2), dtype=np.int64)
        ports = self._tup_port[safe]
        rows = np.arange(k)
        orig_code = np.where(valid, row_codes[rows, lo], -1)
        resp_code = np.where(valid, row_codes[rows, hi], -1)
        orig_p = np.where(valid, ports[rows, lo], -1)
        resp_p = np.where(valid, ports[rows, hi], -1)
        proto = np.where(valid, self._state.TUP[safe, pr.TP_TCP], -1)
        addr_type = pd.CategoricalDtype(categories)
        return {
            "id.orig_h": pd.Categorical.from_codes(orig_code, dtype=addr_type, validate=False),
            "id.orig_p": _ints(orig_p, orig_p >= 0, "UInt16"),
            "id.resp_h": pd.Categorical.from_codes(resp_code, dtype=addr_type, validate=False),
            "id.resp_p": _ints(resp_p, resp_p >= 0, "UInt16"),
            "proto": pd.Categorical.from_codes(proto, categories=pd.Index(["udp", "tcp"], dtype="str")),
        }

    def _row_columns(self) -> list[np.ndarray]:
        """The written rows' columns (``int64[n]`` each, indexed by ``RW_*``), in (ts, frame.number) order.

        Built column by column: each array stays a few megabytes, which the
        allocator reuses, where one ``n x NRW`` table would be fresh memory twice.
        """
        parts = self._rows or [np.zeros((pr.NRW, 0), dtype=np.int64)]

        def column(c):
            return np.concatenate([part[c] for part in parts])

        order = np.lexsort((column(pr.RW_FRAME), column(pr.RW_TS)))
        return [column(c)[order] for c in range(pr.NRW)]

    def _dns_frame(self) -> pd.DataFrame:
        R = self._row_columns()
        n = len(R[pr.RW_TS])
        tup = R[pr.RW_TUPLE]
        ends = self._endpoints(tup, R[pr.RW_ORIG_LO] == 1)
        resp_p = ends["id.resp_p"].to_numpy(dtype=np.int64, na_value=-1)
        is_udp = self._state.TUP[tup, pr.TP_TCP] == 0 if n else np.zeros(0, dtype=bool)
        flags = R[pr.RW_FLAGS]
        has_q = (flags & pr.F_HASQ) != 0
        # query: the last question of the query (NetBIOS-decoded towards port 137), else the first answer's owner.
        query_id = np.where(has_q, R[pr.RW_QTEXT], R[pr.RW_ATEXT])
        udp137 = is_udp & (resp_p == 137) & has_q
        if udp137.any():
            rows = np.flatnonzero(udp137)
            names, first, inverse = np.unique(query_id[rows], return_index=True, return_inverse=True)
            decoded = np.empty(len(names), dtype=np.int64)
            for j in np.argsort(first, kind="stable").tolist():     # new texts in row order
                name = self.texts[int(names[j])]
                decoded[j] = self._text(rdata.decode_netbios_name(name) or name)
            query_id[rows] = decoded[inverse.reshape(-1)]
        qtype = R[pr.RW_QTYPE]
        nbstat = udp137 & (qtype == 33)
        rcode, opcode, qclass = R[pr.RW_RCODE], R[pr.RW_OPCODE], R[pr.RW_QCLASS]
        netbios = (flags & pr.F_NETBIOS) != 0
        answers, ttls, auth, addl = self._record_lists(R[pr.RW_SERIAL])
        rtt = R[pr.RW_RTT]
        frame_no = R[pr.RW_FRAME]
        data = {
            "ts": pd.arrays.FloatingArray(R[pr.RW_TS] / 1e9, np.zeros(n, dtype=bool)),
            "uid": _nulls(n),
            **ends,
            "trans_id": _ints(R[pr.RW_TID], np.ones(n, bool), "UInt16"),
            "rtt": pd.arrays.FloatingArray(np.where(rtt >= 0, rtt, 0) / 1e9, rtt < 0),
            "query": _strings(query_id, self.texts),
            "qclass": _ints(qclass, qclass >= 0, "UInt16"),
            "qclass_name": _name_categorical(qclass, rdata.qclass_name),
            "qtype": _ints(qtype, qtype >= 0, "UInt16"),
            "qtype_name": _name_categorical(np.where(nbstat, 1 << 20, qtype),
                                            lambda v: "NBSTAT" if v == 1 << 20 else rdata.qtype_name(v)),
            "rcode": _ints(rcode, rcode >= 0, "UInt8"),
            "rcode_name": _name_categorical(rcode, rdata.rcode_name),
            "AA": _bools(flags & pr.F_AA),
            "TC": _bools(flags & pr.F_TC),
            "RD": _bools(flags & pr.F_RD),
            "RA": _bools(flags & pr.F_RA),
            "Z": _ints(R[pr.RW_Z], np.ones(n, bool), "UInt8"),
            "answers": answers,
            "TTLs": ttls,
            "rejected": _bools(flags & pr.F_REJ),
            "opcode": _ints(opcode, opcode >= 0, "UInt8"),
            "opcode_name": _name_categorical(np.where(opcode >= 0, opcode + netbios * 1024, -1),
                                             lambda v: rdata.opcode_name(v % 1024, v >= 1024)),
            "auth": auth,
            "addl": addl,
            "original_query": _strings(np.where(has_q, R[pr.RW_QOTEXT], -1), self.texts),
            "frame.number": _ints(frame_no, frame_no >= 0, "Int64"),
        }
        return pd.DataFrame(data, columns=[c.name for c in DNS])

    def _record_lists(self, serials):
        """``answers``, ``TTLs``, ``auth`` and ``addl`` (lists or None) for the rows of session ``serials``."""
        if self._owned:
            owner, part, text, ttl = (np.concatenate([o[i] for o in self._owned]) for i in range(4))
        else:
            owner = np.zeros(0, np.int64)
            part, text, ttl = np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.uint32)
        ids, seconds, offsets, same_as = group_records(serials, owner, part, text, ttl, len(self.texts))
        texts = np.array(self.texts, dtype=object)
        starts, ends = offsets[:, :-1], offsets[:, 1:]
        out = []
        for which in range(3):
            out.append(slice_lists(texts[ids[which]].tolist(), starts[which], ends[which]))
            if which == 0:
                out.append(slice_lists(seconds.tolist(), starts[0], ends[0]))
        for row, first in zip(np.flatnonzero(same_as >= 0).tolist(), same_as[same_as >= 0].tolist()):
            for column in out:                         # a session written twice: its lists twice
                column[row] = None if column[first] is None else list(column[first])
        return tuple(out)

    def _weird_frame(self) -> pd.DataFrame:
        from analyzer.schema import WEIRD
        parts = self._weirds
        if parts:
            codes, ts, frame_no, tup, src_lo, orig = (np.concatenate([p[i] for p in parts]) for i in range(6))
        else:
            codes = np.zeros((0, 3), dtype=np.int64)
            ts = frame_no = tup = np.zeros(0, dtype=np.int64)
            src_lo = orig = np.zeros(0, dtype=np.int8)
        k = len(codes)
        ends = self._endpoints(tup, (src_lo == 1) == (orig == 1))
        data = {
            "ts": pd.arrays.FloatingArray(ts / 1e9, np.zeros(k, dtype=bool)),
            "uid": _nulls(k),
            "id.orig_h": ends["id.orig_h"].astype("string"),
            "id.orig_p": ends["id.orig_p"],
            "id.resp_h": ends["id.resp_h"].astype("string"),
            "id.resp_p": ends["id.resp_p"],
            "name": pd.array([wire.WEIRDS[c][0] for c in codes[:, 0].tolist()], dtype="string"),
            "addl": pd.array([wire.weird_addl(c, a, b) for c, a, b in codes.tolist()], dtype="string"),
            "notice": pd.array(np.zeros(k, dtype=bool), dtype="boolean"),
            "peer": pd.array(["netsift"] * k, dtype="string"),
            "source": pd.array(["DNS"] * k, dtype="string"),
            "frame.number": _ints(frame_no, frame_no >= 0, "Int64"),
        }
        frame = pd.DataFrame(data, columns=[c.name for c in WEIRD])
        order = np.argsort(frame_no, kind="stable")
        return frame.iloc[order].reset_index(drop=True)

    def _messages_frame(self) -> pd.DataFrame:
        msgs = self._messages()
        cols = self._message_cols
        hdr = np.concatenate([c["hdr"] for c in cols]) if cols else np.zeros((0, wire.NH), np.int64)
        k = len(hdr)
        texts = np.array(self.texts, dtype=object)

        def lists(msg, values):
            starts = np.searchsorted(msg, np.arange(k), side="left")
            stops = np.searchsorted(msg, np.arange(k), side="right")
            return slice_lists(values.tolist(), starts, stops)

        def cat(name):
            return np.concatenate([c[name] for c in cols]) if cols else np.zeros(0, dtype=np.int64)

        q_msg, q_type, q_text = cat("q_msg"), cat("q_type"), cat("q_text")
        a_msg, a_type, a_text = cat("a_msg"), cat("a_type"), cat("a_text")
        extras = {}
        for c in cols:
            extras.update(c["extras"])
        ecs = np.full(k, None, dtype=object)
        cookie_c = np.full(k, None, dtype=object)
        cookie_s = np.full(k, None, dtype=object)
        for i, value in extras.items():
            ecs[i] = value.get("ecs")
            if "cookie" in value:
                cookie_c[i], cookie_s[i] = value["cookie"]
        ends = self._endpoints(msgs["tuple_"], msgs["src_lo"] == 1)
        present = hdr[:, wire.H_STATUS] >= wire.ST_OPCODE
        flags = hdr[:, wire.H_FLAGS]
        has_opt = hdr[:, wire.H_OPT] >= 0
        opt_ttl = hdr[:, wire.H_OPT_TTL]
        has_ecs = hdr[:, wire.H_ECS_FAMILY] >= 0
        data = {
            "frame.number": _ints(msgs["frame"], msgs["frame"] >= 0, "Int64"),
            "frame.time_epoch": pd.arrays.FloatingArray(msgs["ts"] / 1e9, np.zeros(k, dtype=bool)),
            "src": ends["id.orig_h"].astype("string"),
            "srcport": ends["id.orig_p"],
            "dst": ends["id.resp_h"].astype("string"),
            "dstport": ends["id.resp_p"],
            "proto": ends["proto"].astype("string"),
            "dns.id": _ints(hdr[:, wire.H_ID], present, "UInt16"),
            "dns.flags.response": pd.arrays.BooleanArray(((flags >> 15) & 1).astype(bool), ~present),
            "dns.flags.opcode": _ints((flags >> 11) & 0xF, present, "UInt8"),
            "dns.flags.rcode": _ints(flags & 0xF, present, "UInt8"),
            "dns.flags": _ints(flags, present, "UInt16"),
            "dns.count.queries": _ints(hdr[:, wire.H_QD], present, "UInt16"),
            "dns.count.answers": _ints(hdr[:, wire.H_AN], present, "UInt16"),
            "dns.count.auth_rr": _ints(hdr[:, wire.H_NS], present, "UInt16"),
            "dns.count.add_rr": _ints(hdr[:, wire.H_AR], present, "UInt16"),
            "dns.qry.name": lists(q_msg, texts[q_text]),
            "dns.qry.type": lists(q_msg, q_type),
            "dns.a": lists(a_msg[a_type == wire.T_A], texts[a_text[a_type == wire.T_A]]),
            "dns.aaaa": lists(a_msg[a_type == wire.T_AAAA], texts[a_text[a_type == wire.T_AAAA]]),
            "dns.cname": lists(a_msg[a_type == wire.T_CNAME], texts[a_text[a_type == wire.T_CNAME]]),
            "dns.rr.udp_payload_size": _ints(hdr[:, wire.H_OPT_CLASS], has_opt, "UInt16"),
            "dns.resp.ext_rcode": _ints((opt_ttl >> 24) & 0xFF, has_opt, "UInt8"),
            "dns.resp.edns0_version": _ints((opt_ttl >> 16) & 0xFF, has_opt, "UInt8"),
            "dns.resp.z.do": pd.arrays.BooleanArray(((opt_ttl >> 15) & 1).astype(bool), ~has_opt),
            "dns.opt.client.family": _ints(hdr[:, wire.H_ECS_FAMILY], has_ecs, "UInt16"),
            "dns.opt.client.netmask": _ints(hdr[:, wire.H_ECS_SRC], has_ecs, "UInt8"),
            "dns.opt.client.scope": _ints(hdr[:, wire.H_ECS_SCOPE], has_ecs, "UInt8"),
            "dns.opt.client.addr": pd.array(ecs, dtype="string"),
            "dns.opt.cookie.client": pd.array(cookie_c, dtype="string"),
            "dns.opt.cookie.server": pd.array(cookie_s, dtype="string"),
            "parsed": pd.arrays.BooleanArray(hdr[:, wire.H_COMPLETE] == 1, ~present),
        }
        return pd.DataFrame(data, columns=[c.name for c in DNS_MESSAGES])


def _multicast1(raw: bytes) -> int:
    """Zeek's DNS::multicast_subnets (224.0.0.0/4, ff00::/8) for one 16-byte address (0 for an unknown one).

    :func:`analyzer.dns.pairing.lookup_tuples` applies the same test to UDP tuples.
    """
    if len(raw) != 16:
        return 0
    if raw[:12] == bytes(V4_MAPPED):
        return int(raw[12] >> 4 == 0xE)
    return int(raw[0] == 0xFF)


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while many list/str objects are made (none form cycles).

    Building hundreds of thousands of lists otherwise triggers collections
    whose cost grows with the number of live objects (several times the
    building itself).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _ints(values, valid, dtype):
    values = np.asarray(values, dtype=np.int64)
    valid = np.asarray(valid, dtype=bool)
    np_dtype = {"UInt8": np.uint8, "UInt16": np.uint16, "Int64": np.int64}[dtype]
    return pd.arrays.IntegerArray(np.where(valid, values, 0).astype(np_dtype), ~valid)


def _bools(values):
    values = np.asarray(values) != 0
    return pd.arrays.BooleanArray(values, np.zeros(len(values), dtype=bool))


def _strings(ids, texts: list[str]):
    """``string`` array of ``texts[id]`` (null where id < 0), decoded from an Arrow dictionary."""
    import pyarrow as pa
    ids = np.asarray(ids, dtype=np.int64)
    indices = pa.array(np.maximum(ids, 0).astype(np.int32), mask=ids < 0)
    decoded = pa.DictionaryArray.from_arrays(indices, pa.array(texts, pa.string())).dictionary_decode()
    return pd.array(decoded, dtype="string")


def _dedupe(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct texts (first occurrence order) and the map from each input index to its distinct index."""
    seen: dict = {}
    remap = np.fromiter((seen.setdefault(t, len(seen)) for t in texts), dtype=np.int64, count=len(texts))
    return list(seen), remap


def _small_unique(values: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integers in ``[0, bound)``, in linear time."""
    values = np.asarray(values, dtype=np.int64)
    present = np.bincount(values, minlength=bound) > 0 if len(values) else np.zeros(bound, dtype=bool)
    distinct = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    return distinct, rank[values] if len(values) else np.zeros(0, dtype=np.int64)


def _nulls(n: int):
    """A ``string`` array of ``n`` nulls."""
    import pyarrow as pa
    return pd.array(pa.nulls(n, pa.string()), dtype="string")


def _name_categorical(values, name) -> pd.Categorical:
    """Categorical of ``name(v)`` for integer ``values`` (null where negative), one call per distinct value."""
    values = np.asarray(values, dtype=np.int64)
    valid = values >= 0
    if len(values) and values.max() < 1 << 22:
        distinct, inverse = _small_unique(values[valid], int(values.max()) + 1)
    else:
        distinct, inverse = np.unique(values[valid], return_inverse=True)
    texts, remap = _dedupe([name(int(v)) for v in distinct.tolist()])
    codes = np.full(len(values), -1, dtype=np.int64)
    if len(remap):
        codes[valid] = remap[inverse.reshape(-1)]
    return pd.Categorical.from_codes(codes, categories=pd.Index(texts, dtype="str"))
