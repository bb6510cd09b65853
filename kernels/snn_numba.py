"""Numba CPU kernels for inference: sparse conv, the SCB tail (mixing + MT-LIF), 2x2 pooling, sparse linear.

Layout is channels-last (``[N, H, W, C]``, ``[T, B, S, C]``) so the innermost loops run over
contiguous channels and vectorise. The inputs of every layer after the first are spike counts
(measured: 2.6% of block 1's neurons and 12% of block 2's fire per step on N-MNIST), and the
first layer's input is event counts, mostly zero; so conv and linear layers loop over the
non-zero inputs and add their weight rows (``y[out] += x[in] * w[in, :]``), skipping the zeros
a dense kernel multiplies. Per output, a layer's sum runs in the same order whatever the batch
or chunk, so a frame's result does not depend on what else is computed with it (streaming
relies on this). The kernels are serial on purpose: Numba's parallel regions gained ~30% on an
idle 2-core machine but cost milliseconds per launch when other processes keep the cores busy
(measured: 8 ms for a tiny kernel), and a shared machine is the usual case.

The tail repeats the reference's float operations in the reference's order
(``scb_tail_ref.py``), in the input's dtype, so for equal inputs it gives bit-identical
spikes and membranes. Conv and linear sums run in a different order than oneDNN's, so they
match the reference to rounding (exactly in float64 tests, where no spike flips).
Nothing here computes gradients: these are the inference path.
"""

from __future__ import annotations

import functools

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def conv_sparse(x, w, bias, out):  # pragma: no cover
    """``out = conv2d(x, w) + bias``, zero padding ``k // 2``, skipping zero inputs.

    x: ``[N, H, W, Cin]``; w: ``[Cin, k, k, Cout]`` with the kx axis **reversed** (``flip_kx``), so
    that the k outputs a non-zero input reaches in one output row (adjacent pixels, contiguous in
    channels-last) meet their k weights as one contiguous run: a row of the 3x3 stamp is a single
    vectorised loop of ``3 * Cout``. bias: ``[Cout]``; out: ``[N, H, W, Cout]``.
    Returns whether every input was finite (checked on the non-zero ones, for free).
    """
    N, H, W, Cin = x.shape
    k, Cout = w.shape[1], w.shape[3]
    pad = k // 2
    rows = w.reshape(Cin, k, k * Cout)
    bad = 0
    for n in range(N):
        frame = out[n].reshape(H, W * Cout)
        for oy in range(H):
            for ox in range(W):
                for co in range(Cout):
                    frame[oy, ox * Cout + co] = bias[co]
        for iy in range(H):
            for ix in range(W):
                # Output pixels ix + pad - (k - 1) + j for the flipped taps j in [j_lo, j_hi) lie on the frame.
                j_lo, j_hi = max(0, k - 1 - pad - ix), min(k, W - ix - pad + k - 1)
                o0, w0, length = (ix + pad - (k - 1) + j_lo) * Cout, j_lo * Cout, (j_hi - j_lo) * Cout
                for ci in range(Cin):
                    v = x[n, iy, ix, ci]
                    if v == 0:
                        continue
                    if not np.isfinite(v):
                        bad += 1
                    for ky in range(max(0, iy + pad - H + 1), min(k, iy + pad + 1)):
                        _axpy(v, rows[ci, ky][w0:w0 + length], frame[iy + pad - ky][o0:o0 + length])
    return bad == 0


def flip_kx(w: np.ndarray) -> np.ndarray:
    """``[Cin, k, k, Cout]`` conv weights with the kx axis reversed, the layout ``conv_sparse`` takes."""
    return np.ascontiguousarray(w[:, :, ::-1, :])


@numba.njit(cache=True, nogil=True, inline="always")
def _axpy(a, x, y):  # pragma: no cover
    """``y += a * x`` over contiguous rows; indices provably >= 0, so LLVM vectorises the loop."""
    for i in range(y.size):
        y[i] += a * x[i]


@numba.njit(cache=True, nogil=True)
def linear_sparse(x, w, bias, out):  # pragma: no cover
    """``out = x @ w + bias`` skipping zero inputs. x: ``[N, F]``; w: ``[F, O]``; out: ``[N, O]``."""
    N, F = x.shape
    for n in range(N):
        out[n, :] = bias
        for f in range(F):
            v = x[n, f]
            if v != 0:
                _axpy(v, w[f], out[n])


@numba.njit(cache=True, nogil=True)
def tail(y, w, beta, v_th, kmax, zero, one, soft, v, past, out):  # pragma: no cover
    """Temporal mixing then MT-LIF over the T steps of ``y``, continuing from state ``(v, past)``.

    y, out: ``[T, B, S, C]``; w: ``[C, k_t]`` taps (``k_t = 1`` and ``w = 1`` for a plain layer);
    beta: ``[C]``; v: ``[B, S, C]`` membrane, updated in place; past: ``[k_t - 1, B, S, C]`` the
    inputs of the steps before ``y`` (oldest first, zeros at the start), updated in place.
    ``v_th, kmax, zero, one`` are scalars of y's dtype so every operation stays in it.
    """
    T, B, S, C = y.shape
    k_t = w.shape[1]
    P = past.shape[0]
    taps = np.ascontiguousarray(w.T)  # [k_t, C]: tap d of every channel in one contiguous row
    cur = np.empty((S, C), dtype=y.dtype)
    for t in range(T):
        for b in range(B):
            yt, vb, ob = y[t, b], v[b], out[t, b]
            # The input one step back (what k_t = 2, the common case, mixes in, fused below).
            prev = (y[t - 1, b] if t >= 1 else past[P - 1, b]) if k_t >= 2 else yt
            # I[t] = y[t] w0 + y[t-1] w1 + ..., added in the reference's order; taps beyond the
            # second are added in extra passes before the neuron pass.
            for s in range(S):
                for c in range(C):
                    i = yt[s, c] * taps[0, c]
                    if k_t >= 2:
                        i = i + prev[s, c] * taps[1, c]
                    cur[s, c] = i
            for d in range(2, k_t):
                src = y[t - d, b] if t - d >= 0 else past[P + t - d, b]
                for s in range(S):
                    for c in range(C):
                        cur[s, c] = cur[s, c] + src[s, c] * taps[d, c]
            for s in range(S):
                for c in range(C):
                    vv = vb[s, c]
                    h = vv + (cur[s, c] - vv) * beta[c]
                    q = np.floor(h / v_th)
                    spikes = min(max(q, zero), kmax)
                    ob[s, c] = spikes
                    vb[s, c] = h - spikes * v_th if soft else h * (one - min(max(q, zero), one))
    # The last k_t - 1 inputs (from y, then the old past when y is shorter) become the new past;
    # ascending j reads past[T + j] before it is overwritten.
    for j in range(P):
        if T - P + j >= 0:
            past[j] = y[T - P + j]
        else:
            past[j] = past[T + j]


@numba.njit(cache=True, nogil=True)
def pool2(x, use_max, quarter, out):  # pragma: no cover
    """2x2 max or average pooling (floor mode), x: ``[N, H, W, C]`` -> out ``[N, H // 2, W // 2, C]``."""
    N, Ho, Wo, C = out.shape
    for n in range(N):
        for oy in range(Ho):
            for ox in range(Wo):
                for c in range(C):
                    a = x[n, 2 * oy, 2 * ox, c]
                    b = x[n, 2 * oy, 2 * ox + 1, c]
                    d = x[n, 2 * oy + 1, 2 * ox, c]
                    e = x[n, 2 * oy + 1, 2 * ox + 1, c]
                    if use_max:
                        out[n, oy, ox, c] = max(max(a, b), max(d, e))
                    else:
                        out[n, oy, ox, c] = (((a + b) + d) + e) * quarter


@functools.lru_cache(maxsize=None)
def scalars(dtype: np.dtype, v_th: float, K: int) -> tuple:
    """``(v_th, K, 0, 1)`` as scalars of ``dtype``, so the tail never widens to float64 (or narrows)."""
    cast = np.dtype(dtype).type
    return cast(v_th), cast(K), cast(0), cast(1)


def scb_tail(y, w, beta, v_th: float, K: int, reset: str, v0=None, past=None):
    """``ops.scb_tail``'s contract on the CPU, with state: returns ``(spikes, v, past)``.

    y: ``[T, B, C, ...]`` torch tensor; w: ``[C, k_t]`` or None; v0: ``[B, C, ...]`` or None;
    past: ``[k_t - 1, B, C, ...]`` or None (zeros). Returns torch tensors of y's dtype:
    spikes ``[T, B, C, ...]``, the final membrane ``[B, C, ...]`` and the last ``k_t - 1`` inputs.
    """
    import torch

    T, B, C = y.shape[:3]
    rest = y.shape[3:]
    dtype = y.dtype

    S = int(np.prod(rest, dtype=np.int64))

    def last(a):  # [..., C, *rest] -> [..., S, C] numpy, always a copy (the kernel writes the state in place)
        lead = a.shape[:a.ndim - len(rest) - 1]
        return a.detach().reshape(*lead, C, S).transpose(-1, -2).clone(memory_format=torch.contiguous_format).numpy()

    taps = (torch.ones(C, 1, dtype=dtype) if w is None else w.detach().to(dtype)).contiguous().numpy()
    k_t = taps.shape[1]
    v = np.zeros((B, S, C), dtype=taps.dtype) if v0 is None else last(v0.to(dtype))
    hist = np.zeros((k_t - 1, B, S, C), dtype=taps.dtype) if past is None else last(past.to(dtype))
    out = np.empty((T, B, S, C), dtype=taps.dtype)
    tail(last(y), taps, beta.detach().to(dtype).contiguous().numpy(), *scalars(taps.dtype, v_th, K),
         reset == "soft", v, hist, out)

    def back(a, lead):  # [*lead, S, C] -> [*lead, C, *rest]
        return torch.from_numpy(a).transpose(-1, -2).reshape(*lead, C, *rest)

    return back(out, (T, B)), back(v, (B,)), back(hist, (k_t - 1, B))

