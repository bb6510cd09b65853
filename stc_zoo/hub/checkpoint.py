"""A checkpoint folder's config and weights, read and written strictly.

Strict means: the weights hold exactly the tensors of the config's network (none missing, none
extra, every shape equal) or nothing loads; nothing is unpickled (safetensors only). Writing
checks the same before it touches the folder, so a model that no longer matches its own config
(say, a swapped head) is refused instead of saved as a checkpoint that cannot load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from ..atomic import replace_atomically
from ..config import FORMAT_VERSION, StcConfig
from ..errors import CheckpointError
from . import checksums
from .files import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME


def require_files(folder: Path, verify: bool = True) -> None:
    """CheckpointError unless ``folder`` holds a config and weights and, if it has a manifest, they match it.

    ``verify=False`` skips the manifest, for a folder that was just verified where it came from.
    """
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder / name}: missing (a checkpoint folder holds {CONFIG_NAME} and "
                                  f"{WEIGHTS_NAME})")
    if verify and (folder / checksums.MANIFEST).is_file():
        checksums.verify(folder)


def read_config(folder: Path) -> StcConfig:
    return StcConfig.from_json_file(folder / CONFIG_NAME)


def check_state(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], what: str) -> None:
    """CheckpointError unless ``state`` has exactly ``expected``'s tensor names and shapes (tensors, or
    shape tuples as ``read_header`` gives them)."""
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{what}: tensors do not match the config's model: missing {missing}, unexpected {extra}")
    wrong = [f"{k} {_shape(state[k])} != {_shape(v)}" for k, v in expected.items() if _shape(state[k]) != _shape(v)]
    if wrong:
        raise CheckpointError(f"{what}: tensor shapes do not match the config's model: {wrong}")


def _shape(v) -> tuple[int, ...]:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)


def read_header(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's header alone (no tensor is read)."""
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (safetensors.SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


def check_header(shape_model: nn.Module, path: str | os.PathLike, fresh: tuple[str, ...] = ()) -> None:
    """CheckpointError unless the weights file at ``path`` holds exactly the tensors of ``shape_model``
    (a model built on the ``meta`` device: shapes, no memory), compared from the file's header, so a config
    that does not fit its weights is refused before the real model is allocated."""
    header = read_header(path)
    if hasattr(shape_model, "match_form"):
        shape_model.match_form(header)
    own = {k: tuple(v.shape) for k, v in shape_model.state_dict().items()}
    if fresh:
        header = {k: v for k, v in header.items() if not k.startswith(fresh)}
        header.update({k: v for k, v in own.items() if k.startswith(fresh)})
    check_state(own, header, str(path))


def load_weights(module: nn.Module, path: str | os.PathLike, fresh: tuple[str, ...] = ()) -> None:
    """Load a safetensors file into ``module`` exactly (``check_state``), in the file's form.

    A module with ``match_form(state)`` (``StcNetwork``) first takes the form the file was saved
    in (BatchNorm folded or not). Tensors whose names start with a prefix in ``fresh`` (a new
    head) keep the module's own initial values; every other tensor must match exactly.
    """
    try:
        state = safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    if hasattr(module, "match_form"):
        module.match_form(state)
    own = module.state_dict()
    if fresh:
        state = {k: v for k, v in state.items() if not k.startswith(fresh)}
        state.update({k: v for k, v in own.items() if k.startswith(fresh)})
    check_state(own, state, str(path))
    module.load_state_dict(state, strict=True)


def write(folder: Path, network: nn.Module, config: StcConfig, fresh: nn.Module) -> None:
    """Write ``config.json``, ``model.safetensors`` and ``SHA256SUMS`` of ``network`` into ``folder``.

    ``fresh`` is a network built from ``config`` alone; ``network`` must have its tensors (in the
    same form), or CheckpointError is raised and nothing is written. A stale model card is
    removed: the card of a save describes that save (``StcSNN.save_pretrained`` writes it).
    """
    state = network.state_dict()
    if hasattr(fresh, "match_form"):
        fresh.match_form(state)
    check_state(fresh.state_dict(), state, f"{folder}: refusing to save a model that does not match its config")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {"format": "pt", "stc_zoo_format_version": str(FORMAT_VERSION)}
    replace_atomically(folder / WEIGHTS_NAME, lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata=meta))
    text = json.dumps(config.to_dict(), indent=2) + "\n"
    replace_atomically(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    checksums.write(folder)
    (folder / CARD_NAME).unlink(missing_ok=True)
