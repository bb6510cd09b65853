"""DVS128 Gesture (Amir et al. 2017): AEDAT 3.1 recordings cut into samples by label windows.

The dataset folder holds ``userNN_<lighting>.aedat`` recordings, a ``userNN_<lighting>_labels.csv``
beside each (``class,startTime_usec,endTime_usec``, classes 1..11) and the official split lists
``trials_to_train.txt`` / ``trials_to_test.txt``. A sample is the events of one recording with
``start <= t < end`` of one label row; timestamps are kept as recorded.

AEDAT 3.1 (iniVation): ASCII header lines starting with ``#`` up to ``#!END-HEADER``, then packets.
A packet is a 28-byte little-endian header (type i16, source i16, event size i32, ts offset i32,
ts overflow i32, capacity i32, number i32, valid i32) and ``capacity * size`` bytes of events.
Polarity events (type 1, 8 bytes): u32 data (bit 0 valid, bit 1 polarity, bits 2-16 y,
bits 17-31 x) then i32 timestamp; the full timestamp is ``overflow << 31 | timestamp``.
"""

from __future__ import annotations

import csv
import functools
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError, EventFormatError
from .base import EventDataset, check_split, download_with_tonic
from .events import EVENT_DTYPE, check_file_size, make_events

END_OF_HEADER = b"#!END-HEADER\r\n"
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1

CLASSES = (
    "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
    "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
    "arm_roll", "air_drums", "air_guitar", "other_gestures",
)


def _header_end(data: bytes, path) -> int:
    end = data.find(END_OF_HEADER)
    if not data.startswith(b"#!AER-DAT3") or end < 0:
        raise EventFormatError(f"{path}: not an AEDAT 3.x file (no '#!AER-DAT3' ... '#!END-HEADER' header)")
    return end + len(END_OF_HEADER)


def read_aedat31(path: str | os.PathLike) -> np.ndarray:
    """All valid polarity events of an AEDAT 3.1 file, in file order."""
    check_file_size(path, 8)
    data = Path(path).read_bytes()
    pos = _header_end(data, path)
    parts = []
    while pos < len(data):
        if pos + PACKET_HEADER.size > len(data):
            raise EventFormatError(f"{path}: truncated packet header at byte {pos}")
        etype, _, esize, _, overflow, capacity, number, _ = PACKET_HEADER.unpack_from(data, pos)
        pos += PACKET_HEADER.size
        body = capacity * esize
        if capacity < 0 or esize <= 0 or pos + body > len(data):
            raise EventFormatError(f"{path}: packet at byte {pos - PACKET_HEADER.size} claims {capacity} x {esize} bytes, file ends first")
        if not 0 <= number <= capacity:
            raise EventFormatError(f"{path}: packet at byte {pos - PACKET_HEADER.size} claims {number} events, "
                                   f"outside 0..{capacity} (its capacity)")
        if etype == POLARITY_EVENT:
            if esize != 8:
                raise EventFormatError(f"{path}: polarity events of {esize} bytes, expected 8")
            words = np.frombuffer(data, dtype="<u4", count=2 * number, offset=pos)
            d, ts = words[0::2], words[1::2].astype(np.int64)
            ok = (d & 1).astype(bool)
            d = d[ok]
            parts.append(make_events(
                (d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, (np.int64(overflow) << 31) | ts[ok], (d >> 1) & 1,
            ))
        pos += body
    return np.concatenate(parts) if parts else np.empty(0, dtype=EVENT_DTYPE)


def read_label_windows(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """``(label 0..10, start_us, end_us)`` rows of a ``*_labels.csv``."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or rows[0][0].strip() != "class":
        raise EventFormatError(f"{path}: expected header 'class,startTime_usec,endTime_usec'")
    try:
        return [(int(c) - 1, int(s), int(e)) for c, s, e in rows[1:]]
    except ValueError as err:
        raise EventFormatError(f"{path}: bad label row ({err})") from None


@functools.lru_cache(maxsize=2)
def _recording(path: str) -> np.ndarray:
    # Each recording holds ~11 samples; keep the last two decoded so a pass reads each file once.
    return read_aedat31(path)


class DVSGesture(EventDataset):
    """DVS128 Gesture samples ``(events, label)`` with the official train/test split.

    Args:
        root: the extracted ``DvsGesture`` folder (``trials_to_train.txt`` and the recordings).
        download: when ``root`` has no split lists, use ``tonic.datasets.DVSGesture`` (tonic's
            preprocessed copy, fetched over the network) as the source instead.
    """

    sensor_size = (128, 128, 2)
    classes = CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                 download: bool = False):
        super().__init__(transform)
        check_split(split)
        root = Path(root)
        listing = root / f"trials_to_{split}.txt"
        self._tonic = None
        if not listing.is_file() and download:
            self._tonic = download_with_tonic(root, "DVSGesture", train=split == "train")
            self.targets = list(self._tonic.targets)
            return
        if not listing.is_file():
            raise DatasetError(f"{listing} not found (the extracted DvsGesture folder holds it; "
                               "download=True / --download fetches it through tonic)")
        self.samples: list[tuple[Path, int, int]] = []
        for name in listing.read_text().split():
            recording = root / name
            for label, start, end in read_label_windows(recording.with_name(recording.stem + "_labels.csv")):
                self.samples.append((recording, start, end))
                self.targets.append(label)

    def load_events(self, index: int) -> np.ndarray:
        if self._tonic is not None:
            ev = self._tonic[index][0]
            return make_events(ev["x"], ev["y"], ev["t"], ev["p"])
        recording, start, end = self.samples[index]
        events = _recording(str(recording))
        return events[(events["t"] >= start) & (events["t"] < end)]

    def source_file(self, index: int) -> str | None:
        return None if self._tonic is not None else str(self.samples[index][0])

    def describe(self, index: int) -> str:
        if self._tonic is not None:
            return super().describe(index)
        recording, start, end = self.samples[index]
        return f"{recording} [{start}, {end}) us"
