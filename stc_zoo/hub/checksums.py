"""SHA-256 manifests of checkpoint folders: the bundled weights are verified before they load.

A folder's ``SHA256SUMS`` lists ``<hex digest>  <file name>`` lines (``sha256sum`` format, so
``sha256sum -c SHA256SUMS`` checks it too) for its ``config.json`` and ``model.safetensors``.
``StcSNN.save_pretrained`` writes it; ``python -m stc_zoo.hub.checksums FOLDER`` rewrites it by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from ..errors import CheckpointError
from .files import CHECKSUMMED, MANIFEST

LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>.+?)\s*$")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(folder: str | os.PathLike) -> Path:
    """Write ``folder/SHA256SUMS`` for the checkpoint files in it; returns its path."""
    folder = Path(folder)
    lines = [f"{sha256(folder / name)}  {name}\n" for name in CHECKSUMMED]
    (folder / MANIFEST).write_text("".join(lines))
    return folder / MANIFEST


def verify(folder: str | os.PathLike) -> None:
    """Raise CheckpointError unless every checkpoint file in ``folder`` matches its manifest."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise CheckpointError(f"{manifest}: missing; cannot verify the checkpoint in {folder}")
    listed = {}
    for line in manifest.read_text(errors="replace").splitlines():
        # sha256sum's two forms: "<hex>  name" (text mode) and "<hex> *name" (binary mode, `sha256sum -b`)
        match = LINE.match(line)
        if match:
            listed[match["name"]] = match["digest"].lower()
    for name in CHECKSUMMED:
        path = folder / name
        if name not in listed:
            raise CheckpointError(f"{manifest}: does not list {name}")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if sha256(path) != listed[name]:
            raise CheckpointError(f"{path}: SHA-256 does not match {manifest} (damaged or edited since it was written)")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(write(arg))
