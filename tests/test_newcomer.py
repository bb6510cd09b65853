"""Rough edges a new user meets, each tried as they would try it: the error they get, and how fast."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from eventfiles import SUBSET, random_events, write_nmnist, write_tiny_nmnist
from hubserver import run_client
from stc_zoo import DeviceError, StcSNN, create_model
from stc_zoo.cli import main as cli
from stc_zoo import training as train

ROOT = Path(__file__).resolve().parents[1]


def fresh_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter, without the test suite's Triton interpreter or Hub settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRITON_"))}
    clean.update(HF_HUB_DISABLE_TELEMETRY="1", **env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture()
def silent_hub():
    """An endpoint on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", held
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hub_that_never_answers_falls_back_to_the_bundled_copy_within_10_s(silent_hub, tmp_path):
    endpoint, connections = silent_hub
    result = run_client(endpoint, tmp_path / "hf", "nmnist-t4")
    assert result["ok"] and result["folder"].endswith("weights/nmnist-t4"), result
    assert result["seconds"] < 10, result  # a hang guard; the waits themselves are counted below
    assert len(connections) == 1, result  # one bounded wait, not one per request huggingface_hub makes
    assert any("did not answer in time" in w for w in result["warnings"]), result["warnings"]


def test_a_hub_that_never_answers_is_a_clear_error_for_a_hub_id(silent_hub, tmp_path):
    result = run_client(silent_hub[0], tmp_path / "hf", "acme/tiny")
    assert not result["ok"] and result["error"] == "HubError" and result["seconds"] < 10, result
    assert "did not answer in time" in result["message"]


def test_own_errors_come_without_chained_tracebacks():
    out = fresh_python("from stc_zoo import StcSNN; StcSNN.from_pretrained('dvsgesture-t4')", HF_HUB_OFFLINE="1")
    assert out.returncode == 1 and "WeightsUnavailableError" in out.stderr
    assert "During handling" not in out.stderr and "direct cause" not in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) < 15, out.stderr
    assert "stc-zoo train --model dvsgesture-t4" in out.stderr


def test_cuda_without_a_gpu_is_a_clear_error_in_the_api():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        StcSNN.from_pretrained("nmnist-t4", device="cuda")


def test_backend_triton_on_a_cpu_is_one_line_and_exit_2_in_every_command(tmp_path):
    """Without Triton's interpreter (as a user runs it), every command that loads a model refuses."""
    recording = tmp_path / "r.bin"
    write_nmnist(recording, random_events(np.random.default_rng(0), 500, 34, 34, 100_000))
    data = write_tiny_nmnist(tmp_path / "data")
    commands = [["info", "nmnist-t4"], ["predict", "nmnist-t4", str(recording)], ["bench", "nmnist-t4", "--runs", "1"],
                ["show", str(recording), "--model", "nmnist-t4", "--out", str(tmp_path / "f.png")],
                ["evaluate", "nmnist-t4", "--data", str(data), "--split", "train"]]
    code = ("import contextlib, io, json, sys\nfrom stc_zoo.cli import main\nresults = []\n"
            f"for argv in {commands!r}:\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
            "        code = main(argv + ['--backend', 'triton'])\n"
            "    results.append([code, err.getvalue()])\n"
            "print(json.dumps(results))")
    out = fresh_python(code, HF_HUB_OFFLINE="1")
    assert out.returncode == 0, out.stderr
    for argv, (code, err) in zip(commands, json.loads(out.stdout.splitlines()[-1])):
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "runs on CUDA devices" in lines[0], (argv, err)
        assert "Traceback" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == "stc-zoo 0.1.0"


@pytest.mark.parametrize("extra, message", [
    ([], "no N-MNIST Train/ folder under"),
    (["--set", "T=eight"], "T must be an integer in 1..1,024 (LIMITS), got 'eight'"),
    (["--set", "surrogate=box"], "surrogate"),
    (["--set", "epochs=-1"], "epochs must be an integer >= 1"),
])
def test_train_mistakes_are_one_line_and_exit_2(tmp_path, capsys, extra, message):
    data = tmp_path / "missing" if not extra else write_tiny_nmnist(tmp_path / "data")
    with pytest.raises(SystemExit) as exit_:
        train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_train_download_without_a_network_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    import tonic

    def no_network(*args, **kwargs):
        Path(kwargs["save_to"], "NMNIST").mkdir(parents=True)  # as tonic does before it fetches
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tonic.datasets, "NMNIST", no_network)
    target = tmp_path / "nmnist"
    with pytest.raises(SystemExit) as exit_:
        train.main(["--model", "nmnist-t4", "--data", str(target), "--download", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "downloading NMNIST through tonic failed" in err and "name resolution" in err
    assert not target.exists()


def test_the_training_script_reports_mistakes_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_")}
    out = subprocess.run([sys.executable, "training/train.py", "--model", "nmnist-t4", "--data", str(tmp_path / "x")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("train: error: ") and "Traceback" not in out.stderr


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_demo_refuses_data_that_does_not_fit_the_model(capsys):
    from stc_zoo import demo

    assert demo.main(["--model", "dvsgesture-t4", "--data", str(SUBSET), "--samples", "2", "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert "not a DVS128 Gesture folder" in err and "hand_clapping" not in err


def test_show_has_colour_bars_a_legend_and_the_true_label(tmp_path):
    pytest.importorskip("matplotlib")
    from stc_zoo.show import figure

    torch.manual_seed(0)
    model = create_model("nmnist-t4").eval()
    events = random_events(np.random.default_rng(1), 3000, 34, 34, 300_000)
    fig = figure(model, events, label="7")
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 2 + 1 + len(model.network.blocks) + 1  # ON, OFF, current, each block, hidden layer
    titles = [ax.get_title() for ax in fig.axes]
    assert not any("lif" in t or "blocks." in t for t in titles)  # a reader's names, not module names
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "block 1:\n32 channels, 34x34" in texts and "hidden layer:\n128 neurons" in texts
    assert any(t.startswith("ON events") for t in titles) and any(t.startswith("OFF events") for t in titles)
    chart = next(ax for ax in fig.axes if ax.get_title().startswith("class probabilities"))
    assert (chart.get_xlabel(), chart.get_ylabel(), chart.get_ylim()) == ("class", "probability", (0.0, 1.0))
    rows = {}  # no empty cells: each row's panels span the grid's columns
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            spec = ax.get_subplotspec()
            rows.setdefault(spec.rowspan.start, set()).update(spec.colspan)
    assert all(cols == set(range(4)) for cols in rows.values()), rows
    for T in (2, 3, 15):  # fewer steps than 4 panels, or many: still no empty cells
        other = StcSNN(model.config.replace(T=T, ratio=2)).eval()
        spans = {}
        for ax in figure(other, events).axes:
            if ax.get_label() != "<colorbar>":
                spans.setdefault(ax.get_subplotspec().rowspan.start, set()).update(ax.get_subplotspec().colspan)
        width = len(spans[0])
        assert width >= 4 and all(cols == set(range(width)) for cols in spans.values()), (T, spans)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert sorted(t.get_text() for t in legends[0].get_texts()) == ["OFF", "ON"]
    assert any("true 7" in ax.get_title() for ax in fig.axes)
    assert not any("true" in ax.get_title() for ax in figure(model, events, label="rec").axes)


def test_importing_the_layers_is_light():
    """The layers and the network need torch alone: no tonic, no huggingface_hub (and no cycle)."""
    out = fresh_python("import sys, stc_zoo.layers, stc_zoo.network, stc_zoo.config\n"
                       "print(sorted(m for m in ('tonic', 'huggingface_hub', 'stc_zoo.model') if m in sys.modules))")
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_building_the_package_gives_no_setuptools_warnings(tmp_path):
    """The license format and the bundled weights as package data once warned on every set-up."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "setuptools" in out.stderr and "No matching distribution" in out.stderr:
        pytest.skip("no package index reachable for the build requirements")
    assert out.returncode == 0, out.stderr
    assert "BuildBackendWarning" not in out.stderr and "SetuptoolsDeprecationWarning" not in out.stderr, out.stderr
    wheel = next(tmp_path.glob("*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "stc_zoo/weights/nmnist-t4/model.safetensors" in names and "stc_zoo/hub/resolve.py" in names
