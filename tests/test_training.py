"""training/train.py end to end on a tiny config: resume is exact, export loads, evaluate reports."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from stc_zoo.hub import publish
from eventfiles import write_tiny_nmnist
from stc_zoo import StcSNN

from stc_zoo import training as train

TINY = ["--set", "channels=[4]", "--set", "hidden=8", "--set", "surrogate=arctan", "--set", "T=2", "--set", "ratio=2",
        "--batch-size", "8", "--set", "val_fraction=0.25", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_nmnist(tmp_path_factory.mktemp("nmnist"))


def split_events(data):
    from stc_zoo.data import NMNIST

    test = NMNIST(data, "test")
    return [test.load_events(i) for i in range(len(test))]


def split_labels(data):
    from stc_zoo.data import NMNIST

    return torch.tensor(NMNIST(data, "test").targets)


def run(data, out, *extra):
    return train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(out), "--cache-dir", "",
                       *TINY, *extra])


def metrics(out):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_interrupted_and_resumed_run_equals_uninterrupted(data, tmp_path, monkeypatch, capsys):
    run(data, tmp_path / "whole", "--epochs", "3")

    from stc_zoo.training import loop

    real_epoch, calls = loop.run_epoch, []

    def dies_in_second_training_epoch(*args, **kwargs):
        calls.append(1)  # run_epoch is the training pass only
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "run_epoch", dies_in_second_training_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(data, tmp_path / "cut", "--epochs", "3")
    assert json.loads((tmp_path / "cut" / "metrics.jsonl").read_text())["epoch"] == 1
    monkeypatch.setattr(loop, "run_epoch", real_epoch)
    with pytest.raises(SystemExit, match="2"):
        run(data, tmp_path / "cut", "--epochs", "3")
    assert "pass --resume to continue it" in capsys.readouterr().err
    train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "cut"), "--cache-dir", "",
                "--resume", "--threads", "1"])

    whole, cut = load_file(tmp_path / "whole" / train.STATE), load_file(tmp_path / "cut" / train.STATE)
    assert whole.keys() == cut.keys() and any(k.startswith("optim/") for k in whole)
    for key in whole:
        assert torch.equal(whole[key], cut[key]), key
    assert metrics(tmp_path / "whole") == metrics(tmp_path / "cut")
    assert [m["epoch"] for m in metrics(tmp_path / "cut")] == [1, 2, 3]


def test_export_loads_and_evaluate_reports_json(data, tmp_path):
    meta = run(data, tmp_path / "run", "--epochs", "20", "--lr", "0.01", "--export", str(tmp_path / "export"))
    model = StcSNN.from_pretrained(tmp_path / "export")
    assert model.config.network.channels == (4,) and model.config.input.T == 2
    card = (tmp_path / "export" / "README.md").read_text()
    assert "library_name" in card and "subset of N-MNIST" in card and f"{meta['best_val_acc'] * 100:.2f}%" in card
    # The export is publishable as it is, and its card's accuracy is recomputed from the recordings.
    checked = publish.validate(tmp_path / "export", verify_data=str(data))
    assert checked.stated.percent == round(meta["best_val_acc"] * 100, 2) == round(checked.measured * 100, 2)
    # Its cost per decision is stated for the same hold-out, and recomputed on publishing.
    assert "## Cost per decision" in card and checked.cost["recordings"] == checked.stated.samples
    out = subprocess.run([sys.executable, "-m", "stc_zoo.cli", "evaluate", str(tmp_path / "export"),
                          "--data", str(data), "--split", "test"], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["samples"] == 24 and result["split"] == "test"
    assert result["accuracy"] == pytest.approx(float(model.predict(split_events(data)).eq(split_labels(data)).float().mean()))


def test_training_learns_what_chance_cannot(tmp_path):
    """Three classes with a clear spatial cue, 30 held out: >= 90% right has probability below 1e-6 for a
    model that learnt nothing (binomial, p = 1/3), so reaching it shows the training learns."""
    from math import comb

    data = write_tiny_nmnist(tmp_path / "d", per_class=40)
    meta = train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "run"), "--cache-dir", "",
                       "--set", "channels=[8]", "--set", "hidden=16", "--set", "T=2", "--set", "ratio=2",
                       "--batch-size", "8", "--set", "val_fraction=0.25", "--threads", "2", "--epochs", "8",
                       "--set", "keep=last"])
    held = meta["val_samples"]
    right = round(meta["history"][-1]["val_acc"] * held)
    chance = sum(comb(held, k) * (1 / 3) ** k * (2 / 3) ** (held - k) for k in range(right, held + 1))
    assert held == 30 and right >= 27 and chance < 1e-3, (right, held, chance)


def test_resume_can_extend_a_run(data, tmp_path):
    run(data, tmp_path / "r", "--epochs", "1", "--lr", "0.01")
    meta = train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "r"),
                       "--cache-dir", "", "--resume", "--epochs", "3", "--threads", "1"])
    assert meta["epoch"] == 3 and [m["epoch"] for m in metrics(tmp_path / "r")] == [1, 2, 3]
    assert json.loads((tmp_path / "r" / train.RUN).read_text())["train"]["epochs"] == 3
    lrs = [m["lr"] for m in metrics(tmp_path / "r")]  # lr after each epoch, on the stretched cosine
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(0.01 * 0.25) and lrs[2] == pytest.approx(0.0, abs=1e-12)


def test_unknown_override_is_refused(data, tmp_path, capsys):
    with pytest.raises(SystemExit, match="2"):
        run(data, tmp_path / "x", "--set", "n_heads=4")
    assert "unknown model fields ['n_heads']" in capsys.readouterr().err
