"""How the gain of simulated pretraining moves with the number of real recordings (Markdown table).

Every row is nmnist-t4's card recipe on the card's 10 folds (seed 1), each fold's training part cut to
N recordings (``--set train_limit=N``: a stratified sample drawn from the seed, the held-out fold
unchanged), trained from scratch on the real recordings ("real only") or from the weights pretrained on
simulated saccades ("simulated, then real"); "all" is the full training part (900), the runs the card
and training/RESULTS.md report. Differences are paired fold by fold (corrected resampled t-test, with
the correction for N training recordings against 100 held out).

    .venv/bin/python training/data_size.py                       # reads runs/curve-{real,sim}-{100,300}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing too

from stc_zoo.training.crossval import paired, summarize  # noqa: E402

# (training recordings per fold, cv.json of real-only training, of simulated-then-real)
FULL = (900, ROOT / "training" / "logs" / "nmnist-t4-cv10.json", ROOT / "training" / "logs" / "nmnist-t4-sim-cv10.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of the curve-<recipe>-<N> runs")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300])
    return p


def row(n: int, real: dict, sim: dict) -> str:
    held = real["samples"] / real["folds"]  # recordings per held-out fold
    frac = held / (held + n)  # the correction's n_test / n_train, for N training recordings
    a, b = sim["per_fold"], real["per_fold"]
    d = paired(a, b, frac)
    better = sum(x > y for x, y in zip(a, b))
    worse = sum(x < y for x, y in zip(a, b))
    return (f"| {n} | {summarize(b, frac)} | {summarize(a, frac)} | {d.diff * 100:+.2f} "
            f"[{d.low * 100:+.2f}, {d.high * 100:+.2f}] | {d.p:.3f} | {better} / {worse} / {len(a) - better - worse} |")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    runs = []
    for n in args.sizes:
        real, sim = (json.loads((args.runs / f"curve-{r}-{n}" / "cv.json").read_text()) for r in ("real", "sim"))
        for cv in (real, sim):
            assert cv["train"].get("train_limit") == n and cv["folds"] == 10 and cv["seed"] == 1, cv["command"]
        runs.append((n, real, sim))
    n, real_path, sim_path = FULL
    runs.append((n, json.loads(real_path.read_text()), json.loads(sim_path.read_text())))
    print("| real recordings per fold | real only | simulated, then real | difference (points) [corrected 95%] "
          "| p | folds better / worse / equal |\n|---:|---|---|---|---|---|")
    for n, real, sim in runs:
        print(row(n, real, sim))
    print("\nAccuracy on each fold's 100 held-out real recordings: mean ± std over the 10 folds [corrected 95% "
          "interval]. Commands:\n")
    for n, real, sim in runs:
        print(f"    {real['command']}\n    {sim['command']}")


if __name__ == "__main__":
    main()
