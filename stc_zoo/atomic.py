"""Replacing files atomically: a reader, or a process killed mid-write, sees the old file or the
new one, whole, never a part. Checkpoints, run logs and the compression cache all write this way."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path`` (named ``*.tmp``), then rename it over ``path``.

    If ``write`` raises, the temp file is removed and ``path`` is untouched. A SIGKILL can leave
    the temp file behind (never read; ``training/train.py`` removes them on resume).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
