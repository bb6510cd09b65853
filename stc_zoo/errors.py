"""The package's own exception types: every failure a user can cause lands in one of these."""

import importlib.util
import sys
import warnings
from pathlib import Path

# The folders of the package's code (the kernels install as stc_zoo.kernels, but live beside it in a
# checkout), and torch's, whose decorators and Module.__call__ stand between a user's call and ours.
_OWN = tuple(str(p) for p in {Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "kernels"})
_BETWEEN = tuple(str(Path(spec.origin).parent) for spec in [importlib.util.find_spec("torch")] if spec and spec.origin)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the package, so the line Python prints
    with it is the user's own code, never a line of stc-zoo's."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the caller of warn()
    while frame is not None and frame.f_code.co_filename.startswith(_OWN + _BETWEEN):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class StcError(Exception):
    """Base class of every error stc-zoo raises on purpose."""


class EventFormatError(StcError, ValueError):
    """An event file or event array is malformed (names the file or field and the reason)."""


class InputError(StcError, ValueError):
    """A model input has the wrong rank, shape, dtype or values."""


class TooFewEventsWarning(UserWarning):
    """A recording holds fewer events than a decision needs (``InputConfig.min_events``): the
    prediction for it is no evidence of its class."""


class CheckpointError(StcError, ValueError):
    """A checkpoint folder is incomplete, corrupted or from an unknown format version."""


class WeightsUnavailableError(StcError, LookupError):
    """A zoo entry has no trained weights anywhere; the message names the training command."""


class HubError(StcError, OSError):
    """The Hub could not deliver a checkpoint: missing repo or revision, or unreachable with nothing cached."""


class DeviceError(StcError, RuntimeError):
    """A device or kernel backend that this machine cannot run (CUDA without a GPU, Triton on a CPU)."""


class UnknownModelError(StcError, KeyError):
    """A name that is no zoo entry (the message suggests close names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DatasetError(StcError, FileNotFoundError):
    """A dataset folder is missing, is not the dataset asked for, or could not be downloaded."""


class SimulationError(StcError, ValueError):
    """Frames, images or parameters a simulation cannot use (names the file or field and the reason)."""


class ExportError(StcError, RuntimeError):
    """A model that cannot be exported to the format asked for, or an export that failed its own check."""
