"""Numba's on-disk cache, or a working stand-in where it cannot be written.

Numba caches compiled kernels beside their source (``__pycache__``) or in the user's cache folder
(``~/.cache``), or in ``NUMBA_CACHE_DIR`` when set. In a read-only install with no writable home (a
container with a read-only root file system, a serverless function) none of those can be written,
and ``numba.njit(cache=True)`` raises ``RuntimeError: cannot cache function ... no locator available``
as the kernels' module is imported. ``cached_njit`` catches exactly that once, points Numba's cache
at a new temporary folder (compiled again in every process, so slower to start, and said once) and
goes on; without a writable temporary folder either, it compiles without a cache. A
``NUMBA_CACHE_DIR`` the user sets is used as it always was.
"""

from __future__ import annotations

import logging
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
        try:
            numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="stc-zoo-numba-")
            _fallback = "temporary"
            where = f"a temporary folder ({numba.config.CACHE_DIR}), again in every process"
        except OSError:
            _fallback = "none"
            where = "memory only, again in every process"
        log.warning("stc-zoo: Numba cannot write its cache beside the package or in the user's cache folder "
                    "(a read-only install?), so the CPU kernels compile into %s: set NUMBA_CACHE_DIR to a writable "
                    "folder, filled once at image build time, to start fast", where)
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
