"""The ``stc-zoo`` command line."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from .data import READERS
from .data.compressed import compress_dataset
from .model import StcSNN
from .zoo import REGISTRY


def evaluate(args) -> dict:
    """Accuracy of MODEL on a dataset split; prints one JSON line."""
    model = StcSNN.from_pretrained(args.model, device=args.device)
    reader = args.dataset or (REGISTRY[args.model].reader if args.model in REGISTRY else "nmnist")
    dataset = READERS[reader](args.data, args.split, download=args.download)
    X, y = compress_dataset(dataset, model.compression, args.cache_dir, desc=f"compressing {args.split}")
    correct = 0
    with torch.no_grad():
        for start in range(0, len(X), args.batch_size):
            xb = X[start:start + args.batch_size].transpose(0, 1).to(model.fc1.weight.device)
            correct += int((model(xb).argmax(-1).cpu() == y[start:start + args.batch_size]).sum())
    result = {"model": args.model, "data": str(args.data), "split": args.split, "samples": len(X),
              "accuracy": round(correct / max(len(X), 1), 6)}
    print(json.dumps(result))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stc-zoo", description="Spiking networks for event cameras.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="accuracy of a model on a dataset split (one JSON line)")
    ev.add_argument("model", help="zoo name, checkpoint folder or Hub repo id")
    ev.add_argument("--data", required=True, help="dataset root in its published layout")
    ev.add_argument("--split", choices=("train", "test"), default="test")
    ev.add_argument("--dataset", choices=sorted(READERS), help="reader (default: the zoo entry's, else nmnist)")
    ev.add_argument("--download", action="store_true", help="fetch the dataset through tonic if missing")
    ev.add_argument("--batch-size", type=int, default=128)
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--cache-dir", default=None, help="reuse compressed tensors cached here")
    ev.set_defaults(func=evaluate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
