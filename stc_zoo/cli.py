"""The ``stc-zoo`` command line: list, info, predict, bench, stream, train, show, evaluate.

Every command that takes MODEL accepts a zoo name, a checkpoint folder or a Hub repo id, and
loads it as ``StcSNN.from_pretrained`` does. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import try_to_load_from_cache

from . import __version__
from .data import READERS, read_event_file, synthetic_events
from .data.events import check_layout
from .data.tonic_adapter import dataset_key, reader as get_reader
from .data.compressed import compress_dataset
from .errors import CheckpointError, DatasetError, ExportError, InputError, StcError, WeightsUnavailableError
from .evaluation import accuracy
from .hub.card import read_card
from .hub.files import CARD_NAME, WEIGHTS_NAME
from .hub.holdout import held_out, stated_result
from .kernels import ops
from .model import StcSNN
from .stream import MAX_GAP_US, ContinuousSession
from .timing import median_ms
from .zoo import REGISTRY, ZooEntry


# ---------------------------------------------------------------- helpers
def load_model(args) -> StcSNN:
    """MODEL with --revision, --device, --backend and --fit/--sensor (a device or backend this machine lacks is
    refused here)."""
    fit = {}
    if getattr(args, "fit", None) or getattr(args, "sensor", None):
        if not (args.fit and args.sensor):
            raise InputError("--fit and --sensor go together: --fit crop|scale --sensor WxH (the camera's size)")
        fit = dict(fit=args.fit, source_size=args.sensor)
    return StcSNN.from_pretrained(args.model, revision=args.revision, device=args.device, backend=args.backend,
                                  **fit)


def sensor_size(text: str) -> tuple[int, int]:
    """``"346x260"`` -> ``(346, 260)``."""
    try:
        W, H = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 346x260, got {text!r}") from None
    return W, H


def thread_count(text: str) -> int:
    """``--threads``: a whole number >= 1 (every command that computes takes it, ``train`` included)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads >= 1, got {text!r}")
    return n


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def local_weights(entry: ZooEntry) -> tuple[str, Path | None]:
    """Whether an entry's trained weights are on this machine, without the network: (status, folder)."""
    if entry.bundled is not None:
        return "yes (bundled)", entry.bundled
    cached = try_to_load_from_cache(entry.hub_repo, WEIGHTS_NAME)
    if isinstance(cached, str):
        return "yes (Hub cache)", Path(cached).parent
    return "no", None


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- commands
def list_models(args) -> list[dict]:
    """The zoo table; offline (bundled copies and the local Hub cache only)."""
    rows = zoo_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows, ["name", "dataset", "T", "input", "params", "trained", "accuracy", "split"]))
        print("\nuntrained entries: `stc-zoo info NAME` gives the command that trains them")
    return rows


def zoo_rows() -> list[dict]:
    """One row per zoo entry: name, dataset, T, input, params, trained, accuracy and split (from its card), hub
    (what ``stc-zoo list`` prints and the docs site's zoo page shows)."""
    rows = []
    for name in sorted(REGISTRY):
        entry = REGISTRY[name]
        c = entry.config
        trained, folder = local_weights(entry)
        accuracy, split = "-", "-"
        if folder is not None and (folder / CARD_NAME).is_file():
            _, stated = read_card(folder / CARD_NAME)
            accuracy, split = stated.stated(), stated.describe()
        (W, H), (h, w) = c.input.sensor_size, c.input.output_size
        rows.append({"name": name, "dataset": entry.dataset, "T": c.input.T, "input": f"{W}x{H} -> 2x{h}x{w}",
                     "params": f"{parameters(StcSNN(c)):,}", "trained": trained, "accuracy": accuracy,
                     "split": split, "hub": entry.hub_repo})
    return rows


def info(args) -> None:
    """Config and card of a model; for an untrained zoo entry, its config and how to train it."""
    entry = REGISTRY.get(args.model)
    if entry is not None:
        print(f"zoo entry  {entry.name}: {entry.dataset}, Hub repo {entry.hub_repo}")
        print(f"train with {entry.train_command}")
    try:
        model = load_model(args)
    except WeightsUnavailableError as err:
        print(f"\nweights    none ({err})\n\nconfig.json (of the untrained architecture):")
        print(json.dumps(entry.config.to_dict(), indent=2))
        return
    folder = model.checkpoint_folder
    print(f"weights    {folder} ({parameters(model):,} parameters)\n\nconfig.json:")
    print(json.dumps(model.config.to_dict(), indent=2))
    card = folder / CARD_NAME
    print(f"\n{CARD_NAME}:\n{card.read_text()}" if card.is_file() else "\n(no model card in this folder)")


def predict(args) -> list[dict]:
    """Classify each file; a file that cannot be read or classified (any failure) is reported on stderr,
    naming it, and the rest still run; exit status 1 when any file failed."""
    fast = ops.reference_unless_cached()  # a few forwards: not worth ~15 s of compiling
    model = load_model(args).fuse_for_inference()
    names, minimum = model.config.labels, model.config.input.min_events
    results, failed = [], 0
    warmed = False
    for path in args.files:
        try:
            events = read_event_file(path)
            if len(events) < minimum:  # said, not answered: an output for it would be no evidence
                raise InputError(f"{path}: {len(events)} events, fewer than the {minimum} this model needs for a "
                                 f"decision (T * ratio fine bins); no prediction")
            if not warmed:  # the first call pays for allocation and kernel compilation
                model.predict_proba(events, sources=[str(path)])
                warmed = True
            start = time.perf_counter()
            probs = model.predict_proba(events, sources=[str(path)])[0].cpu()
            latency = 1e3 * (time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 - any failure of one file is that file's, never the others'
            failed += 1
            text = str(err) if isinstance(err, (StcError, OSError)) else f"{type(err).__name__}: {err}"
            print(f"stc-zoo predict: {text if str(path) in text else f'{path}: {text}'}", file=sys.stderr)
            continue
        label = int(probs.argmax())
        results.append({"file": str(path), "events": len(events), "label": label, "class": names[label],
                        "confidence": round(float(probs[label]), 4), "latency_ms": round(latency, 3)})
        if args.json:
            print(json.dumps(results[-1]), flush=True)
    if not args.json and results:
        print(table(results, ["file", "events", "label", "class", "confidence", "latency_ms"]))
        path = ("" if model.device.type != "cpu" else ", the fast path" if fast and model.backend != "torch" else
                ", the PyTorch reference (the fast path is not compiled here yet: stc-zoo warmup)")
        print(f"\nlatency: raw events -> probabilities, batch 1, {args.device}{path}, each file timed after one "
              "warm-up call on the first")
    if failed:
        print(f"stc-zoo predict: {failed} of {len(args.files)} files failed (above)", file=sys.stderr)
        raise SystemExit(1)
    return results


def bench(args) -> dict:
    """Batch 1, raw events -> probabilities, every path side by side (interleaved rounds); then
    throughput at batch N on the default path."""
    from . import benchmark

    model = load_model(args).fuse_for_inference()
    sensor = model.config.input.sensor_size
    if args.events:
        streams = [read_event_file(args.events)]
        source = f"{args.events} ({len(streams[0]):,} events)"
    else:
        n = args.n_events or 4 * sensor[0] * sensor[1]
        streams = [synthetic_events(sensor, n, seed) for seed in range(args.batch)]
        source = f"synthetic, {n:,} uniform random events per stream on {sensor[0]}x{sensor[1]}"
    batch = [streams[i % len(streams)] for i in range(args.batch)]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run(events):
        def once():
            with torch.no_grad():
                model(model.compress(events))
            sync()
        return once

    rows = []
    if args.device == "cpu" and not args.no_compare:
        rows, facts = benchmark.compare(model, batch[0], args.rounds, args.runs, args.warmup,
                                        compile_baseline=not args.no_compile)
    latency = median_ms(run(batch[:1]), args.runs, args.warmup, progress="batch 1")
    threads = torch.get_num_threads()
    batch_ms = median_ms(run(batch), args.runs, args.warmup, progress=f"batch {args.batch}")
    one_thread_ms = None
    if threads > 1:  # what the second core buys at batch N (the CPU path runs chunks of the batch in threads)
        torch.set_num_threads(1)
        try:
            one_thread_ms = median_ms(run(batch), args.runs, args.warmup, progress=f"batch {args.batch}, 1 thread")
        finally:
            torch.set_num_threads(threads)
    result = {"model": args.model, "device": args.device, "backend": model.backend,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "events": source,
              "runs": args.runs, "warmup": args.warmup, "latency_ms": round(latency, 3),
              "batch": args.batch, "batch_ms": round(batch_ms, 3),
              "throughput_per_s": round(1e3 * args.batch / batch_ms, 1),
              "throughput_1_thread_per_s": None if one_thread_ms is None else round(1e3 * args.batch / one_thread_ms, 1),
              "paths": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
              "noisy": benchmark.noisy(rows)}
    if result["noisy"]:
        print(f"stc-zoo bench: warning: the rounds disagree by more than {benchmark.NOISY}x for "
              f"{', '.join(result['noisy'])}: the machine was too busy to trust those ratios (rerun it idle, or with "
              "more --rounds)", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return result
    print(f"{args.model} on {args.device} (backend {model.backend}); {benchmark.environment()}\nevents: {source}")
    if rows:
        print()
        print(benchmark.render(rows, facts, model.config.input.T, args.rounds, args.runs))
    print(f"\ndefault path, median of {args.runs} runs after {args.warmup} warm-up runs:")
    rows_out = [{"batch": 1, "threads": threads, "median ms": f"{latency:.3f}", "samples/s": f"{1e3 / latency:.1f}"},
                {"batch": args.batch, "threads": threads, "median ms": f"{batch_ms:.3f}",
                 "samples/s": f"{result['throughput_per_s']:.1f}"}]
    if one_thread_ms is not None:
        rows_out.append({"batch": args.batch, "threads": 1, "median ms": f"{one_thread_ms:.3f}",
                         "samples/s": f"{result['throughput_1_thread_per_s']:.1f}"})
    print(table(rows_out, ["batch", "threads", "median ms", "samples/s"]))
    return result


def stream(args) -> dict:
    """Decisions on a live feed (``--udp``, ``--dv``, ``--camera``) or a recording replayed at ``--speed`` x
    real time: every step of one recording, or with ``--hop`` a decision every ``hop`` steps over the last T
    (continuous mode); text or ``--json`` lines, a summary at the end."""
    from .errors import EventFormatError
    from .sources import FileReplay

    if args.file and (args.udp, args.dv, args.camera) == (None, None, None):
        ops.reference_unless_cached()  # one recording: not worth ~15 s of compiling (a live feed compiles)
    model = load_model(args)
    c = model.config.input
    if args.hop is not None and (args.threshold is not None or args.min_steps != 1 or args.max_steps is not None):
        raise InputError("stream: --hop decides at the end of every window of T steps; --threshold, --min-steps "
                         "and --max-steps are for one recording's early decision")
    session = (model.stream_continuous(hop=args.hop) if args.hop is not None
               else model.stream(threshold=args.threshold, min_steps=args.min_steps, max_steps=args.max_steps))
    rule = decision_rule(args, c)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else (lambda text: print(text, flush=True))
    live = [f for f in (args.udp, args.dv, args.camera) if f is not None]
    if len(live) + bool(args.file) != 1:
        raise InputError("stream: give one source: a recording FILE, --udp HOST:PORT, --dv tcp://HOST:PORT or --camera")
    if live:  # warmed up before listening: a sender started on "listening" is served from its first packet
        warmup_ms = warm_up(model, synthetic_events(c.camera_size, 2000), args.hop)
        source = live_source(args, model)
        say(f"{source.name}: listening; steps of {c.step_us / 1e3:g} ms; decision {rule}; ends "
            f"{args.timeout:g} s after the last packet (or if none comes in {args.wait:g} s)")
    else:
        events = read_event_file(args.file)
        if not len(events):
            raise StcError(f"{args.file}: no events")
        events = check_gaps(events, session.max_gap_us, args.file)
        source = FileReplay(events, args.packet_ms * 1000, args.speed, source=str(args.file))
        t0, t_end = int(events["t"][0]), int(events["t"][-1])
        say(f"{args.file}: {len(events):,} events over {(t_end - t0) / 1e3:.1f} ms; steps of {c.step_us / 1e3:g} ms; "
            f"packets of {source.packet_us / 1e3:g} ms at "
            f"{'full speed' if args.speed <= 0 else f'{args.speed:g}x real time'}; decision {rule}")
        warmup_ms = warm_up(model, events, args.hop)
    say(f"warm-up: {warmup_ms:.1f} ms (first call: kernel loading or compilation; not in the per-step times)")
    show = StreamPrinter(model, session, args.json)
    for packet in source:
        try:
            outputs = session.push(packet.events, now_us=packet.until_us)
        except EventFormatError as err:  # live traffic only (a file's gaps were checked): counted, not fatal
            show.refused += 1
            print(f"refused a packet: {err}", file=sys.stderr)
            continue
        lag = None if packet.received_s is None else 1e3 * (time.perf_counter() - packet.received_s)
        show(outputs, lag)
    summary = {**show.summary(), "decision_rule": rule, "warmup_ms": round(warmup_ms, 1)}
    if live:
        st = source.stats
        summary.update({"datagrams": st.datagrams, "packets": st.packets, "events": st.events,
                        "malformed_datagrams": st.malformed,
                        "dropped_datagrams": st.dropped_datagrams, "os_dropped_datagrams": st.os_dropped,
                        "off_sensor_events": st.off_sensor,
                        "backwards_events": st.backwards, "host_stamped_events": st.host_stamped,
                        "refused_packets": show.refused, **show.lag_summary()})
    print(json.dumps({"summary": summary} if args.json else summary), flush=True)
    return summary


def decision_rule(args, c) -> str:
    """The decision rule ``stc-zoo stream`` was given, in words (``c``: the model's InputConfig)."""
    ms = lambda steps: f"{steps * c.step_us / 1e3:g} ms"  # noqa: E731
    if args.hop is not None:
        return f"every {args.hop} step(s) ({ms(args.hop)}) over the last T = {c.T} steps ({ms(c.T)}, each window from rest)"
    if args.threshold is not None:
        latest = f", at step {args.max_steps} ({ms(args.max_steps)}) at the latest" if args.max_steps is not None else ""
        return f"confidence >= {args.threshold:g} after >= {args.min_steps} step(s){latest}"
    if args.max_steps is not None:
        return f"at step {args.max_steps} ({ms(args.max_steps)})"
    return f"at step T = {c.T} (no --threshold: the offline rule, not an early decision)"


class StreamPrinter:
    """What ``stc-zoo stream`` prints of each push: a line per step (or per window with ``--hop``) and the
    decision, as text or JSON lines. It keeps what the summary needs in bounded memory (a camera never
    stops): counts, and the last ``KEEP`` compute times and lags for their medians."""

    KEEP = 10_000

    def __init__(self, model: StcSNN, session, as_json: bool):
        from collections import Counter, deque

        self.names, self.session, self.json = model.config.labels, session, as_json
        self.outputs, self.refused, self.labels = 0, 0, Counter()
        self.compute, self.lags = deque(maxlen=self.KEEP), deque(maxlen=self.KEEP)
        self.continuous = isinstance(session, ContinuousSession)

    def __call__(self, outputs: list, lag_ms: float | None) -> None:
        if lag_ms is not None:
            self.lags.append(lag_ms)
        for out in outputs:
            self.outputs += 1
            self.compute.append(out.compute_ms)
            line = self.window(out, lag_ms) if self.continuous else self.step(out, lag_ms)
            if self.continuous:
                self.labels[out.name] += 1
            print(json.dumps(line) if self.json else line, flush=True)
            d = None if self.continuous else self.session.decision
            if d is not None and d.step == out.step:
                print(json.dumps({"decision": d.name, "step": d.step, "t_ms": d.end_us / 1e3,
                                  "confidence": round(d.confidence, 6)}) if self.json else
                      f"decision: {d.name} after {d.end_us / 1e3:.1f} ms of recording (step {d.step}), "
                      f"confidence {d.confidence:.3f}", flush=True)

    def step(self, out, lag_ms):
        if self.json:
            return {"step": out.step, "t_ms": out.end_us / 1e3, "top": self.names[out.label],
                    "confidence": round(out.confidence, 6), "compute_ms": round(out.compute_ms, 4),
                    "lag_ms": None if lag_ms is None else round(lag_ms, 3)}
        return (f"step {out.step:3d}  t={out.end_us / 1e3:7.1f} ms  top {self.names[out.label]:>10} "
                f"({out.confidence:.3f})  compute {out.compute_ms:.3f} ms")

    def window(self, d, lag_ms):
        if self.json:
            return {"window": d.window, "start_ms": d.start_us / 1e3, "end_ms": d.end_us / 1e3, "top": d.name,
                    "confidence": round(d.confidence, 6), "events": d.events, "compute_ms": round(d.compute_ms, 4),
                    "lag_ms": None if lag_ms is None else round(lag_ms, 3)}
        return (f"window {d.window:3d}  t={d.start_us / 1e3:7.1f}-{d.end_us / 1e3:7.1f} ms  top {d.name:>10} "
                f"({d.confidence:.3f})  events {d.events:,}  compute {d.compute_ms:.3f} ms")

    def summary(self) -> dict:
        median = round(float(np.median(self.compute)), 4) if self.compute else None
        if self.continuous:
            return {"windows": self.outputs, "decisions": dict(self.labels.most_common()),
                    "median_compute_ms_per_window": median}
        d = self.session.decision
        return {"steps": self.outputs, "decision": None if d is None else d.name,
                "recording_ms_at_decision": None if d is None else d.end_us / 1e3, "median_compute_ms_per_step": median}

    def lag_summary(self) -> dict:
        """Lag from a packet's arrival to the end of its push (its steps' outputs printed)."""
        lags = self.lags
        return {"median_lag_ms": round(float(np.median(lags)), 3) if lags else None,
                "p99_lag_ms": round(float(np.percentile(lags, 99)), 3) if lags else None,
                "max_lag_ms": round(float(np.max(lags)), 3) if lags else None}


def address(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` (``:PORT`` is 127.0.0.1); InputError naming the text otherwise."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{text!r}: expected HOST:PORT with a port in 1..65535")
    return host or "127.0.0.1", int(port)


def live_source(args, model: StcSNN):
    """The live source ``stc-zoo stream`` was given: ``--udp``, ``--dv`` or ``--camera``."""
    from .sources import DvSource, UdpSource

    sensor = model.config.input.camera_size
    if args.udp is not None:
        host, port = address(args.udp)
        return UdpSource(host, port, sensor, args.timeout, wait_s=args.wait)
    if args.dv is not None:
        source = DvSource.network(*address(args.dv.removeprefix("tcp://")), timeout_s=args.timeout, wait_s=args.wait)
    else:
        source = DvSource.camera(args.camera, timeout_s=args.timeout, wait_s=args.wait)
    if tuple(source.sensor_size) != tuple(sensor):
        raise InputError(f"{source.name}: a {source.sensor_size[0]}x{source.sensor_size[1]} sensor; this model takes "
                         f"{sensor[0]}x{sensor[1]} (fit it: --fit crop|scale --sensor WxH)")
    return source


def send(args) -> dict:
    """Send a recording as a live camera would: SPIF/aestream event words over UDP at ``--speed`` x real time."""
    from .sources.udp import send_udp

    events = check_gaps(read_event_file(args.file), MAX_GAP_US, args.file)
    host, port = address(args.udp)
    begin = time.perf_counter()
    datagrams = send_udp(events, host, port, args.packet_events, args.speed,
                         timestamps=not args.no_timestamps)
    summary = {"file": str(args.file), "events": len(events), "datagrams": datagrams,
               "seconds": round(time.perf_counter() - begin, 3)}
    print(json.dumps(summary))
    return summary


def check_gaps(events: np.ndarray, max_gap_us: int, source) -> np.ndarray:
    """The events, sorted; EventFormatError naming the file when two events lie more than ``max_gap_us`` apart
    (one glitched timestamp would otherwise replay hours of silence)."""
    events = check_layout(events, str(source))
    if not np.all(events["t"][1:] >= events["t"][:-1]):
        events = events[np.argsort(events["t"], kind="stable")]
    gaps = np.diff(events["t"].astype(np.int64))
    if gaps.size and gaps.max() > max_gap_us:
        i = int(gaps.argmax())
        raise StcError(f"{source}: events {i} and {i + 1} lie {gaps[i] / 1e6:,.3f} s apart (t={events['t'][i]} -> "
                       f"{events['t'][i + 1]} us), beyond a stream's max_gap_us={max_gap_us:,}; a glitched timestamp?")
    return events


def warm_up(model: StcSNN, events: np.ndarray, hop: int | None = None) -> float:
    """Milliseconds of a throwaway session like the timed one (continuous with ``hop``) over the recording's
    first two steps (a whole window when continuous, so a decision is made): what the first calls cost
    (kernel loading, first allocations) before the timed ones."""
    begin = time.perf_counter()
    scratch = model.stream() if hop is None else model.stream_continuous(hop=hop)
    end = int(events["t"][0]) + (2 if hop is None else model.config.input.T) * model.config.input.step_us
    scratch.push(events[: int(np.searchsorted(events["t"], end))], now_us=end)
    return 1e3 * (time.perf_counter() - begin)


def show(args) -> None:
    from .show import draw  # matplotlib is optional

    ops.reference_unless_cached()  # one recording: not worth ~15 s of compiling
    model = load_model(args)
    events = read_event_file(args.file)
    out = draw(model, events, args.out, title=f"{Path(args.file).name} · {args.model}",
               label=args.label or Path(args.file).parent.name)
    print(f"wrote {out}")


def evaluate(args) -> dict:
    """Accuracy of MODEL on a dataset split, or on the hold-out its card states (``--split val``); one JSON line."""
    model = load_model(args)
    dataset, indices, reader = split_of(args, model)
    X, y = compress_dataset(dataset, model.pipeline, args.cache_dir, desc=f"compressing {args.split}",
                            indices=indices)
    result = {"model": args.model, "data": str(args.data), "split": args.split, "samples": len(X),
              "accuracy": round(accuracy(model.network, X, y, args.batch_size), 6)}
    if args.split != "val":  # the card's own hold-out is unseen by construction
        seen = seen_in_training(model, reader, args.split, dataset, indices)
        result["trained_on"] = "unknown" if seen is None else seen
        if seen:
            print(f"stc-zoo evaluate: note: {seen} of these {len(X)} recordings were in the model's training data "
                  "(its trained_on.json or card says so): this accuracy is not an estimate for unseen data", file=sys.stderr)
        elif seen is None:
            print("stc-zoo evaluate: note: the model has no card saying what it was trained on, so whether these "
                  "recordings were seen in training is unknown", file=sys.stderr)
    print(json.dumps(result))
    return result


def split_of(args, model: StcSNN) -> tuple:
    """``(dataset, indices or None, reader)`` of ``--data``/``--split``; ``val`` is the hold-out the model's
    card states its accuracy on, drawn as the card says."""
    if args.split == "val":
        stated = stated_result(model.checkpoint_folder)
        dataset, indices = held_out(args.data, stated, download=args.download)
        return dataset, indices, stated.reader
    reader = args.dataset or (REGISTRY[args.model].reader if args.model in REGISTRY else "nmnist")
    try:
        return get_reader(reader)(args.data, args.split, download=args.download), None, reader
    except DatasetError as err:
        raise DatasetError(f"{err}\n  (--split {args.split} is the default; a folder with only some splits takes "
                           "--split train, or --split val for the hold-out on the model's card)") from None


def profile(args) -> dict:
    """Synaptic operations, activation sparsity, membrane updates and footprint of MODEL per recording
    (``stc_zoo.metrics``), averaged over ``--data``'s split or the FILEs; with ``--threshold`` (or for a
    duration-binned model) also the operations until the streaming decision."""
    from . import metrics

    model = load_model(args).fuse_for_inference()
    if bool(args.files) == bool(args.data):
        raise InputError("profile: give event FILEs or --data ROOT (with --split), not both or neither")
    if args.files:
        events = [read_event_file(f) for f in args.files]
        source = f"{len(events)} file(s)"
        batches = (model.compress(events[i:i + args.batch_size], [str(f) for f in args.files[i:i + args.batch_size]])
                   for i in range(0, len(events), args.batch_size))
    else:
        if args.split == "card":
            from .hub.cost import card_recordings

            try:
                dataset, indices, described = card_recordings(model.checkpoint_folder, args.data, args.download)
            except CheckpointError as err:
                raise CheckpointError(f"{err}\n  (--split card, the default, profiles the recordings the model card "
                                      "states its accuracy on; give --split train or test for a split of --data)") from None
        else:
            dataset, indices, _ = split_of(args, model)
            described = f"{args.split} split"
        X, _ = compress_dataset(dataset, model.pipeline, args.cache_dir, desc="compressing", indices=indices)
        source = f"{len(X)} recordings of {args.data}: {described}"
        batches = metrics.in_batches(X, args.batch_size)
    c = model.config.input
    rule = (args.threshold, args.min_steps, c.T) if args.threshold is not None or c.streamable else None
    result = metrics.profile(model.network, batches, rule)
    out = {"model": args.model, "source": source, **result.to_dict()}
    if args.json:
        print(json.dumps(out))
        return out
    print(f"{args.model}: per recording, averaged over {source}; T = {result.steps} steps")
    print(render_profile(result, c.step_us, rule))
    return out


def render_profile(p, step_us: int | None, rule) -> str:
    """``stc-zoo profile``'s tables: connections, spiking layers, totals (and the decision)."""
    rows = [{"layer": c.name, "input": c.input, "dense MACs": f"{c.dense:,.0f}",
             "effective MACs": f"{c.effective_macs:,.0f}", "effective ACs": f"{c.effective_acs:,.0f}",
             "spike inputs as MACs": f"{c.nonzero:,.0f}" if c.input == "spikes" else "-"} for c in p.connections]
    lines = [table(rows, list(rows[0])), ""]
    rows = [{"spiking layer": n.name, "neurons": f"{n.neurons:,}", "membrane updates": f"{n.membrane_updates:,.0f}",
             "spikes": f"{n.spikes:,.1f}", "activation sparsity": f"{n.sparsity:.4f}"} for n in p.neurons]
    lines += [table(rows, list(rows[0])), ""]
    lines += [f"total: dense {p.dense:,.0f} MACs; effective {p.effective_macs:,.0f} MACs + {p.effective_acs:,.0f} ACs "
              f"(spike inputs counted once: {p.spike_macs:,.0f} MACs); {p.membrane_updates:,.0f} membrane updates; "
              f"activation sparsity {p.activation_sparsity:.4f}",
              f"footprint: {p.parameters:,} parameters, {p.footprint_bytes:,} bytes with buffers; "
              f"connection sparsity {p.connection_sparsity:.4f}",
              "effective synaptic operations per step: " + ", ".join(f"{v:,.0f}" for v in p.per_step())]
    summary = p.decision_summary()
    if summary is not None:
        threshold, min_steps, T = rule
        said = f"confidence >= {threshold} after >= {min_steps} step(s)" if threshold is not None else f"at step {T}"
        if summary["decided"]:
            at = summary["median_steps"]
            ms = f" ({at * step_us / 1e3:g} ms of recording)" if step_us else ""
            lines.append(f"decision ({said}): {summary['decided']} decided, {summary['undecided']} not within "
                         f"{T} steps; median {at:g} steps{ms}, after a median "
                         f"{summary['median_synops_until_decision']:,.0f} effective synaptic operations")
        else:
            lines.append(f"decision ({said}): none of the {summary['undecided']} recordings decided within {T} steps")
    return "\n".join(lines)


def seen_in_training(model: StcSNN, reader: str, split: str, dataset, indices) -> int | None:
    """How many of the evaluated recordings the model was trained on (None: unknown): by its
    trained_on.json (the recordings' events and source images), else by what its card says."""
    from .hub.holdout import trained_on
    from .hub.seen import identify

    evaluated = list(range(len(dataset.targets)) if indices is None else indices)
    if model.trained_on is not None:
        return len(model.trained_on.overlap(*identify(dataset, evaluated)))
    try:
        stated = stated_result(model.checkpoint_folder)
    except StcError:
        return None
    seen = trained_on(stated, reader, split, dataset.targets)
    return None if seen is None else len(seen.intersection(evaluated))


def warmup(args) -> list[dict]:
    """Compile (or load) the CPU kernels MODELs need into Numba's cache, so later processes start fast: run it
    where the cache is written at image build time (``NUMBA_CACHE_DIR``) and read-only containers use it."""
    import numba

    names = args.models or sorted(name for name, entry in REGISTRY.items() if entry.bundled is not None)
    done = []
    for name in names:
        start = time.perf_counter()
        StcSNN.from_pretrained(name).warmup()
        done.append({"model": name, "seconds": round(time.perf_counter() - start, 2)})
        print(f"warm: {name} ({done[-1]['seconds']:.1f} s)")
    print(f"Numba cache: {numba.config.CACHE_DIR or 'beside the package (__pycache__) or in the user cache folder'}")
    return done


def export(args) -> list[Path]:
    """The model in another framework's form (``stc_zoo.export``): the files written."""
    from . import export as exporters

    model = load_model(args)
    if args.format == "nir":
        if args.dtype != "float32":
            raise ExportError("--dtype: a NIR export is float32 (the readers run float32)")
        files = exporters.nir(model, args.out, args.dt, args.reader)
    else:
        if args.reader is not None:
            raise ExportError("--reader is for --format nir")
        files = exporters.onnx(model, args.out, args.dtype)
    print("\n".join(f"wrote {f}" for f in files))
    return files


def simulate(args) -> None:
    from .simulate.command import run as simulate_run

    simulate_run(args)


# ---------------------------------------------------------------- parser
MODEL_HELP = "zoo name, checkpoint folder or Hub repo id (org/name)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stc-zoo", description="Spiking networks for event cameras.")
    parser.add_argument("--version", action="version", version=f"stc-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help: str, model: str | None = "model") -> argparse.ArgumentParser:
        """A subcommand; ``model`` names its MODEL argument ("model", "--model" or None for none)."""
        p = sub.add_parser(name, help=help, description=help)
        if model == "--model":
            p.add_argument("--model", required=True, help=MODEL_HELP)
        elif model:
            p.add_argument("model", help=MODEL_HELP)
        if model:
            p.add_argument("--revision", help="Hub branch, tag or commit")
            p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
            p.add_argument("--backend", choices=("auto", "triton", "numba", "torch"), default=None,
                           help="kernels: auto = Triton on CUDA, Numba for CPU inference; torch = the reference")
            p.add_argument("--fit", choices=("crop", "scale"),
                           help="events from a camera larger than the model's input: crop a centred window, or "
                                "scale coordinates down by an integer (with --sensor)")
            p.add_argument("--sensor", type=sensor_size, metavar="WxH", help="the camera's size, for --fit")
            p.add_argument("--threads", type=thread_count, help="CPU threads for torch and for the Numba "
                           "kernels' batches (default: torch's, the cores there are)")
        p.set_defaults(func=func)
        return p

    ls = command("list", list_models, "the zoo: every entry, whether it is trained, its accuracy", model=None)
    ls.add_argument("--json", action="store_true", help="a JSON array instead of a table")

    command("info", info, "a model's config and model card")

    pr = command("predict", predict, "classify event files (label, class, confidence, latency)")
    pr.add_argument("files", nargs="+", type=Path, metavar="FILE", help="event files (.bin, .aedat, .npy)")
    pr.add_argument("--json", action="store_true", help="one JSON object per file")

    be = command("bench", bench, "latency of every path side by side (batch 1) and throughput, raw events -> logits")
    be.add_argument("--batch", type=int, default=32, help="batch size of the throughput run (default 32)")
    be.add_argument("--runs", type=int, default=100, help="timed runs per measurement (median; default 100)")
    be.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    be.add_argument("--events", type=Path, help="time this recording instead of synthetic streams")
    be.add_argument("--n-events", type=int, help="events per synthetic stream (default 4 per pixel)")
    be.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the side-by-side table (default 5)")
    be.add_argument("--no-compare", action="store_true", help="time the default path only")
    be.add_argument("--no-compile", action="store_true", help="leave out torch.compile of the SpikingJelly baseline")
    be.add_argument("--json", action="store_true")

    st = command("stream", stream, "decisions on a live UDP feed or a replayed recording through a streaming "
                 "session: each step's top class, the decision, compute per step")
    st.add_argument("file", type=Path, nargs="?", metavar="FILE", help="event file to replay (.bin, .aedat, .npy)")
    st.add_argument("--udp", metavar="HOST:PORT", help="listen for SPIF/aestream event words on this UDP address "
                    "instead of replaying a file (send with: stc-zoo send FILE --udp HOST:PORT)")
    st.add_argument("--dv", metavar="tcp://HOST:PORT", help="read a DV event stream (a DV NetworkWriter) through "
                    "dv-processing")
    st.add_argument("--camera", nargs="?", const="", metavar="NAME", help="read an iniVation camera on USB "
                    "through dv-processing (the first one found without a NAME)")
    st.add_argument("--timeout", type=float, default=2.0, help="live sources: end this many seconds after the "
                    "last packet (default 2)")
    st.add_argument("--wait", type=float, default=60.0, help="live sources: how long to wait for the first "
                    "packet (default 60 s)")
    st.add_argument("--speed", type=float, default=1.0, help="x real time (default 1.0; 0 = as fast as possible)")
    st.add_argument("--packet-ms", type=float, default=1.0, help="duration of each packet pushed (default 1 ms)")
    st.add_argument("--threshold", type=float, help="decide once the running confidence reaches it "
                    "(default: decide at step T, as the offline prediction)")
    st.add_argument("--min-steps", type=int, default=1, help="never decide before this many steps")
    st.add_argument("--max-steps", type=int, help="decide at this step at the latest (a deadline), however confident")
    st.add_argument("--hop", type=int, metavar="N", help="continuous mode, for a feed that never ends: a decision "
                    "every N steps over the last T steps (N = T: consecutive windows), each window from rest")
    st.add_argument("--json", action="store_true", help="JSON lines on stdout (a line per step or window, the "
                    "decision, the summary); other messages go to stderr")

    se = command("send", send, "send a recording over UDP as SPIF/aestream event words, at real speed (a stand-in "
                 "for a live camera)", model=None)
    se.add_argument("file", type=Path, metavar="FILE", help="event file (.bin, .aedat, .npy)")
    se.add_argument("--udp", required=True, metavar="HOST:PORT", help="where to send")
    se.add_argument("--speed", type=float, default=1.0, help="x real time (default 1.0; 0 = as fast as possible)")
    se.add_argument("--packet-events", type=int, default=180, help="events per datagram (default 180: 1,440 "
                    "bytes, one Ethernet frame)")
    se.add_argument("--no-timestamps", action="store_true", help="send no timestamps (the receiver stamps events "
                    "on arrival)")

    tr = sub.add_parser("train", add_help=False, help="train or fine-tune a model (the options of training/train.py; "
                        "stc-zoo train --help lists them)",
                        description="train or fine-tune a model: stc-zoo train --model NAME --data ROOT ...")
    tr.add_argument("args", nargs=argparse.REMAINDER, help="training/train.py's options")  # main() dispatches it

    sh = command("show", show, "picture of a recording: events, compressed steps, spikes per layer", "--model")
    sh.add_argument("file", type=Path, help="event file (.bin, .aedat, .npy)")
    sh.add_argument("--out", type=Path, required=True, help="image to write (.png, .pdf, .svg)")
    sh.add_argument("--label", help="the recording's true class (default: its folder's name, if that is a class)")

    pf = command("profile", profile, "synaptic operations, activation sparsity, membrane updates and footprint "
                 "per recording, per layer and in total (NeuroBench's definitions; docs/METRICS.md)")
    pf.add_argument("files", nargs="*", type=Path, metavar="FILE", help="event files (or --data)")
    pf.add_argument("--data", help="dataset root in its published layout")
    pf.add_argument("--split", choices=("card", "train", "test", "val"), default="card",
                    help="card (default): the recordings the model card's accuracy uses (its hold-out, or all of "
                         "its split for a cross-validated card); a split of --data; val: the card's hold-out")
    pf.add_argument("--dataset", type=dataset_key, help="reader (as for evaluate)")
    pf.add_argument("--download", action="store_true", help="fetch the dataset through tonic if missing")
    pf.add_argument("--threshold", type=float, help="also the operations until a streaming decision at this "
                    "confidence (a duration-binned model without it: its decision at step T)")
    pf.add_argument("--min-steps", type=int, default=1, help="with --threshold: never decide before this many steps")
    pf.add_argument("--batch-size", type=int, default=64)
    pf.add_argument("--cache-dir", default=None, help="reuse compressed tensors cached here")
    pf.add_argument("--json", action="store_true", help="one JSON object")

    si = command("simulate", simulate, "simulated event recordings of images (N-MNIST's saccades, calibrated to "
                 "the real recordings) or of frame arrays, into a labelled folder the package trains on", model=None)
    from .simulate.command import add_arguments

    add_arguments(si)

    wu = sub.add_parser("warmup", help="compile the CPU kernels the models need into Numba's cache (an image "
                        "build step: NUMBA_CACHE_DIR=/opt/numba stc-zoo warmup)",
                        description="compile the CPU kernels the models need into Numba's cache, so later "
                        "processes (a read-only container) load them instead of compiling")
    wu.add_argument("models", nargs="*", metavar="MODEL", help="models to warm (default: the bundled ones)")
    wu.set_defaults(func=warmup)

    ex = command("export", export, "the model for other runtimes: ONNX graphs (one step with explicit state, and a "
                 "whole recording), checked with onnxruntime; or a NIR graph for snnTorch, Norse, Sinabs and "
                 "neuromorphic chips")
    ex.add_argument("--format", choices=("onnx", "nir"), required=True, help="onnx: step.onnx, sequence.onnx, "
                    "input.json and a README; nir: network.nir, input.json and a README (one-spike LIF models "
                    "only, e.g. nmnist-lif-t4)")
    ex.add_argument("--reader", choices=("snntorch", "norse", "sinabs"), help="nir: write the equivalent "
                    "parameterisation this reader needs (default: NIR's definitions exactly)")
    ex.add_argument("--dt", type=float, default=1e-3, help="nir: seconds one step stands for (default 0.001; "
                    "snnTorch fixes its own)")
    ex.add_argument("--out", type=Path, required=True, help="the folder to write")
    ex.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="the graphs' float type (default float32)")

    ev = command("evaluate", evaluate, "accuracy of a model on a dataset split (one JSON line)")
    ev.add_argument("--data", required=True, help="dataset root in its published layout")
    ev.add_argument("--split", choices=("train", "test", "val"), default="test",
                    help="a split of --data, or val: the hold-out the model card states its accuracy on")
    ev.add_argument("--dataset", type=dataset_key, help="reader: " + ", ".join(sorted(READERS)) + " or tonic:<Class> "
                    "(default: the zoo entry's, else nmnist)")
    ev.add_argument("--download", action="store_true", help="fetch the dataset through tonic if missing")
    ev.add_argument("--batch-size", type=int, default=128)
    ev.add_argument("--cache-dir", default=None, help="reuse compressed tensors cached here")
    return parser


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as the CLI prints them: one line, no source line of anybody's code."""
    return f"stc-zoo: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    import warnings

    formatted, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return run(argv)
    finally:
        warnings.formatwarning = formatted


def run(argv: list[str]) -> int:
    """The command ``argv`` names; its exit status."""
    if argv[:1] == ["train"]:  # its options are training's own (argparse cannot pass "--x" through)
        from .training import main as train

        train(argv[1:])  # a user's mistake exits 2 there, with one line
        return 0
    args = build_parser().parse_args(argv)
    if getattr(args, "batch", 1) < 1 or getattr(args, "runs", 1) < 1 or getattr(args, "rounds", 1) < 1:
        print("stc-zoo: --batch, --runs and --rounds must be >= 1", file=sys.stderr)
        return 2
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except (StcError, FileNotFoundError, KeyError) as err:
        print(f"stc-zoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
