"""How a model trained on simulated recordings alone does on the real ones: the simulator's fidelity in one
number. Accuracy on every real recording of the N-MNIST subset (none of whose images the weights saw:
their trained_on.json says which images they did, and this script refuses an overlap), and on those of
MNIST images 300..999 alone (which the simulator's calibration never saw either), with Wilson 95%
intervals. Writes the numbers as JSON with ``--out``.

    python training/zero_shot.py runs/nmnist-t4-sim-pretrain/export --out training/logs/nmnist-t4-sim-zero-shot.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from stc_zoo import StcSNN
from stc_zoo.data import NMNIST, stratified_folds
from stc_zoo.data.compressed import compress_dataset
from stc_zoo.evaluation import accuracy
from stc_zoo.hub.seen import identify

CALIBRATED = range(0, 300)  # the images the simulator's defaults were fitted on


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint folder (trained on simulated recordings only)")
    parser.add_argument("--data", default="../shared/data/nmnist-subset", help="the real N-MNIST subset")
    parser.add_argument("--out", type=Path, help="write the numbers here (JSON)")
    parser.add_argument("--folds", type=int, default=10, help="also per held-out fold of this stratified partition "
                        "(the cards' cross-validations: 10 folds, seed 1), for paired comparisons")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    model = StcSNN.from_pretrained(args.model)
    dataset = NMNIST(args.data, "train")
    everything = list(range(len(dataset)))
    if model.trained_on is None:
        sys.exit(f"{args.model}: no trained_on.json, so whether it saw these recordings is unknown")
    seen = model.trained_on.overlap(*identify(dataset, everything))
    if seen:
        sys.exit(f"{args.model}: its weights saw {len(seen)} of these recordings or their images: not zero-shot")
    X, y = compress_dataset(dataset, model.pipeline, desc="compressing")
    images = [dataset.source_image(i)[1] for i in everything]
    unseen = [i for i in everything if images[i] not in CALIBRATED]
    result = {"model": args.model, "data": args.data, "trained_on": model.trained_on.describe(), "rows": []}
    for name, rows in (("all 1,000 real recordings (MNIST images 0..999)", everything),
                       ("real recordings of MNIST images 300..999 (unseen by the calibration)", unseen)):
        acc = accuracy(model.network, X[rows], y[rows])
        low, high = wilson(round(acc * len(rows)), len(rows))
        result["rows"].append({"recordings": name, "samples": len(rows), "accuracy": acc, "wilson95": [low, high]})
        print(f"{name}: {acc * 100:.2f}% of {len(rows)} [{low * 100:.2f}, {high * 100:.2f}]")
    folds = stratified_folds(dataset.targets, args.folds, args.seed)
    result["per_fold"] = [accuracy(model.network, X[f], y[f]) for f in folds]
    result["folds"], result["seed"] = args.folds, args.seed
    print(f"per held-out fold ({args.folds} folds, seed {args.seed}): "
          + ", ".join(f"{a * 100:.1f}" for a in result["per_fold"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
