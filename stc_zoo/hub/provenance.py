"""What a loaded checkpoint was, so that a saved copy says where it came from and what changed.

``from_pretrained`` records a ``Provenance`` (the folder, the config it was trained under, a digest
of its tensors, whether BatchNorm was folded). ``save_pretrained`` without card arguments then
writes ``provenance_card``: the source's own card for an unchanged copy (its result still holds);
the source's card with a note for a copy whose only change is BatchNorm folded into the convs (the
result holds up to float rounding, and ``hub/publish.py --verify-data`` re-measures it); for any
other change (new weights, new config fields) a card that names the source and every change and
states no result, since none was measured for these weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import StcConfig
from ..errors import CheckpointError
from .card import read_card, render_card, section
from .files import CARD_NAME

FOLDED_NOTE = ("Saved from `{source}` with BatchNorm folded into the convs (`fuse_for_inference()`); the "
               "result below was measured on the unfolded weights, which folding changes only by float rounding "
               "(`hub/publish.py --verify-data` re-measures it).")


def digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's tensors (names and bytes), to tell whether they changed since loading."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Provenance:
    """A checkpoint as loaded: where from, under which config, its tensors' digest and form."""

    folder: Path
    config: StcConfig  # the checkpoint's own config.json (before any load-time override)
    digest: str
    bn_folded: bool

    @classmethod
    def of(cls, folder: Path, config: StcConfig, network: torch.nn.Module) -> Provenance:
        return cls(folder, config, digest(network), bool(getattr(network, "bn_folded", False)))

    @property
    def card(self) -> Path | None:
        path = self.folder / CARD_NAME
        return path if path.is_file() else None

    def changes(self, config: StcConfig, network: torch.nn.Module) -> list[str]:
        """What differs between the model now and the checkpoint it was loaded from, in words."""
        changed = [f"config {k}: {a!r} -> {b!r}" for k, (a, b) in _config_diff(self.config, config).items()]
        folded = bool(getattr(network, "bn_folded", False))
        if folded != self.bn_folded:
            changed.append("BatchNorm folded into the convs" if folded else "BatchNorm unfolded")
        # Folding changes the tensors by construction; only an unfolded-equal form can be compared.
        if folded == self.bn_folded and digest(network) != self.digest:
            changed.append("weights changed since loading (trained or edited)")
        return changed


def _config_diff(a: StcConfig, b: StcConfig) -> dict:
    def flat(c: StcConfig) -> dict:
        return {**dataclasses.asdict(c.input), **dataclasses.asdict(c.network), "class_names": c.class_names}
    fa, fb = flat(a), flat(b)
    return {k: (fa[k], fb[k]) for k in fb if fa[k] != fb[k]}


def _source_name(source: Provenance) -> str:
    """``nmnist-t4 (folder)`` when the source card names its model, else the folder."""
    from huggingface_hub import ModelCard

    try:
        model = ModelCard.load(source.card).data.model_name
    except Exception:  # noqa: BLE001 - an unreadable header just leaves the folder as the name
        model = None
    return f"{model} ({source.folder})" if model else str(source.folder)


def provenance_card(source: Provenance, target: Path, config: StcConfig, network: torch.nn.Module) -> str | None:
    """The card of a copy of ``source`` saved to ``target``; None when the source has no card."""
    if source.card is None:
        return None
    text = source.card.read_text(encoding="utf-8")
    changes = source.changes(config, network)
    if not changes:
        return text
    name = _source_name(source)
    if changes == ["BatchNorm folded into the convs"]:
        return text.replace("## Data\n\n", "## Data\n\n" + FOLDED_NOTE.format(source=name) + "\n\n", 1)
    try:
        card, stated = read_card(source.card)
        claim, datasets = f"stated {stated.stated()} on {stated.describe()}", card.data.datasets or [None]
    except CheckpointError:  # a source card without a result
        claim, datasets = "stated no result", [None]
    data_note = (f"Derived from `{name}`, whose card {claim} for its own weights. Changed since it was loaded: "
                 f"{'; '.join(changes)}. No result was measured for these weights, so this card states none. "
                 f"The source's data: {section(text, 'Data')}")
    return render_card(str(target), config, dataset=datasets[0], data_note=data_note,
                       command=section(text, "Training").strip("`\n ") or None,
                       bn_folded=bool(getattr(network, "bn_folded", False)))
