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
* ``--folds K`` cross-validates the recipe instead (``stc_zoo.crossval``): K fold runs with a fixed
  schedule, each measured on its last epoch, then with ``--export`` a run on every recording whose
  card states the cross-validated estimate.
* Mistakes (a missing dataset, a bad ``--set`` value, no network for ``--download``) are one line
  on stderr and exit status 2.

``main`` reads top to bottom: ``resolve_run`` (new run or resume), ``load_data``, ``build`` (model,
optimiser, schedule), ``restore`` (state of a resumed run, a stretched schedule), ``fit`` (the
epochs), ``export``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import socket
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
from .augment import AugmentedEvents, EventAugment
from .config import StcConfig, field_names
from .data import READERS, stratified_folds, stratified_split
from .data.compressed import compress_dataset
from .data.tonic_adapter import dataset_key, reader as get_reader
from .errors import CheckpointError, InputError, StcError
from .evaluation import evaluate
from .hub.card import CardResult
from .hub import checkpoint
from .hub.checkpoint import load_weights
from .hub.resolve import checkpoint_folder
from .model import StcSNN
from .transforms import SpatioTemporalCompression
from .zoo import get_entry

STATE, BEST, FINAL, RUN = "last.safetensors", "best.safetensors", "final.safetensors", "run.json"


class TrainError(StcError, ValueError):
    """A training run that cannot start or continue as asked (the message says why and what to pass)."""


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    val_fraction: float = 0.1  # per-class hold-out; 0 trains on everything (no validation, the last epoch is kept)
    seed: int = 0
    shift: int = 2  # random translation of the whole sample by up to this many (pooled) pixels
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    folds: int = 0  # >= 2: k-fold cross-validation, this run holding out fold ``fold`` (1..folds) instead
    fold: int = 0
    ema: float = 0.0  # decay of an exponential moving average of the weights per step (0: off); it is
    #                   what is validated and exported
    per_step_loss: bool = False  # mean of every step's cross-entropy (temporal efficient training), not the mean logits'
    event_drop: float = 0.0  # drop each event with this probability (exact binomial thinning of cached counts)
    keep: str = "auto"  # exported weights: "best" validation epoch, "last" epoch; auto: best with a hold-out
    ghost_batches: int = 1  # split each batch into this many (every n-th sample), BatchNorm over each:
    #                         one process with batch n*B equals n DDP ranks of batch B (training/README.md)
    rotate: float = 0.0  # random rotation of each recording's events, up to this many degrees
    scale: float = 0.0  # random zoom of each recording's events by a factor in [1 - scale, 1 + scale]

    def __post_init__(self):
        for name, kind, low in (("epochs", int, 1), ("batch_size", int, 1), ("seed", int, 0), ("shift", int, 0),
                                ("lr", float, 0.0), ("weight_decay", float, 0.0), ("label_smoothing", float, 0.0),
                                ("folds", int, 0), ("fold", int, 0), ("ema", float, 0.0), ("event_drop", float, 0.0),
                                ("rotate", float, 0.0), ("scale", float, 0.0), ("ghost_batches", int, 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, float) if kind is float else int) or isinstance(value, bool) or value < low:
                raise ValueError(f"train: {name} must be {'an integer' if kind is int else 'a number'} >= {low}, "
                                 f"got {value!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"train: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("ema", "event_drop", "label_smoothing", "scale"):
            if getattr(self, name) >= 1.0:
                raise ValueError(f"train: {name} must be below 1, got {getattr(self, name)!r}")
        if not isinstance(self.per_step_loss, bool):
            raise ValueError(f"train: per_step_loss must be true or false, got {self.per_step_loss!r}")
        if self.folds == 1 or (self.folds and not 1 <= self.fold <= self.folds) or (self.fold and not self.folds):
            raise ValueError(f"train: folds must be 0 or >= 2 and fold in 1..folds, got folds={self.folds}, "
                             f"fold={self.fold}")
        if self.keep not in ("auto", "best", "last"):
            raise ValueError(f"train: keep must be 'auto', 'best' or 'last', got {self.keep!r}")
        if self.keep == "best" and not self.has_holdout:
            raise ValueError("train: keep='best' needs a hold-out to choose on (val_fraction > 0 or folds)")

    @property
    def has_holdout(self) -> bool:
        return bool(self.folds) or self.val_fraction > 0

    @property
    def keeps_best(self) -> bool:
        """Whether the exported weights are the best validation epoch's (else the last epoch's)."""
        return self.keep == "best" or (self.keep == "auto" and self.has_holdout and not self.folds)

    def describe_holdout(self) -> str:
        if self.folds:
            return f"fold {self.fold} of a stratified {self.folds}-fold partition (seed {self.seed})"
        if self.val_fraction:
            return f"a {self.val_fraction:g} per-class hold-out, seed {self.seed}"
        return "none (trained on every recording)"


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
              download: bool = False, workers: int = 2, backend: str = "auto"):
    """Compressed train and validation tensors: ``(X [N, T, 2, H, W], y [N])`` each (``workers`` threads
    read and compress; with 2 on a 2-core machine benchmarks/dataset_prep.py measured 1.7x on DVS128
    Gesture and 2.4x on CIFAR10-DVS, training/README.md). When the augmentation is not exact on the cache
    (``augments_events``) the training part is an ``AugmentedEvents`` of the recordings' events instead."""
    dataset = get_reader(reader)(root, "train", download=download)
    pipeline = SpatioTemporalCompression.from_config(config.input, backend="torch" if backend == "torch" else "auto")
    X, y = compress_dataset(dataset, pipeline, cache_dir, desc="compressing train split", workers=workers)
    kept, held = holdout_split(dataset.targets, train)
    if augments_events(train, config):
        augment = EventAugment(train.shift * config.input.spatial, train.rotate, train.scale, train.event_drop)
        events = [dataset.load_events(i) for i in tqdm(kept, desc="reading train events", leave=False)]
        return (AugmentedEvents(events, augment, pipeline), y[kept]), (X[held], y[held])
    return (X[kept], y[kept]), (X[held], y[held])


def augments_events(train: TrainConfig, config: StcConfig) -> bool:
    """Whether training batches are augmented as events and compressed anew: a rotation or zoom is not exact
    on the cached counts (it would resample them between pixels). Shifts and event dropout then act on the
    events too."""
    return bool(train.rotate or train.scale)


def holdout_split(targets, train: TrainConfig) -> tuple[list[int], list[int]]:
    """``(kept, held)`` sample indices: fold ``train.fold`` of the stratified partition, the per-class
    ``val_fraction`` hold-out, or everything kept."""
    if train.folds:
        held = stratified_folds(targets, train.folds, train.seed)[train.fold - 1]
        return sorted(set(range(len(targets))) - set(held)), held
    return stratified_split(targets, train.val_fraction, train.seed)


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each sample of ``[B, T, 2, H, W]`` by up to ``max_shift`` pixels, zero-filling."""
    if max_shift == 0:
        return x
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (B, 2), generator=gen)
    return torch.stack([padded[b, ..., dy:dy + H, dx:dx + W] for b, (dy, dx) in enumerate(offsets.tolist())])


def drop_events(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Drop each event of event-count tensor ``x`` with probability ``p``: binomial thinning of each
    count. That is exactly dropping events before compression when bins are fixed in time; for bins split
    by event count it keeps the bin edges where the full recording put them (dropping the events and
    re-binning would move them a little: a run with a rotation or zoom does that, on the events)."""
    if p == 0:
        return x
    return torch.binomial(x, torch.full_like(x, 1.0 - p), generator=gen)


def check_augmentation(X: torch.Tensor, train: TrainConfig) -> None:
    """Event dropout on the cache is exact only for event counts (decay 1); refuse anything else."""
    if train.event_drop and not isinstance(X, AugmentedEvents) and not bool((X == X.round()).all() and (X >= 0).all()):
        raise TrainError("event_drop thins event counts, but this input is not counts (decay < 1 weights the "
                         "bins); train without event_drop or with decay=1")


# ------------------------------------------------------------------ state on disk
LOCK = ".train.lock"


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold an exclusive lock on run folder ``out`` while a training writes it; TrainError when another
    process holds it. ``flock`` locks belong to the open file, so the OS drops them when the process ends,
    however it ends (a SIGKILL leaves nothing stuck). Where ``fcntl`` is missing (Windows), no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise TrainError(f"{out} is being written by another training ({holder}); wait for it to end or choose "
                             "another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        yield


def atomic_save(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    replace_atomically(path, lambda tmp: save_file(
        tensors, tmp, metadata={"state": json.dumps(metadata)} if metadata else None))


def write_atomic_text(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: Path(tmp).write_text(text))


def numpy_rng_state() -> list:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return [name, key.tolist(), pos, has_gauss, gauss]


def save_state(path: Path, model, optimizer, scheduler, meta: dict, ema=None) -> None:
    """Everything needed to continue exactly: tensors in safetensors, the rest as JSON metadata."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema/{k}": v for k, v in ema.state_dict().items()})
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


def load_state(path: Path, model, optimizer, scheduler, ema=None) -> dict:
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["state"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, strict=True)
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")}, strict=True)
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
def run_epoch(model, X, y, train: TrainConfig, device, optimizer, epoch=0, rank=0, world=1, after_step=None):
    """One training pass over this rank's share. Returns (mean loss, accuracy) over that share.

    ``model`` returns ``[B, classes]`` logits, or ``[T, B, classes]`` per-step logits (``StepLogits``,
    for the per-step loss); ``after_step()`` runs after every optimiser step (the EMA's update)."""
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
        if isinstance(X, AugmentedEvents):  # shift and dropout applied to the events too
            xb, yb = X.batch(idx, gen), y[idx]
        else:
            xb, yb = drop_events(random_shift(X[idx], train.shift, gen), train.event_drop, gen), y[idx]
        xb, yb = xb.transpose(0, 1).to(device, non_blocking=True), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss, correct_here = 0.0, 0
        g = min(train.ghost_batches, len(idx))
        for j in range(g):  # ghost batches: every g-th sample from j, BatchNorm statistics of its own
            part_loss, part_correct = batch_loss(model, xb[:, j::g], yb[j::g], train, amp)
            (part_loss / g).backward()
            loss, correct_here = loss + part_loss.item() / g, correct_here + part_correct
        optimizer.step()
        if after_step is not None:
            after_step()
        total_loss += loss * len(idx)
        correct += correct_here
        bar.set_postfix(loss=f"{loss:.3f}")
    return total_loss / max(len(order), 1), correct / max(len(order), 1)


def batch_loss(model, xb: torch.Tensor, yb: torch.Tensor, train: TrainConfig, amp: bool) -> tuple[torch.Tensor, int]:
    """The training loss of one batch ``xb [T, B, 2, H, W]`` and how many of it ``model`` got right."""
    with torch.autocast(xb.device.type, torch.bfloat16, enabled=amp):
        out = model(xb).float()
        if out.ndim == 3:  # every step's logits: each step is trained to classify on its own
            loss = F.cross_entropy(out.flatten(0, 1), yb.repeat(out.shape[0]), label_smoothing=train.label_smoothing)
            out = out.mean(0)
        else:
            loss = F.cross_entropy(out, yb, label_smoothing=train.label_smoothing)
    return loss, int((out.argmax(-1) == yb).sum())


class StepLogits(torch.nn.Module):
    """``[T, B, 2, H, W]`` -> every step's logits ``[T, B, classes]`` (for the per-step loss; DDP wraps this)."""

    def __init__(self, model: StcSNN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.network.forward_steps(x, return_state=False).logits


def make_ema(network: torch.nn.Module, decay: float):
    """An exponential moving average of ``network``'s weights and BatchNorm statistics (None when decay is 0)."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


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
    model: StcSNN | None = None
    ema: torch.nn.Module | None = None  # AveragedModel of the network when train.ema > 0

    @property
    def evaluated(self) -> torch.nn.Module:
        """What is validated and exported: the EMA of the network when there is one."""
        return self.ema.module if self.ema is not None else self.model.network


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
    no hold-out). Their card says what they were trained on (``stc_zoo.hub.holdout.trained_on``): a hold-out
    that overlaps it is refused (its accuracy would measure memory, not generalisation); weights without a
    card leave it unknown (False), which the run says loudly and its exported card records, so
    ``hub/publish.py`` refuses it."""
    from .hub.holdout import stated_result, trained_on

    if not run.args.init or not run.train.has_holdout:
        return None
    folder = init_folder(run.args.init)
    try:
        stated = stated_result(folder)
    except CheckpointError:
        stated = None
    dataset = get_reader(run.reader)(root, "train")
    _, held = holdout_split(dataset.targets, run.train)
    seen = trained_on(stated, run.reader, "train", dataset.targets)
    if seen is None:
        if run.rank == 0:
            why = ("has no model card stating what it was trained on" if stated is None else
                   f"states its result on {stated.describe()}, which are not these recordings")
            print(f"WARNING: --init {run.args.init} {why}, so this run cannot tell whether its {len(held)} validation "
                  "recordings are unseen; its validation accuracy is not a hold-out result, and an exported card "
                  "says so (hub/publish.py refuses it)")
        return False
    overlap = sorted(seen & set(held))
    if overlap:
        own = stated.describe()
        raise TrainError(
            f"--init {run.args.init} was trained on {len(overlap)} of the {len(held)} recordings this run would hold out "
            f"for validation (its card: {stated.stated()} on {own}), so their accuracy would say nothing of unseen "
            f"data. Hold out what it never saw, or none: --set val_fraction=0 (trains on everything; the card then "
            f"states no result)" + (f", or --set val_fraction={stated.val_fraction:g} --seed {stated.seed} (its own "
                                   "hold-out)" if not stated.folds and stated.val_fraction else ""))
    return True


def build(run: Run):
    """The model on its device (from --init's weights when given), its DDP wrapper (or itself), AdamW
    (the backbone at ``--backbone-lr-scale`` times the head's rate; frozen blocks left out) and the
    cosine schedule."""
    model = start_model(run).to(run.device)
    model.network.set_backend(run.args.backend)
    net = StepLogits(model) if run.train.per_step_loss else model
    net = torch.nn.parallel.DistributedDataParallel(net) if run.world > 1 else net
    run.model, run.ema = model, make_ema(model.network, run.train.ema)
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
    """The epochs still to run: train, validate, keep the best weights, save the whole state atomically.
    The last epoch's evaluated weights (the EMA when there is one) are kept as ``final.safetensors``."""
    (Xtr, ytr), (Xva, yva) = train_data, val_data
    after_step = (lambda: run.ema.update_parameters(model.network)) if run.ema is not None else None
    for epoch in range(meta["epoch"] + 1, run.train.epochs + 1):
        start = time.perf_counter()
        tr_loss, tr_acc = run_epoch(net, Xtr, ytr, run.train, run.device, optimizer, epoch, run.rank, run.world,
                                    after_step)
        va_loss, va_acc = validate(run.evaluated, Xva, yva, run.train, run.rank, run.world) if len(Xva) else (None, None)
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


def export(run: Run, meta: dict, cv: dict | None = None) -> None:
    """The kept weights (best validation epoch or last epoch, ``TrainConfig.keep``) as a Hub-ready folder,
    with a card stating the result and how it was measured: the hold-out's accuracy, or for a run on
    every recording the cross-validated estimate ``cv`` (cv.json's content) of its recipe, or none."""
    entry = get_entry(run.args.model)
    model = StcSNN(run.config)
    load_weights(model.network, run.out / (BEST if run.train.keeps_best else FINAL))
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
    if cv is not None:
        result = CardResult(accuracy=cv["mean"], samples=cv["samples"], reader=run.reader, source_split="train",
                            val_fraction=0.0, seed=cv["seed"], folds=cv["folds"], std=cv["std"],
                            per_fold=tuple(cv["per_fold"]))
        extra = (f"The exported weights are the last epoch ({meta['epochs']} of a fixed schedule{', EMA' if run.train.ema else ''}) "
                 f"of the same recipe trained on all {meta['train_samples']} recordings; the accuracy above is that "
                 f"recipe's {cv['folds']}-fold cross-validated estimate (each fold's model trained on the other folds, "
                 f"measured on its last epoch; nothing was selected on the held-out folds). Per fold: "
                 f"{', '.join(f'{a * 100:.1f}%' for a in cv['per_fold'])}; corrected 95% interval of the mean "
                 f"[{cv['ci95'][0] * 100:.2f}, {cv['ci95'][1] * 100:.2f}]. Reproduce everything with the training "
                 "command below.\n")
        command = cv["command"]
    elif run.train.keeps_best:
        unverified = bool(meta.get("holdout_unverified"))
        result = CardResult(accuracy=meta["best_val_acc"], samples=meta["val_samples"], reader=run.reader,
                            source_split="train", val_fraction=meta["val_fraction"], seed=meta["seed"],
                            holdout_unverified=unverified)
        extra, command = f"Best epoch {meta['best_epoch']} of {meta['epochs']} (chosen on these recordings).\n", meta["command"]
        if unverified:
            extra = (f"**Not a verified hold-out result.** Training started from `{meta['init']}`, whose card does not "
                     "say what it was trained on, so these validation recordings may have been in its training data.\n\n"
                     + extra)
    else:
        result, command = None, meta["command"]
        extra = f"The last epoch ({meta['epochs']}) of a fixed schedule.\n"
    model.save_pretrained(run.args.export, model_card_kwargs=dict(
        name=name, dataset=dataset, data_note=data_note, result=result, command=command, extra=extra))


def export_finished(args: argparse.Namespace, cv: dict | None = None) -> None:
    """Export the finished run in ``args.out`` (to ``args.export``) without training further."""
    run = resolve_run(_resumed(args), None)
    export(run, read_meta(run.out / STATE), cv)


def read_meta(path: Path) -> dict:
    """The metadata (epoch, history, sample counts, ...) saved with a run's training state."""
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["state"])


def _resumed(args: argparse.Namespace) -> argparse.Namespace:
    one = argparse.Namespace(**vars(args))
    one.resume = True
    return one


def main(argv: list[str] | None = None) -> dict:
    """Train (or resume) a run; returns its metadata. A user's mistake: one line on stderr, exit 2."""
    args = parse_args(argv)
    try:
        if args.folds is not None or args.fold is not None:
            from . import crossval

            if args.folds is None:
                raise TrainError("--fold needs --folds")
            return crossval.run(args, argv)
        return train_run(args, argv)
    except StcError as err:
        print(f"train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


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


if __name__ == "__main__":
    main()
