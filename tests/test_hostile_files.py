"""Checkpoints and event files from outside: size bombs, lying headers and malformed configs get the
package's own error, naming the file and the limit, before anything large is allocated (issue 21, part 2).
"""

import json
import shutil
import struct
import subprocess
from unittest import mock

import numpy as np
import pytest

from eventfiles import AEDAT31_HEADER, random_events, write_aedat31
from stc_zoo import StcNetwork, StcSNN, create_model, zoo
from stc_zoo.config import LIMITS, MAX_CONFIG_BYTES
from stc_zoo.data import read_event_file
from stc_zoo.data.events import MAX_EVENTS
from stc_zoo.errors import CheckpointError, EventFormatError
from stc_zoo.hub import checksums


@pytest.fixture
def checkpoint(tmp_path):
    """A copy of the bundled nmnist-t4 folder to edit."""
    folder = tmp_path / "ckpt"
    shutil.copytree(zoo.get_entry("nmnist-t4").bundled, folder)
    return folder


def edit_config(folder, change):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    (folder / "SHA256SUMS").unlink()  # an edited folder has no manifest to match


def net(**fields):
    return lambda d: d["network"].update(fields)


def inp(**fields):
    return lambda d: d["input"].update(fields)


HOSTILE_CONFIGS = [
    ("a huge hidden layer and k_t", net(hidden=250000, k_t=10**7), r"hidden must be an integer in 1\.\.65,536"),
    ("k_t 1e7", net(k_t=10**7), r"k_t must be an integer in 1\.\.64"),
    ("hidden 1e9", net(hidden=10**9), r"hidden must be an integer in 1\.\.65,536"),
    ("hidden as a float", net(hidden=1e9), r"hidden must be an integer"),
    ("a 1e6 x 1e6 sensor", inp(sensor_size=[10**6, 10**6]), r"sensor_size must be in 1\.\.8,192"),
    ("kernel 100001", net(kernel_size=100001), r"kernel_size must be an integer in 1\.\.31"),
    ("T 1e7", inp(T=1e7), r"T must be an integer"),
    ("T 10,000,000", inp(T=10**7), r"T must be an integer in 1\.\.1,024"),
    ("T true", inp(T=True), r"T must be an integer"),
    ("network null", lambda d: d.update(network=None), r"'network' must be a JSON object"),
    ("format_version 0", lambda d: d.update(format_version=0), r"format_version must be an integer 1\.\.2"),
    ("format_version -5", lambda d: d.update(format_version=-5), r"format_version must be an integer"),
    ("format_version true", lambda d: d.update(format_version=True), r"format_version must be an integer"),
    ("float channels", net(channels=[32.5, 64]), r"channels must be"),
    ("float sensor", inp(sensor_size=[34.0, 34.0]), r"sensor_size must be"),
    ("v_th NaN", net(v_th=float("nan")), r"v_th must be a finite number"),
    ("tau_init infinite", net(tau_init=float("inf")), r"tau_init must be a finite number"),
    ("many wide blocks", lambda d: (d["network"].update(channels=[4096] * 4), d["input"].update(sensor_size=[2048, 2048])), r"exceed LIMITS\['(neurons|parameters)'\]"),
    ("class names not strings", lambda d: d.update(class_names=[{"a": 1}] * 10), r"class_names must be a list"),
]


@pytest.mark.parametrize("change, match", [c[1:] for c in HOSTILE_CONFIGS], ids=[c[0] for c in HOSTILE_CONFIGS])
def test_hostile_configs_are_refused_with_the_field_and_limit(checkpoint, change, match):
    edit_config(checkpoint, change)
    with pytest.raises(CheckpointError, match=match):
        StcSNN.from_pretrained(checkpoint)


def test_a_config_that_does_not_fit_its_weights_is_refused_before_the_model_is_built(checkpoint, monkeypatch):
    # Within every bound, but 32x the weights' hidden layer: the header says so before any allocation.
    edit_config(checkpoint, net(hidden=4096))
    built = []
    monkeypatch.setattr(StcSNN, "__init__", lambda self, *a, **k: built.append(1) or (_ for _ in ()).throw(
        AssertionError("the model was built before its weights' header was checked")))
    with pytest.raises(CheckpointError, match=r"fc1\.weight \(128, 4096\) != \(4096, 4096\)"):
        StcSNN.from_pretrained(checkpoint)
    assert not built


def test_deeply_nested_and_oversized_configs(checkpoint):
    (checkpoint / "SHA256SUMS").unlink()
    (checkpoint / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="bytes; a config.json holds at most"):
        StcSNN.from_pretrained(checkpoint)
    depth = MAX_CONFIG_BYTES // 2 - 10
    (checkpoint / "config.json").write_text("[" * depth + "]" * depth)
    with pytest.raises(CheckpointError, match="nested too deeply|expected a JSON object"):
        StcSNN.from_pretrained(checkpoint)


def test_limits_admit_every_zoo_entry():
    for name in zoo.list_models():
        config = zoo.get_entry(name).config
        assert config.parameters() == sum(p.numel() for p in create_model(name).network.parameters())
        assert config.neurons() < LIMITS["neurons"] and config.parameters() < LIMITS["parameters"]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_a_manifest_written_by_sha256sum_b_verifies(checkpoint):
    for flag in ("-b", "-t"):
        text = subprocess.run(["sha256sum", flag, "config.json", "model.safetensors"], cwd=checkpoint,
                              capture_output=True, text=True, check=True).stdout
        (checkpoint / "SHA256SUMS").write_text(text)
        checksums.verify(checkpoint)
        StcSNN.from_pretrained(checkpoint)
    (checkpoint / "config.json").write_text((checkpoint / "config.json").read_text() + " ")
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        checksums.verify(checkpoint)


# ------------------------------------------------------------------------------------ event files
def test_a_sparse_2gb_bin_is_refused_by_its_size_before_reading(tmp_path):
    path = tmp_path / "bomb.bin"
    with open(path, "wb") as f:
        f.truncate(2 * 1024**3)  # sparse: no disk, no memory
    with pytest.raises(EventFormatError, match=rf"bomb\.bin: 2,147,483,648 bytes hold up to .* max_events={MAX_EVENTS:,}"):
        read_event_file(path)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_numpy_header_claiming_billions_of_events_allocates_nothing(tmp_path, suffix):
    dtype = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (10**10,)}
    npy = tmp_path / "liar.npy"
    with open(npy, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    path = npy
    if suffix == ".npz":
        import zipfile

        path = tmp_path / "liar.npz"
        with zipfile.ZipFile(path, "w") as z:
            z.write(npy, "events.npy")
    with pytest.raises(EventFormatError, match=r"shape \(10000000000,\) holds more than max_events"):
        read_event_file(path)


def aedat31_with_number(path, number):
    events = random_events(np.random.default_rng(0), 10, 128, 128, 1000)
    data = (events["x"].astype(np.int64) << 17) | (events["y"].astype(np.int64) << 2) | 1
    words = np.stack([data, events["t"].astype(np.int64)], 1).ravel().astype("<u4")
    header = struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 10, number, 10)
    path.write_bytes(AEDAT31_HEADER + header + words.tobytes() + b"\x00" * 64)


@pytest.mark.parametrize("number", [-1, -7, 11])
def test_aedat31_packets_with_impossible_event_counts_are_errors(tmp_path, number):
    path = tmp_path / "bad.aedat"
    aedat31_with_number(path, number)
    with pytest.raises(EventFormatError, match=rf"bad\.aedat: packet at byte \d+ claims {number} events, outside 0\.\.10"):
        read_event_file(path)


def test_a_good_aedat31_file_still_reads(tmp_path):
    events = random_events(np.random.default_rng(1), 50, 128, 128, 10_000)
    write_aedat31(tmp_path / "ok.aedat", events)
    assert np.array_equal(read_event_file(tmp_path / "ok.aedat")["t"], events["t"])


# ------------------------------------------------------------------ beyond the listed cases: fuzzing
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
FIELDS = [("input", k) for k in ("sensor_size", "T", "ratio", "split_by", "spatial", "decay", "step_us", "fit",
                                 "source_size", "crop_origin")] + \
         [("network", k) for k in ("num_classes", "channels", "kernel_size", "pool", "hidden", "dropout", "k_t", "K",
                                   "v_th", "tau_init", "reset", "detach_reset", "surrogate", "surrogate_alpha")]


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(FIELDS), JSON), min_size=1, max_size=3))
def test_any_config_value_loads_or_is_a_checkpoint_error(checkpoint, edits):
    """Whatever a config.json's fields hold, loading gives a model or a CheckpointError: never another
    exception, never an allocation beyond the weights' own size."""
    data = json.loads((zoo.get_entry("nmnist-t4").bundled / "config.json").read_text())
    for (section, key), value in edits:
        data[section][key] = value
    (checkpoint / "config.json").write_text(json.dumps(data))
    (checkpoint / "SHA256SUMS").unlink(missing_ok=True)
    weights_bytes = (checkpoint / "model.safetensors").stat().st_size
    built = []  # bytes of every real (not meta) network built while loading

    def measured_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        built.append(sum(t.numel() * t.element_size() for t in [*self.parameters(), *self.buffers()]
                         if t.device.type != "meta"))

    real_init = StcNetwork.__init__
    with mock.patch.object(StcNetwork, "__init__", measured_init):
        try:
            StcSNN.from_pretrained(checkpoint)
        except CheckpointError:
            pass
    assert all(b <= weights_bytes for b in built), f"built {max(built):,} bytes of network for {weights_bytes:,} of weights"


@FUZZ
@given(header=st.tuples(st.integers(-2, 3), st.integers(-3, 3), st.integers(-16, 16), st.integers(0, 2**31 - 1),
                        st.integers(-2**31, 2**31 - 1), st.integers(-4, 40), st.integers(-8, 40), st.integers(-4, 40)),
       body=st.binary(max_size=400))
def test_any_aedat31_packet_header_reads_or_is_an_event_format_error(tmp_path_factory, header, body):
    path = tmp_path_factory.mktemp("aedat") / "fuzz.aedat"
    path.write_bytes(AEDAT31_HEADER + struct.pack("<hhiiiiii", *header) + body)
    try:
        events = read_event_file(path)
    except EventFormatError:
        return
    assert len(events) <= len(body) // 8
