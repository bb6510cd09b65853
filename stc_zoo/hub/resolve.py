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
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id

from .. import zoo
from ..errors import CheckpointError, HubError, WeightsUnavailableError
from . import checksums
from .checkpoint import require_files
from .files import REPO_FILES

log = logging.getLogger("stc_zoo")
_fallbacks_logged: set[str] = set()

# Seconds each Hub request may wait for the server, so an endpoint that accepts connections but
# never answers cannot stall a load: huggingface_hub's own HF_HUB_ETAG_TIMEOUT (metadata) and
# HF_HUB_DOWNLOAD_TIMEOUT (transfers) set them; unset, metadata gets 3 s (a zoo entry's bundled
# copy is then used within seconds) and transfers huggingface_hub's default.
METADATA_TIMEOUT_ENV, DEFAULT_METADATA_TIMEOUT = "HF_HUB_ETAG_TIMEOUT", 3.0


def metadata_timeout() -> float:
    value = os.environ.get(METADATA_TIMEOUT_ENV)
    try:
        return float(value) if value else DEFAULT_METADATA_TIMEOUT
    except ValueError:
        raise HubError(f"{METADATA_TIMEOUT_ENV}={value!r} is not a number of seconds") from None


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
             force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None,
             require_manifest: bool = False) -> Path:
    """Fetch a checkpoint repo into the huggingface_hub cache; returns its verified snapshot folder.

    Raises HubError when the Hub cannot deliver it (missing repo or revision, unreachable or not
    answering with no cached copy) and CheckpointError when what arrived is incomplete or fails
    its checksums. The messages carry the cause; the exceptions carry no chain.
    """
    where = f"{repo_id}@{revision or 'main'} ({constants.ENDPOINT})"
    try:
        with _bounded_requests(metadata_timeout()):
            folder = Path(snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(REPO_FILES),
                force_download=force_download, local_files_only=local_files_only, token=token,
                library_name="stc-zoo", etag_timeout=metadata_timeout()))
    except RevisionNotFoundError:
        raise HubError(f"{where}: no such revision (a branch, tag or commit of the repo)") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise HubError(f"{where}: no such repository, or it is private or gated (pass token=...)") from None
    except (LocalEntryNotFoundError, EntryNotFoundError, OSError) as err:
        raise HubError(f"{where}: {_why_not_downloaded(err, local_files_only)}") from None
    if (folder / checksums.MANIFEST).is_file() or require_manifest:
        try:
            checksums.verify(folder)
        except CheckpointError as err:
            raise CheckpointError(f"{err}\n  downloaded from {where}; the copy is damaged: fetch it again with "
                                  "force_download=True") from None
    return folder


@contextlib.contextmanager
def _bounded_requests(seconds: float):
    """Bound every request huggingface_hub makes inside the block by ``seconds`` per connect and
    per read (a read timeout limits the wait between bytes, not a whole transfer).

    snapshot_download bounds its per-file requests (``etag_timeout``) but asks for the repo's
    info with no timeout at all, so a server that accepts and never answers would hang it; a
    request hook on huggingface_hub's own HTTP client fills in the missing bound.
    """
    from huggingface_hub.utils import get_session

    def bound(request):
        timeout = request.extensions.get("timeout") or {}
        if timeout.get("connect") is None or timeout.get("read") is None:
            request.extensions["timeout"] = {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}

    hooks = get_session().event_hooks["request"]
    hooks.append(bound)
    try:
        yield
    finally:
        hooks.remove(bound)


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
        return download(entry.hub_repo, revision=revision, require_manifest=True, **hub_kwargs)
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
