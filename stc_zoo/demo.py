"""``python -m stc_zoo.demo``: run a zoo model on event recordings and say what it did and how fast.

Uses the trained ``nmnist-t4`` when it has weights, else an untrained model of the same
architecture (and says so). Reads real N-MNIST recordings from ``--data`` when present, else
makes synthetic events (and says so).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .data import NMNIST, stratified_split, synthetic_events
from .errors import WeightsUnavailableError
from .model import StcSNN
from .timing import median_ms
from .zoo import create_model, get_entry


def load_model(name: str) -> tuple[StcSNN, bool]:
    try:
        return StcSNN.from_pretrained(name), True
    except WeightsUnavailableError as err:
        print(f"note: {err}\n      -> running an UNTRAINED {name} (random weights): predictions are chance.\n")
        return create_model(name).eval(), False


def load_samples(data: Path, n: int, sensor: tuple[int, int]) -> tuple[list[np.ndarray], list[int] | None, str]:
    """``n`` recordings of an N-MNIST folder, spread over the classes, or synthetic events.

    Picks from the 10%-per-class, seed-0 hold-out that the bundled nmnist-t4 never trained on
    (its card states that split), so the accuracy printed is not on training data.
    """
    try:
        dataset = NMNIST(data, "train")
        _, held = stratified_split(dataset.targets, 0.1, seed=0)
        picks = [held[i] for i in np.linspace(0, len(held) - 1, min(n, len(held))).astype(int)]
        return ([dataset.load_events(i) for i in picks], [dataset.targets[i] for i in picks],
                f"{len(picks)} real N-MNIST recordings from {data}, from the validation hold-out "
                "(10% per class, seed 0) that nmnist-t4 was not trained on")
    except FileNotFoundError:
        samples = [synthetic_events(sensor, 4000, seed) for seed in range(n)]
        return samples, None, f"{n} SYNTHETIC event streams (no N-MNIST folder at {data})"


def spike_rates(model: StcSNN, x: torch.Tensor) -> list[tuple[str, float]]:
    """Mean spike count per neuron per step of every MT-LIF layer."""
    return [(name, s.mean().item()) for name, s in model.forward_with_spikes(x)[1]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nmnist-t4")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/nmnist-subset"))
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measurement (median)")
    args = parser.parse_args(argv)

    entry = get_entry(args.model)
    model, trained = load_model(args.model)
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"model   {args.model} ({entry.dataset}), {'trained' if trained else 'UNTRAINED'}, {params:,} parameters")
    print(f"input   sensor {c.sensor_size[0]}x{c.sensor_size[1]} -> T={c.T} steps (ratio {c.ratio}, split by "
          f"{c.split_by}, decay {c.decay}) x 2 x {c.input_size[0]}x{c.input_size[1]} (spatial /{c.spatial})")
    model.fuse_for_inference()

    samples, labels, source = load_samples(args.data, args.samples, c.sensor_size)
    print(f"data    {source}\n")
    probs = model.predict_proba(samples)
    names = c.class_names or tuple(str(i) for i in range(c.num_classes))
    print(f"{'#':>3} {'events':>7} {'label':>6} {'predicted':>10} {'confidence':>11}")
    for i, (ev, p) in enumerate(zip(samples, probs)):
        label = names[labels[i]] if labels else "-"
        print(f"{i:>3} {len(ev):>7} {label:>6} {names[int(p.argmax())]:>10} {p.max().item():>11.3f}")
    if labels:
        correct = int((probs.argmax(-1) == torch.tensor(labels)).sum())
        print(f"accuracy on these {len(labels)}: {correct}/{len(labels)}"
              + ("" if trained else " (untrained model: chance is 10%)"))

    one = samples[:1]
    x = model.compress(one)
    with torch.no_grad():
        t_comp = median_ms(lambda: model.compress(one), args.runs)
        t_net = median_ms(lambda: model(x), args.runs)
        t_all = median_ms(lambda: model(model.compress(one)), args.runs)
    print(f"\nlatency, batch 1, CPU ({torch.get_num_threads()} threads), median of {args.runs} runs after warm-up:")
    print(f"  compression (events -> [T, 1, 2, H, W])  {t_comp:8.3f} ms")
    print(f"  network (BN folded, torch reference)     {t_net:8.3f} ms")
    print(f"  end to end (raw events -> logits)        {t_all:8.3f} ms")
    print("\nspike activity (mean count per neuron per step, K = %d):" % c.K)
    for name, rate in spike_rates(model, model.compress(samples)):
        print(f"  {name:<12} {rate:.4f}")


if __name__ == "__main__":
    main()
