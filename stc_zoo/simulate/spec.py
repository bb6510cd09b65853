"""A simulation, written down: which material, which parameters, which seed (``simulation.json``).

``Simulation`` is everything that decides a simulated recording, so the same file gives the same
events anywhere: the source (MNIST's IDX files and a range of image indices, a folder of images, a
folder of frame arrays), the parameters (``SaccadeParams``), the seed and, for training, the
ranges parameters are drawn from per recording (``Randomization``). ``stc-zoo simulate`` writes it
beside the recordings it makes (or alone, for training to simulate from), and a run folder and a
model card record it (which images pretrained the weights, with which simulator).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SimulationError
from .randomize import Randomization
from .saccades import SaccadeParams
from .sources import open_source

SPEC_FILE = "simulation.json"
FORMAT = "stc-zoo-simulation"
MAX_SPEC_BYTES = 64 << 10


@dataclass(frozen=True)
class Simulation:
    """Which material is simulated and how (module docstring)."""

    kind: str  # "mnist", "images" or "frames"
    root: str
    images: tuple[int, int] | None = None  # MNIST: first and one past the last image index
    seed: int = 0  # 0: each item's own seed (MNIST image i: i), else mixed with it
    params: SaccadeParams = SaccadeParams()
    randomize: Randomization | None = None

    def __post_init__(self):
        if self.images is not None:
            object.__setattr__(self, "images", (int(self.images[0]), int(self.images[1])))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2 ** 32:
            raise SimulationError(f"simulation seed must be an integer in [0, 2^32), got {self.seed!r}")

    def open(self):
        """The source this simulation reads (checked: the files exist and hold what is asked)."""
        return open_source(self.kind, self.root, range(*self.images) if self.images else None)

    def item_seed(self, source, i: int) -> int:
        own = source.seed(i)
        return own if self.seed == 0 else int(np.random.SeedSequence([self.seed, own]).generate_state(1)[0])

    def params_for(self, source, i: int) -> SaccadeParams:
        """The parameters of item ``i``: the simulation's, or a draw around them when randomised."""
        if self.randomize is None:
            return self.params
        return self.randomize.draw(np.random.default_rng([self.seed, source.seed(i), 1]), self.params)

    def events(self, source, i: int) -> np.ndarray:
        """The simulated recording of item ``i`` of ``source`` (``self.open()``)."""
        return source.events(i, self.params_for(source, i), self.item_seed(source, i))

    # ------------------------------------------------------------------ the file
    def to_dict(self) -> dict:
        from .. import __version__

        return {"format": FORMAT, "version": 1, "simulator": f"stc-zoo {__version__}", "kind": self.kind,
                "root": self.root, "images": list(self.images) if self.images else None, "seed": self.seed,
                "params": self.params.to_dict(),
                "randomize": self.randomize.to_dict() if self.randomize is not None else None}

    def recipe(self) -> dict:
        """What decides the events (the file less who wrote it): two simulations with the same recipe give
        the same recordings."""
        return {k: v for k, v in self.to_dict().items() if k != "simulator"}

    @classmethod
    def from_dict(cls, data: dict, source: str = "simulation") -> Simulation:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SimulationError(f"{source}: not a simulation file (no \"format\": \"{FORMAT}\")")
        if data.get("version") != 1:
            raise SimulationError(f"{source}: simulation file version {data.get('version')!r}; this stc-zoo reads 1")
        try:
            randomize = data.get("randomize")
            return cls(kind=data["kind"], root=data["root"],
                       images=tuple(data["images"]) if data.get("images") else None, seed=data.get("seed", 0),
                       params=SaccadeParams.from_dict(data.get("params", {})),
                       randomize=Randomization(**randomize) if randomize is not None else None)
        except (KeyError, TypeError, ValueError) as err:
            raise SimulationError(f"{source}: {err}") from None

    def write(self, folder: str | os.PathLike) -> Path:
        from ..atomic import replace_atomically

        path = Path(folder) / SPEC_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1)
        replace_atomically(path, lambda tmp: Path(tmp).write_text(text))
        return path


def read_simulation(path: str | os.PathLike) -> Simulation:
    """The simulation in ``path`` (a ``simulation.json`` or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILE
    if not path.is_file():
        raise SimulationError(f"{path}: no such file (stc-zoo simulate writes {SPEC_FILE} into its --out folder)")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SimulationError(f"{path}: {path.stat().st_size:,} bytes, more than a simulation file holds "
                              f"({MAX_SPEC_BYTES:,})")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SimulationError(f"{path}: not readable JSON ({err})") from None
    return Simulation.from_dict(data, str(path))
