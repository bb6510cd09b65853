"""``stc-zoo show``: one figure of a recording as the model sees it.

Rows: the raw events (ON/OFF counts per pixel, and the event rate over time); the T compressed
steps of synaptic current (ON minus OFF); for every spiking layer, the mean spike count per
neuron at each step; and the class probabilities. Needs matplotlib (``pip install 'stc-zoo[viz]'``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .errors import StcError
from .model import StcSNN
from .network import record_spikes


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise StcError("stc-zoo show draws with matplotlib, which is not installed: "
                       "pip install 'stc-zoo[viz]'") from None
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def colorbar(fig, image, axes, what: str) -> None:
    """One colour bar for a row of images that share a scale."""
    bar = fig.colorbar(image, ax=list(axes), fraction=0.02, pad=0.01)
    bar.set_label(what, fontsize=6)
    bar.ax.tick_params(labelsize=6)


def draw(model: StcSNN, events: np.ndarray, out: str | os.PathLike, title: str = "",
         label: str | None = None) -> Path:
    """Write the figure of one recording ``events`` through ``model`` to ``out``; returns its path."""
    fig = figure(model, events, title, label)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def figure(model: StcSNN, events: np.ndarray, title: str = "", label: str | None = None):
    """The matplotlib Figure of one recording ``events`` through ``model``.

    ``label``: the recording's true class name; marked when it is one of the model's classes.
    """
    plt = _pyplot()
    c = model.config
    x = model.compress(events)  # [T, 1, 2, H', W'] (also validates the events against the sensor)
    logits, spikes = record_spikes(model.network, x)
    probs = torch.softmax(logits, -1).cpu()
    T, (W, H) = c.input.T, c.input.sensor_size
    rows = 3 + len(spikes)
    cols = max(T, 3)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")

    # Row 0: the raw stream.
    on, off = (np.histogram2d(events["y"][events["p"] == pol], events["x"][events["p"] == pol],
                              bins=(H, W), range=((0, H), (0, W)))[0] for pol in (1, 0))
    image = np.stack([on, np.zeros_like(on), off], -1)
    axes[0, 0].imshow(image / max(image.max(), 1), interpolation="nearest")
    axes[0, 0].set_title(f"{len(events):,} events\nON red, OFF blue", fontsize=8)
    rate = axes[0, 1]
    rate.axis("on")
    t = (events["t"] - events["t"].min()) / 1e3 if len(events) else np.zeros(0)
    rate.hist([t[events["p"] == 1], t[events["p"] == 0]], bins=50, color=["tab:red", "tab:blue"], histtype="step",
              label=["ON", "OFF"])
    rate.legend(fontsize=6)
    rate.set_title("events per bin over time", fontsize=8)
    rate.set_xlabel("ms", fontsize=7)
    rate.tick_params(labelsize=6)

    # Row 1: the compressed steps.
    current = x[:, 0].cpu()
    limit = float(current.abs().max()) or 1.0
    for step in range(T):
        image = axes[1, step].imshow((current[step, 1] - current[step, 0]).numpy(), cmap="RdBu_r", vmin=-limit,
                                     vmax=limit, interpolation="nearest")
        axes[1, step].set_title(f"step {step + 1}/{T}: ON - OFF (red ON)", fontsize=8)
    colorbar(fig, image, axes[1, :T], "synaptic current")

    # One row per spiking layer: spike counts (0..K) at each step, one colour scale per layer.
    for row, (name, s) in enumerate(spikes, start=2):
        maps = s[:, 0].mean(1) if s.ndim == 5 else s[:, 0]  # conv layers: mean over channels
        if maps.ndim == 2:  # [T, hidden]: neurons as a square-ish grid
            side = int(np.ceil(np.sqrt(maps.shape[1])))
            maps = torch.cat([maps, torch.full((T, side * side - maps.shape[1]), float("nan"))], 1).view(T, side, side)
        top = float(maps.nan_to_num().max()) or 1.0
        for step in range(T):
            image = axes[row, step].imshow(maps[step].numpy(), cmap="magma", vmin=0, vmax=top,
                                           interpolation="nearest")
            axes[row, step].set_title(f"{name} t{step + 1}: {s[step].mean():.3f} spikes/neuron", fontsize=7)
        colorbar(fig, image, axes[row, :T], "mean spike count")

    # Last row: the decision.
    bars = axes[rows - 1, 0]
    bars.axis("on")
    names = c.labels
    p = probs[0].numpy()
    truth = names.index(label) if label in names else None
    bars.bar(range(len(p)), p, color=["tab:green" if i == p.argmax() else "tab:gray" for i in range(len(p))],
             edgecolor=["black" if i == truth else "none" for i in range(len(p))])
    bars.set_xticks(range(len(p)), names, fontsize=6, rotation=90 if len(p) > 10 else 0)
    verdict = "" if truth is None else f"; true {names[truth]} (outlined): {'right' if truth == p.argmax() else 'wrong'}"
    bars.set_title(f"predicted {names[int(p.argmax())]} ({p.max():.2f}){verdict}", fontsize=8)
    bars.tick_params(labelsize=6)

    fig.suptitle(title or "stc-zoo", fontsize=10)
    return fig
