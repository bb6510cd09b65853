"""A run folder's files: the whole training state (``last.safetensors``, for an exact resume), the
best and final weights, ``run.json``, all written atomically; and the lock that keeps one training
per folder."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import replace_atomically
from .config import TrainError

STATE, BEST, FINAL, RUN = "last.safetensors", "best.safetensors", "final.safetensors", "run.json"
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


def read_meta(path: Path) -> dict:
    """The metadata (epoch, history, sample counts, ...) saved with a run's training state."""
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["state"])
