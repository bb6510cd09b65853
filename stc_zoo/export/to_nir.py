"""NIR: the network as a graph of NIR nodes, for the simulators and chips that read NIR.

NIR (the Neuromorphic Intermediate Representation) describes a network in continuous time; a reader
simulates it in steps of ``dt``. It can express a zoo network whose neurons fire one spike at a time
(K = 1) and reset to zero, without the temporal mixing filter (``k_t = 1``: its one tap folds into the
conv) and with average or sum pooling. Anything else is refused with what NIR cannot express.

The plain export follows NIR's definitions exactly; with BatchNorm and the mixing tap folded into
each conv, and ``beta = 1/tau`` the model's per-channel step factor:

    Conv2d(W * w, b * w) -> LIF -> SumPool2d | AvgPool2d -> ... -> Flatten -> Affine(fc1) -> LIF -> Affine(fc2)
    LIF: tau = dt / beta, r = 1, v_leak = 0, v_reset = 0, v_threshold = the largest float below the
         model's threshold, since NIR fires on ``v > v_threshold`` and the model on ``v >= V_th``

One Euler step of ``dt``, ``v += dt / tau * (v_leak - v + r * I)``, is then the model's step
``H = V + (I - V) * beta`` (the definition ``dt`` stands for: for count-binned models a nominal
value, the discrete model does not depend on it). The output is each step's logits; the model's
prediction is the class of their mean over the steps.

The readers read NIR differently (docs/EXPORT.md), so ``reader=`` writes the equivalent
parameterisation one of them needs:

- ``"snntorch"`` (1.0): simulates with its own fixed ``dt = 1e-4`` and ``beta = 1 - dt / tau``, adds the
  input unscaled unless ``r * dt / tau`` is 1 for every neuron (else it rescales the threshold by the first
  neuron's factor), imports average pooling only, and hands Flatten's dimensions to PyTorch as they are.
  Written: ``tau = 1e-4 / beta``, ``r = 1 / beta`` with ``beta`` folded into the weights before each LIF
  (still NIR's model), a sum pool as an average pool with the next weights times 4, Flatten from dim 1.
- ``"norse"`` (1.1): takes ``dt`` from its caller (``norse.torch.from_nir(graph, dt=...)``, the ``dt``
  written in input.json), ignores ``r``, imports sum pooling only and hands Flatten's dimensions to
  PyTorch as they are. Written: the plain export, an average pool as a sum pool with the next weights
  times 1/4, Flatten from dim 1.
- ``"sinabs"`` (3.1): builds every LIF as its own multi-spike neuron with subtractive reset and an exact
  exponential decay per step (``exp(-1 / tau)``, no ``dt``). Written: ``tau = -1 / ln(1 - beta)`` so its decay
  is the model's ``1 - beta``, ``beta`` folded into the weights, sum pooling. Its neurons still differ from the
  model's (more than one spike a step, a remainder kept after one), so its spikes are not the model's:
  what it gives is measured (docs/EXPORT.md), not promised.

The compression of events into steps stays in the package, as for ONNX; input.json records it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import replace_folder_atomically
from ..errors import ExportError
from .to_onnx import inference_copy, input_description

GRAPH_FILE, INPUT_FILE, README_FILE = "network.nir", "input.json", "README.md"
READERS = ("snntorch", "norse", "sinabs")
SNNTORCH_DT = 1e-4  # snnTorch 1.0's import_from_nir simulates with this dt whatever the graph says


def unexpressible(network) -> list[str]:
    """What of ``network`` NIR cannot express (empty when it can be exported)."""
    n = network.config
    problems = []
    if n.K != 1:
        problems.append(f"spike counts above 1 (K = {n.K}; NIR's LIF fires one spike a step)")
    if n.reset != "hard":
        problems.append(f"the {n.reset} reset (NIR's LIF resets to v_reset)")
    if n.k_t != 1:
        problems.append(f"the temporal mixing filter (k_t = {n.k_t}; NIR has no per-channel filter over steps)")
    if n.pool == "max":
        problems.append("max pooling (NIR has sum and average pooling only)")
    return problems


def strict_threshold(v_th: float, dtype=np.float32) -> np.floating:
    """The largest ``t`` of ``dtype`` with ``h > t`` exactly when the model fires, ``floor(h / v_th) >= 1``."""
    v_th = dtype(v_th)
    h = v_th  # the smallest h with h / v_th >= 1 in dtype is v_th itself or a neighbour
    down, up = dtype(-np.inf), dtype(np.inf)
    while np.nextafter(h, down) / v_th >= 1:
        h = np.nextafter(h, down)
    while h / v_th < 1:
        h = np.nextafter(h, up)
    return np.nextafter(h, down)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).numpy().copy()


def nir_graph(model, dt: float = 1e-3, reader: str | None = None):
    """The model's network as a ``nir.NIRGraph`` (module docstring); ExportError if NIR cannot express it."""
    import nir

    if reader is not None and reader not in READERS:
        raise ExportError(f"reader must be one of {READERS} or None, got {reader!r}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ExportError(f"dt must be a positive number of seconds, got {dt!r}")
    problems = unexpressible(model.network)
    if problems:
        raise ExportError("NIR cannot express " + "; ".join(problems) + ": nothing written (a NIR-ready zoo model: "
                          "nmnist-lif-t4)")
    network = inference_copy(model, torch.float32)
    n = network.config
    if reader == "snntorch":
        dt = SNNTORCH_DT
    threshold = strict_threshold(n.v_th)
    pool_kind = {"snntorch": "avg", "norse": "sum", "sinabs": "sum"}.get(reader, n.pool)
    # an average pool is a sum pool times 1/4: a reader's pool of the other kind takes the factor into the
    # next layer's weights (a power of two, so nothing rounds)
    carry = {("sum", "avg"): 4.0, ("avg", "sum"): 0.25}.get((n.pool, pool_kind), 1.0)
    nodes, scale_in = {"input": nir.Input(input_type=np.array([2, *network.input_size]))}, 1.0
    H, W = network.input_size

    def neuron(beta: torch.Tensor, shape: tuple[int, ...]) -> tuple[nir.LIF, np.ndarray]:
        """The LIF node for per-channel ``beta`` over neurons of ``shape``, and what the weights before it take."""
        b = _np(beta).astype(np.float64).reshape(-1, *([1] * (len(shape) - 1)))
        if reader == "sinabs":  # Sinabs 3.1 tests `any(v_leak)`, which only a per-channel [C, 1, 1] survives
            shape = b.shape
        b = np.broadcast_to(b, shape)
        ones = np.ones(shape, np.float32)
        if reader == "sinabs":
            tau, r, fold = -1.0 / np.log1p(-b), ones, b
        elif reader == "snntorch":
            tau, r, fold = dt / b, 1.0 / b, b
        else:
            tau, r, fold = dt / b, ones, np.ones_like(b)
        lif = nir.LIF(tau=tau.astype(np.float32), r=np.asarray(r, np.float32), v_leak=np.zeros(shape, np.float32),
                      v_threshold=np.full(shape, n.v_th if reader == "sinabs" else threshold, np.float32),
                      v_reset=np.zeros(shape, np.float32))
        return lif, fold[(slice(None),) + (0,) * (len(shape) - 1)]

    for i, block in enumerate(network.blocks):
        c = block.conv.out_channels
        lif, fold = neuron(torch.sigmoid(block.lif.a), (c, H, W))
        w = block.mix.weight[:, 0].detach().double().numpy() * fold  # the mixing tap, and the reader's input factor
        weight = block.conv.weight.detach().double().numpy() * scale_in * w[:, None, None, None]
        bias = block.conv.bias.detach().double().numpy() * w
        nodes[f"blocks.{i}.conv"] = nir.Conv2d(input_shape=(H, W), weight=weight.astype(np.float32), stride=1,
                                               padding=block.conv.padding, dilation=1, groups=1,
                                               bias=bias.astype(np.float32))
        nodes[f"blocks.{i}.lif"] = lif
        pool = nir.SumPool2d if pool_kind == "sum" else nir.AvgPool2d
        nodes[f"blocks.{i}.pool"] = pool(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                         padding=np.array([0, 0]))
        H, W, scale_in = H // 2, W // 2, carry
    c = network.blocks[-1].conv.out_channels if len(network.blocks) else 2
    # NIR's Flatten counts dimensions without the batch; snnTorch and Norse pass them to torch.nn.Flatten as
    # they are, where dimension 0 is the batch
    start = 1 if reader in ("snntorch", "norse") else 0
    nodes["flatten"] = nir.Flatten(input_type={"input": np.array([c, H, W])}, start_dim=start, end_dim=-1)
    lif, fold = neuron(torch.sigmoid(network.lif.a), (n.hidden,))
    fc1 = network.fc1.weight.detach().double().numpy() * scale_in
    nodes["fc1"] = nir.Affine(weight=(fc1 * fold[:, None]).astype(np.float32),
                              bias=(network.fc1.bias.detach().double().numpy() * fold).astype(np.float32))
    nodes["lif"] = lif
    nodes["fc2"] = nir.Affine(weight=_np(network.fc2.weight), bias=_np(network.fc2.bias))
    nodes["output"] = nir.Output(output_type=np.array([n.num_classes]))
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)


def run_graph(graph, x: np.ndarray, dt: float, flatten_counts_batch: bool = False) -> tuple[np.ndarray, dict]:
    """NIR's definitions, stepped: each step's outputs ``[T, B, classes]`` of a chain ``graph`` on ``x [T, B, ...]``
    (float32), and each LIF node's spikes ``[T, B, ...]``. Euler steps of ``dt``; ``v > v_threshold`` fires and
    resets to ``v_reset``. ``flatten_counts_batch``: read Flatten's dimensions as PyTorch's (the snnTorch and
    Norse variants). The export's own check, written from NIR's documentation, not from the package's layers."""
    import nir
    import torch.nn.functional as F

    after = dict(graph.edges)  # a chain: each node has one successor (nir.read does not keep their order)
    order = [next(k for k, node in graph.nodes.items() if isinstance(node, nir.Input))]
    while order[-1] in after:
        order.append(after[order[-1]])
    state: dict[str, np.ndarray] = {}
    outputs, spikes = [], {name: [] for name in order if isinstance(graph.nodes[name], nir.LIF)}
    f32 = np.float32
    for xt in x.astype(f32):
        h = torch.from_numpy(xt)
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Conv2d):
                h = F.conv2d(h, torch.from_numpy(node.weight), torch.from_numpy(node.bias), stride=tuple(node.stride),
                             padding=tuple(node.padding), dilation=tuple(node.dilation), groups=node.groups)
            elif isinstance(node, nir.LIF):
                i = h.numpy()
                v = state.get(name, np.zeros_like(i))
                v = v + (f32(dt) / node.tau) * ((node.v_leak - v) + node.r * i)
                z = v > node.v_threshold
                state[name] = np.where(z, node.v_reset, v).astype(f32)
                h = torch.from_numpy(z.astype(f32))
                spikes[name].append(z)
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                h = F.avg_pool2d(h, tuple(node.kernel_size), tuple(node.stride), tuple(node.padding),
                                 divisor_override=1 if isinstance(node, nir.SumPool2d) else None)
            elif isinstance(node, nir.Flatten):
                h = h.flatten(node.start_dim if flatten_counts_batch else node.start_dim + 1)
            elif isinstance(node, nir.Affine):
                h = h @ torch.from_numpy(node.weight).T + torch.from_numpy(node.bias)
            elif not isinstance(node, (nir.Input, nir.Output)):
                raise ExportError(f"run_graph: no rule for a {type(node).__name__} node")
        outputs.append(h.numpy())
    return np.stack(outputs), {k: np.stack(v) for k, v in spikes.items()}


def check(model, graph, dt: float, reader: str | None, batch: int = 4, seed: int = 0) -> dict:
    """Step the graph by NIR's definitions (``run_graph``) on random input and compare with the package's
    reference: ExportError unless every neuron's spikes agree on all but a rounding tie in a million and the
    mean logits within 1e-3. Returns what was measured. Not for the Sinabs variant (not NIR's dynamics)."""
    network = inference_copy(model, torch.float32)
    T = model.config.input.T
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, batch, 2, *network.input_size, generator=gen) * 3).round()
    with torch.no_grad():
        ref = network.forward_steps(x, record=True)
    got, spikes = run_graph(graph, x.numpy(), dt, flatten_counts_batch=reader in ("snntorch", "norse"))
    names = [k for k in ref.spikes]
    differ = sum(int((ref.spikes[k].numpy() > 0).ravel().__ne__(spikes[k].ravel()).sum()) for k in names)
    total = sum(ref.spikes[k].numel() for k in names)
    worst = float(np.abs(got.mean(0) - ref.logits.numpy().mean(0)).max())
    if differ > max(1, total // 1_000_000) or not worst <= 1e-3:
        raise ExportError(f"the NIR graph stepped by NIR's definitions disagrees with the package: {differ} of {total} "
                          f"spikes differ, logits by {worst:.3g}; nothing written")
    return {"spikes_compared": total, "spikes_differing": differ, "max_logit_difference": worst}


def export_nir(model, folder: str | os.PathLike, dt: float = 1e-3, reader: str | None = None) -> list[Path]:
    """Write ``network.nir``, ``input.json`` and a README into ``folder`` (module docstring); returns the files.
    ExportError if NIR cannot express the model or the graph fails its check (nothing is written then)."""
    try:
        import nir
    except ImportError as err:
        raise ExportError(f"NIR export needs nir: pip install 'stc-zoo[deploy]' ({err})") from None
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(f"{folder}: exists and is not an empty folder; choose another --out or remove it first")
    graph = nir_graph(model, dt, reader)
    dt = SNNTORCH_DT if reader == "snntorch" else dt
    checked = None if reader == "sinabs" else check(model, graph, dt, reader)

    def write(tmp: Path) -> None:  # swapped in whole: a failed export leaves nothing
        nir.write(tmp / GRAPH_FILE, graph)
        description = input_description(model, [], "float32")
        description.pop("state")
        description.update(format="stc-zoo-nir", dt=dt, reader=reader, check=checked,
                           nodes=[{"name": k, "type": type(v).__name__} for k, v in graph.nodes.items()])
        (tmp / INPUT_FILE).write_text(json.dumps(description, indent=1))
        (tmp / README_FILE).write_text(readme(model, dt, reader))

    try:
        replace_folder_atomically(folder, write)
    except OSError as err:
        raise ExportError(f"{folder}: cannot write the export there ({type(err).__name__}: {err})") from None
    return [folder / f for f in (GRAPH_FILE, INPUT_FILE, README_FILE)]


_LOAD = {
    None: "import nir\ngraph = nir.read(\"network.nir\")   # a chain: input -> ... -> output",
    "snntorch": "import nir\nfrom snntorch.import_nir import import_from_nir\n"
                "net = import_from_nir(nir.read(\"network.nir\", type_check=False))  # Flatten as torch counts; dt 1e-4\n"
                "for x in steps:                  # each [B, 2, H, W], float32\n"
                "    logits, _ = net(x)           # snntorch.utils.reset(net) between recordings",
    "norse": "import nir, norse.torch\n"
             "net = norse.torch.from_nir(nir.read(\"network.nir\", type_check=False), dt={dt})  # Flatten as torch counts\n"
             "state = None\nfor x in steps:                  # each [B, 2, H, W], float32\n"
             "    logits, state = net(x, state)",
    "sinabs": "import nir, sinabs\n"
              "net = sinabs.from_nir(nir.read(\"network.nir\", type_check=False), batch_size=B)  # per-channel neurons\n"
              "logits = net(x.flatten(0, 1))      # x [B, T, 2, H, W] -> [B * T, classes]",
}


def readme(model, dt: float, reader: str | None) -> str:
    H, W = model.network.input_size
    i = model.config.input
    who = f"the {reader} variant (docs/EXPORT.md of stc-zoo)" if reader else "NIR's definitions exactly"
    note = ("Sinabs builds multi-spike neurons with subtractive reset from every LIF node, so its spikes are not "
            "the model's; docs/EXPORT.md of stc-zoo says how close its decisions come.\n\n" if reader == "sinabs" else "")
    return f"""# NIR export of an stc-zoo model

`network.nir` follows {who}; `dt` = {dt:g} s per step. BatchNorm and the one mixing tap are folded
into the convs. The input is one step of synaptic current `[2, {H}, {W}]` (channel 0: p = 0 events,
channel 1: p = 1), made from events by the package's compression (`model.compress(events)`:
{i.T} steps, each the sum of {i.ratio} fine bins; `input.json` holds every parameter). The output is that
step's logits; the prediction is the class of their mean over the {i.T} steps.

{note}```python
{_LOAD[reader].format(dt=dt)}
```

Classes: {', '.join(model.config.labels)}.
"""
