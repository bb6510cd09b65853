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


def stratified_folds(labels: Sequence[int], folds: int, seed: int = 0) -> list[list[int]]:
    """Partition sample indices into ``folds`` disjoint folds with each class spread evenly, reproducibly.

    Each class's members are shuffled (a permutation drawn from ``seed``) and dealt round-robin,
    the deal continuing where the previous class stopped, so fold sizes differ by at most one and
    each class's count differs by at most one between folds. Every index lands in exactly one fold;
    each fold comes back sorted.
    """
    labels = np.asarray(labels)
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if folds > len(labels):
        raise ValueError(f"{folds} folds need at least {folds} samples, got {len(labels)}")
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    dealt = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        for index in members[rng.permutation(len(members))].tolist():
            out[dealt % folds].append(index)
            dealt += 1
    return [sorted(f) for f in out]


def stratified_subset(labels: Sequence[int], size: int, seed: int = 0) -> list[int]:
    """``size`` sample indices with the classes in the proportions of ``labels``, reproducibly, sorted.

    Each class gets its share of ``size`` rounded down, the indices left over going to the classes with the
    largest remainders (ties to the smaller label); its members are the first of a permutation drawn from
    ``seed``. A class present in ``labels`` may get none when ``size`` is below the number of classes.
    """
    labels = np.asarray(labels)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(labels):
        raise ValueError(f"size must be an integer in 0..{len(labels)}, got {size!r}")
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * size / len(labels)
    quota = np.floor(share).astype(int)
    for k in sorted(range(len(classes)), key=lambda k: (-(share[k] - quota[k]), k))[:size - quota.sum()]:
        quota[k] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label, n in zip(classes, quota):
        members = np.flatnonzero(labels == label)
        chosen.extend(members[rng.permutation(len(members))][:n].tolist())
    return sorted(chosen)
