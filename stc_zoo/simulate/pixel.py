"""The event-camera pixel model: frames of linear intensity with timestamps -> events.

Each pixel compares the log of its intensity, ``log(I + floor)``, with the level it memorised at its
last event. When the log intensity has risen by the pixel's ON threshold above that level it emits
an ON event (``p = 1``, a brightness increase) and memorises the level one threshold up; falling by
its OFF threshold gives an OFF event (``p = 0``). Several thresholds crossed between two frames give
one event each, at the times the log intensity, interpolated linearly between the frames, crossed
them. Thresholds differ from pixel to pixel (``mismatch``, drawn once per simulation), and the
memorised levels start at a random point between the two thresholds, as a sensor's pixels do when
recording starts. Background events arrive as a Poisson process per pixel whose rate is log-normally
spread across the pixels (a few hot pixels fire far above the mean). A pixel that fired cannot fire
again within the refractory period: later events of that pixel inside it are dropped, signal or noise
alike.

Polarity convention: ``p = 1`` is ON (brighter), ``p = 0`` is OFF (darker), in the package's event
arrays (``stc_zoo.data.events.EVENT_DTYPE``). Same frames, times, parameters and seed give the same
events.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..data.events import EVENT_DTYPE, MAX_EVENTS
from ..errors import SimulationError
from ..kernels.numba_cache import cached_njit

MAX_SIDE = 8192  # the largest sensor side the package's configs accept (stc_zoo/config.py LIMITS)


@dataclass(frozen=True)
class PixelParams:
    """What the pixels of a simulated sensor do (units: log intensity, microseconds, events per second)."""

    # Defaults: fitted to the real N-MNIST recordings of MNIST images 0..299 (training/calibrate_simulator.py)
    threshold_on: float = 0.468  # log-intensity rise of one ON event
    threshold_off: float = 0.432  # log-intensity fall of one OFF event
    mismatch: float = 0.03  # standard deviation of each pixel's thresholds around the two above
    refractory_us: float = 2000.0  # a pixel that fired is blind this long
    noise_hz: float = 0.459  # mean background rate per pixel, ON and OFF together
    noise_spread: float = 1.0  # sigma of the log-normal spread of the pixels' background rates (hot pixels)
    noise_on_fraction: float = 0.5  # share of background events that are ON
    floor: float = 0.02  # log(I + floor): dark pixels neither reach -inf nor flicker on tiny changes

    def __post_init__(self):
        checks = {"threshold_on": (0.005, 10.0), "threshold_off": (0.005, 10.0), "mismatch": (0.0, 1.0),
                  "refractory_us": (0.0, 1e6), "noise_hz": (0.0, 1e4), "noise_spread": (0.0, 5.0),
                  "noise_on_fraction": (0.0, 1.0), "floor": (1e-6, 1e3)}
        check_ranges(self, checks, "PixelParams")

    def replace(self, **changes) -> PixelParams:
        return dataclasses.replace(self, **changes)


def check_ranges(params, ranges: dict[str, tuple[float, float]], what: str) -> None:
    """SimulationError naming the field of ``params`` whose value is no finite number in its range."""
    for name, (low, high) in ranges.items():
        value = getattr(params, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise SimulationError(f"{what}.{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def check_frames(frames, times_us) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` as float64 ``[N, H, W]`` and ``times_us`` as int64 ``[N]``, or SimulationError naming the
    field: at least two frames, finite intensities >= 0, strictly increasing integer times."""
    frames, times = np.asarray(frames), np.asarray(times_us)
    if frames.ndim != 3:
        raise SimulationError(f"frames must be [N, H, W] (N frames of H x W intensities), got shape {frames.shape}")
    n, h, w = frames.shape
    if n < 2:
        raise SimulationError(f"frames: need at least 2 frames to see a change, got {n}")
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise SimulationError(f"frames: each side must be 1..{MAX_SIDE} pixels, got {h} x {w}")
    if frames.dtype.kind not in "uif":
        raise SimulationError(f"frames must hold numbers (intensities), got dtype {frames.dtype}")
    frames = frames.astype(np.float64, copy=False)
    if not np.isfinite(frames).all():
        bad = np.argwhere(~np.isfinite(frames))[0]
        raise SimulationError(f"frames[{bad[0]}] holds NaN or Inf (at row {bad[1]}, column {bad[2]})")
    if frames.min() < 0:
        raise SimulationError(f"frames are linear intensities >= 0, found {frames.min():g}")
    if times.shape != (n,):
        raise SimulationError(f"times_us must be [N] = [{n}] (one time per frame), got shape {times.shape}")
    if times.dtype.kind not in "ui" and not (times.dtype.kind == "f" and np.isfinite(times).all()
                                             and (times == np.round(times)).all()):
        raise SimulationError(f"times_us must be whole microseconds, got dtype {times.dtype}")
    times = times.astype(np.int64)
    if times[0] < 0 or (np.diff(times) <= 0).any():
        k = int(np.argmax(np.diff(times) <= 0)) if times[0] >= 0 else -1
        raise SimulationError("times_us must be >= 0 and strictly increasing" +
                              (f": times_us[{k + 1}] = {times[k + 1]} after {times[k]}" if k >= 0 else ""))
    return frames, times


@cached_njit(nogil=True)
def _crossings(frames, times, floor, thr_on, thr_off, ref, max_events):  # pragma: no cover
    """Every threshold crossing of the log intensities ``log(frames + floor)`` (frames [N, H, W]) at
    ``times`` [N]; ``ref`` [H, W] (the memorised levels) is updated in place. Returns x, y, t, p arrays (in
    frame-interval order) or, past ``max_events``, more than max_events of them (the caller refuses)."""
    n, h, w = frames.shape
    cap = 4096
    xs = np.empty(cap, np.int16)
    ys = np.empty(cap, np.int16)
    ts = np.empty(cap, np.int64)
    ps = np.empty(cap, np.bool_)
    count = 0
    seen = frames[0].copy()  # the intensity whose log is in prev
    prev = np.log(seen + floor)
    for k in range(n - 1):
        t0, span = times[k], times[k + 1] - times[k]
        for i in range(h):
            for j in range(w):
                now = frames[k + 1, i, j]
                # unchanged to 1e-9 of itself (a still background, up to float rounding): no threshold can be
                # crossed, and the log is not taken (most pixels, most frames)
                if abs(now - seen[i, j]) <= 1e-9 * (seen[i, j] + floor):
                    continue
                a, b = prev[i, j], math.log(now + floor)
                prev[i, j], seen[i, j] = b, now
                level = ref[i, j]
                while True:
                    if b - level >= thr_on[i, j]:
                        level += thr_on[i, j]
                        on = True
                    elif level - b >= thr_off[i, j]:
                        level -= thr_off[i, j]
                        on = False
                    else:
                        break
                    if count == cap:
                        if cap > max_events:
                            ref[i, j] = level
                            return xs[:count], ys[:count], ts[:count], ps[:count]
                        cap *= 2
                        xs2, ys2, ts2, ps2 = (np.empty(cap, np.int16), np.empty(cap, np.int16),
                                              np.empty(cap, np.int64), np.empty(cap, np.bool_))
                        xs2[:count], ys2[:count], ts2[:count], ps2[:count] = xs, ys, ts, ps
                        xs, ys, ts, ps = xs2, ys2, ts2, ps2
                    # where the line from a to b meets the crossed level (clamped: the level may start past a)
                    frac = (level - a) / (b - a) if b != a else 1.0
                    frac = min(max(frac, 0.0), 1.0)
                    xs[count], ys[count], ps[count] = j, i, on
                    ts[count] = t0 + np.int64(math.floor(frac * span))
                    count += 1
                ref[i, j] = level
    return xs[:count], ys[:count], ts[:count], ps[:count]


@cached_njit(nogil=True)
def _refractory_keep(x, y, t, height, width, refractory_us):  # pragma: no cover
    """Which events of a time-sorted stream survive the refractory period of their pixel (measured from
    the pixel's last kept event)."""
    n = x.size
    keep = np.ones(n, np.bool_)
    last = np.full(height * width, -(2 ** 62), np.int64)
    for e in range(n):
        key = y[e] * width + x[e]
        if t[e] - last[key] < refractory_us:
            keep[e] = False
        else:
            last[key] = t[e]
    return keep


def frames_to_events(frames: np.ndarray, times_us: np.ndarray, params: PixelParams = PixelParams(), seed: int = 0) -> np.ndarray:
    """Events a sensor with ``params`` records from ``frames`` (module docstring).

    Args:
        frames: ``[N, H, W]`` linear intensities >= 0 (1 = the white the thresholds were set for).
        times_us: ``[N]`` strictly increasing frame times in microseconds.
        params: the pixels' thresholds, mismatch, refractory period and background noise.
        seed: seeds the mismatch, the starting levels and the noise.

    Returns:
        Events (``EVENT_DTYPE``: x column, y row, t in microseconds, p 1 = ON) sorted by time, on
        ``[times_us[0], times_us[-1])``.
    """
    frames, times = check_frames(frames, times_us)
    if not isinstance(params, PixelParams):
        raise SimulationError(f"params must be a PixelParams, got {type(params).__name__}")
    return simulate_checked(frames, times, params, seed)


def simulate_checked(frames: np.ndarray, times: np.ndarray, params: PixelParams, seed: int) -> np.ndarray:
    """``frames_to_events`` on frames (float64) and times (int64) already checked by ``check_frames`` or
    made by the package (the saccade renderer)."""
    rng = np.random.default_rng(seed)
    n, h, w = frames.shape
    thr_on = np.maximum(params.threshold_on + params.mismatch * rng.standard_normal((h, w)), 0.005)
    thr_off = np.maximum(params.threshold_off + params.mismatch * rng.standard_normal((h, w)), 0.005)
    # a level anywhere strictly between one OFF threshold above and one ON threshold below the first frame
    ref = np.log(frames[0] + params.floor) + 0.999 * (rng.random((h, w)) * (thr_on + thr_off) - thr_on)
    x, y, t, p = _crossings(frames, times, params.floor, thr_on, thr_off, ref, MAX_EVENTS)
    if x.size > MAX_EVENTS:
        raise SimulationError(f"the frames cross more than {MAX_EVENTS:,} thresholds (the package's limit on one "
                              "recording): raise the thresholds or simulate a shorter stretch")
    noise = background(rng, h, w, int(times[0]), int(times[-1]), params)
    events = np.empty(x.size + noise.size, EVENT_DTYPE)
    events["x"][:x.size], events["y"][:x.size], events["t"][:x.size], events["p"][:x.size] = x, y, t, p
    events[x.size:] = noise
    events = events[np.argsort(events["t"], kind="stable")]
    if params.refractory_us > 0 and events.size:
        events = events[_refractory_keep(events["x"], events["y"], events["t"], h, w, params.refractory_us)]
    return events


def background(rng: np.random.Generator, h: int, w: int, start_us: int, end_us: int,
               params: PixelParams) -> np.ndarray:
    """Background events on ``[start_us, end_us)``: a Poisson process per pixel whose rates are
    log-normally spread around ``params.noise_hz`` (mean preserved), unsorted."""
    if params.noise_hz == 0 or end_us <= start_us:
        return np.empty(0, EVENT_DTYPE)
    sigma = params.noise_spread
    rates = params.noise_hz * np.exp(sigma * rng.standard_normal((h, w)) - sigma ** 2 / 2)
    counts = rng.poisson(rates * (end_us - start_us) * 1e-6)
    total = int(counts.sum())
    if total > MAX_EVENTS:
        raise SimulationError(f"background noise of {params.noise_hz:g} Hz per pixel gives {total:,} events, more than "
                              f"the package's limit of {MAX_EVENTS:,} on one recording")
    events = np.empty(total, EVENT_DTYPE)
    rows, cols = np.divmod(np.repeat(np.arange(h * w), counts.ravel()), w)
    events["x"], events["y"] = cols, rows
    events["t"] = rng.integers(start_us, end_us, total)
    events["p"] = rng.random(total) < params.noise_on_fraction
    return events
