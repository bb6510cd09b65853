"""Simulated recordings as a dataset: training on 59,000 simulated saccades without 59,000 files.

``--dataset simulated --data FOLDER`` reads ``FOLDER/simulation.json`` (``stc-zoo simulate --spec-only``
writes one) and simulates each recording when it is loaded, the same events every time (the file fixes
the source, the parameters and the seeds). Training compresses them once into its compressed cache,
like any dataset; a run whose augmentation needs the events (rotation, zoom) simulates them again
rather than keeping files. The recordings' source images are known (``source_images``), which is what a
checkpoint pretrained on them records (docs/DESIGN.md, provenance).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetError, SimulationError
from .base import EventDataset, check_split


class SimulatedDataset(EventDataset):
    """Samples ``(events, label)`` simulated as ``ROOT/simulation.json`` says (module docstring)."""

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Callable | None = None,
                 download: bool = False):
        from ..simulate.spec import SPEC_FILE, read_simulation

        super().__init__(transform)
        check_split(split)
        if split != "train":
            raise DatasetError(f"{root}: a simulation has one split (train); hold out validation from it, or "
                               "evaluate on real recordings")
        if download:
            raise DatasetError(f"{root}: simulated recordings are made here; there is nothing to download")
        try:
            self.simulation = read_simulation(root)
            self.source = self.simulation.open()
        except SimulationError as err:
            raise DatasetError(str(err)) from None
        self.spec_path = Path(root) / SPEC_FILE if Path(root).is_dir() else Path(root)
        self.classes = tuple(self.source.classes)
        self.targets = [self.source.label(i) for i in range(len(self.source))]
        if self.simulation.kind != "frames":
            self.sensor_size = (*self.simulation.params.sensor_size, 2)

    def load_events(self, index: int) -> np.ndarray:
        return self.simulation.events(self.source, index)

    def source_file(self, index: int) -> str:
        """The simulation file: it decides the events, so a changed file changes the compressed cache's key."""
        return str(self.spec_path)

    def describe(self, index: int) -> str:
        return f"{self.spec_path}[{self.source.name(index)}]"

    digestible = False  # simulated when read: the source images name them

    def source_image(self, index: int) -> tuple[str, int] | None:
        if self.simulation.kind == "mnist":
            return (f"MNIST {self.source.split}", self.source.indices[index])
        return None

    def describe_source(self) -> str:
        """The recordings in words, for a run's trained_on.json and card."""
        material = self.source.describe()
        if self.simulation.kind == "mnist":
            first, stop = material["images"]
            what = f"MNIST {material['split']} images {first}..{stop - 1} ({material['licence']})"
        else:
            what = f"the {material['kind']} of {material['root']}"
        randomized = ", parameters randomised per recording" if self.simulation.randomize else ""
        made = self.simulation.to_dict()["simulator"]
        return (f"{len(self):,} recordings of {what} simulated by {made}'s saccade simulator (seed "
                f"{self.simulation.seed}{randomized})")
