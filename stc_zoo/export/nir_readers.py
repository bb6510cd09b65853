"""Running an exported NIR graph in the peers that read NIR: snnTorch, Norse and Sinabs.

What each reader needs to be fed (its own time layout, state handling and reset between recordings) in one
place, so the export's tests, ``benchmarks/nir_readers.py`` and a user comparing the runtimes call them the
same way. Each ``run_*`` takes the graph of the matching ``reader=`` variant (``to_nir.nir_graph``) and
``x [T, B, 2, H', W']`` (float32 steps of synaptic current from rest) and returns ``(logits [T, B, classes],
spikes)``: every LIF layer's output ``[T, B, ...]`` in the order the graph runs them. ``load_*`` builds the
reader's module once (what a user keeps); ``run_*`` takes the graph or such a module. The readers are
optional: none is a dependency of the package (docs/EXPORT.md says how to install them).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch


@contextlib.contextmanager
def _hooks(net: torch.nn.Module, kinds):
    """Record the output of every module of ``kinds`` in call order while in the block (forward hooks, removed
    after it, so a module run again does not collect them)."""
    seen: list[torch.Tensor] = []
    handles = [module.register_forward_hook(
        lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out).detach()))
        for module in net.modules() if isinstance(module, kinds)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _per_layer(seen: list[torch.Tensor], T: int) -> list[np.ndarray]:
    """Hook outputs recorded step by step (layer order within a step) -> per layer ``[T, B, ...]``."""
    layers = len(seen) // T
    return [np.stack([seen[t * layers + j].numpy() for t in range(T)]) for j in range(layers)]


def load_snntorch(graph) -> torch.nn.Module:
    """snnTorch 1.0's ``import_from_nir`` of ``graph``."""
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        return import_from_nir(graph)


def run_snntorch(graph, x: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """snnTorch 1.0 (neurons with hidden state, one call per step, reset first)."""
    import snntorch
    from snntorch import utils

    net = graph if isinstance(graph, torch.nn.Module) else load_snntorch(graph)
    utils.reset(net)
    out = []
    with torch.no_grad(), _hooks(net, snntorch.Leaky) as seen:
        for xt in x:
            o = net(xt)
            out.append((o[0] if isinstance(o, tuple) else o).numpy())
    return np.stack(out), _per_layer(seen, x.shape[0])


def load_norse(graph, dt: float) -> torch.nn.Module:
    """Norse 1.1's ``from_nir`` of ``graph`` with the export's ``dt``."""
    import norse.torch

    return norse.torch.from_nir(graph, dt=dt)


def run_norse(graph, x: torch.Tensor, dt: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Norse 1.1 (state passed explicitly, from rest)."""
    from norse.torch.module.lif_box import LIFBoxCell

    net = graph if isinstance(graph, torch.nn.Module) else load_norse(graph, dt)
    state, out = None, []
    with torch.no_grad(), _hooks(net, LIFBoxCell) as seen:
        for xt in x:
            o, state = net(xt, state)
            out.append(o.numpy())
    return np.stack(out), _per_layer(seen, x.shape[0])


def load_sinabs(graph, batch: int, one_spike: bool = False) -> torch.nn.Module:
    """Sinabs 3.1's ``from_nir`` of ``graph`` for batches of ``batch``; ``one_spike``: see ``run_sinabs``."""
    import sinabs
    from sinabs.activation import MembraneReset, SingleSpike

    net = sinabs.from_nir(graph, batch_size=batch)
    if one_spike:
        for module in net.modules():
            if isinstance(module, sinabs.layers.LIFSqueeze):
                module.spike_fn, module.reset_fn = SingleSpike, MembraneReset()
    return net


def run_sinabs(graph, x: torch.Tensor, one_spike: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sinabs 3.1's ``from_nir`` (``[B * T, ...]`` batch-major, state reset first). Its LIF neurons fire
    several spikes a step and subtract the threshold; ``one_spike`` swaps in one spike a step and a reset to
    zero, the model's neuron (``SingleSpike``, ``MembraneReset``)."""
    import sinabs

    T, B = x.shape[:2]
    net = graph if isinstance(graph, torch.nn.Module) else load_sinabs(graph, B, one_spike)
    for module in net.modules():
        if isinstance(module, sinabs.layers.LIFSqueeze):
            module.reset_states()
    with torch.no_grad(), _hooks(net, sinabs.layers.LIFSqueeze) as seen:
        out = net(x.transpose(0, 1).flatten(0, 1))
    out = (out[0] if isinstance(out, tuple) else out).unflatten(0, (B, T)).transpose(0, 1).numpy()
    return out, [s.unflatten(0, (B, T)).transpose(0, 1).numpy() for s in seen]
