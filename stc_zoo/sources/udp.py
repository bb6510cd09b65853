"""Events over UDP in the SPIF / aestream word format (``spif``): what aestream, SPIF's spiffer and
``send_udp`` send.

A receiver thread reads datagrams into a bounded queue (``queue_datagrams``); the datagrams queued
when the consumer asks for the next packet become one packet (up to ``coalesce``), so a consumer that
fell behind catches up in larger pushes instead of paying the per-push cost for every datagram. When
the queue is full all the same, the newest datagrams are dropped and counted
(``stats.dropped_datagrams``), so memory stays bounded and the lag never grows without limit; what
the OS drops from a full socket buffer, Linux counts (``stats.os_dropped``). The
iterator decodes, drops and counts events off the sensor or older than one already passed on, and
ends when no datagram arrived for ``timeout_s`` (the sender stopped) or when ``close()`` is called.
Events that came without a timestamp are stamped with the host's clock on arrival (microseconds
since the source opened) and counted (``stats.host_stamped``).
"""

from __future__ import annotations

import math
import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator

import numpy as np

from ..errors import InputError
from . import Gate, Packet, SourceStats
from .spif import Decoder, encode

MAX_DATAGRAM = 65_507  # the largest UDP payload over IPv4
# Linux's SO_RXQ_OVFL (Python has no name for it): each datagram then carries the count of datagrams
# the kernel dropped on this socket so far because its buffer was full.
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)


class UdpSource:
    """Packets of events received on ``host:port`` (one per datagram).

    Args:
        host: the address to listen on.
        port: the port (0: any free port; ``address`` says which).
        sensor_size: ``(W, H)``; events outside it are dropped and counted. None: keep all.
        timeout_s: end the stream after this long without a datagram, once one has arrived.
        wait_s: how long to wait for the first datagram (the sender may start later).
        queue_datagrams: datagrams held while the consumer is busy; beyond it they are dropped, counted.
        coalesce: at most this many queued datagrams become one packet (1: a packet per datagram).
        socket_buffer: bytes the OS holds for the socket; what overflows it the kernel drops, and on
            Linux says how many with the next datagram (``stats.os_dropped``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 3333, sensor_size: tuple[int, int] | None = None,
                 timeout_s: float = 2.0, queue_datagrams: int = 4096, wait_s: float = 60.0, coalesce: int = 256,
                 socket_buffer: int = 1 << 22):
        if timeout_s <= 0 or wait_s <= 0 or queue_datagrams < 1 or coalesce < 1:
            raise InputError(f"timeout_s and wait_s must be > 0, queue_datagrams and coalesce >= 1, got {timeout_s}, "
                             f"{wait_s}, {queue_datagrams}, {coalesce}")
        self.coalesce = coalesce
        self.sensor_size, self.timeout_s, self.wait_s = sensor_size, timeout_s, wait_s
        self.name = f"udp://{host}:{port} (SPIF/aestream words)"
        self.stats = SourceStats()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_datagrams)
        self._decoder, self._gate = Decoder(), Gate(sensor_size, self.stats)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, socket_buffer)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            self._ancillary = socket.CMSG_SPACE(4)
        except (OSError, AttributeError):  # not Linux: the kernel's drops cannot be counted
            self._ancillary = 0
        try:
            self._sock.bind((host, port))
        except OSError as err:
            self._sock.close()
            raise InputError(f"udp://{host}:{port}: cannot listen there ({err})") from None
        self._sock.settimeout(0.05)  # so the thread notices close()
        self._t0 = time.monotonic_ns()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="stc-zoo-udp", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data, ancillary, _, _ = self._sock.recvmsg(MAX_DATAGRAM, self._ancillary)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    self.stats.os_dropped = struct.unpack("=I", value[:4])[0]
            arrival = (time.monotonic_ns() - self._t0) // 1000
            try:
                self._queue.put_nowait((data, arrival, time.perf_counter()))
            except queue.Full:
                self.stats.dropped_datagrams += 1

    def __iter__(self) -> Iterator[Packet]:
        while not self._closed.is_set():
            try:
                first = self._queue.get(timeout=self.timeout_s if self.stats.datagrams else self.wait_s)
            except queue.Empty:
                break  # the sender stopped (or never started)
            packet = self._packet([first, *self._waiting()])
            if packet is not None:
                yield packet
        self.close()

    def _waiting(self) -> list:
        """The datagrams already queued behind the first (at most ``coalesce - 1``): one packet for all of
        them, so a consumer that fell behind pays the per-push cost once per batch, not per datagram."""
        more = []
        while len(more) < self.coalesce - 1:
            try:
                more.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return more

    def _packet(self, datagrams: list) -> Packet | None:
        """One packet of the events of ``datagrams`` [(bytes, arrival us, perf_counter)], decoded and gated
        in arrival order; its ``received_s`` is the first one's (the lag is the oldest event's)."""
        parts = []
        for data, arrival_us, _ in datagrams:
            self.stats.datagrams += 1
            decoded = self._decoder.decode(data, arrival_us)
            if decoded is None:
                self.stats.malformed += 1
                continue
            events, stamped = decoded
            self.stats.host_stamped += stamped
            parts.append(events)
        if not parts:
            return None
        events = self._gate(np.concatenate(parts) if len(parts) > 1 else parts[0])  # one pass for the packet
        if not len(events):
            return None
        self.stats.packets += 1
        return Packet(events, None, datagrams[0][2])

    def close(self) -> None:
        self._closed.set()
        self._sock.close()

    def __enter__(self) -> UdpSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def send_udp(events: np.ndarray, host: str, port: int, packet_events: int = 180, speed: float = 0.0,
             timestamps: bool = True) -> int:
    """Send ``events`` to ``host:port`` in the SPIF word format, ``packet_events`` per datagram (180 x 8
    bytes fits a 1500-byte Ethernet frame), paced at ``speed`` x real time (0: as fast as possible).
    Returns the number of datagrams sent."""
    most = MAX_DATAGRAM // (8 if timestamps else 4)  # a word per event, and one per timestamp
    if isinstance(packet_events, bool) or not isinstance(packet_events, int) or not 1 <= packet_events <= most:
        raise InputError(f"packet_events must be an integer in 1..{most} (a UDP datagram holds at most "
                         f"{MAX_DATAGRAM:,} bytes), got {packet_events!r}")
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed >= 0):
        raise InputError(f"speed must be a finite number >= 0 (0: as fast as possible), got {speed!r}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t0, begin, sent = (int(events["t"][0]) if len(events) else 0), time.perf_counter(), 0
        for i in range(0, len(events), packet_events):
            chunk = events[i:i + packet_events]
            if speed > 0:
                time.sleep(max(0.0, (int(chunk["t"][-1]) - t0) / 1e6 / speed - (time.perf_counter() - begin)))
            sock.sendto(encode(chunk, timestamps), (host, port))
            sent += 1
    finally:
        sock.close()
    return sent
