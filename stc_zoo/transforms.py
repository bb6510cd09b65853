"""Spatio-temporal compression (STC) as a transform: events -> a few steps of synaptic current."""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

import numpy as np
import torch

from .config import InputConfig
from .data.events import EVENT_DTYPE, check_events, check_layout
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


def fit_events(events: np.ndarray, config: InputConfig, source: str = "events") -> np.ndarray:
    """Events of ``config.source_size``'s camera (checked against it) moved onto ``config.sensor_size``
    by ``config.fit``; a crop drops what falls outside the window."""
    events = check_events(events, config.camera_size, source)
    factor, dx, dy = config.fitting()
    x = events["x"].astype(np.int64) // factor + dx
    y = events["y"].astype(np.int64) // factor + dy
    W, H = config.sensor_size
    keep = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x[keep], y[keep], events["t"][keep], events["p"][keep]
    return out


def _concatenate(batch: Sequence[np.ndarray]) -> np.ndarray:
    """One structured array of all events (fields promoted to a common type if the arrays differ)."""
    try:
        return np.concatenate(batch)
    except TypeError:  # structured dtypes that do not match field for field
        out = np.empty(sum(len(e) for e in batch), dtype=[(f, np.result_type(*(e.dtype[f] for e in batch)))
                                                           for f in "xypt"])
        for f in "xypt":
            out[f] = np.concatenate([e[f] for e in batch])
        return out


class SpatioTemporalCompression:
    """Events -> ``[T, 2, H', W']`` float32 synaptic current, built in one pass over the events.

    The events are split into ``T * ratio`` fine bins by count (``split_by="number"``) or by time
    (``"time"``), exactly as ``tonic.transforms.ToFrame`` does with ``n_event_bins`` /
    ``n_time_bins``, or into steps of ``step_us`` microseconds from the first event
    (``"duration"``, the binning a stream can use); each run of ``ratio`` fine bins becomes one step, fine bin ``i`` of the run
    weighted ``decay ** (ratio - 1 - i)``; space is sum-pooled by ``spatial``:
    ``(H', W') = (ceil(H / spatial), ceil(W / spatial))``. With ``ratio = 1, decay = 1,
    spatial = 1`` the result equals ``ToFrame``. Every event array is checked first
    (``stc_zoo.data.check_events``): bad events are an error, never a silently wrong frame.

    Args:
        sensor_size: ``(W, H)`` or tonic's ``(W, H, P)``.
        T: compressed time steps.
        ratio: compression ratio CR (fine bins per step).
        split_by: ``"number"``, ``"time"`` or ``"duration"``.
        spatial: sum-pooling factor s.
        decay: lam in (0, 1]; 1 is a plain sum.
        step_us: microseconds per step, a multiple of ``ratio`` (``split_by="duration"`` only).
        fit: events of another camera (``source_size``), fitted onto ``sensor_size`` first: ``"crop"``
            (a centred window, or at ``crop_origin``) or ``"scale"`` (integer downscaling, centred).
            Never done unless asked: off-sensor events are an error.
        source_size: that camera's ``(W, H)``, with ``fit``.
        crop_origin: the ``(x, y)`` of the cropped window's corner (``fit="crop"``; centred when None).
        backend: ``"auto"`` (Triton kernel for CUDA devices, Numba kernel on the CPU when numba is
            installed, PyTorch otherwise), ``"triton"``, ``"numba"`` or ``"torch"``; all give the same frames.
    The parameters live in ``self.config`` (an ``InputConfig``, where they are validated).
    """

    def __init__(self, sensor_size: tuple[int, ...], T: int, ratio: int = 1, split_by: str = "number",
                 spatial: int = 1, decay: float = 1.0, step_us: int | None = None, backend: str = "auto",
                 fit: str | None = None, source_size: tuple[int, int] | None = None,
                 crop_origin: tuple[int, int] | None = None):
        self.config = InputConfig(tuple(sensor_size), T, ratio, split_by, spatial, decay, step_us, fit, source_size,
                                  crop_origin)
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

    def batch(self, batch: Sequence[np.ndarray], device: torch.device | str | None = None,
              origins_us: Sequence[int] | None = None, sources: Sequence[str] | None = None) -> torch.Tensor:
        """Compress several event arrays at once: ``[T, B, 2, H', W']`` on ``device``.

        ``origins_us`` (duration binning only): where each sample's first step starts, instead of
        at its first event; events before it fall in no step. ``sources`` names each sample in error
        messages (its file, say; ``events[i]`` by default).
        """
        c = self.config
        device = torch.device(device or "cpu")
        names = [f"events[{i}]" for i in range(len(batch))] if sources is None else [str(s) for s in sources]
        if len(names) != len(batch):
            raise ValueError(f"sources: one name per sample, got {len(names)} for {len(batch)}")
        if c.fit:
            batch = [fit_events(e, c, names[i]) for i, e in enumerate(batch)]
        if origins_us is not None:
            if c.split_by != "duration" or len(origins_us) != len(batch):
                raise ValueError(f"origins_us: one start per sample, for split_by 'duration' only "
                                 f"(got {len(origins_us)} for {len(batch)} samples, split_by {c.split_by!r})")
            origins_us = np.asarray(origins_us, dtype=np.int64)
        if ops.resolve_backend(self.backend, device) == "numba":
            return self._batch_numba(batch, origins_us, names)
        batch = [check_events(e, c.sensor_size, names[i]) for i, e in enumerate(batch)]
        x, y, p, t, offsets = pack_events(batch, device)
        origins = None if origins_us is None else torch.from_numpy(origins_us).to(device)
        return ops.compress_events(x, y, p, t, offsets, c.sensor_size, c.T, c.ratio, c.split_by, c.spatial,
                                   c.decay, c.step_us, backend=self.backend, origins=origins)

    def _batch_numba(self, batch: Sequence[np.ndarray], origins: np.ndarray | None, names: list[str]) -> torch.Tensor:
        """One pass over all events that checks and scatters them; a bad event gets
        ``check_events``'s error (unsorted timestamps: its warning, then the sorted events)."""
        from .kernels import compress_numba

        c = self.config
        batch = [check_layout(events, names[i]) for i, events in enumerate(batch)]
        for _ in range(2):
            # Field views of one structured array whatever the batch size, so the kernel is compiled
            # once per field dtype, never again for a new batch size.
            events = batch[0] if len(batch) == 1 else _concatenate(batch)
            fields = events["x"], events["y"], events["p"], events["t"]
            offsets = np.zeros(len(batch) + 1, dtype=np.int64)
            np.cumsum([len(e) for e in batch], out=offsets[1:])
            frames, (code, index) = ops.first_use("CPU compression kernel", lambda: compress_numba.compress_events(
                *fields, offsets, c.sensor_size, c.T, c.ratio, c.split_by, c.spatial, c.decay, c.step_us or 0,
                origins))
            if code == compress_numba.OK:
                return torch.from_numpy(frames)
            batch = [check_events(e, c.sensor_size, names[i]) for i, e in enumerate(batch)]
        raise AssertionError(f"compression kernel refused event {index} that check_events accepts")

    def __call__(self, events: np.ndarray) -> torch.Tensor:
        """Compress one event array: ``[T, 2, H', W']``."""
        return self.batch([events])[:, 0]
