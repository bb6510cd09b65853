"""Recompute the accuracy a model card states, from the dataset's recordings.

The card's model-index result names the reader, the split the hold-out was drawn from, the
held-out fraction and the seed (``stc_zoo.card.CardResult``); this draws the same hold-out and
classifies it. ``hub/publish.py --verify-data`` refuses to publish a card it cannot reproduce.
"""

from __future__ import annotations

import os

import torch
from tqdm.auto import tqdm

from .card import CardResult
from .data import READERS, stratified_split
from .errors import CheckpointError
from .model import StcSNN


def held_out_accuracy(model: StcSNN, root: str | os.PathLike, stated: CardResult, batch_size: int = 64) -> float:
    """Accuracy (0..1) of ``model`` on the hold-out ``stated`` describes, read from ``root``."""
    dataset = READERS[stated.reader](root, stated.source_split)
    _, held = stratified_split(dataset.targets, stated.val_fraction, seed=stated.seed)
    if len(held) != stated.samples:
        raise CheckpointError(f"{root}: the card's hold-out has {stated.samples} recordings, this data gives "
                              f"{len(held)}; it is not the data the card was measured on")
    correct = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(held), batch_size), desc="verifying", unit="batch", leave=False):
            picks = held[start:start + batch_size]
            predicted = model.predict([dataset.load_events(i) for i in picks]).cpu()
            correct += int((predicted == torch.tensor([dataset.targets[i] for i in picks])).sum())
    return correct / len(held)
