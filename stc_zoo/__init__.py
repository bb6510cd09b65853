"""stc-zoo: spiking neural networks for event cameras with spatio-temporal compression.

Public surface: ``StcSNN``, ``StcConfig``, ``SpatioTemporalCompression``, ``create_model``,
``list_models`` and the error types. Everything else is importable but internal.
"""

from .config import StcConfig
from .errors import CheckpointError, EventFormatError, HubError, InputError, StcError, WeightsUnavailableError
from .model import StcSNN
from .transforms import SpatioTemporalCompression
from .zoo import create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "StcSNN", "StcConfig", "SpatioTemporalCompression", "create_model", "list_models",
    "StcError", "EventFormatError", "InputError", "CheckpointError", "WeightsUnavailableError", "HubError",
]
