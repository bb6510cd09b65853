"""The compression trade-off, measured: accuracy and CPU latency against the number of time steps.

    python training/tradeoff.py --data PATH/TO/nmnist-subset [--epochs 15]

Trains the nmnist-t4 network with the same 16 fine bins compressed into T = 1, 2, 4, 8 steps,
the uncompressed baseline (the 16 fine frames fed directly: T = 16, ratio 1) and two ablations at
T = 4 (no temporal mixing: k_t = 1; single threshold: K = 1), all on the same data, split, seed
and schedule. Then, in one process, times batch-1 inference from raw events to logits on the CPU
for every row (median of many runs after warm-up) and writes training/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from stc_zoo import StcConfig, StcSNN, train
from stc_zoo.data import NMNIST
from stc_zoo.hub.checkpoint import load_weights
from stc_zoo.timing import median_ms

ROWS = [  # (row name, overrides of the nmnist-t4 config)
    ("T=1 (CR 16)", {"T": 1, "ratio": 16}),
    ("T=2 (CR 8)", {"T": 2, "ratio": 8}),
    ("T=4 (CR 4)", {"T": 4, "ratio": 4}),
    ("T=8 (CR 2)", {"T": 8, "ratio": 2}),
    ("uncompressed T=16 (CR 1)", {"T": 16, "ratio": 1}),
    ("T=4, no temporal mix (k_t=1)", {"T": 4, "ratio": 4, "k_t": 1}),
    ("T=4, single threshold (K=1)", {"T": 4, "ratio": 4, "K": 1}),
]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").lower()


def latency_ms(model: StcSNN, events, runs: int) -> float:
    with torch.no_grad():
        return median_ms(lambda: model(model.compress(events)), runs, warmup=10)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training/tradeoff.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an N-MNIST folder (Train/<label>/<idx>.bin)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="runs/tradeoff")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per row")
    return parser


def main() -> None:
    args = build_parser().parse_args()

    results = []
    for name, changes in ROWS:
        out = Path(args.out) / slug(name)
        sets = [x for k, v in changes.items() for x in ("--set", f"{k}={json.dumps(v)}")]
        argv = ["--model", "nmnist-t4", "--data", args.data, "--out", str(out), "--epochs", str(args.epochs), *sets]
        done = (out / "metrics.jsonl").is_file() and len((out / "metrics.jsonl").read_text().splitlines()) == args.epochs
        if not done:
            train.main(argv + (["--resume"] if (out / train.STATE).is_file() else []))
        log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        results.append((name, changes, out, max(r["val_acc"] for r in log), argv))

    sample = NMNIST(args.data, "train").load_events(0)
    table = []
    for name, changes, out, acc, argv in results:  # all timings in this one process, back to back
        saved = json.loads((out / train.RUN).read_text())
        model = StcSNN(StcConfig.from_dict(saved["model"]))
        load_weights(model.network, out / train.BEST)
        model.fuse_for_inference()
        table.append((name, acc, latency_ms(model, [sample], args.runs), argv))
        print(f"{name:<32} val acc {acc:.3f}  latency {table[-1][2]:.3f} ms")

    lines = [
        "# The compression trade-off on the N-MNIST subset",
        "",
        "Validation accuracy and CPU batch-1 latency (raw events -> logits, BN folded, torch reference "
        "path) of the `nmnist-t4` network when the same 16 fine event bins are compressed into fewer "
        "time steps, against the uncompressed baseline, with two ablations at T = 4.",
        "",
        f"- Data: `{args.data}`, 1,000 real N-MNIST training recordings; validation = 100 of them "
        "(10% per class, seed 0) held out. **N-MNIST subset numbers, not full N-MNIST.** With 100 "
        "validation recordings one sample is 1 point of accuracy.",
        f"- Training: {args.epochs} epochs per row, same seed, split, optimiser and schedule "
        "(defaults of `training/train.py`); accuracy is the best epoch's.",
        f"- Latency: median of {args.runs} runs after 10 warm-up runs, one recording (index 0), "
        f"measured for all rows in one process: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}.",
        f"- Command: `python training/tradeoff.py --data {args.data} --epochs {args.epochs}`",
        "",
        "| configuration | val accuracy | latency (ms) | latency vs uncompressed |",
        "|---|---|---|---|",
    ]
    base = next(lat for name, _, lat, _ in table if name.startswith("uncompressed"))
    for name, acc, lat, _ in table:
        lines.append(f"| {name} | {acc * 100:.1f}% | {lat:.2f} | {lat / base:.2f}x |")
    lines += ["", "Per-row training commands:", ""]
    lines += [f"- {name}: `python training/train.py {' '.join(argv)}`" for name, _, _, argv in table]
    Path(__file__).with_name("RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {Path(__file__).with_name('RESULTS.md')}")


if __name__ == "__main__":
    main()
