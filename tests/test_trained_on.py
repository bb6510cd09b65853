"""Which recordings weights saw survives another reader or copy (trained_on.json), and a cross-validation
continues a fold only under the same recipe (issue 30's provenance holes)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stc_zoo import StcSNN
from stc_zoo.data import NMNIST
from stc_zoo.hub.seen import Seen, read_seen, recording_digest


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from eventfiles import write_tiny_nmnist

    return write_tiny_nmnist(tmp_path_factory.mktemp("nmnist"))


def train(*argv):
    from stc_zoo import training

    return training.main(["--cache-dir", "", "--epochs", "1", "--batch-size", "8", *argv])


@pytest.fixture(scope="module")
def folder_export(data, tmp_path_factory):
    """nmnist-t4 trained on every recording of the tiny set read as a labelled folder (another reader)."""
    out = tmp_path_factory.mktemp("folder-run")
    train("--model", "nmnist-t4", "--dataset", "folder", "--data", str(data), "--out", str(out / "run"),
          "--set", "val_fraction=0", "--export", str(out / "export"))
    return out / "export"


def test_weights_trained_through_one_reader_are_known_under_another(data, folder_export, tmp_path, capsys):
    """The issue's case: trained with --dataset folder, then --init with the N-MNIST reader and --folds: the
    held-out recordings are the same events, so the run is refused."""
    seen = read_seen(folder_export)
    assert len(seen.recordings) == 24 and "read as folder" in seen.sources[0]
    with pytest.raises(SystemExit) as exit_:
        train("--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "cv"), "--folds", "3",
              "--init", str(folder_export))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "was trained on 8 of the 8 recordings this run would hold out" in err


def test_a_copy_of_the_files_elsewhere_is_still_the_same_recordings(data, folder_export, tmp_path, capsys):
    from stc_zoo.cli import main as cli

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert cli(["evaluate", str(folder_export), "--data", str(copy), "--dataset", "nmnist", "--split", "train"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.strip().splitlines()[-1])["trained_on"] == 24
    assert "24 of these 24 recordings were in the model's training data" in out.err


def test_source_images_count_as_seen():
    """N-MNIST's <i + 1>.bin shows MNIST image i; weights pretrained on a simulation of that image saw it."""
    seen = Seen(images={"MNIST train": ((1000, 60000),)})
    assert seen.overlap(["a" * 16, "b" * 16], [("MNIST train", 999), ("MNIST train", 1000)]) == [1]
    assert seen.union(Seen(images={"MNIST train": ((0, 1000),)})).images == {"MNIST train": ((0, 60000),)}


def test_the_n_mnist_reader_names_each_recordings_source_image(tmp_path):
    from eventfiles import random_events, write_nmnist

    events = random_events(np.random.default_rng(0), 50, 34, 34, 1000)
    for name in ("00001", "01000"):
        write_nmnist(tmp_path / "Train" / "3" / f"{name}.bin", events)
    write_nmnist(tmp_path / "Test" / "3" / "00007.bin", events)
    assert [NMNIST(tmp_path).source_image(i) for i in range(2)] == [("MNIST train", 0), ("MNIST train", 999)]
    assert NMNIST(tmp_path, "test").source_image(0) == ("MNIST test", 6)


def test_a_digest_is_the_events_not_the_file():
    from eventfiles import random_events

    events = random_events(np.random.default_rng(0), 100, 34, 34, 10_000)
    same = events.astype([("x", "<i4"), ("y", "<i4"), ("t", "<i8"), ("p", "u1")])
    assert recording_digest(events) == recording_digest(same)
    moved = events.copy()
    moved["t"][-1] += 1
    assert recording_digest(moved) != recording_digest(events)


def test_the_bundled_checkpoints_say_what_they_saw():
    model = StcSNN.from_pretrained("nmnist-t4")
    assert len(model.trained_on.recordings) == 1000  # the subset's real recordings, of MNIST images 0..999
    ranges = model.trained_on.images["MNIST train"]
    seen = {i for start, stop in ranges for i in range(start, stop)}
    # and, through its pretrained start, the simulated saccades of 57,819 of the images 1000..59999
    assert set(range(1000)) <= seen and len(seen) == 1000 + 57_819 and max(seen) < 60_000


def test_a_saved_copy_keeps_trained_on_until_its_weights_change(tmp_path):
    model = StcSNN.from_pretrained("nmnist-t4")
    model.save_pretrained(tmp_path / "copy")
    assert read_seen(tmp_path / "copy") == model.trained_on
    with torch.no_grad():
        model.network.fc2.bias.add_(1.0)  # trained or edited: it saw something the file does not say
    model.save_pretrained(tmp_path / "edited")
    assert read_seen(tmp_path / "edited") is None


def test_a_fold_is_continued_only_under_the_same_recipe(data, tmp_path, capsys):
    """A fold folder trained from --init weights is not collected under a command without --init (nor with
    --freeze-blocks, another --backbone-lr-scale or another reader)."""
    args = ["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "cv"), "--folds", "3", "--fold", "1"]
    train(*args, "--init", "nmnist-t4")
    recipe = json.loads((tmp_path / "cv" / "fold-1" / "run.json").read_text())["recipe"]
    assert recipe["init"]["from"] == "nmnist-t4" and len(recipe["init"]["weights_sha256"]) == 64
    for changed, what in (([], "init"), (["--init", "nmnist-t4", "--freeze-blocks"], "freeze_blocks"),
                          (["--init", "nmnist-t4", "--backbone-lr-scale", "0.5"], "backbone_lr_scale"),
                          (["--init", "nmnist-t4", "--dataset", "folder"], "reader")):
        with pytest.raises(SystemExit) as exit_:
            train(*args, *changed)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and what in err.split("another recipe (it differs in ")[1].split(")")[0], err
    train(*args, "--init", "nmnist-t4")  # the same recipe: the finished fold is kept
    assert "fold 1/3" in capsys.readouterr().out


def test_the_committed_pretrained_weights_say_they_saw_simulations_of_images_1000_to_59999_only():
    """training/pretrained/nmnist-t4-sim (the start of the fine-tuning runs) saw no real recording and none of
    the subset's source images (0..999), so a hold-out of the subset is never refused for it, and its card
    says what it was trained on."""
    folder = Path(__file__).resolve().parents[1] / "training" / "pretrained" / "nmnist-t4-sim"
    model = StcSNN.from_pretrained(folder)
    seen = model.trained_on
    runs = seen.images["MNIST train"]
    assert not seen.recordings and runs[0][0] == 1000 and runs[-1][1] == 60000
    assert 57_000 < sum(b - a for a, b in runs) <= 59_000
    assert not seen.saw_image(("MNIST train", 999)) and seen.saw_image(("MNIST train", 1000))
    assert "never on a real recording" in (folder / "README.md").read_text()
