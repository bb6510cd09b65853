"""Time to decision of a streaming (duration-binned) model on the real hold-out recordings.

Every recording of the hold-out the model card states is pushed through ``model.stream()``
packet by packet. Two measurements:

* accuracy of the running prediction against milliseconds of recording seen (every step);
* with an early-decision rule (confidence threshold, minimum steps), the accuracy of the
  decisions and the median time at which they are made (a recording the rule never decides
  on is decided at its last step, and counted so).

Prints Markdown (for training/RESULTS.md) and writes a plot.

    .venv/bin/python training/time_to_decision.py --data ../shared/data/nmnist-subset
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from stc_zoo import StcSNN
from stc_zoo.hub.holdout import held_out, stated_result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-stream-20ms", help="a duration-binned model (default nmnist-stream-20ms)")
    p.add_argument("--data", required=True, help="the dataset root its card's hold-out was drawn from")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.8, 0.9, 0.95, 0.99])
    p.add_argument("--min-steps", type=int, default=2, help="never decide before this many steps (default 2)")
    p.add_argument("--packet-ms", type=float, default=1.0, help="packet duration pushed at a time (default 1 ms)")
    p.add_argument("--plot", type=Path, default=Path("training/time_to_decision.png"))
    return p


def stream_recording(model: StcSNN, events: np.ndarray, packet_us: int) -> list:
    """Every step's output for one recording, pushed in packets of ``packet_us``; the stream ends at the last event."""
    session = model.stream()
    t0, t_end = int(events["t"][0]), int(events["t"][-1]) + 1
    ends = np.arange(t0 + packet_us, t_end + packet_us, packet_us)
    cuts = np.searchsorted(events["t"], ends)
    outputs, start = [], 0
    for end, cut in zip(ends, cuts):
        outputs += session.push(events[start:cut], now_us=int(min(end, t_end)))
        start = cut
    return outputs


def decide(outputs: list, threshold: float, min_steps: int):
    """(label, ms) of the first step where the rule holds, else the last step's."""
    for o in outputs[min_steps - 1:]:
        if o.confidence >= threshold:
            return o.label, o.end_us / 1e3
    return outputs[-1].label, outputs[-1].end_us / 1e3


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    model = StcSNN.from_pretrained(args.model).fuse_for_inference()
    c = model.config.input
    stated = stated_result(model.checkpoint_folder)
    dataset, indices = held_out(args.data, stated)
    runs = []
    for i in tqdm(indices, desc="streaming the hold-out", unit="recording"):
        events, label = dataset[i]
        runs.append((label, stream_recording(model, events, int(args.packet_ms * 1000))))
    steps = min(len(o) for _, o in runs)
    command = " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])
    print(f"Model `{args.model}` (steps of {c.step_us / 1e3:g} ms, trained on T = {c.T} steps), "
          f"{len(runs)} hold-out recordings ({stated.describe()}); packets of {args.packet_ms:g} ms.\n"
          f"Command: `{command}`\n")
    print("| recording seen (ms) | steps | accuracy of the running prediction |\n|---:|---:|---:|")
    curve = []
    for k in range(steps):
        acc = float(np.mean([o[k].label == y for y, o in runs]))
        curve.append((runs[0][1][k].end_us / 1e3, acc))
        print(f"| {curve[-1][0]:g} | {k + 1} | {100 * acc:.1f}% |")
    print(f"\nEarly decision (running confidence >= threshold, at least {args.min_steps} steps; "
          "a recording never decided counts at its last step):\n")
    print("| threshold | accuracy | median time to decision (ms) | decided before the last step |\n|---:|---:|---:|---:|")
    rule = []
    for threshold in args.thresholds:
        decisions = [(decide(o, threshold, args.min_steps), y, o[-1].end_us / 1e3) for y, o in runs]
        acc = float(np.mean([label == y for (label, _), y, _ in decisions]))
        median_ms = statistics.median(ms for (_, ms), _, _ in decisions)
        early = float(np.mean([ms < last for (_, ms), _, last in decisions]))
        rule.append((threshold, acc, median_ms))
        print(f"| {threshold:g} | {100 * acc:.1f}% | {median_ms:g} | {100 * early:.0f}% |")
    plot(curve, rule, args.plot, args.model)
    print(f"\nPlot: `{args.plot}`")


def plot(curve, rule, path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([ms for ms, _ in curve], [100 * a for _, a in curve], "o-", label="running prediction, every step")
    for threshold, acc, ms in rule:
        ax.plot(ms, 100 * acc, "s", label=f"decide at confidence >= {threshold:g} (median time)")
    ax.set_xlabel("recording seen (ms)")
    ax.set_ylabel("accuracy on the hold-out (%)")
    ax.set_title(f"{name}: time to decision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
