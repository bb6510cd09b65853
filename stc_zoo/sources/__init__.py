"""Live event sources for streaming sessions: one small protocol, one module per source.

A source is an iterator of ``Packet``: a time-ordered structured event array (``EVENT_DTYPE``) and
the time the stream has reached with it (``until_us``: no event before it is still to come), which
``StreamSession.push(packet.events, now_us=packet.until_us)`` takes as it is. It says its sensor
size when it knows it, ends when its feed ends (a file's end, a sender silent for ``timeout_s``) or
when closed, and counts what it could not pass on (``stats``): nothing is dropped silently.

- ``FileReplay``: a recording replayed at ``speed`` x real time (``stc-zoo stream FILE``).
- ``UdpSource``: the SPIF / aestream 32-bit word format over UDP (``stc_zoo.sources.spif``): what
  aestream's own sender (``aestream input ... output udp HOST PORT --include-timestamp true``, any
  camera aestream drives or an AEDAT 4 file) sends; tested against aestream 0.6.4. aestream's Python
  readers (``UDPInput``, ``FileInput`` in 0.6.4) return frames of accumulated events without their
  timestamps, which cannot be binned by duration exactly, so there is no source built on them.
- ``DvSource``: iniVation DV streams through ``dv-processing`` (``pip install dv-processing``): a
  ``NetworkReader`` (TCP, what DV and dv-processing's ``NetworkWriter`` send) or a camera on USB.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DvSource", "FileReplay", "Gate", "Packet", "SourceStats", "UdpSource"]


@dataclass(frozen=True)
class Packet:
    """Events ``[N]`` (time-ordered) and the time the stream reached with them (None: the last event's)."""

    events: np.ndarray
    until_us: int | None = None
    received_s: float | None = None  # time.perf_counter() when it arrived (live sources): what lag is measured from


@dataclass
class SourceStats:
    """What a source received and what it could not pass on, by reason."""

    packets: int = 0  # packets yielded (a UDP packet holds every datagram queued when it is taken)
    events: int = 0  # events yielded
    datagrams: int = 0  # datagrams (UDP) or reads received
    malformed: int = 0  # datagrams refused whole: not a whole number of words, or a timestamp word missing
    dropped_datagrams: int = 0  # datagrams dropped because the queue was full (compute fell behind)
    os_dropped: int = 0  # datagrams the OS dropped (socket buffer full; Linux counts them, known at the next one)
    off_sensor: int = 0  # events outside the sensor, dropped
    backwards: int = 0  # events older than one already passed on, dropped
    host_stamped: int = 0  # events that came without a timestamp and were stamped on arrival
    extra: dict = field(default_factory=dict)

    def refused(self) -> int:
        """Events and datagrams not passed on."""
        return self.malformed + self.dropped_datagrams + self.os_dropped + self.off_sensor + self.backwards


class Gate:
    """What every live source does before passing events on: drops and counts events off the sensor and
    events older than one already passed on (a sender's clock that went back), so a session only ever
    sees valid, time-ordered events."""

    def __init__(self, sensor_size: tuple[int, int] | None, stats: SourceStats):
        self.sensor_size, self.stats, self.last_t = sensor_size, stats, None

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if len(events) and self._clean(events):  # what a healthy sender sends: passed on as it is
            self.last_t = int(events["t"][-1])
            self.stats.events += len(events)
            return events
        keep = np.ones(len(events), dtype=bool)
        if self.sensor_size is not None:
            keep &= (events["x"] >= 0) & (events["y"] >= 0)
            keep &= (events["x"] < self.sensor_size[0]) & (events["y"] < self.sensor_size[1])
            self.stats.off_sensor += int((~keep).sum())
        t = events["t"]
        floor = np.maximum.accumulate(np.where(keep, t, np.iinfo(np.int64).min))
        if self.last_t is not None:
            floor = np.maximum(floor, self.last_t)
        ordered = keep & (t >= floor)  # an event older than one before it (here or earlier) is dropped
        self.stats.backwards += int((keep & ~ordered).sum())
        events = events[ordered]
        if len(events):
            self.last_t = int(events["t"][-1])
            self.stats.events += len(events)
        return events

    def _clean(self, events: np.ndarray) -> bool:
        """Whether every event lies on the sensor and in time order after the last one passed on (one
        compiled pass; without numba, or a sensor size, the general path decides)."""
        checker = _checker()
        if checker is None or self.sensor_size is None:
            return False
        previous = self.last_t if self.last_t is not None else -(1 << 62)
        return checker.check(events, self.sensor_size, previous)[0] == checker.OK


@functools.lru_cache(maxsize=1)
def _checker():
    """The Numba event checker (numba is a dependency; a broken install gates in numpy), else None."""
    from ..kernels import ops

    if not ops.HAS_NUMBA:  # pragma: no cover
        return None
    from ..kernels import compress_numba

    return compress_numba


def __getattr__(name: str):
    if name == "FileReplay":
        from .replay import FileReplay
        return FileReplay
    if name == "UdpSource":
        from .udp import UdpSource
        return UdpSource
    if name == "DvSource":
        from .dv import DvSource
        return DvSource
    raise AttributeError(name)
