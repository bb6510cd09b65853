"""Triton kernel of spatio-temporal compression: raw events -> ``[T, B, 2, H', W']`` current.

The reference and the binning rules are in ``compress_ref.py``. Program ``(b, j)`` takes the
events of sample ``b`` in chunks ``j, j + SPLITS, ...`` of ``BLOCK``; every event computes its fine
bin from its index in the sample (``split_by="number"``) or its timestamp (``"time"``,
``"duration"``) and
atomically adds its weight ``decay ** (ratio - 1 - f % ratio)`` to its cell. The grid is sized
from host-known numbers only (N and B), so a launch never waits for the GPU.

Accumulation is in float64, like the reference, so the float32 result does not depend on the
order in which atomics land. Event coordinates are checked by the caller; the kernel still
drops any event outside the sensor rather than write out of bounds.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from .compress_ref import SPLITS, pooled_size

_BLOCK = 1024
_MAX_SPLITS = 4096


@triton.jit
def compress_events_kernel(
    x_ptr, y_ptr, p_ptr, t_ptr, offsets_ptr, weights_ptr, out_ptr,
    N, B, W, H, Ws, Hs, SPLITS, FINE_US,
    N_BINS: tl.constexpr, RATIO: tl.constexpr, SPATIAL: tl.constexpr, BY_TIME: tl.constexpr,
    BY_DURATION: tl.constexpr, BLOCK: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1).to(tl.int64)
    lo = tl.load(offsets_ptr + b).to(tl.int64)
    hi = tl.load(offsets_ptr + b + 1).to(tl.int64)
    n = hi - lo
    if BY_TIME:
        # Clamped like the reference: an empty sample reads some event but owns none.
        t_first = tl.load(t_ptr + tl.minimum(lo, N - 1)).to(tl.int64)
        t_last = tl.load(t_ptr + tl.maximum(hi - 1, 0)).to(tl.int64)
        if BY_DURATION:
            width = FINE_US + 0 * t_last
        else:
            width = (t_last - t_first) // N_BINS
        binned = (width > 0).to(tl.int64)
    else:
        per_bin = n // N_BINS
        binned = (per_bin > 0).to(tl.int64)
    # A sample too short (in events or in time) for N_BINS bins contributes nothing.
    stop = lo + n * binned
    for start in range(lo + j * BLOCK, stop, SPLITS * BLOCK):
        idx = start + tl.arange(0, BLOCK).to(tl.int64)
        live = idx < hi
        if BY_TIME:
            t = tl.load(t_ptr + idx, mask=live, other=0).to(tl.int64)
            f = (t - t_first) // tl.maximum(width, 1)
        else:
            f = (idx - lo) // tl.maximum(per_bin, 1)
        x = tl.load(x_ptr + idx, mask=live, other=0).to(tl.int64)
        y = tl.load(y_ptr + idx, mask=live, other=0).to(tl.int64)
        p = tl.load(p_ptr + idx, mask=live, other=0).to(tl.int64)
        ok = live & (f < N_BINS) & (x >= 0) & (x < W) & (y >= 0) & (y < H) & (p >= 0) & (p < 2) & (f >= 0)
        k = f // RATIO
        weight = tl.load(weights_ptr + (RATIO - 1 - f % RATIO), mask=ok, other=0.0)
        cell = (((k * B + b) * 2 + p) * Hs + y // SPATIAL) * Ws + x // SPATIAL
        tl.atomic_add(out_ptr + cell, weight, mask=ok)


@functools.lru_cache(maxsize=64)
def _weights(device: torch.device, ratio: int, decay: float) -> torch.Tensor:
    """``decay ** e`` for ``e = 0..ratio-1`` in float64, computed like the reference's torch.pow."""
    base = torch.tensor(decay, dtype=torch.float64)
    return torch.pow(base, torch.arange(ratio, dtype=torch.int64)).to(device)


def compress_events(
    x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, t: torch.Tensor, offsets: torch.Tensor,
    sensor_size: tuple[int, int], T: int, ratio: int = 1, split_by: str = "number",
    spatial: int = 1, decay: float = 1.0, step_us: int = 0,
) -> torch.Tensor:
    """Same contract as ``compress_events_ref``: ``[T, B, 2, H', W']`` float32."""
    if split_by not in SPLITS:
        raise ValueError(f"unknown split_by {split_by!r}; choose one of {SPLITS}")
    B = offsets.numel() - 1
    W, H = sensor_size
    Hs, Ws = pooled_size(sensor_size, spatial)
    out = torch.zeros(T * B * 2 * Hs * Ws, dtype=torch.float64, device=t.device)
    per_sample = triton.cdiv(max(t.numel(), 1), max(B, 1))
    splits = min(max(triton.cdiv(per_sample, _BLOCK), 1), _MAX_SPLITS)
    if B > 0 and t.numel() > 0:
        compress_events_kernel[(B, splits)](
            x, y, p, t, offsets, _weights(t.device, ratio, float(decay)), out,
            t.numel(), B, W, H, Ws, Hs, splits, step_us // ratio,
            N_BINS=T * ratio, RATIO=ratio, SPATIAL=spatial, BY_TIME=split_by != "number",
            BY_DURATION=split_by == "duration", BLOCK=_BLOCK, enable_fp_fusion=False,
        )
    return out.view(T, B, 2, Hs, Ws).float()
