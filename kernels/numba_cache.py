"""Numba's on-disk cache, or a working stand-in where it cannot be written.

Numba caches compiled kernels beside their source (``__pycache__``) or in the user's cache folder
(``~/.cache``), or in ``NUMBA_CACHE_DIR`` when set. In a read-only install with no writable home (a
container with a read-only root file system, a serverless function) none of those can be written,
and ``numba.njit(cache=True)`` raises ``RuntimeError: cannot cache function ... no locator available``
as the kernels' module is imported. ``cached_njit`` catches exactly that once, points Numba's cache
at a new temporary folder (said once) and goes on; without a writable temporary folder either, it
compiles without a cache. Numba will not read a cache folder it cannot write, so a read-only
``NUMBA_CACHE_DIR`` (filled by ``stc-zoo warmup`` when the image was built) is copied into that
temporary folder first: its kernels load instead of compiling. A writable ``NUMBA_CACHE_DIR`` is used
as it always was.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import numba

log = logging.getLogger("stc_zoo")
_fallback: str | None = None  # "temporary" or "none" once the usual places were found unwritable


def _unwritable(err: RuntimeError) -> bool:
    return "no locator available" in str(err)


def _use_temporary_cache() -> bool:
    """Point Numba's cache at a new temporary folder; False when none can be made."""
    global _fallback
    if _fallback is None:
        given = os.environ.get("NUMBA_CACHE_DIR", "")
        try:
            tmp = tempfile.mkdtemp(prefix="stc-zoo-numba-")
            if given and os.path.isdir(given):  # a read-only cache made at build time: Numba reads it only here
                shutil.copytree(given, tmp, dirs_exist_ok=True)
            numba.config.CACHE_DIR = tmp
            _fallback = "temporary"
        except OSError:
            _fallback = "none"
        if given and _fallback == "temporary":
            log.info("stc-zoo: NUMBA_CACHE_DIR %s is read-only, and Numba only reads a cache it can write: its "
                     "kernels were copied into %s", given, tmp)
        else:
            where = (f"a temporary folder ({tmp}), again in every process" if _fallback == "temporary" else
                     "memory only, again in every process")
            log.warning("stc-zoo: Numba cannot write its cache beside the package or in the user's cache folder "
                        "(a read-only install?), so the CPU kernels compile into %s: fill a NUMBA_CACHE_DIR at "
                        "image build time (stc-zoo warmup) to start fast", where)
    return _fallback == "temporary"


def cached_njit(**options):
    """``numba.njit(cache=True, **options)``, falling back as the module docstring says."""
    def decorate(fn):
        if _fallback != "none":
            try:
                return numba.njit(cache=True, **options)(fn)
            except RuntimeError as err:
                if not _unwritable(err):
                    raise
            if _use_temporary_cache():
                return numba.njit(cache=True, **options)(fn)
        return numba.njit(cache=False, **options)(fn)
    return decorate


def on_disk(dispatcher) -> bool:
    """Whether Numba's disk cache holds ``dispatcher`` compiled for this CPU from this source, for some
    signature: loading it takes milliseconds where compiling takes seconds. Reads Numba's index the way
    Numba does (a stale source stamp or another Numba version reads as empty); where its internals differ
    from that, True (the kernels compile on first use, as they always did)."""
    try:
        index = dispatcher._cache._cache_file._load_index()
        magic = dispatcher.targetctx.codegen().magic_tuple()
    except Exception:  # noqa: BLE001 - an internal API: any change means "cannot tell"
        return True
    return any(key[1] == magic for key in index)
