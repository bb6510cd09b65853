"""Live event sources for streaming sessions: one small protocol, one module per source.

A source is an iterator of ``Packet``: a time-ordered structured event array (``EVENT_DTYPE``) and
the time the stream has reached with it (``until_us``: no event before it is still to come), which
``StreamSession.push(packet.events, now_us=packet.until_us)`` takes as it is. It says its sensor
size when it knows it, ends when its feed ends (a file's end, a sender silent for ``timeout_s``) or
when closed, and counts what it could not pass on (``stats``): nothing is dropped silently.

- ``FileReplay``: a recording replayed at ``speed`` x real time (``stc-zoo stream FILE``).
- ``UdpSource``: the SPIF / aestream 32-bit word format over UDP (``stc_zoo.sources.spif``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FileReplay", "Packet", "SourceStats", "UdpSource"]


@dataclass(frozen=True)
class Packet:
    """Events ``[N]`` (time-ordered) and the time the stream reached with them (None: the last event's)."""

    events: np.ndarray
    until_us: int | None = None
    received_s: float | None = None  # time.perf_counter() when it arrived (live sources): what lag is measured from


@dataclass
class SourceStats:
    """What a source received and what it could not pass on, by reason."""

    packets: int = 0  # packets yielded
    events: int = 0  # events yielded
    datagrams: int = 0  # datagrams (UDP) or reads received
    malformed: int = 0  # datagrams refused whole: not a whole number of words, or a timestamp word missing
    dropped_datagrams: int = 0  # datagrams dropped because the queue was full (compute fell behind)
    off_sensor: int = 0  # events outside the sensor, dropped
    backwards: int = 0  # events older than one already passed on, dropped
    host_stamped: int = 0  # events that came without a timestamp and were stamped on arrival
    extra: dict = field(default_factory=dict)

    def refused(self) -> int:
        """Events and datagrams not passed on."""
        return self.malformed + self.dropped_datagrams + self.off_sensor + self.backwards


def __getattr__(name: str):
    if name == "FileReplay":
        from .replay import FileReplay
        return FileReplay
    if name == "UdpSource":
        from .udp import UdpSource
        return UdpSource
    raise AttributeError(name)
