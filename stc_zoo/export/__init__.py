"""A zoo model in other frameworks' forms, one module per target (docs/DESIGN.md).

- ``to_onnx``: a single-step graph with explicit state and a whole-recording graph, for onnxruntime.

Each exporter turns ``StcNetwork.forward_steps`` (the explicit-state step) into its target's form and
refuses, with the reason, what the target cannot express; the model itself knows nothing of them.
"""

from __future__ import annotations


def onnx(model, path, dtype: str = "float32"):
    """``stc_zoo.export.to_onnx.export_onnx``: the graphs, input.json and a README in folder ``path``."""
    from .to_onnx import export_onnx

    return export_onnx(model, path, dtype)
