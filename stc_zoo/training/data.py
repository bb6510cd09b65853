"""A run's data: the compressed training and validation tensors, the hold-out, and the augmentations
that act on the cached tensors (shifts, event dropout) rather than on the events."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..augment import AugmentedEvents, EventAugment
from ..config import StcConfig
from ..data import stratified_folds, stratified_split, stratified_subset
from ..data.compressed import compress_dataset
from ..data.tonic_adapter import reader as get_reader
from ..transforms import SpatioTemporalCompression
from .config import TrainError
from .config import TrainConfig, TrainError


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
    ``val_fraction`` hold-out, or everything kept; with ``train.train_limit``, a stratified sample of that many
    of the kept ones (the hold-out unchanged)."""
    if train.folds:
        held = stratified_folds(targets, train.folds, train.seed)[train.fold - 1]
        kept = sorted(set(range(len(targets))) - set(held))
    else:
        kept, held = stratified_split(targets, train.val_fraction, train.seed)
    if train.train_limit:
        if train.train_limit > len(kept):
            raise TrainError(f"train_limit={train.train_limit}: the hold-out leaves only {len(kept)} recordings to "
                             "train on")
        kept = [kept[i] for i in stratified_subset([targets[i] for i in kept], train.train_limit, train.seed)]
    return kept, held


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
