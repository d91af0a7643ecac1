"""Live capture from a network interface, through libpcap, as :class:`PacketBatch` objects.

libpcap is reached through scapy's binding (``conf.use_pcap = True``,
:mod:`scapy.libs.winpcapy`): the handle is made with ``pcap_create``, given a
snaplen, a kernel buffer, nanosecond timestamps and a BPF program compiled by
libpcap, and put in non-blocking mode.  Frames are then moved out of the
kernel ring by a compiled loop (:func:`_fill`) that calls ``pcap_next_ex``
and copies each frame's bytes and header into numpy arrays: no Python object,
let alone a scapy packet, per frame.  The loop releases the GIL.

Frames are gathered into batches of at most ``batch_packets`` frames spanning
at most ``batch_interval`` seconds (4096 frames / 10 ms by default), each over
its own slice of a large byte buffer (a batch a caller keeps is never
overwritten).

Stopping: :meth:`LiveCapture.stop` only sets a flag, so it may be called from
a signal handler or another thread; the capture then takes what the kernel
has already captured (frames stamped up to the moment of the stop, including
those in a ring block not yet handed to user space) and ends.  Autostop after
``count`` frames or ``duration`` seconds works the same way.

>>> from captures.live import live                           # doctest: +SKIP
>>> for batch in live("lo", "udp port 53", duration=5):       # doctest: +SKIP
...     print(len(batch))
"""

from __future__ import annotations

import ctypes
import os
import contextlib
import queue
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numba
import numpy as np

from .batch import PacketBatch

DEFAULT_SNAPLEN = 262144
DEFAULT_BUFFER_MB = 32            # kernel ring buffer (dumpcap/tcpdump -B, in MiB)
BATCH_INTERVAL = 0.010            # seconds spanned by one batch at most
BATCH_PACKETS = 4096              # frames per batch at most
PCAP_TIMEOUT_MS = 10              # libpcap packet buffer timeout (TPACKET_V3 block retire)
QUEUE_BATCHES = 2000              # batches waiting for a slow consumer (about 20 s at 10 ms each)
QUEUE_MB = 256                    # ... and at most this many MiB of frames
_CHUNK_BYTES = 8 * 1024 * 1024    # frame bytes are copied into buffers of this size
_IDLE_POLL_MS = 50                # longest sleep with no frame pending (stop latency)
_INT64_MAX = np.iinfo(np.int64).max

CAP_NET_RAW = 13
CAP_NET_ADMIN = 12
PRIVILEGE_FIX = "sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3))"

# DLT_* values libpcap reports that differ from the LINKTYPE_* value files carry.
_DLT_TO_LINKTYPE = {12: 101, 14: 101}

# libpcap status codes (pcap/pcap.h).
_PCAP_ERROR_NO_SUCH_DEVICE = -5
_PCAP_ERROR_PERM_DENIED = -8
_PCAP_TSTAMP_PRECISION_NANO = 1
_PCAP_IF_LOOPBACK, _PCAP_IF_UP, _PCAP_IF_RUNNING = 0x1, 0x2, 0x4


class LiveCaptureError(Exception):
    """A live capture that cannot start or go on; ``str(error)`` is one line for the CLI.

    Attributes:
        kind: ``"permission"``, ``"interface"``, ``"filter"``, ``"libpcap"`` or ``"capture"``.
    """

    def __init__(self, message: str, kind: str = "capture"):
        message = " ".join(str(message).split())
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------
# libpcap through scapy


class _Libpcap:
    """scapy's ctypes binding of libpcap, plus the few calls it does not declare."""

    def __init__(self):
        from scapy.config import conf
        conf.use_pcap = True
        try:
            import scapy.libs.winpcapy as W
        except (ImportError, OSError) as error:
            raise LiveCaptureError(f"libpcap is not available ({error}): install it "
                                   "(Debian/Ubuntu: apt-get install libpcap0.8)", "libpcap")
        if not conf.use_pcap or not hasattr(W, "pcap_create"):
            raise LiveCaptureError("libpcap is not available: install it "
                                   "(Debian/Ubuntu: apt-get install libpcap0.8)", "libpcap")
        if ctypes.sizeof(ctypes.c_void_p) != 8 or sys.byteorder != "little":
            raise LiveCaptureError("live capture needs a 64-bit little-endian system", "libpcap")
        self.W = W
        lib = W._lib
        self.lib = lib
        vp = ctypes.c_void_p
        for name, restype, argtypes in (
                ("pcap_set_tstamp_precision", ctypes.c_int, [vp, ctypes.c_int]),
                ("pcap_get_tstamp_precision", ctypes.c_int, [vp]),
                ("pcap_set_immediate_mode", ctypes.c_int, [vp, ctypes.c_int])):
            function = getattr(lib, name, None)
            if function is not None:
                function.restype, function.argtypes = restype, argtypes
            setattr(self, name, function)
        # The two C calls of the copy loop, typed with integer addresses so numba can call them.
        address = ctypes.cast(lib.pcap_next_ex, vp).value
        self.next_ex = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_ssize_t, ctypes.c_ssize_t,
                                        ctypes.c_ssize_t)(address)
        libc = ctypes.CDLL(None)
        self.memcpy = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_ssize_t, ctypes.c_ssize_t,
                                       ctypes.c_size_t)(ctypes.cast(libc.memcpy, vp).value)

    def version(self) -> str:
        return self.W.pcap_lib_version().decode(errors="replace")


_LIBPCAP: _Libpcap | None = None


def _libpcap() -> _Libpcap:
    global _LIBPCAP
    if _LIBPCAP is None:
        _LIBPCAP = _Libpcap()
    return _LIBPCAP


def _text(raw) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return raw.split(b"\0", 1)[0].decode(errors="replace")
    return str(raw)


# ---------------------------------------------------------------------------
# Interfaces


@dataclass(frozen=True)
class Interface:
    """One capturable interface, as ``dumpcap -D`` lists it.

    Attributes:
        number: 1-based position in the list (``-i NUMBER`` selects it, as in dumpcap).
        name: the device name libpcap opens (``lo``, ``eth0``, ``any``).
        index: the kernel interface index (``ip link``), ``None`` for pseudo-devices.
        description: libpcap's description (often empty).
        addresses: IPv4 and IPv6 addresses, as text.
        mac: hardware address or ``None``.
        up, running, loopback: libpcap's PCAP_IF_* flags.
    """

    number: int
    name: str
    index: int | None
    description: str = ""
    addresses: tuple[str, ...] = ()
    mac: str | None = None
    up: bool = False
    running: bool = False
    loopback: bool = False

    @property
    def state(self) -> str:
        return "up" if self.up else "down"


def _sys_flags(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/flags") as handle:
            return int(handle.read().strip(), 16)
    except (OSError, ValueError):
        return 0


def _mac(name: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/address") as handle:
            mac = handle.read().strip()
    except OSError:
        return None
    return mac or None


def interfaces() -> list[Interface]:
    """The interfaces libpcap can capture on (``pcap_findalldevs``), in its order.

    Without a usable libpcap, the kernel's list (``/sys/class/net``) instead.
    """
    indexes = {name: index for index, name in socket.if_nameindex()}
    rows: list[tuple[str, str, list[str], int]] = []
    try:
        _libpcap()
        from scapy.arch.libpcap import load_winpcapy
        from scapy.config import conf
        load_winpcapy()         # pcap_findalldevs, into conf.cache_pcapiflist
        for name, (description, ips, flags, _mac_addr, _itype) in (conf.cache_pcapiflist or {}).items():
            rows.append((name, description or "", list(ips), int(flags)))
    except LiveCaptureError:
        for name in sorted(indexes, key=indexes.get):
            iff = _sys_flags(name)      # IFF_UP 0x1, IFF_LOOPBACK 0x8, IFF_RUNNING 0x40
            flags = ((_PCAP_IF_UP if iff & 0x1 else 0) | (_PCAP_IF_LOOPBACK if iff & 0x8 else 0)
                     | (_PCAP_IF_RUNNING if iff & 0x40 else 0))
            rows.append((name, "", [], flags))
    out = []
    for number, (name, description, ips, flags) in enumerate(rows, 1):
        out.append(Interface(
            number=number, name=name, index=indexes.get(name), description=description,
            addresses=tuple(ips), mac=_mac(name) if name in indexes else None,
            up=bool(flags & _PCAP_IF_UP), running=bool(flags & _PCAP_IF_RUNNING),
            loopback=bool(flags & _PCAP_IF_LOOPBACK)))
    return out


def resolve_interface(name: str | int) -> str:
    """The device name for ``name`` (a name, or a number from :func:`interfaces` as in ``dumpcap -i 2``).

    Raises:
        LiveCaptureError: (kind ``"interface"``) no such interface; the message lists the available ones.
    """
    available = interfaces()
    text = str(name).strip()
    for interface in available:
        if interface.name == text:
            return interface.name
    if text.isdigit():
        for interface in available:
            if interface.number == int(text):
                return interface.name
    names = ", ".join(interface.name for interface in available) or "none"
    raise LiveCaptureError(f"no such capture interface {text!r}; available: {names} "
                           "(see 'netsift interfaces')", "interface")


# ---------------------------------------------------------------------------
# Privileges


def _effective_capabilities() -> int:
    """The process's effective capability set (``CapEff`` of /proc/self/status), 0 if unknown."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def permission_problem() -> str | None:
    """``None`` when this process may capture (root, or CAP_NET_RAW), else the one-line reason and fix."""
    if os.geteuid() == 0 or _effective_capabilities() & (1 << CAP_NET_RAW):
        return None
    return ("capturing packets needs root or the CAP_NET_RAW capability: run as root "
            f"(sudo …), or grant it to Python once with: {PRIVILEGE_FIX}")


# ---------------------------------------------------------------------------
# Statistics


@dataclass
class LiveStats:
    """tcpdump's end-of-capture figures.

    Attributes:
        captured: frames handed to the caller.
        received: frames the kernel passed through the filter (libpcap ``ps_recv``;
            on Linux loopback each frame counts twice, once per direction, as in tcpdump).
        dropped: frames dropped by the kernel for lack of buffer space (``ps_drop``).
        if_dropped: frames dropped by the interface or its driver (``ps_ifdrop``).
    """

    captured: int = 0
    received: int = 0
    dropped: int = 0
    if_dropped: int = 0

    def lines(self) -> list[str]:
        """tcpdump's three lines (plus the interface drops when there are some)."""
        lines = [f"{self.captured} packet{'s' if self.captured != 1 else ''} captured",
                 f"{self.received} packet{'s' if self.received != 1 else ''} received by filter",
                 f"{self.dropped} packet{'s' if self.dropped != 1 else ''} dropped by kernel"]
        if self.if_dropped:
            lines.append(f"{self.if_dropped} packets dropped by interface")
        return lines


# ---------------------------------------------------------------------------
# The copy loop


@numba.njit(cache=True, nogil=True)
def _fill(next_ex, memcpy, handle, slots, hdr, buf, pos, limit, off, cap, wire, ts, n, maxn,
          ts_scale, interval_ns, max_ts):
    """Move frames from libpcap into ``buf`` and the columns, from row ``n`` and byte ``pos`` on.

    Stops when ``maxn`` rows are filled, when ``pos`` passes ``limit`` (room
    for one more frame of the snaplen no longer guaranteed), when the batch
    spans ``interval_ns``, or when libpcap has nothing more.

    Returns ``(n, pos, status)``: status 1 = stopped with frames possibly
    waiting, 0 = nothing waiting, 2 = a frame stamped after ``max_ts`` was
    read (and discarded), negative = ``pcap_next_ex``'s error code.
    """
    slot_address = slots.ctypes.data
    header_address = hdr.ctypes.data
    buffer_address = buf.ctypes.data
    while n < maxn and pos <= limit:
        r = next_ex(handle, slot_address, slot_address + 8)
        if r != 1:
            if r == 0:
                return n, pos, 0
            return n, pos, r
        # struct pcap_pkthdr on LP64: timeval (2 x 8 bytes), caplen, len (4 bytes each).
        memcpy(header_address, slots[0], 24)
        c = hdr[2] & 0xFFFFFFFF
        t = hdr[0] * 1000000000 + (hdr[1] & 0xFFFFFFFF) * ts_scale
        if t > max_ts:
            return n, pos, 2
        if c > buf.shape[0] - pos:
            c = buf.shape[0] - pos
        memcpy(buffer_address + pos, slots[1], c)
        off[n] = pos
        cap[n] = c
        wire[n] = hdr[2] >> 32
        ts[n] = t
        pos += c
        n += 1
        if t - ts[0] >= interval_ns:
            return n, pos, 1
    return n, pos, 1


def _warm_up(pcap: _Libpcap) -> None:
    """Load (or compile) :func:`_fill` for the argument types it is called with; copies nothing."""
    z = np.zeros(1, np.int64)
    _fill(pcap.next_ex, pcap.memcpy, 0, np.zeros(2, np.int64), np.zeros(3, np.int64), np.zeros(1, np.uint8),
          0, 0, z, z, z, z, 0, 0, 1, 1, _INT64_MAX)


# ---------------------------------------------------------------------------
# The capture


class LiveCapture:
    """A libpcap capture on one interface, read as :class:`PacketBatch` objects.

    The handle is opened (and the filter set) by the constructor, so frames
    are captured from then on, even before :meth:`batches` is iterated.

    Args:
        iface: interface name, or its number in :func:`interfaces`.
        bpf: capture filter (tcpdump/pcap-filter syntax), compiled by libpcap.
        snaplen: bytes kept per frame (``-s``).
        promisc: put the interface in promiscuous mode (dumpcap's default).
        buffer_mb: kernel buffer in MiB (``-B``).
        count: stop after this many frames.
        duration: stop after this many seconds.
        batch_interval, batch_packets: the most time and frames one batch spans.
        timeout_ms: libpcap packet buffer timeout (how long the kernel holds a
            ring block that is not full).
        queue_batches, queue_mb: how many batches, and MiB of frames, may wait
            in memory for a slow consumer (see :meth:`batches`).

    Raises:
        LiveCaptureError: unknown interface, no privileges, bad filter, libpcap failure.
    """

    def __init__(self, iface: str | int, bpf: str | None = None, snaplen: int = DEFAULT_SNAPLEN, *,
                 promisc: bool = True, buffer_mb: int = DEFAULT_BUFFER_MB, count: int | None = None,
                 duration: float | None = None, batch_interval: float = BATCH_INTERVAL,
                 batch_packets: int = BATCH_PACKETS, timeout_ms: int = PCAP_TIMEOUT_MS,
                 queue_batches: int = QUEUE_BATCHES, queue_mb: int = QUEUE_MB):
        if not 1 <= int(snaplen) <= DEFAULT_SNAPLEN:
            raise LiveCaptureError(f"snaplen {snaplen} must be from 1 to {DEFAULT_SNAPLEN}", "capture")
        if count is not None and count < 0:
            raise LiveCaptureError(f"packet count {count} is negative", "capture")
        if duration is not None and duration < 0:
            raise LiveCaptureError(f"duration {duration} is negative", "capture")
        self._pcap = _libpcap()
        self.iface = resolve_interface(iface)
        problem = permission_problem()
        if problem:
            raise LiveCaptureError(problem, "permission")
        self.bpf = bpf
        self.snaplen = int(snaplen)
        self.count = None if count is None else int(count)
        self.duration = None if duration is None else float(duration)
        self.batch_interval = float(batch_interval)
        self.batch_packets = max(1, int(batch_packets))
        self.timeout_ms = max(1, int(timeout_ms))
        self.queue_batches = max(1, int(queue_batches))
        self.queue_bytes = max(1, int(queue_mb)) * 1024 * 1024
        self.captured = 0
        self.stop_reason: str | None = None
        self._stop = False
        self._used = False
        self._handle = None
        self._stats = LiveStats()
        _warm_up(self._pcap)             # load the compiled loop before frames start to queue
        self._open(bool(promisc), int(buffer_mb))
        self.started = time.monotonic()
        self.started_ns = time.time_ns()

    # -- opening ----------------------------------------------------------

    def _error_text(self) -> str:
        return _text(self._pcap.W.pcap_geterr(self._handle))

    def _open(self, promisc: bool, buffer_mb: int) -> None:
        W = self._pcap.W
        errbuf = ctypes.create_string_buffer(W.PCAP_ERRBUF_SIZE)
        handle = W.pcap_create(self.iface.encode(), errbuf)
        if not handle:
            raise LiveCaptureError(f"{self.iface}: {_text(errbuf.raw)}", "capture")
        self._handle = handle
        self._address = ctypes.cast(handle, ctypes.c_void_p).value
        try:
            W.pcap_set_snaplen(handle, self.snaplen)
            W.pcap_set_promisc(handle, 1 if promisc else 0)
            W.pcap_set_timeout(handle, self.timeout_ms)
            if buffer_mb > 0 and hasattr(W, "pcap_set_buffer_size"):
                W.pcap_set_buffer_size(handle, buffer_mb * 1024 * 1024)
            if self._pcap.pcap_set_tstamp_precision is not None:
                self._pcap.pcap_set_tstamp_precision(self._address, _PCAP_TSTAMP_PRECISION_NANO)
            status = W.pcap_activate(handle)
            if status < 0:
                detail = self._error_text() or _text(W.pcap_statustostr(status))
                if status == _PCAP_ERROR_PERM_DENIED:
                    raise LiveCaptureError(
                        f"{self.iface}: permission denied ({detail}): run as root, or grant the "
                        f"capability once with: {PRIVILEGE_FIX}", "permission")
                if status == _PCAP_ERROR_NO_SUCH_DEVICE:
                    names = ", ".join(i.name for i in interfaces())
                    raise LiveCaptureError(f"no such capture interface {self.iface!r}; available: {names}",
                                           "interface")
                raise LiveCaptureError(f"{self.iface}: {detail}", "capture")
            self.nanosecond = (self._pcap.pcap_get_tstamp_precision is not None
                               and self._pcap.pcap_get_tstamp_precision(self._address)
                               == _PCAP_TSTAMP_PRECISION_NANO)
            dlt = int(W.pcap_datalink(handle))
            self.link_type = _DLT_TO_LINKTYPE.get(dlt, dlt)
            if self.bpf:
                self._set_filter(self.bpf)
            if W.pcap_setnonblock(handle, 1, errbuf) < 0:
                raise LiveCaptureError(f"{self.iface}: {_text(errbuf.raw)}", "capture")
            self._fd = int(W.pcap_get_selectable_fd(handle))
            if self._fd < 0:
                raise LiveCaptureError(f"{self.iface}: no selectable file descriptor", "capture")
        except BaseException:
            self.close()
            raise

    def _set_filter(self, expression: str) -> None:
        W = self._pcap.W
        program = W.bpf_program()
        netmask = 0xFFFFFFFF     # PCAP_NETMASK_UNKNOWN: only "ip broadcast" needs it
        if W.pcap_compile(self._handle, ctypes.byref(program), expression.encode(), 1, netmask) < 0:
            raise LiveCaptureError(f"bad capture filter {expression!r}: {self._error_text()}", "filter")
        try:
            if W.pcap_setfilter(self._handle, ctypes.byref(program)) < 0:
                raise LiveCaptureError(f"cannot set capture filter {expression!r}: {self._error_text()}",
                                       "filter")
        finally:
            W.pcap_freecode(ctypes.byref(program))

    # -- control ----------------------------------------------------------

    def stop(self) -> None:
        """Ask the capture to end (safe in a signal handler or from another thread)."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        return self._stop

    def stats(self) -> LiveStats:
        """tcpdump's figures so far (the final ones once closed)."""
        if self._handle is not None:
            W = self._pcap.W
            raw = W.pcap_stat()
            if W.pcap_stats(self._handle, ctypes.byref(raw)) >= 0:
                self._stats = LiveStats(self.captured, int(raw.ps_recv), int(raw.ps_drop), int(raw.ps_ifdrop))
        self._stats.captured = self.captured
        return LiveStats(self._stats.captured, self._stats.received, self._stats.dropped,
                         self._stats.if_dropped)

    def close(self) -> None:
        """Read the final statistics and close the handle (idempotent)."""
        if self._handle is None:
            return
        try:
            self.stats()
        finally:
            self._pcap.W.pcap_close(self._handle)
            self._handle = None

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ----------------------------------------------------------

    def _empty_batch(self, first_number: int | None = None) -> PacketBatch:
        z = np.zeros(0, np.int64)
        return PacketBatch(np.zeros(0, np.uint8), z, z, z, z, np.zeros(0, np.int32), np.zeros(0, np.int32),
                           first_number=self.captured + 1 if first_number is None else first_number)

    def batches(self, heartbeat: float | None = None, thread: bool = True) -> Iterator[PacketBatch]:
        """Yield the captured frames as batches until the capture stops.

        Args:
            heartbeat: if given, also yield an empty batch whenever this many
                seconds pass without a batch (for callers that refresh a display
                or rotate files while the interface is quiet).
            thread: move frames out of the kernel in a background thread (the
                copy loop runs without the GIL), so that a consumer that pauses
                (a slow batch, a garbage collection) makes frames wait in memory
                rather than overflow the kernel ring.  At most
                ``queue_batches`` batches and ``queue_mb`` MiB wait; beyond that
                the kernel buffers (and drops when its buffer is full).

        Raises:
            LiveCaptureError: libpcap failed mid-capture (the frames read before
                are yielded first).
        """
        if self._used:
            raise RuntimeError("LiveCapture.batches() can be iterated once")
        if self._handle is None:
            raise RuntimeError("the capture is closed")
        self._used = True
        if not thread:
            for batch in self._produce(heartbeat):
                self.captured += len(batch)
                yield batch
            return
        waiting: queue.Queue = queue.Queue(maxsize=self.queue_batches)
        abandoned = threading.Event()
        end = object()
        queued = [0]                    # bytes of the batches waiting
        lock = threading.Lock()

        def put(item) -> bool:
            size = int(item.data.nbytes) if isinstance(item, PacketBatch) else 0
            while not abandoned.is_set():
                if size and queued[0] + size > self.queue_bytes and not waiting.empty():
                    time.sleep(0.001)
                    continue
                try:
                    waiting.put(item, timeout=0.05)
                except queue.Full:
                    continue
                with lock:
                    queued[0] += size
                return True
            return False

        def run() -> None:
            try:
                for batch in self._produce(None):
                    if not put(batch):
                        return
            except BaseException as error:      # handed to the consumer
                put(error)
            put(end)

        worker = threading.Thread(target=run, name=f"netsift-capture-{self.iface}", daemon=True)
        worker.start()
        last = time.monotonic()
        try:
            while True:
                wait = 0.1 if heartbeat is None else max(0.001, heartbeat - (time.monotonic() - last))
                try:
                    item = waiting.get(timeout=wait)
                except queue.Empty:
                    if heartbeat is not None and time.monotonic() - last >= heartbeat:
                        last = time.monotonic()
                        yield self._empty_batch()
                    continue
                if item is end:
                    break
                if isinstance(item, BaseException):
                    raise item
                with lock:
                    queued[0] -= int(item.data.nbytes)
                self.captured += len(item)
                last = time.monotonic()
                yield item
        finally:
            self._stop = True            # a consumer leaving early ends the capture
            abandoned.set()
            worker.join()

    def _produce(self, heartbeat: float | None) -> Iterator[PacketBatch]:
        """The copy loop's driver: batches (and heartbeat empties) until the capture stops."""
        pcap = self._pcap
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        slots = np.zeros(2, np.int64)
        header = np.zeros(3, np.int64)
        scale = 1 if self.nanosecond else 1000
        interval_ns = int(self.batch_interval * 1e9)
        chunk_bytes = max(_CHUNK_BYTES, 4 * self.snaplen)
        deadline = None if self.duration is None else self.started + self.duration
        drain_until = None             # set when stopping: take what the kernel already holds
        drain_seconds = 3 * self.timeout_ms / 1000 + 0.02
        max_ts = _INT64_MAX
        chunk = np.empty(0, np.uint8)
        pos = 0
        produced = 0
        last_yield = time.monotonic()
        error = None
        done = False
        while not done:
            if chunk.shape[0] - pos < self.snaplen + 1:
                chunk = np.empty(chunk_bytes, np.uint8)
                pos = 0
            start = pos
            limit = chunk.shape[0] - self.snaplen
            off, cap, wire, ts = (np.empty(self.batch_packets, np.int64) for _ in range(4))
            n = 0
            while True:
                want = self.batch_packets
                if self.count is not None:
                    want = min(want, self.count - produced)
                    if n >= want:
                        self.stop_reason = self.stop_reason or "count"
                        done = True
                        break
                now = time.monotonic()
                if drain_until is None and (self._stop or (deadline is not None and now >= deadline)):
                    self.stop_reason = self.stop_reason or ("stopped" if self._stop else "duration")
                    drain_until = now + drain_seconds
                    max_ts = time.time_ns()
                n, pos, status = _fill(pcap.next_ex, pcap.memcpy, self._address, slots, header, chunk, pos,
                                       limit, off, cap, wire, ts, n, want, scale, interval_ns, max_ts)
                if status < 0:
                    if status != -2:
                        error = LiveCaptureError(f"{self.iface}: {self._error_text()}", "capture")
                    self.stop_reason = self.stop_reason or "error"
                    done = True
                    break
                if status == 2:          # the kernel is past the moment of the stop
                    done = True
                    break
                if n >= want or pos > limit or status == 1:
                    if n:
                        break
                    continue
                # Nothing waiting.  When stopping, the kernel has handed over every frame
                # stamped before the stop once a ring block timeout has passed since it.
                wall = time.monotonic()
                if drain_until is not None and wall >= drain_until:
                    done = True
                    break
                # Sleep until a frame comes, the batch is due, or a stop.
                if n:
                    wait = self.batch_interval - (time.time_ns() - int(ts[0])) / 1e9
                    if wait <= 0:
                        break
                else:
                    wait = _IDLE_POLL_MS / 1000
                    if heartbeat is not None:
                        wait = min(wait, heartbeat - (wall - last_yield))
                        if wait <= 0:
                            break
                if deadline is not None and drain_until is None:
                    wait = min(wait, deadline - wall)
                if drain_until is not None:
                    wait = min(wait, drain_until - wall)
                poller.poll(max(1, int(wait * 1000 + 0.999)))
            if n:
                batch = PacketBatch(
                    data=chunk[start:pos], offset=off[:n] - start, cap_len=cap[:n], wire_len=wire[:n],
                    ts_ns=ts[:n], link_type=np.full(n, self.link_type, np.int32),
                    interface_id=np.zeros(n, np.int32), first_number=produced + 1)
                produced += n
                last_yield = time.monotonic()
                yield batch
            elif heartbeat is not None and not done and time.monotonic() - last_yield >= heartbeat:
                last_yield = time.monotonic()
                yield self._empty_batch(produced + 1)
        if error is not None:
            raise error


def live(iface: str | int, bpf: str | None = None, snaplen: int = DEFAULT_SNAPLEN, **options
         ) -> Iterator[PacketBatch]:
    """Capture on ``iface`` and yield :class:`PacketBatch` objects (see :class:`LiveCapture` for ``options``).

    The capture opens on the first ``next()`` and closes when the generator
    ends or is closed.  For the statistics, or to stop from a signal handler,
    use :class:`LiveCapture` directly.
    """
    with LiveCapture(iface, bpf, snaplen, **options) as capture:
        yield from capture.batches()


@contextlib.contextmanager
def stop_on_signals(stop, signals=(signal.SIGINT, signal.SIGTERM), enabled: bool = True):
    """Within the block, SIGINT and SIGTERM call ``stop()`` instead of interrupting (main thread only).

    The previous handlers are restored on exit.  Used by the CLI and
    :func:`analyzer.live.analyze_live` so that Ctrl-C ends a capture with its
    file complete and its frames analysed.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        stop()

    try:
        for number in signals:
            previous[number] = signal.signal(number, handler)
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def libpcap_version() -> str:
    """libpcap's version string (``pcap_lib_version``)."""
    return _libpcap().version()
