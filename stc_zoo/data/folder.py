"""Labelled recordings in folders, the ImageFolder of events: ``ROOT/<class>/<recording>``.

Any file ``read_event_file`` reads is a recording (AEDAT 2.0/3.1, N-MNIST ``.bin``, ``.npy``,
``.npz``, ``.csv``/``.txt`` columns); other files are skipped, hidden ones too. The class names
are the sub-folder names, sorted (the label is the index). A root with ``train/`` and ``test/``
folders (any case) gives those splits; a root of class folders alone is the train split, and
training holds a seeded per-class share of it out for validation, as for every dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import EventDataset, check_split
from .files import SUFFIXES, read_event_file


def _split_root(root: Path, split: str) -> Path:
    for child in root.iterdir() if root.is_dir() else ():
        if child.is_dir() and child.name.lower() == split:
            return child
    if split == "train":
        return root
    raise DatasetError(f"{root}: no {split}/ folder (a labelled folder has <class>/<recording> files, "
                       "optionally under train/ and test/)")


def scan(root: str | os.PathLike, split: str = "train") -> tuple[tuple[str, ...], list[Path], list[int]]:
    """``(classes, files, labels)`` of a labelled folder's split; DatasetError when it holds none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    folder = _split_root(root, split)
    skip = {"train", "test"} if folder == root else set()
    classes = tuple(sorted(d.name for d in folder.iterdir()
                           if d.is_dir() and not d.name.startswith(".") and d.name.lower() not in skip))
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((folder / name).rglob("*")):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in SUFFIXES:
                files.append(f)
                labels.append(label)
    if len(classes) < 2 or not files:
        raise DatasetError(f"{folder}: a labelled folder needs at least two <class>/ folders holding recordings "
                           f"({', '.join(sorted(SUFFIXES))}); found {len(classes)} classes, {len(files)} files")
    return classes, files, labels


class EventFolder(EventDataset):
    """Samples ``(events, label)`` of ``ROOT/<class>/<recording>`` (module docstring).

    Args:
        root: the folder.
        split: ``"train"`` or ``"test"``.
        sensor_size: ``(W, H)`` of the recordings, when known (a model's input sensor); the
            compression checks every event against the model it feeds either way.
        download: refused (there is nothing to download).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                 download: bool = False, sensor_size: tuple[int, int] | None = None):
        super().__init__(transform)
        check_split(split)
        if download:
            raise DatasetError(f"{root}: a labelled folder is read from disk; there is nothing to download")
        self.classes, self.files, self.targets = scan(root, split)
        if sensor_size is not None:
            self.sensor_size = (*sensor_size[:2], 2)

    def load_events(self, index: int) -> np.ndarray:
        return read_event_file(self.files[index])

    def source_file(self, index: int) -> str:
        return str(self.files[index])

    describe = source_file
