"""Any ``tonic.datasets`` class as a reader: ``--dataset tonic:<Class>`` (e.g. ``tonic:NMNIST``).

tonic knows where each dataset lives and how to fetch it; this adapter gives it the readers'
interface (``root, split, download``) with the class's own ``sensor_size`` and ``classes``.
Instances are built as ``Class(save_to=root, train=split == "train")`` (``train`` left out for
classes without one); a dataset that is not on disk is fetched by tonic only with ``download``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

import numpy as np

from ..errors import DatasetError
from .base import EventDataset, check_split

PREFIX = "tonic:"


def tonic_class(name: str):
    """``tonic.datasets.<name>``; DatasetError naming the ones that exist otherwise."""
    import tonic.datasets

    cls = getattr(tonic.datasets, name, None)
    if not inspect.isclass(cls):
        known = sorted(n for n, v in vars(tonic.datasets).items() if inspect.isclass(v) and hasattr(v, "sensor_size"))
        raise DatasetError(f"tonic has no dataset {name!r}; tonic.datasets has {', '.join(known)}")
    return cls


class TonicDataset(EventDataset):
    """Samples ``(events, label)`` of a ``tonic.datasets`` class (module docstring)."""

    def __init__(self, name: str, root: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                 download: bool = False):
        super().__init__(transform)
        check_split(split)
        cls = tonic_class(name)
        params = inspect.signature(cls).parameters
        kwargs = {"save_to": str(root)}
        if "train" in params:
            kwargs["train"] = split == "train"
        elif split != "train":
            raise DatasetError(f"tonic.datasets.{name} has no test split; train on it and hold out validation")
        if not download and not os.path.isdir(root):
            raise DatasetError(f"{root}: no such folder (pass download=True, or --download, to let tonic fetch "
                               f"{name})")
        try:
            self.tonic = cls(**kwargs)
        except Exception as err:  # noqa: BLE001 - tonic raises many kinds; the user needs the reason in one line
            raise DatasetError(f"tonic.datasets.{name}({kwargs}): {type(err).__name__}: {str(err)[:200]}") from None
        self.name = name
        self.sensor_size = tuple(cls.sensor_size)
        self.classes = tuple(str(c) for c in getattr(cls, "classes", ()) or ())
        targets = getattr(self.tonic, "targets", None)
        self.targets = [int(t) for t in (targets if targets is not None else
                                         (self.tonic[i][1] for i in range(len(self.tonic))))]
        if not self.classes:
            self.classes = tuple(str(c) for c in range(max(self.targets) + 1))

    def load_events(self, index: int) -> np.ndarray:
        return self.tonic[index][0]

    def describe(self, index: int) -> str:
        return f"tonic.datasets.{self.name}[{index}]"


def reader(key: str):
    """The reader class (or ``tonic:<Class>`` adapter) of a dataset key."""
    from . import READERS

    if key.startswith(PREFIX):
        name = key[len(PREFIX):]

        def make(root, split="train", transform=None, download=False):
            return TonicDataset(name, root, split, transform, download)
        return make
    if key not in READERS:
        raise DatasetError(f"unknown dataset {key!r}: one of {', '.join(sorted(READERS))} or tonic:<Class>")
    return READERS[key]


def dataset_key(text: str) -> str:
    """argparse type for ``--dataset``: a reader key or ``tonic:<Class>``."""
    import argparse

    from . import READERS

    if text in READERS or (text.startswith(PREFIX) and len(text) > len(PREFIX)):
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(sorted(READERS))} or tonic:<Class>, got {text!r}")
