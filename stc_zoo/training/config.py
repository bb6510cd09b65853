"""A training run's configuration: the recipe (``TrainConfig``), the model's config with ``--set`` and
``--config`` applied, and, for ``--init``, the starting weights' architecture with the run's changes."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import StcConfig, field_names
from ..data import READERS
from ..errors import InputError, StcError
from ..hub import checkpoint
from ..hub.resolve import checkpoint_folder
from ..zoo import get_entry


class TrainError(StcError, ValueError):
    """A training run that cannot start or continue as asked (the message says why and what to pass)."""


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    val_fraction: float = 0.1  # per-class hold-out; 0 trains on everything (no validation, the last epoch is kept)
    seed: int = 0
    shift: int = 2  # random translation of the whole sample by up to this many (pooled) pixels
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    folds: int = 0  # >= 2: k-fold cross-validation, this run holding out fold ``fold`` (1..folds) instead
    fold: int = 0
    ema: float = 0.0  # decay of an exponential moving average of the weights per step (0: off); it is
    #                   what is validated and exported
    per_step_loss: bool = False  # mean of every step's cross-entropy (temporal efficient training), not the mean logits'
    event_drop: float = 0.0  # drop each event with this probability (exact binomial thinning of cached counts)
    keep: str = "auto"  # exported weights: "best" validation epoch, "last" epoch; auto: best with a hold-out
    ghost_batches: int = 1  # split each batch into this many (every n-th sample), BatchNorm over each:
    #                         one process with batch n*B equals n DDP ranks of batch B (training/README.md)
    rotate: float = 0.0  # random rotation of each recording's events, up to this many degrees
    scale: float = 0.0  # random zoom of each recording's events by a factor in [1 - scale, 1 + scale]
    train_limit: int = 0  # > 0: train on a stratified sample of this many of the recordings the hold-out leaves
    #                       (drawn from ``seed``; the hold-out unchanged): how a result moves with the data's size

    def __post_init__(self):
        for name, kind, low in (("epochs", int, 1), ("batch_size", int, 1), ("seed", int, 0), ("shift", int, 0),
                                ("lr", float, 0.0), ("weight_decay", float, 0.0), ("label_smoothing", float, 0.0),
                                ("folds", int, 0), ("fold", int, 0), ("ema", float, 0.0), ("event_drop", float, 0.0),
                                ("rotate", float, 0.0), ("scale", float, 0.0), ("ghost_batches", int, 1),
                                ("train_limit", int, 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float) if kind is float else int) or isinstance(value, bool) or value < low:
                raise ValueError(f"train: {name} must be {'an integer' if kind is int else 'a number'} >= {low}, "
                                 f"got {value!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"train: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name in ("ema", "event_drop", "label_smoothing", "scale"):
            if getattr(self, name) >= 1.0:
                raise ValueError(f"train: {name} must be below 1, got {getattr(self, name)!r}")
        if not isinstance(self.per_step_loss, bool):
            raise ValueError(f"train: per_step_loss must be true or false, got {self.per_step_loss!r}")
        if self.folds == 1 or (self.folds and not 1 <= self.fold <= self.folds) or (self.fold and not self.folds):
            raise ValueError(f"train: folds must be 0 or >= 2 and fold in 1..folds, got folds={self.folds}, "
                             f"fold={self.fold}")
        if self.keep not in ("auto", "best", "last"):
            raise ValueError(f"train: keep must be 'auto', 'best' or 'last', got {self.keep!r}")
        if self.keep == "best" and not self.has_holdout:
            raise ValueError("train: keep='best' needs a hold-out to choose on (val_fraction > 0 or folds)")

    @property
    def has_holdout(self) -> bool:
        return bool(self.folds) or self.val_fraction > 0

    @property
    def keeps_best(self) -> bool:
        """Whether the exported weights are the best validation epoch's (else the last epoch's)."""
        return self.keep == "best" or (self.keep == "auto" and self.has_holdout and not self.folds)

    def describe_holdout(self) -> str:
        if self.folds:
            return f"fold {self.fold} of a stratified {self.folds}-fold partition (seed {self.seed})"
        if self.val_fraction:
            return f"a {self.val_fraction:g} per-class hold-out, seed {self.seed}"
        return "none (trained on every recording)"


# ------------------------------------------------------------------ configuration
def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_overrides(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        text = Path(path).read_text()
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as err:  # yaml's and json's parse errors are ValueErrors too
        raise TrainError(f"--config {path}: cannot read it ({err})") from None
    unknown = set(data) - {"model", "train"} if isinstance(data, dict) else {"(not a mapping)"}
    if unknown:
        raise TrainError(f"--config {path}: top-level keys must be 'model' and 'train', got {sorted(unknown)}")
    return data


def resolve_configs(args) -> tuple[StcConfig, TrainConfig]:
    """The entry's config and the default TrainConfig with ``--config``, ``--set`` and the flags applied."""
    overrides = load_overrides(args.config)
    model_changes, train_changes = dict(overrides.get("model", {})), dict(overrides.get("train", {}))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in args.set or []:
        key, _, value = item.partition("=")
        (train_changes if key in train_fields else model_changes)[key] = parse_value(value)
    for key in ("epochs", "batch_size", "lr", "seed"):
        if getattr(args, key) is not None:
            train_changes[key] = getattr(args, key)
    if args.dataset and args.dataset != get_entry(args.model).reader:  # its classes, unless --set names them
        classes = dataset_classes(args.dataset, args.data)
        model_changes.setdefault("num_classes", len(classes))
        model_changes.setdefault("class_names", list(classes))
    unknown = sorted(set(model_changes) - field_names()) + sorted(set(train_changes) - train_fields)
    if unknown:
        raise TrainError(f"unknown model fields {unknown}; model: {sorted(field_names())}, train: {sorted(train_fields)}")
    try:
        config, train = get_entry(args.model).config.replace(**model_changes), TrainConfig(**{
            **dataclasses.asdict(TrainConfig()), **train_changes})
    except (TypeError, ValueError) as err:
        raise TrainError(f"--set/--config: {err}") from None
    return (init_config(args.init, config) if args.init else config), train


def dataset_classes(key: str, root: str) -> tuple[str, ...]:
    """The class names of dataset ``key`` (a folder's are its sub-folders; tonic's and the zoo's are fixed)."""
    from ..data.folder import scan
    from ..data.tonic_adapter import PREFIX, tonic_class

    if key == "folder":
        return scan(root)[0]
    if key == "simulated":
        return READERS[key](root).classes
    if key.startswith(PREFIX):
        classes = tuple(str(c) for c in getattr(tonic_class(key[len(PREFIX):]), "classes", ()) or ())
        if not classes:
            raise TrainError(f"--dataset {key}: tonic does not list its classes; name them with --set class_names=...")
        return classes
    return READERS[key].classes


def init_changes(start: StcConfig, wanted: StcConfig) -> dict:
    """The fields in which ``wanted`` (the --model entry with --set) differs from ``start`` (the --init weights)."""
    def flat(c: StcConfig) -> dict:
        return {**dataclasses.asdict(c.input), **dataclasses.asdict(c.network), "class_names": c.class_names}
    a, b = flat(start), flat(wanted)
    return {k: b[k] for k in b if a[k] != b[k]}


def run_recipe(args, reader: str) -> dict:
    """What shapes a run beyond its configs (run.json's ``recipe``; a cross-validation continues a fold only
    when it matches): how and where the data is read, the starting weights by their digest, what is frozen
    and the backbone's learning-rate scale."""
    from ..hub.checksums import sha256
    from ..hub.files import WEIGHTS_NAME

    init = None
    if args.init:
        init = {"from": args.init, "weights_sha256": sha256(init_folder(args.init) / WEIGHTS_NAME)}
    return {"reader": reader, "data": str(Path(args.data).resolve()), "init": init,
            "freeze_blocks": bool(args.freeze_blocks), "backbone_lr_scale": float(args.backbone_lr_scale)}


@functools.lru_cache(maxsize=8)
def init_folder(init: str) -> Path:
    """The checked local folder of ``--init`` (resolved once per run: for a Hub id, that is a network call)."""
    return checkpoint_folder(init)


def init_config(init: str, wanted: StcConfig) -> StcConfig:
    """The config a run from ``--init`` trains: the starting weights' architecture with what ``wanted``
    changes (its classes, input timing, ...). TrainError when ``wanted`` needs another architecture."""
    from ..model import override

    start = checkpoint.read_config(init_folder(init))
    try:
        return override(start, init_changes(start, wanted))[0]
    except InputError as err:
        raise TrainError(f"--init {init}: {err}") from None
