"""PyTorch reference of the synaptic conv block's tail: temporal mixing then MT-LIF.

This is the CPU path and the oracle for the fused Triton kernel: readable loops over the T
steps, autograd does the backward. Tensors are time-major ``[T, B, C, ...]``; the channel
axis (per-channel taps and time constants) is axis 2.

Math (docs/DESIGN.md):
    mixing   I[t] = sum_{d=0..k_t-1} w[c, d] * Y[t-d]            (Y[t] = 0 for t < 0)
    charge   H[t] = V[t-1] + (I[t] - V[t-1]) * beta,  beta = 1/tau = sigmoid(a)
    fire     S[t] = clamp(floor(H[t] / V_th), 0, K)
    reset    soft: V[t] = H[t] - S[t] * V_th;   hard: V[t] = 0 where S[t] > 0, else H[t]
"""

from __future__ import annotations

import torch

from . import surrogate as sg

RESETS = ("soft", "hard")


def check_neuron(K: int, reset: str, surrogate: str) -> None:
    """The rule every entry point to the MT-LIF math applies: ValueError naming the bad argument."""
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    sg.check_surrogate(surrogate)


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View a ``[C]`` vector so it broadcasts along axis 2 of ``like = [T, B, C, ...]`` (and of its steps)."""
    return v.view(-1, *([1] * (like.ndim - 3)))


def temporal_mix_ref(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Causal per-channel filter over time.

    Args:
        y: ``[T, B, C, ...]`` input.
        w: ``[C, k_t]`` taps; ``w[:, d]`` weights the input ``d`` steps back.
    Returns:
        ``[T, B, C, ...]``, ``I[t] = sum_d w[:, d] * y[t - d]``.
    """
    T, k_t = y.shape[0], w.shape[1]
    out = y * _per_channel(w[:, 0], y)
    for d in range(1, min(k_t, T)):
        delayed = torch.cat([torch.zeros_like(y[:d]), y[: T - d]])
        out = out + delayed * _per_channel(w[:, d], y)
    return out


def mtlif_ref(
    x: torch.Tensor,
    beta: torch.Tensor,
    v_th: float = 1.0,
    K: int = 4,
    reset: str = "soft",
    detach_reset: bool = False,
    surrogate: str = "rectangular",
    alpha: float = 1.0,
    v0: torch.Tensor | None = None,
    return_v: bool = False,
):
    """Multi-threshold LIF over T steps.

    Args:
        x: ``[T, B, C, ...]`` input current.
        beta: ``[C]`` per-channel ``1/tau`` in (0, 1).
        v0: ``[B, C, ...]`` initial membrane (zeros when None).
        return_v: also return the final membrane ``[B, C, ...]``.
    Returns:
        spike counts ``[T, B, C, ...]`` in ``{0..K}`` (dtype of x), and the final membrane if asked.
    """
    check_neuron(K, reset, surrogate)
    b = _per_channel(beta, x)
    v = torch.zeros_like(x[0]) if v0 is None else v0
    spikes = []
    # unbind, not x[t]: each x[t]'s backward would fill a zero tensor of all T steps (O(T^2) in T).
    for xt in x.unbind(0):
        h = v + (xt - v) * b
        s = sg.multi_threshold_spike(h, v_th, K, surrogate, alpha)
        if reset == "soft":
            r = s * v_th
            v = h - (r.detach() if detach_reset else r)
        else:
            fired = sg.multi_threshold_spike(h, v_th, 1, surrogate, alpha)
            v = h * (1 - (fired.detach() if detach_reset else fired))
        spikes.append(s)
    out = torch.stack(spikes)
    return (out, v) if return_v else out


def scb_tail_ref(
    y: torch.Tensor,
    w: torch.Tensor,
    beta: torch.Tensor,
    v_th: float = 1.0,
    K: int = 4,
    reset: str = "soft",
    detach_reset: bool = False,
    surrogate: str = "rectangular",
    alpha: float = 1.0,
) -> torch.Tensor:
    """The fused op the Triton kernel implements: ``mtlif(temporal_mix(y, w))``, ``[T, B, C, ...]``."""
    return mtlif_ref(temporal_mix_ref(y, w), beta, v_th, K, reset, detach_reset, surrogate, alpha)
