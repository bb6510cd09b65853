"""Where a checkpoint comes from: a local folder, a Hugging Face Hub repo, or a zoo name.

Downloads go through ``huggingface_hub.snapshot_download``: its cache, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT`` (mirrors), revisions and tokens all apply; there is no HTTP code here. A
downloaded folder is checked against the repo's ``SHA256SUMS`` before anything is loaded.

A zoo name resolves to its Hub repo. When the Hub cannot deliver it (no network, offline mode,
not published yet) and the package bundles that entry's checkpoint, the bundled copy is used
and the log says so once per entry and process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from pathlib import Path

try:  # huggingface_hub's HTTP client: httpx2 (its fork) from huggingface_hub 2, httpx before
    import httpx2
except ImportError:  # pragma: no cover - older huggingface_hub
    import httpx as httpx2

from huggingface_hub import constants, set_client_factory, snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id

from .. import zoo
from ..atomic import interrupted_swap
from ..config import LIMITS, MAX_CONFIG_BYTES
from ..errors import CheckpointError, HubError, WeightsUnavailableError
from . import checksums
from .checkpoint import require_files
from .files import CARD_NAME, CONFIG_NAME, MANIFEST, REPO_FILES, SEEN_NAME, WEIGHTS_NAME
from .seen import MAX_SEEN_BYTES

log = logging.getLogger("stc_zoo")
_fallbacks_logged: set[str] = set()

# Seconds each Hub request may wait for the server, so an endpoint that accepts connections but
# never answers cannot stall a load: huggingface_hub's own HF_HUB_ETAG_TIMEOUT (metadata) and
# HF_HUB_DOWNLOAD_TIMEOUT (transfers) set them; unset, metadata gets 3 s, and 1.5 s for a zoo entry
# that has a bundled copy to fall back on (the Hub answers in well under a second; a load whose Hub
# is unreachable then starts within a few seconds), transfers huggingface_hub's default.
METADATA_TIMEOUT_ENV, DEFAULT_METADATA_TIMEOUT = "HF_HUB_ETAG_TIMEOUT", 3.0
FALLBACK_METADATA_TIMEOUT = 1.5
# The whole download of one checkpoint (every request and transfer) must finish within this many
# seconds (a read timeout bounds only the wait between bytes, so a server trickling a byte a second
# would otherwise hold a load forever). Checkpoints are a few MB; set it higher on a slow link.
DEADLINE_ENV, DEFAULT_DEADLINE = "STC_ZOO_HUB_DEADLINE", 300.0
# The most a server may send for each file of a checkpoint repo (and for one API answer): a larger
# claim (Content-Length) is refused before its first byte, a larger stream when it gets there.
MAX_BYTES = {CONFIG_NAME: MAX_CONFIG_BYTES, WEIGHTS_NAME: 4 * LIMITS["parameters"] + (1 << 20),
             MANIFEST: 1 << 12, CARD_NAME: 1 << 20, SEEN_NAME: MAX_SEEN_BYTES}
MAX_API_BYTES = 1 << 22


class TransferRefused(Exception):
    """A Hub answer beyond its size limit or past the download's deadline (becomes a HubError)."""


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env)
    try:
        seconds = float(value) if value else default
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise HubError(f"{env}={value!r} is not a positive number of seconds")
    return seconds


def metadata_timeout(fallback: bool = False) -> float:
    """The metadata wait: HF_HUB_ETAG_TIMEOUT when set, else the default (shorter with a bundled fallback)."""
    return _seconds(METADATA_TIMEOUT_ENV, FALLBACK_METADATA_TIMEOUT if fallback else DEFAULT_METADATA_TIMEOUT)


def download_deadline() -> float:
    return _seconds(DEADLINE_ENV, DEFAULT_DEADLINE)


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
             force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None,
             require_manifest: bool = False, fallback: bool = False) -> Path:
    """Fetch a checkpoint repo into the huggingface_hub cache; returns its verified snapshot folder.

    Raises HubError when the Hub cannot deliver it (missing repo or revision, unreachable or not
    answering with no cached copy) and CheckpointError when what arrived is incomplete or fails
    its checksums. The messages carry the cause; the exceptions carry no chain.
    """
    where = f"{repo_id}@{revision or 'main'} ({constants.ENDPOINT})"
    try:
        wait = metadata_timeout(fallback)
        with _bounded_requests(wait, download_deadline()):
            folder = Path(snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(REPO_FILES),
                force_download=force_download, local_files_only=local_files_only, token=token,
                library_name="stc-zoo", etag_timeout=wait))
    except RevisionNotFoundError:
        raise HubError(f"{where}: no such revision (a branch, tag or commit of the repo)") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise HubError(f"{where}: no such repository, or it is private or gated (pass token=...)") from None
    except (LocalEntryNotFoundError, EntryNotFoundError, OSError) as err:
        raise HubError(f"{where}: {_why_not_downloaded(err, local_files_only)}") from None
    except TransferRefused as err:
        raise HubError(f"{where}: {err}") from None
    except (httpx2.HTTPError, ValueError, TypeError, KeyError, AttributeError, AssertionError) as err:
        # A transfer cut after huggingface_hub's retries, or an answer that is not the Hub's API.
        raise HubError(f"{where}: the Hub's answer could not be used ({_root_cause(err)})") from None
    if (folder / checksums.MANIFEST).is_file() or require_manifest:
        try:
            checksums.verify(folder)
        except CheckpointError as err:
            raise CheckpointError(f"{err}\n  downloaded from {where}; the copy is damaged: fetch it again with "
                                  "force_download=True") from None
    return folder


@contextlib.contextmanager
def _bounded_requests(seconds: float, deadline: float):
    """Bound every request huggingface_hub makes inside the block: ``seconds`` per connect and per
    read, ``deadline`` seconds for all of them together, and ``MAX_BYTES`` per file; until the server
    first answers, ``seconds`` for all requests together (huggingface_hub asks for an agent registry with
    a wait of its own before the repo's info: a server that never answers is not waited on twice).

    snapshot_download bounds its per-file requests (``etag_timeout``) but asks for the repo's
    info with no timeout at all, so a server that accepts and never answers would hang it; a
    request hook on huggingface_hub's own HTTP client fills in the missing bound. A response hook
    checks each answer's claimed size and wraps its body in a stream that counts bytes and time.
    """
    begun = time.monotonic()
    ends = begun + deadline
    answered = []  # set by the first response: until then, no request may start after ``seconds`` have passed

    def bound(request):
        now = time.monotonic()
        left = ends - now
        if left <= 0:  # retries after failures count against the deadline too
            raise TransferRefused(f"the download did not finish within {deadline:g} s ({DEADLINE_ENV} sets the limit)")
        if not answered:  # the server's first answer must come within ``seconds``, whatever is asked first
            left = min(left, seconds - (now - begun))
            if left <= 0:
                raise TransferRefused(f"the Hub did not answer within {seconds:g} s ({METADATA_TIMEOUT_ENV} sets the "
                                      "wait)")
        # No wait of this request may outlast the deadline; unset waits get ``seconds``.
        timeout = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {k: min(timeout.get(k) or seconds, left)
                                         for k in ("connect", "read", "write", "pool")}

    def guard(response):
        answered.append(True)
        path = response.request.url.path
        name = path.rsplit("/", 1)[-1] if "/resolve/" in path else "the API answer"
        limit = MAX_BYTES.get(name, MAX_API_BYTES)
        claimed = response.headers.get(constants.HUGGINGFACE_HEADER_X_LINKED_SIZE) or response.headers.get(
            "content-length")
        if claimed and claimed.isdigit() and int(claimed) > limit:
            raise TransferRefused(f"{name}: the server offers {int(claimed):,} bytes, more than a checkpoint's "
                                  f"{name} may hold ({limit:,})")
        response.stream = _GuardedStream(response.stream, name, limit, ends, deadline)

    # huggingface_hub replaces its shared client after a connection error (close_session), so the hooks
    # go on every client it builds meanwhile, through its client factory (huggingface_hub >= 1.0 has one,
    # and exposes no getter: the module's own variable holds it); the old factory comes back after.
    from huggingface_hub.utils import _http as hf_http

    previous = hf_http._GLOBAL_CLIENT_FACTORY

    def hooked():
        client = previous()
        client.event_hooks["request"].append(bound)
        client.event_hooks["response"].append(guard)
        return client

    set_client_factory(hooked)
    try:
        yield
    finally:
        set_client_factory(previous)


class _GuardedStream(httpx2.SyncByteStream):
    """A response body that stops with TransferRefused beyond ``limit`` bytes or past ``ends``."""

    def __init__(self, stream, name: str, limit: int, ends: float, deadline: float):
        self.stream, self.name, self.limit, self.ends, self.deadline = stream, name, limit, ends, deadline

    def __iter__(self):
        got = 0
        for chunk in self.stream:
            got += len(chunk)
            if got > self.limit:
                raise TransferRefused(f"{self.name}: the server sent more than {self.limit:,} bytes")
            if time.monotonic() > self.ends:
                raise TransferRefused(f"{self.name}: the download did not finish within {self.deadline:g} s "
                                      f"({got:,} bytes of it so far; {DEADLINE_ENV} sets the limit)")
            yield chunk

    def close(self) -> None:
        self.stream.close()


def _root_cause(err: BaseException) -> str:
    """The deepest cause of ``err``, or the deadline or size limit that stopped it."""
    while err.__cause__ or err.__context__:
        if isinstance(err, TransferRefused):
            break
        err = err.__cause__ or err.__context__
    return str(err) if isinstance(err, TransferRefused) else f"{type(err).__name__}: {str(err)[:160]}"


def _why_not_downloaded(err: Exception, local_files_only: bool) -> str:
    if local_files_only or constants.HF_HUB_OFFLINE:
        return "not in the cache, and downloads are off (HF_HUB_OFFLINE or local_files_only)"
    cause = err
    while cause.__cause__ or cause.__context__:
        cause = cause.__cause__ or cause.__context__
    kind = "did not answer in time" if "Timeout" in type(cause).__name__ else "cannot be reached"
    return f"the Hub {kind} and it is not in the cache ({type(cause).__name__}: {str(cause)[:120]})"


def zoo_folder(name: str, *, revision: str | None = None, **hub_kwargs) -> Path:
    """The checkpoint folder of zoo entry ``name``: its Hub repo, else the bundled copy.

    The bundled copy stands in only for the default revision: a pinned ``revision`` that cannot
    be fetched is an error, never a silent substitute.
    """
    entry = zoo.get_entry(name)
    try:
        return download(entry.hub_repo, revision=revision, require_manifest=True,
                        fallback=entry.bundled is not None and revision is None, **hub_kwargs)
    except HubError as err:
        if entry.bundled is None:
            raise WeightsUnavailableError(
                f"zoo model {name!r} ({entry.dataset}) has no trained weights here: none are bundled with this "
                f"package and the Hub could not deliver them ({err}). Train them with:\n    {entry.train_command}\n"
                f"or build an untrained model with stc_zoo.create_model({name!r}).") from None
        if revision is not None:
            raise
        if name not in _fallbacks_logged:
            _fallbacks_logged.add(name)
            log.warning("stc-zoo: loading the copy of %s bundled with the package, because %s", name, err)
    try:
        checksums.verify(entry.bundled)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; the installed package is damaged: reinstall stc-zoo") from None
    return entry.bundled


def checkpoint_folder(source: str | os.PathLike, **hub_kwargs) -> Path:
    """The local folder holding the checkpoint ``source`` names: a folder, a zoo name or a Hub repo id.

    ``hub_kwargs`` (revision, cache_dir, force_download, local_files_only, token) apply to the Hub.
    The folder comes back checked: config and weights present, checksums (where listed) matching.
    """
    text = str(source)
    parked = interrupted_swap(text) if text else None
    if parked is not None:  # a save was killed between the two renames of its fallback swap
        warnings.warn(f"{text}: missing, and a save over it was interrupted; loading the checkpoint it replaced, "
                      f"from {parked} (the next save there clears it)", stacklevel=2)
        text = str(parked)
    if os.path.isdir(text):
        folder = Path(text)
        require_files(folder)
        return folder
    if text in zoo.REGISTRY:
        folder = zoo_folder(text, **hub_kwargs)
    else:
        try:
            validate_repo_id(text)
            if "/" not in text:
                raise HFValidationError("no org/ part")
        except HFValidationError:
            raise CheckpointError(
                f"{text!r} is not a checkpoint folder, a zoo model{zoo.suggest(text)} or a Hub repo id (org/name); "
                f"zoo models: {', '.join(zoo.list_models())}") from None
        try:
            folder = download(text, **hub_kwargs)
        except HubError as err:
            raise HubError(f"{err}\n  (and there is no local folder {text!r})") from None
    require_files(folder, verify=False)  # download() and zoo_folder() verified it against its manifest
    return folder
