"""Domain randomisation: simulation parameters drawn per sample around the calibrated ones.

A network pretrained on one simulated sensor learns that sensor's quirks; drawn per recording from
ranges around the calibrated values (thresholds, mismatch, noise, refractory period, where the image
starts, how far and how fast it moves, the display's gamma, the optics' blur), the simulated set spans
the real sensor rather than one guess of it. Factors are log-uniform (``x * exp(U(-r, r))``), offsets
uniform; ``Randomization(0, ...)`` of a field leaves it at the calibrated value.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .pixel import check_ranges
from .saccades import SaccadeParams


@dataclass(frozen=True)
class Randomization:
    """Half-widths of the ranges parameters are drawn from (factors on a log scale, offsets in pixels)."""

    threshold: float = 0.25  # both thresholds together, factor
    on_off: float = 0.1  # each threshold alone, factor
    mismatch: float = 0.7  # factor
    noise: float = 0.7  # background rate, factor
    refractory: float = 0.4  # factor
    start_px: float = 1.0  # where the image starts, offset in each axis
    amplitude: float = 0.15  # the saccades' length, factor
    timing: float = 0.1  # the motion's duration, factor
    gamma: float = 0.2  # factor
    blur: float = 0.5  # factor

    def __post_init__(self):
        check_ranges(self, {f.name: (0.0, 2.0) for f in dataclasses.fields(self)}, "Randomization")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def draw(self, rng: np.random.Generator, base: SaccadeParams) -> SaccadeParams:
        """One draw of the parameters around ``base``."""
        def factor(r: float) -> float:
            return math.exp(rng.uniform(-r, r))

        common = factor(self.threshold)
        pixel = base.pixel.replace(
            threshold_on=base.pixel.threshold_on * common * factor(self.on_off),
            threshold_off=base.pixel.threshold_off * common * factor(self.on_off),
            mismatch=min(base.pixel.mismatch * factor(self.mismatch), 1.0),
            noise_hz=base.pixel.noise_hz * factor(self.noise),
            refractory_us=base.pixel.refractory_us * factor(self.refractory))
        amplitude = factor(self.amplitude)
        move = min(int(base.move_us * factor(self.timing)), base.period_us - base.delay_us)
        return base.replace(
            pixel=pixel, start=tuple(s + rng.uniform(-self.start_px, self.start_px) for s in base.start),
            path=tuple((a * amplitude, b * amplitude) for a, b in base.path), move_us=move,
            gamma=base.gamma * factor(self.gamma), blur=base.blur * factor(self.blur))
