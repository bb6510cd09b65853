"""stc-zoo: spiking neural networks for event cameras with spatio-temporal compression.

Public surface: ``StcSNN`` (the predictor: ``from_pretrained``, ``predict``, ``compress``),
``StcConfig`` with its ``InputConfig`` and ``NetworkConfig`` sections, ``StcNetwork`` (the network
alone), ``SpatioTemporalCompression``, ``create_model``, ``list_models`` and the error types. The
layers (``stc_zoo.layers``) and ops (``stc_zoo.kernels.ops``) are public building blocks.

Names load on first use, so ``import stc_zoo.layers`` costs torch alone (no tonic, no
huggingface_hub).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:  # one version number: pyproject.toml's, through the installed package's metadata
    __version__ = version("stc-zoo")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "StcSNN": "model", "create_model": "model",
    "StcConfig": "config", "InputConfig": "config", "NetworkConfig": "config",
    "StcNetwork": "network",
    "SpatioTemporalCompression": "transforms",
    "list_models": "zoo",
    **{name: "errors" for name in ("StcError", "EventFormatError", "InputError", "CheckpointError",
                                    "WeightsUnavailableError", "HubError", "DeviceError", "UnknownModelError",
                                    "DatasetError", "SimulationError", "ExportError")},
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stc_zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
