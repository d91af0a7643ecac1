"""Schemas of the DNS frames: ``dns`` (Zeek's dns.log) and ``dns_messages`` (one row per message).

``DNS`` lists Zeek's ``dns.log`` fields in Zeek's order with the Zeek types of
its ``#types`` line (``base/protocols/dns/main.zeek``), then the add-on
columns ``auth``/``addl`` (``policy/protocols/dns/auth-addl.zeek``) and
``original_query`` (``policy/protocols/dns/log-original-query-case.zeek``), then
``frame.number`` (not a Zeek field: the frame that joins the row to
``packets`` and to the connection that gives ``uid``).
"""

from __future__ import annotations

from analyzer.schema import Column, zeek_conn_id, zeek_field


_z = zeek_field("dns")


DNS: tuple[Column, ...] = (
    _z("ts", "Float64", "seconds",
       "time of the first message of the query/response pair (the query, or a response seen first), "
       "epoch seconds", "time"),
    _z("uid", "string", "text", "uid of the connection (filled by connection tracking; null until then)",
       "string"),
    *zeek_conn_id("dns", "originator (query sender)", "responder (server)", orig_port="originator port",
                  resp_port="responder port"),
    _z("proto", "string", "text", "transport protocol: udp or tcp", "enum"),
    _z("trans_id", "UInt16", "int", "DNS transaction id (RFC 1035 §4.1.1 ID)", "count"),
    _z("rtt", "Float64", "seconds",
       "seconds from the query to the first answer record of the response (null when 0 or no answer)",
       "interval"),
    _z("query", "string", "text",
       "query name, lower-cased (last question of the query; else owner of the first answer); "
       "NetBIOS names decoded", "string"),
    _z("qclass", "UInt16", "int", "QCLASS of the query", "count"),
    _z("qclass_name", "string", "text", "name of the QCLASS (Zeek's DNS::classes)", "string"),
    _z("qtype", "UInt16", "int", "QTYPE of the query", "count"),
    _z("qtype_name", "string", "text", "name of the QTYPE (Zeek's DNS::query_types)", "string"),
    _z("rcode", "UInt8", "int", "RCODE of the response (4 header bits)", "count"),
    _z("rcode_name", "string", "text", "name of the RCODE (Zeek's DNS::base_errors)", "string"),
    _z("AA", "boolean", "bool", "authoritative answer bit of a response that carried answers", "bool"),
    _z("TC", "boolean", "bool", "truncation bit of the query", "bool"),
    _z("RD", "boolean", "bool", "recursion desired bit of the query", "bool"),
    _z("RA", "boolean", "bool", "recursion available bit of a response that carried answers", "bool"),
    _z("Z", "UInt8", "int", "the 3 bits after RA in the query (Z, AD, CD)", "count"),
    _z("answers", "object", "list",
       "answer section as Zeek renders it: one string per answer record (list of str, null when none)",
       "vector[string]"),
    _z("TTLs", "object", "list", "TTL of each entry of answers, seconds (list of float)", "vector[interval]"),
    _z("rejected", "boolean", "bool",
       "the server rejected the query (non-zero RCODE without questions, or a response with no records)",
       "bool"),
    _z("opcode", "UInt8", "int", "OPCODE of the last message", "count"),
    _z("opcode_name", "string", "text", "name of the OPCODE (Zeek's DNS::opcodes / netbios_opcodes)",
       "string"),
    _z("auth", "object", "list", "authority section records as Zeek renders them (distinct, list of str)",
       "set[string]"),
    _z("addl", "object", "list", "additional section records as Zeek renders them (distinct, list of str)",
       "set[string]"),
    _z("original_query", "string", "text", "query name as sent (case kept)", "string"),
    Column("frame.number", "Int64", "int",
           "frame of the query (of the response when no query was seen): joins to packets and conn",
           "Wireshark frame.number", None),
)


def _w(name, dtype, kind, meaning):
    return Column(name, dtype, kind, meaning, f"Wireshark {name}", None)


DNS_MESSAGES: tuple[Column, ...] = (
    _w("frame.number", "Int64", "int", "frame that completed the message"),
    _w("frame.time_epoch", "Float64", "seconds", "arrival time, epoch seconds"),
    Column("src", "string", "text", "sender address", "netsift", None),
    Column("srcport", "UInt16", "int", "sender port", "netsift", None),
    Column("dst", "string", "text", "receiver address", "netsift", None),
    Column("dstport", "UInt16", "int", "receiver port", "netsift", None),
    Column("proto", "string", "text", "udp or tcp", "netsift", None),
    _w("dns.id", "UInt16", "int", "transaction id"),
    _w("dns.flags.response", "boolean", "bool", "QR bit"),
    _w("dns.flags.opcode", "UInt8", "int", "OPCODE"),
    _w("dns.flags.rcode", "UInt8", "int", "RCODE (header bits)"),
    _w("dns.flags", "UInt16", "int", "the 16 flag bits"),
    _w("dns.count.queries", "UInt16", "int", "QDCOUNT"),
    _w("dns.count.answers", "UInt16", "int", "ANCOUNT"),
    _w("dns.count.auth_rr", "UInt16", "int", "NSCOUNT"),
    _w("dns.count.add_rr", "UInt16", "int", "ARCOUNT"),
    _w("dns.qry.name", "object", "list", "question names as sent (list of str)"),
    _w("dns.qry.type", "object", "list", "question types (list of int)"),
    _w("dns.a", "object", "list", "A addresses of every section (list of str)"),
    _w("dns.aaaa", "object", "list", "AAAA addresses of every section (list of str)"),
    _w("dns.cname", "object", "list", "CNAME targets of every section (list of str)"),
    _w("dns.rr.udp_payload_size", "UInt16", "int", "EDNS requestor's UDP payload size (OPT class)"),
    _w("dns.resp.ext_rcode", "UInt8", "int", "EDNS extended RCODE (upper 8 bits)"),
    _w("dns.resp.edns0_version", "UInt8", "int", "EDNS version"),
    _w("dns.resp.z.do", "boolean", "bool", "EDNS DNSSEC OK bit"),
    _w("dns.opt.client.family", "UInt16", "int", "EDNS client subnet family (1 IPv4, 2 IPv6)"),
    _w("dns.opt.client.netmask", "UInt8", "int", "EDNS client subnet source prefix length"),
    _w("dns.opt.client.scope", "UInt8", "int", "EDNS client subnet scope prefix length"),
    _w("dns.opt.client.addr", "string", "text", "EDNS client subnet address"),
    _w("dns.opt.cookie.client", "string", "text", "EDNS client cookie, hex"),
    _w("dns.opt.cookie.server", "string", "text", "EDNS server cookie, hex"),
    Column("parsed", "boolean", "bool",
           "the whole message was walked without a parse stop (Zeek semantics)", "netsift", None),
)
