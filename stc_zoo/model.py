"""StcSNN: the predictor users load. It puts the input pipeline in front of the network.

* ``pipeline``: a ``SpatioTemporalCompression`` (checks events, compresses them to
  ``[T, B, 2, H', W']``);
* ``network``: an ``StcNetwork`` (a plain ``nn.Module`` on that current);
* Hub I/O through huggingface_hub's ``ModelHubMixin`` hooks (``_from_pretrained``,
  ``_save_pretrained``, ``generate_model_card``), so ``save_pretrained`` and ``push_to_hub`` write
  the same checked folder (config, weights, ``SHA256SUMS``, a real model card) that
  ``hub/publish.py`` validates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelHubMixin
from safetensors import SafetensorError
from torch import nn

from .atomic import replace_folder_atomically
from .config import StcConfig, field_names
from .errors import CheckpointError, InputError, TooFewEventsWarning, warn
from .hub import checkpoint
from .hub.card import render_card
from .hub.files import REPO_FILES, WEIGHTS_NAME
from .hub.provenance import Provenance, provenance_card
from .hub.resolve import checkpoint_folder
from .hub.seen import Seen, read_seen
from .kernels import ops
from .network import StcNetwork
from .stream import MAX_GAP_US, ContinuousSession, StreamSession
from .transforms import SpatioTemporalCompression
from .zoo import get_entry

Events = np.ndarray | Sequence[np.ndarray]
log = logging.getLogger("stc_zoo")

# Config fields ``from_pretrained`` may give new values: a new ``num_classes`` re-initialises the
# head (fc2); the others change no trained tensor's shape (input timing, dropout, training-only
# neuron settings). Any other field would not fit the trained weights.
OVERRIDABLE = ("num_classes", "class_names", "dropout", "T", "ratio", "decay", "split_by", "step_us",
               "surrogate", "surrogate_alpha", "detach_reset", "fit", "source_size", "crop_origin")
HEAD = ("fc2.",)


def override(config: StcConfig, changes: dict) -> tuple[StcConfig, tuple[str, ...]]:
    """``config`` with ``changes`` for a checkpoint being loaded, and the tensor-name prefixes to
    initialise fresh (the head, when ``num_classes`` changes). InputError for a field that cannot
    change under trained weights, or a value the field cannot take."""
    if not changes:
        return config, ()
    unknown = sorted(set(changes) - field_names())
    if unknown:
        raise InputError(f"unknown config fields {unknown}; a loaded model can take new {list(OVERRIDABLE)}")
    refused = sorted(set(changes) - set(OVERRIDABLE))
    if refused:
        raise InputError(f"cannot change {refused} when loading trained weights (they set the shapes of trained "
                         f"tensors); a loaded model can take new {list(OVERRIDABLE)}. For another architecture "
                         "build it with StcSNN(config) and train it")
    changes = dict(changes)
    n = changes.get("num_classes", config.network.num_classes)
    if n != config.network.num_classes and "class_names" not in changes:
        changes["class_names"] = ()  # the old names do not fit the new classes: labels become indices
    try:
        new = config.replace(**changes)
    except (TypeError, ValueError) as err:
        raise InputError(f"config override: {err}") from None
    return new, (HEAD if new.network.num_classes != config.network.num_classes else ())


class StcSNN(
    nn.Module,
    ModelHubMixin,
    library_name="stc-zoo",
    tags=["spiking-neural-network", "event-camera", "neuromorphic"],
    license="apache-2.0",
):
    """Raw events in, classes out: ``pipeline`` (events -> ``[T, B, 2, H', W']``) then ``network``.

    ``forward`` takes the compressed current and returns logits ``[B, num_classes]`` (mean over
    T); ``predict`` / ``predict_proba`` take raw events. ``backend`` picks the hot-path
    implementation (compression and the fused SCB tails): ``"auto"`` runs the Triton kernels on
    CUDA and the PyTorch references on CPU; ``"triton"`` or ``"torch"`` force one
    (``set_backend`` changes it later). It is a runtime choice, not saved.
    """

    def __init__(self, config: StcConfig, backend: str = "auto"):
        super().__init__()
        self.config = config  # frozen: nothing below changes it
        self.checkpoint_folder: Path | None = None  # where from_pretrained found the weights
        self.provenance: Provenance | None = None  # what they were, for the card of a saved copy
        # What the weights were trained on (stc_zoo/hub/seen.py): read with them, set by training.
        self.trained_on: Seen | None = None
        self.pipeline = SpatioTemporalCompression.from_config(config.input, backend)
        # A duration-binned model takes any number of steps (a stream has no fixed length).
        steps = None if config.input.streamable else config.input.T
        self.network = StcNetwork(config.network, config.input.output_size, steps=steps, backend=backend)

    @property
    def backend(self) -> str:
        return self.pipeline.backend

    @property
    def device(self) -> torch.device:
        return self.network.device

    def set_backend(self, backend: str) -> StcSNN:
        """Use ``"auto"``, ``"triton"`` or ``"torch"`` for compression and every SCB tail; returns self."""
        self.network.set_backend(backend)
        self.pipeline.backend = backend
        return self

    # ------------------------------------------------------------------ inference
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, 2, H', W']`` synaptic current -> ``[B, num_classes]`` logits."""
        return self.network(x)

    def compress(self, events: Events, sources: Sequence[str] | None = None) -> torch.Tensor:
        """Raw events (one array or a list) -> ``[T, B, 2, H', W']`` on the model's device. ``sources``
        names each recording in error messages (e.g. its file; ``events[i]`` by default)."""
        return self.pipeline.batch(as_batch(events), device=self.device, sources=sources)

    @torch.no_grad()
    def predict_proba(self, events: Events, sources: Sequence[str] | None = None) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]`` for raw events (one array is a batch of 1).

        A recording with fewer than ``config.input.min_events`` events gets a ``TooFewEventsWarning``
        naming it: its row is computed, but says nothing of its class."""
        batch = as_batch(events)
        names = [f"events[{i}]" for i in range(len(batch))] if sources is None else list(sources)
        minimum = self.config.input.min_events
        for name, e in zip(names, batch):
            if isinstance(e, np.ndarray) and e.ndim == 1 and len(e) < minimum:
                warn(f"{name}: {len(e)} events, fewer than the {minimum} this model needs for a decision "
                     f"(T * ratio = {minimum} fine bins); its prediction is no evidence of a class", TooFewEventsWarning)
        return torch.softmax(self(self.compress(batch, names)), dim=-1)

    def predict(self, events: Events, sources: Sequence[str] | None = None) -> torch.Tensor:
        """Predicted labels ``[B]`` for raw events (warnings as ``predict_proba``)."""
        return self.predict_proba(events, sources).argmax(-1)

    def stream(self, threshold: float | None = None, min_steps: int = 1, record_spikes: bool = False,
               origin_us: int | None = None, max_gap_us: int = MAX_GAP_US, max_steps: int | None = None) -> StreamSession:
        """A streaming session (``stc_zoo.stream.StreamSession``): push packets of events, get each
        completed step's output and a decision once ``threshold`` / ``min_steps`` hold. Needs a
        duration-binned model (``config.input.split_by == "duration"``). One push may move the stream
        at most ``max_gap_us`` ahead (60 s by default); a larger jump is an EventFormatError. ``max_steps``:
        decide at that step at the latest (a deadline)."""
        return StreamSession(self, threshold, min_steps, record_spikes, origin_us, max_gap_us, max_steps)

    def stream_continuous(self, hop: int | None = None, origin_us: int | None = None,
                          max_gap_us: int = MAX_GAP_US) -> ContinuousSession:
        """Decisions on an endless stream (``stc_zoo.stream.ContinuousSession``): every ``hop`` steps
        (default T), one decision over the last T steps, each window from rest and exact against the
        offline prediction on that window. Needs a duration-binned model."""
        return ContinuousSession(self, hop, origin_us, max_gap_us)

    def warmup(self) -> StcSNN:
        """Compile (or load from Numba's disk cache) the kernels this model's predictions and streaming
        sessions run, and let ``backend="auto"`` use the CPU fast path from now on in this process; returns
        self. Kernels compile on first use anyway (and load from the cache in later processes); a warm-up
        moves that cost to a moment of your choosing, and fills the cache for every later process (``stc-zoo
        warmup`` at an image's build time), so that the one-shot commands (``stc-zoo predict``, ``show``,
        ``stream FILE``), which run the PyTorch reference rather than compile, get the fast path."""
        from .data import synthetic_events

        ops.allow_compile()
        events = synthetic_events(self.config.input.sensor_size, 4 * self.config.input.min_events, seed=0)
        with torch.no_grad():
            self.predict(events)
            if self.config.input.streamable:  # a session's step-by-step kernels too
                self.stream().push(events)
        return self

    def fuse_for_inference(self) -> StcSNN:
        """Switch to eval mode and fold every BatchNorm into its conv; returns self."""
        self.eval()
        self.network.fold_batchnorm()
        return self

    # ------------------------------------------------------------------ Hub I/O
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **model_kwargs,
    ) -> StcSNN:
        """Load a checkpoint from a local folder, a zoo name (``"nmnist-t4"``) or a Hub repo id (``"org/name"``).

        Hub downloads go through huggingface_hub (its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``,
        ``HF_HUB_ETAG_TIMEOUT``); ``revision``, ``cache_dir``, ``force_download``,
        ``local_files_only`` and ``token`` mean what they mean there. A zoo entry bundled with the
        package loads its bundled copy when the Hub cannot deliver it (logged once). Files are
        checked against the folder's ``SHA256SUMS``; any mismatch between ``config.json`` and
        ``model.safetensors`` is a CheckpointError naming the file. ``model_kwargs``:
        ``device`` (CPU by default), ``backend`` (``"auto"`` by default) and config overrides for
        fine-tuning (``OVERRIDABLE``): ``num_classes=5, class_names=[...]`` keeps the trained
        backbone and puts a freshly initialised head on it (logged); ``dropout``, ``T``, ``ratio``,
        ... change no trained tensor. The returned model's ``config`` has the overrides, so
        ``save_pretrained`` -> ``from_pretrained`` round-trips. The model comes back in eval mode.

        This resolves zoo names (which huggingface_hub does not know) to a verified local folder,
        then hands that folder to the mixin's own ``from_pretrained``, which calls ``_from_pretrained``.
        """
        # A device or backend this machine lacks is refused before any download.
        model_kwargs["device"] = runtime(model_kwargs.get("device"), model_kwargs.get("backend"))
        folder = checkpoint_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir,
                                   force_download=force_download, local_files_only=local_files_only, token=token)
        # Parsed strictly here and handed on, so the mixin passes our config instead of decoding the JSON its way.
        return super().from_pretrained(folder, config=checkpoint.read_config(folder), **model_kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, config: StcConfig, device: torch.device, backend: str | None = None,
                         **kwargs) -> StcSNN:
        """The mixin's hook: build the model of ``config`` (with any overrides in ``kwargs``) and load
        the weights of ``model_id`` (a checked folder)."""
        hub = ("revision", "cache_dir", "force_download", "proxies", "resume_download", "local_files_only", "token")
        overrides = {k: v for k, v in kwargs.items() if k not in hub}
        return cls._load(Path(model_id), config, device, backend, overrides)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: torch.device | str | None = None,
                    backend: str | None = None, **overrides) -> StcSNN:
        """Load ``folder/config.json`` + ``folder/model.safetensors`` strictly (checksums verified if listed);
        ``overrides`` as in ``from_pretrained``."""
        folder = Path(folder)
        device = runtime(device, backend)
        checkpoint.require_files(folder)
        return cls._load(folder, checkpoint.read_config(folder), device, backend, overrides)

    @classmethod
    def _load(cls, folder: Path, config: StcConfig, device: torch.device, backend: str | None,
              overrides: dict | None = None) -> StcSNN:
        """The model of ``config`` (with ``overrides``) with the weights of a checked ``folder``, in eval
        mode on ``device``."""
        new, fresh = override(config, overrides or {})
        with torch.device("meta"):  # shapes only: the weights file's header is checked before any allocation
            shapes = StcNetwork(new.network, new.input.output_size)
        checkpoint.check_header(shapes, folder / WEIGHTS_NAME, fresh)
        model = cls(new, backend=backend or "auto")
        checkpoint.load_weights(model.network, folder / WEIGHTS_NAME, fresh)
        if fresh:
            log.warning("stc-zoo: %s: trained backbone with a new head for %d classes (initialised at random: "
                        "train it before use)", folder.name, new.network.num_classes)
        model.checkpoint_folder = folder
        model.provenance = Provenance.of(folder, config, model.network)
        model.trained_on = read_seen(folder)
        return model.to(device).eval()

    def save_pretrained(self, save_directory: str | os.PathLike, *, config: dict | None = None,
                        repo_id: str | None = None, push_to_hub: bool = False,
                        model_card_kwargs: dict | None = None, **push_to_hub_kwargs) -> str | None:
        """The mixin's ``save_pretrained``, written into a temporary folder beside ``save_directory`` and
        swapped in whole (``stc_zoo.atomic.replace_folder_atomically``): a kill at any moment leaves the
        old checkpoint or the new one there, never neither (or, where the kernel cannot exchange two folders,
        the old one parked at ``.<name>.previous``, which loading reads). Other files in the folder stay.

        Without ``model_card_kwargs``, a model loaded with ``from_pretrained`` keeps its provenance: an
        unchanged copy keeps the source's card (and its result), an edited one gets a card naming the
        source and what changed, with no result (``stc_zoo.hub.provenance``).
        """
        target = Path(save_directory)
        self._save_target = target
        existed = (target / WEIGHTS_NAME).is_file()
        try:
            replace_folder_atomically(target, lambda tmp: ModelHubMixin.save_pretrained(
                self, tmp, config=config, model_card_kwargs=model_card_kwargs), keep=lambda name: name not in REPO_FILES)
        except (SafetensorError, OSError) as err:  # a full disk, a read-only folder, a quota
            raise CheckpointError(f"{target}: the checkpoint could not be saved ({type(err).__name__}: {err}); "
                                  + ("the checkpoint already there is untouched" if existed else "nothing was left there")
                                  ) from err
        finally:
            self._save_target = None
        if push_to_hub:
            return self.push_to_hub(repo_id=repo_id or target.name, model_card_kwargs=model_card_kwargs,
                                    **push_to_hub_kwargs)
        return None

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """The mixin's ``push_to_hub`` (the folder ``save_pretrained`` writes, uploaded), its card naming ``repo_id``."""
        self._push_repo = repo_id
        try:
            return ModelHubMixin.push_to_hub(self, repo_id, **kwargs)
        finally:
            self._push_repo = None

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's hook: config, weights and ``SHA256SUMS``, refused if the model does not match its config."""
        fresh = StcNetwork(self.config.network, self.config.input.output_size)
        checkpoint.write(Path(save_directory), self.network, self.config, fresh)
        # What the weights saw travels with them while they are the ones loaded (a copy, BatchNorm folded, a
        # new head); weights trained or edited since loading saw more than it says, so it is not written.
        changed = self.provenance is not None and any(
            c.startswith("weights changed") for c in self.provenance.changes(self.config, self.network))
        if self.trained_on is not None and not changed:
            self.trained_on.write(save_directory)

    def generate_model_card(self, *args, name: str | None = None, **card: object) -> ModelCard:
        """The model card ``save_pretrained`` and ``push_to_hub`` write (``model_card_kwargs``).

        ``card`` takes ``render_card``'s arguments: ``dataset``, ``data_note``, ``result`` (a
        ``CardResult``; a card without one states no accuracy and cannot be published), ``command``,
        ``extra``.
        """
        target = getattr(self, "_save_target", None)
        # a card pushed to the Hub names its repo, not the temporary folder the mixin saves into first
        target = getattr(self, "_push_repo", None) or target
        if not card and name is None and self.provenance is not None and target is not None:
            text = provenance_card(self.provenance, Path(target), self.config, self.network)
            if text is not None:
                return ModelCard(text)
        default = str(target) if target is not None else "stc-zoo model"
        text = render_card(name or default, self.config, bn_folded=self.network.bn_folded, **card)
        return ModelCard(text)


def as_batch(events: Events) -> list[np.ndarray]:
    """One event array or a sequence of them -> a non-empty list; InputError for anything else."""
    if isinstance(events, np.ndarray):
        if events.dtype.names is None:
            raise InputError(f"expected an event array (fields x, y, t, p) or a list of them, got a plain "
                             f"{events.dtype} array of shape {events.shape}")
        return [events]
    if events is None or isinstance(events, (str, bytes, os.PathLike)) or not isinstance(events, Sequence):
        hint = " (read a file first: stc_zoo.data.read_event_file(path))" if isinstance(events, (str, os.PathLike)) else ""
        raise InputError(f"expected an event array or a list of them, got {type(events).__name__}{hint}")
    if not len(events):
        raise InputError("expected at least one recording, got an empty list")
    return list(events)


def runtime(device: torch.device | str | None, backend: str | None) -> torch.device:
    """The device to load onto; DeviceError when this machine lacks it or cannot run ``backend`` there
    (e.g. ``"triton"`` on a CPU), before any work is done."""
    device = ops.resolve_device(device)
    ops.resolve_backend(backend or "auto", device)
    return device


def create_model(name: str, backend: str = "auto") -> StcSNN:
    """A freshly initialised (untrained) StcSNN with zoo entry ``name``'s config."""
    return StcSNN(get_entry(name).config, backend=backend)
