"""iniVation DV event streams through ``dv-processing`` (an optional dependency: ``pip install
dv-processing``): a ``NetworkReader`` connected to a DV ``NetworkWriter`` (TCP; what the DV software
and dv-processing's own writer serve), or a camera on USB (``CameraCapture``).

The reader's event batches become packets; the sensor size is the stream's. The stream ends when the
writer closes, when no batch came for ``timeout_s`` (or none at all within ``wait_s``), or on ``close()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from ..data.events import EVENT_DTYPE
from ..errors import InputError
from . import Gate, Packet, SourceStats

POLL_S = 0.001  # between polls of a reader with nothing new


def _dv():
    try:
        import dv_processing
    except ImportError:
        raise InputError("DV streams need dv-processing: pip install dv-processing") from None
    return dv_processing


class DvSource:
    """Packets from a dv-processing reader (``network`` or ``camera``, or any object with
    ``getNextEventBatch``, ``isRunning`` and ``getEventResolution``)."""

    def __init__(self, reader, name: str, timeout_s: float = 2.0, wait_s: float = 60.0):
        self.reader, self.name, self.timeout_s, self.wait_s = reader, name, timeout_s, wait_s
        W, H = reader.getEventResolution()
        self.sensor_size = (int(W), int(H))
        self.stats = SourceStats()
        self._gate = Gate(self.sensor_size, self.stats)
        self._closed = False

    @classmethod
    def network(cls, host: str, port: int, **kwargs) -> DvSource:
        """Connect to a DV ``NetworkWriter`` on ``host:port`` (TCP)."""
        dv = _dv()
        try:
            reader = dv.io.NetworkReader(host, int(port))
        except RuntimeError as err:
            raise InputError(f"tcp://{host}:{port}: no DV stream there ({err})") from None
        if not reader.isEventStreamAvailable():
            raise InputError(f"tcp://{host}:{port}: the DV stream there carries no events")
        return cls(reader, f"tcp://{host}:{port}", **kwargs)

    @classmethod
    def camera(cls, name: str = "", **kwargs) -> DvSource:
        """The iniVation camera on USB with serial number ``name`` (the first one found when empty)."""
        cameras = _dv().io.camera  # dv-processing 2: camera.discover() / camera.open()
        found = cameras.discover()
        if not found:
            raise InputError(f"camera {name or '(any)'}: no iniVation camera found on USB")
        try:
            reader = cameras.open(name) if name else cameras.open()
        except (RuntimeError, IndexError, ValueError) as err:  # dv-processing's C++ errors as they surface
            raise InputError(f"camera {name or '(any)'}: cannot open it ({err}); found on USB: "
                             f"{', '.join(str(d) for d in found)}") from None
        return cls(reader, f"camera {reader.getCameraName()}", **kwargs)

    def __iter__(self) -> Iterator[Packet]:
        last = time.perf_counter()
        while not self._closed and self.reader.isRunning():
            batch = self.reader.getNextEventBatch()
            now = time.perf_counter()
            if batch is None or not batch.size():
                if now - last > (self.timeout_s if self.stats.datagrams else self.wait_s):
                    break
                time.sleep(POLL_S)
                continue
            last = now
            self.stats.datagrams += 1
            events = self._gate(as_events(batch.numpy()))
            if len(events):
                self.stats.packets += 1
                yield Packet(events, None, now)
        self.close()

    def close(self) -> None:
        self._closed = True


def as_events(store: np.ndarray) -> np.ndarray:
    """dv-processing's ``EventStore.numpy()`` (timestamp, x, y, polarity) as the package's events."""
    out = np.empty(len(store), dtype=EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = store["timestamp"], store["x"], store["y"], store["polarity"] != 0
    return out


def serve_dv(events: np.ndarray, port: int, sensor_size: tuple[int, int], batch_events: int = 1000,
             host: str = "127.0.0.1", wait_client_s: float = 30.0):
    """A DV ``NetworkWriter`` listening on ``host:port`` that sends ``events`` in batches once a client has
    connected (what the DV software's network output does; for tests and demos). Returns ``(writer, thread)``
    at once: the thread sends; keep the writer alive until the client has read everything, then drop it."""
    import threading

    dv = _dv()
    writer = dv.io.NetworkWriter(host, int(port), dv.io.Stream.EventStream(0, "events", "stc-zoo", sensor_size))

    def send():
        begin = time.perf_counter()
        while writer.getClientCount() == 0:
            if time.perf_counter() - begin > wait_client_s:
                return
            time.sleep(0.01)
        for i in range(0, len(events), batch_events):
            store = dv.EventStore()
            for e in events[i:i + batch_events]:
                store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
            writer.writeEvents(store)

    thread = threading.Thread(target=send, name="stc-zoo-dv-writer", daemon=True)
    thread.start()
    return writer, thread
