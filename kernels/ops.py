"""The hot-path ops with a backend switch: fused Triton kernels, Numba CPU kernels or the PyTorch references.

``backend="auto"`` runs the Triton kernels on CUDA tensors (when Triton is installed), the Numba
kernels on CPU tensors when no gradient is needed (inference; when Numba is installed: compiled on first use
and cached on disk, except in a one-shot command whose cache lacks them, ``reference_unless_cached``) and the
references otherwise; ``"triton"``, ``"numba"`` and ``"torch"`` force one. The Numba kernels are
inference-only: asked for a gradient, ``"numba"`` runs the reference. On CPU tensors ``"triton"`` runs in
Triton's interpreter, which must be switched on before Triton is imported
(``TRITON_INTERPRET=1``); the tests use this to compare kernels and references on a CPU.

The Triton paths are registered with ``torch.library`` (``stc_zoo::scb_tail``,
``stc_zoo::scb_tail_backward``, ``stc_zoo::compress_events``) with fake implementations and an
autograd formula, so models using them trace under ``torch.compile`` and capture in CUDA graphs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time

import torch

from ..errors import DeviceError
from .compress_ref import compress_events_ref
from .scb_tail_ref import check_neuron, mtlif_ref, temporal_mix_ref

# Without Triton (e.g. macOS, or a CPU-only install) the references still work; "auto" picks them.
HAS_TRITON = importlib.util.find_spec("triton") is not None
# Numba compiles the CPU kernels with its own LLVM: no C++ compiler needed, wheels for every desktop OS.
HAS_NUMBA = importlib.util.find_spec("numba") is not None

BACKENDS = ("auto", "triton", "numba", "torch")
log = logging.getLogger("stc_zoo")
_said_no_numba = False


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


_first_uses: set[str] = set()


def first_use(name: str, run):
    """``run()``; the first time ``name`` runs in a process, say how long it took (Numba compiles its
    kernels on first use and caches them on disk, so only a fresh install pays the compile)."""
    if name in _first_uses:
        return run()
    start = time.perf_counter()
    result = run()
    _first_uses.add(name)
    seconds = time.perf_counter() - start
    level = logging.WARNING if seconds > 1.0 else logging.INFO
    log.log(level, "stc-zoo: %s ready in %.1f s (Numba compiles on first use, then loads from its disk cache)",
            name, seconds)
    return result


# Whether "auto" runs the Numba kernels on CPU tensors in this process (compiling them where Numba's disk cache
# lacks them): yes, unless a one-shot command chose otherwise before the first such call (``reference_unless_cached``).
_fast_path = True
_decided = False  # a CPU call has resolved "auto": the path is fixed for the rest of the process


def fast_path_cached() -> bool:
    """Whether Numba's disk cache holds the CPU fast path's kernels (the network and the compression) for
    this CPU: a process then loads them in milliseconds instead of compiling them (~15 s)."""
    from . import compress_numba, snn_numba
    from .numba_cache import on_disk

    return on_disk(snn_numba.network) and on_disk(compress_numba._compress)


def reference_unless_cached() -> bool:
    """For a process that runs a few forwards and exits (``stc-zoo predict``, ``show``, ``stream FILE``):
    ``"auto"`` on CPU tensors runs the Numba kernels only when the disk cache holds them, else the PyTorch
    reference (a forward costs milliseconds more; compiling would cost ~15 s), said once.
    ``STC_ZOO_COMPILE=1`` keeps compiling. Call it before the process's first forward (the path is fixed
    then, so a streaming session and the offline forward it equals run the same one); returns whether the
    fast path runs."""
    global _fast_path
    if not _decided and HAS_NUMBA and os.environ.get("STC_ZOO_COMPILE") != "1":
        _fast_path = fast_path_cached()
        if not _fast_path:
            log.info("stc-zoo: the CPU fast path is not compiled on this machine yet, so this command runs the "
                     "PyTorch reference (same results to float rounding, slower per forward); `stc-zoo warmup` "
                     "compiles it once (~15 s) for every later process")
    return _fast_path and HAS_NUMBA


def allow_compile() -> None:
    """From now on in this process, ``"auto"`` on CPU tensors runs the Numba kernels, compiling what the disk
    cache lacks on first use (the default; ``StcSNN.warmup`` calls it after ``reference_unless_cached``)."""
    global _fast_path
    _fast_path = True


def _cpu_auto() -> str:
    global _said_no_numba, _decided
    if HAS_NUMBA:
        _decided = True
        return "numba" if _fast_path else "torch"
    if not _said_no_numba:
        _said_no_numba = True
        log.warning("stc-zoo: numba is not installed, so CPU inference runs the slower PyTorch reference "
                    "(pip install numba)")
    return "torch"


def resolve_backend(backend: str, device: torch.device, needs_grad: bool = False) -> str:
    """``"triton"``, ``"numba"`` or ``"torch"`` for tensors on ``device``; raises if the backend asked
    for cannot run there. ``needs_grad``: the Numba kernels have no backward, so the reference runs."""
    check_backend(backend)
    if backend == "auto":
        if device.type == "cuda":
            return "triton" if HAS_TRITON and not interpreter_on() else "torch"
        return "torch" if needs_grad or device.type != "cpu" else _cpu_auto()
    if backend == "numba":
        if not HAS_NUMBA:
            raise DeviceError("backend='numba' needs the numba package (pip install numba)")
        if device.type != "cpu":
            raise DeviceError(f"backend 'numba' runs on the CPU, not {device.type}: use backend 'auto'")
        return "torch" if needs_grad else "numba"
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
    past: torch.Tensor | None = None,
    return_state: bool = False,
):
    """Temporal mixing then multi-threshold LIF over all T steps (``scb_tail_ref``'s math).

    Args:
        y: ``[T, B, C, ...]`` conv(+BN) output or linear features (fp16, bf16, fp32 or fp64).
        w: ``[C, k_t]`` mixing taps, or None for no mixing (a plain MT-LIF layer).
        beta: ``[C]`` per-channel ``1/tau``.
        v0: ``[B, C, ...]`` initial membrane, zeros when None.
        out_dtype: dtype of the spike counts; ``y.dtype`` when None. ``torch.int8`` is for
            inference only (no gradient flows through integers).
        past: ``[k_t - 1, B, C, ...]`` the inputs of the steps before ``y`` (oldest first) for
            the mixing; zeros when None (the start of a sequence).
        return_state: also return the final membrane ``[B, C, ...]`` and the new ``past``.
    Returns:
        spike counts ``[T, B, C, ...]`` in ``{0..K}``; with ``return_state``, ``(spikes, v, past)``.
    """
    _check_tail_args(y, w, beta, v0, K, reset, surrogate, out_dtype)
    out_dtype = out_dtype or y.dtype
    needs_grad = torch.is_grad_enabled() and any(
        a is not None and a.requires_grad for a in (y, w, beta, v0, past))
    chosen = resolve_backend(backend, y.device, needs_grad)
    if chosen == "numba":
        from . import snn_numba

        spikes, v, past = snn_numba.scb_tail(y, w, beta, v_th, K, reset, v0, past)
        return (spikes.to(out_dtype), v, past) if return_state else spikes.to(out_dtype)
    if chosen == "torch" or return_state or past is not None:
        # The Triton kernel keeps no state between calls: stateful calls run the reference.
        return _scb_tail_ref(y, w, beta, v_th, K, reset, detach_reset, surrogate, alpha, v0, out_dtype, past,
                             return_state)
    if w is None:
        w = torch.ones(y.shape[2], 1, dtype=beta.dtype, device=y.device)
    if needs_grad and not out_dtype.is_floating_point:
        raise ValueError(f"out_dtype={out_dtype} cannot carry a gradient; use a float dtype for training")
    spikes, _ = torch.ops.stc_zoo.scb_tail(
        y.contiguous(), w.contiguous(), beta.contiguous(), None if v0 is None else v0.contiguous(),
        float(v_th), int(K), reset, bool(detach_reset), surrogate, float(alpha), out_dtype, needs_grad)
    return spikes


def _scb_tail_ref(y, w, beta, v_th, K, reset, detach_reset, surrogate, alpha, v0, out_dtype, past, return_state):
    P = 0 if w is None else w.shape[1] - 1
    if w is None:
        x = y
    else:  # zero history is the start of a sequence: mix y alone (the original op, bit for bit)
        x = temporal_mix_ref(y, w) if past is None else temporal_mix_ref(torch.cat([past, y]), w)[P:]
    spikes, v = mtlif_ref(x, beta, v_th, K, reset, detach_reset, surrogate, alpha, v0=v0, return_v=True)
    if not return_state:  # training's path: no history to keep
        return spikes.to(out_dtype)
    full = torch.cat([y.new_zeros((P, *y.shape[1:])) if past is None else past, y])
    return spikes.to(out_dtype), v, full[full.shape[0] - P:]


# ---------------------------------------------------------------------------------- compression
def compress_events(
    x: torch.Tensor, y: torch.Tensor, p: torch.Tensor, t: torch.Tensor, offsets: torch.Tensor,
    sensor_size: tuple[int, int], T: int, ratio: int = 1, split_by: str = "number",
    spatial: int = 1, decay: float = 1.0, step_us: int | None = None, backend: str = "auto",
    origins: torch.Tensor | None = None,
) -> torch.Tensor:
    """``compress_events_ref``'s contract (``[T, B, 2, H', W']`` float32) on the chosen backend.
    ``origins`` (duration binning): the Triton kernel does not take them, so the reference runs."""
    step_us = int(step_us or 0)
    chosen = resolve_backend(backend, t.device)
    if chosen == "torch" or (chosen == "triton" and origins is not None):
        return compress_events_ref(x, y, p, t, offsets, sensor_size, T, ratio, split_by, spatial, decay, step_us,
                                   origins)
    if chosen == "numba":
        from . import compress_numba

        frames, (code, index) = compress_numba.compress_events(
            *(a.numpy() for a in (x, y, p, t, offsets)), sensor_size, T, ratio, split_by, spatial, decay, step_us,
            None if origins is None else origins.numpy())
        if code != compress_numba.OK:
            raise ValueError(f"event {index} is off the sensor, has a polarity not 0/1 or an unsorted timestamp "
                             "(check events with stc_zoo.data.check_events first)")
        return torch.from_numpy(frames)
    W, H = (int(v) for v in sensor_size)
    return torch.ops.stc_zoo.compress_events(
        x, y, p, t, offsets, W, H, int(T), int(ratio), split_by, int(spatial), float(decay), step_us)


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
        W: int, H: int, T: int, ratio: int, split_by: str, spatial: int, decay: float, step_us: int,
    ) -> torch.Tensor:
        return compress_triton.compress_events(x, y, p, t, offsets, (W, H), T, ratio, split_by, spatial, decay,
                                               step_us)

    @_compress_events_op.register_fake
    def _(x, y, p, t, offsets, W, H, T, ratio, split_by, spatial, decay, step_us):
        Hs, Ws = pooled_size((W, H), spatial)
        return t.new_empty((T, offsets.shape[0] - 1, 2, Hs, Ws), dtype=torch.float32)
