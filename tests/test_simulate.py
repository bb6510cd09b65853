"""The event-camera simulator: the pixel model on frames whose answer is known, the saccades, the images.

Speed is measured by benchmarks/simulate.py, not here.
"""

import gzip
import math
import struct
import tracemalloc

import numpy as np
import pytest

from stc_zoo.errors import SimulationError
from stc_zoo.simulate import PixelParams, SaccadeParams, frames_to_events, saccades
from stc_zoo.simulate.images import image_folder, read_idx, read_image, read_mnist
from stc_zoo.simulate.pixel import _crossings
from stc_zoo.simulate.randomize import Randomization

QUIET = PixelParams(mismatch=0.0, noise_hz=0.0, refractory_us=0.0)


def step(before: float, after: float, size=(4, 5), at_us=(0, 1000)) -> tuple[np.ndarray, np.ndarray]:
    frames = np.stack([np.full(size, before), np.full(size, after)])
    return frames, np.array(at_us)


# ------------------------------------------------------------------ the pixel model
@pytest.mark.parametrize("steps_up", [1, 3, 7])
def test_a_step_crosses_one_threshold_per_event_at_the_interpolated_times(steps_up):
    """From a memorised level equal to the first frame, a rise of (k + 0.5) thresholds gives exactly k ON
    events, the j-th where the line between the frames crosses j thresholds."""
    theta, floor = 0.2, 0.02
    a = math.log(0.1 + floor)
    b = a + (steps_up + 0.5) * theta
    frames = np.array([np.full((1, 1), 0.1), np.full((1, 1), math.exp(b) - floor)])
    ref = np.full((1, 1), a)
    thr = np.full((1, 1), theta)
    x, y, t, p = _crossings(frames, np.array([1000, 2000], np.int64), floor, thr, thr, ref, 10 ** 6)
    assert len(t) == steps_up and p.all()
    expected = [1000 + math.floor(j * theta / (b - a) * 1000) for j in range(1, steps_up + 1)]
    assert np.abs(t - np.array(expected)).max() <= 1  # the level is summed threshold by threshold: rounding
    assert ref[0, 0] == pytest.approx(a + steps_up * theta)  # the level of the last event is memorised
    # and down again by as many thresholds and a half: as many OFF events
    down = np.array([frames[1], np.full((1, 1), math.exp(a - 0.5 * theta) - floor)])
    back = _crossings(down, np.array([2000, 3000], np.int64), floor, thr, thr, ref, 10 ** 6)
    assert len(back[3]) == steps_up and not back[3].any()


@pytest.mark.parametrize("contrast", [1.3, 2.5])
def test_a_step_edge_gives_its_expected_count_per_threshold_on_average(contrast):
    """Starting levels are uniform between the two thresholds, so a rise of D thresholds gives D - 1/2
    events per pixel on average (E floor(U(D - 1, D + 1)) for D >= 1); OFF alike for a fall."""
    theta = 0.25
    rise = contrast * theta
    lo = 0.3
    hi = math.exp(math.log(lo + QUIET.floor) + rise) - QUIET.floor
    params = QUIET.replace(threshold_on=theta, threshold_off=theta)
    on = frames_to_events(*step(lo, hi, size=(60, 60)), params=params, seed=1)
    off = frames_to_events(*step(hi, lo, size=(60, 60)), params=params, seed=2)
    for events, polarity in ((on, True), (off, False)):
        assert (events["p"] == polarity).all()
        per_pixel = len(events) / 3600
        assert per_pixel == pytest.approx(contrast - 0.5, abs=0.05), per_pixel


def test_a_moving_edge_fires_each_pixel_as_it_passes():
    """A bright edge moving right one pixel per frame: each column fires ON at its own frame, in order."""
    width = 8
    frames = np.stack([np.where(np.arange(width) < k, 1.0, 0.0)[None, :].repeat(3, 0) for k in range(width + 1)])
    times = np.arange(width + 1) * 1000
    events = frames_to_events(frames, times, QUIET.replace(threshold_on=1.0, threshold_off=1.0), seed=0)
    assert events["p"].all()
    # the log contrast is log(1.02 / 0.02) ~ 3.93: 3 or 4 events per pixel, each within its column's frame
    per_pixel = np.bincount(events["y"] * width + events["x"], minlength=3 * width)
    assert set(per_pixel.tolist()) <= {3, 4}
    assert ((events["t"] // 1000) == events["x"]).all()


def test_refractory_period_drops_a_pixels_events_within_it():
    frames, times = step(0.05, 1.0, size=(3, 3), at_us=(0, 100))
    free = frames_to_events(frames, times, QUIET.replace(threshold_on=0.1), seed=0)
    held = frames_to_events(frames, times, QUIET.replace(threshold_on=0.1, refractory_us=1000), seed=0)
    assert len(free) > 9 * 10 and len(held) == 9  # 100 us of changes: one event per pixel survives
    assert len(np.unique(held["y"] * 3 + held["x"])) == 9


def test_background_noise_rate_and_hot_pixels():
    frames, times = step(0.5, 0.5, size=(40, 40), at_us=(0, 10_000_000))  # 10 s of a still scene
    params = QUIET.replace(noise_hz=2.0, noise_spread=1.5)
    events = frames_to_events(frames, times, params, seed=3)
    expected = 2.0 * 1600 * 10
    assert abs(len(events) - expected) < 6 * math.sqrt(expected) + 0.1 * expected  # rates log-normal around 2 Hz
    counts = np.bincount(events["y"].astype(int) * 40 + events["x"], minlength=1600)
    assert counts.max() > 8 * counts.mean()  # a few hot pixels fire far above the rest
    assert abs(events["p"].mean() - 0.5) < 0.03


def test_events_are_sorted_deterministic_and_seeded():
    rng = np.random.default_rng(0)
    frames = rng.random((20, 9, 11))
    times = np.arange(20) * 700
    params = PixelParams(noise_hz=50.0)
    a, b = frames_to_events(frames, times, params, seed=5), frames_to_events(frames, times, params, seed=5)
    c = frames_to_events(frames, times, params, seed=6)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert (np.diff(a["t"]) >= 0).all() and a["t"].min() >= 0 and a["t"].max() < times[-1]
    assert a["x"].max() < 11 and a["y"].max() < 9


@pytest.mark.parametrize("frames, times, message", [
    (np.zeros((4, 4)), np.arange(1), "must be \\[N, H, W\\]"),
    (np.zeros((1, 4, 4)), np.arange(1), "at least 2 frames"),
    (np.array([np.zeros((2, 2)), np.full((2, 2), np.nan)]), [0, 1], "frames\\[1\\] holds NaN or Inf"),
    (np.full((2, 2, 2), -1.0), [0, 1], "intensities >= 0"),
    (np.zeros((3, 2, 2)), [0, 5, 5], "strictly increasing: times_us\\[2\\] = 5 after 5"),
    (np.zeros((2, 2, 2)), [0.5, 1.0], "whole microseconds"),
    (np.zeros((2, 2, 2)), [0, 1, 2], "one time per frame"),
    (np.zeros((2, 2, 2), dtype=bool), [0, 1], "dtype bool"),
])
def test_bad_frames_are_refused_naming_the_field(frames, times, message):
    with pytest.raises(SimulationError, match=message):
        frames_to_events(frames, times)


@pytest.mark.parametrize("change, field", [({"threshold_on": 0.0}, "threshold_on"), ({"noise_hz": -1}, "noise_hz"),
                                            ({"floor": float("nan")}, "floor"), ({"mismatch": True}, "mismatch")])
def test_pixel_parameters_out_of_range_are_refused(change, field):
    with pytest.raises(SimulationError, match=f"PixelParams.{field}"):
        PixelParams(**change)


# ------------------------------------------------------------------ saccades
def digit() -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255  # a bright vertical bar
    return image


def test_saccades_give_a_recording_like_n_mnists():
    events = saccades(digit(), seed=0)
    params = SaccadeParams()
    assert events.dtype.names == ("x", "y", "t", "p")
    assert events["x"].max() < 34 and events["y"].max() < 34 and events["t"].max() < params.duration_us
    bursts = np.histogram(events["t"], bins=[0, 105_000, 210_000, 315_000])[0]
    assert (bursts > 100).all()  # three saccades, each moving the bar
    assert saccades(digit(), seed=0).tobytes() == events.tobytes()


def test_polarity_convention_brightening_is_on_before_n_mnists_inversion():
    """The bar moves right in the third saccade (path (-7, 0) moves the image left): with the N-MNIST
    inversion off, ON events (brighter) lie on the bar's leading (left) edge, OFF on the trailing."""
    params = SaccadeParams(invert_polarity=False, pixel=QUIET)
    events = saccades(digit(), params=params)
    third = events[events["t"] >= 2 * params.period_us]
    on, off = third[third["p"]], third[~third["p"]]
    assert on["x"].mean() < off["x"].mean() - 1
    inverted = saccades(digit(), params=params.replace(invert_polarity=True))
    assert (inverted["p"] == ~events["p"]).all()


def test_bad_images_and_parameters_are_refused():
    with pytest.raises(SimulationError, match="image must be \\[H, W\\]"):
        saccades(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(SimulationError, match="NaN or Inf"):
        saccades(np.full((28, 28), np.nan))
    with pytest.raises(SimulationError, match="values in \\[0, 1\\]"):
        saccades(np.full((28, 28), 3.0))
    with pytest.raises(SimulationError, match="dtype int64"):
        saccades(np.zeros((28, 28), np.int64))
    with pytest.raises(SimulationError, match="SaccadeParams.gamma"):
        saccades(digit(), gamma=0.0)
    with pytest.raises(SimulationError, match="must not exceed period_us"):
        SaccadeParams(move_us=200_000)


def test_randomised_parameters_vary_around_the_calibrated_ones_and_are_seeded():
    base = SaccadeParams()
    draws = [Randomization().draw(np.random.default_rng(s), base) for s in range(50)]
    thresholds = np.array([d.pixel.threshold_on for d in draws])
    assert thresholds.min() < base.pixel.threshold_on < thresholds.max()
    assert np.all(np.abs(np.log(thresholds / base.pixel.threshold_on)) <= 0.35 + 1e-9)
    assert Randomization().draw(np.random.default_rng(1), base) == draws[1]
    assert Randomization(**{k: 0.0 for k in Randomization().to_dict()}).draw(np.random.default_rng(0), base) == base


def test_parameters_round_trip_through_json():
    params = SaccadeParams(start=(1.0, -2.0), pixel=PixelParams(noise_hz=3.0))
    assert SaccadeParams.from_dict(params.to_dict()) == params
    with pytest.raises(SimulationError, match="unexpected keyword"):
        SaccadeParams.from_dict({"speed": 3})


# ------------------------------------------------------------------ images
def write_idx(path, array: np.ndarray, claimed=None, compress=False) -> None:
    dims = claimed if claimed is not None else array.shape
    data = bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + array.tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_read_whole_or_in_rows(tmp_path, compress):
    images = np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress=compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress=compress)
    got, got_labels = read_mnist(tmp_path)
    assert (got == images).all() and (got_labels == labels).all()
    rows, row_labels = read_mnist(tmp_path, range(2, 4))
    assert (rows == images[2:4]).all() and row_labels.tolist() == [4, 1]


@pytest.mark.parametrize("compress", [False, True])
def test_idx_headers_that_lie_are_refused_before_allocating(tmp_path, compress):
    images = np.zeros((3, 28, 28), np.uint8)
    path = tmp_path / ("bomb.gz" if compress else "bomb")
    write_idx(path, images, claimed=(2_000_000, 28, 28), compress=compress)  # 1.6 GB promised, 2 KB there
    tracemalloc.start()
    try:
        with pytest.raises(SimulationError, match="bomb.*(promise more data|need)"):
            read_idx(path)
        assert tracemalloc.get_traced_memory()[1] < 64 << 20  # the peak: chunks, never the promised size
    finally:
        tracemalloc.stop()
    write_idx(path, images, claimed=(9_000_000, 28, 28), compress=compress)  # 7 GB: more than one read may hold
    with pytest.raises(SimulationError, match="bomb.*(more than one read holds|need)"):
        read_idx(path)
    write_idx(path, images, claimed=(3, 28, 28), compress=compress)
    path.write_bytes(path.read_bytes()[:-100]) if not compress else None
    if not compress:
        with pytest.raises(SimulationError, match="truncated"):
            read_idx(path)
    with pytest.raises(SimulationError, match="not an IDX file"):
        (tmp_path / "png").write_bytes(b"\x89PNG\r\n")
        read_idx(tmp_path / "png")
    with pytest.raises(SimulationError, match="rows 2..5"):
        write_idx(path, images, compress=compress)
        read_idx(path, range(2, 6))


def test_mnist_folder_without_its_files_says_which(tmp_path):
    with pytest.raises(SimulationError, match="train-images-idx3-ubyte"):
        read_mnist(tmp_path)


def test_image_folders(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        PIL.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(tmp_path / c / "a.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    classes, items = image_folder(tmp_path)
    assert classes == ("cat", "dog") and [label for _, label in items] == [0, 1]
    assert read_image(items[0][0]).shape == (10, 12)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SimulationError, match="broken.png: not a readable image"):
        read_image(tmp_path / "cat" / "broken.png")
    with pytest.raises(SimulationError, match="no images"):
        (tmp_path / "empty").mkdir()
        image_folder(tmp_path / "empty")


# ------------------------------------------------------------------ stc-zoo simulate and the dataset
def tiny_mnist(root, count: int = 12):
    """IDX files of ``count`` images: class c is a bright bar at column 4 + 2c (a cue simulation keeps)."""
    images = np.zeros((count, 28, 28), np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 3
    for i, c in enumerate(labels):
        images[i, 6:22, 4 + 6 * c:8 + 6 * c] = 255
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte", images)
    write_idx(root / "train-labels-idx1-ubyte.gz", labels, compress=True)
    return images, labels


def test_simulate_writes_an_n_mnist_folder_the_readers_read(tmp_path):
    from stc_zoo.cli import main as cli
    from stc_zoo.data import NMNIST, EventFolder

    images, labels = tiny_mnist(tmp_path / "mnist")
    out = tmp_path / "sim"
    assert cli(["simulate", "--mnist", str(tmp_path / "mnist"), "--range", "2:8", "--out", str(out),
                "--format", "bin"]) == 0
    dataset = NMNIST(out, "train")
    assert sorted(f.name for f in dataset.files) == [f"{i + 1:05d}.bin" for i in range(2, 8)]
    for f, target in zip(dataset.files, dataset.targets):
        i = int(f.stem) - 1
        assert target == labels[i]
        assert dataset.load_events(dataset.files.index(f)).tobytes() == saccades(images[i], seed=i).tobytes()
    assert len(EventFolder(out, "train")) == 6


def test_simulate_is_resumable_and_a_killed_run_leaves_only_complete_files(tmp_path, monkeypatch):
    from stc_zoo.simulate import write
    from stc_zoo.simulate.spec import Simulation

    tiny_mnist(tmp_path / "mnist")
    sim = Simulation("mnist", str(tmp_path / "mnist"))
    out = tmp_path / "sim"
    real_write = write.write_recording
    calls = []

    def dies_on_the_fifth(path, events, fmt):
        calls.append(path)
        if len(calls) == 5:  # killed while writing: whatever it had begun is a temp file, never the name
            path.with_name(path.name + ".x.tmp").write_bytes(b"partial")
            raise KeyboardInterrupt
        real_write(path, events, fmt)

    monkeypatch.setattr(write, "write_recording", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        write.write_folder(sim, out, "npz", progress=False)
    finished = sorted(out.rglob("*.npz"))
    assert len(finished) == 4
    monkeypatch.setattr(write, "write_recording", real_write)
    result = write.write_folder(sim, out, "npz", progress=False)
    assert (result.written, result.skipped) == (8, 4)
    assert len(sorted(out.rglob("*.npz"))) == 12
    with pytest.raises(SimulationError, match="another simulation \\(it differs in seed\\)"):
        write.write_folder(Simulation("mnist", str(tmp_path / "mnist"), seed=3), out, "npz", progress=False)


def test_training_simulates_from_the_simulation_file_alone(tmp_path):
    """--spec-only writes simulation.json; --dataset simulated trains from it (no recordings on disk), the
    events those of saccades(image, seed=i), and a class cue the simulation keeps is learnt."""
    from stc_zoo.cli import main as cli
    from stc_zoo.data import SimulatedDataset
    from stc_zoo.training import main as train

    images, labels = tiny_mnist(tmp_path / "mnist", count=60)
    spec = tmp_path / "spec"
    assert cli(["simulate", "--mnist", str(tmp_path / "mnist"), "--range", "0:60", "--out", str(spec),
                "--spec-only"]) == 0
    assert [p.name for p in spec.iterdir()] == ["simulation.json"]
    dataset = SimulatedDataset(spec)
    assert dataset.targets == labels.tolist() and dataset.classes == tuple("0123456789")
    assert dataset.load_events(7).tobytes() == saccades(images[7], seed=7).tobytes()
    meta = train(["--model", "nmnist-t4", "--dataset", "simulated", "--data", str(spec), "--out",
                  str(tmp_path / "run"), "--epochs", "12", "--batch-size", "8", "--set", "val_fraction=0.25", "--cache-dir", "",
                  "--set", "class_names=[\"0\",\"1\",\"2\"]", "--set", "num_classes=3", "--threads", "2"])
    assert meta["val_samples"] == 15 and meta["history"][-1]["val_acc"] >= 0.9
    # the weights say which images they saw (the 45 kept of MNIST images 0..59) and that none was real
    from stc_zoo.hub.seen import read_seen
    from stc_zoo.training.run import export_finished
    from stc_zoo.training.cli import parse_args

    export_finished(parse_args(["--model", "nmnist-t4", "--dataset", "simulated", "--data", str(spec), "--out",
                                str(tmp_path / "run"), "--export", str(tmp_path / "export")]))
    seen = read_seen(tmp_path / "export")
    assert not seen.recordings and sum(b - a for a, b in seen.images["MNIST train"]) == 45
    card = (tmp_path / "export" / "README.md").read_text()
    assert "never on a real recording" in card and "MNIST train images 0..59" in card and '"threshold_on": 0.468' in card


@pytest.mark.parametrize("argv, message", [
    (["--range", "5"], "--range must be FIRST:STOP"),
    (["--range", "10:1000"], "images 10..999 are not within MNIST's 12"),
    (["--set", "speed=3"], "--set speed: no such parameter"),
    (["--set", "pixel.noise_hz=-2"], "PixelParams.noise_hz"),
    (["--limit", "0"], "--limit must be >= 1"),
])
def test_simulate_refuses_bad_options_with_exit_2(tmp_path, capsys, argv, message):
    from stc_zoo.cli import main as cli

    tiny_mnist(tmp_path / "mnist")
    assert cli(["simulate", "--mnist", str(tmp_path / "mnist"), "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_simulate_refuses_empty_folders(tmp_path, capsys):
    from stc_zoo.cli import main as cli

    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert cli(["simulate", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no images" in capsys.readouterr().err
    assert cli(["simulate", "--frames", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no frame arrays" in capsys.readouterr().err


def test_frame_folders_simulate_through_the_pixel_model(tmp_path, capsys):
    from stc_zoo.cli import main as cli
    from stc_zoo.data import EventFolder

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "frames" / c).mkdir(parents=True)
        np.savez(tmp_path / "frames" / c / "clip.npz", frames=rng.random((6, 5, 7)), times_us=np.arange(6) * 1000)
    np.savez(tmp_path / "frames" / "b" / "z-bad.npz", frames=rng.random((3, 5, 7)), times_us=[0, 2, 1])
    out = tmp_path / "out"
    assert cli(["simulate", "--frames", str(tmp_path / "frames"), "--out", str(out), "--limit", "2"]) == 0
    folder = EventFolder(out)
    assert folder.classes == ("a", "b") and len(folder) == 2
    assert cli(["simulate", "--frames", str(tmp_path / "frames"), "--out", str(out)]) == 2
    assert "z-bad.npz: times_us must be >= 0 and strictly increasing" in capsys.readouterr().err
