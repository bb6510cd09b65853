"""Recompute the accuracy a model card states, from the dataset's recordings.

The card's model-index result names the reader, the split the hold-out was drawn from, the
held-out fraction and the seed (``CardResult``); ``held_out`` draws the same hold-out.
``hub/publish.py --verify-data``, ``stc-zoo evaluate --split val`` and the demo use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data import stratified_split
from ..data.base import EventDataset
from ..data.compressed import compress_dataset
from ..data.tonic_adapter import reader as get_reader
from ..errors import CheckpointError
from ..evaluation import accuracy
from .card import CardResult, read_card
from .files import CARD_NAME


def stated_result(folder: Path | None) -> CardResult:
    """The result the card in ``folder`` states; CheckpointError when there is none to read."""
    if folder is None or not (folder / CARD_NAME).is_file():
        raise CheckpointError(f"{folder}: this model has no model card, so no stated hold-out to use")
    return read_card(folder / CARD_NAME)[1]


def held_out(root: str | os.PathLike, stated: CardResult, download: bool = False) -> tuple[EventDataset, list[int]]:
    """The dataset the card's hold-out was drawn from, and the held-out indices into it. A model trained
    on every recording (its card states a cross-validated estimate) has none: CheckpointError."""
    if stated.folds:
        raise CheckpointError(
            f"this model was trained on all {stated.samples} recordings of its {stated.source_split} split, so no "
            f"hold-out is left to evaluate; its {stated.percent:.2f}% is the {stated.folds}-fold cross-validated "
            f"estimate of its training recipe: rerun the training command on its card (stc-zoo train ... --folds "
            f"{stated.folds}) to reproduce it, or evaluate it on recordings it never saw (--split test)")
    dataset = get_reader(stated.reader)(root, stated.source_split, download=download)
    _, held = stratified_split(dataset.targets, stated.val_fraction, seed=stated.seed)
    if len(held) != stated.samples:
        raise CheckpointError(f"{root}: the card's hold-out has {stated.samples} recordings, this data gives "
                              f"{len(held)}; it is not the data the card was measured on")
    return dataset, held


def trained_on(stated: CardResult | None, reader: str, split: str, targets) -> set[int] | None:
    """Indices (into the ``split`` of dataset ``reader`` whose labels are ``targets``) of the recordings a
    checkpoint whose card states ``stated`` was trained on: all of them for a cross-validated card (its
    weights saw every recording), the complement of its hold-out for a hold-out card, none for another
    dataset or split. None when it cannot be known: no card, a card without a result, or recordings that
    are not the ones the card counted (another copy of the dataset, larger or smaller: the card names
    recordings by position only, so which of these it saw is unknown)."""
    if stated is None:
        return None
    if stated.reader != reader or stated.source_split != split:
        return set()
    if stated.folds or not stated.val_fraction:
        return set(range(len(targets))) if len(targets) == stated.samples else None
    kept, held = stratified_split(targets, stated.val_fraction, seed=stated.seed)
    return set(kept) if len(held) == stated.samples else None


def held_out_accuracy(model, root: str | os.PathLike, stated: CardResult, cache_dir: str | None = None) -> float:
    """Accuracy (0..1) of ``model`` (an StcSNN) on the hold-out ``stated`` describes, read from ``root``."""
    dataset, held = held_out(root, stated)
    X, y = compress_dataset(dataset, model.pipeline, cache_dir, desc="compressing", indices=held)
    return accuracy(model.network, X, y, desc="verifying")
