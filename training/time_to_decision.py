"""Time to decision of a streaming (duration-binned) model, cross-validated on real recordings.

Every fold model of a cross-validation run (``stc-zoo train --folds K --out OUT``) streams the
recordings it held out through ``model.stream()`` in packets of ``--packet-ms``, as a camera would
deliver them, so every number is on recordings the model measuring it never trained on. Measured per
fold, then summarised over the folds (mean ± std [corrected 95% interval], as the accuracy):

* the accuracy of the running prediction after 20, 40, 60, 100 ms ... (``--at-ms``) of recording;
* for each early-decision rule (running confidence >= threshold after >= ``--min-steps`` steps): the
  accuracy of its decisions, the share it never decides on within the T steps (they count at their
  last step), the median decision time, and the share of recordings decided correctly within
  ``--within-ms`` (the target the streaming entry is held to).

Prints Markdown (for training/RESULTS.md and, with ``--card FOLDER``, that model card's section) and
writes a plot of the pooled accuracy curve.

    .venv/bin/python training/time_to_decision.py --cv runs/nmnist-stream-20ms-cv5 --data ../shared/data/nmnist-subset
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from stc_zoo import StcSNN
from stc_zoo.stream import decides
from stc_zoo.training.crossval import fold_model, summarize
from stc_zoo.training.state import FINAL, RUN

SECTION = "## Time to decision (cross-validated)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cv", type=Path, required=True, help="the cross-validation run's folder (OUT of stc-zoo train "
                   "--folds K --out OUT): its fold-<i> folders")
    p.add_argument("--data", required=True, help="the dataset root its folds were drawn from")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.8, 0.9, 0.95, 0.99])
    p.add_argument("--min-steps", type=int, default=2, help="never decide before this many steps (default 2)")
    p.add_argument("--at-ms", type=float, nargs="+", default=[20, 40, 60, 100], help="recording seen (ms) at which "
                   "the running prediction's accuracy is reported (default 20 40 60 100; the full window is added)")
    p.add_argument("--within-ms", type=float, default=100.0, help="report the share decided correctly within this "
                   "much recording (default 100 ms)")
    p.add_argument("--packet-ms", type=float, default=1.0, help="packet duration pushed at a time (default 1 ms)")
    p.add_argument("--plot", type=Path, default=Path("training/time_to_decision.png"))
    p.add_argument("--card", type=Path, help="also write the tables into this model card's section")
    p.add_argument("--model", help="stream every fold's held-out recordings through this one checkpoint instead of "
                   "the fold models (e.g. weights never shown a real recording: zero-shot, on the same folds)")
    return p


def stream_recording(model: StcSNN, events: np.ndarray, packet_us: int) -> list:
    """Every step's output for one recording, pushed in packets of ``packet_us``; the stream ends at its last
    event or at the end of the model's T steps, whichever is later (a shorter recording's last steps are
    silent, as offline, where the window is T steps from the first event)."""
    session = model.stream()
    c = model.config.input
    t0 = int(events["t"][0])
    t_end = max(int(events["t"][-1]) + 1, t0 + c.T * c.step_us)
    ends = np.arange(t0 + packet_us, t_end + packet_us, packet_us)
    cuts = np.searchsorted(events["t"], ends)
    outputs, start = [], 0
    for end, cut in zip(ends, cuts):
        outputs += session.push(events[start:cut], now_us=int(min(end, t_end)))
        start = cut
    return outputs


def fold_runs(folder: Path, data: str, packet_us: int, instead: str | None = None) -> tuple[StcSNN, list[tuple[int, list]]]:
    """The fold model (its last epoch) and, for every recording it held out, (label, step outputs); with
    ``instead``, that checkpoint streams them, loaded with the fold model's input binning (the weights of
    one network fit any T and step)."""
    model, dataset, held = fold_model(folder, data)
    if instead is not None:
        c = model.config.input
        model = StcSNN.from_pretrained(instead, T=c.T, ratio=c.ratio, split_by=c.split_by, step_us=c.step_us,
                                       decay=c.decay).fuse_for_inference()
    runs = []
    for i in tqdm(held, desc=f"streaming {folder.name}'s held-out recordings", unit="recording"):
        events, label = dataset[i]
        runs.append((int(label), stream_recording(model, events, packet_us)))
    return model, runs


def decide(outputs: list, threshold: float | None, min_steps: int, T: int,
           max_steps: int | None = None) -> tuple[int, float, bool]:
    """(label, ms, decided) of the first step where the session's rule (``stream.decides``) holds within the
    T steps, else the last step's (undecided)."""
    for o in outputs[min_steps - 1:T]:
        if decides(o.step + 1, o.confidence, threshold, min_steps, T, max_steps) and (
                threshold is not None or max_steps is not None):
            return o.label, o.end_us / 1e3, True
    last = outputs[min(T, len(outputs)) - 1]
    return last.label, last.end_us / 1e3, False


def measure(runs: list, step_us: int, T: int, at_ms: list[float], thresholds: list[float], min_steps: int,
            within_ms: float) -> dict:
    """One fold's measurements on its held-out ``runs``."""
    at = {ms: float(np.mean([o[int(ms * 1e3 // step_us) - 1].label == y for y, o in runs])) for ms in at_ms}
    rules = {}
    deadline = int(within_ms * 1e3 // step_us)
    for rule in [*((t, None) for t in thresholds), *((t, deadline) for t in thresholds)]:
        d = [(decide(o, *rule[:1], min_steps, T, rule[1]), y) for y, o in runs]
        rules[rule] = {
            "accuracy": float(np.mean([label == y for (label, _, _), y in d])),
            "undecided": float(np.mean([not decided for (_, _, decided), _ in d])),
            "median_ms": statistics.median(ms for (_, ms, _), _ in d),
            "times_ms": [ms for (_, ms, _), _ in d],
            "correct_within": float(np.mean([label == y and decided and ms <= within_ms
                                             for (label, ms, decided), y in d])),
        }
    curve = [float(np.mean([o[k].label == y for y, o in runs])) for k in range(T)]
    return {"recordings": len(runs), "at": at, "rules": rules, "curve": curve}


def render(folds: list[dict], args, step_us: int, T: int, command: str, of: int) -> str:
    k, n = len(folds), sum(f["recordings"] for f in folds)
    pct = lambda values: str(summarize(values, 1 / of))  # noqa: E731 - mean ± std [corrected interval], in %
    which = f"{of}-fold cross-validation" if k == of else f"{k} of the {of} folds of a cross-validation"
    who = (f"`{args.model}` (one model, for every fold) streams the {n // k} recordings each fold held out" if args.model
           else f"each fold's model (its last epoch) streams the {n // k} recordings it held out")
    lines = [f"{which} (`{args.cv}`): {who}, {n} in all, in {args.packet_ms:g} ms packets (steps of "
             f"{step_us / 1e3:g} ms, T = {T}). Mean ± std over the folds [corrected 95% interval].", "",
             f"Command: `{command}`", "",
             "| recording seen | accuracy of the running prediction % |", "|---:|---|"]
    for ms in [*args.at_ms, T * step_us / 1e3]:
        key = ms if ms in folds[0]["at"] else None
        values = [f["at"][ms] for f in folds] if key is not None else [f["curve"][T - 1] for f in folds]
        lines.append(f"| {ms:g} ms{' (the full window)' if key is None else ''} | {pct(values)} |")
    deadline = int(args.within_ms * 1e3 // step_us)
    lines += ["", f"Early decision (`model.stream(threshold, min_steps={args.min_steps}[, max_steps={deadline}])`): "
                  f"running confidence >= threshold after >= {args.min_steps} steps, or with the deadline at step "
                  f"{deadline} ({deadline * step_us / 1e3:g} ms) at the latest; a recording not decided within the "
                  f"{T} steps counts at its last step (undecided).", "",
              f"| rule | accuracy of the decisions % | undecided % | median time to decision ms (pooled; fold medians) "
              f"| decided correctly within {args.within_ms:g} ms % |", "|---|---|---|---|---|"]
    for rule in folds[0]["rules"]:
        threshold, latest = rule
        r = [f["rules"][rule] for f in folds]
        medians = [x["median_ms"] for x in r]
        pooled = statistics.median(ms for x in r for ms in x["times_ms"])
        name = f"confidence >= {threshold:g}" + (f", at {latest * step_us / 1e3:g} ms at the latest" if latest else "")
        lines.append(f"| {name} | {pct([x['accuracy'] for x in r])} | {pct([x['undecided'] for x in r])} | "
                     f"{pooled:g} ({min(medians):g}-{max(medians):g}) | {pct([x['correct_within'] for x in r])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    folders = sorted(args.cv.glob("fold-*/"), key=lambda p: int(p.name.removeprefix("fold-")))
    if not folders or not all((f / FINAL).is_file() for f in folders):
        sys.exit(f"{args.cv}: no finished fold-<i> folders (each needs {FINAL})")
    folds, curves = [], []
    for folder in folders:
        model, runs = fold_runs(folder, args.data, int(args.packet_ms * 1000), args.model)
        c = model.config.input
        folds.append(measure(runs, c.step_us, c.T, args.at_ms, args.thresholds, args.min_steps, args.within_ms))
        curves.append((folds[-1]["curve"], len(runs)))
    command = " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])
    of = json.loads((folders[0] / RUN).read_text())["train"]["folds"]
    text = render(folds, args, c.step_us, c.T, command, of)
    print(text)
    pooled = [sum(cv[k] * m for cv, m in curves) / sum(m for _, m in curves) for k in range(c.T)]
    plot([((k + 1) * c.step_us / 1e3, a) for k, a in enumerate(pooled)], args.plot, args.cv.name)
    print(f"\nPlot: `{args.plot}`")
    if args.card is not None:
        write_card(args.card, text)
        print(f"wrote the section into {args.card / 'README.md'}")


def write_card(folder: Path, text: str) -> None:
    """Put ``text`` into the card's time-to-decision section (where it stands, or before Configuration)."""
    from stc_zoo.atomic import replace_atomically
    from stc_zoo.hub.card import put_section

    path = folder / "README.md"
    card = put_section(path.read_text(), SECTION, text)
    replace_atomically(path, lambda tmp: Path(tmp).write_text(card))


def plot(curve, path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([ms for ms, _ in curve], [100 * a for _, a in curve], "o-", label="running prediction (pooled held-out folds)")
    ax.set_xlabel("recording seen (ms)")
    ax.set_ylabel("accuracy on held-out recordings (%)")
    ax.set_title(f"{name}: time to decision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
