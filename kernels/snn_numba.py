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

import numpy as np

from .numba_cache import cached_njit


@cached_njit(nogil=True)
def conv_sparse(x, w, bias, out):  # pragma: no cover
    """``out = conv2d(x, w) + bias``, zero padding ``k // 2``, skipping zero inputs.

    x: ``[N, H, W, Cin]``; w: ``[Cin, k, k, Cout]`` with the kx axis **reversed** (``flip_kx``), so
    that the k outputs a non-zero input reaches in one output row (adjacent pixels, contiguous in
    channels-last) meet their k weights as one contiguous run: a row of the 3x3 stamp is a single
    vectorised loop of ``3 * Cout``. bias: ``[Cout]``; out: ``[N, H, W, Cout]``.
    Returns whether every input was finite (checked on the non-zero ones, for free).

    With ``Cin >= GATHER_MIN_CHANNELS`` a pixel's non-zero channels are gathered first and added up
    to eight per pass over the output run (``_axpy8``): one load and store of the run for eight
    weight rows instead of one per row (block 1 of nmnist-t4: 240 -> 170 us on two recordings;
    block 0, two channels, was slower gathered). Each output element still adds its inputs in the
    same order (pixels in raster order, channels ascending), so both ways give the same bits.
    """
    N, H, W, Cin = x.shape
    k, Cout = w.shape[1], w.shape[3]
    pad = k // 2
    rows = w.reshape(Cin, k, k * Cout)
    gather = Cin >= GATHER_MIN_CHANNELS
    index = np.empty(Cin, dtype=np.int64)
    value = np.empty(Cin, dtype=x.dtype)
    bad = 0
    for n in range(N):
        frame = out[n].reshape(H, W * Cout)
        for oy in range(H):
            for ox in range(W):
                for co in range(Cout):
                    frame[oy, ox * Cout + co] = bias[co]
        for iy in range(H):
            ky_lo, ky_hi = max(0, iy + pad - H + 1), min(k, iy + pad + 1)
            for ix in range(W):
                # Output pixels ix + pad - (k - 1) + j for the flipped taps j in [j_lo, j_hi) lie on the frame.
                j_lo, j_hi = max(0, k - 1 - pad - ix), min(k, W - ix - pad + k - 1)
                o0, w0, L = (ix + pad - (k - 1) + j_lo) * Cout, j_lo * Cout, (j_hi - j_lo) * Cout
                if not gather:
                    for ci in range(Cin):
                        v = x[n, iy, ix, ci]
                        if v == 0:
                            continue
                        if not np.isfinite(v):
                            bad += 1
                        for ky in range(ky_lo, ky_hi):
                            _axpy(v, rows[ci, ky][w0:w0 + L], frame[iy + pad - ky][o0:o0 + L])
                    continue
                nnz = 0
                for ci in range(Cin):
                    v = x[n, iy, ix, ci]
                    if v != 0:
                        if not np.isfinite(v):
                            bad += 1
                        index[nnz], value[nnz] = ci, v
                        nnz += 1
                for ky in range(ky_lo, ky_hi):
                    # (Written out here: the same passes behind an inlined helper ran 1.4x slower.)
                    y = frame[iy + pad - ky][o0:o0 + L]
                    j = 0
                    while j + 8 <= nnz:
                        _axpy8(value[j], rows[index[j], ky][w0:w0 + L], value[j + 1], rows[index[j + 1], ky][w0:w0 + L],
                               value[j + 2], rows[index[j + 2], ky][w0:w0 + L], value[j + 3], rows[index[j + 3], ky][w0:w0 + L],
                               value[j + 4], rows[index[j + 4], ky][w0:w0 + L], value[j + 5], rows[index[j + 5], ky][w0:w0 + L],
                               value[j + 6], rows[index[j + 6], ky][w0:w0 + L], value[j + 7], rows[index[j + 7], ky][w0:w0 + L], y)
                        j += 8
                    if j + 4 <= nnz:
                        _axpy4(value[j], rows[index[j], ky][w0:w0 + L], value[j + 1], rows[index[j + 1], ky][w0:w0 + L],
                               value[j + 2], rows[index[j + 2], ky][w0:w0 + L], value[j + 3], rows[index[j + 3], ky][w0:w0 + L], y)
                        j += 4
                    if j + 2 <= nnz:
                        _axpy2(value[j], rows[index[j], ky][w0:w0 + L], value[j + 1], rows[index[j + 1], ky][w0:w0 + L], y)
                        j += 2
                    if j < nnz:
                        _axpy(value[j], rows[index[j], ky][w0:w0 + L], y)
    return bad == 0


GATHER_MIN_CHANNELS = 4


def flip_kx(w: np.ndarray) -> np.ndarray:
    """``[Cin, k, k, Cout]`` conv weights with the kx axis reversed, the layout ``conv_sparse`` takes."""
    return np.ascontiguousarray(w[:, :, ::-1, :])


@cached_njit(nogil=True, inline="always")
def _axpy(a, x, y):  # pragma: no cover
    """``y += a * x`` over contiguous rows; indices provably >= 0, so LLVM vectorises the loop."""
    for i in range(y.size):
        y[i] += a * x[i]


# y += a x + b u (+ ...) in one pass, each term added in turn (so rounded as one pass per term would be).
@cached_njit(nogil=True, inline="always")
def _axpy2(a, x, b, u, y):  # pragma: no cover
    for i in range(y.size):
        y[i] = (y[i] + a * x[i]) + b * u[i]


@cached_njit(nogil=True, inline="always")
def _axpy4(a, x, b, u, c, p, d, q, y):  # pragma: no cover
    for i in range(y.size):
        y[i] = (((y[i] + a * x[i]) + b * u[i]) + c * p[i]) + d * q[i]


@cached_njit(nogil=True, inline="always")
def _axpy8(a, x, b, u, c, p, d, q, e, r, f, z, g, m, h, o, y):  # pragma: no cover
    for i in range(y.size):
        y[i] = (((((((y[i] + a * x[i]) + b * u[i]) + c * p[i]) + d * q[i]) + e * r[i]) + f * z[i]) + g * m[i]) + h * o[i]


@cached_njit(nogil=True)
def linear_sparse(x, w, bias, out):  # pragma: no cover
    """``out = x @ w + bias`` skipping zero inputs. x: ``[N, F]``; w: ``[F, O]``; out: ``[N, O]``.
    Non-zero features are gathered and added in passes of eight like ``conv_sparse``'s (same order)."""
    N, F = x.shape
    index = np.empty(F, dtype=np.int64)
    value = np.empty(F, dtype=x.dtype)
    for n in range(N):
        y = out[n]
        for o in range(y.shape[0]):  # not y[:] = bias: see tail's note on array assignment
            y[o] = bias[o]
        nnz = 0
        for f in range(F):
            v = x[n, f]
            if v != 0:
                index[nnz], value[nnz] = f, v
                nnz += 1
        j = 0
        while j + 8 <= nnz:
            _axpy8(value[j], w[index[j]], value[j + 1], w[index[j + 1]], value[j + 2], w[index[j + 2]],
                   value[j + 3], w[index[j + 3]], value[j + 4], w[index[j + 4]], value[j + 5], w[index[j + 5]],
                   value[j + 6], w[index[j + 6]], value[j + 7], w[index[j + 7]], y)
            j += 8
        while j < nnz:
            _axpy(value[j], w[index[j]], y)
            j += 1


@cached_njit(nogil=True)
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
    # Element by element: an array assignment (past[j] = y[i]) compiles Numba's broadcasting and its error
    # messages, seconds of a cold start.
    for j in range(P):
        src = y[T - P + j] if T - P + j >= 0 else past[T + j]
        dst = past[j]
        for b in range(B):
            for s in range(S):
                for c in range(C):
                    dst[b, s, c] = src[b, s, c]


# What a 2x2 window's sum is multiplied by (``quarter`` below), per NetworkConfig.pool; max does not use it.
POOL_SCALE = {"max": 1.0, "avg": 0.25, "sum": 1.0}


@cached_njit(nogil=True)
def pool2(x, use_max, quarter, out):  # pragma: no cover
    """2x2 max, average (``quarter`` 0.25) or sum (``quarter`` 1) pooling (floor mode), x: ``[N, H, W, C]``
    -> out ``[N, H // 2, W // 2, C]``."""
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


@cached_njit(nogil=True)
def network(x, conv_w, conv_b, taps, beta, use_max, quarter, fc1, fc1_b, fc2, fc2_b, v_th, kmax, zero, one, soft,
            v, past, block_spikes, lif_spikes, logits):  # pragma: no cover
    """The whole forward in one call: conv blocks (conv, tail, 2x2 pool), fc1, the classifier's neuron, fc2.

    One call instead of ten kernel launches with numpy set-up between them: in the pipeline that set-up
    ran on caches the kernels had just filled (measured ~60 us a forward at batch 1, and every streamed
    step paid it). The same kernels, in the same order, so the bits are those of calling them one by one.

    x: ``[T, B, 2, H, W]`` (any layout and float dtype; transposed to channels-last here).
    conv_w / conv_b: per block ``[Cin, k, k (flipped), Cout]`` and ``[Cout]``; taps / beta: per spiking
    layer (the blocks, then the classifier's neuron) ``[C, k_t]`` and ``[C]``. v / past: per spiking layer
    ``[B, S, C]`` and ``[k_t - 1, B, S, C]``, updated in place; empty arrays for a layer at rest whose
    final state nobody reads (zeros made here: in Python, six ``np.zeros`` cost ~20 us a forward). block_spikes: per block ``[T, B, H, W, C]``
    to record its spikes in, or an empty array not to; lif_spikes: ``[T, B, hidden]`` or empty.
    quarter: what a 2x2 window's sum is multiplied by, in the weights' dtype (0.25 average, 1 sum pooling).
    logits: ``[T * B, classes]``, written. Returns False (and stops) if ``x`` holds NaN or Inf.
    """
    T, B, _, H, W = x.shape
    dtype = logits.dtype
    h = np.empty((T, B, H, W, 2), dtype=dtype)
    for t in range(T):
        for b in range(B):
            for yy in range(H):
                for xx in range(W):
                    for c in range(2):
                        h[t, b, yy, xx, c] = x[t, b, c, yy, xx]
    for i in range(len(conv_w)):
        H, W, c_in = h.shape[2], h.shape[3], h.shape[4]
        c_out = conv_b[i].shape[0]
        y = np.empty((T, B, H, W, c_out), dtype=dtype)
        if not conv_sparse(h.reshape(T * B, H, W, c_in), conv_w[i], conv_b[i], y.reshape(T * B, H, W, c_out)):
            return False
        s = block_spikes[i] if block_spikes[i].size else np.empty_like(y)
        vi, pi = _state(v[i], past[i], taps[i].shape[1], B, H * W, c_out)
        tail(y.reshape(T, B, H * W, c_out), taps[i], beta[i], v_th, kmax, zero, one, soft, vi, pi,
             s.reshape(T, B, H * W, c_out))
        h = np.empty((T, B, H // 2, W // 2, c_out), dtype=dtype)
        pool2(s.reshape(T * B, H, W, c_out), use_max, quarter, h.reshape(T * B, H // 2, W // 2, c_out))
    hidden = np.empty((T * B, fc1.shape[1]), dtype=dtype)
    linear_sparse(h.reshape(T * B, -1), fc1, fc1_b, hidden)
    n = len(conv_w)
    s = lif_spikes.reshape(T * B, -1) if lif_spikes.size else np.empty_like(hidden)
    vn, pn = _state(v[n], past[n], 1, B, 1, hidden.shape[1])
    tail(hidden.reshape(T, B, 1, -1), taps[n], beta[n], v_th, kmax, zero, one, soft, vn, pn,
         s.reshape(T, B, 1, -1))
    linear_sparse(s, fc2, fc2_b, logits)
    return True


@cached_njit(nogil=True, inline="always")
def _state(v, past, k_t, B, S, C):  # pragma: no cover
    """``(v, past)``, or a layer at rest when ``v`` is empty."""
    if v.size:
        return v, past
    return np.zeros((B, S, C), dtype=v.dtype), np.zeros((k_t - 1, B, S, C), dtype=v.dtype)


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

