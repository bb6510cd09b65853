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
import math
import numbers
import os
from dataclasses import dataclass, field

from .errors import CheckpointError
from .kernels.compress_ref import SPLITS, pooled_size
from .layers import MultiThresholdLIF, TemporalMix

# Bump when a saved config or state dict changes meaning; loaders refuse newer versions.
# Version 1 was one flat object with a ``bn_folded`` field; ``_upgrade_v1`` reads it.
FORMAT_VERSION = 2
MAX_CONFIG_BYTES = 1 << 16
POOLS = ("max", "avg", "sum")
FITS = (None, "crop", "scale")

# Bounds on what a config may ask for, so a hostile or mistyped config.json is refused before
# anything is allocated (docs/DESIGN.md, "Input from outside"). Each is far beyond any
# zoo architecture or event camera (the largest sensors are about 1280x960).
LIMITS = {
    "sensor_size": 8192,  # per side, also source_size
    "T": 1024, "ratio": 1024, "spatial": 256,
    "channels": 4096,  # per block; at most 16 blocks
    "blocks": 16, "hidden": 65536, "kernel_size": 31, "k_t": 64, "K": 127,  # spike counts fit int8
    "num_classes": 100_000, "step_us": 10**10,
    # Of the whole model: spiking neurons per step and sample (activation memory), and parameters.
    "neurons": 1 << 25, "parameters": 1 << 28,
}


def _need(ok: bool, section: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{section}: {what}")


def is_int(value) -> bool:
    """A JSON integer: not a bool, not a float (34.0 or 34.5 is refused, never truncated)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite JSON number (NaN and infinities, which Python's json reads, are refused)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _sizes(value, name: str, section: str, limit: int, count: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
    """``value`` as a tuple of positive integers up to ``limit`` (JSON gives lists)."""
    _need(isinstance(value, (list, tuple)) and len(value) in count and all(is_int(v) for v in value), section,
          f"{name} must be {' or '.join(str(c) for c in count)} integers, got {value!r}")
    _need(all(1 <= v <= limit for v in value), section, f"{name} must be in 1..{limit:,} (LIMITS), got {value!r}")
    return tuple(int(v) for v in value)


def _positive(obj, names: tuple[str, ...], section: str) -> None:
    for name in names:
        value = getattr(obj, name)
        limit = LIMITS[name]
        _need(is_int(value) and 1 <= value <= limit, section,
              f"{name} must be an integer in 1..{limit:,} (LIMITS), got {value!r}")


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
        size = LIMITS["sensor_size"]
        object.__setattr__(self, "sensor_size", _sizes(self.sensor_size, "sensor_size", "input", size)[:2])
        if self.source_size is not None:
            object.__setattr__(self, "source_size", _sizes(self.source_size, "source_size", "input", size)[:2])
        if self.crop_origin is not None:
            origin = self.crop_origin
            _need(isinstance(origin, (list, tuple)) and len(origin) == 2 and all(is_int(v) for v in origin), "input",
                  f"crop_origin must be 2 integers, got {origin!r}")
            object.__setattr__(self, "crop_origin", tuple(int(v) for v in origin))
        _need(self.split_by in SPLITS, "input", f"split_by must be one of {SPLITS}, got {self.split_by!r}")
        _positive(self, ("T", "ratio", "spatial"), "input")
        _need(is_number(self.decay) and 0.0 < self.decay <= 1.0, "input",
              f"decay must be in (0, 1], got {self.decay!r}")
        if self.split_by == "duration":
            _need(is_int(self.step_us) and self.ratio <= self.step_us <= LIMITS["step_us"]
                  and self.step_us % self.ratio == 0,
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
    def min_events(self) -> int:
        """The fewest events a recording needs for a decision: one per fine bin (``T * ratio``); with
        fewer, most bins are empty and the output says nothing of the class (predict warns)."""
        return self.T * self.ratio

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
    pool: str = "max"  # "max", "avg" or "sum" (2x2)
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
        object.__setattr__(self, "channels", _sizes(self.channels, "channels", "network", LIMITS["channels"],
                                                    tuple(range(1, LIMITS["blocks"] + 1))))
        _positive(self, ("num_classes", "kernel_size", "hidden", "k_t", "K"), "network")
        _need(self.num_classes >= 2, "network", f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        _need(self.kernel_size % 2 == 1, "network", f"kernel_size must be odd, got {self.kernel_size}")
        _need(self.pool in POOLS, "network", f"pool must be one of {POOLS}, got {self.pool!r}")
        _need(is_number(self.dropout) and 0.0 <= self.dropout < 1.0, "network",
              f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("v_th", "tau_init", "surrogate_alpha"):
            _need(is_number(getattr(self, name)), "network", f"{name} must be a finite number, got "
                  f"{getattr(self, name)!r}")
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
        for name, count in (("neurons", self.neurons()), ("parameters", self.parameters())):
            _need(count <= LIMITS[name], "config", f"{count:,} {name} exceed LIMITS[{name!r}] = {LIMITS[name]:,}")

    def neurons(self) -> int:
        """Spiking neurons per step and sample (every block's output before pooling, and the hidden layer)."""
        (H, W), n = self.input.output_size, self.network
        return sum(c * (H >> i) * (W >> i) for i, c in enumerate(n.channels)) + n.hidden

    def parameters(self) -> int:
        """Trainable parameters of the network, counted from the config alone (nothing allocated)."""
        (H, W), n = self.input.output_size, self.network
        per_channel = 2 + n.k_t + 1  # BatchNorm weight and bias, mixing taps, time constant
        total, c_in = 0, 2
        for c in n.channels:
            total += c * c_in * n.kernel_size ** 2 + c * per_channel
            c_in = c
        blocks = len(n.channels)
        features = c_in * (H >> blocks) * (W >> blocks)
        return total + features * n.hidden + n.hidden * 2 + n.hidden * n.num_classes + n.num_classes

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
        if not is_int(version) or version < 1:
            raise CheckpointError(f"{source}: format_version must be an integer 1..{FORMAT_VERSION}, got {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(f"{source}: format_version {version!r} is newer than this stc-zoo understands "
                                  f"({FORMAT_VERSION}); upgrade stc-zoo")
        if version == 1:
            data = _upgrade_v1(data)
        for name in SECTIONS:
            if not isinstance(data.get(name, {}), dict):
                raise CheckpointError(f"{source}: {name!r} must be a JSON object, got {type(data[name]).__name__}")
        names = data.get("class_names", ())
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{source}: class_names must be a list of strings")
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
        """Read a ``config.json`` of at most ``MAX_CONFIG_BYTES`` (a real one is about 1 KB)."""
        try:
            size = os.path.getsize(path)
            if size > MAX_CONFIG_BYTES:
                raise CheckpointError(f"{path}: {size:,} bytes; a config.json holds at most {MAX_CONFIG_BYTES:,} "
                                      "(MAX_CONFIG_BYTES)")
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: cannot read config ({err})") from None
        except RecursionError:  # thousands of nested brackets
            raise CheckpointError(f"{path}: cannot read config (nested too deeply)") from None
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
