"""What a simulation reads: MNIST's IDX files, a folder of images per class, or a folder of frame arrays.

Each source numbers its items ``0..len - 1`` and gives an item's label, a stable name (for its output
file), the seed it is simulated with by default (its own index, so ``saccades(image, seed=i)`` on MNIST
image ``i`` is what a source of MNIST gives for it) and its events under given parameters. ``describe``
says exactly which material it is, for run folders and model cards (provenance: which MNIST images
pretrained a checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SimulationError
from .images import image_folder, mnist_files, read_idx, read_image
from .pixel import check_frames, simulate_checked
from .saccades import SaccadeParams, saccades

FRAME_SUFFIX = ".npz"
MAX_FRAME_BYTES = 1 << 30  # one frame array in memory


class MnistImages:
    """MNIST's ``split`` images ``first..last - 1`` (``indices``, a range) in ``root``, read once."""

    kind = "mnist"
    classes = tuple(str(d) for d in range(10))

    def __init__(self, root: str | os.PathLike, indices: range | None = None, split: str = "train"):
        images_path, labels_path = mnist_files(root, split)
        total = len(read_idx(labels_path))
        indices = indices if indices is not None else range(total)
        if indices.step != 1 or not 0 <= indices.start < indices.stop <= total:
            raise SimulationError(f"{root}: images {indices.start}..{indices.stop - 1} are not within MNIST's "
                                  f"{total:,} {split} images (0..{total - 1})")
        self.root, self.split, self.indices = Path(root), split, indices
        self.images, self.labels = read_idx(images_path, indices), read_idx(labels_path, indices)

    def __len__(self) -> int:
        return len(self.indices)

    def label(self, i: int) -> int:
        return int(self.labels[i])

    def name(self, i: int) -> str:
        """N-MNIST's own file name for the recording of this image: its 1-based MNIST index."""
        return f"{self.indices[i] + 1:05d}"

    def seed(self, i: int) -> int:
        return self.indices[i]

    def events(self, i: int, params: SaccadeParams, seed: int) -> np.ndarray:
        return saccades(self.images[i], seed=seed, params=params)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root), "split": self.split,
                "images": [self.indices.start, self.indices.stop], "licence": "MNIST: CC BY-SA 3.0 (LeCun, Cortes)"}


class _LabelledFiles:
    """A ``ROOT/<class>/<file>`` tree: ``classes`` and ``items`` ``[(file, label), ...]``; an item's own index
    is its seed."""

    root: Path
    classes: tuple[str, ...]
    items: list[tuple[Path, int]]

    def __len__(self) -> int:
        return len(self.items)

    def label(self, i: int) -> int:
        return self.items[i][1]

    def name(self, i: int) -> str:
        return self.items[i][0].stem

    def seed(self, i: int) -> int:
        return i


class ImageFolder(_LabelledFiles):
    """The PNG/JPEG images of a ``ROOT/<class>/<image>`` tree (read one at a time, when simulated)."""

    kind = "images"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.classes, self.items = image_folder(root)

    def events(self, i: int, params: SaccadeParams, seed: int) -> np.ndarray:
        return saccades(read_image(self.items[i][0]), seed=seed, params=params)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root), "images": len(self)}


class FrameFolder(_LabelledFiles):
    """Frame arrays of a ``ROOT/<class>/<name>.npz`` tree, each holding ``frames`` ``[N, H, W]`` (linear
    intensity) and ``times_us`` ``[N]``; simulated by the pixel model alone (no saccades)."""

    kind = "frames"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SimulationError(f"{root}: no such folder (expected ROOT/<class>/<name>.npz frame arrays)")
        self.classes = tuple(sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")))
        self.items = [(f, label) for label, c in enumerate(self.classes)
                      for f in sorted((self.root / c).glob(f"*{FRAME_SUFFIX}"))]
        if not self.items:
            raise SimulationError(f"{root}: no frame arrays (expected ROOT/<class>/<name>.npz holding 'frames' "
                                  "[N, H, W] and 'times_us' [N])")

    def frames(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.items[i][0]
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"frames", "times_us"} - set(data.files)
                if missing:
                    raise SimulationError(f"{path}: no {sorted(missing)} array (it holds {sorted(data.files)})")
                frames = data["frames"]
                if frames.nbytes > MAX_FRAME_BYTES:
                    raise SimulationError(f"{path}: 'frames' is {frames.nbytes:,} bytes, more than {MAX_FRAME_BYTES:,}")
                times = data["times_us"]
        except (OSError, ValueError) as err:
            raise SimulationError(f"{path}: not a readable .npz of frames ({err})") from None
        try:
            return check_frames(frames, times)
        except SimulationError as err:
            raise SimulationError(f"{path}: {err}") from None

    def events(self, i: int, params: SaccadeParams, seed: int) -> np.ndarray:
        frames, times = self.frames(i)
        return simulate_checked(frames, times, params.pixel, seed)

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root), "recordings": len(self)}


def open_source(kind: str, root: str | os.PathLike, indices: range | None = None):
    """The source of ``kind`` ("mnist", "images" or "frames") at ``root``."""
    if kind == "mnist":
        return MnistImages(root, indices)
    if indices is not None:
        raise SimulationError(f"a range of images is for MNIST's files; a {kind} folder is simulated whole")
    if kind == "images":
        return ImageFolder(root)
    if kind == "frames":
        return FrameFolder(root)
    raise SimulationError(f"unknown source kind {kind!r}: 'mnist', 'images' or 'frames'")

