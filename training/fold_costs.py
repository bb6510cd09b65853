"""Operations per decision of cross-validation fold models, on each fold's own held-out recordings:
the cost column of RESULTS.md's trade-off table (``stc_zoo.metrics``). Prints Markdown.

    .venv/bin/python training/fold_costs.py runs/cv/t16/fold-1 runs/cv/t4/fold-1 --data ../shared/data/nmnist-subset
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stc_zoo import metrics
from stc_zoo.data.compressed import compress_dataset
from stc_zoo.evaluation import accuracy
from stc_zoo.training.crossval import fold_model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folds", nargs="+", type=Path, help="fold folders (OUT/fold-<i> of stc-zoo train --folds K)")
    p.add_argument("--data", required=True, help="the dataset root the folds were drawn from")
    p.add_argument("--batch-size", type=int, default=64)
    return p


def fold_cost(folder: Path, data: str, batch_size: int) -> dict:
    """The fold model's last epoch (``final.safetensors``) on the fold it held out: accuracy and metrics."""
    model, dataset, held = fold_model(folder, data)
    X, y = compress_dataset(dataset, model.pipeline, indices=held, desc=f"compressing {folder}")
    p = metrics.profile(model.network, metrics.in_batches(X, batch_size))
    c = model.config.input
    return {"folder": str(folder), "T": c.T, "ratio": c.ratio, "K": model.config.network.K, "recordings": p.recordings,
            "accuracy": accuracy(model.network, X, y), "effective_macs": p.effective_macs,
            "effective_acs": p.effective_acs, "membrane_updates": p.membrane_updates,
            "activation_sparsity": p.activation_sparsity}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    rows = [fold_cost(f, args.data, args.batch_size) for f in args.folds]
    print("| fold model | T (CR) | held-out recordings | its accuracy % | effective MACs | effective ACs | "
          "membrane updates | activation sparsity |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['folder']}` | T={r['T']} (CR {r['ratio']}) | {r['recordings']} | {r['accuracy'] * 100:.1f} | "
              f"{r['effective_macs']:,.0f} | {r['effective_acs']:,.0f} | {r['membrane_updates']:,.0f} | "
              f"{r['activation_sparsity']:.4f} |")


if __name__ == "__main__":
    main()
