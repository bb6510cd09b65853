"""The spiking network of docs/DESIGN.md: a plain ``nn.Module`` on compressed input.

``StcNetwork`` takes ``[T, B, 2, H', W']`` synaptic current (what ``SpatioTemporalCompression``
makes) and returns ``[B, num_classes]`` logits, the mean over the T steps. It knows nothing of
events, files or the Hub: ``stc_zoo.StcSNN`` puts the input pipeline in front of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .config import NetworkConfig
from .errors import InputError
from .kernels import ops
from .layers import MultiThresholdLIF, SynapticConvBlock


class StcNetwork(nn.Module):
    """SCBs with 2x2 pooling, then ``Linear -> MT-LIF -> Linear``; logits averaged over the steps.

    Args:
        config: the architecture.
        input_size: ``(H', W')`` of the compressed frames it takes.
        steps: the number of steps T it takes; None accepts any.
        backend: ``"auto"``, ``"triton"`` or ``"torch"`` for the fused SCB tails (``set_backend``).
    Shapes: ``[T, B, 2, H', W'] -> [B, num_classes]``.
    """

    def __init__(self, config: NetworkConfig, input_size: tuple[int, int], steps: int | None = None,
                 backend: str = "auto"):
        super().__init__()
        self.config, self.input_size, self.steps = config, tuple(input_size), steps
        lif = config.neuron_kwargs()
        blocks, c_in = [], 2
        for c_out in config.channels:
            blocks.append(SynapticConvBlock(c_in, c_out, config.kernel_size, config.k_t, **lif))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2) if config.pool == "max" else nn.AvgPool2d(2)
        H, W = self.input_size
        features = c_in * (H >> len(blocks)) * (W >> len(blocks))
        self.dropout = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(features, config.hidden)
        self.lif = MultiThresholdLIF(config.hidden, **lif)
        self.fc2 = nn.Linear(config.hidden, config.num_classes)
        self.set_backend(backend)

    def set_backend(self, backend: str) -> StcNetwork:
        """Use ``"auto"``, ``"triton"`` or ``"torch"`` in every spiking layer; returns self."""
        ops.check_backend(backend)
        for module in self.modules():
            if isinstance(module, MultiThresholdLIF):
                module.backend = backend
        return self

    @property
    def device(self) -> torch.device:
        return self.fc1.weight.device

    def check_input(self, x: torch.Tensor) -> None:
        """Raise InputError unless ``x`` is a finite float ``[T, B, 2, H', W']`` on this network's device.

        Finiteness is not checked under ``torch.compile`` or CUDA-graph capture (it would sync).
        """
        expected = (self.steps or "T", "B", 2, *self.input_size)
        if not isinstance(x, torch.Tensor):
            raise InputError(f"expected a tensor [T, B, 2, H, W] = {expected}, got {type(x).__name__}")
        if (x.ndim != 5 or x.shape[2] != 2 or tuple(x.shape[3:]) != self.input_size
                or (self.steps is not None and x.shape[0] != self.steps)):
            raise InputError(f"expected input [T, B, 2, H, W] = {expected}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"expected a floating-point input, got {x.dtype}")
        if x.device != self.device:
            raise InputError(f"input is on {x.device}, model on {self.device}")
        if torch.compiler.is_compiling() or (x.is_cuda and torch.cuda.is_current_stream_capturing()):
            return
        if not torch.isfinite(x).all():
            raise InputError("input holds NaN or Inf")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, 2, H', W']`` synaptic current -> ``[B, num_classes]`` logits."""
        self.check_input(x)
        x = x.to(self.fc1.weight.dtype)
        for block in self.blocks:
            x = block(x)
            x = self.pool(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        x = self.fc1(self.dropout(x.flatten(2)))
        return self.fc2(self.lif(x)).mean(0)

    # ------------------------------------------------------------------ checkpoint form
    @property
    def bn_folded(self) -> bool:
        """Whether every BatchNorm has been folded into its conv (the inference form)."""
        return not any(isinstance(m, nn.BatchNorm2d) for m in self.modules())

    def fold_batchnorm(self) -> StcNetwork:
        """Fold every BatchNorm into its conv (idempotent); use in eval mode. Returns self."""
        for block in self.blocks:
            block.fold_batchnorm()
        return self

    def match_form(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take the form (BatchNorm folded or not) of the state dict about to be loaded.

        A folded checkpoint has conv biases and no BatchNorm tensors; the config does not say which.
        """
        if any(k.startswith("blocks.") and k.endswith(".conv.bias") for k in state):
            self.fold_batchnorm()


def record_spikes(network: StcNetwork, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """Logits ``[B, classes]`` and the spike counts of every MT-LIF layer (name, ``[T, B, ...]`` on CPU)."""
    spikes, hooks = [], []
    for name, module in network.named_modules():
        if isinstance(module, MultiThresholdLIF):
            hooks.append(module.register_forward_hook(
                lambda m, i, out, name=name: spikes.append((name, out.detach().float().cpu()))))
    try:
        with torch.no_grad():
            logits = network(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, spikes
