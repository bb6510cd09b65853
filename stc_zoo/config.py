"""What a checkpoint's ``config.json`` holds: the input pipeline, the network and the class names.

Every choice of the method (docs/DESIGN.md) is a field of one of two frozen sections:

* ``InputConfig``: events -> ``[T, B, 2, H', W']`` synaptic current (the compression's parameters);
* ``NetworkConfig``: the spiking network on that current (blocks, neurons, classifier).

``StcConfig`` composes them with the class names and is immutable: nothing about a checkpoint's
form (e.g. folded BatchNorm) lives here; that is read from the weights themselves.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from .errors import CheckpointError
from .kernels.compress_ref import SPLITS, pooled_size
from .layers import MultiThresholdLIF, TemporalMix

# Bump when a saved config or state dict changes meaning; loaders refuse newer versions.
# Version 1 was one flat object with a ``bn_folded`` field; ``_upgrade_v1`` reads it.
FORMAT_VERSION = 2
POOLS = ("max", "avg")
FITS = (None, "crop", "scale")


def _need(ok: bool, section: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{section}: {what}")


@dataclass(frozen=True)
class InputConfig:
    """Events -> ``[T, B, 2, H', W']``: the events of a ``(W, H)`` sensor are cut into ``T * ratio``
    fine bins ``split_by`` count, time or fixed duration (``"duration"``: steps of ``step_us``
    microseconds from the first event, the binning a stream can use), compressed ``ratio``:1 in
    time with weights ``decay ** age`` and sum-pooled ``spatial``:1 in space."""

    sensor_size: tuple[int, int] = (34, 34)
    T: int = 4
    ratio: int = 4
    split_by: str = "number"
    spatial: int = 1
    decay: float = 1.0
    step_us: int | None = None
    # Events from another (larger) camera, fitted onto sensor_size before compression, explicitly:
    # "crop" keeps a sensor_size window (centred, or at crop_origin); "scale" divides coordinates by
    # the smallest integer that fits the camera in, centred. source_size is that camera's (W, H).
    fit: str | None = None
    source_size: tuple[int, int] | None = None
    crop_origin: tuple[int, int] | None = None

    def __post_init__(self):
        # JSON and tonic give lists or (W, H, P); keep (W, H) tuples so configs compare equal.
        object.__setattr__(self, "sensor_size", tuple(int(v) for v in self.sensor_size)[:2])
        for name in ("source_size", "crop_origin"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name))[:2])
        _need(len(self.sensor_size) == 2 and min(self.sensor_size) > 0, "input",
              f"sensor_size must be (W, H) or (W, H, P), got {self.sensor_size}")
        _need(self.split_by in SPLITS, "input", f"split_by must be one of {SPLITS}, got {self.split_by!r}")
        for name in ("T", "ratio", "spatial"):
            value = getattr(self, name)
            _need(isinstance(value, int) and value >= 1, "input", f"{name} must be a positive integer, got {value!r}")
        _need(isinstance(self.decay, (int, float)) and 0.0 < self.decay <= 1.0, "input",
              f"decay must be in (0, 1], got {self.decay!r}")
        if self.split_by == "duration":
            _need(isinstance(self.step_us, int) and self.step_us >= self.ratio and self.step_us % self.ratio == 0,
                  "input", f"split_by 'duration' needs step_us, a positive multiple of ratio={self.ratio} "
                  f"(microseconds per step), got {self.step_us!r}")
        else:
            _need(self.step_us is None, "input",
                  f"step_us is only for split_by 'duration', not {self.split_by!r}")
        self._check_fit()

    def _check_fit(self) -> None:
        _need(self.fit in FITS, "input", f"fit must be one of {FITS[1:]} or null, got {self.fit!r}")
        if self.fit is None:
            _need(self.source_size is None and self.crop_origin is None, "input",
                  "source_size and crop_origin need fit ('crop' or 'scale')")
            return
        _need(self.source_size is not None and len(self.source_size) == 2 and min(self.source_size) > 0, "input",
              f"fit {self.fit!r} needs source_size, the camera's (W, H)")
        if self.fit == "crop":
            (W, H), (Ws, Hs) = self.sensor_size, self.source_size
            _need(Ws >= W and Hs >= H, "input", f"fit 'crop' takes a {W}x{H} window of a larger camera, "
                  f"not of {Ws}x{Hs}; use fit 'scale'")
            x0, y0 = self.crop_origin or ((Ws - W) // 2, (Hs - H) // 2)
            _need(0 <= x0 <= Ws - W and 0 <= y0 <= Hs - H, "input",
                  f"crop_origin {self.crop_origin} puts the {W}x{H} window outside the {Ws}x{Hs} camera")
        else:
            _need(self.crop_origin is None, "input", "crop_origin is for fit 'crop'")

    @property
    def camera_size(self) -> tuple[int, int]:
        """``(W, H)`` of the events this pipeline accepts: the camera's when fitted, else the sensor's."""
        return self.source_size if self.fit else self.sensor_size

    def fitting(self) -> tuple[int, int, int]:
        """``(factor, dx, dy)``: an event at (x, y) of the camera lands at (x // factor + dx, y // factor + dy)."""
        (W, H), (Ws, Hs) = self.sensor_size, self.camera_size
        if self.fit == "crop":
            x0, y0 = self.crop_origin or ((Ws - W) // 2, (Hs - H) // 2)
            return 1, -x0, -y0
        if self.fit == "scale":
            f = max(-(-Ws // W), -(-Hs // H))
            return f, (W - -(-Ws // f)) // 2, (H - -(-Hs // f)) // 2
        return 1, 0, 0

    @property
    def streamable(self) -> bool:
        """Whether steps can be cut as events arrive (fixed-duration binning)."""
        return self.split_by == "duration"

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H', W')`` of the compressed frames."""
        return pooled_size(self.sensor_size, self.spatial)


@dataclass(frozen=True)
class NetworkConfig:
    """One SynapticConvBlock per entry of ``channels``, each followed by 2x2 ``pool``ing, then
    ``Linear(hidden) -> MT-LIF -> Linear(num_classes)``; logits are the mean over the steps."""

    num_classes: int = 10
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

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(v) for v in self.channels))
        _need(isinstance(self.num_classes, int) and self.num_classes >= 2, "network",
              f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        for name in ("kernel_size", "hidden"):
            value = getattr(self, name)
            _need(isinstance(value, int) and value >= 1, "network", f"{name} must be a positive integer, got {value!r}")
        _need(self.kernel_size % 2 == 1, "network", f"kernel_size must be odd, got {self.kernel_size}")
        _need(len(self.channels) >= 1 and min(self.channels) >= 1, "network",
              f"channels must be positive, got {self.channels}")
        _need(self.pool in POOLS, "network", f"pool must be one of {POOLS}, got {self.pool!r}")
        _need(isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0, "network",
              f"dropout must be in [0, 1), got {self.dropout!r}")
        try:
            TemporalMix.check_args(self.k_t)
            MultiThresholdLIF.check_args(**self.neuron_kwargs())
        except (TypeError, ValueError) as err:
            raise ValueError(f"network: {err}") from None

    def neuron_kwargs(self) -> dict:
        """The MultiThresholdLIF arguments every spiking layer of the network shares."""
        return dict(K=self.K, v_th=self.v_th, tau_init=self.tau_init, reset=self.reset,
                    detach_reset=self.detach_reset, surrogate=self.surrogate, alpha=self.surrogate_alpha)


SECTIONS = {"input": InputConfig, "network": NetworkConfig}


@dataclass(frozen=True)
class StcConfig:
    """The input pipeline, the network and the class names of one model (immutable)."""

    input: InputConfig = field(default_factory=InputConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(str(v) for v in self.class_names))
        n = self.network.num_classes
        _need(not self.class_names or len(self.class_names) == n, "config",
              f"class_names has {len(self.class_names)} names for {n} classes")
        H, W = self.input.output_size
        blocks = len(self.network.channels)
        _need(min(H, W) >> blocks >= 1, "config",
              f"a {H}x{W} input cannot be pooled 2x2 {blocks} times; use fewer blocks or less spatial pooling")

    @property
    def labels(self) -> tuple[str, ...]:
        """A display name per class: ``class_names``, else the class indices."""
        return self.class_names or tuple(str(i) for i in range(self.network.num_classes))

    def replace(self, **changes) -> StcConfig:
        """A copy with fields changed by their plain names (``T=8``, ``channels=(16,)``, ``class_names=...``).

        Every field name is unique across the sections, so ``--set T=8`` needs no section prefix.
        """
        sections = {name: {} for name in SECTIONS}
        top = {}
        for key, value in changes.items():
            owner = next((s for s, cls in SECTIONS.items() if key in _field_names(cls)), None)
            if owner is not None:
                sections[owner][key] = value
            elif key == "class_names":
                top[key] = value
            else:
                raise ValueError(f"unknown config field {key!r}; known: {sorted(field_names())}")
        parts = {s: dataclasses.replace(getattr(self, s), **v) for s, v in sections.items() if v}
        return dataclasses.replace(self, **parts, **top)

    def to_dict(self) -> dict:
        """The ``config.json`` form (current format version)."""
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> StcConfig:
        """Strict inverse of ``to_dict`` (also reads format version 1); errors name ``source``."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{source}: format_version {version!r} is newer than this stc-zoo understands "
                                  f"({FORMAT_VERSION}); upgrade stc-zoo")
        if version == 1:
            data = _upgrade_v1(data)
        unknown = sorted(set(data) - {"input", "network", "class_names"})
        unknown += [f"{s}.{k}" for s, c in SECTIONS.items() for k in sorted(set(data.get(s, {})) - _field_names(c))]
        if unknown:
            raise CheckpointError(f"{source}: unknown config fields {unknown}")
        try:
            return cls(**{s: c(**data.get(s, {})) for s, c in SECTIONS.items()},
                       class_names=data.get("class_names", ()))
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


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def field_names() -> set[str]:
    """Every field ``StcConfig.replace`` accepts."""
    return set().union(*(_field_names(c) for c in SECTIONS.values()), {"class_names"})


def _upgrade_v1(flat: dict) -> dict:
    """Format 1 (one flat object) -> format 2 sections. Its ``bn_folded`` is dropped: the weights
    show whether BatchNorm is folded, and loading checks them against the config."""
    flat = dict(flat)
    flat.pop("bn_folded", None)
    # Unknown fields stay at the top level, where from_dict reports them.
    data = {k: v for k, v in flat.items() if k not in field_names() or k == "class_names"}
    data.update({s: {k: v for k, v in flat.items() if k in _field_names(c)} for s, c in SECTIONS.items()})
    return data
