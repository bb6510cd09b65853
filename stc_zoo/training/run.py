"""One training run, top to bottom (``train_run``): ``resolve_run`` (new run or resume), ``load_data``,
``check_init_holdout``, ``build`` (model, optimiser, schedule), ``restore`` (state of a resumed run, a
stretched schedule), ``fit`` (the epochs), ``export``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import StcConfig
from ..data.tonic_adapter import reader as get_reader
from ..errors import CheckpointError
from ..hub import checkpoint
from ..hub.files import SEEN_NAME
from ..model import StcSNN
from ..zoo import get_entry
from . import loop
from .config import TrainConfig, TrainError, init_changes, init_folder, resolve_configs, run_recipe
from .data import check_augmentation, holdout_split, load_data
from .distributed import setup_distributed
from .export import export
from .state import BEST, FINAL, RUN, STATE, atomic_save, load_state, read_meta, run_lock, save_state, write_atomic_text


@dataclass
class Run:
    """What the parts of ``main`` share."""

    args: argparse.Namespace
    out: Path
    config: StcConfig
    train: TrainConfig
    command: str
    resume: bool
    saved: dict | None = None  # run.json of a resumed run
    reader: str = "nmnist"  # key of READERS that reads --data
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    model: StcSNN | None = None
    ema: torch.nn.Module | None = None  # AveragedModel of the network when train.ema > 0

    @property
    def evaluated(self) -> torch.nn.Module:
        """What is validated and exported: the EMA of the network when there is one."""
        return self.ema.module if self.ema is not None else self.model.network


def command_line(argv: list[str] | None) -> str:
    return "stc-zoo train " + " ".join(sys.argv[1:] if argv is None else argv)


def resolve_run(args: argparse.Namespace, argv: list[str] | None) -> Run:
    """A new run (configs from the entry and the overrides) or a resumed one (configs from run.json)."""
    get_entry(args.model)  # an unknown name fails here, before anything is read
    out = Path(args.out or f"runs/{args.model}")
    command = command_line(argv)
    if args.resume and not (out / RUN).is_file():
        # Killed while preparing the data, before the run folder was written: nothing to continue.
        print(f"--resume: no run in {out} yet ({RUN} missing); starting it")
        args.resume = False
    if args.resume:
        saved = json.loads((out / RUN).read_text())
        config, train = StcConfig.from_dict(saved["model"], source=str(out / RUN)), TrainConfig(**saved["train"])
        reader = saved.get("reader", get_entry(args.model).reader)
        return Run(args, out, config, train, command, resume=True, saved=saved, reader=reader)
    if (out / STATE).exists():
        raise TrainError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    config, train = resolve_configs(args)
    return Run(args, out, config, train, command, resume=False, reader=args.dataset or get_entry(args.model).reader)


def check_init_holdout(run: Run, root: str) -> bool | None:
    """Whether the hold-out of a run that starts from ``--init`` weights is unseen by them (None: no --init or
    no hold-out). Their ``trained_on.json`` says which recordings (by their decoded events, whatever reader or
    copy) and which source images they saw (``stc_zoo.hub.seen``); older checkpoints only have their card
    (``stc_zoo.hub.holdout.trained_on``, by position). A hold-out that overlaps is refused (its accuracy
    would measure memory, not generalisation); weights that say neither leave it unknown (False), which the
    run says loudly and its exported card records, so ``hub/publish.py`` refuses it."""
    from ..hub.holdout import stated_result, trained_on
    from ..hub.seen import identify, read_seen

    if not run.args.init or not run.train.has_holdout:
        return None
    folder = init_folder(run.args.init)
    dataset = get_reader(run.reader)(root, "train")
    _, held = holdout_split(dataset.targets, run.train)
    seen = read_seen(folder)
    if seen is not None:
        digests, images = identify(dataset, held, progress="checking the hold-out against --init's training data")
        overlap = seen.overlap(digests, images)
        if overlap:
            raise TrainError(
                f"--init {run.args.init} was trained on {len(overlap)} of the {len(held)} recordings this run would "
                f"hold out for validation, or on their source images (its {SEEN_NAME}: {seen.describe()}), so their "
                "accuracy would say nothing of unseen data. Hold out what it never saw, or none: --set val_fraction=0 "
                "(trains on everything; the card then states no result)")
        return True
    try:
        stated = stated_result(folder)
    except CheckpointError:
        stated = None
    seen_positions = trained_on(stated, run.reader, "train", dataset.targets)
    if seen_positions is None:
        if run.rank == 0:
            why = ("has no model card stating what it was trained on" if stated is None else
                   f"states its result on {stated.describe()}, which are not these recordings")
            print(f"WARNING: --init {run.args.init} {why}, so this run cannot tell whether its {len(held)} validation "
                  "recordings are unseen; its validation accuracy is not a hold-out result, and an exported card "
                  "says so (hub/publish.py refuses it)")
        return False
    overlap = sorted(seen_positions & set(held))
    if overlap:
        own = stated.describe()
        raise TrainError(
            f"--init {run.args.init} was trained on {len(overlap)} of the {len(held)} recordings this run would hold out "
            f"for validation (its card: {stated.stated()} on {own}), so their accuracy would say nothing of unseen "
            f"data. Hold out what it never saw, or none: --set val_fraction=0 (trains on everything; the card then "
            f"states no result)" + (f", or --set val_fraction={stated.val_fraction:g} --seed {stated.seed} (its own "
                                   "hold-out)" if not stated.folds and stated.val_fraction else ""))
    return True


def record_seen(run: Run, root: str) -> None:
    """``OUT/trained_on.json``: what this run's weights see (its training recordings, with --init's own
    training data joined), written once before training; the export carries it. Starting weights that do
    not say what they saw leave it unknown, so no file is written."""
    from ..hub.seen import of_dataset, read_seen

    path = run.out / SEEN_NAME
    if run.rank != 0 or path.is_file():
        return
    start = None
    if run.args.init:
        start = read_seen(init_folder(run.args.init))
        if start is None:
            return
    dataset = get_reader(run.reader)(root, "train")
    kept, _ = holdout_split(dataset.targets, run.train)
    describe = getattr(dataset, "describe_source", None)
    words = (describe() if describe else f"{len(dataset):,} recordings of {root} read as {run.reader}")
    seen = of_dataset(dataset, kept, f"{len(kept):,} of {words}")
    seen = start.union(seen) if start is not None else seen
    run.out.mkdir(parents=True, exist_ok=True)
    write_atomic_text(path, seen.to_json())


def build(run: Run):
    """The model on its device (from --init's weights when given), its DDP wrapper (or itself), AdamW
    (the backbone at ``--backbone-lr-scale`` times the head's rate; frozen blocks left out) and the
    cosine schedule."""
    model = start_model(run).to(run.device)
    model.network.set_backend(run.args.backend)
    net = loop.StepLogits(model) if run.train.per_step_loss else model
    net = torch.nn.parallel.DistributedDataParallel(net) if run.world > 1 else net
    run.model, run.ema = model, loop.make_ema(model.network, run.train.ema)
    head = [p for n, p in model.network.named_parameters() if n.startswith("fc2.")]
    backbone = [p for n, p in model.network.named_parameters() if not n.startswith("fc2.") and p.requires_grad]
    groups = [{"params": head}] + ([{"params": backbone, "lr": run.train.lr * run.args.backbone_lr_scale}]
                                   if backbone else [])
    optimizer = torch.optim.AdamW(groups, lr=run.train.lr, weight_decay=run.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=run.train.epochs)
    return model, net, optimizer, scheduler


def start_model(run: Run) -> StcSNN:
    """A fresh model of the run's config, or --init's weights under it (a resumed run loads its own state later)."""
    args = run.args
    if not 0.0 < args.backbone_lr_scale <= 1.0:
        raise TrainError(f"--backbone-lr-scale must be in (0, 1], got {args.backbone_lr_scale}")
    if args.freeze_blocks and not args.init:
        raise TrainError("--freeze-blocks needs --init (freezing untrained blocks trains nothing useful)")
    if not args.init or run.resume:
        model = StcSNN(run.config)
    else:
        folder = init_folder(args.init)
        model = StcSNN.from_folder(folder, **init_changes(checkpoint.read_config(folder), run.config))
        if model.network.bn_folded:
            raise TrainError(f"--init {args.init}: its BatchNorm is folded into the convs (an inference export); "
                             "start from the unfolded weights (training/train.py --export writes those)")
        if run.rank == 0:
            print(f"starting from {args.init} ({folder})")
    if args.freeze_blocks:  # their BatchNorm statistics still follow the new data
        for p in model.network.blocks.parameters():
            p.requires_grad_(False)
    return model.train()


def restore(run: Run, model, optimizer, scheduler, meta: dict) -> dict:
    """The run's metadata: fresh, or the saved state of a resumed run (with a changed ``--epochs`` applied)."""
    if run.rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
        for stray in run.out.glob("*.tmp"):  # a write cut short by a kill; never read
            stray.unlink()
    if run.resume and not (run.out / STATE).is_file():
        print(f"resuming {run.out}: no epoch had finished, starting from epoch 1")
    elif run.resume:
        meta = load_state(run.out / STATE, model.network, optimizer, scheduler, run.ema)
        print(f"resuming {run.out} after epoch {meta['epoch']}")
        if run.args.epochs is not None and run.args.epochs != run.train.epochs:
            stretch_schedule(run, optimizer, scheduler, meta, run.args.epochs)
    elif run.rank == 0:
        write_atomic_text(run.out / RUN, json.dumps({"model": run.config.to_dict(), "train": dataclasses.asdict(run.train),
                                                     "reader": run.reader, "recipe": run_recipe(run.args, run.reader),
                                                     "command": run.command}, indent=1))
    meta.setdefault("history", [])
    if run.rank == 0:  # the log is rebuilt from the state: a kill between the two cannot lose or repeat a line
        write_atomic_text(run.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in meta["history"]))
    return meta


def stretch_schedule(run: Run, optimizer, scheduler, meta: dict, epochs: int) -> None:
    """Extend (or shorten) a resumed run: the cosine schedule stretched over ``epochs``, the lr re-seated on it."""
    run.train = dataclasses.replace(run.train, epochs=epochs)
    scheduler.T_max = meta["epochs"] = epochs
    # CosineAnnealingLR steps recursively from the current lr, so re-seat it on the new curve.
    progress = (1 + math.cos(math.pi * scheduler.last_epoch / epochs)) / 2
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * progress
    if run.rank == 0:
        run.saved["train"]["epochs"] = epochs
        write_atomic_text(run.out / RUN, json.dumps(run.saved, indent=1))
    print(f"run length changed to {epochs} epochs")


def fit(run: Run, model, net, optimizer, scheduler, meta: dict, train_data, val_data) -> dict:
    """The epochs still to run: train, validate, keep the best weights, save the whole state atomically.
    The last epoch's evaluated weights (the EMA when there is one) are kept as ``final.safetensors``."""
    (Xtr, ytr), (Xva, yva) = train_data, val_data
    after_step = (lambda: run.ema.update_parameters(model.network)) if run.ema is not None else None
    for epoch in range(meta["epoch"] + 1, run.train.epochs + 1):
        start = time.perf_counter()
        tr_loss, tr_acc = loop.run_epoch(net, Xtr, ytr, run.train, run.device, optimizer, epoch, run.rank, run.world,
                                    after_step)
        va_loss, va_acc = loop.validate(run.evaluated, Xva, yva, run.train, run.rank, run.world) if len(Xva) else (None, None)
        scheduler.step()
        record = {"epoch": epoch, "train_loss": round(tr_loss, 5), "train_acc": round(tr_acc, 5),
                  "val_loss": None if va_loss is None else round(va_loss, 5),
                  "val_acc": None if va_acc is None else round(va_acc, 5),
                  "lr": scheduler.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 2)}
        meta["epoch"] = epoch
        if run.rank != 0:
            continue
        if va_acc is not None and va_acc > meta["best_val_acc"]:
            meta.update(best_val_acc=va_acc, best_epoch=epoch)
            atomic_save(run.evaluated.state_dict(), run.out / BEST)
        meta["history"].append(record)
        save_state(run.out / STATE, model.network, optimizer, scheduler, meta, run.ema)
        with open(run.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if epoch == run.train.epochs:  # written last: its presence means the whole run is saved
            atomic_save(run.evaluated.state_dict(), run.out / FINAL)
        val = "no validation" if va_acc is None else f"val loss {va_loss:.4f} acc {va_acc:.4f}"
        print(f"epoch {epoch:>3}/{run.train.epochs}  train loss {tr_loss:.4f} acc {tr_acc:.4f}  {val}  "
              f"({record['seconds']} s)")
    return meta


def export_finished(args: argparse.Namespace, cv: dict | None = None) -> None:
    """Export the finished run in ``args.out`` (to ``args.export``) without training further."""
    run = resolve_run(_resumed(args), None)
    export(run, read_meta(run.out / STATE), cv)


def _resumed(args: argparse.Namespace) -> argparse.Namespace:
    one = argparse.Namespace(**vars(args))
    one.resume = True
    return one


def train_run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """One training run into ``--out``, holding its lock (rank 0 of a torchrun job takes it for all)."""
    get_entry(args.model)  # an unknown name fails here, before any folder is made
    out = Path(args.out or f"runs/{args.model}")
    lock = run_lock(out) if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext()
    with lock:
        return _train_run(args, argv)


def _train_run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = resolve_run(args, argv)
    run.rank, run.world, run.device = setup_distributed()
    torch.manual_seed(run.train.seed)
    np.random.seed(run.train.seed)
    random.seed(run.train.seed)
    train_data, val_data = load_data(run.reader, args.data, run.config, run.train,
                                      args.cache_dir or None, args.download, max(1, args.workers), args.backend)
    check_augmentation(train_data[0], run.train)
    verified = None if run.resume else check_init_holdout(run, args.data)
    record_seen(run, args.data)
    model, net, optimizer, scheduler = build(run)
    meta = {"epoch": 0, "best_val_acc": -1.0, "best_epoch": 0, "data": args.data, "seed": run.train.seed,
            "val_fraction": run.train.val_fraction, "train_samples": len(train_data[0]),
            "val_samples": len(val_data[0]), "total_samples": len(train_data[0]) + len(val_data[0]),
            "epochs": run.train.epochs, "command": run.command, "init": args.init, "holdout_unverified": verified is False}
    meta = restore(run, model, optimizer, scheduler, meta)
    if run.rank == 0:
        print(f"{args.model}: {len(train_data[0])} train / {len(val_data[0])} validation samples "
              f"(the train split of {args.data} read as '{run.reader}'; validation = "
              f"{run.train.describe_holdout()}), {run.world} process(es) on {run.device}")
    meta = fit(run, model, net, optimizer, scheduler, meta, train_data, val_data)
    if run.rank == 0:
        if meta["best_epoch"] and run.train.folds:
            print(f"fold {run.train.fold}/{run.train.folds}: last epoch's accuracy on the held-out fold "
                  f"{meta['history'][-1]['val_acc']:.4f}")
        elif meta["best_epoch"]:
            print(f"best validation accuracy {meta['best_val_acc']:.4f} at epoch {meta['best_epoch']}; last epoch "
                  f"{meta['history'][-1]['val_acc']:.4f}"
                  + (" (NOT a verified hold-out: see the warning above)" if meta.get("holdout_unverified") else ""))
        if args.export:
            export(run, meta)
            print(f"exported to {args.export}")
    if dist.is_initialized():
        # Every rank waits for rank 0's writes: a rank that tears down its connections while another still
        # uses them can abort (seen once, SIGABRT in rank 1 of a gloo run in the test suite).
        dist.barrier()
        dist.destroy_process_group()
    return meta

