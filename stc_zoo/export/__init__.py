"""A zoo model in other frameworks' forms, one module per target (docs/DESIGN.md).

- ``to_onnx``: a single-step graph with explicit state and a whole-recording graph, for onnxruntime.
- ``to_nir``: a NIR graph (one-spike LIF neurons, hard reset) for snnTorch, Norse, Sinabs and the chips
  that read NIR, plainly or in the parameterisation one reader needs.

Each exporter turns ``StcNetwork.forward_steps`` (the explicit-state step) into its target's form and
refuses, with the reason, what the target cannot express; the model itself knows nothing of them.
"""

from __future__ import annotations


def onnx(model, path, dtype: str = "float32"):
    """``stc_zoo.export.to_onnx.export_onnx``: the graphs, input.json and a README in folder ``path``."""
    from .to_onnx import export_onnx

    return export_onnx(model, path, dtype)


def nir(model, path, dt: float = 1e-3, reader: str | None = None):
    """``stc_zoo.export.to_nir.export_nir``: ``network.nir``, input.json and a README in folder ``path``; ``reader``
    one of ``"snntorch"``, ``"norse"``, ``"sinabs"`` for the parameterisation that reader needs."""
    from .to_nir import export_nir

    return export_nir(model, path, dt, reader)
