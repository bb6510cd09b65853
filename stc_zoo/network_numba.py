"""``StcNetwork`` inference on the Numba CPU kernels (``stc_zoo.kernels.snn_numba``).

The default CPU path for ``predict`` and everything built on it. Same layers and state as
``StcNetwork._reference_steps``; BatchNorm is folded on the fly when the model is not, and the
weights are laid out once for the channels-last kernels (cached until a parameter changes).
Activations stay channels-last numpy arrays between kernels; only the logits, the state and
recorded spikes come back as tensors (the state in the reference's ``[B, C, H, W]`` shape, so
either path can continue the other's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError
from .kernels import ops, snn_numba
from .layers import LayerState



@dataclass
class _Block:
    name: str
    weight: np.ndarray  # [C_in, k, k, C_out], BN folded
    bias: np.ndarray  # [C_out]
    mix: np.ndarray  # [C_out, k_t]
    beta: np.ndarray  # [C_out]


@dataclass
class _Weights:
    key: tuple
    blocks: list[_Block]
    fc1: np.ndarray  # [H * W * C (channels-last order), hidden]
    fc1_bias: np.ndarray
    beta: np.ndarray  # [hidden]
    fc2: np.ndarray  # [hidden, classes]
    fc2_bias: np.ndarray


def _key(network) -> tuple:
    """Identity and version of every parameter and buffer, found by walking ``_modules`` directly
    (``parameters()`` costs ~0.1 ms a call). A tensor changed in place bumps its version; a replaced
    tensor or module (e.g. BatchNorm folded) brings new objects."""
    key, stack = [], [network]
    while stack:
        module = stack.pop()
        key += [(id(t), t._version) for t in module._parameters.values() if t is not None]
        key += [(id(t), t._version) for t in module._buffers.values() if t is not None]
        stack += module._modules.values()
    return tuple(key)


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
        blocks.append(_Block(f"blocks.{i}.lif", _numpy(w.permute(1, 2, 3, 0)), _numpy(b),
                             _numpy(block.mix.weight.to(dtype)), _numpy(torch.sigmoid(block.lif.a))))
    C = network.config.channels[-1]
    H, W = (v >> len(network.blocks) for v in network.input_size)
    # fc1 reads torch's [C, H, W] flattening; the kernels hold [H, W, C].
    fc1 = network.fc1.weight.view(-1, C, H, W).permute(2, 3, 1, 0).reshape(H * W * C, -1)
    return _Weights(_key(network), blocks, _numpy(fc1), _numpy(network.fc1.bias), _numpy(torch.sigmoid(network.lif.a)),
                    _numpy(network.fc2.weight.t()), _numpy(network.fc2.bias))


def weights(network) -> _Weights:
    """The network's weights in the kernels' layout (rebuilt when a parameter or buffer changed)."""
    cached = network.__dict__.get("_numba_weights")
    if cached is None or cached.key != _key(network):
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


def _tail(y, taps, beta, network, state, spatial, return_state):
    """Mixing + MT-LIF over ``y [T, B, S, C]``; returns spikes (same shape) and the new LayerState."""
    T, B, S, C = y.shape
    v, past = _state_in(state, (B, S, C), taps.shape[1], y.dtype)
    out = np.empty_like(y)
    snn_numba.tail(y, taps, beta, *snn_numba.scalars(y.dtype, network.config.v_th, network.config.K),
                   network.config.reset == "soft", v, past, out)
    return out, (_state_out(v, past, spatial) if return_state else None)


def forward_steps(network, x: torch.Tensor, state: dict, record: bool, return_state: bool = True):
    """``StcNetwork.forward_steps`` on the Numba kernels (eval mode, CPU, no gradient).
    Raises InputError if ``x`` holds NaN or Inf (checked by the first conv)."""
    return ops.first_use("CPU network kernels", lambda: _forward_steps(network, x, state, record, return_state))


def _forward_steps(network, x, state, record, return_state):
    from .network import Steps

    w = weights(network)
    dtype = w.fc1.dtype
    T, B = x.shape[:2]
    h = np.ascontiguousarray(x.detach().numpy().transpose(0, 1, 3, 4, 2), dtype=dtype)
    new_state, spikes = {}, {}
    for block in w.blocks:
        _, _, H, W, c_in = h.shape
        c_out = block.bias.shape[0]
        y = np.empty((T, B, H, W, c_out), dtype=dtype)
        finite = snn_numba.conv_sparse(h.reshape(T * B, H, W, c_in), block.weight, block.bias,
                                       y.reshape(T * B, H, W, c_out))
        if not finite:
            raise InputError("input holds NaN or Inf")
        s, new_state[block.name] = _tail(y.reshape(T, B, H * W, c_out), block.mix, block.beta, network,
                                          state.get(block.name), (H, W), return_state)
        if record:
            spikes[block.name] = torch.from_numpy(s).view(T, B, H, W, c_out).permute(0, 1, 4, 2, 3)
        h = np.empty((T, B, H // 2, W // 2, c_out), dtype=dtype)
        snn_numba.pool2(s.reshape(T * B, H, W, c_out), network.config.pool == "max", dtype.type(0.25),
                        h.reshape(T * B, H // 2, W // 2, c_out))
    hidden = np.empty((T * B, w.fc1.shape[1]), dtype=dtype)
    snn_numba.linear_sparse(h.reshape(T * B, -1), w.fc1, w.fc1_bias, hidden)
    ones = np.ones((hidden.shape[1], 1), dtype=dtype)
    s, new_state["lif"] = _tail(hidden.reshape(T, B, 1, -1), ones, w.beta, network, state.get("lif"), (),
                                return_state)
    if record:
        spikes["lif"] = torch.from_numpy(s).view(T, B, -1)
    logits = np.empty((T * B, w.fc2.shape[1]), dtype=dtype)
    snn_numba.linear_sparse(s.reshape(T * B, -1), w.fc2, w.fc2_bias, logits)
    return Steps(torch.from_numpy(logits).view(T, B, -1), new_state, spikes if record else None)
