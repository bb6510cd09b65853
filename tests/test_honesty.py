"""No card says more than was measured, and training runs cannot trample each other (issue 21, parts 1 and 3):
a hold-out the starting weights saw is refused, a saved copy keeps its provenance, evaluating on training
recordings says so, one run per folder, and a kill during a save leaves a whole checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from eventfiles import write_tiny_nmnist
from stc_zoo import StcConfig, StcSNN
from stc_zoo import training as train
from stc_zoo.cli import main as cli_main
from stc_zoo.hub import publish
from stc_zoo.hub.card import CardResult, read_card
from stc_zoo.zoo import get_entry

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "channels=[4]", "--set", "hidden=8", "--set", "T=2", "--set", "ratio=2", "--batch-size", "8",
        "--threads", "1", "--cache-dir", ""]
TINY_CONFIG = StcConfig().replace(channels=(4,), hidden=8, T=2, ratio=2, class_names=tuple("0123456789"))
BUNDLED = get_entry("nmnist-t4").bundled


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_nmnist(tmp_path_factory.mktemp("nmnist"))


def init_folder(path: Path, result: CardResult | None) -> Path:
    torch.manual_seed(0)
    kwargs = {"model_card_kwargs": {"name": "tiny", "dataset": "N-MNIST", "result": result}} if result else {}
    StcSNN(TINY_CONFIG).save_pretrained(path, **kwargs)
    return path


def run_train(data, out, *extra):
    return train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(out), *TINY, *extra])


# ------------------------------------------------------------------ --init and the hold-out
def test_a_hold_out_the_starting_weights_were_trained_on_is_refused(data, tmp_path, capsys):
    cv = CardResult(accuracy=0.9, samples=24, reader="nmnist", folds=2, std=0.01, per_fold=(0.9, 0.9), val_fraction=0)
    init = init_folder(tmp_path / "init", cv)
    with pytest.raises(SystemExit) as exit:
        run_train(data, tmp_path / "ft", "--init", str(init), "--epochs", "1", "--export", str(tmp_path / "x"))
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "was trained on 3 of the 3 recordings this run would hold out" in err
    assert "--set val_fraction=0" in err and not (tmp_path / "x").exists()
    # With no hold-out the run goes ahead, and its card states no result.
    run_train(data, tmp_path / "ft0", "--init", str(init), "--epochs", "1", "--set", "val_fraction=0",
              "--export", str(tmp_path / "x0"))
    assert "No accuracy is stated" in (tmp_path / "x0" / "README.md").read_text()


def test_the_starting_weights_own_hold_out_is_allowed(data, tmp_path):
    holdout = CardResult(accuracy=0.9, samples=6, reader="nmnist", val_fraction=0.25, seed=3)
    init = init_folder(tmp_path / "init", holdout)
    meta = run_train(data, tmp_path / "ft", "--init", str(init), "--epochs", "1", "--set", "val_fraction=0.25",
                     "--seed", "3")
    assert meta["epoch"] == 1 and not meta["holdout_unverified"]


@pytest.mark.parametrize("result", [
    None,  # a card with no result: what they saw is unknown
    # trained on another copy of the dataset (1,000 recordings, not these 24): which of these it saw is unknown
    CardResult(accuracy=0.9, samples=1000, reader="nmnist", folds=2, std=0.01, per_fold=(0.9, 0.9), val_fraction=0),
], ids=["no result", "other copy"])
def test_weights_of_unknown_training_data_give_a_card_publish_refuses(data, tmp_path, capsys, result):
    init = init_folder(tmp_path / "init", result)
    run_train(data, tmp_path / "ft", "--init", str(init), "--epochs", "1", "--set", "val_fraction=0.25",
              "--export", str(tmp_path / "export"))
    out = capsys.readouterr().out
    assert "WARNING: --init" in out and "NOT a verified hold-out" in out
    _, stated = read_card(tmp_path / "export" / "README.md")
    assert stated.holdout_unverified and "NOT verified unseen" in stated.describe()
    assert "**Not a verified hold-out result.**" in (tmp_path / "export" / "README.md").read_text()
    code = publish.main([str(tmp_path / "export"), "--repo", "acme/ft", "--dry-run"])
    assert code == 2 and "not a verified hold-out" in capsys.readouterr().err


# ------------------------------------------------------------------ a saved copy keeps its provenance
def test_an_unchanged_copy_keeps_the_source_card_and_result(tmp_path):
    model = StcSNN.from_pretrained("nmnist-t4")
    model.save_pretrained(tmp_path / "copy")
    assert (tmp_path / "copy" / "README.md").read_text() == (BUNDLED / "README.md").read_text()
    assert "stc-zoo model" not in (tmp_path / "copy" / "README.md").read_text()
    model.fuse_for_inference().save_pretrained(tmp_path / "folded")
    text = (tmp_path / "folded" / "README.md").read_text()
    assert "with BatchNorm folded into the convs" in text and "nmnist-t4 (" in text
    assert read_card(tmp_path / "folded" / "README.md")[1] == read_card(BUNDLED / "README.md")[1]


def test_an_edited_copy_names_its_source_and_changes_and_states_no_result(tmp_path):
    model = StcSNN.from_pretrained("nmnist-t4")
    with torch.no_grad():
        model.network.fc2.bias.add_(0.1)  # fine-tuned in Python, say
    model.save_pretrained(tmp_path / "edited")
    text = (tmp_path / "edited" / "README.md").read_text()
    assert "Derived from `nmnist-t4 (" in text and "weights changed since loading" in text
    assert "98.20% ± 1.03" in text  # the source's claim, said to be the source's
    assert "No accuracy is stated for these weights" in text and "model-index" not in text
    assert f'from_pretrained("{tmp_path / "edited"}")' in text and "stc-zoo model" not in text
    renamed = StcSNN.from_pretrained("nmnist-t4", num_classes=3)
    renamed.save_pretrained(tmp_path / "three")
    assert "config num_classes: 10 -> 3" in (tmp_path / "three" / "README.md").read_text()


def test_evaluate_on_training_recordings_says_so(data, tmp_path, capsys):
    cv = CardResult(accuracy=0.9, samples=24, reader="nmnist", folds=2, std=0.01, per_fold=(0.9, 0.9), val_fraction=0)
    init = init_folder(tmp_path / "model", cv)
    assert cli_main(["evaluate", str(init), "--data", str(data), "--split", "train", "--dataset", "nmnist"]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out.splitlines()[-1])
    assert result["trained_on"] == 24 and "24 of these 24 recordings were in the model's training data" in out.err
    bare = tmp_path / "bare"
    StcSNN(TINY_CONFIG).save_pretrained(bare)
    assert cli_main(["evaluate", str(bare), "--data", str(data), "--split", "train", "--dataset", "nmnist"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.splitlines()[-1])["trained_on"] == "unknown" and "is unknown" in out.err


# ------------------------------------------------------------------ one run per folder; kills during saves
def test_a_second_training_into_the_same_folder_is_refused_and_a_killed_one_leaves_no_lock(data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "stc_zoo.train", "--model", "nmnist-t4", "--data", str(data), "--out", str(out),
           *TINY, "--epochs", "500"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text():
            assert time.monotonic() < deadline and first.poll() is None, "the first run did not start"
            time.sleep(0.2)
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "is being written by another training (pid" in second.stderr, second.stderr
        assert str(first.pid) in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    again = subprocess.run([*cmd[:-1], "2", "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_a_kill_at_any_step_of_save_pretrained_leaves_the_old_checkpoint_or_the_new(tmp_path, swap):
    # a kill at every file-system event of the save, counted (not timed), with the atomic exchange and with the
    # two-rename fallback of kernels without it (whose kill between renames leaves the folder briefly absent)
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_during_save.py"), str(tmp_path / "ckpt"), swap],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["events"] >= 10 and seen["neither"] == [] and seen["A"] + seen["B"] == seen["events"] + 1, seen
    assert seen["A"] >= 1 and seen["B"] >= 1, seen  # kills before and after the swap
    assert (seen["parked"] >= 1) == (swap == "two-renames"), seen
    assert len(list(tmp_path.glob(".ckpt.*.tmp"))) <= 1  # killed writers' temp folders are cleared
    assert os.listdir(tmp_path / "ckpt") and StcSNN.from_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / ".ckpt.previous").exists()


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_save_pretrained_keeps_the_other_files_in_its_folder(tmp_path, monkeypatch, swap):
    from stc_zoo import atomic

    if swap == "two-renames":
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    config = StcConfig().replace(sensor_size=(34, 34), num_classes=3, T=2, ratio=2, channels=(8,), hidden=16)
    torch.manual_seed(0)
    first, second = StcSNN(config), StcSNN(config)
    folder = tmp_path / "ckpt"
    first.save_pretrained(folder)
    (folder / "notes.txt").write_text("mine")
    (folder / "plots").mkdir()
    (folder / "plots" / "loss.csv").write_text("1,2")
    second.save_pretrained(folder)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "plots" / "loss.csv").read_text() == "1,2"
    loaded = StcSNN.from_pretrained(folder)
    assert all(torch.equal(p, q) for p, q in zip(loaded.network.state_dict().values(),
                                                  second.network.state_dict().values()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp or parked folder left beside it
