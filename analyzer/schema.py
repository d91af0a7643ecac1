"""The schemas of netsift's frames: the single source of column names, dtypes and meanings.

Each :class:`Column` names a pandas dtype, how the dissectors' raw numpy
values become it (``kind``), its meaning, and the Wireshark display-filter
field or Zeek log field it reproduces.  The docs and the frame builder both
read these tables; nothing else lists columns.
"""

from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    """One column of a frame.

    Attributes:
        name: column name (Wireshark's display-filter name, or Zeek's log field).
        dtype: pandas dtype of the column.
        kind: how raw values convert: ``int``, ``bool``, ``seconds``
            (int64 ns to float seconds), ``time`` (int64 ns to UTC datetime),
            ``mac``, ``ipv4``, ``ipv6`` (to text, categorical), ``text``.
        meaning: what the value is, with its unit.
        source: the Wireshark field / Zeek field / RFC it follows.
        zeek_type: the Zeek log type (``time``, ``string``, ``addr``, ``port``,
            ``count``, ``interval``, ``bool``, ``enum``, ``set[string]``,
            ``vector[string]`` …) for columns that appear in Zeek log output;
            None for columns Zeek's logs do not have.
    """

    name: str
    dtype: str
    kind: str
    meaning: str
    source: str
    zeek_type: str | None = None


def zeek_field(log: str):
    """A :class:`Column` maker for the fields of Zeek's ``log`` (``conn``, ``dns`` …).

    ``zeek_field("dns")("query", "string", "text", "the queried name", "string")``
    is the column ``query`` whose source is Zeek's dns.log field of that name.
    """
    def column(name, dtype, kind, meaning, zeek_type):
        return Column(name, dtype, kind, meaning, f"Zeek {log}.log {name}", zeek_type)
    return column


def zeek_conn_id(log: str, orig: str = "originator", resp: str = "responder", address_dtype: str = "string",
                 orig_port: str | None = None, resp_port: str | None = None) -> tuple[Column, ...]:
    """Zeek's ``conn_id`` record as the four columns of ``log``: ``id.orig_h``, ``id.orig_p``, ``id.resp_h``, ``id.resp_p``.

    ``orig``/``resp`` name the two ends in the meanings (e.g. ``"originator
    (client)"``); ``address_dtype`` is the addresses' dtype (``string`` or
    ``category``); ``orig_port``/``resp_port`` replace the ports' meanings.
    """
    column = zeek_field(log)
    return (column("id.orig_h", address_dtype, "text", f"{orig} address", "addr"),
            column("id.orig_p", "UInt16", "int", orig_port or f"{orig} port", "port"),
            column("id.resp_h", address_dtype, "text", f"{resp} address", "addr"),
            column("id.resp_p", "UInt16", "int", resp_port or f"{resp} port", "port"))


def _c(name, dtype, kind, meaning, source=None, zeek_type=None):
    return Column(name, dtype, kind, meaning, source or f"Wireshark {name}", zeek_type)


PACKETS: tuple[Column, ...] = (
    _c("frame.number", "Int64", "int", "1-based position of the frame in the file"),
    _c("uid", "category", "derived", "uid of the frame's connection in the conn table (null: none)",
       "Zeek conn.log uid"),
    _c("frame.time_epoch", "Float64", "seconds", "arrival time, seconds since the Unix epoch"),
    _c("ts", "datetime64[ns, UTC]", "time", "arrival time as a UTC timestamp (ns)", "Wireshark frame.time"),
    _c("frame.len", "Int64", "int", "bytes on the wire"),
    _c("frame.cap_len", "Int64", "int", "bytes captured (at most the snaplen)"),
    _c("frame.interface_id", "Int64", "int", "pcapng interface index (0 for pcap)"),
    _c("eth.src", "category", "mac", "source MAC address, lower-case colon form"),
    _c("eth.dst", "category", "mac", "destination MAC address, lower-case colon form"),
    _c("eth.type", "UInt16", "int", "EtherType of an Ethernet II frame"),
    _c("llc.type", "UInt16", "int", "EtherType in an 802.2 SNAP header"),
    _c("sll.pkttype", "UInt16", "int", "Linux cooked capture packet type"),
    _c("sll.hatype", "UInt16", "int", "Linux cooked capture ARPHRD type"),
    _c("sll.etype", "UInt16", "int", "Linux cooked capture protocol (an EtherType)"),
    _c("sll.ifindex", "UInt32", "int", "Linux cooked capture v2 interface index"),
    _c("null.family", "UInt32", "int", "BSD loopback address family"),
    _c("nflog.family", "UInt8", "int", "NFLOG address family"),
    _c("chdlc.protocol", "UInt16", "int", "Cisco HDLC protocol (an EtherType)"),
    _c("ppp.protocol", "UInt16", "int", "PPP protocol number"),
    _c("pppoes.code", "UInt8", "int", "PPPoE session stage code"),
    _c("pppoes.session_id", "UInt16", "int", "PPPoE session id"),
    _c("vlan.id", "UInt16", "int", "VLAN identifier of the outermost 802.1Q/802.1ad tag"),
    _c("vlan.priority", "UInt8", "int", "priority code point of the outermost tag"),
    _c("vlan.dei", "UInt8", "int", "drop eligible indicator of the outermost tag"),
    _c("vlan.etype", "UInt16", "int", "EtherType after the outermost tag"),
    _c("mpls.label", "UInt32", "int", "label of the outermost MPLS stack entry"),
    _c("mpls.exp", "UInt8", "int", "traffic class of the outermost MPLS entry"),
    _c("mpls.ttl", "UInt8", "int", "TTL of the outermost MPLS entry"),
    _c("ip.version", "UInt8", "int", "IP version nibble of a packet sent as IPv4"),
    _c("ip.hdr_len", "UInt8", "int", "IPv4 header length, bytes"),
    _c("ip.dsfield", "UInt8", "int", "IPv4 differentiated services field"),
    _c("ip.len", "UInt16", "int", "IPv4 total length, bytes"),
    _c("ip.id", "UInt16", "int", "IPv4 identification"),
    _c("ip.flags", "UInt8", "int", "IPv4 flag bits (reserved, DF, MF)"),
    _c("ip.flags.df", "UInt8", "int", "IPv4 don't-fragment bit"),
    _c("ip.flags.mf", "UInt8", "int", "IPv4 more-fragments bit"),
    _c("ip.frag_offset", "UInt16", "int",
       "IPv4 fragment offset field, in units of 8 bytes (the value tshark -T fields prints)"),
    _c("ip.ttl", "UInt8", "int", "IPv4 time to live"),
    _c("ip.proto", "UInt8", "int", "IPv4 protocol number"),
    _c("ip.checksum", "UInt16", "int", "IPv4 header checksum as sent"),
    _c("ip.src", "category", "ipv4", "IPv4 source address, dotted quad"),
    _c("ip.dst", "category", "ipv4", "IPv4 destination address, dotted quad"),
    _c("ipv6.version", "UInt8", "int", "IP version nibble of a packet sent as IPv6"),
    _c("ipv6.tclass", "UInt8", "int", "IPv6 traffic class"),
    _c("ipv6.flow", "UInt32", "int", "IPv6 flow label"),
    _c("ipv6.plen", "UInt16", "int", "IPv6 payload length, bytes"),
    _c("ipv6.nxt", "UInt8", "int", "IPv6 fixed header's Next Header (an extension header or the upper layer)"),
    _c("ipv6.hlim", "UInt8", "int", "IPv6 hop limit"),
    _c("ipv6.src", "category", "ipv6", "IPv6 source address, RFC 5952 text"),
    _c("ipv6.dst", "category", "ipv6", "IPv6 destination address, RFC 5952 text"),
    _c("ipv6.fraghdr.offset", "UInt16", "int", "IPv6 fragment offset, in units of 8 bytes"),
    _c("ipv6.fraghdr.more", "UInt8", "int", "IPv6 more-fragments bit"),
    _c("ipv6.fraghdr.ident", "UInt32", "int", "IPv6 fragment identification"),
    _c("ip_proto", "UInt8", "int",
       "upper-layer protocol number: ip.proto for IPv4, the protocol after the extension headers for IPv6",
       "Zeek conn.log ip_proto; RFC 8200 §4"),
    _c("gre.flags_and_version", "UInt16", "int", "GRE flags and version"),
    _c("gre.proto", "UInt16", "int", "GRE protocol type (an EtherType)"),
    _c("icmp.type", "UInt8", "int", "ICMP type"),
    _c("icmp.code", "UInt8", "int", "ICMP code"),
    _c("icmp.checksum", "UInt16", "int", "ICMP checksum as sent"),
    _c("icmpv6.type", "UInt8", "int", "ICMPv6 type"),
    _c("icmpv6.code", "UInt8", "int", "ICMPv6 code"),
    _c("icmpv6.checksum", "UInt16", "int", "ICMPv6 checksum as sent"),
    _c("udp.srcport", "UInt16", "int", "UDP source port"),
    _c("udp.dstport", "UInt16", "int", "UDP destination port"),
    _c("udp.length", "UInt16", "int", "UDP length field, bytes (header included)"),
    _c("udp.checksum", "UInt16", "int", "UDP checksum as sent"),
    _c("vxlan.flags", "UInt16", "int", "VXLAN flags"),
    _c("vxlan.vni", "UInt32", "int", "VXLAN network identifier"),
    _c("geneve.proto_type", "UInt16", "int", "Geneve protocol type (an EtherType)"),
    _c("geneve.vni", "UInt32", "int", "Geneve virtual network identifier"),
    _c("gtp.message", "UInt8", "int", "GTP message type (255: G-PDU)"),
    _c("gtp.teid", "UInt32", "int", "GTP tunnel endpoint identifier"),
    _c("tcp.srcport", "UInt16", "int", "TCP source port"),
    _c("tcp.dstport", "UInt16", "int", "TCP destination port"),
    _c("tcp.seq_raw", "UInt32", "int", "TCP sequence number as sent"),
    _c("tcp.ack_raw", "UInt32", "int", "TCP acknowledgment number as sent"),
    _c("tcp.hdr_len", "UInt8", "int", "TCP header length, bytes"),
    _c("tcp.flags", "UInt16", "int", "TCP flags, 12 bits (FIN 0x001 … AE 0x100)"),
    _c("tcp.window_size_value", "UInt16", "int", "TCP window field, unscaled"),
    _c("tcp.checksum", "UInt16", "int", "TCP checksum as sent"),
    _c("tcp.urgent_pointer", "UInt16", "int", "TCP urgent pointer"),
    _c("tcp.len", "Int64", "int", "TCP payload bytes, as the IP length states them"),
    _c("tcp.options.mss_val", "UInt16", "int", "TCP maximum segment size option, bytes"),
    _c("tcp.options.wscale.shift", "UInt8", "int", "TCP window scale option shift count"),
    _c("tcp.options.sack_perm", "boolean", "bool", "TCP SACK-permitted option present"),
    _c("tcp.options.timestamp.tsval", "UInt32", "int", "TCP timestamps option TSval"),
    _c("tcp.options.timestamp.tsecr", "UInt32", "int", "TCP timestamps option TSecr"),
)

WEIRD: tuple[Column, ...] = (
    _c("ts", "Float64", "seconds", "time of the packet that showed the anomaly, epoch seconds",
       "Zeek weird.log ts", "time"),
    _c("uid", "string", "text", "uid of the connection, where the anomaly belongs to one", "Zeek weird.log uid",
       "string"),
    *zeek_conn_id("weird", "originator (source)", "responder (destination)"),
    _c("name", "string", "text", "the anomaly, with Zeek's weird name where Zeek has one", "Zeek weird.log name",
       "string"),
    _c("addl", "string", "text", "additional detail", "Zeek weird.log addl", "string"),
    _c("notice", "boolean", "bool", "whether a notice was raised (always false)", "Zeek weird.log notice", "bool"),
    _c("peer", "string", "text", "the analysing process (always netsift)", "Zeek weird.log peer", "string"),
    _c("source", "string", "text", "the analyser that found the anomaly", "Zeek weird.log source", "string"),
    _c("frame.number", "Int64", "int", "the frame that showed the anomaly (joins to packets)", "Wireshark frame.number"),
)

TABLES = {"packets": PACKETS, "weird": WEIRD}


def by_name(table: tuple[Column, ...]) -> dict[str, Column]:
    """The columns of ``table`` keyed by name."""
    return {column.name: column for column in table}
