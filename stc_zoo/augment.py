"""Event-level augmentation for training: random affine maps and event dropout applied to the raw
events of each recording, before compression, so that what the network sees is exactly the
compression of a plausible recording (a rotated, scaled, shifted, thinner one).

The cheaper augmentations of ``stc_zoo.training.data`` (integer shifts and binomial thinning of the cached
compressed counts) are exact on the cache too; a rotation or a scale is not (it would resample
counts between pixels), so a run that asks for one keeps its training recordings as events and
compresses every batch anew (the Numba compressor takes ~1 ms per batch of 32 N-MNIST samples).
Time is left alone: a recording split by event count (``split_by="number"``) does not change
under a temporal scaling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .transforms import SpatioTemporalCompression


@dataclass(frozen=True)
class EventAugment:
    """Random transforms of one recording's events; every parameter 0 is the identity."""

    shift: int = 0  # pixels, each axis uniform in [-shift, shift]
    rotate: float = 0.0  # degrees, uniform in [-rotate, rotate], about the sensor's centre
    scale: float = 0.0  # zoom factor uniform in [1 - scale, 1 + scale]
    drop: float = 0.0  # probability of dropping each event

    def __call__(self, events: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """``events`` (fields x, y, t, p on a ``size = (W, H)`` sensor) transformed; events mapped off the
        sensor are dropped, the rest keep their time and polarity (and their order)."""
        W, H = size
        keep = rng.random(len(events)) >= self.drop if self.drop else np.ones(len(events), bool)
        angle = math.radians(rng.uniform(-self.rotate, self.rotate)) if self.rotate else 0.0
        zoom = rng.uniform(1 - self.scale, 1 + self.scale) if self.scale else 1.0
        dx, dy = rng.integers(-self.shift, self.shift + 1, size=2) if self.shift else (0, 0)
        cx, cy = (W - 1) / 2, (H - 1) / 2
        x, y = events["x"].astype(np.float64) - cx, events["y"].astype(np.float64) - cy
        c, s = zoom * math.cos(angle), zoom * math.sin(angle)
        nx = np.rint(c * x - s * y + cx + dx).astype(np.int64)
        ny = np.rint(s * x + c * y + cy + dy).astype(np.int64)
        keep &= (nx >= 0) & (nx < W) & (ny >= 0) & (ny < H)
        out = events[keep].copy()
        out["x"], out["y"] = nx[keep], ny[keep]
        return out


class AugmentedEvents:
    """A training set kept as events: ``batch(idx, gen)`` augments and compresses the recordings
    ``idx`` into ``[B, T, 2, H', W']`` (the layout of the cached tensors), reproducibly from ``gen``."""

    def __init__(self, events: Sequence[np.ndarray], augment: EventAugment, pipeline: SpatioTemporalCompression):
        self.events, self.augment, self.pipeline = list(events), augment, pipeline
        self.size = pipeline.config.camera_size

    def __len__(self) -> int:
        return len(self.events)

    def batch(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        chosen = [self.augment(self.events[i], self.size, rng) for i in idx.tolist()]
        return self.pipeline.batch(chosen, device="cpu").transpose(0, 1)
