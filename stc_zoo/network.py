"""The spiking network of docs/DESIGN.md: a plain ``nn.Module`` on compressed input.

``StcNetwork`` takes ``[T, B, 2, H', W']`` synaptic current (what ``SpatioTemporalCompression``
makes) and returns ``[B, num_classes]`` logits, the mean over the T steps. It knows nothing of
events, files or the Hub: ``stc_zoo.StcSNN`` puts the input pipeline in front of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from .config import NetworkConfig
from .errors import InputError
from .kernels import ops
from .layers import LayerState, MultiThresholdLIF, SynapticConvBlock, check_step_mode, set_step_mode

# Layer name (as in named_modules: "blocks.0.lif", ..., "lif") -> that layer's state.
NetworkState = dict[str, LayerState]


class Steps(NamedTuple):
    """What ``StcNetwork.forward_steps`` returns."""

    logits: torch.Tensor  # [T, B, num_classes], each step's logits (forward() returns their mean)
    state: NetworkState  # every spiking layer's state after the last step
    spikes: dict[str, torch.Tensor] | None  # layer name -> [T, B, C, ...] spike counts, when recorded


class StcNetwork(nn.Module):
    """SCBs with 2x2 pooling, then ``Linear -> MT-LIF -> Linear``; logits averaged over the steps.

    Args:
        config: the architecture.
        input_size: ``(H', W')`` of the compressed frames it takes.
        steps: the number of steps T it takes; None accepts any.
        backend: ``"auto"``, ``"triton"``, ``"numba"`` or ``"torch"`` (``set_backend``). Inference on
            a CPU runs the Numba kernels (``stc_zoo.network_numba``) under ``"auto"``.
    Shapes: ``[T, B, 2, H', W'] -> [B, num_classes]``. In step mode ``"s"`` (``set_step_mode``)
    ``forward`` takes one step ``[B, 2, H', W']``, returns that step's logits and keeps the state
    for the next call until ``reset_state()``; ``forward_steps`` is the explicit-state form.
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
        self.pool = pool_layer(config.pool)
        H, W = self.input_size
        features = c_in * (H >> len(blocks)) * (W >> len(blocks))
        self.dropout = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(features, config.hidden)
        self.lif = MultiThresholdLIF(config.hidden, **lif)
        self.fc2 = nn.Linear(config.hidden, config.num_classes)
        self.step_mode, self.state = "m", None
        self.set_backend(backend)

    def set_backend(self, backend: str) -> StcNetwork:
        """Use ``"auto"``, ``"triton"``, ``"numba"`` or ``"torch"`` in every spiking layer; returns self."""
        ops.check_backend(backend)
        self.backend = backend
        for module in self.modules():
            if isinstance(module, MultiThresholdLIF):
                module.backend = backend
        return self

    def set_step_mode(self, mode: str) -> StcNetwork:
        """``"m"``: ``forward`` takes ``[T, B, 2, H', W']``; ``"s"``: one step ``[B, 2, H', W']`` at a
        time, state carried between calls. Starts at rest; returns self."""
        check_step_mode(mode)
        return set_step_mode(self, mode)

    def reset_state(self) -> StcNetwork:
        """Forget the state of step mode ``"s"``: the next step starts from rest. Returns self."""
        self.state = None
        return self

    @property
    def device(self) -> torch.device:
        return self.fc1.weight.device

    def check_input(self, x: torch.Tensor, finite: bool = True, check_steps: bool = False) -> None:
        """Raise InputError unless ``x`` is a finite float ``[T, B, 2, H', W']`` on this network's device.

        Finiteness is not checked under ``torch.compile`` or CUDA-graph capture (it would sync), nor
        with ``finite=False`` (the Numba path checks it inside its first kernel, for free).
        """
        # Only forward() in step mode "m" averages a whole recording, so only it holds x to the fixed T
        # (check_steps); forward_steps with a carried state, and step mode "s", take any number of steps.
        steps = self.steps if check_steps else None
        expected = (steps or "T", "B", 2, *self.input_size)
        if not isinstance(x, torch.Tensor):
            raise InputError(f"expected a tensor [T, B, 2, H, W] = {expected}, got {type(x).__name__}")
        if (x.ndim != 5 or x.shape[2] != 2 or tuple(x.shape[3:]) != self.input_size
                or (steps is not None and x.shape[0] != steps)):
            raise InputError(f"expected input [T, B, 2, H, W] = {expected}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"expected a floating-point input, got {x.dtype}")
        if x.device != self.device:
            raise InputError(f"input is on {x.device}, model on {self.device}")
        if not finite or torch.compiler.is_compiling() or (x.is_cuda and torch.cuda.is_current_stream_capturing()):
            return
        if not torch.isfinite(x).all():
            raise InputError("input holds NaN or Inf")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, 2, H', W']`` synaptic current -> ``[B, num_classes]`` logits (the mean over the steps).

        In step mode ``"s"``: ``[B, 2, H', W']`` -> that step's logits, continuing from the last call.
        """
        if self.step_mode == "s":
            if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_exporting():
                # the state lives in Python between calls: a traced graph would hold the state at rest as a
                # constant, right at step 0 and wrong at every later step
                raise InputError("a network in step mode 's' carries its state in Python between calls, which an "
                                 "exported or traced graph would freeze at rest; export forward_steps with the "
                                 "state as inputs and outputs instead (stc-zoo export MODEL --format onnx)")
            if not isinstance(x, torch.Tensor) or x.ndim != 4:
                raise InputError(f"step mode 's' takes one step [B, 2, H, W], got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            steps = self.forward_steps(x[None], self.state)
            self.state = steps.state
            return steps.logits[0]
        self.check_input(x, finite=False, check_steps=True)
        return self.forward_steps(x, return_state=False).logits.mean(0)

    def uses_numba(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` runs the Numba inference path (CPU, eval mode, no gradient needed)."""
        if self.training:
            return False
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        return ops.resolve_backend(self.backend, x.device, needs_grad) == "numba"

    def forward_steps(self, x: torch.Tensor, state: NetworkState | None = None, record: bool = False,
                      return_state: bool = True) -> Steps:
        """Each step's logits for ``x [T, B, 2, H', W']``, continuing from ``state`` (rest when None).

        Feeding a sequence in pieces, each with the state the previous piece returned, gives the
        same bits as feeding it whole (for a given backend; tests check it). ``record``: also
        return every spiking layer's spike counts. ``return_state=False`` leaves ``Steps.state``
        None (saves building it).
        """
        numba_path = isinstance(x, torch.Tensor) and self.uses_numba(x)
        self.check_input(x, finite=not numba_path)
        state = state or {}
        if numba_path:
            from . import network_numba

            steps = Steps(*network_numba.forward_steps(self, x, state, record, return_state))
        else:
            steps = self._reference_steps(x.to(self.fc1.weight.dtype), state, record, keep_state=return_state or bool(state))
        return steps if return_state else steps._replace(state=None)

    def _reference_steps(self, x: torch.Tensor, state: NetworkState, record: bool,
                         per_step: bool | None = None, keep_state: bool = True) -> Steps:
        # Outside training on a CPU, frames go through conv and linear layers one step at a time, so
        # a step's bits do not depend on the chunk it came in (oneDNN rounds by batch size).
        if per_step is None:
            per_step = not self.training and x.device.type == "cpu"
        # A sequence from rest whose final state nobody keeps (forward(), training) goes through the layers'
        # fused op (the Triton kernel on CUDA); a stateful one through ``run``, whose state the Triton
        # kernel does not return (the reference computes it: ops.scb_tail).
        new_state, spikes = {}, {}
        for i, block in enumerate(self.blocks):
            name = f"blocks.{i}.lif"
            if keep_state:
                x, new_state[name] = block.run(x, state.get(name), per_step)
            else:
                x = _fused(block.lif, block.current(x, per_step), block.mix.weight)
            if record:
                spikes[name] = x.detach()
            x = self.pool(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        x = self.dropout(x.flatten(2))
        x = torch.stack([self.fc1(f) for f in x]) if per_step else self.fc1(x)
        if keep_state:
            x, new_state["lif"] = self.lif.run(x, state=state.get("lif"))
        else:
            x = _fused(self.lif, x, None)
        if record:
            spikes["lif"] = x.detach()
        logits = torch.stack([self.fc2(f) for f in x]) if per_step else self.fc2(x)
        return Steps(logits, new_state, spikes if record else None)

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


def pool_layer(kind: str) -> nn.Module:
    """2x2 pooling of spike counts: ``"max"``, ``"avg"`` or ``"sum"`` (NIR's SumPool2d; an average divides
    the next layer's input by 4, which a network of one-threshold neurons has to learn back)."""
    if kind == "max":
        return nn.MaxPool2d(2)
    return nn.AvgPool2d(2, divisor_override=1 if kind == "sum" else None)


def _fused(lif: MultiThresholdLIF, x: torch.Tensor, mix: torch.Tensor | None) -> torch.Tensor:
    """``lif``'s fused op on a whole sequence from rest, through the module call where its step mode
    allows, so that forward hooks see every spiking layer (NeuroBench's activation hooks, a user's)."""
    return lif(x, mix) if lif.step_mode == "m" else lif._tail(x, mix)


def record_spikes(network: StcNetwork, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """Logits ``[B, classes]`` and the spike counts of every MT-LIF layer (name, ``[T, B, ...]`` on CPU)."""
    with torch.no_grad():
        steps = network.forward_steps(x, record=True, return_state=False)  # stateless: the fused kernels
    return steps.logits.mean(0), [(name, s.float().cpu()) for name, s in steps.spikes.items()]
