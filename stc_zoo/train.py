"""Train a zoo entry: ``python training/train.py --model nmnist-t4 --data ROOT`` (the logic lives here, in
the library; ``training/train.py`` is the thin script).

* Any StcConfig field is overridable (``--set T=8 --set ratio=2`` or ``--config file.json|yaml``
  holding ``{"model": {...}, "train": {...}}``); training hyper-parameters are ``TrainConfig``.
* A fixed, seeded, per-class validation split is held out of the training data and reported
  every epoch; ``metrics.jsonl`` logs each epoch; ``best.safetensors`` keeps the best weights.
* ``last.safetensors`` holds the whole training state (model, optimiser, scheduler, RNGs, epoch,
  the metrics so far), written atomically (temp file + rename) after every epoch; ``--resume``
  continues from it exactly, also after a SIGKILL at any point: it rewrites ``metrics.jsonl``
  from the state, drops stray temp files, starts from epoch 1 if no epoch had finished, and
  starts the run if it was killed before its folder was written.
* Runs on CPU, one GPU (AMP in bf16) or several through ``torchrun`` (DistributedDataParallel).
* ``--export DIR`` writes a Hub-ready folder through ``StcSNN.save_pretrained`` (model.safetensors,
  config.json, SHA256SUMS and the README.md card with the validation result).
* Mistakes (a missing dataset, a bad ``--set`` value, no network for ``--download``) are one line
  on stderr and exit status 2.

``main`` reads top to bottom: ``resolve_run`` (new run or resume), ``load_data``, ``build`` (model,
optimiser, schedule), ``restore`` (state of a resumed run, a stretched schedule), ``fit`` (the
epochs), ``export``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
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
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .atomic import replace_atomically
from .config import StcConfig, field_names
from .data import READERS, stratified_split
from .data.compressed import compress_dataset
from .data.tonic_adapter import dataset_key, reader as get_reader
from .errors import InputError, StcError
from .evaluation import evaluate
from .hub.card import CardResult
from .hub import checkpoint
from .hub.checkpoint import load_weights
from .hub.resolve import checkpoint_folder
from .model import StcSNN
from .transforms import SpatioTemporalCompression
from .zoo import get_entry

STATE, BEST, RUN = "last.safetensors", "best.safetensors", "run.json"


class TrainError(StcError, ValueError):
    """A training run that cannot start or continue as asked (the message says why and what to pass)."""


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    shift: int = 2  # random translation of the whole sample by up to this many (pooled) pixels
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU

    def __post_init__(self):
        for name, kind, low in (("epochs", int, 1), ("batch_size", int, 1), ("seed", int, 0), ("shift", int, 0),
                                ("lr", float, 0.0), ("weight_decay", float, 0.0), ("label_smoothing", float, 0.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float) if kind is float else int) or isinstance(value, bool) or value < low:
                raise ValueError(f"train: {name} must be {'an integer' if kind is int else 'a number'} >= {low}, "
                                 f"got {value!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"train: val_fraction must be in (0, 1), got {self.val_fraction!r}")


# ------------------------------------------------------------------ configuration
def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_overrides(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        text = Path(path).read_text()
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as err:  # yaml's and json's parse errors are ValueErrors too
        raise TrainError(f"--config {path}: cannot read it ({err})") from None
    unknown = set(data) - {"model", "train"} if isinstance(data, dict) else {"(not a mapping)"}
    if unknown:
        raise TrainError(f"--config {path}: top-level keys must be 'model' and 'train', got {sorted(unknown)}")
    return data


def resolve_configs(args) -> tuple[StcConfig, TrainConfig]:
    """The entry's config and the default TrainConfig with ``--config``, ``--set`` and the flags applied."""
    overrides = load_overrides(args.config)
    model_changes, train_changes = dict(overrides.get("model", {})), dict(overrides.get("train", {}))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set or []:
        key, _, value = item.partition("=")
        (train_changes if key in train_fields else model_changes)[key] = parse_value(value)
    for key in ("epochs", "batch_size", "lr", "seed"):
        if getattr(args, key) is not None:
            train_changes[key] = getattr(args, key)
    if args.dataset and args.dataset != get_entry(args.model).reader:  # its classes, unless --set names them
        classes = dataset_classes(args.dataset, args.data)
        model_changes.setdefault("num_classes", len(classes))
        model_changes.setdefault("class_names", list(classes))
    unknown = sorted(set(model_changes) - field_names()) + sorted(set(train_changes) - train_fields)
    if unknown:
        raise TrainError(f"unknown model fields {unknown}; model: {sorted(field_names())}, train: {sorted(train_fields)}")
    try:
        config, train = get_entry(args.model).config.replace(**model_changes), TrainConfig(**{
            **dataclasses.asdict(TrainConfig()), **train_changes})
    except (TypeError, ValueError) as err:
        raise TrainError(f"--set/--config: {err}") from None
    return (init_config(args.init, config) if args.init else config), train


def dataset_classes(key: str, root: str) -> tuple[str, ...]:
    """The class names of dataset ``key`` (a folder's are its sub-folders; tonic's and the zoo's are fixed)."""
    from .data.folder import scan
    from .data.tonic_adapter import PREFIX, tonic_class

    if key == "folder":
        return scan(root)[0]
    if key.startswith(PREFIX):
        classes = tuple(str(c) for c in getattr(tonic_class(key[len(PREFIX):]), "classes", ()) or ())
        if not classes:
            raise TrainError(f"--dataset {key}: tonic does not list its classes; name them with --set class_names=...")
        return classes
    return READERS[key].classes


def init_changes(start: StcConfig, wanted: StcConfig) -> dict:
    """The fields in which ``wanted`` (the --model entry with --set) differs from ``start`` (the --init weights)."""
    def flat(c: StcConfig) -> dict:
        return {**dataclasses.asdict(c.input), **dataclasses.asdict(c.network), "class_names": c.class_names}
    a, b = flat(start), flat(wanted)
    return {k: b[k] for k in b if a[k] != b[k]}


@functools.lru_cache(maxsize=8)
def init_folder(init: str) -> Path:
    """The checked local folder of ``--init`` (resolved once per run: for a Hub id, that is a network call)."""
    return checkpoint_folder(init)


def init_config(init: str, wanted: StcConfig) -> StcConfig:
    """The config a run from ``--init`` trains: the starting weights' architecture with what ``wanted``
    changes (its classes, input timing, ...). TrainError when ``wanted`` needs another architecture."""
    from .model import override

    start = checkpoint.read_config(init_folder(init))
    try:
        return override(start, init_changes(start, wanted))[0]
    except InputError as err:
        raise TrainError(f"--init {init}: {err}") from None


# ------------------------------------------------------------------ data
def load_data(reader: str, root: str, config: StcConfig, train: TrainConfig, cache_dir: str | None,
              download: bool = False, workers: int = 2):
    """Compressed train and validation tensors: ``(X [N, T, 2, H, W], y [N])`` each (``workers`` threads
    read and compress; with 2 on a 2-core machine benchmarks/dataset_prep.py measured 1.7x on DVS128
    Gesture and 2.4x on CIFAR10-DVS, training/README.md)."""
    dataset = get_reader(reader)(root, "train", download=download)
    X, y = compress_dataset(dataset, SpatioTemporalCompression.from_config(config.input), cache_dir,
                            desc="compressing train split", workers=workers)
    kept, held = stratified_split(dataset.targets, train.val_fraction, train.seed)
    return (X[kept], y[kept]), (X[held], y[held])


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each sample of ``[B, T, 2, H, W]`` by up to ``max_shift`` pixels, zero-filling."""
    if max_shift == 0:
        return x
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (B, 2), generator=gen)
    return torch.stack([padded[b, ..., dy:dy + H, dx:dx + W] for b, (dy, dx) in enumerate(offsets.tolist())])


# ------------------------------------------------------------------ state on disk
def atomic_save(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    replace_atomically(path, lambda tmp: save_file(
        tensors, tmp, metadata={"state": json.dumps(metadata)} if metadata else None))


def write_atomic_text(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


def numpy_rng_state() -> list:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return [name, key.tolist(), pos, has_gauss, gauss]


def save_state(path: Path, model, optimizer, scheduler, meta: dict) -> None:
    """Everything needed to continue exactly: tensors in safetensors, the rest as JSON metadata."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim/{pid}/{key}"] = value
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    meta = {**meta, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(),
            "rng_numpy": numpy_rng_state(), "rng_python": random.getstate()}
    atomic_save(tensors, path, meta)


def load_state(path: Path, model, optimizer, scheduler) -> dict:
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["state"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, strict=True)
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, pid, key = k.split("/", 2)
            state.setdefault(int(pid), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng/torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    name, key, pos, has_gauss, gauss = meta["rng_numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in meta["rng_python"]))
    return meta


# ------------------------------------------------------------------ loops
def run_epoch(model, X, y, train: TrainConfig, device, optimizer, epoch=0, rank=0, world=1):
    """One training pass over this rank's share. Returns (mean loss, accuracy) over that share."""
    model.train()
    gen = torch.Generator().manual_seed(train.seed * 100_003 + epoch)  # same order on resume
    order = torch.randperm(len(X), generator=gen)
    order = order[: len(order) - len(order) % world]  # equal shards, or DDP ranks wait on missing batches
    order = order[rank::world]
    amp = train.amp and device.type == "cuda"
    total_loss, correct = 0.0, 0
    bar = tqdm(range(0, len(order), train.batch_size), desc=f"epoch {epoch} train", leave=False, disable=rank != 0)
    for start in bar:
        idx = order[start:start + train.batch_size]
        xb, yb = random_shift(X[idx], train.shift, gen), y[idx]
        xb, yb = xb.transpose(0, 1).to(device, non_blocking=True), yb.to(device)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=train.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(-1) == yb).sum())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return total_loss / max(len(order), 1), correct / max(len(order), 1)


def validate(model, X, y, train: TrainConfig, rank=0, world=1) -> tuple[float, float]:
    """Mean loss and accuracy on the validation set, each rank counting its share, summed over ranks."""
    loss, correct = evaluate(model, X[rank::world], y[rank::world], train.batch_size)
    loss, correct, n = reduce_sum([loss, correct, len(X[rank::world])], next(model.parameters()).device)
    return loss / max(n, 1), correct / max(n, 1)


def reduce_sum(values: list[float], device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, local = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            return rank, world, torch.device("cuda", local)
        return rank, world, torch.device("cpu")
    return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------ the run, part by part
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
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--workers", type=int, default=2, help="threads that read and compress the data (default 2)")
    parser.add_argument("--init", metavar="MODEL_OR_FOLDER",
                        help="start from these trained weights (zoo name, checkpoint folder or Hub id): its backbone, "
                             "a new head when --model's classes differ")
    parser.add_argument("--freeze-blocks", action="store_true", help="with --init: train only the classifier")
    parser.add_argument("--backbone-lr-scale", type=float, default=1.0,
                        help="learning rate of everything but the head, as a fraction of --lr (default 1.0)")
    parser.add_argument("--dataset", type=dataset_key,
                        help="how to read --data: the --model entry's dataset by default; 'folder' reads any "
                             "ROOT/<class>/<recording> tree, 'tonic:<Class>' any tonic.datasets class (their "
                             "classes replace the entry's)")
    return parser.parse_args(argv)


def resolve_run(args: argparse.Namespace, argv: list[str] | None) -> Run:
    """A new run (configs from the entry and the overrides) or a resumed one (configs from run.json)."""
    get_entry(args.model)  # an unknown name fails here, before anything is read
    out = Path(args.out or f"runs/{args.model}")
    command = "python training/train.py " + " ".join(sys.argv[1:] if argv is None else argv)
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


def build(run: Run):
    """The model on its device (from --init's weights when given), its DDP wrapper (or itself), AdamW
    (the backbone at ``--backbone-lr-scale`` times the head's rate; frozen blocks left out) and the
    cosine schedule."""
    model = start_model(run).to(run.device)
    net = torch.nn.parallel.DistributedDataParallel(model) if run.world > 1 else model
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
        meta = load_state(run.out / STATE, model.network, optimizer, scheduler)
        print(f"resuming {run.out} after epoch {meta['epoch']}")
        if run.args.epochs is not None and run.args.epochs != run.train.epochs:
            stretch_schedule(run, optimizer, scheduler, meta, run.args.epochs)
    elif run.rank == 0:
        write_atomic_text(run.out / RUN, json.dumps({"model": run.config.to_dict(), "train": dataclasses.asdict(run.train),
                                                     "reader": run.reader,
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
    """The epochs still to run: train, validate, keep the best weights, save the whole state atomically."""
    (Xtr, ytr), (Xva, yva) = train_data, val_data
    for epoch in range(meta["epoch"] + 1, run.train.epochs + 1):
        start = time.perf_counter()
        tr_loss, tr_acc = run_epoch(net, Xtr, ytr, run.train, run.device, optimizer, epoch, run.rank, run.world)
        va_loss, va_acc = validate(model, Xva, yva, run.train, run.rank, run.world)
        scheduler.step()
        record = {"epoch": epoch, "train_loss": round(tr_loss, 5), "train_acc": round(tr_acc, 5),
                  "val_loss": round(va_loss, 5), "val_acc": round(va_acc, 5),
                  "lr": scheduler.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 2)}
        meta["epoch"] = epoch
        if run.rank != 0:
            continue
        if va_acc > meta["best_val_acc"]:
            meta.update(best_val_acc=va_acc, best_epoch=epoch)
            atomic_save(model.network.state_dict(), run.out / BEST)
        meta["history"].append(record)
        save_state(run.out / STATE, model.network, optimizer, scheduler, meta)
        with open(run.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"epoch {epoch:>3}/{run.train.epochs}  train loss {tr_loss:.4f} acc {tr_acc:.4f}  "
              f"val loss {va_loss:.4f} acc {va_acc:.4f}  ({record['seconds']} s)")
    return meta


def export(run: Run, meta: dict) -> None:
    """The best weights as a Hub-ready folder, with a card stating the validation result and its split."""
    entry = get_entry(run.args.model)
    model = StcSNN(run.config)
    load_weights(model.network, run.out / BEST)
    if run.reader != entry.reader:  # another dataset than the entry's: named after the export, not the zoo entry
        what = (f"the labelled folder `{meta['data']}`" if run.reader == "folder"
                else f"`{meta['data']}` read as {run.reader}")
        name = Path(run.args.export).name
        dataset = (f"labelled event folder {Path(meta['data']).name}" if run.reader == "folder"
                   else run.reader.removeprefix("tonic:"))
        data_note = (f"Trained on {meta['train_samples']} recordings of {what} (classes: {', '.join(run.config.labels)})"
                     + (f", starting from `{run.args.init}`." if run.args.init else "."))
    else:
        is_subset = entry.reader == "nmnist" and meta["total_samples"] < 60000  # full N-MNIST train: 60,000
        name, dataset = entry.name, entry.dataset
        data_note = (f"Trained on {meta['train_samples']} recordings of `{meta['data']}`"
                     + (f" — a {meta['total_samples']:,}-recording subset of N-MNIST's training set, not the full "
                        "dataset." if is_subset else f" ({entry.dataset} training split)."))
    result = CardResult(accuracy=meta["best_val_acc"], samples=meta["val_samples"], reader=run.reader,
                        source_split="train", val_fraction=meta["val_fraction"], seed=meta["seed"])
    model.save_pretrained(run.args.export, model_card_kwargs=dict(
        name=name, dataset=dataset, data_note=data_note, result=result, command=meta["command"],
        extra=f"Best epoch {meta['best_epoch']} of {meta['epochs']}.\n"))


def main(argv: list[str] | None = None) -> dict:
    """Train (or resume) a run; returns its metadata. A user's mistake: one line on stderr, exit 2."""
    args = parse_args(argv)
    try:
        return train_run(args, argv)
    except StcError as err:
        print(f"train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def train_run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    run = resolve_run(args, argv)
    run.rank, run.world, run.device = setup_distributed()
    torch.manual_seed(run.train.seed)
    np.random.seed(run.train.seed)
    random.seed(run.train.seed)
    train_data, val_data = load_data(run.reader, args.data, run.config, run.train,
                                      args.cache_dir or None, args.download, max(1, args.workers))
    model, net, optimizer, scheduler = build(run)
    meta = {"epoch": 0, "best_val_acc": -1.0, "best_epoch": 0, "data": args.data, "seed": run.train.seed,
            "val_fraction": run.train.val_fraction, "train_samples": len(train_data[0]),
            "val_samples": len(val_data[0]), "total_samples": len(train_data[0]) + len(val_data[0]),
            "epochs": run.train.epochs, "command": run.command}
    meta = restore(run, model, optimizer, scheduler, meta)
    if run.rank == 0:
        print(f"{args.model}: {len(train_data[0])} train / {len(val_data[0])} validation samples "
              f"(the train split of {args.data} read as '{run.reader}'; validation = a {run.train.val_fraction:g} "
              f"per-class hold-out, seed {run.train.seed}), {run.world} process(es) on {run.device}")
    meta = fit(run, model, net, optimizer, scheduler, meta, train_data, val_data)
    if run.rank == 0:
        print(f"best validation accuracy {meta['best_val_acc']:.4f} at epoch {meta['best_epoch']} ({run.out / BEST})")
        if args.export:
            export(run, meta)
            print(f"exported to {args.export}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return meta


if __name__ == "__main__":
    main()
