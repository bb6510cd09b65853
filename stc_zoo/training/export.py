"""A finished run as a Hub-ready folder (``save_pretrained``), with a card stating the result and how it
was measured: the hold-out's accuracy, the cross-validated estimate of the recipe, or none."""

from __future__ import annotations

import json
from pathlib import Path

from ..hub.card import CardResult, training_commands
from ..hub.checkpoint import load_weights
from ..hub.seen import read_seen
from ..model import StcSNN
from ..zoo import get_entry
from .config import init_folder
from .state import BEST, FINAL


def export(run, meta: dict, cv: dict | None = None) -> None:
    """The kept weights of ``run`` (a ``run.Run``: best validation epoch or last, ``TrainConfig.keep``) as a folder,
    with a card stating the result and how it was measured: the hold-out's accuracy, or for a run on
    every recording the cross-validated estimate ``cv`` (cv.json's content) of its recipe, or none."""
    entry = get_entry(run.args.model)
    model = StcSNN(run.config)
    load_weights(model.network, run.out / (BEST if run.train.keeps_best else FINAL))
    model.trained_on = read_seen(run.out)  # what the run's weights saw (run.record_seen), carried beside them
    if run.reader != entry.reader:  # another dataset than the entry's: named after the export, not the zoo entry
        what = (f"the labelled folder `{meta['data']}`" if run.reader == "folder"
                else f"`{meta['data']}` read as {run.reader}")
        name = Path(run.args.export).name
        dataset = (f"labelled event folder {Path(meta['data']).name}" if run.reader == "folder"
                   else run.reader.removeprefix("tonic:"))
        data_note = f"Trained on {meta['train_samples']} recordings of {what} (classes: {', '.join(run.config.labels)})."
    else:
        is_subset = entry.reader == "nmnist" and meta["total_samples"] < 60000  # full N-MNIST train: 60,000
        name, dataset = entry.name, entry.dataset
        data_note = (f"Trained on {meta['train_samples']} recordings of `{meta['data']}`"
                     + (f" — a {meta['total_samples']:,}-recording subset of N-MNIST's training set, not the full "
                        "dataset." if is_subset else f" ({entry.dataset} training split)."))
    if run.reader == "simulated":  # the simulation itself: which images, which simulator and parameters
        from ..simulate.spec import read_simulation

        sim = read_simulation(meta["data"])
        data_note = (f"Trained on {meta['train_samples']:,} simulated recordings "
                     f"({model.trained_on.sources[-1] if model.trained_on else meta['data']}); never on a real "
                     f"recording. The simulation (`simulation.json`): `{json.dumps(sim.to_dict())}`")
    start_folder = init_folder(run.args.init) if run.args.init else None  # resolved once: a Hub id is a network call
    if start_folder is not None:  # what the starting weights saw is part of what these weights saw
        start = read_seen(start_folder)
        data_note += (f" Its starting weights (`--init {run.args.init}`) were trained on: {start.describe()}."
                      if start else f" Its starting weights (`--init {run.args.init}`) do not say what they were "
                      "trained on.")
    if cv is not None:
        result = CardResult(accuracy=cv["mean"], samples=cv["samples"], reader=run.reader, source_split="train",
                            val_fraction=0.0, seed=cv["seed"], folds=cv["folds"], std=cv["std"],
                            per_fold=tuple(cv["per_fold"]))
        extra = (f"The exported weights are the last epoch ({meta['epochs']} of a fixed schedule{', EMA' if run.train.ema else ''}) "
                 f"of the same recipe trained on all {meta['train_samples']} recordings; the accuracy above is that "
                 f"recipe's {cv['folds']}-fold cross-validated estimate (each fold's model trained on the other folds, "
                 f"measured on its last epoch; nothing was selected on the held-out folds). Per fold: "
                 f"{', '.join(f'{a * 100:.1f}%' for a in cv['per_fold'])}; corrected 95% interval of the mean "
                 f"[{cv['ci95'][0] * 100:.2f}, {cv['ci95'][1] * 100:.2f}]. Reproduce everything with the training "
                 "command below.\n")
        command = cv["command"]
    elif run.train.keeps_best:
        unverified = bool(meta.get("holdout_unverified"))
        result = CardResult(accuracy=meta["best_val_acc"], samples=meta["val_samples"], reader=run.reader,
                            source_split="train", val_fraction=meta["val_fraction"], seed=meta["seed"],
                            holdout_unverified=unverified)
        extra, command = f"Best epoch {meta['best_epoch']} of {meta['epochs']} (chosen on these recordings).\n", meta["command"]
        if unverified:
            extra = (f"**Not a verified hold-out result.** Training started from `{meta['init']}`, whose card does not "
                     "say what it was trained on, so these validation recordings may have been in its training data.\n\n"
                     + extra)
    else:
        result, command = None, meta["command"]
        extra = f"The last epoch ({meta['epochs']}) of a fixed schedule.\n"
    if start_folder is not None:
        command = staged_command(run.args.init, start_folder, command)
    model.save_pretrained(run.args.export, model_card_kwargs=dict(
        name=name, dataset=dataset, data_note=data_note, result=result, command=command, extra=extra))
    if result is not None:
        state_cost(Path(run.args.export), name, meta["data"])


def staged_command(init: str, folder: Path, command: str) -> str:
    """A card's training commands for a run started from ``--init init`` (checked out at ``folder``): how the
    starting weights were made (their card's commands), then ``command``; reproducing the card needs both."""
    before = training_commands(folder)
    return "\n".join([f"# 1. the starting weights (--init {init}), as their card gives them:",
                      *(before or ["#    not recorded on their card"]), "# 2. this model, from them:", command])


def state_cost(folder: Path, name: str, data: str) -> None:
    """Measure the exported model's cost per decision on its card's recordings and state it in the card
    (``stc_zoo.hub.cost``); a failure is a warning: the exported weights and card stand without it."""
    from ..errors import StcError, warn
    from ..hub import cost

    try:
        model = StcSNN.from_pretrained(folder)
        rule = (None, 1) if model.config.input.streamable else None
        cost.write(folder, cost.measure(model, data, name, rule), model.config.input.step_us)
    except StcError as err:
        warn(f"{folder}: the card states no cost per decision ({err}); add it with python -m stc_zoo.hub.cost")
