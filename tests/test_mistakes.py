"""Input a user gives by mistake: every path answers the same or refuses the same, errors name the
file and the right unit, a bad file never stops the others, and too little input is said, not
answered (issue 21, part 3)."""

import json
import warnings

import numpy as np
import pytest
import torch

from eventfiles import random_events, write_nmnist
from stc_zoo import StcSNN, create_model
from stc_zoo.cli import main
from stc_zoo.data import read_event_file
from stc_zoo.errors import EventFormatError, InputError, TooFewEventsWarning
from stc_zoo.kernels import ops

BACKENDS = ["torch"] + (["numba"] if ops.HAS_NUMBA else [])


@pytest.fixture(scope="module")
def model():
    return StcSNN.from_pretrained("nmnist-t4")


@pytest.fixture
def events():
    return random_events(np.random.default_rng(0), 3000, 34, 34, 300_000)


def big_endian(events, kind="i8"):
    return events.astype([(f, f">{kind}") for f in ("x", "y", "t", "p")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_big_endian_arrays_give_the_native_answer_on_every_path(model, events, backend):
    model.set_backend(backend)
    try:
        native = model.compress(events)
        for kind in ("i8", "i4", "u4"):
            assert torch.equal(model.compress(big_endian(events, kind)), native), kind
        # uint16 timestamps wrap (unsorted): sorted with a warning, the same as the native uint16 array
        wrapped = events.astype([(f, "<u2") for f in ("x", "y", "t", "p")])
        with pytest.warns(UserWarning, match="not sorted"):
            assert torch.equal(model.compress(big_endian(events, "u2")), model.compress(wrapped))
        assert torch.equal(model.predict_proba(big_endian(events)), model.predict_proba(events))
    finally:
        model.set_backend("auto")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stream_takes_big_endian_packets(backend):
    model = create_model("nmnist-stream-20ms", backend=backend).eval()
    events = random_events(np.random.default_rng(1), 2000, 34, 34, 100_000)
    a = [o.logits for o in model.stream().push(events, now_us=int(events["t"][0]) + 100_000)]
    b = [o.logits for o in model.stream().push(big_endian(events), now_us=int(events["t"][0]) + 100_000)]
    assert len(a) == 5 and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("bad", [[], None, "recording.bin", 5])
def test_predict_of_nothing_or_a_path_is_an_input_error(model, bad):
    with pytest.raises(InputError, match="expected"):
        model.predict(bad)


@pytest.mark.parametrize("n", [0, 1, 10])
def test_too_few_events_warn_naming_the_recording_and_the_minimum(model, events, n):
    with pytest.warns(TooFewEventsWarning, match=rf"rec\.bin: {n} events, fewer than the 16 this model needs"):
        model.predict(events[:n], sources=["rec.bin"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(events[:16])  # enough: no warning


def test_errors_about_contents_name_the_unit_and_the_recording(model, events):
    bad = events.astype([("x", "f4"), ("y", "i2"), ("t", "i8"), ("p", "?")])
    with pytest.raises(EventFormatError, match=r"b\.npy: field 'x' must hold integers \(x in pixel columns\)"):
        model.predict([events, bad], sources=["a.npy", "b.npy"])
    bad_t = events.astype([("x", "i2"), ("y", "i2"), ("t", "f8"), ("p", "?")])
    with pytest.raises(EventFormatError, match=r"'t' must hold integers \(t in microseconds\)"):
        model.predict(bad_t)


def test_the_unsorted_warning_points_at_the_callers_line(model, events):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(events[::-1])
    unsorted = [w for w in caught if "not sorted" in str(w.message)]
    assert len(unsorted) == 1 and unsorted[0].filename == __file__, [(w.filename, str(w.message)) for w in caught]


def test_a_folder_given_as_a_file_says_so(tmp_path):
    with pytest.raises(EventFormatError, match="a folder, not an event file"):
        read_event_file(tmp_path)


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_predict_reports_each_bad_file_and_still_runs_the_rest(capsys, tmp_path, events, monkeypatch):
    good = tmp_path / "good.bin"
    write_nmnist(good, events)
    np.save(tmp_path / "be.npy", big_endian(events))
    np.save(tmp_path / "float.npy", events.astype([("x", "f4"), ("y", "i2"), ("t", "i8"), ("p", "?")]))
    np.save(tmp_path / "ten.npy", events[:10])
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 7)
    files = ["be.npy", "float.npy", "ten.npy", "empty.bin", "odd.bin", "missing.bin", ".", "good.bin"]
    code, out, err = run(capsys, "predict", "nmnist-t4", "--json", *(str(tmp_path / f) for f in files))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [r["file"] for r in rows] == [str(tmp_path / "be.npy"), str(tmp_path / "good.bin")]
    assert rows[0]["label"] == rows[1]["label"] and rows[0]["confidence"] == rows[1]["confidence"]
    lines = [line for line in err.splitlines() if line.startswith("stc-zoo predict: ")]
    for name in files[1:-1]:
        assert any(str(tmp_path / name) in line or name == "." and str(tmp_path) in line for line in lines), name
    assert "events[0]" not in err and "Traceback" not in err
    assert "6 of 8 files failed" in err
    assert "no prediction" in err  # the short files are said, not answered

    # A failure of any kind (here one the package does not foresee) is that file's alone.
    real = StcSNN.predict_proba

    def flaky(self, events, sources=None):
        if sources and sources[0].endswith("be.npy"):
            raise RuntimeError("something unforeseen")
        return real(self, events, sources)

    monkeypatch.setattr(StcSNN, "predict_proba", flaky)
    code, out, err = run(capsys, "predict", "nmnist-t4", "--json", str(tmp_path / "be.npy"), str(good))
    assert code == 1 and json.loads(out.splitlines()[-1])["file"] == str(good)
    assert "be.npy: RuntimeError: something unforeseen" in err


def test_cli_warnings_are_one_line_without_source_code(tmp_path, events):
    import subprocess
    import sys
    from pathlib import Path

    np.save(tmp_path / "unsorted.npy", events[::-1])
    script = Path(sys.executable).parent / "stc-zoo"
    out = subprocess.run([str(script), "predict", "nmnist-t4", str(tmp_path / "unsorted.npy")], capture_output=True,
                         text=True, timeout=300)
    code, err = out.returncode, out.stderr
    assert code == 0
    warning = [line for line in err.splitlines() if "not sorted" in line]
    assert warning == [f"stc-zoo: warning: {tmp_path / 'unsorted.npy'}: timestamps not sorted; sorting them (stable)"]
