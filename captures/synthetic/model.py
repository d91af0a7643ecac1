"""Shared model of the synthetic generator: flows, packets, the payload arena, hosts.

Everything a scenario builds goes into one :class:`Capture`:

* ``flows``: one :class:`Flow` per connection (5-tuple, addresses, MACs, TTLs);
* ``packets``: one tuple per packet, :data:`PKT_FIELDS` in that order, payload
  bytes referenced by offset into ``arena`` (a ``bytearray`` holding every
  application byte stream once);
* ``truth``: ground-truth records (dicts with a ``table`` key) for the
  application tables; the ``conn`` table is derived from the packets at the end.

Packets are plain tuples, not scapy objects: the renderer
(:mod:`captures.synthetic.render`) turns all of them into frames at once from
per-shape scapy templates.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass, field

#: 2024-01-01T00:00:00Z in ns: every capture starts here.
BASE_TS_NS = 1_704_067_200 * 1_000_000_000

# Packet kinds (template shapes).
K_TCP, K_TCP_SYN, K_UDP, K_ICMP = 0, 1, 2, 3

# TCP flag bits.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

#: Fields of a packet tuple.  ``flags`` holds TCP flags, or the ICMP type for
#: K_ICMP; ``seq`` the ICMP echo sequence number for K_ICMP; ``off``/``len``
#: the payload slice of the arena.
PKT_FIELDS = ("ts", "flow", "dir", "kind", "flags", "seq", "ack", "off", "len")

PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1}


@dataclass
class Flow:
    """One connection; direction 0 is the originator, 1 the responder."""

    proto: str                      # "tcp", "udp", "icmp"
    v6: bool
    addr: tuple[bytes, bytes]       # packed addresses (4 or 16 bytes)
    port: tuple[int, int]           # ports; ICMP: (type, code) as Zeek logs them
    mac: tuple[bytes, bytes]
    ttl: tuple[int, int]
    service: str | None = None
    impaired: bool = False          # a reorder/duplicate/loss hit this flow
    missed: list[int] = field(default_factory=lambda: [0, 0])  # bytes lost per direction
    stream_len: list[int] = field(default_factory=lambda: [0, 0])  # TCP payload per direction
    teardown: str | None = None     # TCP: see captures.synthetic.tcp

    def host(self, d: int) -> str:
        fam = socket.AF_INET6 if self.v6 else socket.AF_INET
        return socket.inet_ntop(fam, self.addr[d])

    def ids(self) -> dict:
        """Zeek ``id.*`` fields."""
        return {"id.orig_h": self.host(0), "id.orig_p": self.port[0],
                "id.resp_h": self.host(1), "id.resp_p": self.port[1]}


class Capture:
    """Accumulates flows, packets, payload bytes and truth records."""

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        self.packets: list[tuple] = []
        self.arena = bytearray()
        self.truth: list[dict] = []
        self._interned: dict[int, int] = {}

    def add_flow(self, flow: Flow) -> int:
        self.flows.append(flow)
        return len(self.flows) - 1

    def store(self, data: bytes) -> int:
        """Append ``data`` to the arena; return its offset."""
        off = len(self.arena)
        self.arena += data
        return off

    def store_once(self, key, data: bytes) -> int:
        """Like :meth:`store`, but a byte string stored under ``key`` before is reused."""
        off = self._interned.get(key)
        if off is None:
            off = self._interned[key] = self.store(data)
        return off


# ---------------------------------------------------------------- hosts

_GATEWAY_MAC = bytes.fromhex("00005e0001fe")

SERVERS = {
    # service: (IPv4 servers, IPv6 servers, names)
    "dns": (["198.51.100.53", "198.51.100.54", "203.0.113.53"],
            ["2001:db8:53::53", "2001:db8:53::54"]),
    "http": ([f"203.0.113.{i}" for i in range(80, 100)],
             [f"2001:db8:80::{i:x}" for i in range(0x80, 0x90)]),
    "smtp": (["198.51.100.25", "198.51.100.26", "203.0.113.25"],
             ["2001:db8:25::25", "2001:db8:25::26"]),
    "icmp": (["198.51.100.1", "203.0.113.1"], ["2001:db8:1::1"]),
}


class Hosts:
    """Client and server addresses, MACs and ephemeral ports, all from the RNG.

    Clients are 4096 hosts (192.168.0.0/20 or 2001:db8:c0::/116); each keeps an
    ephemeral-port counter so that no 5-tuple repeats in a capture.
    """

    N_CLIENTS = 4096

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._ports: dict[int, int] = {}
        self._macs: dict[int, bytes] = {}
        self._key: dict[bytes, int] = {}
        self._servers = {
            svc: ([ipaddress.ip_address(a).packed for a in v4],
                  [ipaddress.ip_address(a).packed for a in v6])
            for svc, (v4, v6) in SERVERS.items()
        }

    def client(self, v6: bool) -> tuple[bytes, bytes, int]:
        """(packed address, MAC, ephemeral port) of a random client."""
        rng = self.rng
        n = rng.randrange(self.N_CLIENTS)
        if v6:
            addr = ipaddress.IPv6Address("2001:db8:c0::").packed[:14] + (0x100 + n).to_bytes(2, "big")
        else:
            addr = bytes((192, 168, n >> 8, (n & 0xFF) or 1))
            n = (n >> 8) * 256 + ((n & 0xFF) or 1)
        mac = self._macs.get(n)
        if mac is None:
            mac = self._macs[n] = bytes((0x02, 0x42)) + n.to_bytes(4, "big")
        self._key[addr] = n
        return addr, mac, self._next_port(n)

    def _next_port(self, n: int) -> int:
        port = self._ports.get(n)
        if port is None:
            port = self.rng.randrange(32768, 60000)
        else:
            port += self.rng.randrange(1, 8)
            if port > 60999:
                port = 32768 + port % 1000
        self._ports[n] = port
        return port

    def server(self, service: str, v6: bool) -> tuple[bytes, bytes]:
        pool = self._servers[service][1 if v6 else 0]
        return pool[self.rng.randrange(len(pool))], _GATEWAY_MAC

    def again(self, flow: Flow, proto: str) -> Flow:
        """A new flow between the same two hosts from a fresh client port."""
        port = self._next_port(self._key[flow.addr[0]])
        return Flow(proto=proto, v6=flow.v6, addr=flow.addr, port=(port, flow.port[1]),
                    mac=flow.mac, ttl=flow.ttl, service=flow.service)

    def flow(self, proto: str, service: str, port: int, v6: bool, service_name=None) -> Flow:
        caddr, cmac, cport = self.client(v6)
        saddr, smac = self.server(service, v6)
        return Flow(proto=proto, v6=v6, addr=(caddr, saddr), port=(cport, port),
                    mac=(cmac, smac), ttl=(64, self.rng.choice((47, 52, 56, 57, 60))),
                    service=service_name)


# ---------------------------------------------------------------- words

WORDS = (
    "alpha bravo cedar delta ember falcon garnet harbor indigo juniper kestrel lumen "
    "maple nectar onyx pixel quartz raven sierra tundra umber violet willow xenon "
    "yonder zephyr amber basil cobalt dune echo fjord glade heron iris jade koala "
    "lotus mesa nova orchid pebble quill ridge sable thistle ursa vertex wren yarrow "
    "zinc atlas beacon comet drift ether flint grove helix isle jetty knoll lagoon"
).split()

TLDS = ("example.com", "example.net", "example.org", "test", "invalid.example")


def word(rng: random.Random) -> str:
    return WORDS[rng.randrange(len(WORDS))]


def domain(rng: random.Random) -> str:
    return f"{word(rng)}{rng.randrange(100)}.{TLDS[rng.randrange(len(TLDS))]}"


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(word(rng) for _ in range(n))
