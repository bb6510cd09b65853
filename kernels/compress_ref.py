"""PyTorch reference of spatio-temporal compression: events -> synaptic current in one pass.

The events of a batch arrive concatenated (sample ``b`` owns ``offsets[b]:offsets[b+1]``).
Each event gets a fine bin ``f`` in ``0..T*ratio-1`` from its position (``split_by="number"``)
or its timestamp (``split_by="time"``), exactly as ``tonic.transforms.ToFrame`` bins with
``n_event_bins`` / ``n_time_bins``, or by a fixed duration (``"duration"``, for streaming):

    number:   c = n // (T*ratio) events per fine bin, f = i // c; the last n - T*ratio*c events
              and every event of a sample with fewer than T*ratio events fall in no bin.
    time:     w = (t_last - t_first) // (T*ratio), f = (t - t_first) // w; events with
              f >= T*ratio (the last instant) and every event of a sample with w = 0 fall in no bin.
    duration: w = step_us // ratio, f = (t - t_0) // w with t_0 = t_first, or the sample's entry of
              ``origins`` when given (a stream's step starts there); events at or after
              t_0 + T*step_us fall in no bin. It needs no event after the window, so a stream can be
              binned as it arrives.

The fine bin fixes the compressed step ``k = f // ratio`` and the synaptic weight
``decay ** (ratio - 1 - f % ratio)``, so the fine frames are never built:

    X[k, b, p, y // s, x // s] += decay ** (ratio - 1 - f % ratio)

Accumulation is in float64 so the float32 result does not depend on summation order (CPU and
GPU scatter in different orders).
"""

from __future__ import annotations

import torch

SPLITS = ("number", "time", "duration")


def pooled_size(sensor_size: tuple[int, int], spatial: int) -> tuple[int, int]:
    """``(H', W')`` after sum-pooling a ``(W, H)`` sensor by ``spatial`` (edge cells kept)."""
    W, H = sensor_size
    return -(-H // spatial), -(-W // spatial)


def fine_bins(
    t: torch.Tensor, offsets: torch.Tensor, sample: torch.Tensor, n_bins: int, split_by: str, fine_us: int = 0,
    origins: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine bin of every event and whether it falls in any bin.

    Args:
        t: ``[N]`` int64 timestamps, sorted within each sample.
        offsets: ``[B + 1]`` int64 sample boundaries into the event arrays.
        sample: ``[N]`` int64 sample of each event.
        fine_us: fine-bin width in microseconds (``split_by="duration"`` only).
        origins: ``[B]`` int64 start of each sample's first step (``"duration"`` only; first events when None).
    Returns:
        ``(f, valid)``, both ``[N]``: int64 bin index (meaningless where not valid) and bool.
    """
    counts = offsets[1:] - offsets[:-1]
    index = torch.arange(t.numel(), device=t.device) - offsets[:-1][sample]
    if split_by == "number":
        per_bin = (counts // n_bins)[sample]
        f = index // per_bin.clamp(min=1)
        return f, (per_bin > 0) & (f < n_bins)
    if split_by in ("time", "duration"):
        if t.numel() == 0:
            return index, torch.zeros_like(index, dtype=torch.bool)
        # Empty samples read event 0 here; their width is irrelevant since they own no event.
        first = offsets[:-1].clamp(max=t.numel() - 1)
        if split_by == "duration":
            start = t[first] if origins is None else origins
            f = (t - start[sample]) // fine_us
            return f, (f >= 0) & (f < n_bins)
        last = (offsets[1:] - 1).clamp(min=0)
        w = ((t[last] - t[first]) // n_bins)[sample]
        f = (t - t[first][sample]) // w.clamp(min=1)
        return f, (w > 0) & (f < n_bins)
    raise ValueError(f"unknown split_by {split_by!r}; choose one of {SPLITS}")


def compress_events_ref(
    x: torch.Tensor,
    y: torch.Tensor,
    p: torch.Tensor,
    t: torch.Tensor,
    offsets: torch.Tensor,
    sensor_size: tuple[int, int],
    T: int,
    ratio: int = 1,
    split_by: str = "number",
    spatial: int = 1,
    decay: float = 1.0,
    step_us: int = 0,
    origins: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scatter a batch of events straight into compressed synaptic current.

    Args:
        x, y, p, t: ``[N]`` int64 event fields of all samples, concatenated; coordinates must lie
            on the ``(W, H)`` sensor and polarities in {0, 1} (checked by the caller).
        offsets: ``[B + 1]`` int64, non-decreasing, ``offsets[0] = 0``, ``offsets[-1] = N``.
        step_us: step length in microseconds, a multiple of ``ratio`` (``split_by="duration"`` only).
        origins: ``[B]`` int64 where each sample's first step starts (``"duration"`` only; events
            before it fall in no bin); each sample's first event when None.
    Returns:
        ``[T, B, 2, H', W']`` float32 with ``(H', W') = pooled_size(sensor_size, spatial)``.
    """
    B = offsets.numel() - 1
    Hs, Ws = pooled_size(sensor_size, spatial)
    sample = torch.repeat_interleave(torch.arange(B, device=t.device), offsets[1:] - offsets[:-1])
    f, valid = fine_bins(t, offsets, sample, T * ratio, split_by, step_us // ratio, origins)
    k, within = f // ratio, f % ratio
    weight = torch.pow(torch.tensor(decay, dtype=torch.float64, device=t.device), ratio - 1 - within)
    flat = (((k * B + sample) * 2 + p) * Hs + y // spatial) * Ws + x // spatial
    out = torch.zeros(T * B * 2 * Hs * Ws, dtype=torch.float64, device=t.device)
    out.index_add_(0, flat[valid], weight[valid])
    return out.view(T, B, 2, Hs, Ws).float()
