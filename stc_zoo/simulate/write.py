"""``stc-zoo simulate``'s output: a labelled event folder the package trains on, written resumably.

Layout ``OUT/Train/<class>/<name>.<bin|npz>``: the N-MNIST reader (``--dataset nmnist``, for MNIST's
digit classes in ``.bin``) and the labelled-folder reader (``--dataset folder``, any classes, either
format) both read it. ``OUT/simulation.json`` says what made it. Each recording is written to a
temporary name and renamed into place, so a killed run leaves only complete files; running the same
command again skips them and continues, and a folder made by another simulation is refused rather
than mixed. One recording is in memory at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import replace_atomically
from ..data.nmnist import encode_nmnist
from ..errors import SimulationError
from .spec import SPEC_FILE, Simulation, read_simulation

FORMATS = ("bin", "npz")


@dataclass(frozen=True)
class Written:
    """What one ``write_folder`` call did."""

    folder: Path
    written: int
    skipped: int  # already there from an earlier run
    events: int  # in the recordings written now


def write_recording(path: Path, events: np.ndarray, fmt: str) -> None:
    """One recording, atomically: N-MNIST's 5-byte events, or an ``.npz`` of ``events``."""
    if fmt == "bin":
        data = encode_nmnist(events, str(path))
        replace_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    else:
        def save(tmp: str) -> None:
            with open(tmp, "wb") as f:  # np.savez on a name would append .npz to the temp name
                np.savez(f, events=events)
        replace_atomically(path, save)


def check_folder(sim: Simulation, out: Path) -> None:
    """Refuse an output folder that holds recordings of another simulation (it would be a mix)."""
    if (out / SPEC_FILE).is_file():
        before = read_simulation(out)
        if before.recipe() != sim.recipe():
            changed = sorted(k for k, v in sim.recipe().items() if before.recipe().get(k) != v)
            raise SimulationError(f"{out} holds recordings of another simulation (it differs in {', '.join(changed)}); "
                                  "choose another --out, or delete it to start again")


def write_folder(sim: Simulation, out: str | os.PathLike, fmt: str = "npz", limit: int | None = None,
                 progress: bool = True) -> Written:
    """Simulate every item of ``sim``'s source (the first ``limit``) into ``out`` (module docstring)."""
    if fmt not in FORMATS:
        raise SimulationError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    source = sim.open()
    if fmt == "bin" and sim.kind == "frames":
        raise SimulationError("N-MNIST's .bin holds 34 x 34-sized coordinates and 8 s of time at most; write frame "
                              "folders as npz")
    check_folder(sim, out)
    sim.write(out)
    written = skipped = events = 0
    count = len(source) if limit is None else min(limit, len(source))
    for i in tqdm(range(count), desc="simulating", unit="rec", disable=not progress):
        path = out / "Train" / source.classes[source.label(i)] / f"{source.name(i)}.{fmt}"
        if path.is_file():
            skipped += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        recording = sim.events(source, i)
        write_recording(path, recording, fmt)
        written, events = written + 1, events + recording.size
    return Written(out, written, skipped, events)


def summary(result: Written) -> str:
    return (f"{result.written} recordings written ({result.events:,} events), {result.skipped} already there -> "
            f"{result.folder / 'Train'}; {json.dumps(str(result.folder / SPEC_FILE))} says how they were made")
