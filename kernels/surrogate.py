"""Surrogate gradients of the multi-threshold spike function.

The spike count ``S = clamp(floor(H / V_th), 0, K)`` is a staircase with steps at
``H = k * V_th`` for ``k = 1..K``. Its surrogate derivative is the sum over the K steps of a
window ``g`` centred on each step:

    dS/dH ~= sum_{k=1..K} g(H / V_th - k) / V_th

Every window has unit integral, so each surrogate is the exact derivative of a smooth
staircase ``sum_k G(H / V_th - k)`` (``G`` below). ``alpha`` sets the sharpness: the peak of
``g`` is ``alpha`` and its width scales as ``1 / alpha``.

The smooth steps are not used by the model; they exist so that tests can swap them in for
the hard staircase and check the hand-written backward with ``torch.autograd.gradcheck``.
"""

from __future__ import annotations

import functools
import math

import torch

SURROGATES = ("rectangular", "triangular", "arctan")


def check_surrogate(name: str) -> None:
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {SURROGATES}")


def window(u: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """The surrogate window ``g(u)`` for the offset ``u`` from one threshold (in units of V_th)."""
    if name == "rectangular":
        return alpha * (u.abs() < 0.5 / alpha).to(u.dtype)
    if name == "triangular":
        return alpha * torch.clamp(1.0 - alpha * u.abs(), min=0.0)
    if name == "arctan":
        return alpha / (1.0 + (math.pi * alpha * u) ** 2)
    check_surrogate(name)
    raise AssertionError  # unreachable


def smooth_step(u: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """``G(u)``, the smooth step whose derivative is ``window(u)``; 0 far below, 1 far above."""
    if name == "rectangular":
        return torch.clamp(alpha * u + 0.5, 0.0, 1.0)
    if name == "triangular":
        v = torch.clamp(alpha * u, -1.0, 1.0)
        return torch.where(v < 0, 0.5 * (1 + v) ** 2, 1 - 0.5 * (1 - v) ** 2)
    if name == "arctan":
        return torch.atan(math.pi * alpha * u) / math.pi + 0.5
    check_surrogate(name)
    raise AssertionError  # unreachable


def divide(h: torch.Tensor, v_th: float) -> torch.Tensor:
    """``h / v_th`` as one IEEE division on every device. PyTorch's CUDA kernels divide a tensor by a
    Python number as a multiplication by its reciprocal (one rounding more: "may lose one bit of
    precision", BinaryDivTrueKernel.cu), while its CPU kernels, the Numba path and the Triton kernels
    divide; so on CUDA the divisor is a tensor on the device, which takes the dividing kernel."""
    if h.is_cuda:
        return h / _on_device(float(v_th), h.dtype, h.device)
    return h / v_th


@functools.lru_cache(maxsize=64)
def _on_device(value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # made by a fill kernel, not a host-to-device copy, so it can be made inside a CUDA-graph capture
    return torch.full((), value, dtype=dtype, device=device)


def spike_grad(h: torch.Tensor, v_th: float, K: int, name: str, alpha: float) -> torch.Tensor:
    """Surrogate ``dS/dH`` of the K-threshold staircase at membrane ``h`` (same shape as h)."""
    u = divide(h, v_th)
    g = torch.zeros_like(h)
    for k in range(1, K + 1):
        g = g + window(u - k, name, alpha)
    return divide(g, v_th)


class MultiThresholdSpike(torch.autograd.Function):
    """``S = clamp(floor(H / V_th), 0, K)`` forward; the summed surrogate window backward."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, v_th: float, K: int, name: str, alpha: float):
        ctx.save_for_backward(h)
        ctx.args = (v_th, K, name, alpha)
        return torch.clamp(torch.floor(divide(h, v_th)), 0, K)

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):
        (h,) = ctx.saved_tensors
        return grad_s * spike_grad(h, *ctx.args), None, None, None, None


def multi_threshold_spike(
    h: torch.Tensor, v_th: float, K: int, surrogate: str = "rectangular", alpha: float = 1.0
) -> torch.Tensor:
    """Spike counts in ``{0..K}`` for membrane ``h`` (any shape), with a surrogate gradient."""
    return MultiThresholdSpike.apply(h, v_th, K, surrogate, alpha)
