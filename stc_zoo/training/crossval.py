"""Stratified k-fold cross-validation of a training recipe, and the statistics that compare recipes.

``stc-zoo train --model nmnist-t4 --data ROOT --folds 5`` trains the recipe once per fold, each
time holding out one fold of a stratified partition (``stc_zoo.data.stratified_folds``) and
training on the rest with the same fixed schedule. A fold's accuracy is its **last** epoch's on
the held-out fold: nothing (no epoch, no hyper-parameter) is chosen on the recordings that measure
it. Folds run one after another in ``OUT/fold-<i>``; rerunning the command continues where it
stopped (a finished fold is kept, a cut one resumes), and ``--fold i`` runs one fold alone (for
running folds side by side). ``OUT/cv.json`` holds the per-fold and summary numbers.

With ``--export DIR`` the recipe is then trained once more on every recording (no hold-out, same
schedule, last epoch kept) and exported with the cross-validated estimate on its card: the
accuracy a user can expect from the exported weights on new recordings of the same kind.

Intervals: folds share training data, so the plain t-interval over fold accuracies is too narrow.
``summarize`` and ``paired`` use the Nadeau & Bengio (2003) correction of the variance,
``(1/k + n_test/n_train) * s^2`` in place of ``s^2/k``, with a t distribution of k - 1 degrees
of freedom.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy import stats

from ..zoo import get_entry
from .config import TrainConfig, TrainError, resolve_configs, run_recipe
from .run import command_line, export_finished, train_run
from .state import FINAL, RUN, STATE, read_meta

CV_FILE, RESULT_FILE = "cv.json", "result.json"


@dataclass(frozen=True)
class Interval:
    """Mean of per-fold values with its corrected 95% interval."""

    mean: float
    std: float  # sample standard deviation over folds
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean * 100:.2f} ± {self.std * 100:.2f} [{self.low * 100:.2f}, {self.high * 100:.2f}]"


def corrected_se(values: list[float], test_fraction: float | None = None) -> float:
    """Corrected standard error of the mean of per-fold ``values``: ``sqrt((1/k + n_test/n_train) s^2)``
    (``test_fraction`` = n_test / n, 1/k by default); nan for fewer than two folds."""
    k = len(values)
    if k < 2:
        return math.nan
    frac = test_fraction if test_fraction is not None else 1 / k
    mean = sum(values) / k
    var = sum((v - mean) ** 2 for v in values) / (k - 1)
    return math.sqrt((1 / k + frac / (1 - frac)) * var)


def t_quantile(folds: int, confidence: float = 0.95) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, folds - 1))


def summarize(values: list[float], test_fraction: float | None = None) -> Interval:
    """Mean, std and corrected 95% interval of per-fold accuracies (``test_fraction``: 1/k by default)."""
    k = len(values)
    if k == 0:
        raise ValueError("no fold values to summarize")
    mean = sum(values) / k
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1)) if k > 1 else math.nan
    half = t_quantile(k) * corrected_se(values, test_fraction) if k > 1 else math.nan
    return Interval(mean, std, max(mean - half, 0.0), min(mean + half, 1.0))  # an accuracy stays in [0, 1]


@dataclass(frozen=True)
class Comparison:
    """``a - b`` over the same folds: mean difference, its corrected 95% interval and two-sided p."""

    diff: float
    low: float
    high: float
    p: float

    @property
    def real(self) -> bool:
        """Whether the interval excludes zero (the difference is unlikely to be fold-to-fold noise)."""
        return self.low > 0 or self.high < 0


def paired(a: list[float], b: list[float], test_fraction: float | None = None) -> Comparison:
    """Paired comparison of two recipes' accuracies on the same folds (corrected resampled t-test)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired comparison needs the same folds (>= 2) for both, got {len(a)} and {len(b)}")
    k = len(a)
    d = [x - y for x, y in zip(a, b)]
    mean, se = sum(d) / k, corrected_se(d, test_fraction)
    p = 1.0 if se == 0 and mean == 0 else (0.0 if se == 0 else float(2 * stats.t.sf(abs(mean) / se, k - 1)))
    return Comparison(mean, mean - t_quantile(k) * se, mean + t_quantile(k) * se, p)


# ------------------------------------------------------------------ the protocol
def fold_args(args: argparse.Namespace, out: Path, fold: int) -> argparse.Namespace:
    """The arguments of one fold's training run."""
    one = copy.copy(args)
    one.out, one.export, one.folds, one.fold, one.resume = str(out / f"fold-{fold}"), None, None, None, False
    one.set = [*(args.set or []), f"folds={args.folds}", f"fold={fold}"]
    return one


def final_args(args: argparse.Namespace, out: Path) -> argparse.Namespace:
    """The arguments of the run on every recording that ``--export`` publishes."""
    one = copy.copy(args)
    one.out, one.folds, one.fold, one.resume = str(out / "final"), None, None, False
    one.set = [*(args.set or []), "val_fraction=0"]
    return one


def run_or_continue(args: argparse.Namespace, argv: list[str] | None) -> dict | None:
    """Train the run ``args`` describes, continuing it if its folder holds part of it; its metadata (read
    back when it had already finished). Refuses a folder that holds a run of another recipe (configs, reader,
    data, starting weights, frozen blocks, backbone learning-rate scale: ``run_recipe``)."""
    out = Path(args.out)
    if (out / RUN).is_file():
        saved = json.loads((out / RUN).read_text())
        config, train = resolve_configs(args)
        as_json = lambda d: json.loads(json.dumps(d))  # noqa: E731 - tuples were saved as lists
        wanted, defaults = as_json(asdict(train)), as_json(asdict(TrainConfig()))
        # a field added after the run was written must still hold its default
        differs = [k for k, v in wanted.items() if saved["train"].get(k, defaults[k]) != v]
        differs += ["model"] if saved["model"] != as_json(config.to_dict()) else []
        recipe = run_recipe(args, args.dataset or get_entry(args.model).reader)
        differs += [k for k, v in recipe.items() if (saved.get("recipe") or {}).get(k, "(not recorded)") != v]
        if differs:
            raise TrainError(f"{out} holds a run of another recipe (it differs in {', '.join(differs)}); choose "
                             "another --out (or delete it to start again)")
        if (out / FINAL).is_file():  # written after the last epoch's state: nothing left to do
            return read_meta(out / STATE)
        args.resume = True
    export, args.export = args.export, None  # exported by the caller, with what it knows
    try:
        return train_run(args, argv)
    finally:
        args.export = export


def record_fold(out: Path, meta: dict) -> None:
    """The fold's result: its last epoch's accuracy on the held-out fold."""
    last = meta["history"][-1]
    (out / RESULT_FILE).write_text(json.dumps({"accuracy": last["val_acc"], "loss": last["val_loss"],
                                               "samples": meta["val_samples"], "train_samples": meta["train_samples"],
                                               "epoch": last["epoch"]}, indent=1))


def collect(out: Path, folds: int, command: str) -> dict:
    """``cv.json``: every fold's result and their summary; TrainError naming a fold that has not finished."""
    results = []
    for i in range(1, folds + 1):
        path = out / f"fold-{i}" / RESULT_FILE
        if not path.is_file():
            raise TrainError(f"{path} missing: fold {i} has not finished (rerun the command to continue it)")
        results.append(json.loads(path.read_text()))
    accs = [r["accuracy"] for r in results]
    total = sum(r["samples"] for r in results)
    summary = summarize(accs)
    run = json.loads((out / "fold-1" / "run.json").read_text())
    cv = {"folds": folds, "seed": run["train"]["seed"], "epochs": run["train"]["epochs"], "samples": total,
          "per_fold": accs, "fold_samples": [r["samples"] for r in results], "mean": summary.mean,
          "std": summary.std, "ci95": [summary.low, summary.high],
          "pooled": sum(a * r["samples"] for a, r in zip(accs, results)) / total,
          "protocol": "stratified k-fold; each fold's last epoch (fixed schedule), nothing selected on the held-out fold",
          "command": command, "model": run["model"], "train": {k: v for k, v in run["train"].items()
                                                               if k not in ("folds", "fold")},
          "recipe": run.get("recipe")}
    (out / CV_FILE).write_text(json.dumps(cv, indent=1))
    return cv


def fold_model(folder: Path, data: str):
    """A finished fold's model (its last epoch, BatchNorm folded, in eval mode), the dataset its folds
    partition (read from ``data``) and the indices of the recordings the fold held out."""
    from ..config import StcConfig
    from ..data import stratified_folds
    from ..data.tonic_adapter import reader
    from ..hub.checkpoint import load_weights
    from ..model import StcSNN

    folder = Path(folder)
    run = json.loads((folder / RUN).read_text())
    train, fold = run["train"], int(folder.name.removeprefix("fold-"))
    model = StcSNN(StcConfig.from_dict(run["model"], source=str(folder / RUN)))
    load_weights(model.network, folder / FINAL)
    model.eval().fuse_for_inference()
    dataset = reader(run["reader"])(data, "train")
    return model, dataset, stratified_folds(dataset.targets, train["folds"], train["seed"])[fold - 1]


MIN_FOLD_SIZE = 5  # held-out recordings below which a fold's accuracy moves in steps of 20 points or more


def check_folds(args: argparse.Namespace) -> None:
    """Refuse a partition whose folds cannot measure anything: a class with fewer recordings than folds (some
    folds would hold none of it) or folds of fewer than ``MIN_FOLD_SIZE`` recordings."""
    from collections import Counter

    from ..data.tonic_adapter import reader

    targets = reader(args.dataset or get_entry(args.model).reader)(args.data, "train", download=args.download).targets
    counts = Counter(targets)
    label, fewest = min(counts.items(), key=lambda kv: kv[1])
    if fewest < args.folds:
        raise TrainError(f"--folds {args.folds}: class {label} has {fewest} recording(s), so some folds would hold "
                         f"none of it; use at most --folds {max(fewest, 2)} or gather more recordings of it")
    if len(targets) // args.folds < MIN_FOLD_SIZE:
        raise TrainError(f"--folds {args.folds}: {len(targets)} recordings give folds of {len(targets) // args.folds}, "
                         f"too few to measure an accuracy (at least {MIN_FOLD_SIZE} per fold: --folds "
                         f"{max(len(targets) // MIN_FOLD_SIZE, 2)} at most)")


def run(args: argparse.Namespace, argv: list[str] | None) -> dict | None:
    """``--folds K`` of ``stc-zoo train``: every fold (or ``--fold i`` alone), then cv.json, then with
    ``--export`` the run on every recording and its export. Returns cv.json's content (None for one fold)."""
    if args.folds < 2:
        raise TrainError(f"--folds must be at least 2, got {args.folds}")
    if args.fold is not None and not 1 <= args.fold <= args.folds:
        raise TrainError(f"--fold must be in 1..{args.folds}, got {args.fold}")
    if args.resume:
        raise TrainError("--folds continues a cut run by itself: rerun the same command without --resume")
    if args.fold is not None and args.export:
        raise TrainError("--export trains on every recording after all folds; leave out --fold")
    check_folds(args)
    out = Path(args.out or f"runs/{args.model}-cv{args.folds}")
    command = command_line(argv)
    for i in [args.fold] if args.fold is not None else range(1, args.folds + 1):
        print(f"fold {i}/{args.folds} -> {out / f'fold-{i}'}")
        record_fold(out / f"fold-{i}", run_or_continue(fold_args(args, out, i), argv))
    if args.fold is not None:
        return None
    cv = collect(out, args.folds, command)
    print(f"{args.folds}-fold cross-validated accuracy {cv['mean'] * 100:.2f}% ± {cv['std'] * 100:.2f} "
          f"(95% interval [{cv['ci95'][0] * 100:.2f}, {cv['ci95'][1] * 100:.2f}], corrected; folds: "
          f"{', '.join(f'{a * 100:.1f}' for a in cv['per_fold'])}) -> {out / CV_FILE}")
    if args.export:
        final = final_args(args, out)
        run_or_continue(final, argv)
        export_finished(final, cv)
        print(f"exported the run on every recording to {args.export}")
    return cv
