"""Cross-validated trade-off, ablations and recipe changes of nmnist-t4, and the tables of training/RESULTS.md.

    python training/cv.py --data ../shared/data/nmnist-subset            # train every row's folds
    python training/cv.py --data ../shared/data/nmnist-subset --jobs 8   # the same, 8 fold runs side by side
    python training/cv.py --data ../shared/data/nmnist-subset --report   # latencies + tables -> RESULTS.md

Every row is one recipe (the nmnist-t4 entry with the row's overrides) run through the protocol of
``stc-zoo train --folds K`` (stratified folds, fixed schedule, each fold's last epoch; nothing
selected on the held-out folds), all rows on the same folds so that rows are compared fold by fold
(paired, corrected resampled t-test: ``stc_zoo.training.crossval``). Rows already finished are kept; a cut
run continues where it stopped. ``--report`` reads ``OUT/<row>/cv.json``, times batch-1 inference
(raw events -> logits, the CPU fast path) of each row's fold-1 model in one process, interleaved,
counts its operations per decision on fold 1's held-out recordings (``fold_costs.py``), and
rewrites the section of RESULTS.md between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ".cache/stc-zoo"  # stc-zoo train's default
sys.path.insert(0, str(ROOT))  # run from a checkout without installing too

# (slug, group, label, overrides of nmnist-t4 and of the training defaults). "t4" is every group's T = 4 row.
ROWS = [
    ("t16", "tradeoff", "uncompressed T=16 (CR 1)", {"T": 16, "ratio": 1}),
    ("t8", "tradeoff", "T=8 (CR 2)", {"T": 8, "ratio": 2}),
    ("t4", "tradeoff", "T=4 (CR 4), the recipe before this table", {}),
    ("t2", "tradeoff", "T=2 (CR 8)", {"T": 2, "ratio": 8}),
    ("t1", "tradeoff", "T=1 (CR 16)", {"T": 1, "ratio": 16}),
    ("kt1", "ablation", "no temporal mix (k_t=1)", {"k_t": 1}),
    ("k1", "ablation", "single threshold (K=1)", {"K": 1}),
    ("decay", "ablation", "decaying compression (lambda=0.5)", {"decay": 0.5}),
    ("spatial2", "ablation", "spatial pooling s=2 (17x17 input)", {"spatial": 2}),
    ("ls", "recipe", "label smoothing 0.1", {"label_smoothing": 0.1}),
    ("ema", "recipe", "EMA of the weights (0.99 per step)", {"ema": 0.99}),
    ("perstep", "recipe", "per-step loss (every step's logits trained)", {"per_step_loss": True}),
    ("drop", "recipe", "event dropout 0.2 (thinning of the cached counts)", {"event_drop": 0.2}),
    ("noshift", "recipe", "no random translation (shift 0)", {"shift": 0}),
    ("wd", "recipe", "weight decay 0.05 (from 1e-4)", {"weight_decay": 0.05}),
    ("e40", "recipe", "40 epochs (from 20)", {"epochs": 40}),
    ("wide", "recipe", "wider: channels 48, 96", {"channels": [48, 96]}),
    ("deep", "recipe", "deeper: channels 32, 64, 128", {"channels": [32, 64, 128]}),
    ("combo", "recipe", "LS 0.1 + EMA + per-step loss + event dropout + wd 0.05",
     {"label_smoothing": 0.1, "ema": 0.99, "per_step_loss": True, "event_drop": 0.2, "weight_decay": 0.05}),
]
AFFINE = {"rotate": 10, "scale": 0.1}  # event-level rotation (degrees) and zoom (stc_zoo.augment)
ROWS += [
    ("aff", "augment", "event-level rotation 10 deg + zoom 0.1", AFFINE),
    ("aff-e40", "augment", "rotation 10 deg + zoom 0.1, 40 epochs", {**AFFINE, "epochs": 40}),
    ("aff-ls-ps-e40", "augment", "rotation + zoom, LS 0.1 + per-step loss, 40 epochs",
     {**AFFINE, "label_smoothing": 0.1, "per_step_loss": True, "epochs": 40}),
    ("aff-all-e40", "augment", "rotation + zoom, LS + per-step + dropout 0.3 + event dropout 0.2, 40 epochs",
     {**AFFINE, "label_smoothing": 0.1, "per_step_loss": True, "dropout": 0.3, "event_drop": 0.2, "epochs": 40}),
    ("t16-aff-e40", "augmented-tradeoff", "uncompressed T=16, rotation + zoom, 40 epochs",
     {"T": 16, "ratio": 1, **AFFINE, "epochs": 40}),
]
LABELS = {slug: label for slug, _, label, _ in ROWS}


def slugs(group: str) -> list[str]:
    return [r[0] for r in ROWS if r[1] == group]


TABLES = [  # (title, reference row, rows)
    ("Compression trade-off (the same 16 fine bins; vs the uncompressed T = 16)", "t16", slugs("tradeoff")),
    ("Ablations at T = 4 (vs the T = 4 row)", "t4", ["t4", *slugs("ablation")]),
    ("Recipe changes at T = 4 (vs the T = 4 row)", "t4", ["t4", *slugs("recipe"), *slugs("augment")]),
    ("T = 4 against the uncompressed T = 16 under the augmented recipe", "t16-aff-e40", ["t16-aff-e40", "aff-e40"]),
]


def row_argv(args, slug: str, changes: dict, fold: int | None = None) -> list[str]:
    argv = ["--model", "nmnist-t4", "--data", args.data, "--out", str(Path(args.out) / slug),
            "--folds", str(args.folds), "--threads", str(args.threads)]
    argv += (["--backend", args.backend] if args.backend != "auto" else []) + \
        (["--cache-dir", args.cache_dir] if args.cache_dir != CACHE else [])
    if "epochs" not in changes:
        argv += ["--epochs", str(args.epochs)]
    argv += [x for k, v in changes.items() for x in ("--set", f"{k}={json.dumps(v, separators=(',', ':'))}")]
    argv += [x for s in args.set or [] for x in ("--set", s)]
    return argv + (["--fold", str(fold)] if fold is not None else [])


def command(args, slug: str, changes: dict) -> str:
    return "stc-zoo train " + " ".join(row_argv(args, slug, changes))


def train_rows(args, rows) -> None:
    """Every fold of every row, ``args.jobs`` at a time, longest rows first; then each row's cv.json."""
    jobs = [(slug, changes, fold) for slug, _, _, changes in rows for fold in range(1, args.folds + 1)]
    deadline = time.monotonic() + args.budget_s if args.budget_s else None

    def one(job):
        slug, changes, fold = job
        if deadline is not None and time.monotonic() > deadline:
            return f"{slug} fold {fold}: skipped (budget spent)"
        log = Path(args.out) / slug / f"fold-{fold}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with open(log, "w") as f:
            rc = subprocess.call([sys.executable, "-m", "stc_zoo.train", *row_argv(args, slug, changes, fold)],
                                 stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
        return f"{slug} fold {fold}: rc {rc} in {time.monotonic() - start:.0f} s"

    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(one, jobs):
            print(line, flush=True)
    from stc_zoo.training import crossval

    for slug, _, label, changes in rows:
        try:
            cv = crossval.collect(Path(args.out) / slug, args.folds, command(args, slug, changes))
            print(f"{label:<60} {cv['mean'] * 100:6.2f} ± {cv['std'] * 100:.2f}")
        except Exception as err:  # an unfinished row is reported, the others still are
            print(f"{label:<60} unfinished ({err})")


# ------------------------------------------------------------------ report
def latencies(args, rows) -> dict[str, float]:
    """Batch-1 CPU latency (ms, raw events -> logits, default inference path) of each row's fold-1 model,
    rows timed in interleaved rounds in this one process (median of the rounds' medians)."""
    import statistics

    import torch

    from stc_zoo import StcConfig, StcSNN
    from stc_zoo.data import NMNIST
    from stc_zoo.hub.checkpoint import load_weights
    from stc_zoo.timing import median_ms

    sample = NMNIST(args.data, "train").load_events(0)
    models = {}
    for slug, *_ in rows:
        folder = Path(args.out) / slug / "fold-1"
        model = StcSNN(StcConfig.from_dict(json.loads((folder / "run.json").read_text())["model"]))
        load_weights(model.network, folder / "final.safetensors")
        models[slug] = model.eval()
    times: dict[str, list[float]] = {slug: [] for slug in models}
    with torch.no_grad():
        for slug, model in models.items():  # warm-up, compiles the kernels once
            median_ms(lambda: model.predict_proba([sample]), 5, warmup=5)
        for _ in range(args.rounds):
            for slug, model in models.items():
                times[slug].append(median_ms(lambda: model.predict_proba([sample]), args.runs, warmup=3))
    return {slug: statistics.median(v) for slug, v in times.items()}


def report(args, rows) -> str:
    import torch

    from stc_zoo.training import crossval

    from fold_costs import fold_cost  # training/fold_costs.py, beside this script

    cvs = {slug: json.loads((Path(args.out) / slug / crossval.CV_FILE).read_text()) for slug, *_ in rows}
    lat = latencies(args, rows)
    costs = {slug: fold_cost(Path(args.out) / slug / "fold-1", args.data, 64) for slug in cvs}
    k = args.folds
    cpu = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    lines = [
        "<!-- cv.py:begin -->",
        "## Cross-validated trade-off, ablations and recipe (N-MNIST subset)",
        "",
        f"All 1,000 recordings of the N-MNIST **subset** (not full N-MNIST), stratified {k}-fold cross-validation "
        f"(seed 0; every row on the same folds). Each fold's model is trained on the other {k - 1} folds with a "
        "fixed schedule and measured on its **last** epoch: no epoch and no hyper-parameter was chosen on the "
        "held-out folds. Accuracy: mean ± std over folds, [corrected 95% interval] (Nadeau & Bengio: folds "
        "share training data, so the plain t-interval would be too narrow). Differences are paired over the "
        "folds (corrected resampled t-test); **real** = the interval of the difference excludes 0.",
        "",
        *([args.note, ""] if args.note else []),
        f"Latency: batch 1, raw events -> logits, the default CPU path (Numba), median of {args.rounds} "
        f"interleaved rounds x {args.runs} runs; {cpu}.",
        "",
    ]
    for title, ref, slugs in TABLES:
        lines += [f"### {title}", "", "| configuration | accuracy % | per fold | latency ms | difference vs reference "
                  "(points) | p | | operations per decision: effective MACs + ACs (fold 1 *) | activation sparsity "
                  "(fold 1 *) |", "|---|---|---|---|---|---|---|---|---|"]
        for slug in (s for s in slugs if s in cvs):
            s = crossval.summarize(cvs[slug]["per_fold"])
            if slug == ref:
                diff, p, verdict = "reference", "", ""
            else:
                c = crossval.paired(cvs[slug]["per_fold"], cvs[ref]["per_fold"])
                diff = f"{c.diff * 100:+.2f} [{c.low * 100:+.2f}, {c.high * 100:+.2f}]"
                p, verdict = f"{c.p:.3f}", ("**real**" if c.real else "not distinguishable")
            folds = " ".join(f"{a * 100:.1f}" for a in cvs[slug]["per_fold"])
            c = costs[slug]
            lines.append(f"| {LABELS[slug]} | {s} | {folds} | {lat[slug]:.2f} | {diff} | {p} | {verdict} | "
                         f"{c['effective_macs']:,.0f} + {c['effective_acs']:,.0f} | {c['activation_sparsity']:.4f} |")
        lines.append("")
    lines += ["\\* Operations per decision: each row's fold-1 model on fold 1's held-out recordings, effective MACs on "
              "the compressed current and ACs on the spikes (a count of n as n accumulates) per recording, all T steps "
              "(`stc_zoo.metrics`, docs/METRICS.md; `training/fold_costs.py` prints them with the model's accuracy "
              "there).", ""]
    lines += ["Commands (one per row; `python training/cv.py --data ... --jobs N` runs them all, side by side):", ""]
    lines += [f"- {label}: `{command(args, slug, changes)}`" for slug, _, label, changes in rows]
    lines += ["", "<!-- cv.py:end -->"]
    return "\n".join(lines)


def write_section(text: str) -> Path:
    path = Path(__file__).with_name("RESULTS.md")
    old = path.read_text() if path.is_file() else ""
    begin, end = "<!-- cv.py:begin -->", "<!-- cv.py:end -->"
    if begin in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end):]
    else:
        new = text + "\n\n" + old
    path.write_text(new)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training/cv.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the N-MNIST folder (Train/<label>/<idx>.bin)")
    parser.add_argument("--out", default="runs/cv")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="fixed schedule of every row (unless a row sets it)")
    parser.add_argument("--rows", help="comma-separated slugs (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="fold runs side by side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fold run")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "triton"))
    parser.add_argument("--cache-dir", default=CACHE)
    parser.add_argument("--set", action="append", help="FIELD=VALUE for every row (e.g. amp=false)")
    parser.add_argument("--budget-s", type=float, help="start no new fold run after this many seconds")
    parser.add_argument("--report", action="store_true", help="time the rows and write the tables to RESULTS.md")
    parser.add_argument("--note", default="", help="--report: a line on where the rows were trained")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    by_slug = {r[0]: r for r in ROWS}
    unknown = [s for s in (args.rows or "").split(",") if s and s not in by_slug]
    if unknown:
        parser.error(f"--rows: unknown {unknown}; known: {', '.join(by_slug)}")
    rows = [by_slug[s] for s in args.rows.split(",")] if args.rows else ROWS
    if args.report:
        print(f"wrote {write_section(report(args, rows))}")
    else:
        train_rows(args, rows)


if __name__ == "__main__":
    main()
