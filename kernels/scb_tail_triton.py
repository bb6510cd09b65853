"""Triton kernels of the SCB tail (temporal mixing + multi-threshold LIF), forward and backward.

The reference is ``scb_tail_ref.py``; the math is in its docstring. One program owns a tile of
``BLOCK_R`` rows (a row is one ``(b, c)`` pair) by ``BLOCK_S`` spatial positions and walks the
T steps inside, so the input is read once and the spike counts written once; the membrane and
the last ``k_t - 1`` inputs stay in registers.

Layout: the input ``[T, B, C, *spatial]`` is viewed as ``[T, R, S]`` with ``R = B * C`` and
``S = prod(spatial)`` (``S = 1`` for linear features). Channel of row r: ``r % C``.

Numerics: values are loaded in their storage dtype (fp16, bf16, fp32 or fp64) and computed in
fp32 (fp64 for fp64 input), in the same operation order as the reference, with IEEE division and
no FMA contraction, so spikes equal the reference's on the input upcast to the compute dtype.
Offsets are 64-bit (``T * R * S`` may exceed 2**31).

Backward: the training forward also stores the pre-spike membrane ``H [T, R, S]``; the backward
walks the steps in reverse, reloading ``H`` and the input once each, and reduces the tap and
``1/tau`` gradients per row inside the tile; the host sums those row partials per channel
(``[n_col_tiles, R]`` numbers, not a pass over the activations), so the result is deterministic.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from .surrogate import SURROGATES

MAX_K_T = 4  # taps held in registers; the reference has no limit
_SURROGATE_ID = {name: i for i, name in enumerate(SURROGATES)}
_RESET_ID = {"soft": 0, "hard": 1}
_TILE = 1024  # elements per program


@triton.jit
def tile_offsets(pid_r, pid_s, S, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """Rows ``[BLOCK_R, 1]``, columns ``[1, BLOCK_S]`` and in-step offsets ``[BLOCK_R, BLOCK_S]`` of a tile, int64."""
    rows = tl.cast(pid_r, tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)[:, None]
    cols = tl.cast(pid_s, tl.int64) * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64)[None, :]
    return rows, cols, rows * tl.cast(S, tl.int64) + cols


@triton.jit
def step_size(R, S):
    """Elements per time step, int64 (so ``t * step`` cannot overflow)."""
    return tl.cast(R, tl.int64) * tl.cast(S, tl.int64)


@triton.jit
def _channel_params(beta_ptr, w_ptr, c, row_ok, K_T: tl.constexpr, CDT: tl.constexpr):
    """Per-row ``1/tau`` and mixing taps ``w[c, 0..3]`` (taps past ``K_T`` are 0 and unused)."""
    beta = tl.load(beta_ptr + c, mask=row_ok, other=0.0).to(CDT)
    w0 = tl.load(w_ptr + c * K_T, mask=row_ok, other=0.0).to(CDT)
    w1 = tl.zeros_like(w0)
    w2 = tl.zeros_like(w0)
    w3 = tl.zeros_like(w0)
    if K_T > 1:
        w1 = tl.load(w_ptr + c * K_T + 1, mask=row_ok, other=0.0).to(CDT)
    if K_T > 2:
        w2 = tl.load(w_ptr + c * K_T + 2, mask=row_ok, other=0.0).to(CDT)
    if K_T > 3:
        w3 = tl.load(w_ptr + c * K_T + 3, mask=row_ok, other=0.0).to(CDT)
    return beta, w0, w1, w2, w3


@triton.jit
def _mix(y0, y1, y2, y3, w0, w1, w2, w3, K_T: tl.constexpr):
    """``I = sum_d w_d * y[t-d]`` over the first ``K_T`` taps, summed in the reference's order."""
    i = y0 * w0
    if K_T > 1:
        i = i + y1 * w1
    if K_T > 2:
        i = i + y2 * w2
    if K_T > 3:
        i = i + y3 * w3
    return i


@triton.jit
def _fire(h, v_th, K: tl.constexpr, IS_F64: tl.constexpr):
    """``u = h / v_th`` (IEEE-rounded) and the spike count ``clamp(floor(u), 0, K)``."""
    if IS_F64:
        u = h / v_th
    else:
        u = tl.math.div_rn(h, v_th)
    return u, tl.minimum(tl.maximum(tl.floor(u), 0.0), K)


@triton.jit
def _window(u, alpha, half_width, SURROGATE: tl.constexpr):
    """Surrogate window ``g(u)`` (surrogate.window); 0 rectangular, 1 triangular, 2 arctan."""
    if SURROGATE == 0:
        return tl.where(tl.abs(u) < half_width, alpha, 0.0)
    elif SURROGATE == 1:
        return alpha * tl.maximum(1.0 - alpha * tl.abs(u), 0.0)
    else:
        z = 3.141592653589793 * alpha * u
        return alpha / (1.0 + z * z)


@triton.jit
def _staircase_grad(u, alpha, half_width, K: tl.constexpr, SURROGATE: tl.constexpr):
    """``sum_{k=1..K} g(u - k)``: V_th times the surrogate ``dS/dH``."""
    g = _window(u - 1.0, alpha, half_width, SURROGATE)
    for k in tl.static_range(2, K + 1):
        g += _window(u - k, alpha, half_width, SURROGATE)
    return g


@triton.jit
def _reset(h, s, u, v_th, RESET: tl.constexpr):
    """Membrane after the spike: soft subtracts ``s * v_th``, hard zeroes it where ``s > 0``."""
    if RESET == 0:
        return h - s * v_th
    else:
        fired = tl.minimum(tl.maximum(tl.floor(u), 0.0), 1.0)
        return h * (1.0 - fired)


@triton.jit
def scb_tail_fwd_kernel(
    y_ptr, w_ptr, beta_ptr, v0_ptr, s_ptr, h_ptr,
    T, R, C, S, params_ptr,
    K: tl.constexpr, K_T: tl.constexpr, RESET: tl.constexpr, HAS_V0: tl.constexpr,
    STORE_H: tl.constexpr, IS_F64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr,
):
    CDT: tl.constexpr = tl.float64 if IS_F64 else tl.float32
    rows, cols, offs = tile_offsets(tl.program_id(0), tl.program_id(1), S, BLOCK_R, BLOCK_S)
    mask = (rows < R) & (cols < S)
    c = rows % C
    step = step_size(R, S)
    v_th = tl.load(params_ptr)
    beta, w0, w1, w2, w3 = _channel_params(beta_ptr, w_ptr, c, rows < R, K_T, CDT)
    zero = tl.zeros([BLOCK_R, BLOCK_S], CDT)
    y1 = zero  # the inputs 1, 2, 3 steps back
    y2 = zero
    y3 = zero
    if HAS_V0:
        v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(CDT)
    else:
        v = zero
    for t in range(T):
        at = t * step + offs
        y = tl.load(y_ptr + at, mask=mask, other=0.0).to(CDT)
        i = _mix(y, y1, y2, y3, w0, w1, w2, w3, K_T)
        y3 = y2
        y2 = y1
        y1 = y
        h = v + (i - v) * beta
        u, s = _fire(h, v_th, K, IS_F64)
        tl.store(s_ptr + at, s.to(s_ptr.dtype.element_ty), mask=mask)
        if STORE_H:
            tl.store(h_ptr + at, h.to(h_ptr.dtype.element_ty), mask=mask)
        v = _reset(h, s, u, v_th, RESET)


@triton.jit
def _delayed(y_ptr, t, step, offs, mask, CDT: tl.constexpr):
    """Input at step ``t`` (0 before the first step)."""
    at = t * step + offs  # negative exactly when t < 0, since 0 <= offs < step
    return tl.load(y_ptr + at, mask=mask & (at >= 0), other=0.0).to(CDT)


@triton.jit
def scb_tail_bwd_kernel(
    gs_ptr, y_ptr, h_ptr, w_ptr, beta_ptr, v0_ptr,
    gy_ptr, gw_part_ptr, gbeta_part_ptr, gv0_ptr,
    T, R, C, S, params_ptr,
    K: tl.constexpr, K_T: tl.constexpr, RESET: tl.constexpr, DETACH_RESET: tl.constexpr,
    SURROGATE: tl.constexpr, HAS_V0: tl.constexpr, IS_F64: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr,
):
    CDT: tl.constexpr = tl.float64 if IS_F64 else tl.float32
    pid_s = tl.program_id(1)
    rows, cols, offs = tile_offsets(tl.program_id(0), pid_s, S, BLOCK_R, BLOCK_S)
    row_ok = rows < R
    mask = row_ok & (cols < S)
    c = rows % C
    step = step_size(R, S)
    v_th = tl.load(params_ptr)
    alpha = tl.load(params_ptr + 1)
    half_width = tl.load(params_ptr + 2)
    beta, w0, w1, w2, w3 = _channel_params(beta_ptr, w_ptr, c, row_ok, K_T, CDT)
    zero = tl.zeros([BLOCK_R, BLOCK_S], CDT)
    # Sliding window of inputs y[t], y[t-1], ..., y[t-K_T+1], moved one step back per iteration.
    ya = _delayed(y_ptr, T - 1, step, offs, mask, CDT)
    yb = zero
    yc = zero
    yd = zero
    if K_T > 1:
        yb = _delayed(y_ptr, T - 2, step, offs, mask, CDT)
    if K_T > 2:
        yc = _delayed(y_ptr, T - 3, step, offs, mask, CDT)
    if K_T > 3:
        yd = _delayed(y_ptr, T - 4, step, offs, mask, CDT)
    h = tl.load(h_ptr + (T - 1) * step + offs, mask=mask, other=0.0).to(CDT)
    gv = zero  # dL/dV[t], carried backwards
    gi1 = zero  # dL/dI[t+1], dL/dI[t+2], dL/dI[t+3]
    gi2 = zero
    gi3 = zero
    acc_b = zero
    acc_w0 = zero
    acc_w1 = zero
    acc_w2 = zero
    acc_w3 = zero
    for tt in range(T):
        t = T - 1 - tt
        # Membrane before this step's charge: the reset of the previous step's H, or v0.
        if t > 0:
            h_prev = tl.load(h_ptr + (t - 1) * step + offs, mask=mask, other=0.0).to(CDT)
            u_prev, s_prev = _fire(h_prev, v_th, K, IS_F64)
            v_prev = _reset(h_prev, s_prev, u_prev, v_th, RESET)
        else:
            h_prev = zero
            if HAS_V0:
                v_prev = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(CDT)
            else:
                v_prev = zero
        i = _mix(ya, yb, yc, yd, w0, w1, w2, w3, K_T)
        u, s = _fire(h, v_th, K, IS_F64)
        gs = tl.load(gs_ptr + t * step + offs, mask=mask, other=0.0).to(CDT)
        gh = gs * _staircase_grad(u, alpha, half_width, K, SURROGATE) / v_th
        if RESET == 0:
            if DETACH_RESET:
                gh += gv
            else:
                gh += gv * (1.0 - _staircase_grad(u, alpha, half_width, K, SURROGATE))
        else:
            fired = tl.minimum(tl.maximum(tl.floor(u), 0.0), 1.0)
            if DETACH_RESET:
                gh += gv * (1.0 - fired)
            else:
                gh += gv * ((1.0 - fired) - h * _staircase_grad(u, alpha, half_width, 1, SURROGATE) / v_th)
        gh = tl.where(mask, gh, 0.0)
        gi = gh * beta
        acc_b += gh * (i - v_prev)
        gv = gh * (1.0 - beta)
        gy = gi * w0
        acc_w0 += gi * ya
        if K_T > 1:
            gy += gi1 * w1
            acc_w1 += gi * yb
        if K_T > 2:
            gy += gi2 * w2
            acc_w2 += gi * yc
        if K_T > 3:
            gy += gi3 * w3
            acc_w3 += gi * yd
        tl.store(gy_ptr + t * step + offs, gy.to(gy_ptr.dtype.element_ty), mask=mask)
        gi3 = gi2
        gi2 = gi1
        gi1 = gi
        if K_T == 1:
            ya = _delayed(y_ptr, t - 1, step, offs, mask, CDT)
        elif K_T == 2:
            ya = yb
            yb = _delayed(y_ptr, t - 2, step, offs, mask, CDT)
        elif K_T == 3:
            ya = yb
            yb = yc
            yc = _delayed(y_ptr, t - 3, step, offs, mask, CDT)
        else:
            ya = yb
            yb = yc
            yc = yd
            yd = _delayed(y_ptr, t - 4, step, offs, mask, CDT)
        h = h_prev
    if HAS_V0:
        tl.store(gv0_ptr + offs, gv.to(gv0_ptr.dtype.element_ty), mask=mask)
    # Row partials of the per-channel gradients: [n_col_tiles, R] and [n_col_tiles, R, K_T].
    row_ids = tl.reshape(rows, [BLOCK_R])
    row_ok1 = row_ids < R
    part = pid_s.to(tl.int64) * R + row_ids
    tl.store(gbeta_part_ptr + part, tl.sum(acc_b, axis=1), mask=row_ok1)
    tl.store(gw_part_ptr + part * K_T, tl.sum(acc_w0, axis=1), mask=row_ok1)
    if K_T > 1:
        tl.store(gw_part_ptr + part * K_T + 1, tl.sum(acc_w1, axis=1), mask=row_ok1)
    if K_T > 2:
        tl.store(gw_part_ptr + part * K_T + 2, tl.sum(acc_w2, axis=1), mask=row_ok1)
    if K_T > 3:
        tl.store(gw_part_ptr + part * K_T + 3, tl.sum(acc_w3, axis=1), mask=row_ok1)


# ---------------------------------------------------------------------------------- launchers
def _tiles(R: int, S: int) -> tuple[int, int, tuple[int, int]]:
    block_s = min(triton.next_power_of_2(S), _TILE)
    block_r = max(_TILE // block_s, 1)
    return block_r, block_s, (triton.cdiv(R, block_r), triton.cdiv(S, block_s))


def _dims(y: torch.Tensor) -> tuple[int, int, int, int]:
    T, B, C = y.shape[:3]
    S = math.prod(y.shape[3:])
    return T, B * C, C, S


def alloc(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Uninitialised output buffer; the tests swap in a poisoned one to catch unwritten elements."""
    return torch.empty(shape, dtype=dtype, device=device)


# FMA contraction would change rounding against the eager reference; keep IEEE order.
_LAUNCH = {"enable_fp_fusion": False, "num_warps": 4}


@functools.lru_cache(maxsize=64)
def _params(device: torch.device, dtype: torch.dtype, v_th: float, alpha: float) -> torch.Tensor:
    """``[v_th, alpha, 0.5 / alpha]`` in the compute dtype, made once per device (Triton passes
    Python floats as fp32, which would round fp64 runs; a cached tensor also keeps the launch
    free of host-to-device copies, so it can be captured in a CUDA graph after one warm-up call)."""
    return torch.tensor([v_th, alpha, 0.5 / alpha], dtype=dtype, device=device)


def scb_tail_forward(
    y: torch.Tensor, w: torch.Tensor, beta: torch.Tensor, v0: torch.Tensor | None,
    v_th: float, K: int, reset: str, out_dtype: torch.dtype, store_h: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike counts ``[T, B, C, ...]`` (``out_dtype``) and, if ``store_h``, the pre-spike membrane.

    Args: as ``scb_tail_ref``; ``y`` contiguous, ``w`` ``[C, k_t]`` contiguous, ``beta`` ``[C]``.
    Returns ``(spikes, h)``; ``h`` is empty unless ``store_h``.
    """
    T, R, C, S = _dims(y)
    is_f64 = y.dtype == torch.float64
    spikes = alloc(y.shape, out_dtype, y.device)
    h = alloc(y.shape if store_h else (0,), torch.float64 if is_f64 else torch.float32, y.device)
    block_r, block_s, grid = _tiles(R, S)
    scb_tail_fwd_kernel[grid](
        y, w, beta, v0 if v0 is not None else y, spikes, h if store_h else spikes,
        T, R, C, S, _params(y.device, h.dtype, float(v_th), 1.0),
        K=K, K_T=w.shape[1], RESET=_RESET_ID[reset], HAS_V0=v0 is not None, STORE_H=store_h,
        IS_F64=is_f64, BLOCK_R=block_r, BLOCK_S=block_s, **_LAUNCH,
    )
    return spikes, h


def scb_tail_backward(
    grad_s: torch.Tensor, y: torch.Tensor, h: torch.Tensor, w: torch.Tensor, beta: torch.Tensor,
    v0: torch.Tensor | None, v_th: float, K: int, reset: str, detach_reset: bool,
    surrogate: str, alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dy, dw [C, k_t], dbeta [C], dv0)`` of the forward; ``dv0`` empty without v0."""
    T, R, C, S = _dims(y)
    K_T = w.shape[1]
    is_f64 = y.dtype == torch.float64
    acc = torch.float64 if is_f64 else torch.float32
    block_r, block_s, grid = _tiles(R, S)
    gy = alloc(y.shape, y.dtype, y.device)
    gw_part = alloc((grid[1], R, K_T), acc, y.device)
    gbeta_part = alloc((grid[1], R), acc, y.device)
    gv0 = alloc(v0.shape, v0.dtype, y.device) if v0 is not None else y.new_empty(0)
    scb_tail_bwd_kernel[grid](
        grad_s.contiguous(), y, h, w, beta, v0 if v0 is not None else y,
        gy, gw_part, gbeta_part, gv0 if v0 is not None else gy,
        T, R, C, S, _params(y.device, acc, float(v_th), float(alpha)),
        K=K, K_T=K_T, RESET=_RESET_ID[reset], DETACH_RESET=detach_reset,
        SURROGATE=_SURROGATE_ID[surrogate], HAS_V0=v0 is not None, IS_F64=is_f64,
        BLOCK_R=block_r, BLOCK_S=block_s, **_LAUNCH,
    )
    B = R // C
    gw = gw_part.view(grid[1] * B, C, K_T).sum(0).to(w.dtype)
    gbeta = gbeta_part.view(grid[1] * B, C).sum(0).to(beta.dtype)
    return gy, gw, gbeta, gv0
