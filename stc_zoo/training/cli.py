"""``stc-zoo train``'s options and ``main``: one run, or ``--folds K`` cross-validation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import thread_count
from ..data.tonic_adapter import dataset_key
from ..errors import StcError
from . import crossval
from .config import TrainError
from .run import train_run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stc-zoo train", description="Train an stc-zoo model (also: "
                                     "python training/train.py, python -m stc_zoo.train).")
    parser.add_argument("--model", required=True, help="zoo entry whose config to train (e.g. nmnist-t4)")
    parser.add_argument("--data", required=True, help="dataset root in its published layout")
    parser.add_argument("--out", help="run folder (default runs/<model>)")
    parser.add_argument("--config", help="JSON/YAML file with 'model' and 'train' overrides")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override one config field")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", dest="batch_size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--download", action="store_true",
                        help="fetch the dataset into --data through tonic when it is missing (needs a network)")
    parser.add_argument("--cache-dir", default=".cache/stc-zoo", help="compressed-data cache ('' disables)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--export", type=Path, help="write the Hub-ready folder of the best weights here")
    parser.add_argument("--threads", type=thread_count, help="CPU threads for torch (as every command takes it)")
    parser.add_argument("--workers", type=int, default=2, help="threads that read and compress the data (default 2)")
    parser.add_argument("--init", metavar="MODEL_OR_FOLDER",
                        help="start from these trained weights (zoo name, checkpoint folder or Hub id): its backbone, "
                             "a new head when --model's classes differ")
    parser.add_argument("--freeze-blocks", action="store_true", help="with --init: train only the classifier")
    parser.add_argument("--backbone-lr-scale", type=float, default=1.0,
                        help="learning rate of everything but the head, as a fraction of --lr (default 1.0)")
    parser.add_argument("--folds", type=int, metavar="K",
                        help="stratified K-fold cross-validation of this recipe (fixed schedule, each fold's last "
                             "epoch; OUT/cv.json); with --export, then trains on every recording and exports that "
                             "with the cross-validated accuracy on its card")
    parser.add_argument("--fold", type=int, metavar="I", help="with --folds: run fold I (1..K) only")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "triton"),
                        help="spiking-layer kernels while training (default auto: Triton on CUDA, the PyTorch "
                             "reference on CPU)")
    parser.add_argument("--dataset", type=dataset_key,
                        help="how to read --data: the --model entry's dataset by default; 'folder' reads any "
                             "ROOT/<class>/<recording> tree, 'tonic:<Class>' any tonic.datasets class (their "
                             "classes replace the entry's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train (or resume) a run; returns its metadata. A user's mistake: one line on stderr, exit 2."""
    args = parse_args(argv)
    try:
        if args.folds is not None or args.fold is not None:
            if args.folds is None:
                raise TrainError("--fold needs --folds")
            return crossval.run(args, argv)
        return train_run(args, argv)
    except StcError as err:
        print(f"train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
