"""Model cards for exported checkpoints: Hub metadata header, results with their conditions."""

from __future__ import annotations

import json

from .config import StcConfig

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


def render_card(name: str, config: StcConfig, dataset: str, data_note: str, split_note: str,
                accuracy: float, samples: int, command: str, extra: str = "") -> str:
    """A README.md for a checkpoint folder.

    Args:
        name: zoo name or repo name.
        dataset: dataset display name (e.g. "N-MNIST").
        data_note: which recordings it was trained on, stated plainly.
        split_note: how the evaluation split was made.
        accuracy: accuracy (0..1) on that split; ``samples`` its size.
        command: the command that reproduces the training.
    """
    metric_name = f"{split_note.split(':')[0]} accuracy"
    header = {
        "library_name": "stc-zoo",
        "license": "apache-2.0",
        "tags": ["spiking-neural-network", "event-camera", "neuromorphic", "stc-zoo"],
        "datasets": [dataset],
        "model-index": [{
            "name": name,
            "results": [{
                "task": {"type": "image-classification", "name": "event stream classification"},
                "dataset": {"name": dataset, "type": dataset.lower()},
                "metrics": [{"type": "accuracy", "value": round(accuracy * 100, 2), "name": metric_name}],
            }],
        }],
    }
    c = config
    return f"""---
{json.dumps(header, indent=1)}
---

# {name}

A spiking neural network for {dataset} event streams, implementing *{PAPER}* (Xu, Liu, Yang;
arXiv 2203.10006): events are compressed into T = {c.T} steps of synaptic current, then classified by
synaptic convolutional blocks with multi-threshold LIF neurons (K = {c.K}).

## Load it

```python
from stc_zoo import StcSNN
model = StcSNN.from_pretrained("{name}")   # or a local folder holding this card
labels = model.predict(events)              # events: tonic-style structured array(s) x, y, t, p
```

## Data

{data_note}

## Results

| split | samples | accuracy |
|---|---|---|
| {split_note} | {samples} | {accuracy * 100:.2f}% |

{extra}
## Configuration

Input: sensor {c.sensor_size[0]}x{c.sensor_size[1]}, {c.T * c.ratio} fine bins split by {c.split_by},
compressed {c.ratio}:1 into T = {c.T} steps (decay {c.decay}), spatial sum-pooling {c.spatial}:1.
Network: SCB channels {list(c.channels)} (kernel {c.kernel_size}, temporal taps k_t = {c.k_t}, {c.pool}-pooling),
hidden {c.hidden}, K = {c.K} thresholds of {c.v_th}, tau_init {c.tau_init}, {c.reset} reset,
{c.surrogate} surrogate (alpha {c.surrogate_alpha}). BatchNorm {"folded into the convs" if c.bn_folded else
"not folded (call `model.fuse_for_inference()` to fold it)"}. Full config: `config.json`.

## Training

```
{command}
```

## Limitations

Accuracy is stated only for the split above; it says nothing about other sensors, resolutions or
event rates. Inputs must come from a {c.sensor_size[0]}x{c.sensor_size[1]} sensor.

## Citation

```bibtex
{CITATION}
```
"""
