"""Spatio-temporal compression (STC) as a transform: events -> a few steps of synaptic current."""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

import numpy as np
import torch

from .config import InputConfig
from .data.events import check_events
from .kernels import ops


def pack_events(
    batch: Sequence[np.ndarray], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate event arrays into int64 ``x, y, p, t`` tensors ``[N]`` and ``offsets [B + 1]``."""
    lengths = [len(e) for e in batch]
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64, device=device)
    events = np.concatenate(batch) if batch else np.empty(0, dtype=[(f, "i8") for f in "xypt"])
    fields = (torch.from_numpy(events[f].astype(np.int64)).to(device) for f in "xypt")
    return (*fields, offsets)


class SpatioTemporalCompression:
    """Events -> ``[T, 2, H', W']`` float32 synaptic current, built in one pass over the events.

    The events are split into ``T * ratio`` fine bins by count (``split_by="number"``) or by time
    (``"time"``), exactly as ``tonic.transforms.ToFrame`` does with ``n_event_bins`` /
    ``n_time_bins``; each run of ``ratio`` fine bins becomes one step, fine bin ``i`` of the run
    weighted ``decay ** (ratio - 1 - i)``; space is sum-pooled by ``spatial``:
    ``(H', W') = (ceil(H / spatial), ceil(W / spatial))``. With ``ratio = 1, decay = 1,
    spatial = 1`` the result equals ``ToFrame``. Every event array is checked first
    (``stc_zoo.data.check_events``): bad events are an error, never a silently wrong frame.

    Args:
        sensor_size: ``(W, H)`` or tonic's ``(W, H, P)``.
        T: compressed time steps.
        ratio: compression ratio CR (fine bins per step).
        split_by: ``"number"`` or ``"time"``.
        spatial: sum-pooling factor s.
        decay: lam in (0, 1]; 1 is a plain sum.
        backend: ``"auto"`` (Triton kernel for CUDA devices, PyTorch elsewhere), ``"triton"``
            or ``"torch"``; both give the same frames.
    The parameters live in ``self.config`` (an ``InputConfig``, where they are validated).
    """

    def __init__(self, sensor_size: tuple[int, ...], T: int, ratio: int = 1, split_by: str = "number",
                 spatial: int = 1, decay: float = 1.0, backend: str = "auto"):
        self.config = InputConfig(tuple(sensor_size), T, ratio, split_by, spatial, decay)
        ops.check_backend(backend)
        self.backend = backend

    @classmethod
    def from_config(cls, config: InputConfig, backend: str = "auto") -> SpatioTemporalCompression:
        return cls(**dataclasses.asdict(config), backend=backend)

    def __repr__(self) -> str:
        return f"SpatioTemporalCompression({self.config}, backend={self.backend!r})"

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H', W')`` of the compressed frames."""
        return self.config.output_size

    def batch(self, batch: Sequence[np.ndarray], device: torch.device | str | None = None) -> torch.Tensor:
        """Compress several event arrays at once: ``[T, B, 2, H', W']`` on ``device``."""
        c = self.config
        batch = [check_events(e, c.sensor_size, f"events[{i}]") for i, e in enumerate(batch)]
        x, y, p, t, offsets = pack_events(batch, device)
        return ops.compress_events(x, y, p, t, offsets, c.sensor_size, c.T, c.ratio, c.split_by, c.spatial,
                                   c.decay, backend=self.backend)

    def __call__(self, events: np.ndarray) -> torch.Tensor:
        """Compress one event array: ``[T, 2, H', W']``."""
        return self.batch([events])[:, 0]
