"""Model cards for exported checkpoints: a Hub metadata header, then results with their conditions.

The header is written with huggingface_hub's ``ModelCardData`` so the Hub indexes it: library,
license, tags, datasets and the result in model-index form. The result also records how its split
was drawn (``dataset.args``: reader, source split, held-out fraction, seed, samples), so
``hub/publish.py --verify-data`` can recompute the stated accuracy from the recordings.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..config import StcConfig
from ..errors import CheckpointError
from .files import CARD_NAME

LIBRARY = "stc-zoo"
TAGS = ["spiking-neural-network", "event-camera", "neuromorphic", "stc-zoo"]
SECTIONS = ("## Load it", "## Data", "## Results", "## Limitations", "## Training", "## Citation")
PAPER = ("Ultra-low Latency Spiking Neural Networks with Spatio-Temporal Compression and Synaptic "
         "Convolutional Block")
CITATION = """@article{xu2023ultralow,
  title   = {Ultra-low Latency Spiking Neural Networks with Spatio-Temporal Compression and Synaptic Convolutional Block},
  author  = {Xu, Changqing and Liu, Yi and Yang, Yintang},
  journal = {Neurocomputing},
  year    = {2023},
  eprint  = {2203.10006},
  archivePrefix = {arXiv}
}"""


@dataclass(frozen=True)
class CardResult:
    """The accuracy a card states and exactly how it was measured.

    A hold-out result (``folds == 0``): a stratified hold-out (``stc_zoo.data.stratified_split``) of
    ``val_fraction`` of each class of the reader's ``source_split``, drawn with ``seed``.
    A cross-validated result (``folds >= 2``): the mean over the folds of a stratified partition
    (``stc_zoo.data.stratified_folds``, ``seed``) of all ``samples`` recordings of ``source_split``,
    each fold measured on the model trained on the others; ``per_fold`` and ``std`` give the spread.
    """

    accuracy: float  # 0..1
    samples: int
    reader: str  # key of stc_zoo.data.READERS
    source_split: str = "train"
    val_fraction: float = 0.1
    seed: int = 0
    folds: int = 0
    std: float | None = None
    per_fold: tuple[float, ...] = ()
    # True when the weights started from a checkpoint whose training data is unknown, so the hold-out may
    # overlap it (training/--init); such a result is stated but hub/publish.py refuses it.
    holdout_unverified: bool = False

    def __post_init__(self):
        object.__setattr__(self, "per_fold", tuple(float(a) for a in self.per_fold))
        if self.folds and len(self.per_fold) != self.folds:
            raise ValueError(f"a {self.folds}-fold result needs {self.folds} per-fold accuracies, got {len(self.per_fold)}")

    @property
    def percent(self) -> float:
        """The accuracy as the card's metadata states it: percent, two decimals."""
        return round(self.accuracy * 100, 2)

    @property
    def split_name(self) -> str:
        return f"{self.folds}-fold cross-validation" if self.folds else "validation"

    def describe(self) -> str:
        if self.folds:
            return (f"stratified {self.folds}-fold cross-validation of all {self.samples} recordings of the "
                    f"{self.source_split} split (seed {self.seed}): mean ± std over folds")
        unverified = ", NOT verified unseen by the starting weights" if self.holdout_unverified else ""
        return (f"validation: {self.samples} recordings held out of the {self.source_split} split "
                f"({self.val_fraction:.0%} per class, seed {self.seed}){unverified}")

    def stated(self) -> str:
        """The accuracy as the results table states it."""
        if self.folds:
            return f"{self.accuracy * 100:.2f}% ± {self.std * 100:.2f}"
        return f"{self.accuracy * 100:.2f}%"


def card_data(name: str, dataset: str | None, result: CardResult | None) -> ModelCardData:
    """The Hub metadata header of a card (no model-index when no result is stated)."""
    results = None
    if result is not None:
        unused = ("val_fraction",) if result.folds else ("folds", "std", "per_fold")  # the other kind's fields
        unused += () if result.holdout_unverified else ("holdout_unverified",)
        args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result).items()
                if k != "accuracy" and k not in unused}
        results = [EvalResult(
            task_type="image-classification", task_name="event stream classification",
            dataset_type=dataset.lower(), dataset_name=dataset, dataset_split=result.split_name, dataset_args=args,
            metric_type="accuracy", metric_name=f"{result.split_name} accuracy", metric_value=result.percent)]
    return ModelCardData(library_name=LIBRARY, license="apache-2.0", tags=list(TAGS),
                         datasets=[dataset] if dataset else None, model_name=name, eval_results=results)


def read_card(path: str | os.PathLike) -> tuple[ModelCard, CardResult]:
    """Parse a card written by ``render_card``; CheckpointError naming the file if it is not one."""
    try:
        card = ModelCard.load(path)
    except Exception as err:  # huggingface_hub raises several types for unreadable YAML
        raise CheckpointError(f"{path}: not a readable model card ({err})") from None
    data = card.data
    if data.library_name != LIBRARY:
        raise CheckpointError(f"{path}: metadata says library_name {data.library_name!r}, expected {LIBRARY!r}")
    results = [r for r in (data.eval_results or []) if r.metric_type == "accuracy"]
    if len(results) != 1:
        raise CheckpointError(f"{path}: expected one accuracy result in model-index, found {len(results)} "
                              "(save with StcSNN.save_pretrained(..., model_card_kwargs={'result': ...}) "
                              "or export with train.py --export)")
    r = results[0]
    try:
        args = dict(r.dataset_args or {})
        result = CardResult(accuracy=float(r.metric_value) / 100, **args)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: model-index result lacks its split description ({err})") from None
    missing = [s for s in SECTIONS if s not in card.text]
    if missing:
        raise CheckpointError(f"{path}: card lacks the sections {missing}")
    return card, result


def render_card(name: str, config: StcConfig, dataset: str | None = None, data_note: str | None = None,
                result: CardResult | None = None, command: str | None = None, extra: str = "",
                bn_folded: bool = False) -> str:
    """A README.md for a checkpoint folder.

    Args:
        name: zoo name or Hub repo id; the card's load example uses it.
        dataset: dataset display name (e.g. "N-MNIST"); None when not stated.
        data_note: which recordings it was trained on, stated plainly.
        result: the validation accuracy and the split it was measured on; None states none
            (such a card cannot be published: ``hub/publish.py`` wants a result).
        command: the command that reproduces the training.
        extra: text placed after the results table (e.g. the best epoch).
        bn_folded: whether the weights have BatchNorm folded into the convs.
    """
    i, n = config.input, config.network
    neurons = (f"multi-threshold LIF neurons (K = {n.K})" if n.K > 1 else
               "one-threshold LIF neurons (K = 1: one spike a step" + (", reset to zero)" if n.reset == "hard" else ")"))
    results = ("No accuracy is stated for these weights: they were saved without a measured result."
               if result is None else
               f"| split | samples | accuracy |\n|---|---|---|\n"
               f"| {result.describe()} | {result.samples} | {result.stated()} |")
    return f"""---
{card_data(name, dataset, result).to_yaml()}
---

# {name}

A spiking neural network for {dataset or "event-camera"} event streams, implementing *{PAPER}* (Xu, Liu, Yang;
arXiv 2203.10006): events are compressed into T = {i.T} steps of synaptic current, then classified by
synaptic convolutional blocks with {neurons}.

## Load it

```python
from stc_zoo import StcSNN
model = StcSNN.from_pretrained("{name}")   # or a local folder holding this card
labels = model.predict(events)              # events: tonic-style structured array(s) x, y, t, p
```

or from a shell: `stc-zoo predict {name} recording.bin`.

## Data

{data_note or "Not stated: these weights were saved without a description of their training data."}

## Results

{results}

{extra}
## Configuration

Input: sensor {i.sensor_size[0]}x{i.sensor_size[1]}, {_binning(i)},
compressed {i.ratio}:1 into T = {i.T} steps (decay {i.decay}), spatial sum-pooling {i.spatial}:1.
Network: SCB channels {list(n.channels)} (kernel {n.kernel_size}, temporal taps k_t = {n.k_t}, {n.pool}-pooling),
hidden {n.hidden}, K = {n.K} thresholds of {n.v_th}, tau_init {n.tau_init}, {n.reset} reset,
{n.surrogate} surrogate (alpha {n.surrogate_alpha}). BatchNorm {"folded into the convs" if bn_folded else
"not folded (call `model.fuse_for_inference()` to fold it)"}. Full config: `config.json`.

## Training

```
{command or "not recorded"}
```

## Limitations

Accuracy is stated only for the split above; it says nothing about other sensors, resolutions or
event rates. Inputs must come from a {i.sensor_size[0]}x{i.sensor_size[1]} sensor.

## Citation

```bibtex
{CITATION}
```
"""


def _binning(i) -> str:
    """How the card says the events are binned."""
    if i.split_by == "duration":
        return (f"**duration-binned for streaming**: steps of {i.step_us / 1e3:g} ms from the first event "
                f"({i.ratio} fine bins of {i.step_us / i.ratio / 1e3:g} ms each; the network saw the first "
                f"{i.T * i.step_us / 1e3:g} ms of each recording in training; `model.stream()` runs it online)")
    return f"{i.T * i.ratio} fine bins split by {i.split_by}"


def section(text: str, heading: str) -> str:
    """The body of one ``## heading`` section of a card, stripped."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    return match.group(1).strip() if match else ""


def training_commands(folder: str | os.PathLike) -> list[str]:
    """The lines of the ``## Training`` code block of the card in ``folder`` (comments included); [] when the
    folder has no card, the card no such section, or the section says the command was not recorded."""
    path = Path(folder) / CARD_NAME
    lines = section(path.read_text(encoding="utf-8"), "Training").strip("`\n ").splitlines() if path.is_file() else []
    return [] if lines == ["not recorded"] else lines


def put_section(text: str, heading: str, body: str) -> str:
    """A card's ``text`` with the section ``heading`` (``"## ..."``) holding ``body``: replaced where it
    stands (up to the next heading of its level), or added before ``## Configuration``."""
    if heading in text:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + text[end + 1:] if end != -1 else text[:start]
    else:
        start = text.index("## Configuration")
    return text[:start] + f"{heading}\n\n{body.strip()}\n\n" + text[start:]
