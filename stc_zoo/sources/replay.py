"""A recording replayed as a live source: packets of ``packet_us`` at ``speed`` x real time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from ..data.events import check_layout
from . import Packet, SourceStats


class FileReplay:
    """Packets of ``events`` (time-ordered), each ``packet_us`` of recording, delivered when a camera would
    deliver it at ``speed`` x real time (0: as fast as possible); each packet says the time it reaches,
    so silent stretches complete their steps too."""

    def __init__(self, events: np.ndarray, packet_us: int = 1000, speed: float = 1.0,
                 sensor_size: tuple[int, int] | None = None, source: str = "events"):
        self.events = check_layout(events, source)
        self.packet_us, self.speed, self.sensor_size = max(1, int(packet_us)), speed, sensor_size
        self.stats = SourceStats()

    def __iter__(self) -> Iterator[Packet]:
        events = self.events
        if not len(events):
            return
        t0, t_end = int(events["t"][0]), int(events["t"][-1])
        start, begin = 0, time.perf_counter()
        for end in range(t0 + self.packet_us, t_end + self.packet_us + 1, self.packet_us):
            cut = start + int(np.searchsorted(events["t"][start:], end, side="left"))
            if self.speed > 0:  # wait for the packet's end, as a camera would deliver it
                time.sleep(max(0.0, (end - t0) / 1e6 / self.speed - (time.perf_counter() - begin)))
            self.stats.packets += 1
            self.stats.events += cut - start
            yield Packet(events[start:cut], end)
            start = cut

    def close(self) -> None:
        pass
