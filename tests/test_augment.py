"""Training augmentation: event-level affine maps and dropout, and the cached-count shortcuts."""

import numpy as np
import pytest
import torch

from eventfiles import random_events, write_tiny_nmnist
from stc_zoo import StcConfig
from stc_zoo import training as train
from stc_zoo.training.data import augments_events, drop_events
from stc_zoo.augment import AugmentedEvents, EventAugment
from stc_zoo.config import InputConfig, NetworkConfig
from stc_zoo.transforms import SpatioTemporalCompression

SIZE = (34, 34)


def events(n=4000, seed=0):
    return random_events(np.random.default_rng(seed), n, *SIZE, 300_000)


def test_all_zero_is_the_identity():
    e = events()
    out = EventAugment()(e, SIZE, np.random.default_rng(0))
    assert np.array_equal(out, e)


def test_a_shift_translates_and_drops_what_leaves_the_sensor():
    e = events()
    out = EventAugment(shift=3)(e, SIZE, np.random.default_rng(1))
    dx, dy = np.random.default_rng(1).integers(-3, 4, size=2)  # the draw the augmentation made
    moved = e[(e["x"] + dx >= 0) & (e["x"] + dx < 34) & (e["y"] + dy >= 0) & (e["y"] + dy < 34)]
    assert np.array_equal(out["x"], moved["x"] + dx) and np.array_equal(out["y"], moved["y"] + dy)
    assert np.array_equal(out["t"], moved["t"]) and np.array_equal(out["p"], moved["p"])


@pytest.mark.parametrize("rotate, scale", [(15, 0.0), (0, 0.2), (10, 0.1)])
def test_rotation_and_zoom_keep_time_polarity_and_radial_geometry(rotate, scale):
    e = events()
    e = e[(np.hypot(e["x"] - 16.5, e["y"] - 16.5) < 12)]  # stays on the sensor under any of these maps
    for seed in range(5):
        out = EventAugment(rotate=rotate, scale=scale)(e, SIZE, np.random.default_rng(seed))
        assert len(out) == len(e) and np.array_equal(out["t"], e["t"]) and np.array_equal(out["p"], e["p"])
        r0, r1 = np.hypot(e["x"] - 16.5, e["y"] - 16.5), np.hypot(out["x"] - 16.5, out["y"] - 16.5)
        # distances from the centre scale by the zoom, up to the rounding to whole pixels (<= 0.71 px)
        assert np.all(r1 <= r0 * (1 + scale) + 0.71 + 1e-9) and np.all(r1 >= r0 * (1 - scale) - 0.71 - 1e-9)
    moved = EventAugment(rotate=rotate, scale=scale)(e, SIZE, np.random.default_rng(0))
    assert not np.array_equal(moved["x"], e["x"])


def test_event_dropout_drops_about_p_and_keeps_order():
    e = events(20000)
    out = EventAugment(drop=0.3)(e, SIZE, np.random.default_rng(2))
    assert abs(len(out) / len(e) - 0.7) < 0.02 and np.all(np.diff(out["t"].astype(np.int64)) >= 0)


def test_thinning_the_cache_keeps_counts_and_their_expectation():
    x = torch.randint(0, 6, (64, 4, 2, 8, 8)).float()
    thinned = drop_events(x, 0.25, torch.Generator().manual_seed(0))
    assert torch.all(thinned <= x) and torch.equal(thinned, thinned.round())
    assert abs(thinned.sum().item() / x.sum().item() - 0.75) < 0.01
    assert torch.equal(drop_events(x, 0.0, torch.Generator()), x)


def test_augmented_batches_are_the_compression_of_augmented_events_and_reproducible():
    config = InputConfig(sensor_size=SIZE, T=4, ratio=4)
    pipeline = SpatioTemporalCompression.from_config(config)
    recs = [events(3000, s) for s in range(6)]
    data = AugmentedEvents(recs, EventAugment(shift=2, rotate=10, scale=0.1, drop=0.1), pipeline)
    idx = torch.tensor([4, 0, 2])
    a = data.batch(idx, torch.Generator().manual_seed(5))
    b = data.batch(idx, torch.Generator().manual_seed(5))
    assert a.shape == (3, 4, 2, 34, 34) and torch.equal(a, b)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(5))))
    want = pipeline.batch([data.augment(recs[i], SIZE, rng) for i in idx.tolist()]).transpose(0, 1)
    assert torch.equal(a, want)
    assert not torch.equal(a, pipeline.batch([recs[i] for i in idx.tolist()]).transpose(0, 1))


def test_event_dropout_on_weighted_bins_is_refused(tmp_path, capsys):
    data = write_tiny_nmnist(tmp_path / "data")
    with pytest.raises(SystemExit, match="2"):
        train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "r"), "--cache-dir", "",
                    "--set", "channels=[4]", "--set", "hidden=8", "--set", "T=2", "--set", "ratio=2",
                    "--set", "decay=0.5", "--set", "event_drop=0.2", "--epochs", "1", "--threads", "1"])
    assert "event_drop thins event counts" in capsys.readouterr().err


def test_a_run_with_rotation_trains_on_events(tmp_path):
    data = write_tiny_nmnist(tmp_path / "data")
    meta = train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "r"), "--cache-dir", "",
                       "--set", "channels=[4]", "--set", "hidden=8", "--set", "T=2", "--set", "ratio=2",
                       "--set", "surrogate=arctan", "--set", "rotate=10", "--set", "scale=0.1",
                       "--set", "val_fraction=0.25", "--epochs", "2", "--threads", "1"])
    assert meta["epoch"] == 2 and meta["train_samples"] == 18
    assert augments_events(train.TrainConfig(rotate=5), StcConfig(InputConfig(SIZE, 4, 4), NetworkConfig()))
    assert not augments_events(train.TrainConfig(event_drop=0.2), StcConfig(InputConfig(SIZE, 4, 4),
                                                                                  NetworkConfig()))
