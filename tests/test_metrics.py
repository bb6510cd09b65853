"""The efficiency metrics (stc_zoo/metrics.py) against first principles and against NeuroBench's own
harness (neurobench 2.3.0, installed by `make test` with --no-deps).

NeuroBench hooks torch modules, so it runs on the reference path (backend "torch", the same spikes as
the Numba path: tests/test_fast_cpu.py); our numbers come from the default path.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stc_zoo import StcConfig, StcSNN, metrics
from stc_zoo.data import synthetic_events
from stc_zoo.layers import MultiThresholdLIF
from test_stream import lively


def small_model(K: int, seed: int = 0) -> StcSNN:
    """A small eval-mode model whose every layer fires on synthetic events (random weights are quiet)."""
    torch.manual_seed(seed)
    config = StcConfig().replace(sensor_size=(16, 12), num_classes=4, T=3, ratio=2, channels=(6, 8), hidden=12, K=K)
    model = lively(StcSNN(config).eval(), bn_bias=(0.5, 1.5))
    with torch.no_grad():
        model.network.fc1.weight[0, :5] = 0  # some zero weights: not connections
    return model.fuse_for_inference()


def recordings(model: StcSNN, n: int = 5) -> torch.Tensor:
    # Dense enough that every step's input holds counts of 2 and more (the compressed current is no spike train).
    return model.compress([synthetic_events((16, 12), 900, seed=s) for s in range(n)])


def brute_force_conv_ops(x: np.ndarray, w: np.ndarray, weighted: bool) -> float:
    """Connections of a stride-1 'same' conv, counted one by one: x [C, H, W], w [Cout, C, k, k]."""
    C, H, W = x.shape
    k = w.shape[-1]
    total = 0.0
    for c, iy, ix in zip(*np.nonzero(x)):
        for co in range(w.shape[0]):
            for ky in range(k):
                for kx in range(k):
                    oy, ox = iy - ky + k // 2, ix - kx + k // 2
                    if 0 <= oy < H and 0 <= ox < W and w[co, c, ky, kx] != 0:
                        total += x[c, iy, ix] if weighted else 1
    return total


def test_operations_are_the_connections_counted_one_by_one():
    model = small_model(K=3)
    x = recordings(model, 2)
    conns, spikes, _ = metrics.step_costs(model.network, x)
    net = model.network
    frame = net.pool(spikes["blocks.0.lif"][1, 0][None])[0].numpy()  # step 1, recording 0: block 1's input
    w = net.blocks[1].conv.weight.detach().numpy()
    assert frame.max() > 1, "no count above 1: the weighted count would test nothing"
    assert conns["blocks.1.conv"]["nonzero"][1, 0] == brute_force_conv_ops(frame, w, weighted=False)
    assert conns["blocks.1.conv"]["spike_acs"][1, 0] == brute_force_conv_ops(frame, w, weighted=True)
    assert conns["blocks.1.conv"]["dense"][1, 0] == brute_force_conv_ops(np.ones_like(frame), np.ones_like(w), False)
    features = net.pool(spikes["blocks.1.lif"][2, 1][None])[0].flatten().numpy()
    fc1 = net.fc1.weight.detach().numpy()
    assert conns["fc1"]["nonzero"][2, 1] == ((features != 0)[None, :] & (fc1 != 0)).sum()
    assert conns["fc1"]["spike_acs"][2, 1] == (features[None, :] * (fc1 != 0)).sum()
    assert conns["blocks.0.conv"]["input"] == "current" and conns["fc2"]["input"] == "spikes"


def test_profile_averages_per_recording_on_any_backend():
    model = small_model(K=3)
    x = recordings(model)
    fast = metrics.profile(model.network, [x[:, :2], x[:, 2:]])
    model.set_backend("torch")
    whole = metrics.profile(model.network, [x])
    assert fast.recordings == whole.recordings == 5
    assert fast.to_dict() == whole.to_dict()
    assert whole.effective_acs > whole.spike_macs > 0  # counts above 1 count more than once
    assert sum(whole.per_step()) == pytest.approx(whole.effective_macs + whole.effective_acs)
    assert whole.membrane_updates == 3 * (6 * 12 * 16 + 8 * 6 * 8 + 12)
    assert whole.parameters == sum(p.numel() for p in model.network.parameters())


# ------------------------------------------------------------------ NeuroBench as the oracle
class BatchFirst(nn.Module):
    """NeuroBench feeds ``[B, T, ...]``; the network takes time-major ``[T, B, ...]``."""

    def __init__(self, network):
        super().__init__()
        self.net = network

    def forward(self, x):
        return self.net(x.transpose(0, 1))


def neurobench_results(model: StcSNN, x: torch.Tensor) -> dict:
    pytest.importorskip("neurobench", reason="NeuroBench is installed by `make test` (pip install --no-deps neurobench)")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    model.set_backend("torch")  # NeuroBench hooks the modules: the reference calls them (same spikes)
    wrapped = TorchModel(BatchFirst(model.network))
    wrapped.add_activation_module(MultiThresholdLIF)
    data = torch.utils.data.TensorDataset(x.transpose(0, 1), torch.zeros(x.shape[1], dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=1)  # one call per recording and step
    bench = Benchmark(wrapped, loader, [], [], [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations]])
    results = bench.run(quiet=True)
    model.set_backend("auto")
    return results


def test_neurobench_agrees_exactly_where_the_definitions_coincide():
    """K = 1: spikes are 0/1, so NeuroBench's ACs are ours; the first layer's input (event counts of 2 and
    more in every step) is MACs in both; dense counts, activation sparsity and the footprint agree."""
    model = small_model(K=1)
    x = recordings(model)
    ours = metrics.profile(model.network, [x])
    nb = neurobench_results(model, x)
    ops = nb["SynapticOperations"]
    assert ours.effective_acs > 0 and ours.effective_macs > 0 and 0 < ours.activation_sparsity < 1
    assert ops["Effective_ACs"] == ours.effective_acs
    assert ops["Effective_MACs"] == ours.effective_macs
    assert ops["Dense"] == ours.dense
    assert nb["ActivationSparsity"] == pytest.approx(ours.activation_sparsity, abs=1e-12)
    assert nb["Footprint"] == ours.footprint_bytes
    assert nb["ConnectionSparsity"] == round(ours.connection_sparsity, 4) > 0


def test_neurobench_counts_spike_counts_above_one_as_macs_of_one():
    """K > 1: NeuroBench calls a layer input spiking only when every value is 0 or +-1, and counts each
    non-zero input once. So a step whose spike counts reach 2 goes to its MACs at our ``nonzero``, and
    one whose counts stay at 1 to its ACs; our ACs count a count of n as n accumulates."""
    model = small_model(K=3)
    x = recordings(model)
    conns, _, _ = metrics.step_costs(model.network, x)
    nb = neurobench_results(model, x)["SynapticOperations"]
    B = x.shape[1]
    spike_layers = [c for c in conns.values() if c["input"] == "spikes"]
    above_one = [(c["max"] > 1).double() for c in spike_layers]
    want_macs = float(conns["blocks.0.conv"]["nonzero"].sum()
                      + sum((c["nonzero"] * a).sum() for c, a in zip(spike_layers, above_one))) / B
    want_acs = float(sum((c["nonzero"] * (1 - a)).sum() for c, a in zip(spike_layers, above_one))) / B
    assert any(a.any() for a in above_one), "no spike count above 1: the test would not show the difference"
    assert nb["Effective_MACs"] == pytest.approx(want_macs, rel=1e-12)
    assert nb["Effective_ACs"] == pytest.approx(want_acs, rel=1e-12)
    ours = metrics.profile(model.network, [x])
    assert nb["Effective_MACs"] + nb["Effective_ACs"] == pytest.approx(ours.effective_macs + ours.spike_macs, rel=1e-12)


# ------------------------------------------------------------------ stc-zoo profile
def test_profile_command_on_files_matches_the_library(tmp_path, capsys):
    import json

    from eventfiles import random_events, write_nmnist
    from stc_zoo.cli import main
    from stc_zoo.data import read_event_file

    rng = np.random.default_rng(1)
    paths = [tmp_path / f"{i}.bin" for i in range(3)]
    for p in paths:
        write_nmnist(p, random_events(rng, 4000, 34, 34, 300_000))
    assert main(["profile", "nmnist-t4", *map(str, paths), "--json", "--batch-size", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    model = StcSNN.from_pretrained("nmnist-t4").fuse_for_inference()
    want = metrics.profile(model.network, [model.compress([read_event_file(p) for p in paths])]).to_dict()
    assert got["recordings"] == 3 and got["source"] == "3 file(s)"
    assert {k: got[k] for k in want} == json.loads(json.dumps(want))
    assert main(["profile", "nmnist-t4", str(paths[0])]) == 0
    out = capsys.readouterr().out
    for text in ("blocks.1.conv  spikes", "total: dense", "activation sparsity", "footprint: 545,226 parameters",
                 "effective synaptic operations per step: "):
        assert text in out, text
    assert main(["profile", "nmnist-t4"]) == 2  # neither files nor --data
    assert "FILEs or --data" in capsys.readouterr().err
    from stc_zoo import create_model

    create_model("nmnist-t4").save_pretrained(tmp_path / "untrained")  # a card with no result: no recordings of its own
    assert main(["profile", str(tmp_path / "untrained"), "--data", str(tmp_path)]) == 2
    assert "give --split train or test" in capsys.readouterr().err


def test_profile_of_a_streaming_model_states_operations_until_its_decision(tmp_path, capsys):
    import json

    from eventfiles import random_events, write_nmnist
    from stc_zoo.cli import main
    from stc_zoo.data import read_event_file

    rng = np.random.default_rng(2)
    paths = [tmp_path / f"{i}.bin" for i in range(2)]
    for p in paths:
        write_nmnist(p, random_events(rng, 6000, 34, 34, 300_000))
    assert main(["profile", "nmnist-stream-20ms", *map(str, paths), "--threshold", "0.05", "--min-steps", "3",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # any confidence passes 0.05: every recording decides at min_steps, after the operations of 3 steps
    per_recording = []
    model = StcSNN.from_pretrained("nmnist-stream-20ms").fuse_for_inference()
    for p in paths:
        events = read_event_file(p)
        session = model.stream(threshold=0.05, min_steps=3)
        session.push(events, now_us=int(events["t"][-1]) + 1)
        assert session.decision.step == 2
        one = metrics.profile(model.network, [model.compress([events])])
        per_recording.append(sum(one.per_step()[:3]))
    assert got["decision"]["decided"] == 2 and got["decision"]["median_steps"] == 3
    assert got["decision"]["median_synops_until_decision"] == pytest.approx(float(np.median(per_recording)))


# ------------------------------------------------------------------ the cost a card states
WEIGHTS = Path(__file__).resolve().parents[1] / "stc_zoo" / "weights"


def test_the_zoo_cards_state_their_cost():
    from stc_zoo.hub import cost
    from stc_zoo.hub.card import read_card

    for name in ("nmnist-t4", "nmnist-stream-20ms", "nmnist-lif-t4"):
        claim = cost.stated(WEIGHTS / name)
        assert claim is not None and claim["command"].startswith(f"stc-zoo profile {name} --data ")
        assert cost.SECTION in (WEIGHTS / name / "README.md").read_text()
        read_card(WEIGHTS / name / "README.md")  # still a valid card
    assert cost.stated(WEIGHTS / "nmnist-stream-20ms")["decision"]["threshold"] == 0.9


# The streaming card recomputes in about a minute (1,000 recordings of 15 steps, twice): with -m slow.
@pytest.mark.parametrize("name", ["nmnist-t4", pytest.param("nmnist-stream-20ms", marks=pytest.mark.slow)])
def test_a_zoo_cards_cost_recomputes_and_a_tampered_one_is_refused(tmp_path, name):
    import shutil

    from eventfiles import SUBSET
    from stc_zoo.errors import CheckpointError
    from stc_zoo.hub import cost

    if not SUBSET.is_dir():
        pytest.skip("recomputing needs ../shared/data/nmnist-subset")
    folder = tmp_path / name
    shutil.copytree(WEIGHTS / name, folder)
    model = StcSNN.from_pretrained(folder)
    got = cost.check(folder, model, str(SUBSET))  # the card's 1,000 cross-validated recordings (and decision rule)
    claim = cost.stated(folder)
    assert got["recordings"] == 1000 and ("decision" in got) == ("decision" in claim)
    assert {k: got[k] for k in cost.FIELDS} == pytest.approx({k: claim[k] for k in cost.FIELDS}, rel=cost.RTOL)
    before = (folder / "README.md").read_text()
    cost.write(folder, claim, model.config.input.step_us)
    assert (folder / "README.md").read_text() == before  # rewriting the same cost changes nothing
    tampered = dict(claim, effective_acs=claim["effective_acs"] * 0.9)
    cost.write(folder, tampered)
    with pytest.raises(CheckpointError, match="effective_acs"):  # what check does after measuring (once is enough)
        cost.compare(folder, got, str(SUBSET))


def test_costs_benchmark_script_prints_its_table(tmp_path, capsys):
    """benchmarks/costs.py runs end to end (SpikingJelly's row only where it is installed)."""
    import runpy
    from pathlib import Path

    from eventfiles import random_events, write_nmnist

    rng = np.random.default_rng(3)
    for i in range(2):
        (tmp_path / str(i)).mkdir()
        write_nmnist(tmp_path / str(i) / "a.bin", random_events(rng, 5000, 34, 34, 300_000))
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "costs.py"))
    script["main"](["--data", str(tmp_path)])
    out = capsys.readouterr().out
    for row in ("| nmnist-t4: T = 4, 16 fine bins compressed 4:1, K = 4 | 4 |",
                "| the same weights uncompressed: T = 16 steps of one fine bin | 16 |",
                "| a plain ANN of the same shape (one dense pass) | 1 | 6,082,816 |", "averaged over 2 recordings",
                "a proxy, not a measurement"):
        assert row in out, row
