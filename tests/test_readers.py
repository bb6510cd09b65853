"""Readers decode exactly what the format writers in eventfiles.py wrote, and the real subset."""

from pathlib import Path

import numpy as np
import pytest

from eventfiles import (SUBSET, random_events, write_aedat2_cifar10dvs, write_aedat31, write_labels_csv,
                        write_nmnist)
from stc_zoo import EventFormatError
from stc_zoo.data import (CIFAR10DVS, NMNIST, DVSGesture, read_aedat2_cifar10dvs, read_aedat31,
                          read_nmnist_file, stratified_split)



def assert_same_events(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    for f in "xytp":
        np.testing.assert_array_equal(got[f].astype(np.int64), want[f].astype(np.int64), err_msg=f)


@pytest.mark.parametrize("n", [0, 1, 517])
def test_nmnist_file_round_trip(tmp_path, n):
    events = random_events(np.random.default_rng(n), n, 34, 34, 2**23)
    write_nmnist(tmp_path / "a.bin", events)
    assert_same_events(read_nmnist_file(tmp_path / "a.bin"), events)


def test_nmnist_truncated_file_is_a_clear_error(tmp_path):
    write_nmnist(tmp_path / "a.bin", random_events(np.random.default_rng(0), 10, 34, 34, 1000))
    (tmp_path / "b.bin").write_bytes((tmp_path / "a.bin").read_bytes()[:-2])
    with pytest.raises(EventFormatError, match="b.bin"):
        read_nmnist_file(tmp_path / "b.bin")


def test_nmnist_layout_full_and_tonic_style(tmp_path):
    rng = np.random.default_rng(1)
    written = {}
    for split, root in (("Train", tmp_path / "a"), ("Test", tmp_path / "b" / "NMNIST")):
        for label in (0, 3, 9):
            for idx in (1, 12):
                ev = random_events(rng, 20 + label, 34, 34, 10_000)
                write_nmnist(root / split / str(label) / f"{idx:05d}.bin", ev)
                written[(split, label, idx)] = ev
    train = NMNIST(tmp_path / "a", "train")
    test = NMNIST(tmp_path / "b", "test")  # tonic extracts into <root>/NMNIST/
    assert train.targets == [0, 0, 3, 3, 9, 9] == test.targets
    events, label = train[2]
    assert label == 3
    assert_same_events(events, written[("Train", 3, 1)])
    with pytest.raises(FileNotFoundError, match="Test"):
        NMNIST(tmp_path / "a", "test")


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_real_nmnist_subset():
    data = NMNIST(SUBSET, "train")
    assert len(data) == 1000
    assert np.bincount(data.targets).tolist() == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    events = read_nmnist_file(SUBSET / "Train" / "5" / "00001.bin")
    first = events[0]
    assert (first["x"], first["y"], bool(first["p"]), first["t"]) == (18, 16, True, 893)
    assert (np.diff(events["t"]) >= 0).all()
    assert events["x"].max() < 34 and events["y"].max() < 34


def make_gesture_folder(root: Path, rng) -> dict:
    """Two recordings with three label windows each; t crosses 2**31 in the second."""
    truth = {}
    for name, t0 in (("user01_led", 0), ("user24_natural", 2**31 - 50_000)):
        events = random_events(rng, 400, 128, 128, 100_000)
        events["t"] += t0
        invalid = np.zeros(len(events), bool)
        invalid[::37] = True
        write_aedat31(root / f"{name}.aedat", events, invalid=invalid)
        windows = [(3, t0 + 1_000, t0 + 30_000), (11, t0 + 30_000, t0 + 61_000), (1, t0 + 70_000, t0 + 99_000)]
        write_labels_csv(root / f"{name}_labels.csv", windows)
        truth[name] = (events[~invalid], windows)
    (root / "trials_to_train.txt").write_text("user01_led.aedat\n")
    (root / "trials_to_test.txt").write_text("user24_natural.aedat\n")
    return truth


def test_aedat31_round_trip_skips_invalid_and_special_events(tmp_path):
    truth = make_gesture_folder(tmp_path, np.random.default_rng(2))
    for name, (events, _) in truth.items():
        assert_same_events(read_aedat31(tmp_path / f"{name}.aedat"), events)
    assert truth["user24_natural"][0]["t"].max() >= 2**31  # the overflow word was exercised


def test_dvsgesture_cuts_samples_by_label_windows(tmp_path):
    truth = make_gesture_folder(tmp_path, np.random.default_rng(3))
    for split, name in (("train", "user01_led"), ("test", "user24_natural")):
        data = DVSGesture(tmp_path, split)
        events, windows = truth[name]
        assert data.targets == [c - 1 for c, _, _ in windows]
        for i, (_, start, end) in enumerate(windows):
            want = events[(events["t"] >= start) & (events["t"] < end)]
            assert len(want) > 0
            assert_same_events(data[i][0], want)


def test_aedat_wrong_format_and_truncation(tmp_path):
    make_gesture_folder(tmp_path, np.random.default_rng(4))
    raw = (tmp_path / "user01_led.aedat").read_bytes()
    (tmp_path / "cut.aedat").write_bytes(raw[:-3])
    with pytest.raises(EventFormatError, match="cut.aedat"):
        read_aedat31(tmp_path / "cut.aedat")
    write_nmnist(tmp_path / "x.bin", random_events(np.random.default_rng(0), 9, 34, 34, 99))
    with pytest.raises(EventFormatError, match="AEDAT 3"):
        read_aedat31(tmp_path / "x.bin")
    with pytest.raises(EventFormatError, match="AEDAT 2"):
        read_aedat2_cifar10dvs(tmp_path / "user01_led.aedat")


@pytest.mark.parametrize("n", [0, 1, 333])
def test_cifar10dvs_aedat2_round_trip(tmp_path, n):
    events = random_events(np.random.default_rng(n), n, 128, 128, 2**32)
    write_aedat2_cifar10dvs(tmp_path / "a.aedat", events)
    assert_same_events(read_aedat2_cifar10dvs(tmp_path / "a.aedat"), events)


def test_cifar10dvs_seeded_per_class_split(tmp_path):
    from stc_zoo.data.cifar10dvs import CLASSES

    rng = np.random.default_rng(5)
    for c in CLASSES:
        for i in range(20):
            write_aedat2_cifar10dvs(tmp_path / c / f"cifar10_{c}_{i}.aedat", random_events(rng, 5, 128, 128, 100))
    train, test = CIFAR10DVS(tmp_path, "train"), CIFAR10DVS(tmp_path, "test")
    assert np.bincount(train.targets).tolist() == [18] * 10
    assert np.bincount(test.targets).tolist() == [2] * 10
    assert not set(train.files) & set(test.files)
    assert len(set(train.files) | set(test.files)) == 200
    assert CIFAR10DVS(tmp_path, "test").files == test.files  # fixed
    assert CIFAR10DVS(tmp_path, "test", seed=1).files != test.files  # seeded
    events, label = test[0]
    assert CLASSES[label] == test.files[0].parent.name and len(events) == 5


def test_stratified_split_is_per_class_and_reproducible():
    labels = [0] * 50 + [1] * 30 + [2] * 7
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(kept + held) == list(range(len(labels)))
    assert np.bincount(np.array(labels)[held]).tolist() == [10, 6, 1]
    assert (kept, held) == stratified_split(labels, 0.2, seed=3)
    assert held != stratified_split(labels, 0.2, seed=4)[1]
