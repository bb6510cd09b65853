"""Train a zoo entry: ``python training/train.py --model nmnist-t4 --data ROOT``.

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
* ``--export DIR`` writes a Hub-ready folder (model.safetensors, config.json, README.md card).
"""

from __future__ import annotations

import argparse
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
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from stc_zoo import StcConfig, StcSNN
from stc_zoo.atomic import replace_atomically
from stc_zoo import checksums
from stc_zoo.card import CardResult, render_card
from stc_zoo.data import READERS, stratified_split
from stc_zoo.data.compressed import compress_dataset
from stc_zoo.model import load_weights
from stc_zoo.zoo import get_entry

STATE, BEST, RUN = "last.safetensors", "best.safetensors", "run.json"


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


# ------------------------------------------------------------------ configuration
def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_overrides(path: str | None) -> dict:
    if path is None:
        return {}
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    unknown = set(data) - {"model", "train"}
    if unknown:
        raise SystemExit(f"{path}: top-level keys must be 'model' and 'train', got {sorted(unknown)}")
    return data


def apply(obj, changes: dict, what: str):
    fields = {f.name for f in dataclasses.fields(obj)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise SystemExit(f"unknown {what} fields {unknown}; known: {sorted(fields)}")
    return dataclasses.replace(obj, **changes)


def resolve_configs(args) -> tuple[StcConfig, TrainConfig]:
    overrides = load_overrides(args.config)
    model_changes, train_changes = dict(overrides.get("model", {})), dict(overrides.get("train", {}))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set or []:
        key, _, value = item.partition("=")
        (train_changes if key in train_fields else model_changes)[key] = parse_value(value)
    for key in ("epochs", "batch_size", "lr", "seed"):
        if getattr(args, key) is not None:
            train_changes[key] = getattr(args, key)
    return apply(get_entry(args.model).config, model_changes, "model"), apply(TrainConfig(), train_changes, "train")


# ------------------------------------------------------------------ data
def load_data(reader: str, root: str, config: StcConfig, train: TrainConfig, cache_dir: str | None,
              download: bool = False):
    """Compressed train and validation tensors: ``(X [N, T, 2, H, W], y [N])`` each."""
    dataset = READERS[reader](root, "train", download=download)
    X, y = compress_dataset(dataset, config.compression(), cache_dir, desc="compressing train split")
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
def run_epoch(model, X, y, train: TrainConfig, device, optimizer=None, epoch=0, rank=0, world=1):
    """One pass; trains when ``optimizer`` is given. Returns (mean loss, accuracy) over this rank's share."""
    training = optimizer is not None
    model.train(training)
    gen = torch.Generator().manual_seed(train.seed * 100_003 + epoch)  # same order on resume
    order = torch.randperm(len(X), generator=gen) if training else torch.arange(len(X))
    if training:  # equal shards, or DDP ranks would wait on each other's missing batches
        order = order[: len(order) - len(order) % world]
    order = order[rank::world]
    amp = train.amp and device.type == "cuda"
    total_loss, correct = 0.0, 0
    batches = range(0, len(order), train.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch} {'train' if training else 'val'}", leave=False, disable=rank != 0)
    for start in bar:
        idx = order[start:start + train.batch_size]
        xb, yb = X[idx], y[idx]
        if training:
            xb = random_shift(xb, train.shift, gen)
        xb, yb = xb.transpose(0, 1).to(device, non_blocking=True), yb.to(device)
        with torch.set_grad_enabled(training), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=train.label_smoothing if training else 0.0)
        if training:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(-1) == yb).sum())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return total_loss / max(len(order), 1), correct / max(len(order), 1)


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


def export(out: Path, export_dir: Path, entry, config: StcConfig, meta: dict) -> None:
    model = StcSNN(config)
    load_weights(model, out / BEST)
    model.save_pretrained(export_dir)
    is_subset = entry.reader == "nmnist" and meta["total_samples"] < 60000  # full N-MNIST train: 60,000
    data_note = (f"Trained on {meta['train_samples']} recordings of `{meta['data']}`"
                 + (f" — a {meta['total_samples']:,}-recording subset of N-MNIST's training set, not the full "
                    "dataset." if is_subset else f" ({entry.dataset} training split)."))
    result = CardResult(accuracy=meta["best_val_acc"], samples=meta["val_samples"], reader=entry.reader,
                        source_split="train", val_fraction=meta["val_fraction"], seed=meta["seed"])
    card = render_card(entry.name, config, entry.dataset, data_note, result, meta["command"],
                       extra=f"Best epoch {meta['best_epoch']} of {meta['epochs']}.\n")
    (export_dir / "README.md").write_text(card)
    checksums.write(export_dir)  # from_pretrained verifies downloads against it


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Train an stc-zoo model.")
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    entry = get_entry(args.model)
    out = Path(args.out or f"runs/{args.model}")
    if args.resume and not (out / RUN).is_file():
        # Killed while preparing the data, before the run folder was written: nothing to continue.
        print(f"--resume: no run in {out} yet ({RUN} missing); starting it")
        args.resume = False
    if args.resume:
        saved = json.loads((out / RUN).read_text())
        config, train = StcConfig.from_dict(saved["model"]), TrainConfig(**saved["train"])
    else:
        config, train = resolve_configs(args)
        if (out / STATE).exists():
            raise SystemExit(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    rank, world, device = setup_distributed()
    torch.manual_seed(train.seed)
    np.random.seed(train.seed)
    random.seed(train.seed)
    (Xtr, ytr), (Xva, yva) = load_data(entry.reader, args.data, config, train, args.cache_dir or None, args.download)
    model = StcSNN(config).to(device)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    command = "python training/train.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"epoch": 0, "best_val_acc": -1.0, "best_epoch": 0, "data": args.data, "seed": train.seed,
            "val_fraction": train.val_fraction, "train_samples": len(Xtr), "val_samples": len(Xva),
            "total_samples": len(Xtr) + len(Xva), "epochs": train.epochs, "command": command}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        for stray in out.glob("*.tmp"):  # a write cut short by a kill; never read
            stray.unlink()
    if args.resume and not (out / STATE).is_file():
        print(f"resuming {out}: no epoch had finished, starting from epoch 1")
    elif args.resume:
        meta = load_state(out / STATE, model, optimizer, scheduler)
        print(f"resuming {out} after epoch {meta['epoch']}")
        if args.epochs is not None and args.epochs != train.epochs:
            # Extending (or shortening) a run stretches the cosine schedule over the new length.
            train = dataclasses.replace(train, epochs=args.epochs)
            scheduler.T_max = meta["epochs"] = args.epochs
            # CosineAnnealingLR steps recursively from the current lr, so re-seat it on the new curve.
            progress = (1 + math.cos(math.pi * scheduler.last_epoch / args.epochs)) / 2
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * progress
            if rank == 0:
                saved["train"]["epochs"] = args.epochs
                write_atomic_text(out / RUN, json.dumps(saved, indent=1))
            print(f"run length changed to {args.epochs} epochs")
    elif rank == 0:
        write_atomic_text(out / RUN, json.dumps({"model": config.to_dict(), "train": dataclasses.asdict(train),
                                                 "command": command}, indent=1))
    meta.setdefault("history", [])
    if rank == 0:  # the log is rebuilt from the state: a kill between the two cannot lose or repeat a line
        write_atomic_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in meta["history"]))
    if rank == 0:
        print(f"{args.model}: {len(Xtr)} train / {len(Xva)} validation samples, {world} process(es) on {device}")

    for epoch in range(meta["epoch"] + 1, train.epochs + 1):
        start = time.perf_counter()
        tr_loss, tr_acc = run_epoch(net, Xtr, ytr, train, device, optimizer, epoch, rank, world)
        va_loss, va_acc = run_epoch(model, Xva, yva, train, device, None, epoch, rank, world)
        share = len(Xva[rank::world])
        va_loss_sum, va_correct, n_val = reduce_sum([va_loss * share, va_acc * share, share], device)
        va_loss, va_acc = va_loss_sum / max(n_val, 1), va_correct / max(n_val, 1)
        scheduler.step()
        record = {"epoch": epoch, "train_loss": round(tr_loss, 5), "train_acc": round(tr_acc, 5),
                  "val_loss": round(va_loss, 5), "val_acc": round(va_acc, 5),
                  "lr": scheduler.get_last_lr()[0], "seconds": round(time.perf_counter() - start, 2)}
        if rank == 0:
            if va_acc > meta["best_val_acc"]:
                meta.update(best_val_acc=va_acc, best_epoch=epoch)
                atomic_save(model.state_dict(), out / BEST)
            meta["epoch"] = epoch
            meta["history"].append(record)
            save_state(out / STATE, model, optimizer, scheduler, meta)
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"epoch {epoch:>3}/{train.epochs}  train loss {tr_loss:.4f} acc {tr_acc:.4f}  "
                  f"val loss {va_loss:.4f} acc {va_acc:.4f}  ({record['seconds']} s)")
        else:
            meta["epoch"] = epoch
    if rank == 0:
        print(f"best validation accuracy {meta['best_val_acc']:.4f} at epoch {meta['best_epoch']} ({out / BEST})")
        if args.export:
            export(out, args.export, entry, config, meta)
            print(f"exported to {args.export}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return meta


if __name__ == "__main__":
    main()
