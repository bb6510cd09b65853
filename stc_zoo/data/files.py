"""One event file of any supported format -> an event array, chosen by its header, then its suffix.

Formats: AEDAT 3.1 (DVS128 Gesture, ``#!AER-DAT3``), AEDAT 2.0 (CIFAR10-DVS, ``#!AER-DAT2``),
N-MNIST ``.bin`` (headerless 5-byte events), and ``.npy`` holding a structured array with
fields x, y, t, p (loaded with ``allow_pickle=False``: nothing is unpickled).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import EventFormatError
from .cifar10dvs import read_aedat2_cifar10dvs
from .dvsgesture import read_aedat31
from .nmnist import read_nmnist_file

FORMATS = "AEDAT 3.1 (.aedat), AEDAT 2.0 (.aedat), N-MNIST (.bin), numpy structured x/y/t/p (.npy)"


def read_npy_events(path: str | os.PathLike) -> np.ndarray:
    try:
        events = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise EventFormatError(f"{path}: not a readable .npy event array ({err})") from None
    if events.dtype.names is None or not {"x", "y", "t", "p"} <= set(events.dtype.names) or events.ndim != 1:
        raise EventFormatError(f"{path}: expected a 1-D structured array with fields x, y, t, p, "
                               f"got {events.dtype} of shape {events.shape}")
    return events


def read_event_file(path: str | os.PathLike) -> np.ndarray:
    """Events of one recording file; EventFormatError naming the file if it is none of ``FORMATS``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"#!AER-DAT3"):
        return read_aedat31(path)
    if head.startswith(b"#!AER-DAT2"):
        return read_aedat2_cifar10dvs(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy_events(path)
    if suffix == ".bin":
        return read_nmnist_file(path)
    raise EventFormatError(f"{path}: unknown event file format (supported: {FORMATS})")
