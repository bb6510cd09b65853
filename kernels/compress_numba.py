"""Numba kernel of spatio-temporal compression on the CPU: checks and scatter in one pass.

Same contract and binning rules as ``compress_ref.py`` (which it is tested against), but it
reads the event arrays as they come (any integer field types, strided views of a structured
array: no int64 copies) and validates every event in the same loop that scatters it. A bad
event stops the loop and is reported as ``(code, index)``; the caller then raises the clear
error of ``stc_zoo.data.events.check_events``. Accumulation is in float64 in event order, so
a step's frame does not depend on which other events were compressed in the same call (what
streaming relies on).
"""

from __future__ import annotations

import functools

import numpy as np

from .compress_ref import SPLITS, pooled_size
from .numba_cache import cached_njit

# What stopped the loop: an event off the sensor in x or y, a polarity not 0/1, a timestamp
# below the previous one (or negative).
OK, BAD_X, BAD_Y, BAD_P, BAD_T = -1, 0, 1, 2, 3
MODES = {name: i for i, name in enumerate(SPLITS)}


@cached_njit(nogil=True)
def _scatter(x, y, p, t, offsets, origins, W, H, Hs, Ws, T, ratio, mode, fine_us, spatial, weights,
             out):  # pragma: no cover
    """Check and scatter every event; ``out`` is the flat float64 ``[T, B, 2, Hs, Ws]`` accumulator."""
    B = offsets.size - 1
    # Pooled coordinates by lookup: no integer division per event. (Loops, not array expressions: each of those
    # compiles a ufunc loop, a second of a cold start.)
    xs = np.empty(W, dtype=np.int64)
    for i in range(W):
        xs[i] = i // spatial
    ys = np.empty(H, dtype=np.int64)
    for i in range(H):
        ys[i] = (i // spatial) * Ws
    for b in range(B):
        lo, hi = offsets[b], offsets[b + 1]
        code, i = _sample(x[lo:hi], y[lo:hi], p[lo:hi], t[lo:hi], origins[b], b, B, W, H, Hs * Ws, T * ratio, ratio,
                          mode, fine_us, xs, ys, weights, out)
        if code != OK:
            return code, lo + i
    return OK, 0


@cached_njit(nogil=True)
def _sample(x, y, p, t, origin, b, B, W, H, plane, n_bins, ratio, mode, fine_us, xs, ys, weights,
            out):  # pragma: no cover
    """One sample's events (views, indices from 0: that loop compiles to faster code). ``origin``:
    where the first step starts (mode 2; -1 = at the first event)."""
    n = x.size
    if n == 0:
        return OK, 0
    t_first = np.int64(t[0])
    if t_first < 0:
        return BAD_T, 0
    per_bin = n // n_bins
    width = fine_us if mode == 2 else (np.int64(t[n - 1]) - t_first) // n_bins
    if mode == 2 and origin >= 0:
        t_first = origin  # bins count from here; earlier events fall in none (f < 0)
    # A sample too short for n_bins bins scatters nothing; its events are still checked.
    active = per_bin > 0 if mode == 0 else width > 0
    # The fine bin changes once per bin, not per event: recompute it (a division) only when
    # the event index (mode 0) or time (modes 1, 2) reaches the end of the current one.
    end = np.int64(0) if mode == 0 else t_first
    base, weight = np.int64(0), 0.0
    previous = np.int64(t[0])
    for i in range(n):
        xi, yi, pi, ti = np.int64(x[i]), np.int64(y[i]), np.int64(p[i]), np.int64(t[i])
        if xi < 0 or xi >= W or yi < 0 or yi >= H or pi < 0 or pi > 1 or ti < previous:
            code = BAD_X if xi < 0 or xi >= W else BAD_Y if yi < 0 or yi >= H else BAD_P if pi < 0 or pi > 1 else BAD_T
            return code, i
        previous = ti
        if not active:
            continue
        if (i if mode == 0 else ti) >= end:
            f = i // per_bin if mode == 0 else (ti - t_first) // width
            if f < 0:
                continue  # before the origin: no bin (checked again at the next event)
            if f >= n_bins:
                active = False  # past the last bin: only checks from here on
                continue
            end = (f + 1) * per_bin if mode == 0 else t_first + (f + 1) * width
            base = ((f // ratio) * B + b) * 2 * plane
            weight = weights[ratio - 1 - f % ratio]
        out[base + pi * plane + ys[yi] + xs[xi]] += weight
    return OK, 0


@cached_njit(nogil=True)
def _compress(x, y, p, t, offsets, origins, W, H, Hs, Ws, T, ratio, mode, fine_us, spatial,
              weights):  # pragma: no cover
    acc = np.zeros(T * (offsets.size - 1) * 2 * Hs * Ws)
    code, index = _scatter(x, y, p, t, offsets, origins, W, H, Hs, Ws, T, ratio, mode, fine_us, spatial, weights, acc)
    out = np.empty(acc.size, dtype=np.float32)
    for i in range(acc.size):  # not acc.astype(): see _scatter's note
        out[i] = acc[i]
    return out.reshape((T, offsets.size - 1, 2, Hs, Ws)), code, index


@cached_njit(nogil=True)
def _check(x, y, p, t, W, H, previous):  # pragma: no cover
    """``_sample``'s checks alone: ``(code, index)`` of the first bad event (``t`` must not go below ``previous``)."""
    for i in range(x.size):
        xi, yi, pi, ti = np.int64(x[i]), np.int64(y[i]), np.int64(p[i]), np.int64(t[i])
        if xi < 0 or xi >= W:
            return BAD_X, i
        if yi < 0 or yi >= H:
            return BAD_Y, i
        if pi < 0 or pi > 1:
            return BAD_P, i
        if ti < previous:
            return BAD_T, i
        previous = ti
    return OK, 0


def check(events: np.ndarray, sensor_size: tuple[int, ...], previous_t: int = 0) -> tuple[int, int]:
    """One pass over a checked-layout event array: ``(OK, 0)`` or the first bad event's ``(code, index)``;
    timestamps must be >= ``previous_t`` and sorted."""
    return _check(events["x"], events["y"], events["p"], events["t"], int(sensor_size[0]), int(sensor_size[1]),
                  int(previous_t))


@functools.lru_cache(maxsize=64)
def weights(ratio: int, decay: float) -> np.ndarray:
    """``decay ** e`` for ``e = 0..ratio-1`` in float64, as the reference's ``torch.pow`` computes them."""
    import torch  # the reference's own rounding, so both paths scatter the same numbers

    w = torch.pow(torch.tensor(decay, dtype=torch.float64), torch.arange(ratio)).numpy()
    w.flags.writeable = False  # shared by every call (cached)
    return w


def compress_events(
    x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, offsets: np.ndarray,
    sensor_size: tuple[int, int], T: int, ratio: int = 1, split_by: str = "number",
    spatial: int = 1, decay: float = 1.0, step_us: int = 0, origins: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """``compress_events_ref``'s contract on numpy arrays, checking every event on the way.

    Args:
        x, y, p, t: ``[N]`` integer (or bool) arrays of any layout, the events of all samples.
        offsets: ``[B + 1]`` int64 sample boundaries.
        origins: ``[B]`` int64 start of each sample's first step (``"duration"`` only), or None.
    Returns:
        ``(frames, (code, index))``: ``[T, B, 2, H', W']`` float32 and ``code == OK``, or, at the
        first bad event, ``code`` in ``BAD_X, BAD_Y, BAD_P, BAD_T`` with its index (frames unusable).
    """
    if split_by not in MODES:
        raise ValueError(f"unknown split_by {split_by!r}; choose one of {SPLITS}")
    B = len(offsets) - 1
    origins = np.full(B, -1, dtype=np.int64) if origins is None else np.asarray(origins, dtype=np.int64)
    W, H = int(sensor_size[0]), int(sensor_size[1])
    frames, code, index = _compress(x, y, p, t, offsets, origins, W, H, *pooled_size((W, H), spatial), T, ratio,
                                    MODES[split_by], step_us // ratio, spatial, weights(ratio, float(decay)))
    return frames, (code, index)
