"""StcSNN: the network of DESIGN.md, with Hub I/O through huggingface_hub's ModelHubMixin."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from huggingface_hub import ModelHubMixin
from torch import nn

from . import hub
from .config import FORMAT_VERSION, StcConfig
from .errors import CheckpointError, InputError
from .kernels import ops
from .layers import MultiThresholdLIF, SynapticConvBlock

Events = np.ndarray | Sequence[np.ndarray]


class StcSNN(
    nn.Module,
    ModelHubMixin,
    library_name="stc-zoo",
    tags=["spiking-neural-network", "event-camera", "neuromorphic"],
    license="apache-2.0",
):
    """Spiking network on compressed event streams: SCBs with pooling, then a spiking classifier.

    ``forward`` takes ``[T, B, 2, H', W']`` synaptic current (``config.input_size``) and returns
    logits ``[B, num_classes]`` (mean over T). ``predict`` / ``predict_proba`` take raw events.

    ``backend`` picks the hot-path implementation (compression and the fused SCB tails):
    ``"auto"`` runs the Triton kernels on CUDA and the PyTorch references on CPU; ``"triton"`` or
    ``"torch"`` force one (``set_backend`` changes it later). It is a runtime choice, not saved.
    """

    def __init__(self, config: StcConfig, backend: str = "auto"):
        super().__init__()
        # A private copy: fuse_for_inference() edits it, the caller's object stays as it was.
        self.config = config = config.replace()
        self._hub_mixin_config = config
        self.checkpoint_folder: Path | None = None  # where from_pretrained found the weights
        self.compression = config.compression()
        lif = dict(K=config.K, v_th=config.v_th, tau_init=config.tau_init, reset=config.reset,
                   detach_reset=config.detach_reset, surrogate=config.surrogate, alpha=config.surrogate_alpha)
        blocks, c_in = [], 2
        for c_out in config.channels:
            blocks.append(SynapticConvBlock(c_in, c_out, config.kernel_size, config.k_t,
                                            folded=config.bn_folded, **lif))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2) if config.pool == "max" else nn.AvgPool2d(2)
        H, W = config.input_size
        features = c_in * (H >> len(blocks)) * (W >> len(blocks))
        self.dropout = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(features, config.hidden)
        self.lif = MultiThresholdLIF(config.hidden, **lif)
        self.fc2 = nn.Linear(config.hidden, config.num_classes)
        self.set_backend(backend)

    @property
    def backend(self) -> str:
        return self._backend

    def set_backend(self, backend: str) -> StcSNN:
        """Use ``"auto"``, ``"triton"`` or ``"torch"`` for compression and every SCB tail; returns self."""
        ops.check_backend(backend)
        self._backend = backend
        self.compression = dataclasses.replace(self.compression, backend=backend)
        for module in self.modules():
            if isinstance(module, MultiThresholdLIF):
                module.backend = backend
        return self

    # ------------------------------------------------------------------ inference
    def check_input(self, x: torch.Tensor) -> None:
        """Raise InputError unless ``x`` is a finite float ``[T, B, 2, H', W']`` on this model's device.

        Finiteness is not checked under ``torch.compile`` or CUDA-graph capture (it would sync).
        """
        c = self.config
        expected = (c.T, "B", 2, *c.input_size)
        if not isinstance(x, torch.Tensor):
            raise InputError(f"expected a tensor [T, B, 2, H, W] = {expected}, got {type(x).__name__}")
        if x.ndim != 5 or x.shape[0] != c.T or x.shape[2] != 2 or tuple(x.shape[3:]) != c.input_size:
            raise InputError(f"expected input [T, B, 2, H, W] = {expected}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"expected a floating-point input, got {x.dtype}")
        device = self.fc1.weight.device
        if x.device != device:
            raise InputError(f"input is on {x.device}, model on {device}")
        # The value check waits for the device, so it is skipped under torch.compile and during
        # CUDA-graph capture; rank, shape, dtype and device are checked there too.
        if torch.compiler.is_compiling() or (x.is_cuda and torch.cuda.is_current_stream_capturing()):
            return
        if not torch.isfinite(x).all():
            raise InputError("input holds NaN or Inf")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, 2, H', W']`` synaptic current -> ``[B, num_classes]`` logits."""
        self.check_input(x)
        x = x.to(self.fc1.weight.dtype)
        for block in self.blocks:
            x = block(x)
            x = self.pool(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        x = self.fc1(self.dropout(x.flatten(2)))
        return self.fc2(self.lif(x)).mean(0)

    def compress(self, events: Events) -> torch.Tensor:
        """Raw events (one array or a list) -> ``[T, B, 2, H', W']`` on the model's device."""
        batch = [events] if isinstance(events, np.ndarray) else list(events)
        return self.compression.batch(batch, device=self.fc1.weight.device)

    @torch.no_grad()
    def predict_proba(self, events: Events) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]`` for raw events (one array is a batch of 1)."""
        return torch.softmax(self(self.compress(events)), dim=-1)

    def predict(self, events: Events) -> torch.Tensor:
        """Predicted labels ``[B]`` for raw events."""
        return self.predict_proba(events).argmax(-1)

    @torch.no_grad()
    def forward_with_spikes(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Logits ``[B, classes]`` and the spike counts of every MT-LIF layer (name, ``[T, B, ...]`` on CPU)."""
        spikes, hooks = [], []
        for name, module in self.named_modules():
            if isinstance(module, MultiThresholdLIF):
                hooks.append(module.register_forward_hook(
                    lambda m, i, out, name=name: spikes.append((name, out.detach().float().cpu()))))
        try:
            logits = self(x)
        finally:
            for h in hooks:
                h.remove()
        return logits, spikes

    def fuse_for_inference(self) -> StcSNN:
        """Switch to eval mode and fold every BatchNorm into its conv; returns self."""
        self.eval()
        for block in self.blocks:
            block.fold_batchnorm()
        self.config.bn_folded = True
        return self

    # ------------------------------------------------------------------ Hub I/O
    def _save_pretrained(self, save_directory: Path) -> None:
        safetensors.torch.save_model(self, str(Path(save_directory) / hub.WEIGHTS_NAME),
                                     metadata={"format": "pt", "stc_zoo_format_version": str(FORMAT_VERSION)})

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
        device: torch.device | str | None = None,
        backend: str | None = None,
    ) -> StcSNN:
        """Load a checkpoint from a local folder, a zoo name (``"nmnist-t4"``) or a Hub repo id (``"org/name"``).

        Hub downloads go through huggingface_hub (its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``);
        ``revision``, ``cache_dir``, ``force_download``, ``local_files_only`` and ``token`` mean what
        they mean there. A zoo entry bundled with the package loads its bundled copy when the Hub
        cannot be reached (logged once). Files are checked against the folder's ``SHA256SUMS``; any
        mismatch between ``config.json`` and ``model.safetensors`` (missing, extra or mis-shaped
        tensors, a newer format version) is a CheckpointError naming the file. The model comes back
        in eval mode on ``device`` (CPU by default) with ``backend`` (``"auto"`` if None).
        """
        folder = hub.checkpoint_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir,
                                       force_download=force_download, local_files_only=local_files_only,
                                       token=token)
        return cls.from_folder(folder, device=device, backend=backend)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: torch.device | str | None = None,
                    backend: str | None = None) -> StcSNN:
        """Load ``folder/config.json`` + ``folder/model.safetensors`` (no Hub, no checksum check)."""
        folder = Path(folder)
        for name in (hub.CONFIG_NAME, hub.WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder / name}: missing (a checkpoint folder holds "
                                      f"{hub.CONFIG_NAME} and {hub.WEIGHTS_NAME})")
        model = cls(StcConfig.from_json_file(folder / hub.CONFIG_NAME), backend=backend or "auto")
        load_weights(model, folder / hub.WEIGHTS_NAME)
        model.checkpoint_folder = folder
        return model.to(device or "cpu").eval()


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into ``model`` exactly: every tensor present, none extra, shapes equal."""
    try:
        state = safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match the config's model: missing {missing}, unexpected {extra}")
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{path}: tensor shapes do not match the config's model: {wrong}")
    model.load_state_dict(state, strict=True)
