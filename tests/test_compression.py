"""Spatio-temporal compression against tonic's ToFrame and a fine-frame oracle."""


import numpy as np
import pytest
import torch
from tonic.transforms import ToFrame

from eventfiles import SUBSET, random_events
from stc_zoo import EventFormatError, SpatioTemporalCompression
from stc_zoo.data import make_events, read_nmnist_file



def to_frame(events, sensor, n_bins, split_by):
    kw = {"n_event_bins": n_bins} if split_by == "number" else {"n_time_bins": n_bins}
    return ToFrame(sensor_size=(*sensor, 2), **kw)(events.copy())


def oracle(events, sensor, T, ratio, split_by, spatial, decay):
    """Materialise the T * ratio fine frames with tonic, weight, sum each run, then sum-pool."""
    W, H = sensor
    fine = to_frame(events, sensor, T * ratio, split_by).astype(np.float64)
    if fine.shape[0] == 0:  # tonic returns no frame for an empty stream
        fine = np.zeros((T * ratio, 2, H, W))
    weights = decay ** (ratio - 1 - np.arange(ratio))
    steps = (fine.reshape(T, ratio, 2, H, W) * weights[None, :, None, None, None]).sum(1)
    Hs, Ws = -(-H // spatial), -(-W // spatial)
    padded = np.zeros((T, 2, Hs * spatial, Ws * spatial))
    padded[:, :, :H, :W] = steps
    return padded.reshape(T, 2, Hs, spatial, Ws, spatial).sum((3, 5))


STREAMS = [
    # (seed, n events, W, H, t_max): odd sensors, dense and sparse time, ties in time
    (0, 1000, 34, 34, 300_000),
    (1, 257, 17, 23, 50),
    (2, 5000, 128, 128, 6_000_000),
    (3, 9, 5, 7, 1_000),
]


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("T", [1, 3, 8])
def test_equals_tonic_to_frame_at_ratio_1(stream, split_by, T):
    seed, n, W, H, t_max = stream
    events = random_events(np.random.default_rng(seed), n, W, H, t_max)
    got = SpatioTemporalCompression((W, H), T, split_by=split_by)(events)
    want = to_frame(events, (W, H), T, split_by)
    assert got.dtype == torch.float32 and got.shape == (T, 2, H, W)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
@pytest.mark.parametrize("split_by", ["number", "time"])
def test_equals_tonic_to_frame_on_real_recordings(split_by):
    for path in sorted(SUBSET.glob("Train/*/0000*.bin"))[:5]:
        events = read_nmnist_file(path)
        got = SpatioTemporalCompression((34, 34), 16, split_by=split_by)(events)
        np.testing.assert_array_equal(got.numpy(), to_frame(events, (34, 34), 16, split_by))


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("ratio,spatial,decay", [(2, 1, 1.0), (4, 2, 0.8), (3, 4, 0.5), (5, 3, 0.9)])
@pytest.mark.parametrize("stream", STREAMS[:3])
def test_matches_fine_frame_oracle(stream, split_by, ratio, spatial, decay):
    seed, n, W, H, t_max = stream
    events = random_events(np.random.default_rng(seed + 10), n, W, H, t_max)
    for T in (1, 2, 4):
        got = SpatioTemporalCompression((W, H), T, ratio, split_by, spatial, decay)(events)
        want = oracle(events, (W, H), T, ratio, split_by, spatial, decay)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


def test_total_current_is_the_weighted_event_count():
    events = random_events(np.random.default_rng(7), 4000, 34, 34, 10**6)
    T, ratio, decay = 4, 5, 0.7
    X = SpatioTemporalCompression((34, 34), T, ratio, "number", 2, decay)(events)
    per_fine_bin = len(events) // (T * ratio)
    want = T * per_fine_bin * sum(decay**j for j in range(ratio))
    assert X.sum().item() == pytest.approx(want, rel=1e-6)


def test_batch_equals_samples_one_by_one_including_empty_and_tiny():
    rng = np.random.default_rng(8)
    streams = [random_events(rng, n, 34, 34, 10_000) for n in (300, 0, 1, 15, 999)]
    for split_by in ("number", "time"):
        stc = SpatioTemporalCompression((34, 34), 4, 2, split_by, 2, 0.5)
        batch = stc.batch(streams)
        assert batch.shape == (4, 5, 2, 17, 17)
        for b, events in enumerate(streams):
            torch.testing.assert_close(batch[:, b], stc(events), rtol=0, atol=0)
        assert batch[:, 1].abs().sum() == 0 and batch[:, 2].abs().sum() == 0  # too few events: no bin


def test_events_off_the_sensor_are_an_error_not_a_wrong_frame():
    stc = SpatioTemporalCompression((34, 34), 4)
    with pytest.raises(EventFormatError, match="'x'"):
        stc(make_events([3, 34], [1, 1], [0, 5], [0, 1]))
    with pytest.raises(EventFormatError, match="'p'"):
        make_events([3, 4], [1, 1], [0, 5], [0, 2])
    tonic_style = np.zeros(2, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])  # tonic.NMNIST's dtype
    tonic_style["p"] = [0, 2]
    with pytest.raises(EventFormatError, match="'p'"):
        stc(tonic_style)
    tonic_style["p"] = [0, 1]
    assert stc(tonic_style).sum() == 0  # 2 events < 4 bins: valid, and in no bin
    with pytest.raises(ValueError, match="split_by"):
        SpatioTemporalCompression((34, 34), 4, split_by="bins")


def test_unsorted_timestamps_are_sorted_with_a_warning():
    events = random_events(np.random.default_rng(9), 200, 34, 34, 10_000)
    shuffled = events[np.random.default_rng(0).permutation(len(events))]
    stc = SpatioTemporalCompression((34, 34), 4, 2, "time")
    with pytest.warns(UserWarning, match="not sorted"):
        got = stc(shuffled)
    torch.testing.assert_close(got, stc(events), rtol=0, atol=0)
