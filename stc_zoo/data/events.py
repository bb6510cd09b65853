"""The event array every reader returns and every transform accepts.

Events are numpy structured arrays with fields ``x, y, t, p`` (tonic's ``events_struct``:
int16 coordinates, int64 microsecond timestamps, bool polarity), one row per event, sorted
by ``t``.
"""

from __future__ import annotations

import warnings

import numpy as np
from tonic.io import events_struct

from ..errors import EventFormatError

EVENT_DTYPE = events_struct


def _check_polarity(p: np.ndarray, source: str) -> None:
    if p.size and p.dtype != np.bool_ and not np.isin(p, (0, 1)).all():
        raise EventFormatError(f"{source}: field 'p' must be 0/1, found {np.unique(p)[:8].tolist()}")


def _check_range(v: np.ndarray, field: str, limit: int, source: str, what: str) -> None:
    if v.size and (v.min() < 0 or v.max() >= limit):
        raise EventFormatError(f"{source}: field {field!r} has values in [{v.min()}, {v.max()}], outside {what} 0..{limit - 1}")


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


def check_events(events: np.ndarray, sensor_size: tuple[int, ...], source: str = "events") -> np.ndarray:
    """Validate an event array against a ``(W, H[, P])`` sensor; return it sorted by time.

    Raises EventFormatError naming ``source`` and the field for missing fields, coordinates
    off the sensor, polarities other than 0/1 and negative timestamps. Unsorted timestamps
    are sorted (stable) with a warning.
    """
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    missing = [f for f in ("x", "y", "t", "p") if f not in names]
    if missing:
        raise EventFormatError(f"{source}: not an event array, missing fields {missing} (have {list(names)})")
    W, H = sensor_size[0], sensor_size[1]
    for field, limit in (("x", W), ("y", H)):
        _check_range(events[field], field, limit, source, "the sensor's")
    _check_polarity(events["p"], source)
    t = events["t"]
    if t.size and t.min() < 0:
        raise EventFormatError(f"{source}: field 't' has negative timestamps (min {t.min()})")
    if t.size > 1 and (np.diff(t) < 0).any():
        warnings.warn(f"{source}: timestamps not sorted; sorting them (stable)", stacklevel=2)
        events = events[np.argsort(t, kind="stable")]
    return events
