"""The cost per decision a model card states: ``stc_zoo.metrics`` measured on the recordings the card's
accuracy uses, written into the card (a ``cost`` entry in its metadata and a "Cost per decision"
section) with the command that recomputes it, and rechecked by ``hub/publish.py --verify-data``.

    python -m stc_zoo.hub.cost FOLDER --data ROOT [--threshold 0.95 --min-steps 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from huggingface_hub import ModelCard

from ..errors import CheckpointError, StcError
from .card import put_section
from .files import CARD_NAME
from .holdout import held_out, stated_result

KEY = "cost"
SECTION = "## Cost per decision"
# What a card states per recording; recomputed to within RTOL (the counts are exact; sparsity is a ratio).
FIELDS = ("dense_macs", "effective_macs", "effective_acs", "spike_inputs_as_macs", "membrane_updates",
          "activation_sparsity", "parameters", "footprint_bytes", "connection_sparsity")
RTOL = 1e-9


def card_recordings(folder: Path | None, root: str | os.PathLike, download: bool = False) -> tuple:
    """``(dataset, indices or None, description)`` of the recordings the card in ``folder`` states its accuracy
    on: its hold-out, or for a cross-validated card every recording of the split its folds partition."""
    from ..data.tonic_adapter import reader

    stated = stated_result(folder)
    if stated.folds:
        dataset = reader(stated.reader)(root, stated.source_split, download=download)
        if len(dataset) != stated.samples:
            raise CheckpointError(f"{root}: the card's cross-validation used {stated.samples} recordings, this data "
                                  f"has {len(dataset)}; it is not the data the card was measured on")
        return dataset, None, (f"all {stated.samples} recordings of the {stated.source_split} split "
                               f"(the card's {stated.folds}-fold cross-validation)")
    dataset, indices = held_out(root, stated, download=download)
    return dataset, indices, f"the {len(indices)} recordings of the card's hold-out ({stated.describe()})"


def measure(model, root: str | os.PathLike, name: str, rule: tuple[float | None, int] | None = None,
            batch_size: int = 64) -> dict:
    """The ``cost`` entry for ``model`` (loaded from its folder) on its card's recordings under ``root``.
    ``rule``: ``(threshold, min_steps)`` of a streaming decision to state the operations until."""
    from .. import metrics
    from ..data.compressed import compress_dataset

    dataset, indices, described = card_recordings(model.checkpoint_folder, root)
    model.fuse_for_inference()
    X, _ = compress_dataset(dataset, model.pipeline, desc="compressing the card's recordings", indices=indices)
    full_rule = None if rule is None else (*rule, model.config.input.T)
    p = metrics.profile(model.network, metrics.in_batches(X, batch_size), full_rule)
    summary = p.to_dict()
    command = f"stc-zoo profile {name} --data {root}"
    if rule is not None:
        command += (f" --threshold {rule[0]}" if rule[0] is not None else "") + f" --min-steps {rule[1]}"
    cost = {"recordings": p.recordings, "measured_on": described, "steps": p.steps,
            **{f: summary[f] for f in FIELDS}, "command": command}
    if rule is not None:
        cost["decision"] = {"threshold": rule[0], "min_steps": rule[1], **p.decision_summary()}
    return cost


def render(cost: dict, step_us: int | None = None) -> str:
    """The card's section for ``cost``."""
    lines = [SECTION, "",
             f"Per recording, averaged over {cost['measured_on']}, T = {cost['steps']} steps "
             "(definitions: `docs/METRICS.md` of stc-zoo, NeuroBench's where they apply):", "",
             "| measure | per recording |", "|---|---:|",
             f"| synaptic operations, dense (every input, every weight) | {cost['dense_macs']:,.0f} MACs |",
             f"| effective MACs (non-zero compressed input current) | {cost['effective_macs']:,.0f} |",
             f"| effective ACs (spike inputs; a count of n as n accumulates) | {cost['effective_acs']:,.0f} |",
             f"| spike inputs counted once each (as MACs by the count) | {cost['spike_inputs_as_macs']:,.0f} |",
             f"| membrane updates | {cost['membrane_updates']:,.0f} |",
             f"| activation sparsity (zero outputs of the spiking layers) | {cost['activation_sparsity']:.4f} |",
             f"| parameters (BatchNorm folded, as inference runs); footprint with buffers | {cost['parameters']:,}; {cost['footprint_bytes']:,} bytes |",
             f"| connection sparsity (zero weights) | {cost['connection_sparsity']:.4f} |"]
    decision = cost.get("decision")
    if decision and decision.get("decided"):
        rule = (f"running confidence >= {decision['threshold']} after >= {decision['min_steps']} steps"
                if decision["threshold"] is not None else f"at step {cost['steps']}")
        at = decision["median_steps"]
        ms = f", {at * step_us / 1e3:g} ms of recording" if step_us else ""
        seen = (" These weights were trained on those recordings, so how many decide, and how early, flatters "
                "them: the cross-validated time to decision, on recordings each fold model never saw, is this "
                "card's measure of that." if "cross-validation" in cost["measured_on"] else "")
        lines += ["", f"Streaming decision ({rule}): {decision['decided']} of {cost['recordings']} recordings decided "
                      f"within the {cost['steps']} steps, at a median {at:g} steps{ms}, after a median "
                      f"{decision['median_synops_until_decision']:,.0f} effective synaptic operations.{seen}"]
    lines += ["", f"Recompute: `{cost['command']}`", ""]
    return "\n".join(lines)


def stated(folder: Path) -> dict | None:
    """The cost the card in ``folder`` states, None when it states none."""
    path = folder / CARD_NAME
    return ModelCard.load(path).data.get(KEY) if path.is_file() else None


def write(folder: Path, cost: dict, step_us: int | None = None) -> None:
    """Put ``cost`` into the card in ``folder``: its metadata entry and its section (before Configuration)."""
    from ..atomic import replace_atomically

    path = folder / CARD_NAME
    card = ModelCard.load(path)
    card.data[KEY] = cost
    card.text = put_section(card.text, SECTION, render(cost, step_us).removeprefix(SECTION))
    replace_atomically(path, lambda tmp: Path(tmp).write_text(str(card)))


def check(folder: Path, model, root: str | os.PathLike) -> dict | None:
    """Recompute the cost the card in ``folder`` states (same recordings, same rule); CheckpointError
    naming the measure that differs. None when the card states no cost."""
    claim = stated(folder)
    if claim is None:
        return None
    decision = claim.get("decision")
    rule = None if decision is None else (decision["threshold"], decision["min_steps"])
    return compare(folder, measure(model, root, claim["command"].split()[2], rule), root)


def compare(folder: Path, got: dict, root: str | os.PathLike) -> dict:
    """``got`` (a ``measure``) when it is the cost the card in ``folder`` states; else CheckpointError naming
    the measure that differs."""
    claim = stated(folder)
    for field in ("recordings", *FIELDS):
        if not math.isclose(float(got[field]), float(claim[field]), rel_tol=RTOL, abs_tol=1e-12):
            raise CheckpointError(f"{folder / CARD_NAME}: states {field} = {claim[field]}, the weights give "
                                  f"{got[field]} on {root}")
    if claim.get("decision") is not None and got["decision"] != claim["decision"]:
        raise CheckpointError(f"{folder / CARD_NAME}: states the decision {claim['decision']}, the weights give "
                              f"{got['decision']} on {root}")
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="measure a checkpoint's cost per decision on its card's recordings "
                                            "and write it into the card")
    p.add_argument("folder", type=Path, help="checkpoint folder with its model card")
    p.add_argument("--data", required=True, help="dataset root the card's recordings come from")
    p.add_argument("--name", help="the model's name in the recompute command (default: the folder's name)")
    p.add_argument("--threshold", type=float, help="state the operations until a streaming decision at this confidence")
    p.add_argument("--min-steps", type=int, default=1)
    args = p.parse_args(argv)
    from ..model import StcSNN

    try:
        model = StcSNN.from_pretrained(args.folder)
        rule = (args.threshold, args.min_steps) if args.threshold is not None else None
        cost = measure(model, args.data, args.name or args.folder.name, rule)
        write(args.folder, cost, model.config.input.step_us)
    except StcError as err:
        print(f"cost: {err}", file=sys.stderr)
        return 2
    print(render(cost, model.config.input.step_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
