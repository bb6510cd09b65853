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


def layer_names(model: StcSNN) -> dict[str, str]:
    """What a reader calls each spiking layer: ``blocks.0.lif`` -> ``block 1: 32 channels, 34x34``."""
    (H, W), n = model.config.input.output_size, model.config.network
    names = {f"blocks.{i}.lif": f"block {i + 1}: {c} channels, {H >> i}x{W >> i}" for i, c in enumerate(n.channels)}
    names["lif"] = f"hidden layer: {n.hidden} neurons"
    return names


def figure(model: StcSNN, events: np.ndarray, title: str = "", label: str | None = None):
    """The matplotlib Figure of one recording ``events`` through ``model``.

    Rows: the events (ON and OFF apart, and their rate over time); the T compressed steps; each
    spiking layer at each step; the class probabilities, across the whole width. Every panel has
    a title a reader can follow, every scale a colour bar, the chart its axes.
    ``label``: the recording's true class name; marked when it is one of the model's classes.
    """
    plt = _pyplot()
    c = model.config
    x = model.compress(events)  # [T, 1, 2, H', W'] (also validates the events against the sensor)
    logits, spikes = record_spikes(model.network, x)
    probs = torch.softmax(logits, -1).cpu()
    T, (W, H) = c.input.T, c.input.sensor_size
    # Each step spans ``span`` columns so that every row fills the grid (at least 4 wide: ON, OFF, a wide rate).
    span = -(-4 // T)
    rows, cols = 3 + len(spikes), T * span
    fig = plt.figure(figsize=(2.3 * max(T, 4), 2.3 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    quarter = cols // 4

    # Row 0: the raw stream, ON and OFF in panels of their own (one colour each), then the rate over time.
    for col, (pol, name, cmap) in enumerate(((1, "ON", "Reds"), (0, "OFF", "Blues"))):
        ax = fig.add_subplot(grid[0, col * quarter:(col + 1) * quarter])
        counts = np.histogram2d(events["y"][events["p"] == pol], events["x"][events["p"] == pol],
                                bins=(H, W), range=((0, H), (0, W)))[0]
        image = ax.imshow(counts, cmap=cmap, vmin=0, interpolation="nearest")
        ax.set_title(f"{name} events: {int(counts.sum()):,}", fontsize=8)
        ax.set_axis_off()
        colorbar(fig, image, [ax], "events per pixel")
    rate = fig.add_subplot(grid[0, 2 * quarter:])
    t = (events["t"] - events["t"].min()) / 1e3 if len(events) else np.zeros(0)
    rate.hist([t[events["p"] == 1], t[events["p"] == 0]], bins=50, color=["tab:red", "tab:blue"], histtype="step",
              label=["ON", "OFF"])
    rate.legend(fontsize=7)
    rate.set_title(f"event rate over the recording ({len(events):,} events)", fontsize=8)
    rate.set_xlabel("time since the first event (ms)", fontsize=7)
    rate.set_ylabel("events per bin", fontsize=7)
    rate.tick_params(labelsize=6)

    # Row 1: the compressed steps.
    current = x[:, 0].cpu()
    limit = float(current.abs().max()) or 1.0
    steps = [fig.add_subplot(grid[1, step * span:(step + 1) * span]) for step in range(T)]
    for step, ax in enumerate(steps):
        image = ax.imshow((current[step, 1] - current[step, 0]).numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit,
                          interpolation="nearest")
        ax.set_title(f"input step {step + 1}/{T}", fontsize=8)
        ax.set_axis_off()
    steps[0].text(-0.08, 0.5, "synaptic current\n(ON - OFF)", transform=steps[0].transAxes, rotation=90,
                  ha="right", va="center", fontsize=8)
    colorbar(fig, image, steps, "current: red ON, blue OFF")

    # One row per spiking layer: spike counts (0..K) at each step, one colour scale per layer.
    readable = layer_names(model)
    for row, (name, s) in enumerate(spikes, start=2):
        maps = s[:, 0].mean(1) if s.ndim == 5 else s[:, 0]  # conv layers: mean over channels
        if maps.ndim == 2:  # [T, hidden]: neurons as a square-ish grid
            side = int(np.ceil(np.sqrt(maps.shape[1])))
            maps = torch.cat([maps, torch.full((T, side * side - maps.shape[1]), float("nan"))], 1).view(T, side, side)
        top = float(maps.nan_to_num().max()) or 1.0
        axes = [fig.add_subplot(grid[row, step * span:(step + 1) * span]) for step in range(T)]
        for step, ax in enumerate(axes):
            image = ax.imshow(maps[step].numpy(), cmap="magma", vmin=0, vmax=top, interpolation="nearest")
            ax.set_title(f"step {step + 1}: {s[step].mean():.3f} spikes/neuron", fontsize=7)
            ax.set_axis_off()
        axes[0].text(-0.08, 0.5, readable.get(name, name).replace(": ", ":\n"), transform=axes[0].transAxes,
                     rotation=90, ha="right", va="center", fontsize=8)
        colorbar(fig, image, axes, "mean spike count" if s.ndim == 5 else "spike count")

    # Last row, the whole width: the decision.
    bars = fig.add_subplot(grid[rows - 1, :])
    names = c.labels
    p = probs[0].numpy()
    truth = names.index(label) if label in names else None
    bars.bar(range(len(p)), p, color=["tab:green" if i == p.argmax() else "tab:gray" for i in range(len(p))],
             edgecolor=["black" if i == truth else "none" for i in range(len(p))], linewidth=1.5)
    bars.set_xticks(range(len(p)), names, fontsize=7, rotation=90 if len(p) > 10 else 0)
    bars.set_ylim(0, 1)
    bars.set_xlabel("class", fontsize=8)
    bars.set_ylabel("probability", fontsize=8)
    verdict = "" if truth is None else f"; true {names[truth]} (outlined): {'right' if truth == p.argmax() else 'wrong'}"
    bars.set_title(f"class probabilities (mean logits over the {T} steps): predicted {names[int(p.argmax())]} "
                   f"({p.max():.2f}){verdict}", fontsize=8)
    bars.tick_params(labelsize=7)

    fig.suptitle(title or "stc-zoo", fontsize=10)
    return fig
