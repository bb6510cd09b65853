"""The configuration of an StcSNN: every choice of DESIGN.md is a field here."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from .errors import CheckpointError
from .kernels.compress_ref import pooled_size
from .kernels.scb_tail_ref import RESETS
from .kernels.surrogate import SURROGATES
from .transforms import SpatioTemporalCompression

# Bump when a saved config or state dict changes meaning; loaders refuse newer versions.
FORMAT_VERSION = 1
POOLS = ("max", "avg")


@dataclass
class StcConfig:
    """Architecture and input pipeline of an StcSNN.

    Input pipeline (events -> ``[T, B, 2, H', W']``): ``sensor_size`` is ``(W, H)``; the events are
    cut into ``T * ratio`` fine bins ``split_by`` count or time, compressed ``ratio``:1 in time with
    weights ``decay ** age`` and sum-pooled ``spatial``:1 in space.
    Network: one SynapticConvBlock per entry of ``channels``, each followed by 2x2 ``pool``ing, then
    ``Linear(hidden) -> MT-LIF -> Linear(num_classes)``; logits are the mean over the T steps.
    """

    sensor_size: tuple[int, int] = (34, 34)
    num_classes: int = 10
    class_names: tuple[str, ...] = ()
    # spatio-temporal compression
    T: int = 4
    ratio: int = 4
    split_by: str = "number"
    spatial: int = 1
    decay: float = 1.0
    # network
    channels: tuple[int, ...] = (32, 64)
    kernel_size: int = 3
    pool: str = "max"
    hidden: int = 128
    dropout: float = 0.0
    k_t: int = 2
    # MT-LIF neurons
    K: int = 4
    v_th: float = 1.0
    tau_init: float = 2.0
    reset: str = "soft"
    detach_reset: bool = False
    surrogate: str = "rectangular"
    surrogate_alpha: float = 1.0
    # checkpoint form
    bn_folded: bool = False
    format_version: int = field(default=FORMAT_VERSION)

    def __post_init__(self):
        # JSON gives lists; keep tuples so configs compare and hash the same after a round trip.
        self.sensor_size = tuple(int(v) for v in self.sensor_size)
        self.channels = tuple(int(v) for v in self.channels)
        self.class_names = tuple(str(v) for v in self.class_names)
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, what: str):
            if not ok:
                raise ValueError(f"StcConfig: {what}")

        need(len(self.sensor_size) == 2 and min(self.sensor_size) > 0, f"sensor_size must be (W, H), got {self.sensor_size}")
        need(self.num_classes >= 2, f"num_classes must be >= 2, got {self.num_classes}")
        need(not self.class_names or len(self.class_names) == self.num_classes,
             f"class_names has {len(self.class_names)} names for {self.num_classes} classes")
        self.compression()  # validates T, ratio, split_by, spatial, decay
        for name in ("kernel_size", "hidden", "k_t", "K"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.kernel_size % 2 == 1, f"kernel_size must be odd, got {self.kernel_size}")
        need(len(self.channels) >= 1 and min(self.channels) >= 1, f"channels must be positive, got {self.channels}")
        need(self.pool in POOLS, f"pool must be one of {POOLS}, got {self.pool!r}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.v_th > 0, f"v_th must be > 0, got {self.v_th}")
        need(self.tau_init > 1, f"tau_init must be > 1, got {self.tau_init}")
        need(self.reset in RESETS, f"reset must be one of {RESETS}, got {self.reset!r}")
        need(self.surrogate in SURROGATES, f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        need(self.surrogate_alpha > 0, f"surrogate_alpha must be > 0, got {self.surrogate_alpha}")
        H, W = self.input_size
        need(min(H, W) >> len(self.channels) >= 1,
             f"a {H}x{W} input cannot be pooled 2x2 {len(self.channels)} times; use fewer blocks or less spatial pooling")

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H', W')`` of the compressed frames the network takes."""
        return pooled_size(self.sensor_size, self.spatial)

    def compression(self) -> SpatioTemporalCompression:
        """The transform from events to this config's ``[T, 2, H', W']`` network input."""
        return SpatioTemporalCompression(self.sensor_size, self.T, self.ratio, self.split_by, self.spatial, self.decay)

    def replace(self, **changes) -> StcConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> StcConfig:
        """Strict inverse of ``to_dict``: unknown fields or a newer format version are errors."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: format_version {version!r} is newer than this stc-zoo understands "
                f"({FORMAT_VERSION}); upgrade stc-zoo"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{source}: unknown config fields {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: {err}") from None

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> StcConfig:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: cannot read config ({err})") from None
        return cls.from_dict(data, source=str(path))
