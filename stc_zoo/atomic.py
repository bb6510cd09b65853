"""Replacing files and folders atomically: a reader, or a process killed mid-write, sees the old file
(or folder) or the new one, whole, never a part. Checkpoints, run logs and the compression cache all
write this way."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
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


def replace_folder_atomically(path: str | os.PathLike, write: Callable[[Path], object],
                              keep: Callable[[str], bool] = lambda name: True) -> None:
    """Call ``write(tmp)`` on a new temp folder beside ``path``, then swap it in for ``path`` whole.

    The swap is one ``renameat2(RENAME_EXCHANGE)`` on Linux, so a kill at any moment leaves the old
    folder or the new one at ``path``, never neither and never a mix; where the kernel or file system
    lacks it, two renames (a kill between them leaves the old folder at ``.<name>.previous``, which
    ``interrupted_swap`` finds and the package's loaders read, so a reader still finds one of the two).
    Entries of the old folder for which ``keep(name)`` is true and that ``write`` did not make are
    carried over (hard links where possible). If ``write`` raises, ``path`` is untouched. Temp folders
    that killed writers left beside ``path`` (named with their process id) are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: exists and is not a folder")
    _remove_orphans(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"))
    try:
        write(tmp)
        if not path.exists():
            os.rename(tmp, path)
            shutil.rmtree(previous_of(path), ignore_errors=True)  # an interrupted swap's old folder
            return
        for old in path.iterdir():
            if keep(old.name) and not (tmp / old.name).exists():
                _carry(old, tmp / old.name)
        if _exchange(tmp, path):  # the old folder is at tmp now
            return
        previous = previous_of(path)
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(path, previous)
        os.rename(tmp, path)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def previous_of(path: Path) -> Path:
    """Where the two-rename swap parks the old folder between its renames."""
    return path.with_name(f".{path.name}.previous")


def interrupted_swap(path: str | os.PathLike) -> Path | None:
    """The old folder a swap killed between its two renames left at ``.<name>.previous``, when ``path``
    itself is missing; else None."""
    path = Path(path)
    previous = previous_of(path)
    return previous if not path.exists() and previous.is_dir() else None


def _remove_orphans(path: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` folders beside ``path`` whose process no longer runs."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _carry(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")
