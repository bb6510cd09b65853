"""The whole GPU check in one call: correctness, kernel timings and end-to-end timings on one GPU.

    python benchmarks/gpu_report.py OUT_DIR [--budget-s 420]     # on a GPU machine (make gpu-report)
    python benchmarks/gpu_report.py OUT_DIR --dry-run            # on the CPU: every section, tiny shapes

Writes ``OUT_DIR/report.md`` and ``OUT_DIR/report.json`` (every number) after each section, so a run cut
off by its time limit still leaves what it measured, and prints a verdict table last. Sections, most
important first:

1. environment: GPU, driver, CUDA, torch, Triton, Python, the package's commit and the optional packages;
2. correctness: the kernel parity tests on CUDA tensors; the float64 case that failed on an H100, with the
   first element where kernel and reference part; each zoo architecture under ``backend="triton"`` against
   ``backend="torch"`` on the same GPU and against the CPU fast path (spikes, logits, labels); a streaming
   session on the GPU against the offline forward; ``torch.compile(fullgraph=True)``; CUDA-graph capture;
3. kernel microbenchmarks (``kernels/bench.py``'s rows): the SCB tail forward and forward+backward and the
   compression against the eager reference, ``torch.compile`` of it and SpikingJelly's PLIF, with the copy
   bandwidth measured in the same run;
4. end to end for each zoo architecture: batch-1 latency (median, p99) with and without CUDA graphs,
   throughput at the batch that saturates the GPU, peak memory; the same network as a SpikingJelly user
   builds it (PLIF, ``ToFrame`` frames at T = 16 and T = 4); a training step at batch 64 against SpikingJelly's.

``--dry-run`` runs on the CPU with Triton's interpreter and tiny shapes: it proves every section executes
and claims no timing (its numbers are not measurements of anything). The GPU machine reaches no package
registry: ``make gpu-wheels`` (on a machine that does) puts what must travel into ``.gpu/`` (the wheels of
this package, tonic and SpikingJelly with what they need beyond the machine's own torch and Triton, a few
N-MNIST recordings and the commit), and ``make gpu-report`` installs them and runs this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if "--dry-run" in sys.argv:  # before Triton is imported: its interpreter runs the kernels on the CPU
    os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGETS = [  # (key in the results, what the issue asks, test on the measured value)
    ("tail_fwd_pct_copy_bw", "SCB-tail forward T=4 B=64 C=128 32x32: >= 80% of copy bandwidth", lambda v: v >= 80),
    ("tail_fwd_x_eager", "SCB-tail forward: >= 5x the eager reference", lambda v: v >= 5),
    ("tail_train_x_sj", "forward+backward: faster than SpikingJelly's PLIF at equal shape", lambda v: v > 1),
    ("dvsgesture_graph_ms", "dvsgesture-t4 batch-1 end to end with CUDA graphs: < 1 ms", lambda v: v < 1),
    ("throughput_x_sj16", "throughput: >= 3x SpikingJelly's T=16 pipeline", lambda v: v >= 3),
    ("train_step_x_sj", "training step at batch 64: >= 1.5x SpikingJelly at equal T", lambda v: v >= 1.5),
]


class Report:
    """Sections of markdown and a JSON of every number, written out after each section."""

    def __init__(self, out: Path, dry: bool, budget_s: float):
        self.out, self.dry, self.start, self.budget_s = out, dry, time.perf_counter(), budget_s
        self.md: list[str] = []
        self.data: dict = {"dry_run": dry, "sections": {}, "targets": {}}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def section(self, name: str, title: str, fn, *args, needs_s: float = 0.0) -> None:
        """Run one section; its failure is recorded (with the traceback's end) and the next one runs."""
        began = time.perf_counter()
        print(f"[gpu_report] {name} ({self.left():.0f} s left)", file=sys.stderr, flush=True)
        self.md += ["", f"## {title}", ""]
        entry = self.data["sections"].setdefault(name, {})
        if self.left() < needs_s:
            entry["skipped"] = f"time budget: {self.left():.0f} s left, this section needs about {needs_s:.0f}"
            self.md.append(f"**Skipped**: {entry['skipped']}.")
        else:
            try:
                fn(self, entry, *args)
            except Exception as err:  # noqa: BLE001 - a failed section is a result, never the end of the run
                entry["error"] = f"{type(err).__name__}: {err}"
                entry["traceback"] = traceback.format_exc()[-3000:]
                self.md += [f"**Failed**: `{entry['error']}`", "", "```", entry["traceback"].strip(), "```"]
        entry["seconds"] = round(time.perf_counter() - began, 1)
        self.write()

    def table(self, rows: list[dict], columns: list[str]) -> None:
        self.md.append("| " + " | ".join(columns) + " |")
        self.md.append("|" + "---|" * len(columns))
        for r in rows:
            self.md.append("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |")

    def write(self) -> None:
        (self.out / "report.json").write_text(json.dumps(self.data, indent=1, default=str))
        head = ["# GPU report", "", f"Command: `python benchmarks/gpu_report.py {' '.join(sys.argv[1:])}`", ""]
        if self.dry:
            head += ["**Dry run on the CPU (Triton's interpreter, tiny shapes): every section executed; no number "
                     "here measures anything.**", ""]
        (self.out / "report.md").write_text("\n".join(head + self.md) + "\n")


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ---------------------------------------------------------------------------------- 1. environment
def environment(rep: Report, entry: dict, device: torch.device) -> None:
    import importlib.metadata as md

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "triton": version("triton"), "numba": version("numba"), "tonic": version("tonic"),
           "spikingjelly": version("spikingjelly"), "stc_zoo_commit": commit(),
           "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), sms=props.multi_processor_count,
                   driver=_run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]))
    else:
        env["gpu"] = "none (dry run on the CPU)"
    env["wheels"] = sorted(p.name for p in (ROOT / ".gpu" / "wheels").glob("*.whl"))
    entry.update(env)
    rep.table([{"what": k, "value": v} for k, v in env.items() if k != "wheels"], ["what", "value"])
    rep.md += ["", f"Wheels carried (`make gpu-wheels`): {', '.join(env['wheels']) or 'none'}."]


def commit() -> str:
    saved = ROOT / ".gpu" / "commit.txt"
    if saved.is_file():
        return saved.read_text().strip()
    return _run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]) or "unknown"


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---------------------------------------------------------------------------------- 2. correctness
def parity_tests(rep: Report, entry: dict, device: torch.device) -> None:
    """tests/test_kernels.py on CUDA tensors (STC_TEST_CUDA=1); dry run: a slice of it in the interpreter."""
    # Run from a scratch folder: from the checkout, its stc_zoo/ (which has no kernels/ inside: they install
    # as stc_zoo.kernels) would shadow the installed package on the GPU machine.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--rootdir", str(ROOT),
           str(ROOT / "tests" / "test_kernels.py")]
    if device.type == "cuda":
        env["STC_TEST_CUDA"] = "1"
        env.pop("TRITON_INTERPRET", None)
        try:  # compiling ~200 kernel variants dominates (38 s for 13 tests on an H100): one worker per core
            import xdist  # noqa: F401
            cmd += ["-n", str(min(16, os.cpu_count() or 1))]
        except ImportError:
            pass
    else:
        cmd += ["-k", "float64 and (T1- or T3-soft-rectangular-12)"]
    timeout = max(60, min(240, rep.left() - 200)) if device.type == "cuda" else 300
    try:
        out = subprocess.run(cmd, cwd=rep.out, env=env, capture_output=True, text=True, timeout=timeout)
        tail, code = (out.stdout + out.stderr)[-4000:], out.returncode
    except subprocess.TimeoutExpired as err:
        tail, code = f"timed out after {timeout:.0f} s\n{(err.stdout or b'')[-3000:]!r}", "timeout"
    summary = next((line for line in reversed(tail.splitlines()) if " passed" in line or " failed" in line), tail[-200:])
    entry.update(returncode=code, summary=summary.strip(), failed=[line for line in tail.splitlines()
                                                                    if line.startswith("FAILED")])
    rep.md += [f"`{' '.join(cmd[1:])}`{' (STC_TEST_CUDA=1)' if device.type == 'cuda' else ''}: **{summary.strip()}**"]
    if entry["failed"]:
        rep.md += ["", "```", *entry["failed"][:20], "```"]


def float64_case(rep: Report, entry: dict, device: torch.device) -> None:
    """The case that failed on an H100 (T=3, K=1, k_t=4, soft reset, v0, shape (3, 700, 1)): equal or not,
    and where kernel and reference first part (their pre-spike membranes, from the kernel's stored H)."""
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ["STC_TEST_CUDA"] = "1" if device.type == "cuda" else os.environ.get("STC_TEST_CUDA", "")
    from stc_zoo.kernels import ops, scb_tail_triton
    from stc_zoo.kernels.scb_tail_ref import temporal_mix_ref
    from stc_zoo.kernels.surrogate import divide

    g = torch.Generator().manual_seed(3 * 31 + 1)
    T, shape, k_t, v_th = 3, (3, 700, 1), 4, 0.8
    y = (torch.randn(T, *shape, generator=g, dtype=torch.float64) * 4)
    w = torch.randn(shape[1], k_t, generator=g, dtype=torch.float64) * 0.7
    beta = torch.rand(shape[1], generator=g, dtype=torch.float64) * 0.6 + 0.35
    v0 = torch.randn(*shape, generator=g, dtype=torch.float64)
    y, w, beta, v0 = (t.to(device) for t in (y, w, beta, v0))
    kw = dict(v_th=v_th, K=1, reset="soft", detach_reset=False, surrogate="rectangular", alpha=1.3)
    with torch.no_grad():
        got, h_kernel = scb_tail_triton.scb_tail_forward(y, w, beta, v0, v_th, 1, "soft", torch.float64, True)
        want = ops.scb_tail(y, w, beta, v0=v0, backend="torch", **kw)
        # the reference's membranes, step by step, in the reference's own operations
        x, v, h_ref = temporal_mix_ref(y, w), v0, []
        b = beta.view(-1, 1)
        for t in range(T):
            h = v + (x[t] - v) * b
            s = torch.clamp(torch.floor(divide(h, v_th)), 0, 1)
            h_ref.append(h)
            v = h - s * v_th
        h_ref = torch.stack(h_ref)
    entry["spikes_equal"] = bool(torch.equal(got, want))
    entry["spikes_differing"] = int((got != want).sum())
    entry["h_equal"] = bool(torch.equal(h_kernel, h_ref))
    entry["h_max_abs_diff"] = float((h_kernel - h_ref).abs().max())
    if not entry["h_equal"]:
        first = (h_kernel != h_ref).flatten().nonzero()[0].item()
        idx = np.unravel_index(first, tuple(h_ref.shape))
        entry["first_h_difference"] = {"index [t, b, c, s]": [int(i) for i in idx], "kernel": float(h_kernel[idx]),
                                       "reference": float(h_ref[idx]), "x (mixed input)": float(x[idx]),
                                       "ulps": float((h_kernel[idx] - h_ref[idx]).abs() / torch.finfo(torch.float64).eps
                                                     / h_ref[idx].abs().clamp(min=1e-300))}
    # PyTorch on CUDA divides by a Python float as a multiplication by its reciprocal; the reference divides
    # by a tensor on the input's device, so both devices divide (stc_zoo.kernels.surrogate.divide).
    h = h_ref.flatten()
    entry["reciprocal_vs_division_differs"] = int((torch.floor(h * (1 / v_th)) != torch.floor(h / v_th)).sum())
    rep.table([{k: v for k, v in entry.items() if not isinstance(v, dict)}], [k for k, v in entry.items()
                                                                            if not isinstance(v, dict)])
    if "first_h_difference" in entry:
        rep.md += ["", f"First membrane difference: `{entry['first_h_difference']}`"]


def models_under_test(device: torch.device):
    """Each zoo architecture: the bundled trained weights where there are some, seeded random ones otherwise,
    with recordings (real N-MNIST ones carried in .gpu/data, else synthetic events on the sensor)."""
    from stc_zoo import StcSNN, create_model, zoo
    from stc_zoo.data import read_event_file, synthetic_events

    data = sorted((ROOT / ".gpu" / "data").glob("**/*.bin")) or sorted((ROOT.parent / "shared" / "data" /
                                                                         "nmnist-subset" / "Train").glob("*/0000*.bin"))
    for name in zoo.list_models():
        entry = zoo.get_entry(name)
        if entry.bundled is not None:
            model, weights = StcSNN.from_pretrained(entry.bundled), "bundled (trained)"
        else:
            torch.manual_seed(0)
            model, weights = create_model(name).eval(), "random (seed 0)"
        if entry.reader == "nmnist" and data:
            events, source = [read_event_file(p) for p in data[:8]], f"{min(len(data), 8)} N-MNIST recordings"
        else:
            sensor = model.config.input.sensor_size
            events = [synthetic_events(sensor, 20_000, seed=s) for s in range(4)]
            source = "4 synthetic streams of 20,000 events"
        yield name, model, weights, events, source


def zoo_parity(rep: Report, entry: dict, device: torch.device, dry: bool) -> None:
    """Per architecture: triton vs torch on the device (spikes equal, logits), and vs the CPU fast path."""
    from stc_zoo.network import record_spikes

    rows = []
    for name, model, weights, events, source in models_under_test(device):
        if dry:  # one short recording: Triton's interpreter is slow on the 64x64 and T = 15 architectures
            events = [events[0][:500]]
        cpu = model.fuse_for_inference()
        x_cpu = cpu.compress(events)
        with torch.no_grad():
            cpu_logits = cpu.set_backend("numba" if not dry else "torch")(x_cpu)
        gpu = type(model)(model.config, backend="triton").to(device)
        gpu.network.fold_batchnorm()
        gpu.network.load_state_dict(cpu.network.state_dict())
        gpu.eval()
        x = gpu.compress(events)
        compress_equal = bool(torch.equal(x.cpu(), x_cpu))
        logits_t, spikes_t = record_spikes(gpu.network, x)
        gpu.set_backend("torch")
        logits_r, spikes_r = record_spikes(gpu.network, x)
        gpu.set_backend("triton")
        equal = all(torch.equal(a, b) for (_, a), (_, b) in zip(spikes_t, spikes_r))
        share = float(np.mean([(a == b).float().mean().item() for (_, a), (_, b) in zip(spikes_t, spikes_r)]))
        rows.append({"model": name, "weights": weights, "input": source, "compression equal to CPU": compress_equal,
                     "spikes triton == torch": equal, "spikes equal (share)": share,
                     "logits max |triton - torch|": float((logits_t - logits_r).abs().max()),
                     "logits max |GPU - CPU fast path|": float((logits_t.cpu() - cpu_logits).abs().max()),
                     "labels equal to CPU": bool(torch.equal(logits_t.argmax(-1).cpu(), cpu_logits.argmax(-1)))})
    entry["rows"] = rows
    rep.md += ["Tolerance stated: spikes of the two GPU backends bit-equal (same convs, same tail math); against "
               "the CPU fast path the convs round differently (cuDNN vs the sparse Numba conv), so logits agree "
               "to about 1e-4 and labels are equal.", ""]
    rep.table(rows, list(rows[0]))


def streaming_parity(rep: Report, entry: dict, device: torch.device, dry: bool) -> None:
    """nmnist-stream-20ms on the device: packets pushed into a session == the offline forward, per step."""
    import dataclasses

    from stc_zoo import StcSNN, zoo
    from stc_zoo.transforms import SpatioTemporalCompression

    model = StcSNN.from_pretrained(zoo.get_entry("nmnist-stream-20ms").bundled, device=device)
    _, _, _, events, source = next(m for m in models_under_test(device) if m[0] == "nmnist-t4")
    ev = events[0][:800] if dry else events[0]
    steps = 4 if dry else 15
    session = model.stream()
    out = []
    for packet in np.array_split(ev, 37):
        out += session.push(packet)
    out += session.push(now_us=int(ev["t"][0]) + steps * model.config.input.step_us)
    out = out[:steps]
    pipe = SpatioTemporalCompression.from_config(dataclasses.replace(model.config.input, T=len(out)), model.backend)
    x = pipe.batch([ev], device=device)
    with torch.no_grad():
        offline = model.network.forward_steps(x).logits[:, 0]
    streamed = torch.stack([o.logits for o in out]).to(offline.device)
    entry.update(steps=len(out), bit_equal=bool(torch.equal(streamed, offline)),
                 max_abs_diff=float((streamed - offline).abs().max()), input=source)
    rep.table([entry], ["steps", "bit_equal", "max_abs_diff", "input"])


def compile_and_graphs(rep: Report, entry: dict, device: torch.device, dry: bool) -> None:
    """torch.compile(fullgraph=True) of the network under backend="triton", and CUDA-graph capture of batch 1."""
    from stc_zoo import StcSNN, zoo

    model = StcSNN.from_pretrained(zoo.get_entry("nmnist-t4").bundled, device=device, backend="triton")
    model.fuse_for_inference()
    _, _, _, events, _ = next(m for m in models_under_test(device) if m[0] == "nmnist-t4")
    x = model.compress(events[:1] if not dry else [events[0][:500]])
    with torch.no_grad():
        eager = model.network(x)
        start = time.perf_counter()
        try:
            # the dry run traces the same whole graph (fullgraph: any break is an error) but skips Inductor's
            # C++ build on the CPU (half a minute); on the GPU the report compiles with Inductor
            backend = "aot_eager" if dry else "inductor"
            compiled = torch.compile(model.network, fullgraph=True, backend=backend)
            got = compiled(x)
            entry["compile"] = {"ok": True, "seconds": round(time.perf_counter() - start, 1),
                                "max_abs_diff": float((got - eager).abs().max()),
                                "note": f"backend {backend}"}
        except Exception as err:  # noqa: BLE001 - reported
            entry["compile"] = {"ok": False, "error": f"{type(err).__name__}: {str(err)[:500]}"}
        if device.type == "cuda":
            static = x.clone()
            graph, captured = capture(lambda: model.network(static))
            graph.replay()
            torch.cuda.synchronize()
            entry["cuda_graph"] = {"ok": True, "max_abs_diff": float((captured - eager).abs().max())}
        else:
            entry["cuda_graph"] = {"ok": None, "note": "needs CUDA (dry run: not captured)"}
    rep.table([{"check": k, **v} for k, v in entry.items() if isinstance(v, dict)],
              ["check", "ok", "seconds", "max_abs_diff", "error", "note"])


def capture(fn):
    """A CUDA graph of ``fn()`` (after three warm-up calls on a side stream, as capture needs) and its output."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


# ---------------------------------------------------------------------------------- 3. kernels
def kernel_bench(rep: Report, entry: dict, device: torch.device, dry: bool) -> None:
    sys.path.insert(0, str(ROOT / "kernels"))
    import bench

    timer = bench.Timer(device, 3 if dry else 20)
    sj = bench.spikingjelly_plif(device)
    entry["spikingjelly_backend"] = sj[2] if sj else "not installed"
    B, C, H, W = (2, 8, 4, 4) if dry else (64, 128, 32, 32)
    copy_bw = bench.copy_bandwidth(device, timer) if not dry else 1.0
    rows = [bench.bench_tail(4, B, C, H, W, "fp16", device, timer, train=False, compile_ok=not dry, K=4, k_t=2),
            bench.bench_tail(4, B, C, H, W, "fp16", device, timer, train=True, compile_ok=not dry, K=4, k_t=2)]
    if sj:
        rows += [bench.bench_tail(4, B, C, H, W, d, device, timer, train=t, compile_ok=False, K=1, k_t=1, sj=sj)
                 for t in (False, True) for d in ("fp16", "fp32")]
    rows.append(bench.bench_compression(2 if dry else 64, 300 if dry else 4000, (34, 34), 4, 4, 1, device, timer,
                                        not dry))
    entry["copy_bandwidth_gbs"] = copy_bw
    entry["rows"] = [{"kernel": r.kernel, "shape": r.shape, "dtype": r.dtype, "T": r.T, "ours_ms": r.ours,
                      "gbs": (r.bytes / r.ours / 1e6 if r.ours else None), **{f"{k}_ms": v for k, v in r.others.items()},
                      "note": r.note.strip()} for r in rows]
    baselines = ["eager", "compile"] + (["SpikingJelly"] if sj else [])
    rep.md += [f"Copy bandwidth measured in this run: {copy_bw:.0f} GB/s (read + write).", "",
               bench.table(rows, copy_bw, baselines)]
    # What the exact rounding costs: the same two rows with FP fusion on (fused multiply-adds, one rounding).
    from stc_zoo.kernels import scb_tail_triton

    saved = dict(scb_tail_triton._LAUNCH)
    try:
        scb_tail_triton._LAUNCH["enable_fp_fusion"] = True
        fused = [bench.bench_tail(4, B, C, H, W, "fp16", device, timer, train=t, compile_ok=False, K=4, k_t=2)
                 for t in (False, True)]
    finally:
        scb_tail_triton._LAUNCH.clear()
        scb_tail_triton._LAUNCH.update(saved)
    entry["fp_fusion_cost"] = [{"kernel": f.kernel, "unfused_ms": r.ours, "fused_ms": f.ours,
                                "unfused / fused": (r.ours / f.ours if r.ours and f.ours else None)}
                               for r, f in zip(rows[:2], fused)]
    rep.md += ["", "What the kernels' exact rounding costs (no fused multiply-adds, as the reference rounds):", ""]
    rep.table(entry["fp_fusion_cost"], ["kernel", "unfused_ms", "fused_ms", "unfused / fused"])
    fwd, train = entry["rows"][0], entry["rows"][1]
    if fwd["ours_ms"]:
        rep.data["targets"]["tail_fwd_pct_copy_bw"] = 100 * fwd["gbs"] / copy_bw
        rep.data["targets"]["tail_fwd_x_eager"] = fwd["eager_ms"] / fwd["ours_ms"]
    sj_train = [r for r in entry["rows"] if r["kernel"].startswith("fwd+bwd K=1") and r.get("SpikingJelly_ms")]
    if sj_train and sj_train[0]["ours_ms"]:
        rep.data["targets"]["tail_train_x_sj"] = sj_train[0]["SpikingJelly_ms"] / sj_train[0]["ours_ms"]
    del train


# ---------------------------------------------------------------------------------- 4. end to end
def timed(fn, device: torch.device, runs: int, warmup: int) -> dict:
    """Median and p99 wall milliseconds of ``fn`` (synchronised on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - start))
    times.sort()
    return {"median_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))]}


def end_to_end(rep: Report, entry: dict, device: torch.device, dry: bool) -> None:
    from stc_zoo.benchmark import spikingjelly_network

    runs, warmup = (3, 1) if dry else (200, 20)
    rows, train_rows = [], []
    for name, model, weights, events, source in models_under_test(device):
        if dry and name not in ("nmnist-t4", "dvsgesture-t4"):
            continue
        ev = [e[:500] for e in events] if dry else events
        # The dry run times nothing: the reference stands in for the kernels (Triton's interpreter would take minutes).
        gpu = type(model)(model.config, backend="torch" if dry else "triton").to(device).eval()
        gpu.network.load_state_dict(model.network.state_dict())
        gpu.fuse_for_inference()
        one = [ev[0]]
        with torch.no_grad():
            plain = timed(lambda: torch.softmax(gpu(gpu.compress(one)), -1), device, runs, warmup)
        row = {"model": name, "batch-1 ms (median)": plain["median_ms"], "batch-1 ms (p99)": plain["p99_ms"]}
        if device.type == "cuda":  # compression stays outside the graph (its size depends on the events)
            row.update(graph_latency(gpu, one, device, runs, warmup))
        row.update(throughput(gpu, ev, device, dry))
        sj = spikingjelly_network(gpu)
        for T in (16, 4):
            if sj is None:
                break
            row[f"SpikingJelly T={T} batch-1 ms"], row[f"SpikingJelly T={T} samples/s"] = sj_pipeline(
                sj, gpu, ev, T, device, runs, warmup, dry)
        rows.append(row)
        train_rows.append(training_step(gpu, sj, device, dry))
        if name == "dvsgesture-t4" and "batch-1 ms with graph (median)" in row:
            rep.data["targets"]["dvsgesture_graph_ms"] = row["batch-1 ms with graph (median)"]
        if name == "dvsgesture-t4" and row.get("SpikingJelly T=16 samples/s"):
            rep.data["targets"]["throughput_x_sj16"] = row["samples/s"] / row["SpikingJelly T=16 samples/s"]
        if name == "dvsgesture-t4" and train_rows[-1].get("SpikingJelly ms"):
            rep.data["targets"]["train_step_x_sj"] = train_rows[-1]["SpikingJelly ms"] / train_rows[-1]["ours ms"]
        train_rows[-1]["model"] = name
    entry["rows"], entry["training"] = rows, train_rows
    rep.md += (["Dry run: the PyTorch reference stands in for the Triton kernels in this section.", ""] if dry else [])
    rep.md += ["Raw events -> probabilities (compression on the device included; for SpikingJelly, tonic's "
               "`ToFrame` on the CPU and the copy in). " + ("" if sj_available() else "SpikingJelly not installed: "
                                                              "its columns are left out."), ""]
    columns = sorted({k for r in rows for k in r}, key=lambda k: (k != "model", k))
    rep.table(rows, columns)
    rep.md += ["", "Training step (forward, backward, AdamW) at batch 64 on the compressed input, T = 4 for both:", ""]
    rep.table(train_rows, ["model", "ours ms", "SpikingJelly ms", "SpikingJelly backend"])


def sj_available() -> bool:
    try:
        import spikingjelly  # noqa: F401
    except ImportError:
        return False
    return True


def graph_latency(model, events, device, runs, warmup) -> dict:
    x = model.compress(events)
    static = x.clone()
    with torch.no_grad():
        graph, out = capture(lambda: torch.softmax(model.network(static), -1))

    def once():
        static.copy_(model.compress(events))
        graph.replay()
        return out
    t = timed(once, device, runs, warmup)
    return {"batch-1 ms with graph (median)": t["median_ms"], "batch-1 ms with graph (p99)": t["p99_ms"]}


def throughput(model, events, device, dry) -> dict:
    """Samples/s at doubling batches until it stops growing by 10%; the best, its batch and peak memory."""
    best, best_batch, peak = 0.0, 1, 0
    batch = 1
    while batch <= (4 if dry else 512):
        batch_events = [events[i % len(events)] for i in range(batch)]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            t = timed(lambda: model(model.compress(batch_events)), device, 3 if dry else 20, 1 if dry else 3)
        rate = 1e3 * batch / t["median_ms"]
        if device.type == "cuda":
            peak = max(peak, torch.cuda.max_memory_allocated(device))
        if rate < best * 1.1 and batch > 8:
            break
        if rate > best:
            best, best_batch = rate, batch
        batch *= 2
    return {"samples/s": best, "at batch": best_batch, "peak memory MiB": peak / 2**20 if peak else None}


def sj_pipeline(net, model, events, T, device, runs, warmup, dry) -> tuple[float, float]:
    """SpikingJelly as its users run it: ToFrame(n_event_bins=T) on the CPU, pooled to the model's input,
    copied in, then its network; batch-1 latency and batch-64 throughput."""
    import tonic.transforms

    W, H = model.config.input.sensor_size
    to_frame = tonic.transforms.ToFrame(sensor_size=(W, H, 2), n_event_bins=T)
    spatial = model.config.input.spatial
    net = net.to(device)

    def frames(batch):
        x = torch.stack([torch.from_numpy(to_frame(e).astype(np.float32)) for e in batch], 1)  # [T, B, 2, H, W]
        if spatial > 1:
            x = torch.nn.functional.avg_pool2d(x.flatten(0, 1), spatial).unflatten(0, x.shape[:2]) * spatial ** 2
        return x.to(device, non_blocking=True)

    with torch.no_grad():
        one = timed(lambda: net(frames(events[:1])).softmax(-1), device, runs, warmup)
        B = 4 if dry else 64
        batch = [events[i % len(events)] for i in range(B)]
        many = timed(lambda: net(frames(batch)), device, 3 if dry else 20, 1 if dry else 3)
    return one["median_ms"], 1e3 * B / many["median_ms"]


def training_step(model, sj, device, dry) -> dict:
    """One optimiser step at batch 64 (T = 4) for our network and SpikingJelly's same-shape one."""
    import copy

    B = 4 if dry else 64
    T = model.config.input.T
    H, W = model.config.input.output_size
    x = torch.rand(T, B, 2, H, W, device=device) * 3
    y = torch.randint(0, model.config.network.num_classes, (B,), device=device)
    ours = type(model)(model.config, backend="triton" if device.type == "cuda" else "torch").to(device).train()
    row = {"ours ms": train_ms(ours.network, x, y, device, dry)}
    if sj is not None:
        sj = copy.deepcopy(sj).to(device).train()
        from spikingjelly.activation_based import functional

        backends = [b for b in ("triton", "cupy", "torch") if _try_backend(sj, b, functional)]
        row["SpikingJelly backend"] = backends[0] if backends else "torch"
        row["SpikingJelly ms"] = train_ms(sj, x, y, device, dry)
    return row


def _try_backend(net, backend, functional) -> bool:
    try:
        functional.set_backend(net, backend)
        return True
    except Exception:  # noqa: BLE001 - a backend this machine lacks
        return False


def train_ms(net, x, y, device, dry) -> float:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    return timed(step, device, 3 if dry else 30, 1 if dry else 5)["median_ms"]


# ---------------------------------------------------------------------------------- verdict
def verdict(rep: Report) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for key, what, ok in TARGETS:
        value = rep.data["targets"].get(key)
        met = "-" if value is None or rep.dry else ("yes" if ok(value) else "**no**")
        lines.append(f"| {what} | {_cell(value) if not rep.dry else '(dry run)'} | {met} |")
    failed = [n for n, s in rep.data["sections"].items() if "error" in s or "skipped" in s]
    lines += ["", f"sections failed or skipped: {', '.join(failed) or 'none'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for report.md and report.json")
    ap.add_argument("--dry-run", action="store_true", help="on the CPU, Triton's interpreter, tiny shapes")
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall-time budget (default 420 s = 7 min)")
    args = ap.parse_args(argv)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("gpu_report: no CUDA device here; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if dry else "cuda")
    rep = Report(args.out, dry, args.budget_s)
    rep.section("environment", "1. Environment", environment, device)
    rep.section("parity_tests", "2a. Kernel parity tests on the device", parity_tests, device, needs_s=30)
    rep.section("float64_case", "2b. The float64 case that failed on an H100", float64_case, device)
    rep.section("zoo_parity", "2c. Each zoo architecture: triton vs torch on the device, and vs the CPU fast path",
                zoo_parity, device, dry, needs_s=20)
    rep.section("streaming", "2d. A streaming session on the device vs the offline forward", streaming_parity,
                device, dry, needs_s=10)
    rep.section("compile_graphs", "2e. torch.compile(fullgraph=True) and CUDA-graph capture", compile_and_graphs,
                device, dry, needs_s=60)
    rep.section("kernels", "3. Kernel microbenchmarks", kernel_bench, device, dry, needs_s=60)
    rep.section("end_to_end", "4. End to end, raw events -> probabilities", end_to_end, device, dry, needs_s=60)
    text = verdict(rep)
    rep.md += ["", "## Verdict", "", text]
    rep.data["elapsed_s"] = round(time.perf_counter() - rep.start, 1)
    rep.write()
    print(text)
    print(f"\nwrote {args.out / 'report.md'} and {args.out / 'report.json'} in {rep.data['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
