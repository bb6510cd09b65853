"""ONNX: a single-step graph whose state is explicit, and a whole-recording graph.

``step.onnx`` is ``StcNetwork.forward_steps`` for one step: inputs ``x`` (one step of synaptic current
``[B, 2, H', W']``) and one input per state tensor, ``state.<layer>.<part>`` (each spiking layer's
membrane ``v`` and, where it mixes over time, its last ``k_t - 1`` inputs ``past``); outputs ``logits``
(that step's ``[B, classes]``) and ``next_state.<layer>.<part>``, which the caller feeds back as the
next step's state. Zeros are rest. ``sequence.onnx`` takes a whole recording ``[T, B, 2, H', W']`` (T
fixed at the model's) from rest and returns the mean of its steps' logits, as ``model.predict`` does.
The batch size is dynamic in both. BatchNorm is folded into the convs first.

The compression of events into steps of synaptic current stays in the package (``model.compress``,
``model.stream()``'s binning); ``input.json`` records its parameters and the README says how to write
it elsewhere. Every export is checked before it is kept: onnxruntime runs both graphs on random
input and must agree with the package (the same spikes in float64, logits within rounding in float32),
so a graph that froze its state or dropped a step is never written.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import replace_folder_atomically
from ..errors import ExportError
from ..layers import LayerState

STEP_FILE, SEQUENCE_FILE, INPUT_FILE, README_FILE = "step.onnx", "sequence.onnx", "input.json", "README.md"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
OPSET = 18


def state_layout(network) -> list[tuple[str, str, tuple[int, ...]]]:
    """``(layer, part, shape at batch 1)`` of every non-empty state tensor, in the graphs' order."""
    x = torch.zeros(1, 1, 2, *network.input_size, dtype=network.fc1.weight.dtype)
    with torch.no_grad():
        state = network.forward_steps(x).state
    return [(layer, part, tuple(getattr(s, part).shape)) for layer, s in state.items() for part in ("v", "past")
            if getattr(s, part) is not None and getattr(s, part).numel()]


class StepGraph(nn.Module):
    """One step with the state as inputs and outputs: ``(x, [state...]) -> (logits, [next_state...])``."""

    def __init__(self, network, layout):
        super().__init__()
        self.network, self.layout = network, layout

    def forward(self, x: torch.Tensor, states: list[torch.Tensor]):
        given = dict(zip([(layer, part) for layer, part, _ in self.layout], states))
        state = {}
        for layer in dict.fromkeys(layer for layer, _, _ in self.layout):
            v = given[(layer, "v")]
            past = given.get((layer, "past"))
            if past is None:  # a layer without mixing carries an empty history
                past = v.new_zeros((0, *v.shape))
            state[layer] = LayerState(v, past)
        steps = self.network._reference_steps(x[None], state, record=False, per_step=False, keep_state=True)
        return steps.logits[0], [getattr(steps.state[layer], part) for layer, part, _ in self.layout]


class SequenceGraph(nn.Module):
    """A whole recording from rest: ``[T, B, 2, H', W'] -> [B, classes]`` (the mean of the steps' logits)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network._reference_steps(x, {}, record=False, per_step=False, keep_state=False).logits.mean(0)


def inference_copy(model, dtype: torch.dtype):
    """The model's network as the graphs compute it: a copy, BatchNorm folded, the PyTorch reference, eval.
    ExportError when the network no longer matches the model's config (a swapped head, an edited layer):
    the files would describe a model its own input.json does not."""
    check_matches_config(model)
    network = copy.deepcopy(model.network).cpu().eval()
    network.set_step_mode("m")
    network.fold_batchnorm()
    network.set_backend("torch")
    return network.to(dtype)


def check_matches_config(model) -> None:
    """ExportError unless ``model.network`` has exactly the tensors its config's network has."""
    from ..errors import CheckpointError
    from ..hub.checkpoint import check_state
    from ..network import StcNetwork

    fresh = StcNetwork(model.config.network, model.config.input.output_size)
    state = model.network.state_dict()
    fresh.match_form(state)
    try:
        check_state(fresh.state_dict(), state, "refusing to export a model that does not match its config")
    except CheckpointError as err:
        raise ExportError(str(err)) from None


def export_onnx(model, folder: str | os.PathLike, dtype: str = "float32") -> list[Path]:
    """Write ``step.onnx``, ``sequence.onnx``, ``input.json`` and a README into ``folder`` (module docstring);
    returns the files. ExportError if a graph disagrees with the package on its check."""
    try:
        import onnxruntime  # noqa: F401 - the check below needs it; say so before minutes of exporting
        import onnxscript  # noqa: F401 - torch's exporter needs it
    except ImportError as err:
        raise ExportError(f"ONNX export needs onnx, onnxscript and onnxruntime: pip install 'stc-zoo[deploy]' "
                          f"({err})") from None
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(f"{folder}: exists and is not an empty folder; choose another --out or remove it first")
    runtime_runs_conv(dtype)
    network = inference_copy(model, DTYPES[dtype])
    layout = state_layout(network)
    T = model.config.input.T

    def write(tmp: Path) -> None:  # a folder swapped in whole once checked: a failed export leaves nothing
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        x = torch.zeros(2, 2, *network.input_size, dtype=DTYPES[dtype])
        states = [_zeros(shape, part, 2, DTYPES[dtype]) for _, part, shape in layout]
        names = [f"{layer}.{part}" for layer, part, _ in layout]
        with torch.no_grad():
            _export(StepGraph(network, layout), (x, states), tmp / STEP_FILE,
                    ["x", *(f"state.{n}" for n in names)], ["logits", *(f"next_state.{n}" for n in names)],
                    ({0: batch}, [{0 if part == "v" else 1: batch} for _, part, _ in layout]))
            _export(SequenceGraph(network), (torch.zeros(T, 2, 2, *network.input_size, dtype=DTYPES[dtype]),),
                    tmp / SEQUENCE_FILE, ["x"], ["logits"], ({1: batch},))
        check(network, tmp, layout, T, dtype)
        (tmp / INPUT_FILE).write_text(json.dumps(input_description(model, layout, dtype), indent=1))
        (tmp / README_FILE).write_text(readme(model, layout, dtype))

    try:
        replace_folder_atomically(folder, write)
    except OSError as err:  # a parent that is a file, a read-only place, a full disk
        raise ExportError(f"{folder}: cannot write the export there ({type(err).__name__}: {err})") from None
    return [folder / f for f in (STEP_FILE, SEQUENCE_FILE, INPUT_FILE, README_FILE)]


def runtime_runs_conv(dtype: str) -> None:
    """ExportError at once when onnxruntime has no CPU convolution in ``dtype`` (its 1.32 has none in float64):
    the graphs could not be checked, so exporting them would be minutes spent on files that are not kept."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    kind = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", kind, [1, 1, 3, 3]),
                               helper.make_tensor_value_info("w", kind, [1, 1, 1, 1])],
                              [helper.make_tensor_value_info("y", kind, [1, 1, 3, 3])])
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    try:
        ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime's own error types
        raise ExportError(f"onnxruntime {ort.__version__} has no {dtype} convolution on the CPU ({str(err)[:120]}), "
                          f"so a {dtype} export could not be checked; export float32") from None


def _zeros(shape: tuple[int, ...], part: str, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """A state tensor at rest for ``batch`` samples (``v``: batch first; ``past``: [k_t - 1, B, ...])."""
    if part == "v":
        return torch.zeros(batch, *shape[1:], dtype=dtype)
    return torch.zeros(shape[0], batch, *shape[2:], dtype=dtype)


def _export(module, args, path: Path, inputs: list[str], outputs: list[str], dynamic) -> None:
    import logging
    import warnings

    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's own progress and deprecation notes
            program = torch.onnx.export(module, args, dynamo=True, input_names=inputs, output_names=outputs,
                                        dynamic_shapes=dynamic, opset_version=OPSET, verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(path))


def check(network, folder: Path, layout, T: int, dtype: str, batch: int = 3, seed: int = 0) -> None:
    """Run both graphs in onnxruntime on random input of ``batch`` samples and compare with the package:
    ExportError unless they agree (the same spike counts in float64; float32 logits within 1e-4)."""
    import onnxruntime as ort

    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, batch, 2, *network.input_size, generator=gen) * 3).round().to(DTYPES[dtype])
    with torch.no_grad():
        ref = network.forward_steps(x).logits.numpy()
    try:
        step = ort.InferenceSession(str(folder / STEP_FILE), providers=["CPUExecutionProvider"])
        sequence = ort.InferenceSession(str(folder / SEQUENCE_FILE), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types: a missing kernel (float64 Conv), a bad graph
        raise ExportError(f"onnxruntime {ort.__version__} cannot run the {dtype} graphs ({str(err)[:200]}), so they "
                          "cannot be checked and are not kept" + ("; export float32" if dtype != "float32" else "")
                          ) from None
    state = [_zeros(shape, part, batch, DTYPES[dtype]).numpy() for _, part, shape in layout]
    got = []
    for t in range(T):
        out = step.run(None, {"x": x[t].numpy(), **{i.name: s for i, s in zip(step.get_inputs()[1:], state)}})
        got.append(out[0])
        state = out[1:]
    mean = sequence.run(None, {"x": x.numpy()})[0]
    tol = 1e-9 if dtype == "float64" else 1e-4
    for what, a, b in (("step.onnx", np.stack(got), ref), ("sequence.onnx", mean, ref.mean(0))):
        worst = float(np.abs(a - b).max())
        if not worst <= tol:
            raise ExportError(f"{folder / what}: onnxruntime's logits differ from the package's by {worst:.3g} "
                              f"(more than {tol:g}) on its check; the export is not kept")


def input_description(model, layout, dtype: str) -> dict:
    i = model.config.input
    return {"format": "stc-zoo-onnx", "version": 1, "dtype": dtype, "class_names": list(model.config.labels),
            "input": {"sensor_size": list(i.sensor_size), "T": i.T, "ratio": i.ratio, "split_by": i.split_by,
                      "spatial": i.spatial, "decay": i.decay, "step_us": i.step_us,
                      "fit": i.fit, "source_size": list(i.source_size) if i.source_size else None,
                      "x": ["B", 2, *model.network.input_size]},
            "state": [{"name": f"state.{layer}.{part}", "output": f"next_state.{layer}.{part}",
                       "shape": ["B", *shape[1:]] if part == "v" else [shape[0], "B", *shape[2:]]}
                      for layer, part, shape in layout],
            "config": model.config.to_dict()}


def readme(model, layout, dtype: str) -> str:
    i = model.config.input
    H, W = model.network.input_size
    states = "\n".join(f"| `state.{layer}.{part}` | `{['B', *shape[1:]] if part == 'v' else [shape[0], 'B', *shape[2:]]}` |"
                       for layer, part, shape in layout)
    binning = (f"steps of {i.step_us} us from the first event, each split into {i.ratio} fine bins"
               if i.split_by == "duration" else
               f"{i.T * i.ratio} fine bins of equal event {'count' if i.split_by == 'number' else 'duration'} over the "
               "whole recording")
    return f"""# ONNX export of an stc-zoo model

Exported by `stc-zoo export` ({dtype}). BatchNorm is folded into the convs; the graphs give the
package's logits (checked with onnxruntime when exported).

## The input: steps of synaptic current

Events `(x, y, t, p)` from a {i.sensor_size[0]}x{i.sensor_size[1]} sensor are binned into {binning},
sum-pooled {i.spatial}:1 in space, and every {i.ratio} consecutive fine bins are compressed into one step:
`X[k] = sum_(j=0..{i.ratio - 1}) {i.decay}^({i.ratio - 1} - j) * F[k * {i.ratio} + j]`, where `F[b]` counts the
events of each polarity (channel 0: p = 0, channel 1: p = 1) at each pooled pixel in fine bin `b`.
A step is `[2, {H}, {W}]`; `model.compress(events)` in the package computes exactly this, and
`input.json` holds every parameter.

## step.onnx: one step at a time, state explicit

Inputs `x` `[B, 2, {H}, {W}]` and the state below (zeros are rest); outputs `logits` `[B, classes]`
for that step and `next_state.*`, which are the next step's `state.*`.

| state input | shape |
|---|---|
{states}

```python
import numpy as np, onnxruntime as ort
step = ort.InferenceSession("step.onnx")
state = {{i.name: np.zeros([1 if d == "B" else d for d in i.shape], np.{dtype}) for i in step.get_inputs()[1:]}}
for x in steps:                                   # each [1, 2, {H}, {W}]
    logits, *nxt = step.run(None, {{"x": x, **state}})
    state = dict(zip(state, nxt))
```

The prediction after n steps is the class of the mean of the n steps' logits.

## sequence.onnx: a whole recording

Input `x` `[{i.T}, B, 2, {H}, {W}]` ({i.T} steps from rest), output `logits` `[B, classes]`, the mean over the steps.

Classes: {', '.join(model.config.labels)}.
"""
