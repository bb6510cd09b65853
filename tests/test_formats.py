"""Camera formats through maintained readers: AEDAT 4, Prophesee EVT 2.0 / 3.0 and .dat, HDF5.

No real recording of these formats can be had on these machines, so the files are written by the
vendors' or the readers' own writers (dv-processing for AEDAT 4, expelliarmus for Prophesee, h5py)
and must come back event for event.
"""

import numpy as np
import pytest

from stc_zoo import StcSNN
from stc_zoo.data import read_event_file
from stc_zoo.data.folder import EventFolder
from stc_zoo.errors import EventFormatError


def camera_events(n=5000, seed=0, W=346, H=260):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, W, n), rng.integers(0, H, n), np.sort(rng.integers(10_000, 900_000, n)),
            rng.integers(0, 2, n))


def same(events, x, y, t, p):
    return (np.array_equal(events["x"], x) and np.array_equal(events["y"], y) and np.array_equal(events["t"], t)
            and np.array_equal(events["p"].astype(int), p))


def write_aedat4(path, x, y, t, p, size=(346, 260)):
    dv = pytest.importorskip("dv_processing")
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.EventOnlyConfig("DAVIS346_test", size))
    store = dv.EventStore()
    for i in range(len(x)):
        store.push_back(int(t[i]), int(x[i]), int(y[i]), bool(p[i]))
    writer.writeEvents(store)
    del writer  # closes the file


def write_prophesee(path, encoding, x, y, t, p):
    expelliarmus = pytest.importorskip("expelliarmus")
    arr = np.zeros(len(x), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    arr["t"], arr["x"], arr["y"], arr["p"] = t, x, y, p
    expelliarmus.Wizard(encoding=encoding).save(str(path), arr)


def test_aedat4(tmp_path):
    x, y, t, p = camera_events()
    write_aedat4(tmp_path / "davis.aedat4", x, y, t, p)
    assert same(read_event_file(tmp_path / "davis.aedat4"), x, y, t, p)


@pytest.mark.parametrize("encoding, name", [("evt2", "cam.raw"), ("evt3", "cam.raw"), ("dat", "cam.dat")])
def test_prophesee(tmp_path, encoding, name):
    x, y, t, p = camera_events(seed=1, W=640, H=480)
    write_prophesee(tmp_path / name, encoding, x, y, t, p)
    assert same(read_event_file(tmp_path / name), x, y, t, p)


def test_hdf5_group_and_compound(tmp_path):
    h5py = pytest.importorskip("h5py")
    x, y, t, p = camera_events(seed=2)
    with h5py.File(tmp_path / "group.h5", "w") as f:
        g = f.create_group("events")
        for k, v in zip("xytp", (x, y, t, np.where(p, 1, -1))):
            g[k] = v
    arr = np.zeros(len(x), dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    arr["t"], arr["x"], arr["y"], arr["p"] = t, x, y, p
    with h5py.File(tmp_path / "compound.hdf5", "w") as f:
        f["events"] = arr
    assert same(read_event_file(tmp_path / "group.h5"), x, y, t, p)
    assert same(read_event_file(tmp_path / "compound.hdf5"), x, y, t, p)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["frames"] = np.zeros(3)
    with pytest.raises(EventFormatError, match="no 'events'"):
        read_event_file(tmp_path / "other.h5")


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "v4.raw").write_bytes(b"% evt 4.0\n% end\n" + b"\0" * 16)
    with pytest.raises(EventFormatError, match="EVT 4.0 is not supported"):
        read_event_file(tmp_path / "v4.raw")
    (tmp_path / "bare.raw").write_bytes(b"\0" * 64)
    with pytest.raises(EventFormatError, match="without an '% evt 2.0' or '% evt 3.0' header"):
        read_event_file(tmp_path / "bare.raw")
    (tmp_path / "broken.aedat4").write_bytes(b"#!AER-DAT4.0\r\n" + b"\xff" * 40)
    with pytest.raises(EventFormatError, match="broken.aedat4"):
        read_event_file(tmp_path / "broken.aedat4")


def test_a_folder_of_camera_files_trains_and_predicts_with_fit(tmp_path):
    """The user story: DAVIS346 recordings in class folders, fitted onto nmnist-t4's 34x34 input."""
    from stc_zoo.cli import main

    for c, name in enumerate(("left", "right")):
        (tmp_path / "davis" / name).mkdir(parents=True)
        for i in range(3):
            x, y, t, p = camera_events(n=2000, seed=10 * c + i)
            write_aedat4(tmp_path / "davis" / name / f"{i}.aedat4", x // 2 + 173 * c, y, t, p)
    data = EventFolder(tmp_path / "davis")
    assert data.classes == ("left", "right") and len(data) == 6
    # trains: a fine-tune from nmnist-t4 with the camera fitted onto its input, one epoch on the folder
    from stc_zoo import training as train

    export = tmp_path / "davis-t4"
    train.main(["--model", "nmnist-t4", "--dataset", "folder", "--init", "nmnist-t4", "--data", str(tmp_path / "davis"),
                "--out", str(tmp_path / "run"), "--cache-dir", "", "--epochs", "1", "--batch-size", "3",
                "--set", "val_fraction=0", "--set", "fit=scale", "--set", "source_size=[346,260]",
                "--export", str(export)])
    model = StcSNN.from_pretrained(export)
    assert model.config.class_names == ("left", "right") and model.config.input.source_size == (346, 260)
    # predicts: the trained model, in Python and from the command line, on the camera's own files
    assert model.predict([data[i][0] for i in range(6)]).shape == (6,)
    assert main(["predict", str(export), str(data.files[0])]) == 0
    assert main(["predict", "nmnist-t4", str(data.files[0]), "--fit", "scale", "--sensor", "346x260"]) == 0
