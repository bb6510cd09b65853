"""Your own labelled recordings: ROOT/<class>/<recording> folders, numpy formats, training on them."""

import json
from pathlib import Path

import numpy as np
import pytest

from eventfiles import random_events, write_nmnist
from stc_zoo.hub.card import read_card
from stc_zoo import StcSNN
from stc_zoo.data import EventFolder, read_event_file
from stc_zoo.errors import DatasetError, EventFormatError


def write_folder(root, classes=("circle", "square", "wave"), per_class=8, seed=0, split=None):
    """A labelled folder on the 34x34 sensor, recordings in several formats; returns root."""
    rng = np.random.default_rng(seed)
    base = root / split if split else root
    for c, name in enumerate(classes):
        (base / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ev = random_events(rng, 600 + 50 * c, 34, 34, 100_000)
            ev["x"] = np.clip(ev["x"] // 3 + 11 * c, 0, 33)  # a class-dependent place, so it can be learnt
            kind = i % 3
            if kind == 0:
                write_nmnist(base / name / f"{i:03d}.bin", ev)
            elif kind == 1:
                np.save(base / name / f"{i:03d}.npy", ev)
            else:  # plain (N, 4) columns x, y, t, p with polarity -1/1
                cols = np.stack([ev["x"], ev["y"], ev["t"], np.where(ev["p"], 1, -1)], axis=1).astype(np.int64)
                np.savez(base / name / f"{i:03d}.npz", events=cols)
    (base / "circle" / "notes.txt").write_text("not a recording")
    (base / ".cache").mkdir(exist_ok=True)
    return root


def test_folder_dataset_reads_classes_and_every_format(tmp_path):
    root = write_folder(tmp_path / "shapes")
    data = EventFolder(root)
    assert data.classes == ("circle", "square", "wave") and len(data) == 24
    assert data.targets == [0] * 8 + [1] * 8 + [2] * 8
    events, label = data[2]  # the .npz of circle
    assert label == 0 and str(data.files[2]).endswith(".npz") and set(np.unique(events["p"])) <= {0, 1}
    assert np.array_equal(read_event_file(data.files[0])["x"], data[0][0]["x"])
    with pytest.raises(DatasetError, match="no test/ folder"):
        EventFolder(root, split="test")
    split = write_folder(tmp_path / "split", split="train")
    write_folder(split, split="test", per_class=2, seed=1)
    assert len(EventFolder(split)) == 24 and len(EventFolder(split, split="test")) == 6
    with pytest.raises(DatasetError, match="at least two <class>/ folders"):
        EventFolder(tmp_path / "shapes" / "circle")


def test_npz_and_column_arrays(tmp_path):
    ev = random_events(np.random.default_rng(0), 50, 34, 34, 1000)
    np.savez(tmp_path / "fields.npz", x=ev["x"], y=ev["y"], t=ev["t"], p=ev["p"].astype(np.int8))
    np.save(tmp_path / "cols.npy", np.stack([ev["x"], ev["y"], ev["t"], ev["p"]], 1).astype(np.int32))
    for name in ("fields.npz", "cols.npy"):
        got = read_event_file(tmp_path / name)
        assert all(np.array_equal(got[f], ev[f]) for f in "xyt") and np.array_equal(got["p"], ev["p"])
    np.save(tmp_path / "bad.npy", np.zeros((5, 3), np.int64))
    with pytest.raises(EventFormatError, match=r"\(N, 4\) integer array with columns x, y, t, p"):
        read_event_file(tmp_path / "bad.npy")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(EventFormatError, match="found \\['a'\\]"):
        read_event_file(tmp_path / "other.npz")


def test_train_on_a_folder_from_the_zoo_and_reproduce_the_card(tmp_path, capsys):
    from stc_zoo import training as train
    from stc_zoo.cli import main

    root = write_folder(tmp_path / "shapes")
    export = tmp_path / "shapes-t4"
    train.main(["--model", "nmnist-t4", "--dataset", "folder", "--init", "nmnist-t4", "--data", str(root),
                "--out", str(tmp_path / "run"), "--cache-dir", "", "--epochs", "2", "--batch-size", "8",
                "--set", "val_fraction=0.25", "--export", str(export)])
    model = StcSNN.from_pretrained(export)
    assert model.config.class_names == ("circle", "square", "wave") and model.network.fc2.weight.shape[0] == 3
    card = (export / "README.md").read_text()
    assert "# shapes-t4" in card and "labelled folder" in card and "circle, square, wave" in card
    assert json.loads((tmp_path / "run" / "run.json").read_text())["reader"] == "folder"
    capsys.readouterr()
    assert main(["evaluate", str(export), "--data", str(root), "--split", "val"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the card's hold-out, re-drawn from the folder, gives the accuracy the card states
    stated = read_card(export / "README.md")[1]
    assert result["samples"] == stated.samples == 6 and round(result["accuracy"] * 100, 2) == stated.percent
    assert main(["predict", str(export), str(root / "wave" / "002.npz")]) == 0


def test_an_off_sensor_recording_is_named(tmp_path, capsys):
    from stc_zoo import training as train

    root = write_folder(tmp_path / "shapes")
    ev = random_events(np.random.default_rng(0), 100, 40, 40, 1000)
    np.save(root / "square" / "big.npy", ev)
    with pytest.raises(SystemExit):
        train.main(["--model", "nmnist-t4", "--dataset", "folder", "--data", str(root), "--out", str(tmp_path / "r"),
                    "--cache-dir", "", "--epochs", "1"])
    err = capsys.readouterr().err
    assert "big.npy" in err and "outside the sensor's" in err


# ---------------------------------------------------------------------------------- another camera
def davis_events(n=4000, seed=0):
    from stc_zoo.data import make_events

    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, 346, n), rng.integers(0, 260, n), np.sort(rng.integers(0, 300_000, n)),
                       rng.integers(0, 2, n))


def test_a_larger_camera_is_refused_until_fitted_explicitly():
    from stc_zoo.transforms import SpatioTemporalCompression

    ev = davis_events()
    with pytest.raises(EventFormatError, match="--fit crop\\|scale --sensor WxH"):
        StcSNN.from_pretrained("nmnist-t4").predict(ev)
    scaled = SpatioTemporalCompression((34, 34), T=1, ratio=1, fit="scale", source_size=(346, 260))
    want = np.zeros((2, 34, 34))
    for x, y, p in zip(ev["x"] // 11 + 1, ev["y"] // 11 + 5, ev["p"]):  # 346x260 / 11 -> 32x24, centred
        want[int(p), y, x] += 1
    assert np.array_equal(scaled(ev)[0].numpy(), want)
    crop = SpatioTemporalCompression((34, 34), T=1, ratio=1, fit="crop", source_size=(346, 260), crop_origin=(10, 20))
    inside = (ev["x"] >= 10) & (ev["x"] < 44) & (ev["y"] >= 20) & (ev["y"] < 54)
    assert crop(ev).sum() == inside.sum()
    model = StcSNN.from_pretrained("nmnist-t4", fit="scale", source_size=(346, 260))
    assert model.predict(ev).shape == (1,)
    with pytest.raises(Exception, match="needs source_size"):
        SpatioTemporalCompression((34, 34), T=1, fit="scale")
    with pytest.raises(Exception, match="outside the 346x260 camera"):
        SpatioTemporalCompression((34, 34), T=1, fit="crop", source_size=(346, 260), crop_origin=(340, 0))


def test_cli_fit_options(tmp_path, capsys):
    from stc_zoo.cli import main

    np.save(tmp_path / "davis.npy", davis_events())
    assert main(["predict", "nmnist-t4", str(tmp_path / "davis.npy"), "--fit", "scale", "--sensor", "346x260"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["predict", "nmnist-t4", str(tmp_path / "davis.npy")])
    assert "--fit crop|scale" in capsys.readouterr().err
    assert main(["predict", "nmnist-t4", str(tmp_path / "davis.npy"), "--fit", "crop"]) == 2
    assert "--fit and --sensor go together" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- tonic's datasets
class FakeTonicShapes:
    """A tonic-style dataset class (what tonic.datasets.* look like to the adapter), on disk under save_to."""

    sensor_size = (34, 34, 2)
    classes = ["ring", "bar"]

    def __init__(self, save_to, train=True):
        self.files = sorted((Path(save_to) / ("train" if train else "test")).glob("*.npy"))
        self.targets = [int(f.stem.split("-")[0]) for f in self.files]

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return np.load(self.files[i]), self.targets[i]


def test_any_tonic_dataset_by_name(tmp_path, monkeypatch, capsys):
    import tonic.datasets

    from stc_zoo import training as train
    from stc_zoo.cli import main
    from stc_zoo.data.tonic_adapter import reader

    monkeypatch.setattr(tonic.datasets, "FakeShapes", FakeTonicShapes, raising=False)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        (tmp_path / "fake" / split).mkdir(parents=True)
        for i in range(n):
            np.save(tmp_path / "fake" / split / f"{i % 2}-{i:02d}.npy", random_events(rng, 500, 34, 34, 50_000))
    data = reader("tonic:FakeShapes")(tmp_path / "fake", "test")
    assert len(data) == 4 and data.classes == ("ring", "bar") and data.sensor_size == (34, 34, 2)
    assert data.describe(1) == "tonic.datasets.FakeShapes[1]"
    with pytest.raises(DatasetError, match="tonic has no dataset 'NoSuchSet'"):
        reader("tonic:NoSuchSet")(tmp_path / "fake")
    train.main(["--model", "nmnist-t4", "--dataset", "tonic:FakeShapes", "--data", str(tmp_path / "fake"),
                "--out", str(tmp_path / "run"), "--cache-dir", "", "--epochs", "1", "--batch-size", "4",
                "--set", "val_fraction=0.25", "--init", "nmnist-t4", "--export", str(tmp_path / "export")])
    assert StcSNN.from_pretrained(tmp_path / "export").config.class_names == ("ring", "bar")
    card = (tmp_path / "export" / "README.md").read_text()
    assert "# export" in card and "read as tonic:FakeShapes" in card and "N-MNIST" not in card.split("## Data")[1][:300]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "export"), "--data", str(tmp_path / "fake"), "--split", "val"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 4
