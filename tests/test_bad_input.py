"""Bad input gets one of the package's own errors, naming the source, the field and the reason;
valid input of every shape (empty, one event, non-contiguous, narrow dtypes) works. Property
tests (hypothesis) over the readers and the compression.

The rule for each case is in the docstring of ``stc_zoo.data.check_events``.
"""

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventfiles import AEDAT31_HEADER, random_events, write_aedat2_cifar10dvs, write_aedat31, write_nmnist
from stc_zoo import SpatioTemporalCompression, StcSNN, zoo
from stc_zoo.hub import checksums
from stc_zoo.data import check_events, make_events, read_nmnist_file
from stc_zoo.data.cifar10dvs import read_aedat2_cifar10dvs
from stc_zoo.data.dvsgesture import read_aedat31
from stc_zoo.errors import CheckpointError, EventFormatError, InputError

SENSOR = (34, 34)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def with_field(events, field, values, dtype):
    """A copy of ``events`` whose ``field`` has another dtype and values."""
    fields = [(f, dtype if f == field else events.dtype[f]) for f in events.dtype.names]
    out = np.empty(len(events), dtype=fields)
    for f in events.dtype.names:
        out[f] = values if f == field else events[f]
    return out


def sample_events(n=20, seed=0):
    return random_events(np.random.default_rng(seed), n, *SENSOR, 10_000)


# ---------------------------------------------------------------------------------- bad streams
BAD_STREAMS = [
    ("float timestamps", lambda e: with_field(e, "t", e["t"] / 1e6, np.float64), r"'t' must hold integers"),
    ("float coordinates", lambda e: with_field(e, "x", e["x"] + 0.5, np.float32), r"'x' must hold integers"),
    ("timestamps beyond int64", lambda e: with_field(e, "t", np.uint64(2**63) + e["t"].astype(np.uint64), np.uint64),
     r"'t' has timestamps above 2\*\*63"),
    ("negative timestamps", lambda e: with_field(e, "t", e["t"] - 5_000, np.int64), r"'t' has negative"),
    ("x off the sensor", lambda e: with_field(e, "x", e["x"] + 30, np.int64), r"'x' has values in \[\d+, \d+\]"),
    ("negative y", lambda e: with_field(e, "y", e["y"] - 40, np.int64), r"'y' has values"),
    ("polarity 2", lambda e: with_field(e, "p", e["p"].astype(np.int8) * 2, np.int8), r"'p' must be 0/1"),
    ("polarity -1", lambda e: with_field(e, "p", -e["p"].astype(np.int8), np.int8), r"'p' must be 0/1"),
    ("a missing field", lambda e: e[["x", "y", "t"]], r"missing fields \['p'\]"),
    ("a plain array", lambda e: np.zeros((20, 4)), r"not an event array"),
    ("a 2-D event array", lambda e: e.reshape(4, 5), r"1-D event array"),
]


@pytest.mark.parametrize("make_bad, match", [b[1:] for b in BAD_STREAMS], ids=[b[0] for b in BAD_STREAMS])
def test_bad_streams_get_a_clear_error_before_any_frame(make_bad, match):
    bad = make_bad(sample_events())
    with pytest.raises(EventFormatError, match="events\\[0\\]: .*" + match):
        SpatioTemporalCompression(SENSOR, T=2).batch([bad])
    with pytest.raises(EventFormatError, match="events\\[1\\]"):  # names the sample of the batch
        SpatioTemporalCompression(SENSOR, T=2).batch([sample_events(), bad])


def test_streams_too_large_for_one_call_are_refused_with_the_limit():
    with pytest.raises(EventFormatError, match="20 events exceed max_events=10"):
        check_events(sample_events(20), SENSOR, "events[0]", max_events=10)


def test_valid_edge_cases_work():
    stc = SpatioTemporalCompression(SENSOR, T=3, ratio=2, split_by="time")
    assert stc(make_events([], [], [], [])).abs().sum() == 0  # empty: zero current
    assert stc(make_events([3], [4], [10], [1])).abs().sum() == 0  # one event: no time span to bin
    events = sample_events(200)
    strided = events[::2]
    assert not strided.flags.c_contiguous
    assert torch.equal(stc(strided), stc(strided.copy()))
    narrow = np.empty(len(events), dtype=[("x", "u1"), ("y", "u1"), ("t", "u4"), ("p", "?")])
    for f in "xytp":
        narrow[f] = events[f]
    assert torch.equal(stc(narrow), stc(events))


def test_nmnist_reader_refuses_files_that_are_not_nmnist(tmp_path):
    events = sample_events()
    write_nmnist(tmp_path / "ok.bin", events)
    raw = bytearray((tmp_path / "ok.bin").read_bytes())
    raw[5] = 200  # the second event's x
    (tmp_path / "bad.bin").write_bytes(bytes(raw))
    with pytest.raises(EventFormatError, match=r"bad.bin: field 'x' reaches 200, but N-MNIST's sensor is 34x34"):
        read_nmnist_file(tmp_path / "bad.bin")


# ---------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("bad, match", [
    (torch.zeros(4, 1, 2, 34, 34, device="meta"), "on meta, model on cpu"),
    (torch.full((4, 1, 2, 34, 34), float("inf")), "NaN or Inf"),
    ([[0.0]], "expected a tensor"),
])
def test_model_input_device_values_and_type(bad, match):
    with pytest.raises(InputError, match=match):
        StcSNN(zoo.get_entry("nmnist-t4").config)(bad)


# ---------------------------------------------------------------------------------- checksums
def test_bundled_checkpoint_matches_its_manifest():
    checksums.verify(zoo.get_entry("nmnist-t4").bundled)


@pytest.mark.parametrize("damage", ["weights", "config", "manifest"])
def test_edited_bundled_checkpoint_is_refused(tmp_path, monkeypatch, damage):
    folder = tmp_path / "nmnist-t4"
    shutil.copytree(zoo.get_entry("nmnist-t4").bundled, folder)
    if damage == "weights":
        raw = bytearray((folder / "model.safetensors").read_bytes())
        raw[-1] ^= 1  # one bit of one weight: still a loadable file
        (folder / "model.safetensors").write_bytes(bytes(raw))
    elif damage == "config":
        (folder / "config.json").write_text((folder / "config.json").read_text().replace('"v_th": 1.0', '"v_th": 0.5'))
    else:
        (folder / "SHA256SUMS").unlink()
    monkeypatch.setattr(zoo, "BUNDLED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="SHA-256 does not match|SHA256SUMS: missing"):
        StcSNN.from_pretrained("nmnist-t4")


# ---------------------------------------------------------------------------------- properties
def streams(max_n=300, W=34, H=34, t_max=2**23 - 1):
    """Random valid event streams: sorted timestamps (ties allowed), any length including 0."""
    return st.integers(0, max_n).flatmap(lambda n: st.tuples(
        st.lists(st.integers(0, W - 1), min_size=n, max_size=n),
        st.lists(st.integers(0, H - 1), min_size=n, max_size=n),
        st.lists(st.integers(0, t_max), min_size=n, max_size=n).map(sorted),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )).map(lambda f: make_events(f[0], f[1], f[2], f[3]))


def same_events(a, b):
    return len(a) == len(b) and all(np.array_equal(a[f].astype(np.int64), b[f].astype(np.int64)) for f in "xytp")


@PROPERTY
@given(streams())
def test_nmnist_round_trip(events):
    with tempfile.TemporaryDirectory() as d:
        write_nmnist(Path(d) / "a.bin", events)
        assert same_events(read_nmnist_file(Path(d) / "a.bin"), events)


@PROPERTY
@given(streams(W=128, H=128, t_max=2**32 - 1))
def test_aedat2_round_trip(events):
    with tempfile.TemporaryDirectory() as d:
        write_aedat2_cifar10dvs(Path(d) / "a.aedat", events)
        assert same_events(read_aedat2_cifar10dvs(Path(d) / "a.aedat"), events)


@PROPERTY
@given(streams(W=128, H=128, t_max=2**33), st.integers(1, 9))
def test_aedat31_round_trip(events, packet_size):
    with tempfile.TemporaryDirectory() as d:
        write_aedat31(Path(d) / "a.aedat", events, packet_size)
        assert same_events(read_aedat31(Path(d) / "a.aedat"), events)


READERS = [
    (read_nmnist_file, b"", (34, 34)),
    (read_aedat2_cifar10dvs, b"#!AER-DAT2.0\r\n", (128, 128)),
    (read_aedat31, AEDAT31_HEADER, (128, 128)),
]


@PROPERTY
@given(st.sampled_from(READERS), st.booleans(), st.binary(max_size=400))
def test_random_bytes_give_events_or_the_documented_error(reader, with_header, body):
    """Whatever the bytes, a reader returns events or raises EventFormatError, nothing else; and
    what it returns is either valid on its sensor or refused by check_events."""
    read, header, sensor = reader
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f"
        path.write_bytes((header if with_header else b"") + body)
        try:
            events = read(path)
        except EventFormatError as err:
            assert str(path) in str(err)
            return
        try:
            checked = check_events(events, sensor, str(path))
        except EventFormatError as err:  # refused: naming the recording and the field that is wrong
            assert str(path) in str(err) and re.search(r"field '[xytp]'|fields?|polarity", str(err)), str(err)
            return
        # accepted: then it is valid, checked here on its own terms, not by check_events
        W, H = sensor[0], sensor[1]
        x, y, t, p = (np.asarray(checked[f]).astype(np.int64) for f in ("x", "y", "t", "p"))
        assert ((0 <= x) & (x < W)).all() and ((0 <= y) & (y < H)).all()
        assert np.isin(p, (0, 1)).all() and (t >= 0).all() and (np.diff(t) >= 0).all()


def weighted_count(events, T, ratio, split_by, decay):
    """The current every event adds, by the binning rule written out plainly (an independent oracle)."""
    n, nb = len(events), T * ratio
    t = [int(v) for v in events["t"]]
    total = 0.0
    for i in range(n):
        if split_by == "number":
            per_bin = n // nb
            f = i // per_bin if per_bin else nb
        else:
            width = (t[-1] - t[0]) // nb
            f = (t[i] - t[0]) // width if width else nb
        if f < nb:
            total += decay ** (ratio - 1 - f % ratio)
    return total


@PROPERTY
@given(streams(), st.integers(1, 5), st.integers(1, 4), st.sampled_from(["number", "time"]),
       st.integers(1, 4), st.sampled_from([1.0, 0.9, 0.5]))
def test_compressed_total_is_the_weighted_event_count(events, T, ratio, split_by, spatial, decay):
    x = SpatioTemporalCompression(SENSOR, T, ratio, split_by, spatial, decay)(events)
    assert x.shape == (T, 2, -(-34 // spatial), -(-34 // spatial))
    assert (x >= 0).all()
    assert x.double().sum().item() == pytest.approx(weighted_count(events, T, ratio, split_by, decay), rel=1e-6, abs=1e-9)
