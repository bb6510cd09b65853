"""A whole dataset compressed to ``[N, T, 2, H', W']`` tensors, cached on disk.

The cache key hashes everything that changes the tensors: the samples (where each comes from,
with file sizes and mtimes), the compression parameters and a cache version. Entries are
safetensors files written to a temporary name and renamed into place, so an interrupted fill
never leaves a half-written entry under a real key.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..atomic import replace_atomically
from ..errors import EventFormatError
from ..transforms import SpatioTemporalCompression
from .base import EventDataset

CACHE_VERSION = 2


def cache_key(dataset: EventDataset, compression: SpatioTemporalCompression, indices: Sequence[int]) -> str:
    sources = []
    for i in indices:
        path = dataset.source_file(i)
        st = os.stat(path) if path else None
        sources.append((dataset.describe(i), st.st_size, st.st_mtime_ns) if st else (dataset.describe(i),))
    blob = json.dumps({"v": CACHE_VERSION, "type": type(dataset).__name__, "sources": sources,
                       "targets": [dataset.targets[i] for i in indices], "compression": asdict(compression.config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def compress_dataset(
    dataset: EventDataset,
    compression: SpatioTemporalCompression,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    desc: str = "compressing",
    indices: Sequence[int] | None = None,
    workers: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X [N, T, 2, H', W'] float32, y [N] int64)`` for every sample (or those at ``indices``),
    from the cache when present; ``workers`` threads read and compress batches side by side."""
    indices = list(range(len(dataset)) if indices is None else indices)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(dataset, compression, indices)}.safetensors"
        if path.is_file():
            try:
                cached = load_file(path)
                return cached["inputs"], cached["labels"]
            except (SafetensorError, OSError, KeyError) as err:  # written atomically, so only outside damage
                warnings.warn(f"{path}: unreadable cache entry ({err}); compressing again", stacklevel=2)
    def compress_chunk(chunk: Sequence[int]) -> torch.Tensor:
        # One recording's events in memory at a time: a chunk of 64 DVS128 Gesture windows held
        # together took ~0.3 GB per worker (measured, benchmarks/dataset_prep.py).
        frames = []
        for i in chunk:
            try:
                frames.append(compression.batch([dataset.load_events(i)]))
            except EventFormatError as err:  # say which recording, not which batch slot
                raise EventFormatError(f"{dataset.describe(i)}: {str(err).removeprefix('events[0]: ')}") from None
        return torch.cat(frames, dim=1).transpose(0, 1)

    pieces = [indices[start:start + batch_size] for start in range(0, len(indices), batch_size)]
    bar = tqdm(total=len(pieces), desc=desc, unit="batch", leave=False)
    if workers > 1:  # threads: reading files and the Numba kernel release the GIL
        with ThreadPoolExecutor(workers) as pool:
            chunks = []
            for chunk in pool.map(compress_chunk, pieces):
                chunks.append(chunk)
                bar.update()
    else:
        chunks = []
        for piece in pieces:
            chunks.append(compress_chunk(piece))
            bar.update()
    bar.close()
    inputs = torch.cat(chunks).contiguous() if chunks else torch.zeros(0, compression.config.T, 2,
                                                                          *compression.output_size)
    labels = torch.tensor([dataset.targets[i] for i in indices], dtype=torch.int64)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda tmp: save_file({"inputs": inputs, "labels": labels}, tmp))
    return inputs, labels
