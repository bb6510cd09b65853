"""Spatio-temporal compression (STC) as a transform: events -> a few steps of synaptic current."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data.events import check_events
from .kernels import ops
from .kernels.compress_ref import SPLITS, pooled_size


def pack_events(
    batch: Sequence[np.ndarray], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate event arrays into int64 ``x, y, p, t`` tensors ``[N]`` and ``offsets [B + 1]``."""
    lengths = [len(e) for e in batch]
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64, device=device)
    events = np.concatenate(batch) if batch else np.empty(0, dtype=[(f, "i8") for f in "xypt"])
    fields = (torch.from_numpy(events[f].astype(np.int64)).to(device) for f in "xypt")
    return (*fields, offsets)


@dataclass(frozen=True)
class SpatioTemporalCompression:
    """Events -> ``[T, 2, H', W']`` float32 synaptic current, built in one pass over the events.

    The events are split into ``T * ratio`` fine bins by count (``split_by="number"``) or by time
    (``"time"``), exactly as ``tonic.transforms.ToFrame`` does with ``n_event_bins`` /
    ``n_time_bins``; each run of ``ratio`` fine bins becomes one step, fine bin ``i`` of the run
    weighted ``decay ** (ratio - 1 - i)``; space is sum-pooled by ``spatial``:
    ``(H', W') = (ceil(H / spatial), ceil(W / spatial))``. With ``ratio = 1, decay = 1,
    spatial = 1`` the result equals ``ToFrame``.

    Args:
        sensor_size: ``(W, H)`` or tonic's ``(W, H, P)``.
        T: compressed time steps.
        ratio: compression ratio CR (fine bins per step).
        split_by: ``"number"`` or ``"time"``.
        spatial: sum-pooling factor s.
        decay: lam in (0, 1]; 1 is a plain sum.
        backend: ``"auto"`` (Triton kernel for CUDA devices, PyTorch elsewhere), ``"triton"``
            or ``"torch"``; both give the same frames.
    """

    sensor_size: tuple[int, ...]
    T: int
    ratio: int = 1
    split_by: str = "number"
    spatial: int = 1
    decay: float = 1.0
    backend: str = "auto"

    def __post_init__(self):
        ops.check_backend(self.backend)
        if self.split_by not in SPLITS:
            raise ValueError(f"split_by must be one of {SPLITS}, got {self.split_by!r}")
        for name in ("T", "ratio", "spatial"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay}")
        if len(self.sensor_size) not in (2, 3):
            raise ValueError(f"sensor_size must be (W, H) or (W, H, P), got {self.sensor_size}")

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H', W')`` of the compressed frames."""
        return pooled_size(tuple(self.sensor_size[:2]), self.spatial)

    def batch(self, batch: Sequence[np.ndarray], device: torch.device | str | None = None) -> torch.Tensor:
        """Compress several event arrays at once: ``[T, B, 2, H', W']`` on ``device``."""
        batch = [check_events(e, self.sensor_size, f"events[{i}]") for i, e in enumerate(batch)]
        x, y, p, t, offsets = pack_events(batch, device)
        return ops.compress_events(
            x, y, p, t, offsets, tuple(self.sensor_size[:2]),
            self.T, self.ratio, self.split_by, self.spatial, self.decay, backend=self.backend,
        )

    def __call__(self, events: np.ndarray) -> torch.Tensor:
        """Compress one event array: ``[T, 2, H', W']``."""
        return self.batch([events])[:, 0]
