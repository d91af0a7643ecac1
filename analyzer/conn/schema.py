"""The ``conn`` table: Zeek's conn.log fields, names and meanings, plus ``community_id``."""

from __future__ import annotations

from ..schema import Column, zeek_conn_id, zeek_field


_z = zeek_field("conn")


CONN: tuple[Column, ...] = (
    _z("ts", "Float64", "seconds", "time of the connection's first packet, epoch seconds", "time"),
    _z("uid", "string", "text", "connection id: C + 17 base-62 characters, deterministic per capture", "string"),
    *zeek_conn_id("conn", address_dtype="category", orig_port="originator port (ICMP: the message type)",
                  resp_port="responder port (ICMP: the counterpart type, or the code)"),
    _z("proto", "category", "text", "transport protocol: tcp, udp or icmp", "enum"),
    _z("service", "string", "text", "application protocols confirmed, comma-separated (unset until set)", "string"),
    _z("duration", "Float64", "seconds", "last minus first packet time, seconds (unset when 0)", "interval"),
    _z("orig_bytes", "Int64", "int", "originator payload bytes (TCP: from sequence numbers; unset when duration is)", "count"),
    _z("resp_bytes", "Int64", "int", "responder payload bytes (as orig_bytes)", "count"),
    _z("conn_state", "category", "text", "S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH", "string"),
    _z("local_orig", "boolean", "bool", "originator in Site::local_nets (Zeek's default: private address space)", "bool"),
    _z("local_resp", "boolean", "bool", "responder in Site::local_nets", "bool"),
    _z("missed_bytes", "Int64", "int", "bytes missed in content gaps", "count"),
    _z("history", "string", "text", "state history letters (upper case: originator); unset when empty", "string"),
    _z("orig_pkts", "Int64", "int", "packets the originator sent", "count"),
    _z("orig_ip_bytes", "Int64", "int", "IP bytes the originator sent (IP total length)", "count"),
    _z("resp_pkts", "Int64", "int", "packets the responder sent", "count"),
    _z("resp_ip_bytes", "Int64", "int", "IP bytes the responder sent", "count"),
    _z("tunnel_parents", "object", "list", "uids of the encapsulating tunnels (null: not tunnelled)", "set[string]"),
    _z("ip_proto", "UInt8", "int", "IP protocol number", "count"),
    Column("community_id", "string", "text", "Community ID v1 flow hash (seed 0)",
           "corelight/community-id-spec v1", "string"),
)
