"""One event file of any supported format -> an event array, chosen by its header, then its suffix.

Formats: AEDAT 3.1 (DVS128 Gesture, ``#!AER-DAT3``), AEDAT 2.0 (CIFAR10-DVS, ``#!AER-DAT2``),
N-MNIST ``.bin`` (headerless 5-byte events), ``.npy`` holding a structured array with fields x,
y, t, p or a plain ``(N, 4)`` integer array with columns **x, y, t, p** (t in microseconds,
polarity 0/1 or -1/1), and ``.npz`` holding either of those under ``events`` or the four fields
as separate arrays ``x, y, t, p``. Numpy files are loaded with ``allow_pickle=False``: nothing is
unpickled. AEDAT 4, Prophesee EVT 2.0/3.0 ``.raw`` and ``.dat``, and HDF5 go through maintained
libraries (``stc_zoo.data.formats``, the ``formats`` extra).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import EventFormatError
from .cifar10dvs import read_aedat2_cifar10dvs
from .dvsgesture import read_aedat31
from . import formats
from .events import check_array_header, check_file_size, make_events, polarity_01
from .nmnist import read_nmnist_file

FORMATS = ("AEDAT 3.1 (.aedat), AEDAT 2.0 (.aedat), N-MNIST (.bin), numpy (.npy, .npz: structured x/y/t/p, "
           "or (N, 4) integer columns x, y, t, p); with the formats extra: AEDAT 4 (.aedat4), Prophesee EVT 2.0/3.0 "
           "(.raw) and .dat, HDF5 (.h5, .hdf5)")
SUFFIXES = frozenset({".aedat", ".bin", ".npy", ".npz"}) | frozenset(formats.READERS)
COLUMNS = "xytp"  # the column order of plain (N, 4) arrays


def from_columns(array: np.ndarray, source: str) -> np.ndarray:
    """Events from a plain ``(N, 4)`` integer array with columns x, y, t, p; polarity 0/1 or -1/1 (-1 -> 0)."""
    if array.ndim != 2 or array.shape[1] != 4 or array.dtype.kind not in "iu":
        raise EventFormatError(f"{source}: expected a structured x/y/t/p array or an (N, 4) integer array with "
                               f"columns x, y, t, p; got {array.dtype} of shape {array.shape}")
    x, y, t, p = (array[:, COLUMNS.index(c)] for c in "xytp")
    return make_events(x, y, t, polarity_01(p, source))


def _events(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype.names is not None:
        if not {"x", "y", "t", "p"} <= set(array.dtype.names) or array.ndim != 1:
            raise EventFormatError(f"{source}: expected a 1-D structured array with fields x, y, t, p, "
                                   f"got {array.dtype} of shape {array.shape}")
        return array
    return from_columns(array, source)


def _checked_load(fileobj, source: str) -> np.ndarray:
    """The array of an open ``.npy`` stream, its header checked against MAX_EVENTS before its data is read
    (numpy allocates what the header claims)."""
    try:
        version = np.lib.format.read_magic(fileobj)
        fmt = np.lib.format
        shape, _, _ = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fileobj)
    except (ValueError, OSError, SyntaxError) as err:
        raise EventFormatError(f"{source}: not a readable .npy array ({err})") from None
    check_array_header(shape, source)
    fileobj.seek(0)
    return np.load(fileobj, allow_pickle=False)


def read_npy_events(path: str | os.PathLike) -> np.ndarray:
    check_file_size(path, None)
    try:
        with open(path, "rb") as f:
            array = _checked_load(f, str(path))
    except (ValueError, OSError) as err:
        raise EventFormatError(f"{path}: not a readable .npy event array ({err})") from None
    return _events(array, str(path))


def read_npz_events(path: str | os.PathLike) -> np.ndarray:
    """``events`` (structured or (N, 4)) or separate ``x, y, t, p`` arrays of an ``.npz`` file."""
    check_file_size(path, None)
    try:
        with zipfile.ZipFile(path) as z:
            names = [n.removesuffix(".npy") for n in z.namelist()]

            def member(name: str) -> np.ndarray:
                with z.open(name + ".npy") as f:
                    return _checked_load(f, f"{path}[{name}]")  # a zip member rewinds (seek)

            if "events" in names:
                return _events(member("events"), f"{path}[events]")
            if {"x", "y", "t", "p"} <= set(names):
                x, y, t, p = (member(k) for k in "xytp")
                return make_events(x, y, t, polarity_01(p, str(path)))
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise EventFormatError(f"{path}: not a readable .npz file ({err})") from None
    raise EventFormatError(f"{path}: expected an array 'events' or arrays x, y, t, p; found {names}")


def read_event_file(path: str | os.PathLike) -> np.ndarray:
    """Events of one recording file; EventFormatError naming the file if it is none of ``FORMATS``."""
    path = Path(path)
    if path.is_dir():
        raise EventFormatError(f"{path}: a folder, not an event file (a dataset folder is read with --data, "
                               "e.g. stc-zoo evaluate MODEL --data ROOT; your own labelled folders with --dataset folder)")
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
    if suffix == ".npz":
        return read_npz_events(path)
    if suffix in formats.READERS:
        return formats.READERS[suffix](path)
    if suffix == ".bin":
        return read_nmnist_file(path)
    raise EventFormatError(f"{path}: unknown event file format (supported: {FORMATS})")
