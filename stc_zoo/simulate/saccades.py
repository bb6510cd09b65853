"""N-MNIST's recording protocol for a static image: a display, a sensor on a pan-tilt unit, three saccades.

Orchard et al. (2015) showed each MNIST digit on a monitor and moved an ATIS sensor in front of it
along a triangle: three saccades of about 100 ms, cropped to 34 x 34 pixels. Here the image is shown
on a display (its values through the display's ``gamma`` onto a ``black`` level, then the optics'
Gaussian ``blur``), placed at about one sensor pixel per image pixel (``scale``), and moved across
the sensor along ``path`` (the image's displacement in sensor pixels during each saccade, smooth
minimum-jerk motion over ``move_us`` from ``delay_us`` into each ``period_us``, at rest in between). Frames are rendered
every ``frame_us`` and turned into events by the pixel model (``pixel.frames_to_events``).

``saccades(image, seed=i)`` with the default ``SaccadeParams`` is the package's best stand-in for
N-MNIST's recording of MNIST image ``i``: the defaults were fitted to the real recordings of MNIST
images 0..299 and checked on 300..999 (``training/calibrate_simulator.py``, docs/SIMULATION.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import SimulationError
from ..kernels.numba_cache import cached_njit
from .pixel import MAX_SIDE, PixelParams, check_ranges, simulate_checked

# The N-MNIST sensor crop and the triangle that tonic's NMNIST stabilisation undoes (x, y in pixels); the
# fitted default path is that triangle at 0.817 of its size.
NMNIST_SENSOR = (34, 34)
NMNIST_PATH = ((3.5, 7.0), (3.5, -7.0), (-7.0, 0.0))
FITTED_PATH = ((2.86, 5.72), (2.86, -5.72), (-5.72, 0.0))


@dataclass(frozen=True)
class SaccadeParams:
    """The display, the motion and the sensor of one simulated saccade recording (module docstring).
    Defaults: fitted to the real N-MNIST recordings of MNIST images 0..299 (training/calibrate_simulator.py,
    docs/SIMULATION.md)."""

    pixel: PixelParams = field(default_factory=PixelParams)
    sensor_size: tuple[int, int] = NMNIST_SENSOR  # (W, H) of the crop
    scale: float = 1.0  # sensor pixels per image pixel
    start: tuple[float, float] = (-3.03, -1.91)  # image centre at t = 0, from the sensor's centre (x, y pixels)
    path: tuple[tuple[float, float], ...] = FITTED_PATH  # the image's displacement in each saccade
    period_us: int = 104_625  # one saccade and its rest
    delay_us: int = 2_000  # the motion starts this long into each period
    move_us: int = 90_625  # the motion's length
    gamma: float = 2.975  # display: intensity = black + (1 - black) * value ** gamma
    black: float = 0.05  # display's black as a fraction of its white
    blur: float = 0.475  # optics: Gaussian sigma in sensor pixels
    frame_us: int = 1000  # rendering step (event times are interpolated between frames)
    invert_polarity: bool = True  # N-MNIST's files: ON events on a bright stroke's trailing edge (its p bit is
    #                               the opposite of a brightness increase under the usual decoding)

    def __post_init__(self):
        object.__setattr__(self, "sensor_size", tuple(int(v) for v in self.sensor_size))
        object.__setattr__(self, "start", tuple(float(v) for v in self.start))
        object.__setattr__(self, "path", tuple((float(a), float(b)) for a, b in self.path))
        if not isinstance(self.pixel, PixelParams):
            raise SimulationError(f"SaccadeParams.pixel must be a PixelParams, got {type(self.pixel).__name__}")
        if len(self.sensor_size) != 2 or not all(0 < s <= MAX_SIDE for s in self.sensor_size):
            raise SimulationError(f"SaccadeParams.sensor_size must be (W, H), each 1..{MAX_SIDE}, got {self.sensor_size}")
        if len(self.start) != 2 or not all(abs(v) <= MAX_SIDE for v in self.start):
            raise SimulationError(f"SaccadeParams.start must be (x, y) within the sensor, got {self.start}")
        if not 1 <= len(self.path) <= 64 or not all(abs(v) <= MAX_SIDE for step in self.path for v in step):
            raise SimulationError(f"SaccadeParams.path must hold 1..64 (dx, dy) steps, got {len(self.path)}")
        check_ranges(self, {"scale": (0.05, 64.0), "period_us": (1000, 10_000_000), "delay_us": (0, 10_000_000),
                            "move_us": (0, 10_000_000),
                            "gamma": (0.1, 10.0), "black": (0.0, 0.99), "blur": (0.0, 16.0),
                            "frame_us": (10, 100_000)}, "SaccadeParams")
        if self.delay_us + self.move_us > self.period_us:
            raise SimulationError(f"SaccadeParams: delay_us + move_us ({self.delay_us} + {self.move_us}) must not "
                                  f"exceed period_us ({self.period_us})")

    @property
    def duration_us(self) -> int:
        return self.period_us * len(self.path)

    def replace(self, **changes) -> SaccadeParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every parameter as JSON-ready values (cards and run folders record them)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> SaccadeParams:
        data = dict(data)
        try:
            pixel = PixelParams(**data.pop("pixel", {}))
            return cls(pixel=pixel, **data)
        except TypeError as err:
            raise SimulationError(f"simulation parameters: {err}") from None


def json_ready(value):
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_ready(v) for v in value]
    return value


def check_image(image) -> np.ndarray:
    """A grey-scale image ``[h, w]`` as float64 in [0, 1] (uint8 divided by 255; floats must lie in [0, 1])."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise SimulationError(f"image must be [H, W] grey values, got shape {image.shape}")
    if not (0 < image.shape[0] <= MAX_SIDE and 0 < image.shape[1] <= MAX_SIDE):
        raise SimulationError(f"image: each side must be 1..{MAX_SIDE} pixels, got {image.shape}")
    if image.dtype == np.uint8:
        return image / 255.0
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise SimulationError("image holds NaN or Inf")
        if image.min() < 0 or image.max() > 1:
            raise SimulationError(f"a float image holds values in [0, 1], got [{image.min():g}, {image.max():g}]")
        return image.astype(np.float64)
    raise SimulationError(f"image must be uint8 (0..255) or float (0..1), got dtype {image.dtype}")


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur as two small matrix products, edges extended (the display's background
    continues past the image)."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()

    def along(n: int) -> np.ndarray:  # [n, n]: output i takes input clip(i + d) with weight taps[d + radius]
        m = np.zeros((n, n))
        for d, tap in zip(range(-radius, radius + 1), taps):
            np.add.at(m, (np.arange(n), np.clip(np.arange(n) + d, 0, n - 1)), tap)
        return m
    return along(image.shape[0]) @ image @ along(image.shape[1]).T


def positions(params: SaccadeParams, times_us: np.ndarray) -> np.ndarray:
    """``[N, 2]`` image centre (x, y) from the sensor's centre at ``times_us``: minimum-jerk motion along
    the path's steps, each over ``move_us`` from ``delay_us`` into its period."""
    steps = np.array(params.path)
    corners = np.vstack([np.zeros(2), np.cumsum(steps, axis=0)]) + np.array(params.start)
    k = np.minimum(times_us // params.period_us, len(steps) - 1)
    tau = np.clip((times_us - k * params.period_us - params.delay_us) / max(params.move_us, 1), 0.0, 1.0)
    s = tau ** 3 * (10 - 15 * tau + 6 * tau ** 2)
    return corners[k] + s[:, None] * steps[k]


@cached_njit(nogil=True)
def _render(shown, centres, width, height, scale, background):  # pragma: no cover
    """Frames ``[N, height, width]``: the displayed image ``shown`` [h, w] centred at each of ``centres``
    [N, 2] (from the sensor's centre), sampled bilinearly at each sensor pixel's centre."""
    n = centres.shape[0]
    h, w = shown.shape
    out = np.empty((n, height, width))
    for f in range(n):
        cx = (width - 1) / 2 + centres[f, 0]
        cy = (height - 1) / 2 + centres[f, 1]
        for i in range(height):
            v = (i - cy) / scale + (h - 1) / 2
            v0 = int(np.floor(v))
            fv = v - v0
            for j in range(width):
                u = (j - cx) / scale + (w - 1) / 2
                u0 = int(np.floor(u))
                fu = u - u0
                if v0 < 0 or u0 < 0 or v0 + 1 >= h or u0 + 1 >= w:  # at or past the image's edge
                    acc = 0.0
                    for dv in range(2):
                        for du in range(2):
                            r, c = v0 + dv, u0 + du
                            val = shown[r, c] if 0 <= r < h and 0 <= c < w else background
                            acc += val * (fv if dv else 1 - fv) * (fu if du else 1 - fu)
                    out[f, i, j] = acc
                else:
                    top = shown[v0, u0] * (1 - fu) + shown[v0, u0 + 1] * fu
                    bottom = shown[v0 + 1, u0] * (1 - fu) + shown[v0 + 1, u0 + 1] * fu
                    out[f, i, j] = top * (1 - fv) + bottom * fv
    return out


def render(image, params: SaccadeParams = SaccadeParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [N, H, W], times_us [N])``: what the sensor sees of ``image`` during the saccades."""
    value = check_image(image)
    shown = params.black + (1 - params.black) * value ** params.gamma
    # blur in sensor pixels: the image is sampled at 1 / scale image pixels per sensor pixel
    shown = gaussian_blur(np.pad(shown, int(np.ceil(3 * params.blur / params.scale)) + 1, constant_values=params.black),
                          params.blur / params.scale)
    times = np.arange(0, params.duration_us + 1, params.frame_us, dtype=np.int64)
    width, height = params.sensor_size
    frames = _render(shown, positions(params, times), width, height, float(params.scale), float(params.black))
    return frames, times


def saccades(image: np.ndarray, seed: int = 0, params: SaccadeParams | None = None, **changes) -> np.ndarray:
    """Events of a simulated N-MNIST-style recording of a static grey-scale ``image`` ``[h, w]``.

    Args:
        image: uint8 (0..255) or float (0..1) grey values; MNIST digits are bright on dark.
        seed: seeds the sensor's mismatch, starting levels and noise (``saccades(img, seed=i)`` on MNIST
            image ``i`` is the stand-in for N-MNIST's recording of it).
        params: everything else (``SaccadeParams``; calibrated defaults); ``**changes`` replace fields of
            it, and ``pixel=PixelParams(...)`` the pixels'.

    Returns:
        Events (``EVENT_DTYPE``) on ``params.sensor_size``, sorted by time, over ``params.duration_us``.
    """
    params = (params or SaccadeParams()).replace(**changes) if changes else (params or SaccadeParams())
    frames, times = render(image, params)
    events = simulate_checked(frames, times, params.pixel, seed)
    if params.invert_polarity:
        events["p"] = ~events["p"]
    return events
