"""Publish an exported checkpoint folder to the Hugging Face Hub (or any HF_ENDPOINT).

    python hub/publish.py EXPORT_DIR --repo org/name [--private] [--dry-run] [--verify-data ROOT] [--tag v1]

EXPORT_DIR is what ``training/train.py --export`` or ``StcSNN.save_pretrained`` writes: ``config.json``, ``model.safetensors``,
``README.md`` (the model card) and ``SHA256SUMS``. Before anything is sent the folder is
validated: no other files (nothing pickled ever leaves), the checksums match, the weights load
strictly into the config's model, and the card has its metadata header, its result with the
split it was measured on, and every section. With ``--verify-data ROOT`` the card's accuracy is
recomputed from the recordings and must equal what the card states, and so must its cost per
decision (synaptic operations, sparsity, footprint: ``stc_zoo.hub.cost``) where it states one.

Then ``create_repo`` + ``upload_folder`` (huggingface_hub; token from ``--token``, HF_TOKEN or
``hf auth login``). ``--dry-run`` stops after validation and prints what would be uploaded and
the card, with no network. Exit status: 0 published (or dry run passed), 2 validation failed,
3 the Hub refused or could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, StcError
from ..model import StcSNN
from . import checksums
from .card import CardResult, read_card
from .files import CARD_NAME, MANIFEST, OPTIONAL_FILES, REPO_FILES


@dataclass
class Checked:
    """A folder that passed validation: its files, its card and the result the card states."""

    folder: Path
    files: list[Path]
    card_text: str
    stated: CardResult
    measured: float | None = None
    cost: dict | None = None  # the card's cost per decision, recomputed (--verify-data)


def validate(folder: Path, verify_data: str | None = None) -> Checked:
    """Every check publishing needs; CheckpointError naming the file on the first that fails."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder")
    present = {p.name for p in folder.iterdir()}
    missing = [n for n in REPO_FILES if n not in present and n not in OPTIONAL_FILES]
    if missing:
        hint = " (write it with: python -m stc_zoo.hub.checksums FOLDER)" if missing == [MANIFEST] else ""
        raise CheckpointError(f"{folder}: missing {missing}{hint}")
    extra = sorted(present - set(REPO_FILES))
    if extra:
        raise CheckpointError(f"{folder}: unexpected files {extra}; a zoo repo holds only {list(REPO_FILES)}")
    model = StcSNN.from_pretrained(folder)  # checksums, format version, every tensor present, none extra, shapes equal
    card, stated = read_card(folder / CARD_NAME)
    checked = Checked(folder, [folder / n for n in REPO_FILES if n in present], str(card), stated)
    if stated.holdout_unverified:
        raise CheckpointError(f"{folder / CARD_NAME}: its result is not a verified hold-out (training started from "
                              "weights whose training data is unknown); retrain from a checkpoint with a card, or from "
                              "scratch, to publish a result")
    if stated.folds and round(sum(stated.per_fold) / stated.folds * 100, 2) != stated.percent:
        raise CheckpointError(f"{folder / CARD_NAME}: states {stated.percent:.2f}%, but its {stated.folds} folds "
                              f"average {sum(stated.per_fold) / stated.folds * 100:.2f}%")
    if verify_data is not None and stated.folds:
        from ..data.tonic_adapter import reader as get_reader

        found = len(get_reader(stated.reader)(verify_data, stated.source_split))
        if found != stated.samples:
            raise CheckpointError(f"{verify_data}: the card's cross-validation used {stated.samples} recordings, this "
                                  f"data has {found}; it is not the data the card was measured on")
    elif verify_data is not None:
        from .holdout import held_out_accuracy

        checked.measured = held_out_accuracy(model, verify_data, stated)
        if round(checked.measured * 100, 2) != stated.percent:
            raise CheckpointError(f"{folder / CARD_NAME}: states {stated.percent:.2f}% on {stated.describe()}, but "
                                  f"the weights give {checked.measured * 100:.2f}% on {verify_data}")
    if verify_data is not None:  # the cost per decision the card states, on the same recordings
        from . import cost

        checked.cost = cost.check(folder, model, verify_data)
    return checked


def report(checked: Checked, repo: str, private: bool) -> str:
    lines = [f"repo    {repo} ({'private' if private else 'public'})", "files"]
    for path in checked.files:
        lines.append(f"  {path.name:<20} {path.stat().st_size:>10,} B  sha256 {checksums.sha256(path)[:16]}")
    stated = checked.stated
    lines.append(f"card    {stated.percent:.2f}% on {stated.describe()}")
    if checked.measured is not None:
        lines.append(f"verified: the weights give {checked.measured * 100:.2f}% on that hold-out")
    elif stated.folds:
        lines.append(f"a {stated.folds}-fold cross-validated estimate (folds: "
                     f"{', '.join(f'{a * 100:.1f}' for a in stated.per_fold)}); the training command on the card "
                     "reproduces it")
    if checked.cost is not None:
        c = checked.cost
        lines.append(f"verified: its cost per decision on those {c['recordings']} recordings ({c['effective_macs']:,.0f} "
                     f"effective MACs + {c['effective_acs']:,.0f} ACs, activation sparsity {c['activation_sparsity']:.4f})")
    return "\n".join(lines)


def upload(checked: Checked, repo: str, private: bool, token: str | None, tag: str | None = None) -> str:
    """create_repo + upload_folder (+ create_tag on that commit); returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=checked.folder, repo_id=repo, allow_patterns=list(REPO_FILES),
                               commit_message=f"stc-zoo checkpoint: {checked.stated.percent:.2f}% "
                                                              f"{checked.stated.split_name} accuracy")
    if tag:
        api.create_tag(repo, tag=tag, revision=commit.oid)
    return str(getattr(commit, "commit_url", commit))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub/publish.py", description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, help="folder written by training/train.py --export")
    parser.add_argument("--repo", required=True, help="Hub repo id, org/name")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--dry-run", action="store_true", help="validate and show what would be uploaded; no network")
    parser.add_argument("--verify-data", metavar="ROOT", help="dataset root: recompute the card's accuracy first")
    parser.add_argument("--tag", help="tag the new commit (e.g. v1) so users can pin it with revision=")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(args.repo)
        if "/" not in args.repo:
            raise ValueError("expected org/name")
        checked = validate(args.export_dir, args.verify_data)
    except (StcError, ValueError, FileNotFoundError) as err:
        print(f"publish: refused: {err}", file=sys.stderr)
        return 2
    print(report(checked, args.repo, args.private))
    if args.dry_run:
        print(f"\n--- {CARD_NAME} ---\n{checked.card_text}\n--- dry run: nothing was uploaded ---")
        return 0
    try:
        url = upload(checked, args.repo, args.private, args.token, args.tag)
    except Exception as err:  # huggingface_hub raises HTTP, auth and connection errors of many types
        print(f"publish: the Hub did not take the upload: {type(err).__name__}: {err}", file=sys.stderr)
        return 3
    print(f"published: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
