"""Writers of the three published event-file formats, from their specs, for the reader tests.

Deliberately independent of stc_zoo's readers: each writer packs bits the way the format's
documentation describes, so a reader that decodes them back proves it follows the format.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from stc_zoo.data import make_events

# The real N-MNIST recordings beside the project (tests that need them skip where it is absent).
SUBSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nmnist-subset"


def random_events(rng: np.random.Generator, n: int, W: int, H: int, t_max: int) -> np.ndarray:
    """``n`` events on a ``W x H`` sensor with sorted timestamps in ``[0, t_max)``."""
    return make_events(rng.integers(0, W, n), rng.integers(0, H, n),
                       np.sort(rng.integers(0, t_max, n)), rng.integers(0, 2, n))


def write_nmnist(path: Path, events: np.ndarray) -> None:
    """N-MNIST: 5 bytes per event: x, y, p<<7 | t[22:16], t[15:8], t[7:0]."""
    t = events["t"].astype(np.int64)
    assert t.max(initial=0) < 2**23
    raw = np.empty((len(events), 5), np.uint8)
    raw[:, 0] = events["x"]
    raw[:, 1] = events["y"]
    raw[:, 2] = (events["p"].astype(np.int64) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


AEDAT31_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017-01-01\r\n#!END-HEADER\r\n"


def _aedat31_packet(etype: int, words: np.ndarray, overflow: int) -> bytes:
    n = len(words) // 2
    header = struct.pack("<hhiiiiii", etype, 1, 8, 4, overflow, n, n, n)
    return header + words.astype("<u4").tobytes()


def write_aedat31(path: Path, events: np.ndarray, packet_size: int = 7, invalid: np.ndarray | None = None) -> None:
    """AEDAT 3.1 polarity packets (data: x<<17 | y<<2 | p<<1 | valid; ts low 31 bits, overflow in the
    packet header), split into packets of ``packet_size`` events that never straddle an overflow,
    with a special-event packet (type 0) between them that readers must skip. Events flagged in
    ``invalid`` get valid bit 0."""
    t = events["t"].astype(np.int64)
    valid = np.ones(len(events), np.int64) if invalid is None else (~invalid).astype(np.int64)
    data = (events["x"].astype(np.int64) << 17) | (events["y"].astype(np.int64) << 2) \
        | (events["p"].astype(np.int64) << 1) | valid
    body = bytearray(AEDAT31_HEADER)
    start = 0
    while start < len(events):
        overflow = t[start] >> 31
        stop = start
        while stop < len(events) and stop - start < packet_size and t[stop] >> 31 == overflow:
            stop += 1
        words = np.stack([data[start:stop], t[start:stop] & 0x7FFFFFFF], 1).ravel()
        body += _aedat31_packet(1, words, int(overflow))
        body += _aedat31_packet(0, np.array([0x5, 0x10], np.int64), int(overflow))  # a special event
        start = stop
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(body))


def write_labels_csv(path: Path, rows: list[tuple[int, int, int]]) -> None:
    """DVS Gesture label windows: ``class,startTime_usec,endTime_usec`` with classes 1..11."""
    lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{s},{e}" for c, s, e in rows]
    path.write_text("\r\n".join(lines) + "\r\n")


def write_aedat2_cifar10dvs(path: Path, events: np.ndarray) -> None:
    """jAER AEDAT 2.0 as in CIFAR10-DVS: big-endian (address, timestamp); the address holds the
    sensor's raw row (127 - x) at bits 8-14, raw column (127 - y) at bits 1-7, raw polarity (1 - p)
    at bit 0."""
    addr = ((127 - events["x"].astype(np.int64)) << 8) | ((127 - events["y"].astype(np.int64)) << 1) \
        | (1 - events["p"].astype(np.int64))
    words = np.stack([addr, events["t"].astype(np.int64)], 1).astype(">u4")
    header = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# Data format is int32 address, int32 timestamp (8 bytes total)\r\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + words.tobytes())


def write_tiny_nmnist(root: Path, per_class: int = 8, seed: int = 0) -> Path:
    """A 3-class N-MNIST-layout dataset (Train and Test) with a learnable cue, for training tests. Its file
    names lie past MNIST's 60,000 images: N-MNIST's <i + 1>.bin is MNIST image i, and these are none."""
    rng = np.random.default_rng(seed)
    for label in range(3):
        for i in range(per_class):
            events = random_events(rng, 150, 34, 34, 100_000)
            events["x"] = np.clip(events["x"] // 3 + 10 * label, 0, 33)
            name = f"{60_001 + label * per_class + i:05d}.bin"
            write_nmnist(root / "Train" / str(label) / name, events)
            write_nmnist(root / "Test" / str(label) / name, events)
    return root
