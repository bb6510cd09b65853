"""Modern camera formats through maintained readers (the ``formats`` extra: ``pip install 'stc-zoo[formats]'``).

- AEDAT 4 (iniVation DV, ``.aedat4``): the ``aedat`` package (Rust, LZ4/ZSTD packets; 0.5 MB wheel,
  numpy arrays out). ``dv-processing`` (iniVation's SDK, a 24 MB wheel) reads them too and was ~10%
  faster on a 1M-event file (88 vs 78 M events/s, ``docs/FORMATS.md``); both are far faster than
  compression needs, so the 50x smaller dependency wins; dv-processing only writes the tests' files.
- Prophesee EVT 2.0 / EVT 3.0 (``.raw``; the version is read from the ``% evt`` header line) and
  ``.dat``: ``expelliarmus`` (C, a few hundred kB, the reader tonic uses for Prophesee data).
- HDF5 (``.h5``, ``.hdf5``): ``h5py``; an ``events`` group with datasets ``x, y, t, p`` or a
  compound ``events`` dataset with those fields. (Prophesee's own HDF5 files use the ECF codec
  plugin, which h5py does not ship: convert them to EVT 3 with Metavision, or read them there.)

Every reader returns the package's event array (``EVENT_DTYPE``, polarity 0/1), checked by
``make_events``; a missing library is an error that says what to install.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import EventFormatError
from .events import check_array_header, check_file_size, make_events, polarity_01

INSTALL = "pip install 'stc-zoo[formats]'"


def _need(module: str, path: Path):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise EventFormatError(f"{path}: reading this format needs the {module} package ({INSTALL})") from None


def read_aedat4(path: str | os.PathLike) -> np.ndarray:
    """Events of every event stream of an AEDAT 4 file, in time order."""
    path = Path(path)
    check_file_size(path, None)  # compressed packets: only the file size bounds them before decoding
    aedat = _need("aedat", path)
    try:
        parts = [packet["events"] for packet in aedat.Decoder(str(path)) if "events" in packet]
    except Exception as err:  # noqa: BLE001 - the decoder raises plain RuntimeErrors/OSErrors on damage
        raise EventFormatError(f"{path}: not a readable AEDAT 4 file ({err})") from None
    if not parts:
        return make_events([], [], [], [])
    ev = np.concatenate(parts)
    if ev.size and (np.diff(ev["t"].astype(np.int64)) < 0).any():  # several streams interleave
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return make_events(ev["x"], ev["y"], ev["t"].astype(np.int64), ev["on"].astype(np.int8))


def prophesee_encoding(path: Path) -> str:
    """``"evt2"`` or ``"evt3"`` from a ``.raw`` file's ``% evt X.Y`` header line; ``"dat"`` for ``.dat``."""
    if path.suffix.lower() == ".dat":
        return "dat"
    with open(path, "rb") as f:
        for raw in f:
            if not raw.startswith(b"%"):
                break
            words = raw[1:].split()
            if len(words) >= 2 and words[0] == b"evt":
                version = words[1].decode(errors="replace")
                if version.startswith("2"):
                    return "evt2"
                if version.startswith("3"):
                    return "evt3"
                raise EventFormatError(f"{path}: EVT {version} is not supported (EVT 2.0 and 3.0 are)")
    raise EventFormatError(f"{path}: a .raw file without an '% evt 2.0' or '% evt 3.0' header line")


def read_prophesee(path: str | os.PathLike) -> np.ndarray:
    """Events of a Prophesee ``.raw`` (EVT 2.0 / 3.0) or ``.dat`` file."""
    path = Path(path)
    expelliarmus = _need("expelliarmus", path)
    encoding = prophesee_encoding(path)
    check_file_size(path, {"evt2": 4, "dat": 8}.get(encoding))  # EVT 3.0 packs events into fewer bytes
    try:
        ev = expelliarmus.Wizard(encoding=encoding, fpath=str(path)).read()
    except Exception as err:  # noqa: BLE001 - the C reader reports damage as generic errors
        raise EventFormatError(f"{path}: not a readable {encoding} file ({err})") from None
    return make_events(ev["x"], ev["y"], ev["t"], (ev["p"] > 0).astype(np.int8))


def read_hdf5(path: str | os.PathLike) -> np.ndarray:
    """Events of an HDF5 file: group ``events`` with ``x, y, t, p``, or a compound dataset ``events``."""
    path = Path(path)
    h5py = _need("h5py", path)
    try:
        with h5py.File(path, "r") as f:
            if "events" not in f:
                raise EventFormatError(f"{path}: no 'events' group or dataset (found {sorted(f.keys())})")
            node = f["events"]
            for shape in ([node[k].shape for k in "xytp" if k in node] if isinstance(node, h5py.Group)
                          else [node.shape]):
                check_array_header(tuple(shape or ()), str(path))
            fields = {k: node[k][()] for k in "xytp"} if isinstance(node, h5py.Group) else (
                {k: node[k] for k in "xytp"} if node.dtype.names and set("xytp") <= set(node.dtype.names) else None)
            if fields is None:
                raise EventFormatError(f"{path}: 'events' must hold x, y, t, p (found {node.dtype})")
    except (OSError, KeyError) as err:
        raise EventFormatError(f"{path}: not a readable HDF5 event file ({err})") from None
    return make_events(fields["x"], fields["y"], fields["t"], polarity_01(fields["p"], str(path)))


# suffix -> reader
READERS = {".aedat4": read_aedat4, ".raw": read_prophesee, ".dat": read_prophesee, ".h5": read_hdf5,
           ".hdf5": read_hdf5}
