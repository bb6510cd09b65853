"""ONNX export: one step with explicit state and a whole recording, checked against the package with
onnxruntime on real recordings, a stream's decisions, fuzzed batch sizes, and clear refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eventfiles import SUBSET
from stc_zoo import StcSNN
from stc_zoo.data import read_event_file, synthetic_events
from stc_zoo.stream import decides

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def recordings(count: int, seed: int = 0) -> list[np.ndarray]:
    """Real N-MNIST recordings from the subset (every 1000 // count-th), or synthetic ones without it."""
    if SUBSET.is_dir():
        files = sorted((SUBSET / "Train").glob("*/*.bin"))
        return [read_event_file(f) for f in files[:: len(files) // count][:count]]
    return [synthetic_events((34, 34), 3000, seed=seed + i) for i in range(count)]


@pytest.fixture(scope="module")
def t4(tmp_path_factory):
    """nmnist-t4 exported through the command line."""
    from stc_zoo.cli import main as cli

    out = tmp_path_factory.mktemp("onnx") / "nmnist-t4"
    assert cli(["export", "nmnist-t4", "--format", "onnx", "--out", str(out)]) == 0
    return StcSNN.from_pretrained("nmnist-t4"), out


def run_steps(folder: Path, x: np.ndarray) -> np.ndarray:
    """Per-step logits ``[T, B, classes]`` of step.onnx over ``x [T, B, 2, H, W]``, from rest (zeros)."""
    step = ort.InferenceSession(str(folder / "step.onnx"))
    batch = x.shape[1]
    state = {i.name: np.zeros([batch if d == "B" or not isinstance(d, int) else d for d in i.shape], np.float32)
             for i in step.get_inputs()[1:]}
    logits = []
    for frame in x:
        out = step.run(None, {"x": frame, **state})
        logits.append(out[0])
        state = dict(zip(state, out[1:]))
    return np.stack(logits)


def test_the_folder_holds_the_graphs_their_names_and_how_to_feed_them(t4):
    model, folder = t4
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "input.json", "sequence.onnx", "step.onnx"]
    step = ort.InferenceSession(str(folder / "step.onnx"))
    inputs, outputs = [i.name for i in step.get_inputs()], [o.name for o in step.get_outputs()]
    assert inputs == ["x", "state.blocks.0.lif.v", "state.blocks.0.lif.past", "state.blocks.1.lif.v",
                      "state.blocks.1.lif.past", "state.lif.v"]
    assert outputs == ["logits"] + [n.replace("state.", "next_state.", 1) for n in inputs[1:]]
    described = json.loads((folder / "input.json").read_text())
    assert described["class_names"] == list(model.config.labels) and described["input"]["T"] == 4
    assert [s["name"] for s in described["state"]] == inputs[1:]
    assert "step.onnx" in (folder / "README.md").read_text()


def test_on_real_recordings_the_graphs_give_the_packages_logits_and_classes(t4):
    model, folder = t4
    events = recordings(60)
    x = torch.cat([model.compress(e) for e in events], dim=1)  # [T, 60, 2, 34, 34]
    with torch.no_grad():
        reference = model.network.forward_steps(x.clone()).logits.numpy()
    steps = run_steps(folder, x.numpy())
    assert np.abs(steps - reference).max() < 1e-4
    whole = ort.InferenceSession(str(folder / "sequence.onnx")).run(None, {"x": x.numpy()})[0]
    assert np.abs(whole - reference.mean(0)).max() < 1e-4
    assert whole.argmax(1).tolist() == model.predict(events).tolist()


@pytest.mark.parametrize("batch", [1, 2, 7, 33])
def test_any_batch_size_runs(t4, batch):
    model, folder = t4
    gen = torch.Generator().manual_seed(batch)
    x = (torch.rand(4, batch, 2, 34, 34, generator=gen) * 4).round()
    with torch.no_grad():
        reference = model.network.forward_steps(x.clone()).logits.numpy()
    assert np.abs(run_steps(folder, x.numpy()) - reference).max() < 1e-4


def test_a_stream_through_the_step_graph_decides_as_model_stream_does(tmp_path):
    from stc_zoo.export import onnx as export_onnx

    model = StcSNN.from_pretrained("nmnist-stream-20ms")
    export_onnx(model, tmp_path / "stream")
    T, threshold, min_steps = model.config.input.T, 0.9, 2
    undecided = 0
    for events in recordings(12, seed=5):
        session = model.stream(threshold=threshold, min_steps=min_steps)
        session.push(events, now_us=int(events["t"][0]) + T * model.config.input.step_us)
        x = model.compress(events).numpy()
        logits = run_steps(tmp_path / "stream", x)[:, 0]
        decided = None
        for n in range(1, T + 1):
            mean = logits[:n].mean(0)
            probs = np.exp(mean - mean.max()) / np.exp(mean - mean.max()).sum()
            if decides(n, float(probs.max()), threshold, min_steps, T):
                decided = (n - 1, int(probs.argmax()))  # the session counts steps from 0
                break
        said = session.decision
        assert decided == (None if said is None else (said.step, said.label))
        undecided += said is None
    assert undecided < 12  # some decide: the comparison is not only of two Nones


def test_float64_is_refused_at_once_with_the_reason(tmp_path, capsys):
    from stc_zoo.cli import main as cli

    assert cli(["export", "nmnist-t4", "--format", "onnx", "--out", str(tmp_path / "f64"), "--dtype", "float64"]) == 2
    assert "no float64 convolution" in capsys.readouterr().err
    assert not (tmp_path / "f64").exists()


def test_an_existing_folder_or_an_unwritable_path_is_refused_and_nothing_is_left(tmp_path, capsys):
    from stc_zoo.cli import main as cli

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    assert cli(["export", "nmnist-t4", "--format", "onnx", "--out", str(tmp_path / "taken")]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    (tmp_path / "file").write_text("")
    assert cli(["export", "nmnist-t4", "--format", "onnx", "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "file/sub" in capsys.readouterr().err
