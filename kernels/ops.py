"""The hot-path ops with a backend switch: fused Triton kernels or the PyTorch references.

``backend="auto"`` runs the Triton kernels on CUDA tensors (when Triton is installed) and the
references otherwise; ``"triton"`` and ``"torch"`` force one. On CPU tensors ``"triton"`` runs in
Triton's interpreter, which must be switched on before Triton is imported
(``TRITON_INTERPRET=1``); the tests use this to compare kernels and references on a CPU.

The Triton paths are registered with ``torch.library`` (``stc_zoo::scb_tail``,
``stc_zoo::scb_tail_backward``, ``stc_zoo::compress_events``) with fake implementations and an
autograd formula, so models using them trace under ``torch.compile`` and capture in CUDA graphs.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from ..errors import DeviceError
from .compress_ref import compress_events_ref
from .scb_tail_ref import check_neuron, mtlif_ref, temporal_mix_ref

# Without Triton (e.g. macOS, or a CPU-only install) the references still work; "auto" picks them.
HAS_TRITON = importlib.util.find_spec("triton") is not None

BACKENDS = ("auto", "triton", "torch")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch.device (CPU for None); DeviceError if this machine has no such device."""
    try:
        device = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r}: this torch ({torch.__version__}) sees no CUDA device; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def interpreter_on() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter in this process."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"triton"`` or ``"torch"`` for tensors on ``device``; raises if ``"triton"`` cannot run there."""
    check_backend(backend)
    if backend == "auto":
        return "triton" if HAS_TRITON and device.type == "cuda" and not interpreter_on() else "torch"
    if backend == "triton":
        if not HAS_TRITON:
            raise DeviceError("backend='triton' needs the triton package (pip install triton)")
        if device.type != "cuda" and not interpreter_on():
            raise DeviceError(
                f"backend 'triton' runs on CUDA devices, not {device.type}: use backend 'auto' or 'torch' "
                "here (or TRITON_INTERPRET=1, Triton's slow interpreter meant for tests)"
            )
        if device.type == "cuda" and interpreter_on():
            raise DeviceError("TRITON_INTERPRET=1 is set, so Triton cannot run on CUDA tensors; unset it")
    return backend


# ---------------------------------------------------------------------------------- SCB tail
def _check_tail_args(y, w, beta, v0, K, reset, surrogate, out_dtype) -> None:
    if y.ndim < 3:
        raise ValueError(f"expected y [T, B, C, ...], got shape {tuple(y.shape)}")
    C = y.shape[2]
    if w is not None and (w.ndim != 2 or w.shape[0] != C or w.shape[1] < 1):
        raise ValueError(f"expected taps w [C={C}, k_t], got shape {tuple(w.shape)}")
    if beta.shape != (C,):
        raise ValueError(f"expected beta [C={C}], got shape {tuple(beta.shape)}")
    if v0 is not None and v0.shape != y.shape[1:]:
        raise ValueError(f"expected v0 {tuple(y.shape[1:])}, got {tuple(v0.shape)}")
    check_neuron(K, reset, surrogate)
    if out_dtype is not None and not out_dtype.is_floating_point and out_dtype != torch.int8:
        raise ValueError(f"spike counts are written as a float dtype or int8, not {out_dtype}")


def scb_tail(
    y: torch.Tensor,
    w: torch.Tensor | None,
    beta: torch.Tensor,
    v_th: float = 1.0,
    K: int = 4,
    reset: str = "soft",
    detach_reset: bool = False,
    surrogate: str = "rectangular",
    alpha: float = 1.0,
    v0: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Temporal mixing then multi-threshold LIF over all T steps (``scb_tail_ref``'s math).

    Args:
        y: ``[T, B, C, ...]`` conv(+BN) output or linear features (fp16, bf16, fp32 or fp64).
        w: ``[C, k_t]`` mixing taps, or None for no mixing (a plain MT-LIF layer).
        beta: ``[C]`` per-channel ``1/tau``.
        v0: ``[B, C, ...]`` initial membrane, zeros when None.
        out_dtype: dtype of the spike counts; ``y.dtype`` when None. ``torch.int8`` is for
            inference only (no gradient flows through integers).
    Returns:
        spike counts ``[T, B, C, ...]`` in ``{0..K}``.
    """
    _check_tail_args(y, w, beta, v0, K, reset, surrogate, out_dtype)
    out_dtype = out_dtype or y.dtype
    if resolve_backend(backend, y.device) == "torch":
        x = y if w is None else temporal_mix_ref(y, w)
        return mtlif_ref(x, beta, v_th, K, reset, detach_reset, surrogate, alpha, v0=v0).to(out_dtype)
    if w is None:
        w = torch.ones(y.shape[2], 1, dtype=beta.dtype, device=y.device)
    needs_grad = torch.is_grad_enabled() and any(
        a is not None and a.requires_grad for a in (y, w, beta, v0))
    if needs_grad and not out_dtype.is_floating_point:
        raise ValueError(f"out_dtype={out_dtype} cannot carry a gradient; use a float dtype for training")
    spikes, _ = torch.ops.stc_zoo.scb_tail(
        y.contiguous(), w.contiguous(), beta.contiguous(), None if v0 is None else v0.contiguous(),
        float(v_th), int(K), reset, bool(detach_reset), surrogate, float(alpha), out_dtype, needs_grad)
    return spikes


# ---------------------------------------------------------------------------------- compression
def compress_events(
    x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, t: torch.Tensor, offsets: torch.Tensor,
    sensor_size: tuple[int, int], T: int, ratio: int = 1, split_by: str = "number",
    spatial: int = 1, decay: float = 1.0, backend: str = "auto",
) -> torch.Tensor:
    """``compress_events_ref``'s contract (``[T, B, 2, H', W']`` float32) on the chosen backend."""
    if resolve_backend(backend, t.device) == "torch":
        return compress_events_ref(x, y, p, t, offsets, sensor_size, T, ratio, split_by, spatial, decay)
    W, H = (int(v) for v in sensor_size)
    return torch.ops.stc_zoo.compress_events(
        x, y, p, t, offsets, W, H, int(T), int(ratio), split_by, int(spatial), float(decay))


# ---------------------------------------------------------------------------------- registration
if HAS_TRITON:
    from . import compress_triton, scb_tail_triton
    from .compress_ref import pooled_size

    @torch.library.custom_op("stc_zoo::scb_tail", mutates_args=())
    def _scb_tail_op(
        y: torch.Tensor, w: torch.Tensor, beta: torch.Tensor, v0: torch.Tensor | None,
        v_th: float, K: int, reset: str, detach_reset: bool, surrogate: str, alpha: float,
        out_dtype: torch.dtype, store_h: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return scb_tail_triton.scb_tail_forward(y, w, beta, v0, v_th, K, reset, out_dtype, store_h)

    @_scb_tail_op.register_fake
    def _(y, w, beta, v0, v_th, K, reset, detach_reset, surrogate, alpha, out_dtype, store_h):
        h_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
        return y.new_empty(y.shape, dtype=out_dtype), y.new_empty(y.shape if store_h else (0,), dtype=h_dtype)

    @torch.library.custom_op("stc_zoo::scb_tail_backward", mutates_args=())
    def _scb_tail_backward_op(
        grad_s: torch.Tensor, y: torch.Tensor, h: torch.Tensor, w: torch.Tensor, beta: torch.Tensor,
        v0: torch.Tensor | None, v_th: float, K: int, reset: str, detach_reset: bool,
        surrogate: str, alpha: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return scb_tail_triton.scb_tail_backward(
            grad_s, y, h, w, beta, v0, v_th, K, reset, detach_reset, surrogate, alpha)

    @_scb_tail_backward_op.register_fake
    def _(grad_s, y, h, w, beta, v0, v_th, K, reset, detach_reset, surrogate, alpha):
        return (torch.empty_like(y), torch.empty_like(w), torch.empty_like(beta),
                torch.empty_like(v0) if v0 is not None else y.new_empty(0))

    def _setup_context(ctx, inputs, output):
        y, w, beta, v0, v_th, K, reset, detach_reset, surrogate, alpha, _, store_h = inputs
        ctx.save_for_backward(y, output[1], w, beta, v0)
        ctx.args = (v_th, K, reset, detach_reset, surrogate, alpha)
        ctx.stored_h = store_h

    def _backward(ctx, grad_s, _grad_h):
        if not ctx.stored_h:
            raise RuntimeError("stc_zoo::scb_tail ran without storing H (store_h=False); "
                               "call it through stc_zoo.kernels.ops.scb_tail to get gradients")
        y, h, w, beta, v0 = ctx.saved_tensors
        gy, gw, gbeta, gv0 = torch.ops.stc_zoo.scb_tail_backward(grad_s, y, h, w, beta, v0, *ctx.args)
        return gy, gw, gbeta, (gv0 if v0 is not None else None), *([None] * 8)

    _scb_tail_op.register_autograd(_backward, setup_context=_setup_context)

    @torch.library.custom_op("stc_zoo::compress_events", mutates_args=())
    def _compress_events_op(
        x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, t: torch.Tensor, offsets: torch.Tensor,
        W: int, H: int, T: int, ratio: int, split_by: str, spatial: int, decay: float,
    ) -> torch.Tensor:
        return compress_triton.compress_events(x, y, p, t, offsets, (W, H), T, ratio, split_by, spatial, decay)

    @_compress_events_op.register_fake
    def _(x, y, p, t, offsets, W, H, T, ratio, split_by, spatial, decay):
        Hs, Ws = pooled_size((W, H), spatial)
        return t.new_empty((T, offsets.shape[0] - 1, 2, Hs, Ws), dtype=torch.float32)
