"""N-MNIST (Orchard et al. 2015): 40-bit binary event files in ``Train|Test/<label>/<idx>.bin``.

Each event is 5 bytes: x (8 bits), y (8 bits), polarity (1 bit), timestamp (23 bits, us).
The full dataset and partial copies in the same layout (such as the 1,000-recording subset
this project is developed on) read the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError, EventFormatError
from .base import EventDataset, check_split, download_with_tonic
from .events import EVENT_DTYPE, check_file_size

SENSOR_SIZE = (34, 34, 2)

def read_nmnist_file(path: str | os.PathLike) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` file (tonic's decoder, after a size check)."""
    size = check_file_size(path, 5)
    if size % 5:
        raise EventFormatError(f"{path}: {size} bytes is not a whole number of 5-byte N-MNIST events (truncated?)")
    from tonic.io import read_mnist_file  # tonic's decoder; imported here to keep `import stc_zoo` light

    events = read_mnist_file(str(path), dtype=EVENT_DTYPE)
    for field in ("x", "y"):  # every byte pattern decodes, so this is what tells other files apart
        if events.size and events[field].max() >= SENSOR_SIZE[0]:
            raise EventFormatError(f"{path}: field {field!r} reaches {events[field].max()}, but N-MNIST's sensor is "
                                   f"{SENSOR_SIZE[0]}x{SENSOR_SIZE[1]} (not an N-MNIST file?)")
    return events


def encode_nmnist(events: np.ndarray, source: str = "events") -> bytes:
    """N-MNIST's 5-byte events (the inverse of ``read_nmnist_file``): x, y, p << 7 | t[22:16], t[15:8],
    t[7:0]. EventFormatError for what the format cannot hold (coordinates past 255, times past 2^23 us)."""
    t = events["t"].astype(np.int64)
    for field, limit in (("x", 256), ("y", 256), ("t", 2 ** 23)):
        v = events[field]
        if v.size and (v.min() < 0 or v.max() >= limit):
            raise EventFormatError(f"{source}: field {field!r} reaches {v.max()}, beyond what N-MNIST's .bin holds "
                                   f"(0..{limit - 1}); write .npz instead")
    raw = np.empty((len(events), 5), np.uint8)
    raw[:, 0], raw[:, 1] = events["x"], events["y"]
    raw[:, 2] = (events["p"].astype(np.int64) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def _split_folder(root: Path, split: str) -> Path | None:
    """``<root>/Train`` or, as tonic extracts it, ``<root>/NMNIST/Train``."""
    name = split.capitalize()
    for candidate in (root / name, root / "NMNIST" / name):
        if candidate.is_dir():
            return candidate
    return None


class NMNIST(EventDataset):
    """N-MNIST samples ``(events, label)`` from a folder in the dataset's own layout.

    Args:
        root: folder holding ``Train/`` and/or ``Test/`` (the full dataset or a partial copy).
        split: ``"train"`` or ``"test"``.
        download: fetch the full dataset through ``tonic.datasets.NMNIST`` when the split
            folder is missing (needs a network).
    """

    sensor_size = SENSOR_SIZE
    classes = tuple(str(d) for d in range(10))

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Callable | None = None,
        download: bool = False,
    ):
        super().__init__(transform)
        check_split(split)
        root = Path(root)
        folder = _split_folder(root, split)
        if folder is None and download:
            download_with_tonic(root, "NMNIST", train=split == "train")
            folder = _split_folder(root, split)
        if folder is None:
            raise DatasetError(
                f"no N-MNIST {split.capitalize()}/ folder under {root} "
                "(expected <root>/Train/<label>/<idx>.bin; download=True in Python, or --download on the command line, "
                "fetches the full dataset with tonic)"
            )
        self.files = sorted(folder.glob("[0-9]/*.bin"))
        if not self.files:
            raise DatasetError(f"{folder} holds no <label>/<idx>.bin files")
        self.targets = [int(f.parent.name) for f in self.files]

    def load_events(self, index: int) -> np.ndarray:
        return read_nmnist_file(self.files[index])

    def source_file(self, index: int) -> str:
        return str(self.files[index])

    describe = source_file

    def source_image(self, index: int) -> tuple[str, int] | None:
        """N-MNIST's ``<Train|Test>/<label>/<i + 1>.bin`` shows MNIST's training (test) image ``i``."""
        stem, split = self.files[index].stem, self.files[index].parent.parent.name.lower()
        return (f"MNIST {split}", int(stem) - 1) if stem.isdigit() and int(stem) >= 1 else None
