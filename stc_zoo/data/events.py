"""The event array every reader returns and every transform accepts.

Events are numpy structured arrays with fields ``x, y, t, p`` (tonic's ``events_struct``:
int16 coordinates, int64 microsecond timestamps, bool polarity), one row per event, sorted
by ``t``.
"""

from __future__ import annotations

import math
import os

import numpy as np
from ..errors import EventFormatError, warn

# The same dtype as tonic.io.events_struct, spelled out so importing the readers does not import tonic.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.bool_)])


def _check_polarity(p: np.ndarray, source: str) -> None:
    if p.size and p.dtype != np.bool_ and not np.isin(p, (0, 1)).all():
        raise EventFormatError(f"{source}: field 'p' must be 0/1, found {np.unique(p)[:8].tolist()}")


def _check_range(v: np.ndarray, field: str, limit: int, source: str, what: str) -> None:
    if v.size and (v.min() < 0 or v.max() >= limit):
        raise EventFormatError(f"{source}: field {field!r} has values in [{v.min()}, {v.max()}], outside {what} 0..{limit - 1}")


def polarity_01(p: np.ndarray, source: str = "events") -> np.ndarray:
    """Polarity as 0/1: a -1/1 column becomes 0/1 (-1 -> 0); 0/1 passes unchanged; a mix is an error."""
    p = np.asarray(p)
    if p.size and p.min() == -1:
        if not np.isin(p, (-1, 1)).all():
            raise EventFormatError(f"{source}: polarity mixes -1 with values other than 1")
        return (p > 0).astype(np.int8)
    return p


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from four equal-length sequences."""
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    if not (len(x) == len(y) == len(t) == len(p)):
        raise EventFormatError(f"x, y, t, p have different lengths {len(x)}, {len(y)}, {len(t)}, {len(p)}")
    _check_polarity(p, "events")
    for name, v in (("x", x), ("y", y)):
        _check_range(v, name, np.iinfo(np.int16).max + 1, "events", "the int16 range")
    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def synthetic_events(sensor_size: tuple[int, ...], n: int, seed: int = 0, duration_us: int = 300_000) -> np.ndarray:
    """``n`` uniform random events on a ``(W, H)`` sensor over ``duration_us``, for demos and benchmarks."""
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, sensor_size[0], n), rng.integers(0, sensor_size[1], n),
                       np.sort(rng.integers(0, duration_us, n)), rng.integers(0, 2, n))


# Working memory of compressing one event is about 80 bytes (int64 fields and index temporaries).
MAX_EVENTS = 50_000_000


# Encoded files are checked against the same limit before they are read: a format of ``b`` bytes
# per event holds at most size / b events, so a file whose size alone shows more than
# ``max_events`` is refused without allocating anything. Compressed formats (AEDAT 4, HDF5) get a
# bound on the file size instead, MAX_FILE_BYTES.
MAX_FILE_BYTES = 16 * MAX_EVENTS


def check_file_size(path: str | os.PathLike, bytes_per_event: float | None, max_events: int = MAX_EVENTS) -> int:
    """The file's size in bytes; EventFormatError naming the file and the limit when its size shows it
    holds more than ``max_events`` events (``bytes_per_event`` of a fixed-size encoding), or when it is
    larger than ``MAX_FILE_BYTES`` (any encoding)."""
    size = os.path.getsize(path)
    if bytes_per_event and size / bytes_per_event > max_events:
        raise EventFormatError(f"{path}: {size:,} bytes hold up to {int(size // bytes_per_event):,} events, more than "
                               f"max_events={max_events:,} (MAX_EVENTS) for one recording; crop it first")
    if size > MAX_FILE_BYTES:
        raise EventFormatError(f"{path}: {size:,} bytes exceed MAX_FILE_BYTES={MAX_FILE_BYTES:,} for one recording; "
                               "crop it first")
    return size


def check_array_header(shape: tuple[int, ...], source: str, max_events: int = MAX_EVENTS) -> None:
    """EventFormatError when a stored numpy array's header (read before its data) holds more than
    ``max_events`` rows or more than four values per event: nothing is allocated for it."""
    rows = shape[0] if shape else 1
    values = math.prod(shape)
    if rows > max_events or values > 4 * max_events:
        raise EventFormatError(f"{source}: an array of shape {shape} holds more than max_events={max_events:,} "
                               "(MAX_EVENTS) events; crop it first")


UNITS = {"x": "pixel columns", "y": "pixel rows", "t": "microseconds", "p": "polarity 0/1"}


def _check_types(events: np.ndarray, source: str) -> None:
    for field in ("x", "y", "t", "p"):
        dtype = events.dtype[field]
        if dtype.kind not in "iub":
            raise EventFormatError(f"{source}: field {field!r} must hold integers ({field} in {UNITS[field]}), "
                                   f"got {dtype}")
    t = events["t"]
    if t.dtype.kind == "u" and t.size and t.max() > np.iinfo(np.int64).max:
        raise EventFormatError(f"{source}: field 't' has timestamps above 2**63 - 1 (max {t.max()})")


def check_layout(events: np.ndarray, source: str = "events", max_events: int = MAX_EVENTS) -> np.ndarray:
    """The checks of ``check_events`` that need no pass over the events: fields, shape, size, types.
    Returns the events in the machine's byte order (a big-endian array, as some MATLAB or network
    conversions write, is converted once, so every path reads the same values)."""
    if events is None or not isinstance(events, np.ndarray):
        raise EventFormatError(f"{source}: expected an event array (fields x, y, t, p), got {type(events).__name__}")
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise EventFormatError(f"{source}: not an event array, missing fields {missing} (have {list(names)})")
    if events.ndim != 1:
        raise EventFormatError(f"{source}: expected a 1-D event array, got shape {events.shape}")
    if len(events) > max_events:
        raise EventFormatError(f"{source}: {len(events):,} events exceed max_events={max_events:,} for one call "
                               "(about 80 bytes each while compressing); crop the stream or raise max_events")
    _check_types(events, source)
    if any(not events.dtype[f].isnative for f in names):
        events = events.astype(np.dtype([(f, events.dtype[f].newbyteorder("=")) for f in names]))
    return events


def check_events(events: np.ndarray, sensor_size: tuple[int, ...], source: str = "events",
                 max_events: int = MAX_EVENTS) -> np.ndarray:
    """Validate an event array against a ``(W, H[, P])`` sensor; return it sorted by time.

    Raises EventFormatError naming ``source`` and the field for: missing fields, fields that are
    not integers (float timestamps included: give microseconds), coordinates off the sensor,
    polarities other than 0/1, negative timestamps or ones beyond int64, and more than
    ``max_events`` events (compressing one event takes about 80 bytes of working memory; crop
    long recordings, e.g. with ``tonic.transforms.CropTime``, or raise the limit). Unsorted
    timestamps are sorted (stable) with a warning. Empty streams are valid.
    """
    events = check_layout(events, source, max_events)
    W, H = sensor_size[0], sensor_size[1]
    for field, limit in (("x", W), ("y", H)):
        try:
            _check_range(events[field], field, limit, source, "the sensor's")
        except EventFormatError as err:
            raise EventFormatError(f"{err} (from a larger camera? fit it to the model explicitly: "
                                   f"--fit crop|scale --sensor WxH, or fit=..., source_size=(W, H) in "
                                   "from_pretrained)") from None
    _check_polarity(events["p"], source)
    t = events["t"]
    if t.size and t.min() < 0:
        raise EventFormatError(f"{source}: field 't' has negative timestamps (min {t.min()})")
    if t.size > 1 and (t[1:] < t[:-1]).any():  # not np.diff: it wraps around for unsigned fields
        warn(f"{source}: timestamps not sorted; sorting them (stable)")
        events = events[np.argsort(t, kind="stable")]
    return events
