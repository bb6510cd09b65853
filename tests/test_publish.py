"""hub/publish.py: what it refuses, what a dry run shows, and that --verify-data recomputes the card."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eventfiles import write_tiny_nmnist
from hubserver import free_port
from stc_zoo import StcConfig, StcSNN
from stc_zoo.hub import checksums
from stc_zoo.hub import publish
from stc_zoo.hub.card import CardResult, read_card
from stc_zoo.data import NMNIST, stratified_split
from stc_zoo.data.compressed import compress_dataset
from stc_zoo.errors import CheckpointError
from stc_zoo.zoo import get_entry

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hub" / "publish.py"

TINY = StcConfig().replace(sensor_size=(34, 34), num_classes=3, T=2, ratio=2, spatial=2, channels=(4,), hidden=8)


def export(folder: Path, model: StcSNN, result: CardResult) -> Path:
    """The folder save_pretrained writes, with a card that states ``result`` (publishable as it is)."""
    model.save_pretrained(folder, model_card_kwargs=dict(name="acme/tiny", dataset="N-MNIST",
                                                         data_note="Tiny test data.", result=result,
                                                         command="python training/train.py ..."))
    return folder


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    return export(tmp_path / "export", StcSNN(TINY), CardResult(accuracy=0.5, samples=3, reader="nmnist"))


def run(*args: str) -> subprocess.CompletedProcess:
    # A dead endpoint: any network use would fail, so a passing dry run proves it used none.
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_dry_run_lists_the_files_and_the_card_without_a_network():
    out = run(str(get_entry("nmnist-t4").bundled), "--repo", "stc-zoo/nmnist-t4", "--dry-run")
    assert out.returncode == 0, out.stderr
    for name in ("config.json", "model.safetensors", "SHA256SUMS", "README.md"):
        assert name in out.stdout
    assert "library_name: stc-zoo" in out.stdout and "model-index" in out.stdout and "## Citation" in out.stdout
    _, stated = read_card(get_entry("nmnist-t4").bundled / "README.md")
    assert f"{stated.percent:.2f}% on {stated.describe()}" in out.stdout and "nothing was uploaded" in out.stdout
    assert f"a {stated.folds}-fold cross-validated estimate" in out.stdout


def test_an_unreachable_hub_is_reported_not_hidden(tiny):
    out = run(str(tiny), "--repo", "acme/tiny")
    assert out.returncode == 3 and "did not take the upload" in out.stderr, out.stderr


@pytest.mark.parametrize("damage, match", [
    (lambda f: (f / "README.md").unlink(), r"missing \['README.md'\]"),
    (lambda f: (f / "SHA256SUMS").unlink(), "python -m stc_zoo.hub.checksums"),
    (lambda f: (f / "optimizer.pt").write_bytes(b"\x80\x04"), r"unexpected files \['optimizer.pt'\]"),
    (lambda f: (f / "config.json").write_text((f / "config.json").read_text().replace('"hidden": 8', '"hidden": 9')),
     "config.json: SHA-256 does not match"),
    (lambda f: ((f / "config.json").write_text((f / "config.json").read_text().replace('"hidden": 8', '"hidden": 9')),
                checksums.write(f)), "model.safetensors: tensor shapes do not match"),
    (lambda f: (f / "README.md").write_text("# no header\n"), "library_name"),
    (lambda f: (f / "README.md").write_text((f / "README.md").read_text().replace("## Limitations", "## Notes")),
     "lacks the sections"),
    (lambda f: (f / "README.md").write_text((f / "README.md").read_text().replace("      args:\n", "      argz:\n")),
     "split description"),
])
def test_validation_refuses_a_damaged_or_incomplete_folder(tiny, damage, match):
    publish.validate(tiny)  # whole, it passes
    damage(tiny)
    with pytest.raises(CheckpointError, match=match):
        publish.validate(tiny)


def test_a_refused_folder_or_repo_id_exits_2(tiny, capsys):
    """Each refusal on its own: a bad repo id on a folder that is fine (it would exit 2 for the folder alone
    if it were tried on a broken one), and a broken folder under a good repo id."""
    assert publish.main([str(tiny), "--repo", "acme/tiny", "--dry-run"]) == 0
    capsys.readouterr()
    assert publish.main([str(tiny), "--repo", "not a repo id", "--dry-run"]) == 2
    assert "not a repo id" in capsys.readouterr().err
    (tiny / "README.md").unlink()
    assert publish.main([str(tiny), "--repo", "acme/tiny", "--dry-run"]) == 2
    assert "README.md" in capsys.readouterr().err


def test_verify_data_recomputes_the_stated_accuracy(tmp_path):
    data = write_tiny_nmnist(tmp_path / "data", per_class=10)
    torch.manual_seed(1)
    model = StcSNN(TINY).eval()
    # The accuracy measured independently: the training path (cached compression, a batched forward).
    dataset = NMNIST(data, "train")
    _, held = stratified_split(dataset.targets, 0.2, seed=3)
    X, y = compress_dataset(dataset, model.pipeline)
    with torch.no_grad():
        measured = (model(X[held].transpose(0, 1)).argmax(-1) == y[held]).float().mean().item()

    right = CardResult(accuracy=measured, samples=len(held), reader="nmnist", val_fraction=0.2, seed=3)
    checked = publish.validate(export(tmp_path / "right", model, right), verify_data=str(data))
    assert checked.measured == pytest.approx(measured)

    wrong = CardResult(accuracy=min(measured + 0.2, 1.0) if measured < 0.9 else measured - 0.2,
                       samples=len(held), reader="nmnist", val_fraction=0.2, seed=3)
    with pytest.raises(CheckpointError, match=f"the weights give {measured * 100:.2f}%"):
        publish.validate(export(tmp_path / "wrong", model, wrong), verify_data=str(data))
    other_split = CardResult(accuracy=measured, samples=len(held) + 1, reader="nmnist", val_fraction=0.2, seed=3)
    with pytest.raises(CheckpointError, match="not the data the card was measured on"):
        publish.validate(export(tmp_path / "other", model, other_split), verify_data=str(data))
