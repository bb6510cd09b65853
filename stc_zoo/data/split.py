"""Fixed, seeded, per-class splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(labels: Sequence[int], held_out: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split sample indices per class into (kept, held-out) lists, reproducibly.

    Each class contributes ``round(held_out * n_class)`` samples to the held-out part, picked
    by a permutation drawn from ``seed``; both lists come back sorted.
    """
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out must be in [0, 1), got {held_out}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        n_held = int(round(held_out * len(members)))
        held.extend(members[:n_held].tolist())
        kept.extend(members[n_held:].tolist())
    return sorted(kept), sorted(held)
