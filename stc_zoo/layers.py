"""The synaptic convolutional block and its parts, time-major ``[T, B, C, ...]``.

The math lives in ``stc_zoo.kernels`` (the references that the fused kernels must match); these
modules hold the parameters and call it.

State, as SpikingJelly users expect it: a spiking layer's state is its membrane ``v`` and, when
it mixes over time, its last ``k_t - 1`` inputs. ``run(x, state)`` is the explicit form (initial
state in, final state out); ``forward`` uses ``step_mode``: ``"m"`` (default) takes a whole
sequence ``[T, B, ...]`` starting from rest, ``"s"`` takes one step ``[B, ...]`` and carries the
state to the next call (``.state``, until ``reset_state()``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .kernels import ops
from .kernels.scb_tail_ref import check_neuron, temporal_mix_ref


STEP_MODES = ("m", "s")


class LayerState(NamedTuple):
    """A spiking layer's state between steps."""

    v: torch.Tensor  # [B, C, ...] membrane after the last step
    past: torch.Tensor  # [k_t - 1, B, C, ...] the last k_t - 1 inputs of the temporal mixing (oldest first)


def check_step_mode(mode: str) -> None:
    if mode not in STEP_MODES:
        raise ValueError(f"step_mode must be 'm' (a sequence [T, B, ...] per call) or 's' (one step [B, ...]), "
                         f"got {mode!r}")


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
        backend: ``"auto"`` (fused Triton kernel on CUDA, Numba kernel for CPU inference,
            PyTorch reference otherwise), ``"triton"``, ``"numba"`` or ``"torch"``; see ``stc_zoo.kernels.ops``.
        step_mode: ``"m"`` or ``"s"`` (module docstring).
    Shapes: ``[T, B, channels, ...] -> [T, B, channels, ...]`` (``"s"``: ``[B, channels, ...]``).
    """

    def __init__(self, channels: int, K: int = 4, v_th: float = 1.0, tau_init: float = 2.0,
                 reset: str = "soft", detach_reset: bool = False, surrogate: str = "rectangular",
                 alpha: float = 1.0, backend: str = "auto", step_mode: str = "m"):
        super().__init__()
        ops.check_backend(backend)
        check_step_mode(step_mode)
        self.step_mode = step_mode
        self.state: LayerState | None = None
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

    def reset_state(self) -> None:
        """Forget the state: the next call starts from rest."""
        self.state = None

    def reset(self) -> None:
        """``reset_state()`` under the name SpikingJelly's ``functional.reset_net`` calls."""
        self.reset_state()

    @property
    def v(self) -> torch.Tensor | None:
        """``[B, C, ...]`` membrane after the last call (None at rest)."""
        return None if self.state is None else self.state.v

    @property
    def tau(self) -> torch.Tensor:
        """``[C]`` current membrane time constants."""
        return 1.0 / torch.sigmoid(self.a.detach())

    def run(self, x: torch.Tensor, mix: torch.Tensor | None = None,
            state: LayerState | None = None) -> tuple[torch.Tensor, LayerState]:
        """Spike counts ``[T, B, C, ...]`` for input current ``x [T, B, C, ...]``, after temporal mixing
        with taps ``mix [C, k_t]`` if given, continuing from ``state`` (rest when None); and the final state."""
        v0, past = (None, None) if state is None else state
        spikes, v, past = self._tail(x, mix, v0=v0, past=past, return_state=True)
        return spikes, LayerState(v, past)

    def _tail(self, x: torch.Tensor, mix: torch.Tensor | None, **state):
        return ops.scb_tail(x, mix, torch.sigmoid(self.a), self.v_th, self.K, self.reset_mode, self.detach_reset,
                            self.surrogate, self.alpha, backend=self.backend, **state)

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        """Spike counts for input current ``x`` (``step_mode`` decides its shape and where it starts)."""
        if self.step_mode == "s":
            spikes, self.state = self.run(x[None], mix, self.state)
            return spikes[0]
        # A whole sequence from rest: the fused kernel, which keeps no state (``run`` returns it).
        return self._tail(x, mix)

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
    Its state and step mode are its neuron's (``self.lif``).
    Shapes: ``[T, B, in_channels, H, W] -> [T, B, out_channels, H, W]`` (spike counts; ``"s"``: ``[B, ...]``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, k_t: int = 2,
                 folded: bool = False, **lif_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=folded)
        self.bn: nn.Module = nn.Identity() if folded else nn.BatchNorm2d(out_channels)
        self.mix = TemporalMix(out_channels, k_t)
        self.lif = MultiThresholdLIF(out_channels, **lif_kwargs)

    def current(self, x: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        """Conv + BN of ``[T, B, C_in, H, W]`` -> ``[T, B, C_out, H, W]``, all T * B frames in one batch,
        or one step at a time with ``per_step`` (oneDNN's rounding depends on the batch size, so a
        step then gives the same bits whether it is computed alone, as in streaming, or with others)."""
        if per_step:
            return torch.stack([self.bn(self.conv(frame)) for frame in x])
        return self.bn(self.conv(x.flatten(0, 1))).unflatten(0, x.shape[:2])

    def run(self, x: torch.Tensor, state: LayerState | None = None,
            per_step: bool = False) -> tuple[torch.Tensor, LayerState]:
        """Spike counts ``[T, B, C_out, H, W]`` continuing from ``state`` (rest when None), and the final state."""
        return self.lif.run(self.current(x, per_step), self.mix.weight, state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lif.step_mode == "s":
            return self.lif(self.bn(self.conv(x)), mix=self.mix.weight)
        return self.lif(self.current(x), mix=self.mix.weight)

    def reset_state(self) -> None:
        self.lif.reset_state()

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


def set_step_mode(module: nn.Module, mode: str) -> nn.Module:
    """Put every spiking layer inside ``module``, and every container that dispatches on a ``step_mode`` of
    its own (``StcNetwork``), in step mode ``"m"`` or ``"s"``, at rest; returns it."""
    check_step_mode(mode)
    for m in module.modules():
        if isinstance(m, MultiThresholdLIF) or isinstance(getattr(m, "step_mode", None), str):
            m.step_mode = mode
            m.reset_state()
    return module


def reset_state(module: nn.Module) -> nn.Module:
    """Put every spiking layer inside ``module`` at rest (SpikingJelly's ``reset_net``); returns it."""
    for m in module.modules():
        if isinstance(m, MultiThresholdLIF):
            m.reset_state()
    return module
