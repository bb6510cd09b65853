"""The synaptic convolutional block and its parts, time-major ``[T, B, C, ...]``.

The math lives in ``stc_zoo.kernels`` (the references that the fused kernels must match); these
modules hold the parameters and call it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .kernels import ops
from .kernels.scb_tail_ref import check_neuron, temporal_mix_ref


class MultiThresholdLIF(nn.Module):
    """Multi-threshold LIF neurons with a learnable per-channel time constant.

    ``1/tau = sigmoid(a)`` per channel, ``a`` initialised so that ``tau = tau_init``. Each step
    emits a spike count in ``{0..K}`` (K thresholds ``V_th, 2 V_th, ..., K V_th``); K = 1 is PLIF.

    Args:
        channels: size of axis 2 of the input (conv channels or linear features).
        K: number of thresholds.
        v_th: threshold spacing.
        tau_init: initial membrane time constant (> 1).
        reset: ``"soft"`` (subtract ``S * V_th``) or ``"hard"`` (to 0 after any spike).
        detach_reset: cut the gradient through the reset.
        surrogate: ``"rectangular"``, ``"triangular"`` or ``"arctan"``, summed over the thresholds.
        alpha: surrogate sharpness (peak height; width ~ 1/alpha).
        backend: ``"auto"`` (fused Triton kernel on CUDA, PyTorch reference elsewhere),
            ``"triton"`` or ``"torch"``; see ``stc_zoo.kernels.ops``.
    Shapes: ``[T, B, channels, ...] -> [T, B, channels, ...]``.
    """

    def __init__(self, channels: int, K: int = 4, v_th: float = 1.0, tau_init: float = 2.0,
                 reset: str = "soft", detach_reset: bool = False, surrogate: str = "rectangular",
                 alpha: float = 1.0, backend: str = "auto"):
        super().__init__()
        ops.check_backend(backend)
        self.check_args(K, v_th, tau_init, reset, detach_reset, surrogate, alpha)
        # ``reset_mode``, not ``reset``: ``reset()`` is the method SpikingJelly's reset_net calls.
        self.K, self.v_th, self.reset_mode, self.detach_reset = K, v_th, reset, detach_reset
        self.surrogate, self.alpha, self.backend = surrogate, alpha, backend
        # sigmoid(a) = 1/tau  <=>  a = -log(tau - 1)
        self.a = nn.Parameter(torch.full((channels,), -math.log(tau_init - 1.0)))

    @staticmethod
    def check_args(K: int, v_th: float, tau_init: float, reset: str, detach_reset: bool, surrogate: str,
                   alpha: float) -> None:
        """ValueError naming the first argument a neuron cannot take (the one place this rule lives)."""
        check_neuron(K, reset, surrogate)
        for name, value, low in (("v_th", v_th, 0.0), ("tau_init", tau_init, 1.0), ("alpha", alpha, 0.0)):
            if not isinstance(value, (int, float)) or value <= low:
                raise ValueError(f"{name} must be a number > {low:g}, got {value!r}")
        if not isinstance(detach_reset, bool):
            raise ValueError(f"detach_reset must be true or false, got {detach_reset!r}")

    def reset(self) -> None:
        """No state to clear: the layer runs all T steps in one call and keeps no membrane between
        calls. Present so SpikingJelly's ``functional.reset_net`` works on networks holding it."""

    @property
    def tau(self) -> torch.Tensor:
        """``[C]`` current membrane time constants."""
        return 1.0 / torch.sigmoid(self.a.detach())

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        """Spike counts for input current ``x``, after temporal mixing with taps ``mix [C, k_t]`` if given."""
        return ops.scb_tail(x, mix, torch.sigmoid(self.a), self.v_th, self.K, self.reset_mode,
                            self.detach_reset, self.surrogate, self.alpha, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"{self.a.numel()}, K={self.K}, v_th={self.v_th}, reset={self.reset_mode}, "
                f"detach_reset={self.detach_reset}, surrogate={self.surrogate}, alpha={self.alpha}, "
                f"backend={self.backend}")


class TemporalMix(nn.Module):
    """Causal per-channel filter over adjacent steps: ``I[t] = sum_d w[c, d] * Y[t - d]``.

    Initialised to the identity (``w[:, 0] = 1``, the other ``k_t - 1`` taps 0).
    Shapes: ``[T, B, channels, ...] -> [T, B, channels, ...]``.
    """

    def __init__(self, channels: int, k_t: int = 2):
        super().__init__()
        self.check_args(k_t)
        w = torch.zeros(channels, k_t)
        w[:, 0] = 1.0
        self.weight = nn.Parameter(w)

    @staticmethod
    def check_args(k_t: int) -> None:
        """ValueError unless ``k_t`` (taps: the current step and k_t - 1 past ones) is a positive integer."""
        if not isinstance(k_t, int) or isinstance(k_t, bool) or k_t < 1:
            raise ValueError(f"k_t must be an integer >= 1, got {k_t!r}")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return temporal_mix_ref(y, self.weight)


class SynapticConvBlock(nn.Module):
    """``Conv2d -> BatchNorm2d -> TemporalMix -> MultiThresholdLIF``.

    The conv and BN see the T steps as one batch of ``T * B`` frames; mixing and MT-LIF run as
    one fused op (``stc_zoo.kernels.ops.scb_tail``). ``folded=True`` builds
    the inference form (conv with bias, no BN) that ``fold_batchnorm()`` turns a trained block into.
    Shapes: ``[T, B, in_channels, H, W] -> [T, B, out_channels, H, W]`` (spike counts).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, k_t: int = 2,
                 folded: bool = False, **lif_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=folded)
        self.bn: nn.Module = nn.Identity() if folded else nn.BatchNorm2d(out_channels)
        self.mix = TemporalMix(out_channels, k_t)
        self.lif = MultiThresholdLIF(out_channels, **lif_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))
        return self.lif(y.unflatten(0, (T, B)), mix=self.mix.weight)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the BN's running statistics and affine into the conv (for inference; idempotent)."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.conv.weight.mul_(scale.view(-1, 1, 1, 1))
        self.conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
        self.bn = nn.Identity()
