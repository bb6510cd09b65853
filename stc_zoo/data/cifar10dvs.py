"""CIFAR10-DVS (Li et al. 2017): jAER AEDAT 2.0 recordings in ``<class>/<name>.aedat``.

AEDAT 2.0: ASCII header lines starting with ``#``, then big-endian pairs (u32 address, u32
timestamp in us). Addresses are decoded as SpikingJelly's CIFAR10DVS does (the framing most
SNN papers report on): ``x = 127 - (a >> 8 & 0x7F)``, ``y = 127 - (a >> 1 & 0x7F)``,
``p = 1 - (a & 1)``. The dataset has no official split; this package uses a fixed, seeded 9:1
per-class split (``stratified_split(labels, 0.1, seed)``, held-out tenth = test).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError, EventFormatError
from .base import EventDataset, check_split, download_with_tonic
from .events import check_file_size, make_events
from .split import stratified_split

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TEST_FRACTION = 0.1


def _data_start(data: bytes) -> int:
    """Byte offset after the '#' header lines."""
    pos = 0
    while data.startswith(b"#", pos):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        if not line.isascii():  # binary that happens to start with '#'
            break
        pos = end + 1
        if line.strip().lower() == b"#end of ascii header":
            break
    return pos


def read_aedat2_cifar10dvs(path: str | os.PathLike) -> np.ndarray:
    """Events of one CIFAR10-DVS AEDAT 2.0 recording."""
    check_file_size(path, 8)
    data = Path(path).read_bytes()
    if not data.startswith(b"#!AER-DAT2"):
        raise EventFormatError(f"{path}: not an AEDAT 2.0 file (no '#!AER-DAT2' first line)")
    body = memoryview(data)[_data_start(data):]
    if len(body) % 8:
        raise EventFormatError(f"{path}: {len(body)} data bytes is not a whole number of 8-byte events (truncated?)")
    words = np.frombuffer(body, dtype=">u4")
    addr, ts = words[0::2], words[1::2]
    return make_events(127 - ((addr >> 8) & 0x7F), 127 - ((addr >> 1) & 0x7F), ts, 1 - (addr & 1))


class CIFAR10DVS(EventDataset):
    """CIFAR10-DVS samples ``(events, label)`` with a fixed, seeded 9:1 per-class split.

    Args:
        root: folder with one sub-folder per class holding ``*.aedat`` files.
        seed: seed of the split (the zoo uses 0).
        download: when ``root`` has no class folders, use ``tonic.datasets.CIFAR10DVS`` (an
            AEDAT4 conversion, fetched over the network) as the source; the same split applies.
    """

    sensor_size = (128, 128, 2)
    classes = CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                 download: bool = False, seed: int = 0):
        super().__init__(transform)
        check_split(split)
        root = Path(root)
        self._tonic = None
        files = sorted(f for c in CLASSES for f in (root / c).glob("*.aedat"))
        if not files and download:
            self._tonic = download_with_tonic(root, "CIFAR10DVS")
            labels = list(self._tonic.targets)
        elif not files:
            raise DatasetError(f"no <class>/*.aedat files under {root} (classes: {', '.join(CLASSES)}; "
                               "download=True / --download fetches them through tonic)")
        else:
            labels = [CLASSES.index(f.parent.name) for f in files]
        train, test = stratified_split(labels, TEST_FRACTION, seed)
        self.indices = train if split == "train" else test
        self.files = [files[i] for i in self.indices] if files else []
        self.targets = [labels[i] for i in self.indices]

    def load_events(self, index: int) -> np.ndarray:
        if self._tonic is not None:
            ev = self._tonic[self.indices[index]][0]
            return make_events(ev["x"], ev["y"], ev["t"], ev["p"])
        return read_aedat2_cifar10dvs(self.files[index])

    def source_file(self, index: int) -> str | None:
        return str(self.files[index]) if self.files else None

    def describe(self, index: int) -> str:
        return self.source_file(index) or super().describe(index)
