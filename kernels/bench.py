"""Microbenchmarks of the fused kernels against the PyTorch reference, torch.compile and SpikingJelly.

    python kernels/bench.py                      # GPU if there is one, else the CPU columns
    python kernels/bench.py --out kernels/BENCHMARKS.md

Rows: the SCB tail forward for inference (int8 spike counts out), forward + backward for training
(float spikes, gradients for the input, taps and 1/tau), and event compression; shapes
``B=64, C=128, 32x32`` and batch 1, T in {1, 2, 4, 8, 16}, fp16 and fp32 inputs.

Columns: median time of the fused kernel (``triton.testing.do_bench`` on CUDA), the bandwidth it
achieves on its minimal traffic (each input read once, each output written once) and that as a
fraction of the device's copy bandwidth measured in the same run; times and speed-ups of the
eager reference, ``torch.compile`` of the reference and SpikingJelly's multi-step PLIF node (the
same neuron when K = 1 and k_t = 1, so those rows use that configuration for it; its outputs are
compared with ours before it is timed). SpikingJelly picks its fastest CUDA implementation
itself; ``SJ_PLIF_CUDA_IMPLEMENTATION=triton|cuda`` forces one.

Without a GPU the fused kernels cannot run (Triton's interpreter is for tests, not timing): the
script times the eager and compiled references on the CPU (median of ``--reps`` runs after
warm-up, wall clock) and says that the GPU columns need a GPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from stc_zoo.kernels import ops
from stc_zoo.kernels.compress_ref import compress_events_ref
from stc_zoo.kernels.scb_tail_ref import scb_tail_ref
from stc_zoo.timing import median_ms

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TAIL = dict(v_th=1.0, reset="soft", detach_reset=False, surrogate="arctan", alpha=1.0)


# ---------------------------------------------------------------------------------- timing
class Timer:
    """Median milliseconds of a callable: ``do_bench`` on CUDA, wall clock on the CPU."""

    def __init__(self, device: torch.device, reps: int):
        self.device, self.reps = device, reps

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            from triton.testing import do_bench
            return do_bench(fn, warmup=25, rep=max(self.reps, 100), return_mode="median")
        return median_ms(fn, runs=self.reps, warmup=3)


def copy_bandwidth(device: torch.device, timer: Timer) -> float:
    """GB/s of a plain device-to-device copy (bytes read + bytes written)."""
    n = (1 << 28) if device.type == "cuda" else (1 << 25)  # 1 GiB / 128 MiB of fp32
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / timer(lambda: dst.copy_(src)) / 1e6


# ---------------------------------------------------------------------------------- rows
@dataclass
class Row:
    kernel: str
    shape: str
    dtype: str
    T: int
    bytes: int  # minimal traffic of one call
    ours: float | None = None
    others: dict[str, float | None] = field(default_factory=dict)
    note: str = ""


def tail_inputs(T, B, C, H, W, dtype, device, k_t, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    y = (torch.randn(T, B, C, H, W, device=device, generator=g) * 2).to(dtype)
    w = torch.zeros(C, k_t, device=device)
    w[:, 0] = 1.0  # k_t = 1 stays the identity, as in SpikingJelly's neuron
    w[:, 1:] += 0.1 * torch.randn(C, k_t - 1, device=device, generator=g)
    beta = torch.full((C,), 0.5, device=device)  # tau = 2 in every channel: SpikingJelly's scalar tau
    return y, w, beta


def spikingjelly_plif(device: torch.device):
    """SpikingJelly's multi-step PLIF (soft reset, tau 2, arctan surrogate), its parameter and the backend
    it runs on (its fastest on CUDA: triton, else cupy, else torch), or None if SpikingJelly is not installed."""
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError:
        return None
    node = neuron.ParametricLIFNode(init_tau=2.0, v_reset=None, step_mode="m",
                                    surrogate_function=surrogate.ATan()).to(device)
    backend = "torch"
    if device.type == "cuda":
        for candidate in ("triton", "cupy"):
            if candidate in getattr(node, "supported_backends", ()):
                try:
                    node.backend = candidate
                    backend = candidate
                    break
                except Exception:  # noqa: BLE001 - a backend whose package this machine lacks
                    continue

    def run(x):
        node.reset()
        return node(x)
    return run, node.w, backend


def sj_agrees(ours: torch.Tensor, sj: torch.Tensor) -> float:
    return (ours.float() == sj.float()).float().mean().item()


def compile_fresh(fn: Callable) -> Callable:
    """``torch.compile(fn)`` with dynamo's caches cleared: every row compiles the same code for a
    new shape, and past the recompile limit dynamo would silently run it eagerly."""
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False)


def bench_tail(T, B, C, H, W, dtype_name, device, timer, train: bool, compile_ok: bool,
               K: int, k_t: int, sj=None) -> Row:
    """One row; ``sj`` (SpikingJelly's PLIF) only with K = 1, k_t = 1, where it is the same neuron."""
    dtype = DTYPES[dtype_name]
    y, w, beta = tail_inputs(T, B, C, H, W, dtype, device, k_t)
    n, isz = y.numel(), y.element_size()
    kw = dict(TAIL, K=K)
    if train:
        # fwd: read y, write s and H (fp32); bwd: read grad, y, H, write dy
        row = Row(f"fwd+bwd K={K} k_t={k_t}", f"B={B} C={C} {H}x{W}", dtype_name, T, n * (5 * isz + 8))
        grad = torch.ones_like(y)
        leaves = [t.detach().requires_grad_() for t in (y, w, beta)]

        def step(fn):
            def run():
                out = fn(*leaves)
                torch.autograd.grad(out, leaves, grad)
            return run
        ours = step(lambda y_, w_, b_: ops.scb_tail(y_, w_, b_, backend="triton", **kw))
        eager = step(lambda y_, w_, b_: scb_tail_ref(y_, w_, b_, **kw))
        compiled = compile_fresh(scb_tail_ref) if compile_ok else None
        comp = step(lambda y_, w_, b_: compiled(y_, w_, b_, **kw)) if compiled else None
        sj_run = (lambda: torch.autograd.grad(sj[0](leaves[0]), (leaves[0], sj[1]), grad)) if sj else None
    else:
        row = Row(f"fwd K={K} k_t={k_t}, int8 out", f"B={B} C={C} {H}x{W}", dtype_name, T, n * (isz + 1))
        ours = lambda: ops.scb_tail(y, w, beta, out_dtype=torch.int8, backend="triton", **kw)  # noqa: E731
        eager = lambda: scb_tail_ref(y, w, beta, **kw).to(torch.int8)  # noqa: E731
        comp = compile_fresh(lambda: scb_tail_ref(y, w, beta, **kw).to(torch.int8)) if compile_ok else None
        sj_run = (lambda: sj[0](y)) if sj else None
    with torch.no_grad():
        want = scb_tail_ref(y.float(), w, beta, **kw)
    if device.type == "cuda":
        with torch.no_grad():
            got = ops.scb_tail(y, w, beta, backend="triton", **kw)
        if not torch.equal(got.float(), want):
            row.note += f"MISMATCH vs reference ({(got.float() != want).float().mean().item():.2e} of spikes) "
        row.ours = timer(ours)
    row.others["eager"] = timer(eager)
    row.others["compile"] = timer(comp) if comp else None
    if sj_run:
        with torch.no_grad():
            agree = sj_agrees(want, sj[0](y.float()))
        row.note += f"SpikingJelly agrees on {agree:.4%} of spikes "
        row.others["SpikingJelly"] = timer(sj_run)
    return row


def random_events(B, per_sample, W, H, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = B * per_sample
    x, y = torch.randint(0, W, (n,), generator=g), torch.randint(0, H, (n,), generator=g)
    p = torch.randint(0, 2, (n,), generator=g)
    t = torch.sort(torch.randint(0, 300_000, (B, per_sample), generator=g), dim=1).values.flatten()
    offsets = torch.arange(B + 1) * per_sample
    return [v.to(device) for v in (x, y, p, t, offsets)]


def bench_compression(B, per_sample, sensor, T, ratio, spatial, device, timer, compile_ok) -> Row:
    events = random_events(B, per_sample, *sensor, device)
    args = (*events, sensor, T, ratio, "time", spatial, 0.8)
    out_numel = T * B * 2 * math.ceil(sensor[0] / spatial) * math.ceil(sensor[1] / spatial)
    row = Row("compression", f"B={B} {per_sample} ev {sensor[0]}x{sensor[1]}/s{spatial}", "int64 ev",
              T, B * per_sample * 4 * 8 + out_numel * 4)
    if device.type == "cuda":
        got = ops.compress_events(*args, backend="triton")
        if not torch.equal(got, compress_events_ref(*args)):
            row.note += "MISMATCH vs reference "
        row.ours = timer(lambda: ops.compress_events(*args, backend="triton"))
    row.others["eager"] = timer(lambda: compress_events_ref(*args))
    if compile_ok:
        compiled = compile_fresh(compress_events_ref)
        row.others["compile"] = timer(lambda: compiled(*args))
    else:
        row.others["compile"] = None
    return row


# ---------------------------------------------------------------------------------- report
def fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[Row], copy_bw: float, baselines: list[str]) -> str:
    head = ["kernel", "shape", "dtype", "T", "ours ms", "GB/s", "% copy BW"]
    for b in baselines:
        head += [f"{b} ms", f"x vs {b}"]
    head.append("notes")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        gbs = r.bytes / r.ours / 1e6 if r.ours else None
        cells = [r.kernel, r.shape, r.dtype, str(r.T), fmt(r.ours), fmt(gbs, ".0f"),
                 fmt(100 * gbs / copy_bw if gbs else None, ".0f")]
        for b in baselines:
            t = r.others.get(b)
            cells += [fmt(t), fmt(t / r.ours if t and r.ours else None, ".1f")]
        cells.append(r.note.strip())
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment(device: torch.device) -> str:
    try:
        import triton
        version = triton.__version__
    except ImportError:
        version = "not installed"
    parts = [f"torch {torch.__version__}", f"triton {version}", f"Python {platform.python_version()}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        import subprocess
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
        parts = [f"GPU {props.name}", f"driver {driver}", f"CUDA {torch.version.cuda}"] + parts
    else:
        parts = [f"CPU {platform.processor() or platform.machine()}", f"{torch.get_num_threads()} threads"] + parts
    try:
        parts.append(f"SpikingJelly {importlib.metadata.version('spikingjelly')}")
    except importlib.metadata.PackageNotFoundError:
        parts.append("SpikingJelly not installed")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--T", default="1,2,4,8,16", help="comma-separated time steps")
    ap.add_argument("--dtypes", default=None, help="comma-separated of fp16,bf16,fp32 (default fp16,fp32 on "
                                                     "CUDA, fp32 on the CPU)")
    ap.add_argument("--batch", type=int, default=None, help="batch of the large shape (default 64 on CUDA, "
                                                             "4 on the CPU)")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per cell on the CPU (CUDA: do_bench)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--out", help="also write the report (markdown) to this file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    dtypes = (args.dtypes or ("fp16,fp32" if device.type == "cuda" else "fp32")).split(",")
    Ts = [int(t) for t in args.T.split(",")]
    big_b = args.batch or (64 if device.type == "cuda" else 4)
    timer = Timer(device, args.reps)
    compile_ok = not args.no_compile
    sj = spikingjelly_plif(device)
    baselines = ["eager", "compile"] + (["SpikingJelly"] if sj else [])

    shapes = [(big_b, 128, 32, 32), (1, 128, 32, 32)]
    # The model's configuration (K=4, k_t=2); with SpikingJelly also K=1, k_t=1, its PLIF neuron.
    configs = [(4, 2, None)] + ([(1, 1, sj)] if sj else [])
    work = [(kind, shape, d, T, cfg) for kind in ("fwd", "train") for cfg in configs for shape in shapes
            for d in dtypes for T in Ts]
    rows = []
    copy_bw = copy_bandwidth(device, timer)
    for kind, (B, C, H, W), d, T, (K, k_t, plif) in tqdm(work, desc="scb tail", file=sys.stderr):
        rows.append(bench_tail(T, B, C, H, W, d, device, timer, kind == "train", compile_ok, K, k_t, plif))
    for B, per, sensor, s in tqdm([(big_b, 4_000, (34, 34), 1), (1, 200_000, (128, 128), 4)],
                                  desc="compression", file=sys.stderr):
        rows.append(bench_compression(B, per, sensor, 4, 4, s, device, timer, compile_ok))

    report = [
        "# Kernel microbenchmarks", "",
        f"Command: `python kernels/bench.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(), "",
        f"Environment: {environment(device)}.", "",
        f"Measured copy bandwidth: {copy_bw:.0f} GB/s (read + write).", "",
        "Times are medians in ms" + (" (triton.testing.do_bench)" if device.type == "cuda" else
                                     f" of {args.reps} wall-clock runs after 3 warm-up runs") +
        "; `x vs` = baseline time / our time. SCB-tail rows: soft reset, arctan surrogate, tau = 2; "
        "K=1, k_t=1 rows are SpikingJelly's PLIF neuron (its column is filled there only).", "",
    ]
    if device.type != "cuda":
        report += ["**No GPU here: the fused Triton kernels were not timed (the `ours`, GB/s and speed-up "
                   "columns need a CUDA GPU). The table holds the CPU reference paths only.**", ""]
    report.append(table(rows, copy_bw, baselines))
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
