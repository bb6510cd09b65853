"""NIR export: refusals naming what NIR cannot express, the plain graph stepped by NIR's own definitions,
and each reader's variant imported into snnTorch, Norse and Sinabs themselves (equal spikes and logits)."""

import json

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stc_zoo import ExportError, InputConfig, NetworkConfig, StcConfig, StcSNN
from stc_zoo.cli import main as cli
from stc_zoo.export import nir as export_nir
from stc_zoo.export import nir_readers as readers
from stc_zoo.export.to_nir import nir_graph, strict_threshold
from stc_zoo.export.to_onnx import inference_copy


LIF = dict(k_t=1, K=1, reset="hard")


def active_model(sensor=(34, 34), channels=(32, 64), hidden=128, pool="sum", seed=0) -> StcSNN:
    """An untrained one-spike model whose weights are scaled until every layer fires (an untrained network
    is silent past its first block, which would make any comparison vacuous)."""
    torch.manual_seed(seed)
    config = StcConfig(InputConfig(sensor_size=sensor, T=4, ratio=4, split_by="number"),
                       NetworkConfig(num_classes=10, channels=channels, hidden=hidden, pool=pool, **LIF),
                       class_names=tuple(str(d) for d in range(10)))
    model = StcSNN(config).eval()
    with torch.no_grad():
        for block in model.network.blocks[1:]:
            block.conv.weight *= 4 if pool == "sum" else 16  # an average pool passes a quarter on
        model.network.fc1.weight *= 30 if pool == "sum" else 120
    return model


def inputs(model, batch=5, T=None, seed=1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    T = T or model.config.input.T
    return (torch.rand(T, batch, 2, *model.network.input_size, generator=gen) * 3).round()


def reference(model, x):
    """The package's per-step logits ``[T, B, classes]`` and spikes (layer -> ``[T, B, ...]``), its float32 reference."""
    with torch.no_grad():
        steps = inference_copy(model, torch.float32).forward_steps(x, record=True)
    for name, s in steps.spikes.items():  # the comparisons below mean something only where neurons fire
        assert 0 < float(s.mean()) < 1, name
    return steps.logits.numpy(), {k: v.numpy() for k, v in steps.spikes.items()}


def nir_definitions(graph, x: np.ndarray, dt: float, torch_flatten: bool = False):
    """NIR's documented dynamics, written here independently of the package: per step, Conv2d/Affine/pools as
    defined, LIF as one Euler step ``v += dt / tau * (v_leak - v + r * I)``, ``z = v > v_threshold``, reset to
    ``v_reset``. Returns the outputs ``[T, B, classes]`` and each LIF node's spikes."""
    after = dict(graph.edges)  # a chain: each node has one successor
    chain = [next(k for k, n in graph.nodes.items() if type(n).__name__ == "Input")]
    while chain[-1] in after:
        chain.append(after[chain[-1]])
    assert len(chain) == len(graph.nodes)
    v, outs, spikes = {}, [], {}
    for xt in x:
        h = torch.as_tensor(xt, dtype=torch.float32)
        for name in chain:
            node = graph.nodes[name]
            kind = type(node).__name__
            if kind == "Conv2d":
                h = F.conv2d(h, torch.as_tensor(node.weight), torch.as_tensor(node.bias), padding=tuple(node.padding))
            elif kind == "LIF":
                prev = v.get(name, torch.zeros_like(h))
                tau, r, leak = (torch.as_tensor(a) for a in (node.tau, node.r, node.v_leak))
                u = prev + (dt / tau) * ((leak - prev) + r * h)
                z = u > torch.as_tensor(node.v_threshold)
                v[name] = torch.where(z, torch.as_tensor(node.v_reset), u)
                h = z.float()
                spikes.setdefault(name, []).append(z.numpy())
            elif kind == "SumPool2d":
                h = F.avg_pool2d(h, 2) * 4
            elif kind == "AvgPool2d":
                h = F.avg_pool2d(h, 2)
            elif kind == "Flatten":
                h = h.flatten(node.start_dim if torch_flatten else node.start_dim + 1)
            elif kind == "Affine":
                h = h @ torch.as_tensor(node.weight).T + torch.as_tensor(node.bias)
        outs.append(h.numpy())
    return np.stack(outs), {k: np.stack(s) for k, s in spikes.items()}


# ---------------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("change, named", [
    (dict(K=2), "spike counts above 1"), (dict(reset="soft"), "soft reset"),
    (dict(k_t=2), "temporal mixing filter"), (dict(pool="max"), "max pooling")])
def test_what_nir_cannot_express_is_refused_by_name(tmp_path, change, named):
    network = {**dict(num_classes=10, channels=(4,), hidden=8, pool="sum"), **LIF, **change}
    model = StcSNN(StcConfig(InputConfig(sensor_size=(8, 8), T=2, ratio=2), NetworkConfig(**network))).eval()
    with pytest.raises(ExportError, match=named) as err:
        export_nir(model, tmp_path / "out")
    assert "nothing written" in str(err.value) and not (tmp_path / "out").exists()


def test_the_command_refuses_a_multi_threshold_zoo_model_with_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "t4"
    assert cli(["export", "nmnist-t4", "--format", "nir", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for named in ("spike counts above 1", "soft reset", "temporal mixing filter", "max pooling"):
        assert named in err
    assert not out.exists()


def test_bad_arguments_are_refused(tmp_path):
    model = active_model(sensor=(8, 8), channels=(4,), hidden=8)
    for dt in (0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(ExportError, match="dt must be"):
            export_nir(model, tmp_path / "a", dt=dt)
    with pytest.raises(ExportError, match="reader must be"):
        export_nir(model, tmp_path / "a", reader="lava")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_nir(model, tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    assert cli(["export", "nmnist-t4", "--format", "onnx", "--reader", "norse", "--out", str(tmp_path / "b")]) == 2


# ------------------------------------------------------------------------------------ the plain export

def test_the_threshold_written_fires_exactly_where_the_model_does():
    for v_th in (1.0, 0.3, 0.7, 2.5, 1e-3):
        t = strict_threshold(v_th)
        above = np.nextafter(t, np.float32(np.inf))
        assert above / np.float32(v_th) >= 1 and not t / np.float32(v_th) >= 1  # floor(h / v_th) >= 1 <=> h > t


@pytest.mark.parametrize("shape", [dict(), dict(sensor=(13, 11), channels=(5,), hidden=7),
                                   dict(sensor=(20, 18), channels=(3, 6), hidden=9, pool="avg")])
@pytest.mark.parametrize("dt", [1e-3, 0.02])
def test_nir_definitions_stepped_give_the_models_spikes_and_logits(shape, dt):
    model = active_model(**shape)
    x = inputs(model, T=6)
    logits, spikes = reference(model, x)
    graph = nir_graph(model, dt)
    out, got = nir_definitions(graph, x.numpy(), dt)
    for name in spikes:
        assert np.array_equal(spikes[name] > 0, got[name]), name
    np.testing.assert_allclose(out, logits, rtol=0, atol=1e-5)


def test_the_export_folder_round_trips_through_nir_files(tmp_path):
    model = active_model()
    files = export_nir(model, tmp_path / "out", dt=0.01)
    assert sorted(p.name for p in files) == ["README.md", "input.json", "network.nir"]
    graph = nir.read(tmp_path / "out" / "network.nir")
    assert sorted(graph.nodes) == sorted(["input", "blocks.0.conv", "blocks.0.lif", "blocks.0.pool", "blocks.1.conv",
                                 "blocks.1.lif", "blocks.1.pool", "flatten", "fc1", "lif", "fc2", "output"])
    assert type(graph.nodes["blocks.0.pool"]).__name__ == "SumPool2d"
    x = inputs(model)
    logits, _ = reference(model, x)
    out, _ = nir_definitions(graph, x.numpy(), 0.01)
    np.testing.assert_allclose(out, logits, rtol=0, atol=1e-5)
    described = json.loads((tmp_path / "out" / "input.json").read_text())
    assert described["dt"] == 0.01 and described["reader"] is None and described["input"]["T"] == 4
    assert described["check"]["spikes_differing"] == 0
    assert "nir.read" in (tmp_path / "out" / "README.md").read_text()


# ------------------------------------------------------------------------------------------ the readers

def compare(spikes: dict, logits: np.ndarray, got: tuple[np.ndarray, list[np.ndarray]]) -> None:
    """A reader's per-layer spikes and per-step logits against the package's: equal spikes, logits within 1e-5."""
    out, layers = got
    assert len(layers) == len(spikes)
    for name, s in zip(spikes, layers):
        assert np.array_equal(spikes[name] > 0, s > 0), name
    np.testing.assert_allclose(out, logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pool", ["sum", "avg"])
def test_snntorch_imports_its_variant_with_the_models_spikes(pool):
    model = active_model(pool=pool)
    x = inputs(model)
    logits, spikes = reference(model, x)
    compare(spikes, logits, readers.run_snntorch(nir_graph(model, reader="snntorch"), x))


@pytest.mark.parametrize("pool", ["sum", "avg"])
def test_norse_imports_its_variant_with_the_models_spikes(pool):
    model = active_model(pool=pool)
    x = inputs(model)
    logits, spikes = reference(model, x)
    dt = 0.005
    compare(spikes, logits, readers.run_norse(nir_graph(model, dt, reader="norse"), x, dt))


def test_sinabs_imports_multi_spike_neurons_and_one_spike_neurons_give_the_models_spikes():
    model = active_model()
    x = inputs(model)
    logits, spikes = reference(model, x)
    graph = nir_graph(model, reader="sinabs")
    out, layers = readers.run_sinabs(graph, x)
    assert max(float(s.max()) for s in layers) > 1  # Sinabs' own neurons: several spikes a step
    assert not np.allclose(out, logits, atol=1e-3)
    compare(spikes, logits, readers.run_sinabs(graph, x, one_spike=True))


def test_the_plain_export_is_not_what_snntorch_or_norse_read():
    """The variants exist because the readers differ: handed the plain graph, snnTorch and Norse flatten the batch
    into the features (NIR's Flatten counts dimensions without it, they pass them to torch as they are)."""
    model = active_model()
    x = inputs(model)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        readers.run_snntorch(nir_graph(model), x)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        readers.run_norse(nir_graph(model), x, 1e-3)


def test_a_model_that_no_longer_matches_its_config_is_refused_by_both_exporters(tmp_path):
    model = active_model(sensor=(8, 8), channels=(4,), hidden=8)
    model.network.fc2 = torch.nn.Linear(8, 3)  # a swapped head; the config still says 10 classes
    for export in (export_nir, lambda m, p: __import__("stc_zoo.export", fromlist=["onnx"]).onnx(m, p)):
        with pytest.raises(ExportError, match="does not match its config"):
            export(model, tmp_path / "out")
        assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- the zoo entry, real recordings
@pytest.fixture(scope="module")
def lif_on_recordings():
    """nmnist-lif-t4 (bundled) and 40 real N-MNIST recordings' steps (synthetic events without the subset)."""
    from eventfiles import SUBSET
    from stc_zoo.data import read_event_file, synthetic_events

    model = StcSNN.from_pretrained("nmnist-lif-t4").eval()
    if SUBSET.is_dir():
        files = sorted((SUBSET / "Train").glob("*/*.bin"))[::25]
        events = [read_event_file(f) for f in files]
    else:
        events = [synthetic_events((34, 34), 3000, seed=i) for i in range(40)]
    x = model.compress(events).float()
    with torch.no_grad():
        ref = inference_copy(model, torch.float32).forward_steps(x, record=True)
    return model, x, ref.logits.numpy(), {k: v.numpy() for k, v in ref.spikes.items()}, model.predict(events).numpy()


@pytest.mark.parametrize("reader", ["snntorch", "norse", "sinabs"])
def test_the_zoo_entry_in_each_reader_decides_every_real_recording_as_the_package(lif_on_recordings, reader):
    """Spikes equal but for float32 rounding ties (benchmarks/nir_readers.py: 2-3 of 222 million on the 1,000
    recordings), every class the package's (the Numba path, what predict runs)."""
    model, x, logits, spikes, predicted = lif_on_recordings
    graph = nir_graph(model, 1e-3, reader)
    run = {"snntorch": lambda: readers.run_snntorch(graph, x), "norse": lambda: readers.run_norse(graph, x, 1e-3),
           "sinabs": lambda: readers.run_sinabs(graph, x, one_spike=True)}[reader]
    out, layers = run()
    differ = sum(int(((s > 0) != (r > 0)).sum()) for s, r in zip(layers, spikes.values()))
    total = sum(r.size for r in spikes.values())
    assert differ <= total * 1e-6, (differ, total)
    assert np.array_equal(out.mean(0).argmax(1), predicted)
    assert float(np.mean(spikes["lif"])) > 0.01  # the hidden layer fires: the comparison is not of silence


def test_sinabs_as_it_imports_the_entry_fires_several_spikes_a_step_and_is_measured_not_promised(lif_on_recordings):
    model, x, logits, spikes, predicted = lif_on_recordings
    out, layers = readers.run_sinabs(nir_graph(model, 1e-3, "sinabs"), x)
    assert max(float(s.max()) for s in layers) > 1
    assert (out.mean(0).argmax(1) == predicted).mean() > 0.8  # close (98.0% of 1,000 right), not the same


@pytest.mark.parametrize("reader", ["snntorch", "norse", "sinabs"])
def test_each_variant_written_to_disk_reads_back_and_runs_in_its_reader(tmp_path, reader):
    model = active_model()
    x = inputs(model)
    logits, spikes = reference(model, x)
    export_nir(model, tmp_path / "out", dt=2e-3, reader=reader)
    graph = nir.read(tmp_path / "out" / "network.nir", type_check=False)  # as the export's README says
    got = {"snntorch": lambda: readers.run_snntorch(graph, x), "norse": lambda: readers.run_norse(graph, x, 2e-3),
           "sinabs": lambda: readers.run_sinabs(graph, x, one_spike=True)}[reader]()
    compare(spikes, logits, got)
    assert "type_check=False" in (tmp_path / "out" / "README.md").read_text()


def test_an_unwritable_place_is_refused_and_nothing_is_left(tmp_path):
    model = active_model(sensor=(8, 8), channels=(4,), hidden=8)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write the export there"):
        export_nir(model, tmp_path / "file" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
