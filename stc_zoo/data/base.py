"""What the event datasets share: (events, label) samples with an optional transform."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError

SPLITS = ("train", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def download_with_tonic(root: Path, dataset_class: str, **kwargs) -> Any:
    """``tonic.datasets.<dataset_class>(save_to=root, **kwargs)``: fetch a dataset (needs a network).

    A failed download is a DatasetError naming the dataset and the cause, and leaves nothing
    behind: a ``root`` this call created is removed again.
    """
    import tonic

    created = not root.exists()
    try:
        return getattr(tonic.datasets, dataset_class)(save_to=str(root), **kwargs)
    except Exception as err:  # urllib, http and archive errors of many kinds
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise DatasetError(f"{root}: downloading {dataset_class} through tonic failed ({type(err).__name__}: "
                           f"{str(err)[:160]}); check the network, or download it by hand into {root}") from None


class EventDataset(torch.utils.data.Dataset):
    """Base of the readers: subclasses fill ``targets`` and implement ``load_events(i)``.

    Class attributes: ``sensor_size = (W, H, P)`` and ``classes`` (names, index = label).
    """

    sensor_size: tuple[int, int, int]
    classes: tuple[str, ...]

    def __init__(self, transform: Callable[[np.ndarray], Any] | None = None):
        self.transform = transform
        self.targets: list[int] = []

    def load_events(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def source_file(self, index: int) -> str | None:
        """The file sample ``index`` is read from, when it has one (for cache keys)."""
        return None

    def describe(self, index: int) -> str:
        """Where sample ``index`` comes from (for error messages and logs)."""
        return f"{type(self).__name__}[{index}]"

    # Whether a recording can be identified by digesting its events (False where recordings are
    # simulated on reading: their source images name them, stc_zoo/hub/seen.py).
    digestible = True

    def source_image(self, index: int) -> tuple[str, int] | None:
        """The image a recording shows, as ``(dataset, index)`` (N-MNIST's and simulations of MNIST), when
        known: weights that saw a recording of an image saw that image (stc_zoo/hub/seen.py)."""
        return None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        events = self.load_events(index)
        if self.transform is not None:
            events = self.transform(events)
        return events, self.targets[index]
