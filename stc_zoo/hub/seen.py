"""Which recordings (and which source images) a checkpoint's weights were trained on: ``trained_on.json``.

A card names its hold-out by position in a reader's split, which says nothing once the same files are
read by another reader or copied elsewhere. So a checkpoint also keeps, beside its weights, the
**digests of the decoded events** of every recording its weights saw (16 hex digits of a SHA-256 over
``x, y, t, p``: the same recording gives the same digest whatever file, folder or reader it came
through) and the **source images** its recordings show where that is known (N-MNIST's recording
``<i + 1>.bin`` and a simulation of MNIST image ``i`` both show "MNIST train" image ``i``). Weights
fine-tuned from others saw what those saw too: the sets are joined.

Every check that asks "did these weights see this recording?" (``--init`` against a run's hold-out,
``stc-zoo evaluate`` counting seen recordings) uses this file when the checkpoint has it, and the
card's positions only for checkpoints written before it existed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .files import SEEN_NAME

FORMAT = 1
MAX_SEEN_BYTES = 32 << 20  # 1.4 M digests; the full N-MNIST's 70,000 take 1.3 MB


def recording_digest(events: np.ndarray) -> str:
    """16 hex digits identifying a recording by its decoded events (not by file, path or reader)."""
    h = hashlib.sha256()
    for name, dtype in (("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "u1")):
        h.update(np.ascontiguousarray(events[name], dtype=dtype).tobytes())
    return h.hexdigest()[:16]


def to_ranges(indices: Iterable[int]) -> list[list[int]]:
    """Sorted integers as ``[first, stop)`` runs."""
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    return ranges


@dataclass(frozen=True)
class Seen:
    """What some weights were trained on (module docstring)."""

    recordings: frozenset[str] = frozenset()
    images: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # dataset -> [first, stop) runs
    sources: tuple[str, ...] = ()  # in words, for people

    def union(self, other: Seen) -> Seen:
        images = {k: tuple(map(tuple, to_ranges(i for a, b in self.images.get(k, ()) + other.images.get(k, ())
                                                  for i in range(a, b))))
                  for k in sorted(set(self.images) | set(other.images))}
        return Seen(self.recordings | other.recordings, images, self.sources + other.sources)

    def saw_image(self, image: tuple[str, int] | None) -> bool:
        return image is not None and any(a <= image[1] < b for a, b in self.images.get(image[0], ()))

    def overlap(self, digests: Sequence[str], images: Sequence[tuple[str, int] | None]) -> list[int]:
        """Positions of the recordings (their digests and source images) these weights saw, or whose image
        they saw in another recording of it (a simulation of the same image)."""
        return [k for k, (d, image) in enumerate(zip(digests, images)) if d in self.recordings or self.saw_image(image)]

    def describe(self) -> str:
        """In words: how many recordings by their events, which source images (a span and a count where the
        runs are many), and the sources."""
        parts = [f"{len(self.recordings):,} recordings by their events"] if self.recordings else []
        for name, runs in self.images.items():
            count = sum(b - a for a, b in runs)
            parts.append(f"{name} images {runs[0][0]}..{runs[0][1] - 1}" if len(runs) == 1 else
                         f"{count:,} {name} images in {runs[0][0]}..{runs[-1][1] - 1}")
        return (" and ".join(parts) or "nothing") + (f" ({'; '.join(self.sources)})" if self.sources else "")

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "sources": list(self.sources),
                           "images": {k: [list(r) for r in v] for k, v in self.images.items()},
                           "recordings": sorted(self.recordings)}, indent=0)

    @classmethod
    def from_json(cls, text: str, source: str) -> Seen:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this stc-zoo reads {FORMAT}")
            recordings = data["recordings"]
            if not all(isinstance(d, str) and len(d) == 16 for d in recordings):
                raise ValueError("recordings must be 16-hex-digit digests")
            images = {str(k): tuple((int(a), int(b)) for a, b in v) for k, v in data.get("images", {}).items()}
            return cls(frozenset(recordings), images, tuple(str(s) for s in data.get("sources", ())))
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise CheckpointError(f"{source}: not a readable {SEEN_NAME} ({err})") from None

    def write(self, folder: str | os.PathLike) -> None:
        (Path(folder) / SEEN_NAME).write_text(self.to_json())


def read_seen(folder: str | os.PathLike | None) -> Seen | None:
    """The ``trained_on.json`` of a checkpoint folder; None when it has none (written before it existed)."""
    if folder is None:
        return None
    path = Path(folder) / SEEN_NAME
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_SEEN_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes, more than {MAX_SEEN_BYTES:,}")
    return Seen.from_json(path.read_text(), str(path))


def identify(dataset, indices: Sequence[int], progress: str | None = None) -> tuple[list[str | None], list]:
    """Digests (None where the dataset's recordings are simulated on reading: their images name them) and
    source images of the recordings ``indices`` of ``dataset``."""
    from tqdm.auto import tqdm

    images = [dataset.source_image(i) for i in indices]
    if not getattr(dataset, "digestible", True):
        return [None] * len(indices), images
    digests = [recording_digest(dataset.load_events(i))
               for i in tqdm(indices, desc=progress, leave=False, disable=progress is None)]
    return digests, images


def of_dataset(dataset, indices: Sequence[int], description: str) -> Seen:
    """What a training on the recordings ``indices`` of ``dataset`` saw."""
    digests, images = identify(dataset, indices, progress="identifying the training recordings")
    by_dataset: dict[str, list[int]] = {}
    for image in images:
        if image is not None:
            by_dataset.setdefault(image[0], []).append(image[1])
    return Seen(frozenset(d for d in digests if d is not None),
                {k: tuple(map(tuple, to_ranges(v))) for k, v in sorted(by_dataset.items())}, (description,))


def main(argv: list[str] | None = None) -> None:
    """``python -m stc_zoo.hub.seen FOLDER --data ROOT [--dataset KEY]``: write the trained_on.json of a checkpoint
    saved before the file existed, from what its card says it was trained on (every recording of ROOT's split
    for a cross-validated card, all but the hold-out for a hold-out card)."""
    import argparse

    from ..data.tonic_adapter import reader
    from .holdout import stated_result, trained_on

    parser = argparse.ArgumentParser(prog="python -m stc_zoo.hub.seen", description=main.__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data", required=True, help="the recordings the card's result names")
    parser.add_argument("--dataset", help="reader (default: the card's)")
    args = parser.parse_args(argv)
    stated = stated_result(args.folder)
    key = args.dataset or stated.reader
    dataset = reader(key)(args.data, stated.source_split)
    positions = trained_on(stated, key, stated.source_split, dataset.targets)
    if positions is None:
        raise SystemExit(f"{args.folder}: its card's result ({stated.describe()}) does not name these recordings")
    seen = of_dataset(dataset, sorted(positions), f"{len(positions):,} recordings of {Path(args.data).name} read as "
                      f"{key} ({stated.source_split} split), as its card states")
    seen.write(args.folder)
    print(f"wrote {args.folder / SEEN_NAME}: {seen.describe()}")


if __name__ == "__main__":
    main()
