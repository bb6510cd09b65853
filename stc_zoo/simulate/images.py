"""Images to simulate: MNIST's IDX files and folders of PNG/JPEG images per class.

IDX (LeCun's format, plain or gzipped): a magic number naming the element type and the number of
dimensions, the dimensions as big-endian 32-bit integers, then the data. The header is checked
against the file's size before anything is allocated, so a header that claims more data than the
file holds (a size bomb, or a truncated download) is refused with the file and the field named.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import SimulationError

IDX_TYPES = {0x08: np.uint8}  # MNIST's; the format's other element types are not images
MAX_IMAGES = 10_000_000
MAX_IDX_BYTES = 2 ** 31  # what one read may hold in memory (MNIST's training images: 47 MB)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IMAGE_PIXELS = 8192 * 8192


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike, indices: range | None = None) -> np.ndarray:
    """The array an IDX file holds (``[N, H, W]`` images or ``[N]`` labels, uint8), or the rows
    ``indices`` of it (read without reading the rest into memory)."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise SimulationError(f"{path}: not an IDX file (its first bytes {head.hex()} are not 00 00 <type> <dims>)")
            if head[2] not in IDX_TYPES:
                raise SimulationError(f"{path}: IDX element type 0x{head[2]:02x} is not unsigned bytes (0x08)")
            dims = np.frombuffer(f.read(4 * head[3]), ">u4").astype(np.int64)
            if head[3] not in (1, 3) or dims.size != head[3]:
                raise SimulationError(f"{path}: an IDX file of images has 3 dimensions and of labels 1, this header "
                                      f"has {head[3]} (or is cut short)")
            if not 0 < dims[0] <= MAX_IMAGES or (dims.size == 3 and not (0 < dims[1] * dims[2] <= MAX_IMAGE_PIXELS)):
                raise SimulationError(f"{path}: header dimensions {dims.tolist()} are outside the limits (at most "
                                      f"{MAX_IMAGES:,} items of at most {MAX_IMAGE_PIXELS:,} pixels)")
            row = int(np.prod(dims[1:]))
            if path.suffix != ".gz":  # the size the header claims must be the file's: checked before reading
                size = path.stat().st_size
                if size != 4 + 4 * dims.size + dims[0] * row:
                    raise SimulationError(f"{path}: the header's dimensions {dims.tolist()} need "
                                          f"{4 + 4 * dims.size + dims[0] * row:,} bytes, the file has {size:,} "
                                          "(truncated, or a header that lies)")
            wanted = indices if indices is not None else range(int(dims[0]))
            if wanted.step != 1 or wanted.start < 0 or wanted.stop > dims[0] or wanted.start > wanted.stop:
                raise SimulationError(f"{path}: rows {wanted.start}..{wanted.stop - 1} are not within its "
                                      f"{dims[0]} items")
            if len(wanted) * row > MAX_IDX_BYTES:
                raise SimulationError(f"{path}: rows {wanted.start}..{wanted.stop - 1} are {len(wanted) * row:,} bytes, "
                                      f"more than one read holds ({MAX_IDX_BYTES:,}): read fewer rows at a time")
            f.seek(4 + 4 * dims.size + wanted.start * row)  # gzip seeks by reading forward: bounded by the file
            data = read_at_most(f, len(wanted) * row)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise SimulationError(f"{path}: cannot read it ({err})") from None
    if len(data) != len(wanted) * row:
        raise SimulationError(f"{path}: the header's dimensions {dims.tolist()} promise more data than the file "
                              "holds (truncated, or a header that lies)")
    return np.frombuffer(data, np.uint8).reshape(len(wanted), *dims[1:].tolist())


def read_at_most(f, size: int, chunk: int = 1 << 24) -> bytes:
    """Up to ``size`` bytes of ``f`` in chunks, so a header that lies costs only what the file really holds."""
    parts, left = [], size
    while left:
        part = f.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def mnist_files(root: str | os.PathLike, split: str = "train") -> tuple[Path, Path]:
    """The images and labels IDX files of MNIST's ``split`` in ``root`` (plain or gzipped)."""
    root = Path(root)
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise SimulationError(f"MNIST split must be 'train' or 'test', got {split!r}")
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        names = [root / f"{prefix}-{kind}{ext}" for ext in ("", ".gz")]
        path = next((p for p in names if p.is_file()), None)
        if path is None:
            raise SimulationError(f"{root}: no {names[0].name}[.gz] (MNIST's {split} {kind.split('-')[0]} in IDX format)")
        found.append(path)
    return found[0], found[1]


def read_mnist(root: str | os.PathLike, indices: range | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N] uint8)`` of MNIST's ``split`` in ``root`` (rows ``indices``)."""
    images_path, labels_path = mnist_files(root, split)
    images, labels = read_idx(images_path, indices), read_idx(labels_path, indices)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise SimulationError(f"{root}: {images_path.name} and {labels_path.name} do not pair up "
                              f"(shapes {images.shape} and {labels.shape})")
    if labels.size and labels.max() > 9:
        raise SimulationError(f"{labels_path}: labels must be 0..9, found {labels.max()}")
    return images, labels


def image_folder(root: str | os.PathLike) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """``(classes, [(image file, label), ...])`` of a ``ROOT/<class>/<image>.png|jpg`` tree, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SimulationError(f"{root}: no such folder (expected ROOT/<class>/<image>.png|.jpg)")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    items = [(f, label) for label, c in enumerate(classes) for f in sorted((root / c).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not items:
        raise SimulationError(f"{root}: no images (expected ROOT/<class>/<image>.png|.jpg with at least one class "
                              "folder holding images)")
    return classes, items


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A PNG or JPEG file as grey values ``[H, W]`` uint8 (Pillow, in the ``simulate`` extra)."""
    try:
        from PIL import Image
    except ImportError:
        raise SimulationError("reading PNG/JPEG images needs Pillow: pip install 'stc-zoo[simulate]'") from None
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise SimulationError(f"{path}: {image.width} x {image.height} pixels is more than the "
                                      f"{MAX_IMAGE_PIXELS:,} this reader accepts")
            return np.asarray(image.convert("L"))
    except (OSError, Image.DecompressionBombError) as err:
        raise SimulationError(f"{path}: not a readable image ({err})") from None
