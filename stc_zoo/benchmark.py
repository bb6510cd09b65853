"""End-to-end timing, raw events -> class probabilities, every path side by side in one process.

Rows are timed in interleaved rounds (each round times every row once, as the median of
``runs`` calls after the first round's warm-up), because shared machines drift by 2x within
minutes; a row's time is the median over rounds and its ratio to the fast path is the median of
the per-round ratios. ``stc-zoo bench`` and ``benchmarks/e2e.py`` print these tables.

Rows: our compression alone (Numba and reference) and tonic's ``ToFrame(n_event_bins=16)``;
the fast path (the default); the reference path as it runs now (steps one at a time, so that
streaming matches it bit for bit) and as v0.1's default ran it (all steps in one batch); one
streaming step; and, when SpikingJelly is installed, the same network as a SpikingJelly user
builds it (PLIF neurons, T = 16 ``ToFrame`` frames), eager and ``torch.compile``d.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .timing import median_ms

log = logging.getLogger("stc_zoo")
SJ_STEPS = 16


def interleaved(rows: dict[str, Callable[[], object]], rounds: int, runs: int, warmup: int,
                baseline: str) -> list[dict]:
    """Median ms per row over ``rounds`` interleaved rounds, and the median per-round ratio to ``baseline``."""
    per_round: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(rounds):
        for name, fn in rows.items():
            per_round[name].append(median_ms(fn, runs, warmup if r == 0 else 1))
    base = per_round[baseline]
    rows = []
    for name, times in per_round.items():
        ratios = [t / b for t, b in zip(times, base)]
        rows.append({"path": name, "ms": statistics.median(times), "x fast": statistics.median(ratios),
                     "ratio min": min(ratios), "ratio max": max(ratios),
                     "ms spread": max(times) / min(times)})
    return rows


# A row whose per-round ratios span more than this factor (max / min) was timed on a machine that
# changed under it (another process took a core): its ratio is not to be trusted.
NOISY = 1.3


def noisy(rows: list[dict]) -> list[str]:
    """The rows whose per-round ratios disagree by more than NOISY."""
    return [r["path"] for r in rows if r.get("ratio min") and r["ratio max"] / r["ratio min"] > NOISY]


def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return fn()
    return run


# ---------------------------------------------------------------------------------- our paths
def v01_default(model) -> Callable:
    """v0.1's default CPU path: reference compression, every step of the reference network in one batch."""
    from .transforms import SpatioTemporalCompression

    pipe = SpatioTemporalCompression.from_config(model.config.input, backend="torch")

    def predict(events):
        x = pipe.batch([events])
        return torch.softmax(model.network._reference_steps(x, {}, False, per_step=False).logits.mean(0), -1)
    return predict


def stream_twin(model, events: np.ndarray):
    """A duration-binned copy of ``model`` (same weights) whose T steps span ``events``, and each step's packet.

    For a model binned by count or time this times streaming on the same network and sparsity."""
    c = model.config.input
    if c.streamable:
        twin, step = model, c.step_us
    else:
        span = int(events["t"][-1]) - int(events["t"][0]) + 1
        step = -(-span // (c.T * c.ratio)) * c.ratio
        twin = _copy(model, model.config.replace(split_by="duration", step_us=step), model.backend)
    t0 = int(events["t"][0])
    cuts = np.searchsorted(events["t"], [t0 + k * step for k in range(twin.config.input.T + 1)])
    packets = [(events[cuts[k]:cuts[k + 1]], t0 + (k + 1) * step) for k in range(twin.config.input.T)]
    return twin, packets


def stream_steps(twin, packets) -> Callable:
    """Push a recording step by step (each push completes one step); returns the number of steps."""
    session = twin.stream()

    def run():
        session.reset()
        for packet, end in packets:
            session.push(packet, now_us=end)
        return len(packets)
    return run


# ---------------------------------------------------------------------------------- SpikingJelly
def spikingjelly_network(model) -> nn.Module | None:
    """The network of ``model`` as SpikingJelly users write it: Conv-BN-PLIF-MaxPool blocks, then
    Linear-PLIF-Linear, multi-step, mean over time. Random weights (it is timed, not evaluated)."""
    try:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except ImportError:
        return None
    cfg = model.config.network
    H, W = model.config.input.output_size
    mods, c_in = [], 2
    for c_out in cfg.channels:
        mods += [layer.Conv2d(c_in, c_out, cfg.kernel_size, padding=cfg.kernel_size // 2, bias=False),
                 layer.BatchNorm2d(c_out),
                 neuron.ParametricLIFNode(init_tau=cfg.tau_init, detach_reset=cfg.detach_reset,
                                          surrogate_function=surrogate.ATan()),
                 layer.MaxPool2d(2)]
        c_in, H, W = c_out, H // 2, W // 2
    mods += [layer.Flatten(), layer.Linear(c_in * H * W, cfg.hidden),
             neuron.ParametricLIFNode(init_tau=cfg.tau_init, surrogate_function=surrogate.ATan()),
             layer.Linear(cfg.hidden, cfg.num_classes)]
    net = nn.Sequential(*mods)
    functional.set_step_mode(net, "m")

    class MeanOverTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            functional.reset_net(self.net)
            return self.net(x).mean(0)

    return MeanOverTime().eval()


def spikingjelly_rows(model, events: np.ndarray, compile_ok: bool) -> dict[str, Callable]:
    """SpikingJelly e2e rows (ToFrame(16) + its network), eager and compiled; {} without SpikingJelly."""
    import tonic.transforms

    net = spikingjelly_network(model)
    if net is None:
        log.warning("stc-zoo bench: SpikingJelly is not installed, so its rows are left out (pip install spikingjelly)")
        return {}
    W, H = model.config.input.sensor_size
    to_frame = tonic.transforms.ToFrame(sensor_size=(W, H, 2), n_event_bins=SJ_STEPS)
    spatial = model.config.input.spatial

    def frames(events):
        x = torch.from_numpy(to_frame(events).astype(np.float32)).unsqueeze(1)  # [T, 1, 2, H, W]
        return nn.functional.avg_pool2d(x.flatten(0, 1), spatial).unflatten(0, x.shape[:2]) * spatial ** 2 \
            if spatial > 1 else x

    rows = {f"e2e: SpikingJelly T={SJ_STEPS} on ToFrame, eager": no_grad(lambda: net(frames(events)).softmax(-1))}
    if compile_ok:
        compiled = torch.compile(net)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(frames(events))
        log.warning("stc-zoo bench: torch.compile of the SpikingJelly network took %.0f s", time.perf_counter() - start)
        rows[f"e2e: SpikingJelly T={SJ_STEPS} on ToFrame, torch.compile"] = no_grad(
            lambda: compiled(frames(events)).softmax(-1))
    return rows


# ---------------------------------------------------------------------------------- the table
def compare(model, events: np.ndarray, rounds: int = 5, runs: int = 50, warmup: int = 10,
            spikingjelly: bool = True, compile_baseline: bool = True) -> tuple[list[dict], dict]:
    """Batch-1 rows for one recording; returns (rows, facts) where facts hold the streaming step count."""
    import tonic.transforms

    from .transforms import SpatioTemporalCompression

    c = model.config.input
    W, H = c.sensor_size
    reference = SpatioTemporalCompression.from_config(c, backend="torch")
    fast = SpatioTemporalCompression.from_config(c, backend="auto")
    to_frame = tonic.transforms.ToFrame(sensor_size=(W, H, 2), n_event_bins=SJ_STEPS)
    ref_model = _copy(model, model.config, "torch")
    old = v01_default(ref_model)
    twin, packets = stream_twin(model, events)
    steps = stream_steps(twin, packets)
    rows = {
        "compress: stc-zoo one-pass kernel": lambda: fast.batch([events]),
        "compress: reference (torch ops)": lambda: reference.batch([events]),
        f"tonic ToFrame(n_event_bins={SJ_STEPS}) alone": lambda: to_frame(events),
        "e2e: stc-zoo fast path (default)": lambda: model.predict_proba(events),
        "e2e: stc-zoo reference (backend='torch')": lambda: ref_model.predict_proba(events),
        "e2e: v0.1 default (reference, steps batched)": no_grad(lambda: old(events)),
        f"stream: all {len(packets)} steps pushed one by one": steps,
    }
    if spikingjelly:
        rows.update(spikingjelly_rows(model, events, compile_baseline))
    table = interleaved(rows, rounds, runs, warmup, "e2e: stc-zoo fast path (default)")
    return table, {"stream_steps": len(packets)}


def _copy(model, config, backend: str):
    """A model of ``config`` on ``backend`` with ``model``'s weights (in their form), in eval mode."""
    from .model import StcSNN

    twin = StcSNN(config, backend=backend).eval()
    twin.network.match_form(model.network.state_dict())
    twin.network.load_state_dict(model.network.state_dict())
    return twin


def environment() -> str:
    """Hardware and versions, for the record."""
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import spikingjelly  # noqa: F401
        from importlib.metadata import version
        sj = version("spikingjelly")
    except Exception:  # noqa: BLE001 - absent or without metadata
        sj = "not installed"
    from .network_numba import PARALLEL_MIN_BATCH

    return (f"{cpu}, {os.cpu_count()} cores; {torch.get_num_threads()} torch threads (the Numba kernels use them from "
            f"batch {PARALLEL_MIN_BATCH} on, one below); "
            f"Python {platform.python_version()}, torch {torch.__version__}, numba {numba.__version__}, "
            f"numpy {np.__version__}, SpikingJelly {sj}")


def render(rows: list[dict], facts: dict, T: int, rounds: int, runs: int) -> str:
    """``compare``'s rows as a Markdown table with how they were timed, and the streaming step cost."""
    stream = next(r for r in rows if r["path"].startswith("stream:"))
    fast = next(r for r in rows if r["path"].startswith("e2e: stc-zoo fast"))
    lines = [f"Batch 1, raw events -> probabilities: median ms over {rounds} interleaved rounds of {runs} runs; "
             "ratio = median per-round ratio to the fast path; spread = the lowest and highest per-round ratio.", "",
             "| path | median ms | x the fast path | spread over rounds |", "|---|---:|---:|---:|"]
    lines += [f"| {r['path']} | {r['ms']:.3f} | {r['x fast']:.2f} | {r['ratio min']:.2f}-{r['ratio max']:.2f} |"
              for r in rows]
    lines += ["", f"Streaming: {stream['ms'] / facts['stream_steps']:.3f} ms per step; the offline forward's "
              f"per-step share is {fast['ms'] / T:.3f} ms ({stream['ms'] / facts['stream_steps'] / (fast['ms'] / T):.2f}x)."]
    shaky = noisy(rows)
    if shaky:
        lines += ["", f"**Warning: the machine was too noisy to trust some ratios**: the rounds of {', '.join(shaky)} "
                  f"disagree by more than {NOISY}x (max / min per-round ratio). Rerun when the machine is idle, or "
                  "with more --rounds."]
    return "\n".join(lines)



# ---------------------------------------------------------------------------------- batch N, both cores
def batch_rows(model, recordings: list[np.ndarray], batch: int, rounds: int, runs: int) -> list[dict]:
    """Batch-``batch`` throughput of ``predict_proba`` as it ran before chunking (the whole batch at once,
    one thread), in cache-sized chunks on one thread, and in chunks on every torch thread: interleaved
    rounds, each row's samples/s the median over rounds, its ratio the median per-round ratio to "before"."""
    from . import network_numba as nn_

    events = [recordings[i % len(recordings)] for i in range(batch)]
    saved = nn_.CHUNK_BYTES, nn_.PARALLEL_MIN_BATCH
    settings = {"before: the whole batch at once, one thread": (1 << 62, 1 << 62),
                "chunks of ~2 MB, one thread": (saved[0], 1 << 62),
                f"chunks of ~2 MB, {torch.get_num_threads()} threads from batch {saved[1]} (the default)": saved}

    def setting(values):
        def run():
            nn_.CHUNK_BYTES, nn_.PARALLEL_MIN_BATCH = values
            model.predict_proba(events)
        return run
    try:
        table = interleaved({k: setting(v) for k, v in settings.items()}, rounds, runs, 2, next(iter(settings)))
    finally:
        nn_.CHUNK_BYTES, nn_.PARALLEL_MIN_BATCH = saved
    for r in table:
        r["samples/s"] = 1e3 * batch / r["ms"]
        # interleaved's ratio is time / before's time: its inverse is the speed-up
        r["x before"], lo = 1 / r["x fast"], r["ratio min"]
        r["ratio min"], r["ratio max"] = 1 / r["ratio max"], 1 / lo
    return table


def render_batch(rows: list[dict], batch: int, rounds: int, runs: int) -> str:
    lines = [f"Batch {batch}, raw events -> probabilities (`predict_proba`), median of {rounds} interleaved rounds "
             f"of {runs} runs; speed-up = median per-round ratio to the first row, with its spread:", "",
             "| batch path | ms per batch | samples/s | x before | spread over rounds |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['path']} | {r['ms']:.2f} | {r['samples/s']:.0f} | {r['x before']:.2f} | "
              f"{r['ratio min']:.2f}-{r['ratio max']:.2f} |" for r in rows]
    shaky = noisy(rows)
    if shaky:
        lines += ["", f"**Warning: rounds disagree by more than {NOISY}x for {', '.join(shaky)}.**"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- where the time goes
def profile_fast_path(model, events: np.ndarray, runs: int = 200) -> list[dict]:
    """Median ms of each stage of the fast path on one recording (each kernel timed alone on the data
    it sees), the input density of each layer, and the same layer as a dense oneDNN op for comparison."""
    from . import network_numba
    from .kernels import compress_numba, snn_numba

    net = model.network
    w = network_numba.weights(net)
    dtype = w.fc1.dtype
    c = model.config.input
    rows = []
    fields = events["x"], events["y"], events["p"], events["t"]
    offsets = np.array([0, len(events)], dtype=np.int64)
    rows.append({"stage": "compress (one pass: checks + scatter)", "ms": median_ms(
        lambda: compress_numba.compress_events(*fields, offsets, c.sensor_size, c.T, c.ratio, c.split_by,
                                               c.spatial, c.decay, c.step_us or 0), runs), "input density": "-",
        "dense torch ms": "-"})
    x = model.compress(events)
    T, B = x.shape[:2]
    h = np.ascontiguousarray(x.numpy().transpose(0, 1, 3, 4, 2), dtype=dtype)
    for i, block in enumerate(w.blocks):
        _, _, H, W, c_in = h.shape
        c_out = block.bias.shape[0]
        frames = h.reshape(T * B, H, W, c_in)
        y = np.empty((T * B, H, W, c_out), dtype=dtype)
        conv = net.blocks[i].conv
        dense_in = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            dense = median_ms(lambda: conv(dense_in), runs)
        rows.append({"stage": f"block {i} conv {c_in}->{c_out} on {H}x{W} (sparse)",
                     "ms": median_ms(lambda: snn_numba.conv_sparse(frames, block.weight, block.bias, y), runs),
                     "input density": f"{(frames != 0).mean():.3f}", "dense torch ms": f"{dense:.3f}"})
        yt = y.reshape(T, B, H * W, c_out)
        v, past = np.zeros((B, H * W, c_out), dtype), np.zeros((block.mix.shape[1] - 1, B, H * W, c_out), dtype)
        s = np.empty_like(yt)
        args = (yt, block.mix, block.beta, *snn_numba.scalars(dtype, net.config.v_th, net.config.K),
                net.config.reset == "soft", v, past, s)
        rows.append({"stage": f"block {i} mixing + MT-LIF", "ms": median_ms(lambda: snn_numba.tail(*args), runs),
                     "input density": "-", "dense torch ms": "-"})
        snn_numba.tail(yt, block.mix, block.beta, *args[3:7], net.config.reset == "soft",
                       np.zeros_like(v), np.zeros_like(past), s)
        h = np.empty((T, B, H // 2, W // 2, c_out), dtype=dtype)
        pooled = h.reshape(T * B, H // 2, W // 2, c_out)
        rows.append({"stage": f"block {i} 2x2 pool", "ms": median_ms(
            lambda: snn_numba.pool2(s.reshape(T * B, H, W, c_out), net.config.pool == "max", dtype.type(snn_numba.POOL_SCALE[net.config.pool]),
                                    pooled), runs), "input density": "-", "dense torch ms": "-"})
    feats = h.reshape(T * B, -1)
    hidden = np.empty((T * B, w.fc1.shape[1]), dtype=dtype)
    dense_feats = torch.from_numpy(feats.copy())
    with torch.no_grad():
        dense = median_ms(lambda: torch.nn.functional.linear(dense_feats, torch.from_numpy(w.fc1.T.copy())), runs)
    rows.append({"stage": f"fc1 {feats.shape[1]}->{hidden.shape[1]} (sparse)", "ms": median_ms(
        lambda: snn_numba.linear_sparse(feats, w.fc1, w.fc1_bias, hidden), runs),
        "input density": f"{(feats != 0).mean():.3f}", "dense torch ms": f"{dense:.3f}"})
    # The kernels in sequence, as the forward runs them (one call, caches shared between layers), and the
    # same frames one step per call with the state carried, as a streaming session runs them.
    frames = x.numpy()
    whole = median_ms(lambda: network_numba.run(net, frames, network_numba.at_rest(w), False, w), runs)
    rows.append({"stage": f"all layers in one call ({T} steps)", "ms": whole, "input density": "-",
                 "dense torch ms": "-"})
    state = network_numba.rest_state(net, B, None, w)
    stepwise = median_ms(lambda: [network_numba.run(net, frames[t:t + 1], state, False, w) for t in range(T)], runs)
    rows.append({"stage": f"all layers, one step per call ({T} calls, state carried: a stream's kernels)",
                 "ms": stepwise, "input density": "-", "dense torch ms": "-"})
    with torch.no_grad():
        total = median_ms(lambda: model.predict_proba(events), runs)
    rows.append({"stage": "whole fast path, raw events -> probabilities", "ms": total, "input density": "-",
                 "dense torch ms": "-"})
    return rows


def render_profile(rows: list[dict]) -> str:
    lines = ["| stage | median ms | input density | same op dense (oneDNN) ms |", "|---|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['ms']:.3f} | {r['input density']} | {r['dense torch ms']} |" for r in rows]
    return "\n".join(lines)
