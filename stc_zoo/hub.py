"""Where a checkpoint comes from: a local folder, a Hugging Face Hub repo, or a zoo name.

Downloads go through ``huggingface_hub.snapshot_download``: its cache, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT`` (mirrors), revisions and tokens all apply; there is no HTTP code here. A
downloaded folder is checked against the repo's ``SHA256SUMS`` before anything is loaded.

A zoo name resolves to its Hub repo. When the Hub cannot deliver it (no network, offline mode,
not published yet) and the package bundles that entry's checkpoint, the bundled copy is used
and the log says so once per entry and process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id

from . import checksums, zoo
from .errors import CheckpointError, HubError, WeightsUnavailableError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
# What a checkpoint repo holds; nothing else is downloaded.
REPO_FILES = (CONFIG_NAME, WEIGHTS_NAME, checksums.MANIFEST, CARD_NAME)

log = logging.getLogger("stc_zoo")
_fallbacks_logged: set[str] = set()


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
             force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None,
             require_manifest: bool = False) -> Path:
    """Fetch a checkpoint repo into the huggingface_hub cache; returns its verified snapshot folder.

    Raises HubError when the Hub cannot deliver it (missing repo or revision, unreachable with no
    cached copy) and CheckpointError when what arrived is incomplete or fails its checksums.
    """
    where = f"{repo_id}@{revision or 'main'} ({constants.ENDPOINT})"
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(REPO_FILES),
                                        force_download=force_download, local_files_only=local_files_only,
                                        token=token, library_name="stc-zoo"))
    except RevisionNotFoundError as err:
        raise HubError(f"{where}: no such revision (a branch, tag or commit of the repo)") from err
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise HubError(f"{where}: no such repository, or it is private or gated (pass token=...)") from err
    except (LocalEntryNotFoundError, EntryNotFoundError, OSError) as err:
        raise HubError(f"{where}: {_why_not_downloaded(err, local_files_only)}") from err
    if (folder / checksums.MANIFEST).is_file() or require_manifest:
        try:
            checksums.verify(folder)
        except CheckpointError as err:
            raise CheckpointError(f"{err}\n  downloaded from {where}; the copy is damaged: fetch it again with "
                                  "force_download=True") from None
    return folder


def _why_not_downloaded(err: Exception, local_files_only: bool) -> str:
    if local_files_only or constants.HF_HUB_OFFLINE:
        return "not in the cache, and downloads are off (HF_HUB_OFFLINE or local_files_only)"
    cause = err.__cause__ or err.__context__ or err
    return f"the Hub cannot be reached and it is not in the cache ({type(cause).__name__}: {str(cause)[:120]})"


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
                f"or build an untrained model with stc_zoo.create_model({name!r}).") from err
        if revision is not None:
            raise
        if name not in _fallbacks_logged:
            _fallbacks_logged.add(name)
            log.warning("stc-zoo: loading the copy of %s bundled with the package, because %s", name, err)
    checksums.verify(entry.bundled)
    return entry.bundled


def checkpoint_folder(source: str | os.PathLike, **hub_kwargs) -> Path:
    """The local folder holding the checkpoint ``source`` names: a folder, a zoo name or a Hub repo id.

    ``hub_kwargs`` (revision, cache_dir, force_download, local_files_only, token) apply to the Hub.
    """
    text = str(source)
    if os.path.isdir(text):
        folder = Path(text)
        if (folder / checksums.MANIFEST).is_file():
            checksums.verify(folder)
        return folder
    if text in zoo.REGISTRY:
        return zoo_folder(text, **hub_kwargs)
    try:
        validate_repo_id(text)
        if "/" not in text:
            raise HFValidationError("no org/ part")
    except HFValidationError:
        close = zoo.suggest(text)
        raise CheckpointError(
            f"{text!r} is not a checkpoint folder, a zoo model{close} or a Hub repo id (org/name); "
            f"zoo models: {', '.join(zoo.list_models())}") from None
    try:
        return download(text, **hub_kwargs)
    except HubError as err:
        raise HubError(f"{err}\n  (and there is no local folder {text!r})") from err.__cause__
