"""What a decision costs, in the terms SNN papers and hardware teams compare: synaptic operations,
activation sparsity, membrane updates and the footprint, per layer and in total, averaged over
recordings (NeuroBench's definitions where they apply; ``docs/METRICS.md`` states each beside
NeuroBench's and where they differ).

Synaptic operations of a connection layer (conv or linear), per recording, summed over its steps:

- ``dense``: the connections a dense network of this shape computes, every input and every weight
  (a conv's zero padding is no input). NeuroBench's ``Dense``.
- ``nonzero``: the connections from non-zero inputs through non-zero weights: each such input
  multiplies its weights once. For a layer fed by the compressed events (real-valued current) these
  are its **effective MACs**.
- ``spike_acs``: for a layer fed by spike counts (0..K per neuron and step), a count of n as n
  accumulates through each of its non-zero weights: its **effective ACs**. ``nonzero`` for the same
  layer counts a count as one multiply-accumulate, which is what hardware that multiplies by the
  count does. With K = 1 the two are equal.

Activation sparsity: the fraction of zero outputs of a spiking layer over its neurons, steps and
recordings. Membrane updates: neurons x steps (every membrane leaks and integrates every step).
Footprint: bytes of the network's parameters and buffers; connection sparsity: the fraction of
zero weights of its conv and linear layers.

The spikes come from ``forward_steps(record=True)``, so any backend gives the same numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConnectionCost", "NeuronCost", "Profile", "decision_steps", "in_batches", "layer_costs", "profile",
           "static_cost", "step_costs"]


@dataclass
class ConnectionCost:
    """A conv or linear layer's synaptic operations per recording (``nonzero`` etc. as in the module
    docstring); ``per_step``: the effective operations (MACs or ACs) of each step, averaged."""

    name: str  # e.g. "blocks.0.conv", "fc1"
    input: str  # "current" (the compressed events) or "spikes" (a spiking layer's counts)
    dense: float = 0.0
    nonzero: float = 0.0
    spike_acs: float = 0.0
    per_step: list[float] = field(default_factory=list)

    @property
    def effective_macs(self) -> float:
        return self.nonzero if self.input == "current" else 0.0

    @property
    def effective_acs(self) -> float:
        return self.spike_acs if self.input == "spikes" else 0.0


@dataclass
class NeuronCost:
    """A spiking layer's activity per recording."""

    name: str  # e.g. "blocks.0.lif"
    neurons: int  # per step
    steps: float  # per recording
    spikes: float = 0.0  # summed counts per recording
    active: float = 0.0  # non-zero outputs (neuron-steps that fired) per recording

    @property
    def membrane_updates(self) -> float:
        return self.neurons * self.steps

    @property
    def sparsity(self) -> float:
        """Fraction of zero outputs (NeuroBench's activation sparsity, this layer alone)."""
        total = self.neurons * self.steps
        return 1.0 - self.active / total if total else 0.0


@dataclass
class Profile:
    """Per-recording averages over ``recordings`` recordings of ``steps`` steps each."""

    recordings: int
    steps: int
    connections: list[ConnectionCost]
    neurons: list[NeuronCost]
    parameters: int
    footprint_bytes: int
    connection_sparsity: float
    # With a decision rule: per recording, the step it decided at (None: never) and the effective
    # synaptic operations until then (every step when it never decided).
    decisions: list[tuple[int | None, float]] | None = None

    @property
    def dense(self) -> float:
        return sum(c.dense for c in self.connections)

    @property
    def effective_macs(self) -> float:
        return sum(c.effective_macs for c in self.connections)

    @property
    def effective_acs(self) -> float:
        return sum(c.effective_acs for c in self.connections)

    @property
    def spike_macs(self) -> float:
        """The spike-fed layers' operations counted once per non-zero input (one MAC by the count)."""
        return sum(c.nonzero for c in self.connections if c.input == "spikes")

    @property
    def membrane_updates(self) -> float:
        return sum(n.membrane_updates for n in self.neurons)

    @property
    def activation_sparsity(self) -> float:
        """Zero outputs over all outputs of every spiking layer (NeuroBench's ActivationSparsity)."""
        total = sum(n.neurons * n.steps for n in self.neurons)
        return 1.0 - sum(n.active for n in self.neurons) / total if total else 0.0

    def per_step(self) -> list[float]:
        """Effective synaptic operations (MACs + ACs) of each step, averaged over the recordings."""
        return [float(sum(v)) for v in zip(*(c.per_step for c in self.connections))]

    def decision_summary(self) -> dict | None:
        """Median decision step (1-based) and operations until the decision, over the decided recordings."""
        if self.decisions is None:
            return None
        decided = [(s, ops) for s, ops in self.decisions if s is not None]
        return {"decided": len(decided), "undecided": len(self.decisions) - len(decided),
                "median_steps": float(np.median([s + 1 for s, _ in decided])) if decided else None,
                "median_synops_until_decision": float(np.median([ops for _, ops in decided])) if decided else None,
                "mean_synops_until_decision": float(np.mean([ops for _, ops in decided])) if decided else None}

    def to_dict(self) -> dict:
        layers = [{**dataclasses.asdict(c), "effective_macs": c.effective_macs, "effective_acs": c.effective_acs}
                  for c in self.connections]
        neurons = [{**dataclasses.asdict(n), "membrane_updates": n.membrane_updates, "sparsity": n.sparsity}
                   for n in self.neurons]
        return {"recordings": self.recordings, "steps": self.steps, "dense_macs": self.dense,
                "effective_macs": self.effective_macs, "effective_acs": self.effective_acs,
                "spike_inputs_as_macs": self.spike_macs, "membrane_updates": self.membrane_updates,
                "activation_sparsity": self.activation_sparsity, "parameters": self.parameters,
                "footprint_bytes": self.footprint_bytes, "connection_sparsity": self.connection_sparsity,
                "per_step_synops": self.per_step(), "decision": self.decision_summary(),
                "connections": layers, "neurons": neurons}


def _ops(layer: nn.Module, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``layer``'s connections from ``inputs [N, ...]`` through ``weight``, per output, summed per frame
    ``[N]`` (float64: counts stay exact up to 2**53). No bias: a bias is no synaptic operation."""
    inputs, weight = inputs.double(), weight.double()
    if isinstance(layer, nn.Conv2d):
        out = F.conv2d(inputs, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    else:
        out = F.linear(inputs, weight)
    return out.flatten(1).sum(1)


def layer_costs(layer: nn.Module, x: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
    """Operations of ``layer`` on ``x [T, B, ...]``: each ``[T, B]``, plus each step's largest input."""
    T, B = x.shape[:2]
    frames = x.flatten(0, 1)
    w = layer.weight.detach()
    nonzero_w = (w != 0).to(frames.dtype)
    counts = {"dense": _ops(layer, torch.ones_like(frames[:1]), torch.ones_like(w)).expand(T * B),
              "nonzero": _ops(layer, (frames != 0).to(frames.dtype), nonzero_w),
              "spike_acs": _ops(layer, frames, nonzero_w) if kind == "spikes" else torch.zeros(T * B),
              "max": frames.flatten(1).abs().amax(1)}
    return {k: v.reshape(T, B).double() for k, v in counts.items()}


@torch.no_grad()
def step_costs(network, x: torch.Tensor) -> tuple[dict[str, dict], dict[str, torch.Tensor], torch.Tensor]:
    """Per layer and per ``(step, recording)`` costs of ``x [T, B, 2, H, W]`` through ``network``:
    ``(connections, spikes, logits)``: connections name -> {"input", "dense", "nonzero", "spike_acs",
    "max"} (each ``[T, B]``; ``max``: the largest input, what tells NeuroBench spikes from currents),
    spikes name -> the layer's counts ``[T, B, ...]``, logits ``[T, B, classes]``."""
    steps = network.forward_steps(x, record=True, return_state=False)
    spikes = {name: s.float() for name, s in steps.spikes.items()}
    conns, h, kind = {}, x.to(network.fc1.weight.dtype), "current"
    for i, block in enumerate(network.blocks):
        conns[f"blocks.{i}.conv"] = {"input": kind, **layer_costs(block.conv, h, kind)}
        s = spikes[f"blocks.{i}.lif"]
        h, kind = network.pool(s.flatten(0, 1)).unflatten(0, s.shape[:2]), "spikes"
    conns["fc1"] = {"input": kind, **layer_costs(network.fc1, h.flatten(2), kind)}
    conns["fc2"] = {"input": "spikes", **layer_costs(network.fc2, spikes["lif"], "spikes")}
    return conns, spikes, steps.logits


def static_cost(network: nn.Module) -> tuple[int, int, float]:
    """``(parameters, footprint bytes of parameters and buffers, connection sparsity)`` of ``network``."""
    params = sum(p.numel() for p in network.parameters())
    footprint = sum(t.numel() * t.element_size() for t in (*network.parameters(), *network.buffers()))
    weights = [m.weight for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return params, footprint, zeros / max(sum(w.numel() for w in weights), 1)


def _effective(c: dict) -> torch.Tensor:
    """A layer's effective operations ``[T, B]``: MACs when fed the current, ACs when fed spikes."""
    return c["nonzero"] if c["input"] == "current" else c["spike_acs"]


def effective_per_step(conns: dict[str, dict]) -> torch.Tensor:
    """Effective synaptic operations (MACs of current-fed layers + ACs of spike-fed ones) ``[T, B]``."""
    return sum(_effective(c) for c in conns.values())


def in_batches(X: torch.Tensor, batch_size: int):
    """Time-major batches ``[T, b, ...]`` of a compressed dataset ``X [N, T, ...]``, for ``profile``."""
    return (X[i:i + batch_size].transpose(0, 1) for i in range(0, len(X), batch_size))


def decision_steps(logits: torch.Tensor, threshold: float | None, min_steps: int, T: int) -> list[int | None]:
    """Per recording of ``logits [steps, B, classes]``, the 0-based step at which a streaming session with
    this rule decides (``stream.decides`` on ``stream.running_probs``), None when it never does."""
    from .stream import decides, running_probs

    sums = np.cumsum(logits.detach().double().numpy(), axis=0)
    out = []
    for b in range(logits.shape[1]):
        out.append(next((t for t in range(len(sums)) if decides(
            t + 1, float(running_probs(sums[t, b], t + 1).max()), threshold, min_steps, T)), None))
    return out


def profile(network, batches, rule: tuple[float | None, int, int] | None = None) -> Profile:
    """Averages per recording over ``batches``, an iterable of ``x [T, B, 2, H, W]`` compressed recordings.
    ``rule``: ``(threshold, min_steps, T)`` of a streaming decision (``StcSNN.stream``'s, T the step it
    decides at without a threshold); then the profile also holds each recording's decision step and the
    operations until it."""
    sums: dict[str, dict] = {}
    neurons: dict[str, NeuronCost] = {}
    decisions: list[tuple[int | None, float]] = []
    recordings, T = 0, 0
    for x in batches:
        conns, spikes, logits = step_costs(network, x)
        T, B = x.shape[:2]
        recordings += B
        for name, c in conns.items():
            total = sums.setdefault(name, {"input": c["input"], "dense": 0.0, "nonzero": 0.0, "spike_acs": 0.0,
                                           "per_step": np.zeros(T)})
            for key in ("dense", "nonzero", "spike_acs"):
                total[key] += float(c[key].sum())
            total["per_step"] = total["per_step"] + _effective(c).sum(1).numpy()
        for name, s in spikes.items():
            n = neurons.setdefault(name, NeuronCost(name, int(np.prod(s.shape[2:])), T))
            n.spikes += float(s.sum())
            n.active += float((s != 0).sum())
        if rule is not None:
            ops = effective_per_step(conns).cumsum(0)
            for b, step in enumerate(decision_steps(logits, *rule)):
                decisions.append((step, float(ops[T - 1 if step is None else step, b])))
    if not recordings:
        raise ValueError("profile: no recordings given")
    connections = [ConnectionCost(name, t["input"], t["dense"] / recordings, t["nonzero"] / recordings,
                                  t["spike_acs"] / recordings, (t["per_step"] / recordings).tolist())
                   for name, t in sums.items()]
    for n in neurons.values():
        n.spikes /= recordings
        n.active /= recordings
    return Profile(recordings, T, connections, list(neurons.values()), *static_cost(network),
                   decisions if rule is not None else None)
