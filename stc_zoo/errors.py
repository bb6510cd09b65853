"""The package's own exception types: every failure a user can cause lands in one of these."""


class StcError(Exception):
    """Base class of every error stc-zoo raises on purpose."""


class EventFormatError(StcError, ValueError):
    """An event file or event array is malformed (names the file or field and the reason)."""


class InputError(StcError, ValueError):
    """A model input has the wrong rank, shape, dtype or values."""


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
