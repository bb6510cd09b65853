"""``StcNetwork`` inference on the Numba CPU kernels (``stc_zoo.kernels.snn_numba``).

The default CPU path for ``predict`` and everything built on it. Same layers and state as
``StcNetwork._reference_steps``; BatchNorm is folded on the fly when the model is not, and the
weights are laid out once for the channels-last kernels (cached until a parameter changes).
Activations stay channels-last numpy arrays between kernels; only the logits, the state and
recorded spikes come back as tensors (the state in the reference's ``[B, C, H, W]`` shape, so
either path can continue the other's).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError
from .kernels import ops, snn_numba
from .layers import LayerState



@dataclass
class _Block:
    name: str
    weight: np.ndarray  # [C_in, k, k (reversed), C_out], BN folded (snn_numba.flip_kx)
    bias: np.ndarray  # [C_out]
    mix: np.ndarray  # [C_out, k_t]
    beta: np.ndarray  # [C_out]


@dataclass
class _Weights:
    watch: list  # _watch(network) when laid out
    blocks: list[_Block]
    fc1: np.ndarray  # [H * W * C (channels-last order), hidden]
    fc1_bias: np.ndarray
    beta: np.ndarray  # [hidden]
    fc2: np.ndarray  # [hidden, classes]
    fc2_bias: np.ndarray
    sizes: list[tuple[int, int]]  # (H, W) each block works on
    hidden_taps: np.ndarray  # [hidden, 1] ones: the classifier's neuron mixes nothing

    def __post_init__(self):
        # snn_numba.network's per-layer arguments (tuples: one dispatch check each).
        self.conv = tuple(b.weight for b in self.blocks)
        self.conv_bias = tuple(b.bias for b in self.blocks)
        self.taps = (*(b.mix for b in self.blocks), self.hidden_taps)
        self.betas = (*(b.beta for b in self.blocks), self.beta)
        # Each spiking layer's (name, spatial size, channels, k_t): the blocks, then the classifier's neuron.
        self.layers = [(b.name, size, b.bias.shape[0], b.mix.shape[1]) for b, size in zip(self.blocks, self.sizes)]
        self.layers.append(("lif", (), self.beta.shape[0], 1))


def _watch(network) -> list[tuple]:
    """What the laid-out weights were made from: every parameter, buffer and submodule slot of the network
    as ``(its dict, name, object, version, data pointer)`` (None slots too, so a bias that appears counts)."""
    entries, stack = [], [network]
    while stack:
        module = stack.pop()
        for slots in (module._parameters, module._buffers):
            entries += [(slots, name, t, *((t._version, t.data_ptr()) if t is not None else (None, None)))
                        for name, t in slots.items()]
        entries += [(module._modules, name, child, None, None) for name, child in module._modules.items()]
        stack += [child for child in module._modules.values() if child is not None]
    return entries


def _unchanged(entries: list[tuple]) -> bool:
    """Whether every slot still holds the same object, unmodified: a tensor changed in place bumps its
    version, ``.data`` swapped moves its pointer, a replaced tensor or module (BatchNorm folded) is a new
    object. A dictionary lookup per slot: a few microseconds a call, where walking ``parameters()`` for a
    key cost ~50 (a streamed step pays it every push)."""
    for slots, name, obj, version, pointer in entries:
        if slots.get(name) is not obj:
            return False
        if version is not None and (obj._version != version or obj.data_ptr() != pointer):
            return False
    return True


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


@torch.no_grad()
def _layout(network) -> _Weights:
    dtype = network.fc1.weight.dtype
    blocks = []
    for i, block in enumerate(network.blocks):
        w = block.conv.weight
        b = block.conv.bias if block.conv.bias is not None else torch.zeros(w.shape[0], dtype=dtype)
        if isinstance(block.bn, torch.nn.BatchNorm2d):  # fold (eval mode: running statistics)
            scale = block.bn.weight / torch.sqrt(block.bn.running_var + block.bn.eps)
            w, b = w * scale.view(-1, 1, 1, 1), block.bn.bias + (b - block.bn.running_mean) * scale
        blocks.append(_Block(f"blocks.{i}.lif", snn_numba.flip_kx(_numpy(w.permute(1, 2, 3, 0))), _numpy(b),
                             _numpy(block.mix.weight.to(dtype)), _numpy(torch.sigmoid(block.lif.a))))
    C = network.config.channels[-1]
    H, W = (v >> len(network.blocks) for v in network.input_size)
    # fc1 reads torch's [C, H, W] flattening; the kernels hold [H, W, C].
    fc1 = network.fc1.weight.view(-1, C, H, W).permute(2, 3, 1, 0).reshape(H * W * C, -1)
    sizes = [(network.input_size[0] >> i, network.input_size[1] >> i) for i in range(len(blocks))]
    return _Weights(_watch(network), blocks, _numpy(fc1), _numpy(network.fc1.bias), _numpy(torch.sigmoid(network.lif.a)),
                    _numpy(network.fc2.weight.t()), _numpy(network.fc2.bias), sizes,
                    np.ones((network.config.hidden, 1), dtype=_numpy(network.fc1.bias).dtype))


def weights(network) -> _Weights:
    """The network's weights in the kernels' layout (rebuilt when a parameter or buffer changed)."""
    cached = network.__dict__.get("_numba_weights")
    if cached is None or not _unchanged(cached.watch):
        cached = network.__dict__["_numba_weights"] = _layout(network)
    return cached


def _state_in(state: LayerState | None, shape: tuple[int, ...], k_t: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(v ``[B, S, C]``, past ``[k_t - 1, B, S, C]``) from a state in the reference's shapes, as fresh
    numpy copies (the kernel updates them in place). Copied by numpy, not torch: a threaded torch
    copy between the kernels' parallel regions fights their threads for the cores."""
    B, S, C = shape
    if state is None:
        return np.zeros(shape, dtype=dtype), np.zeros((k_t - 1, *shape), dtype=dtype)

    def last(t, lead):  # [*lead, C, *spatial] -> [*lead, S, C]
        a = t.detach().numpy()
        n = len(lead)
        a = a.transpose(*range(n), *range(n + 1, a.ndim), n)  # channels last (a view)
        return np.array(a, dtype=dtype, order="C").reshape(*lead, S, C)

    return last(state.v, (B,)), last(state.past, (k_t - 1, B))


def _state_out(v: np.ndarray, past: np.ndarray, spatial: tuple[int, ...]) -> LayerState:
    """The reference's shapes ``[B, C, *spatial]`` and ``[k_t - 1, B, C, *spatial]``, as views (no copy)."""
    def back(a):  # [*lead, S, C] -> [*lead, C, *spatial]
        n = a.ndim - 2
        t = torch.from_numpy(a.reshape(*a.shape[:n], *spatial, a.shape[-1]))
        return t.permute(*range(n), t.ndim - 1, *range(n, t.ndim - 1))
    return LayerState(back(v), back(past))


# A batch runs in chunks of samples whose activations fit in about CHUNK_BYTES (a core's share of L2):
# layer by layer over a whole batch of 32 N-MNIST samples, block 0's output alone is 19 MB and every
# kernel streams it from memory; in chunks of 3 the same work took 21 instead of 37 ms on one core
# (BENCHMARKS.md, 2026-12-01). From PARALLEL_MIN_BATCH samples on, the chunks run on
# torch.get_num_threads() threads (the kernels release the GIL); below it one thread is faster.
# Every sample's sums run in the same order whatever chunk it is in, so the bits are the same.
CHUNK_BYTES = 2 << 20
PARALLEL_MIN_BATCH = 16
_pool: ThreadPoolExecutor | None = None


def _chunks(B: int, T: int, w: _Weights) -> list[tuple[int, int]]:
    """``(start, stop)`` sample ranges that cover the batch, each about CHUNK_BYTES of activations."""
    if B == 1:
        return [(0, 1)]
    per_sample = T * max(b.bias.shape[0] * H * W for b, (H, W) in zip(w.blocks, w.sizes)) * w.fc1.dtype.itemsize
    size = max(1, CHUNK_BYTES // max(per_sample, 1))
    return [(a, min(a + size, B)) for a in range(0, B, size)]


def _threads(B: int) -> int:
    return 1 if B < PARALLEL_MIN_BATCH else max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _run_chunks(network, x: np.ndarray, native: dict, record: bool, w: _Weights,
                chunks: list[tuple[int, int]], threads: int) -> tuple[np.ndarray, dict | None]:
    """``run`` on chunks of the batch (on ``threads`` threads); state and outputs put back in batch order."""
    global _pool
    parts = [{name: (v[a:b].copy(), past[:, a:b].copy()) for name, (v, past) in native.items()} for a, b in chunks]
    if threads > 1:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="stc-zoo-numba")
        futures = [_pool.submit(run, network, x[:, a:b], part, record, w) for (a, b), part in zip(chunks, parts)]
        results = [f.result() for f in futures]
    else:
        results = [run(network, x[:, a:b], part, record, w) for (a, b), part in zip(chunks, parts)]
    T = x.shape[0]
    for (a, b), part in zip(chunks, parts):
        for name, (v, past) in part.items():
            if v.size:  # (not at_rest's)
                native[name][0][a:b], native[name][1][:, a:b] = v, past
    logits = np.concatenate([r[0].reshape(T, b - a, -1) for r, (a, b) in zip(results, chunks)], axis=1)
    spikes = ({name: torch.cat([r[1][name] for r in results], 1) for name in results[0][1]} if record else None)
    return logits.reshape(T * x.shape[1], -1), spikes


def forward_steps(network, x: torch.Tensor, state: dict, record: bool, return_state: bool = True):
    """``StcNetwork.forward_steps`` on the Numba kernels (eval mode, CPU, no gradient): ``(logits [T, B,
    classes], state or None, spikes or None)``, which the network returns as its ``Steps``.
    Raises InputError if ``x`` holds NaN or Inf (checked by the first conv)."""
    w = weights(network)
    T, B = x.shape[:2]
    # From rest with no state to return, the kernel makes the zeros itself.
    native = rest_state(network, B, state, w) if state or return_state else at_rest(w)
    chunks = _chunks(B, T, w)
    if len(chunks) == 1:
        logits, spikes = run(network, x.detach().numpy(), native, record, w)
    else:
        logits, spikes = _run_chunks(network, x.detach().numpy(), native, record, w, chunks, _threads(B))
    new_state = None
    if return_state:
        new_state = {name: _state_out(*native[name], size) for name, size, _, _ in w.layers}
    return torch.from_numpy(logits).view(T, B, -1), new_state, spikes


def rest_state(network, batch: int, state: dict | None = None,
               w: _Weights | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The kernels' own state for ``batch`` streams: layer name -> (v ``[B, S, C]``, past ``[k_t - 1, B, S, C]``),
    at rest, or copied from ``state`` (``forward_steps``' form) where it has the layer."""
    w = w or weights(network)
    state = state or {}
    return {name: _state_in(state.get(name), (batch, int(np.prod(size, dtype=np.int64)), channels), k_t,
                            w.fc1.dtype)
            for name, size, channels, k_t in w.layers}


def run(network, x: np.ndarray, state: dict, record: bool = False,
        w: _Weights | None = None) -> tuple[np.ndarray, dict | None]:
    """The forward on numpy ``x [T, B, 2, H', W']``, continuing from ``state`` (``rest_state``'s form),
    which it updates in place: the form a streaming session keeps, with no conversion per step.
    Returns logits ``[T * B, classes]`` and, with ``record``, the spike counts per layer (tensors).
    ``w``: ``weights(network)`` when the caller has just checked it."""
    return ops.first_use("CPU network kernels", lambda: _run(network, x, state, record, w or weights(network)))


def _run(network, x, state, record, w):
    dtype = w.fc1.dtype
    T, B = x.shape[:2]
    layers = w.layers
    blocks = tuple(np.empty((T, B, *size, c), dtype) if record else _none(dtype, 5) for _, size, c, _ in layers[:-1])
    lif = np.empty((T, B, w.beta.shape[0]), dtype) if record else _none(dtype, 3)
    logits = np.empty((T * B, w.fc2.shape[1]), dtype=dtype)
    v = tuple(state[name][0] for name, *_ in layers)
    past = tuple(state[name][1] for name, *_ in layers)
    config = network.config
    if not snn_numba.network(x, w.conv, w.conv_bias, w.taps, w.betas, config.pool == "max", dtype.type(snn_numba.POOL_SCALE[config.pool]),
                             w.fc1, w.fc1_bias, w.fc2, w.fc2_bias, *snn_numba.scalars(dtype, config.v_th, config.K),
                             config.reset == "soft", v, past, blocks, lif, logits):
        raise InputError("input holds NaN or Inf")
    if not record:
        return logits, None
    spikes = {name: torch.from_numpy(s).permute(0, 1, 4, 2, 3) for (name, *_), s in zip(layers, blocks)}
    spikes["lif"] = torch.from_numpy(lif)
    return logits, spikes


def at_rest(w: _Weights) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A state the kernel reads as every layer at rest (and whose end nobody keeps)."""
    dtype = w.fc1.dtype
    return {name: (_none(dtype, 3), _none(dtype, 4)) for name, *_ in w.layers}


@functools.lru_cache(maxsize=None)
def _none(dtype: np.dtype, ndim: int) -> np.ndarray:
    """The empty array the kernel is given for spikes nobody records."""
    return np.empty((0,) * ndim, dtype=dtype)
