"""``python -m stc_zoo.demo``: run a zoo model on event recordings and say what it did and how fast.

Uses the zoo entry's trained weights when it has them, else an untrained model of the same
architecture (and says so). Reads recordings of the entry's own dataset from ``--data`` (default:
the ``STC_ZOO_DATA`` environment variable; ``make demo`` points it at the N-MNIST subset when that
is present), picking them from the hold-out the model card states, so the accuracy shown is not
on training data. With no data folder it makes synthetic events (and says so). A folder that does
not hold the entry's dataset is refused: a gesture model is never shown digits.
"""

from __future__ import annotations

import argparse
import os
import time
import sys
from pathlib import Path

import numpy as np
import torch

from .data import READERS, synthetic_events
from .data.base import EventDataset
from .errors import StcError, WeightsUnavailableError
from .hub.holdout import held_out, stated_result
from .model import StcSNN, create_model
from .network import record_spikes
from .timing import median_ms
from .zoo import ZooEntry, get_entry

DATA_ENV = "STC_ZOO_DATA"


def load_model(name: str) -> tuple[StcSNN, bool]:
    try:
        return StcSNN.from_pretrained(name), True
    except WeightsUnavailableError as err:
        print(f"note: {err}\n      -> running an UNTRAINED {name} (random weights): predictions are chance.\n")
        return create_model(name).eval(), False


def load_samples(model: StcSNN, entry: ZooEntry, data: Path | None, n: int
                 ) -> tuple[list[np.ndarray], list[int] | None, str, bool]:
    """``n`` recordings of ``entry``'s dataset under ``data``, spread over the classes, or synthetic events;
    what they are; whether the model was trained on them.

    A trained model's recordings come from the hold-out its card states (or, for a model trained on
    every recording, the test split when there is one); an untrained one's from the dataset's
    training split. StcError when ``data`` exists but is not that dataset.
    """
    sensor = model.config.input.sensor_size
    if data is None or not data.exists():
        samples = [synthetic_events(sensor, 4000, seed) for seed in range(n)]
        where = f"no data folder at {data}" if data else f"no --data and no {DATA_ENV}"
        return samples, None, f"{n} SYNTHETIC event streams ({where})", False
    try:
        stated = stated_result(model.checkpoint_folder) if model.checkpoint_folder is not None else None
        seen = False
        if stated is not None and stated.folds:
            dataset, pool, what, seen = unseen_or_training(data, entry, stated)
        elif stated is not None:
            dataset, pool = held_out(data, stated)
            what = f"from the validation hold-out the card states ({stated.describe()}), not trained on"
        else:
            dataset = READERS[entry.reader](data, "train")
            pool, what = list(range(len(dataset))), "from its train split (the model is untrained)"
    except (FileNotFoundError, StcError) as err:
        raise StcError(f"--data {data}: not a {entry.dataset} folder, which {entry.name} takes "
                       f"({entry.data_hint}): {err}") from None
    picks = [pool[i] for i in np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)]
    return ([dataset.load_events(i) for i in picks], [dataset.targets[i] for i in picks],
            f"{len(picks)} real {entry.dataset} recordings from {data}, {what}", seen)


def unseen_or_training(data: Path, entry: ZooEntry, stated) -> tuple[EventDataset, list[int], str, bool]:
    """For a model trained on every recording of its split: the test split when ``data`` has one, else
    the training recordings, said plainly (its card's accuracy is then the cross-validated estimate)."""
    try:
        dataset = READERS[entry.reader](data, "test")
        return dataset, list(range(len(dataset))), "from the test split, never trained on", False
    except (FileNotFoundError, StcError):
        dataset = READERS[entry.reader](data, stated.source_split)
        what = (f"from its TRAINING data (it was trained on all {stated.samples} of them; the card's "
                f"{stated.percent:.2f}% is a {stated.folds}-fold cross-validated estimate, not measured here)")
        return dataset, list(range(len(dataset))), what, True


def spike_rates(model: StcSNN, x: torch.Tensor) -> list[tuple[str, float]]:
    """Mean spike count per neuron per step of every MT-LIF layer."""
    return [(name, s.mean().item()) for name, s in record_spikes(model.network, x)[1]]


def run(args: argparse.Namespace) -> None:
    entry = get_entry(args.model)
    model, trained = load_model(args.model)
    i = model.config.input
    params = sum(p.numel() for p in model.parameters())
    print(f"model   {args.model} ({entry.dataset}), {'trained' if trained else 'UNTRAINED'}, {params:,} parameters")
    print(f"input   sensor {i.sensor_size[0]}x{i.sensor_size[1]} -> T={i.T} steps (ratio {i.ratio}, split by "
          f"{i.split_by}, decay {i.decay}) x 2 x {i.output_size[0]}x{i.output_size[1]} (spatial /{i.spatial})")
    model.fuse_for_inference()
    start = time.perf_counter()
    model.warmup()  # the latencies below are the CPU fast path's
    print(f"warm-up {time.perf_counter() - start:.1f} s (the CPU kernels compile on a machine's first run, "
          "then load from Numba's cache)")

    samples, labels, source, seen = load_samples(model, entry, args.data, args.samples)
    print(f"data    {source}\n")
    probs = model.predict_proba(samples)
    names = model.config.labels
    print(f"{'#':>3} {'events':>7} {'label':>6} {'predicted':>10} {'confidence':>11}")
    for k, (ev, p) in enumerate(zip(samples, probs)):
        label = names[labels[k]] if labels else "-"
        print(f"{k:>3} {len(ev):>7} {label:>6} {names[int(p.argmax())]:>10} {p.max().item():>11.3f}")
    if labels:
        correct = int((probs.argmax(-1) == torch.tensor(labels)).sum())
        print(f"accuracy on these {len(labels)}: {correct}/{len(labels)}"
              + ("" if trained else f" (untrained model: chance is {100 / len(names):.0f}%)")
              + (" (recordings it was trained on: not an accuracy estimate)" if seen else ""))

    one = samples[:1]
    x = model.compress(one)
    with torch.no_grad():
        t_comp = median_ms(lambda: model.compress(one), args.runs)
        t_net = median_ms(lambda: model(x), args.runs)
        t_all = median_ms(lambda: model(model.compress(one)), args.runs)
        numba_path = model.network.uses_numba(x)
    print(f"\nlatency, batch 1, CPU ({torch.get_num_threads()} threads), median of {args.runs} runs after warm-up:")
    print(f"  compression (events -> [T, 1, 2, H, W])  {t_comp:8.3f} ms")
    path = "Numba kernels" if numba_path else "PyTorch reference"
    print(f"  network (BN folded, {path + ')':<20} {t_net:8.3f} ms")
    print(f"  end to end (raw events -> logits)        {t_all:8.3f} ms")
    print("\nspike activity (mean count per neuron per step, K = %d):" % model.config.network.K)
    for name, rate in spike_rates(model, model.compress(samples)):
        print(f"  {name:<12} {rate:.4f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stc_zoo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nmnist-t4", help="zoo name (default nmnist-t4)")
    parser.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV) or None,
                        help=f"the entry's dataset in its published layout (default: ${DATA_ENV})")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measurement (median)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except StcError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
