"""The Numba CPU inference path (kernels/snn_numba.py, stc_zoo/network_numba.py) against the reference.

The tail (mixing + MT-LIF) repeats the reference's float operations, so it must match bit for bit
in float32 and float64. Conv and linear layers sum in another order than oneDNN, so the network is
compared in float64, where no spike flips and logits agree to rounding; and on the trained model
in float32 on real recordings, where predictions must agree.
"""

import itertools
import logging

import numpy as np
import pytest
import torch

from eventfiles import SUBSET
from stc_zoo import InputError, StcConfig, StcSNN
from stc_zoo.kernels import ops
from stc_zoo.network import StcNetwork

pytestmark = pytest.mark.skipif(not ops.HAS_NUMBA, reason="numba not installed")


# ---------------------------------------------------------------------------------- tail
TAIL_CASES = list(itertools.product((1, 2, 5), (1, 2, 3), (1, 4), ("soft", "hard"), ((3, 5), (2, 7, 3, 5), (2, 4, 3))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, k_t, K, reset, shape", TAIL_CASES)
def test_tail_bit_identical_to_reference_whole_and_in_pieces(T, k_t, K, reset, shape, dtype):
    g = torch.Generator().manual_seed(T * 100 + k_t * 10 + K)
    C = shape[1]
    y = torch.randn(T, *shape, generator=g, dtype=dtype) * 2 + 1.5
    w = torch.rand(C, k_t, generator=g, dtype=dtype) * 1.5 - 0.3
    beta = torch.rand(C, generator=g, dtype=dtype)
    v0 = torch.randn(*shape, generator=g, dtype=dtype)
    past = torch.randn(k_t - 1, *shape, generator=g, dtype=dtype)
    args = (y, w, beta, 0.7, K, reset)
    want = ops.scb_tail(*args, v0=v0, past=past, backend="torch", return_state=True)
    got = ops.scb_tail(*args, v0=v0, past=past, backend="numba", return_state=True)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert want[0].sum() > 0, "no spike: the comparison would test nothing"
    # The same sequence in two pieces, each continuing from the state the last one returned.
    cut = T // 2
    first = ops.scb_tail(y[:cut], w, beta, 0.7, K, reset, v0=v0, past=past, backend="numba", return_state=True)
    second = ops.scb_tail(y[cut:], w, beta, 0.7, K, reset, v0=first[1], past=first[2], backend="numba",
                          return_state=True)
    assert torch.equal(torch.cat([first[0], second[0]]), got[0])
    assert torch.equal(second[1], got[1]) and torch.equal(second[2], got[2])


def test_tail_does_not_modify_the_state_it_is_given():
    y, w, beta = torch.rand(3, 2, 4), torch.rand(4, 2), torch.rand(4)
    v0, past = torch.rand(2, 4), torch.rand(1, 2, 4)
    before = v0.clone(), past.clone()
    ops.scb_tail(y, w, beta, v0=v0, past=past, backend="numba", return_state=True)
    assert torch.equal(v0, before[0]) and torch.equal(past, before[1])


# ---------------------------------------------------------------------------------- conv and linear
def sequential_conv(x, w, bias):
    """conv2d as ``conv_sparse`` promises to sum it: per output, inputs in raster order, channels
    ascending, each ``v * w`` added on its own (float32 rounding makes any other order visible).
    x ``[H, W, Cin]``, w ``[Cin, k, k, Cout]`` (torch's kx order), bias ``[Cout]``."""
    H, W, Cin = x.shape
    k = w.shape[1]
    out = np.broadcast_to(bias, (H, W, len(bias))).copy()
    for iy, ix, ci in zip(*np.nonzero(x)):
        for ky in range(k):
            for kx in range(k):
                oy, ox = iy - ky + k // 2, ix - kx + k // 2
                if 0 <= oy < H and 0 <= ox < W:
                    out[oy, ox] += x[iy, ix, ci] * w[ci, ky, kx]
    return out


@pytest.mark.parametrize("c_in", [1, 2, 3, 4, 7, 9, 20])
def test_conv_sums_in_one_order_whether_it_gathers_channels_or_not(c_in):
    """Below GATHER_MIN_CHANNELS the conv adds one channel per pass, from it up to eight (1, 2, 4, 8
    at a time); every way gives the bits of the sequential order, so frames never depend on the pass."""
    from stc_zoo.kernels import snn_numba

    rng = np.random.default_rng(c_in)
    x = (rng.integers(1, 5, (2, 7, 6, c_in)) * (rng.random((2, 7, 6, c_in)) < 0.6)).astype(np.float32)
    x[0, 3, 2] = rng.integers(1, 5, c_in)  # a pixel with every channel on: the widest passes
    w = rng.standard_normal((c_in, 3, 3, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    out = np.empty((2, 7, 6, 5), np.float32)
    assert snn_numba.conv_sparse(x, snn_numba.flip_kx(w), bias, out)
    for n in range(2):
        assert np.array_equal(out[n], sequential_conv(x[n], w, bias))


def test_linear_sums_in_one_order():
    from stc_zoo.kernels import snn_numba

    rng = np.random.default_rng(0)
    x = (rng.integers(1, 5, (3, 37)) * (rng.random((3, 37)) < 0.7)).astype(np.float32)
    w, bias = rng.standard_normal((37, 6)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    out = np.empty((3, 6), np.float32)
    snn_numba.linear_sparse(x, w, bias, out)
    for n in range(3):
        want = bias.copy()
        for f in np.nonzero(x[n])[0]:
            want += x[n, f] * w[f]
        assert np.array_equal(out[n], want)


# ---------------------------------------------------------------------------------- network
def lively(config: StcConfig, seed: int = 0, dtype=torch.float64) -> StcNetwork:
    """An eval-mode network whose every layer spikes on random input (random weights are too quiet)."""
    torch.manual_seed(seed)
    net = StcNetwork(config.network, config.input.output_size).to(dtype).eval()
    with torch.no_grad():
        for block in net.blocks:
            block.conv.weight.mul_(3)
            block.bn.running_mean.uniform_(-0.2, 0.2)
            block.bn.running_var.uniform_(0.5, 1.5)
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(0.0, 1.5)
            block.mix.weight.uniform_(-0.5, 1.5)
            block.mix.weight[:, 0].uniform_(0.5, 1.5)
        net.fc1.weight.mul_(4)
        net.fc1.bias.uniform_(0.5, 3.0)
        for lif in (*(b.lif for b in net.blocks), net.lif):
            lif.a.uniform_(0.0, 3.0)  # 1/tau in 0.5..0.95: quick to charge
    return net


NETWORKS = [
    dict(sensor_size=(16, 12), channels=(4, 6), hidden=10, k_t=2, K=3, reset="soft", pool="max"),
    dict(sensor_size=(13, 11), channels=(5,), hidden=7, k_t=1, K=1, reset="hard", pool="avg"),
    dict(sensor_size=(9, 17), channels=(3, 4), hidden=6, k_t=3, K=4, reset="hard", pool="max"),
    dict(sensor_size=(14, 10), channels=(3, 5), hidden=8, k_t=1, K=1, reset="hard", pool="sum"),  # nmnist-lif-t4's kind
]


@pytest.mark.parametrize("T", [1, 3, 5])
@pytest.mark.parametrize("changes", NETWORKS)
def test_network_matches_reference_in_float64(changes, T):
    config = StcConfig().replace(num_classes=5, **changes)
    net = lively(config, seed=T)
    H, W = config.input.output_size
    x = torch.rand(T, 3, 2, H, W, dtype=torch.float64) * 2 * (torch.rand(T, 3, 2, H, W) < 0.4)
    with torch.no_grad():
        got = net.set_backend("numba").forward_steps(x, record=True)
        want = net.set_backend("torch").forward_steps(x, record=True)
    for name, s in want.spikes.items():
        assert s.sum() > 0, f"{name} never spiked: the comparison would test nothing"
        assert torch.equal(got.spikes[name], s), name
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=1e-10)
    for name, state in want.state.items():
        torch.testing.assert_close(got.state[name].v, state.v, rtol=0, atol=1e-10)
        torch.testing.assert_close(got.state[name].past, state.past, rtol=0, atol=1e-10)  # conv outputs


def test_network_batch_and_chunk_invariant():
    """A sample's bits do not depend on its batch-mates or on how its steps are chunked."""
    config = StcConfig().replace(num_classes=5, **NETWORKS[0])
    net = lively(config, dtype=torch.float32).set_backend("numba")
    x = torch.rand(4, 3, 2, 12, 16) * 2
    with torch.no_grad():
        whole = net.forward_steps(x).logits
        for b in range(3):
            assert torch.equal(net.forward_steps(x[:, b:b + 1]).logits[:, 0], whole[:, b])
        first = net.forward_steps(x[:1])
        rest = net.forward_steps(x[1:], first.state)
    assert torch.equal(torch.cat([first.logits, rest.logits]), whole)


def test_numba_path_is_the_cpu_default_for_inference_only():
    config = StcConfig().replace(num_classes=5, **NETWORKS[0])
    net = lively(config, dtype=torch.float32)
    x = torch.rand(2, 1, 2, 12, 16)
    with torch.no_grad():
        assert net.uses_numba(x)
    assert not net.uses_numba(x)  # parameters want gradients
    assert not net.train().uses_numba(x)


def test_weights_changed_after_a_call_are_used():
    """The kernels' copy of the weights is rebuilt when a parameter changes in place or is replaced."""
    config = StcConfig().replace(num_classes=5, **NETWORKS[0])
    net = lively(config)
    x = torch.rand(3, 2, 2, 12, 16, dtype=torch.float64) * 2
    with torch.no_grad():
        net.set_backend("numba")(x)
        net.fc2.weight.mul_(-2)  # in place
        net.fold_batchnorm()  # modules replaced, conv weights scaled in place
        got = net(x)
        want = net.set_backend("torch")(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_nan_input_is_an_error_on_the_numba_path():
    config = StcConfig().replace(num_classes=5, **NETWORKS[0])
    net = lively(config, dtype=torch.float32).set_backend("numba")
    x = torch.rand(2, 1, 2, 12, 16)
    x[1, 0, 1, 3, 4] = float("nan")
    with torch.no_grad(), pytest.raises(InputError, match="NaN or Inf"):
        net(x)


def test_numba_backend_refuses_cuda_and_falls_back_without_numba(monkeypatch, caplog):
    with pytest.raises(Exception, match="runs on the CPU"):
        ops.resolve_backend("numba", torch.device("meta"))
    monkeypatch.setattr(ops, "HAS_NUMBA", False)
    monkeypatch.setattr(ops, "_said_no_numba", False)
    with caplog.at_level(logging.WARNING, logger="stc_zoo"):
        assert ops.resolve_backend("auto", torch.device("cpu")) == "torch"
        assert ops.resolve_backend("auto", torch.device("cpu")) == "torch"
    assert sum("numba is not installed" in r.message for r in caplog.records) == 1


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_trained_model_same_predictions_on_real_recordings():
    from stc_zoo.data.nmnist import read_nmnist_file

    model = StcSNN.from_pretrained("nmnist-t4")
    files = sorted(SUBSET.glob("Train/*/*.bin"))[::25]
    events = [read_nmnist_file(f) for f in files]
    with torch.no_grad():
        fast = model.set_backend("auto").predict_proba(events)
        frames_fast = model.compress(events)
        ref = model.set_backend("torch").predict_proba(events)
        frames_ref = model.compress(events)
    assert torch.equal(frames_fast, frames_ref)
    assert torch.equal(fast.argmax(-1), ref.argmax(-1))
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


def test_compression_errors_are_the_checkers_own():
    """Bad events found inside the one-pass kernel get check_events' message, naming the field."""
    from stc_zoo.data import make_events
    from stc_zoo.transforms import SpatioTemporalCompression

    stc = SpatioTemporalCompression((10, 8), T=2, ratio=2, backend="numba")
    good = make_events(np.arange(8), np.arange(8), np.arange(8) * 10, np.ones(8, int))
    for field, value, message in (("x", 10, "field 'x'"), ("y", 8, "field 'y'"), ("t", -5, "negative")):
        bad = good.copy()
        bad[field][3 if field != "t" else 0] = value
        with pytest.raises(Exception, match=message):
            stc(bad)
    unsorted = good.copy()
    unsorted["t"] = unsorted["t"][::-1]
    with pytest.warns(UserWarning, match="not sorted"):
        got = stc(unsorted)
    with pytest.warns(UserWarning, match="not sorted"):
        want = SpatioTemporalCompression((10, 8), T=2, ratio=2, backend="torch")(unsorted)
    assert torch.equal(got, want) and got.sum() == 8


def test_no_recompilation_when_batch_size_or_event_count_changes():
    """Numba compiles per dtype and rank, not per shape: new batch sizes and event counts reuse the kernels."""
    from stc_zoo.data import synthetic_events
    from stc_zoo.kernels import compress_numba, snn_numba

    model = StcSNN(StcConfig().replace(num_classes=5, **NETWORKS[0])).eval()
    with torch.no_grad():
        model.predict_proba(synthetic_events((16, 12), 300, seed=0))
        kernels = (compress_numba._compress, snn_numba.network, snn_numba.conv_sparse, snn_numba.tail,
                   snn_numba.linear_sparse)
        before = [len(k.signatures) for k in kernels]
        for batch, n in ((1, 17), (3, 5000), (7, 1)):
            model.predict_proba([synthetic_events((16, 12), n, seed=s) for s in range(batch)])
    assert [len(k.signatures) for k in kernels] == before


# ------------------------------------------------------------------ a batch in chunks, on both cores (issue 24)
@pytest.mark.parametrize("chunk_bytes, min_batch", [(1, 2), (40_000, 2), (40_000, 10**9)],
                         ids=["one sample a chunk, threads", "chunks, threads", "chunks, one thread"])
def test_a_batch_in_chunks_and_threads_gives_the_same_bits(monkeypatch, chunk_bytes, min_batch):
    from stc_zoo import network_numba
    from stc_zoo.data import synthetic_events

    torch.manual_seed(3)
    config = StcConfig().replace(sensor_size=(16, 12), num_classes=4, T=3, ratio=2, channels=(6, 8), hidden=12)
    model = StcSNN(config).eval()
    with torch.no_grad():
        for block in model.network.blocks:
            block.conv.weight.mul_(3)
            block.bn.bias.uniform_(0.0, 1.0)
    events = [synthetic_events((16, 12), 300 + 40 * i, seed=i) for i in range(11)]
    x = model.compress(events)
    with torch.no_grad():
        whole = model.network.forward_steps(x, record=True)
        start = model.network.forward_steps(x)
    monkeypatch.setattr(network_numba, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(network_numba, "PARALLEL_MIN_BATCH", min_batch)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert len(network_numba._chunks(11, 3, network_numba.weights(model.network))) > 1
    with torch.no_grad():
        chunked = model.network.forward_steps(x, record=True)
        # continuing from a state, in chunks, equals continuing whole
        cont_whole = model.network.forward_steps(x, start.state)
    monkeypatch.setattr(network_numba, "CHUNK_BYTES", 1 << 40)
    with torch.no_grad():
        cont_one = model.network.forward_steps(x, start.state)
    assert torch.equal(chunked.logits, whole.logits)
    assert all(torch.equal(chunked.spikes[k], whole.spikes[k]) for k in whole.spikes)
    assert all(torch.equal(chunked.state[k].v, whole.state[k].v) and torch.equal(chunked.state[k].past, whole.state[k].past)
               for k in whole.state)
    assert torch.equal(cont_whole.logits, cont_one.logits)
    assert sum(s.sum() for s in whole.spikes.values()) > 0


def test_the_laid_out_weights_follow_every_kind_of_change():
    """The Numba path lays the weights out once; an in-place edit, a swapped .data, a replaced parameter or
    module, and a dtype change each make it lay them out again (its answers stay the reference's)."""
    from stc_zoo import network_numba
    from stc_zoo.data import synthetic_events

    torch.manual_seed(5)
    config = StcConfig().replace(sensor_size=(16, 12), num_classes=4, T=3, ratio=2, channels=(6,), hidden=12)
    model = StcSNN(config).eval()
    x = model.compress([synthetic_events((16, 12), 400, seed=1)])

    def agree():
        with torch.no_grad():
            fast = model.network(x.to(model.network.fc1.weight.dtype))
            model.network.set_backend("torch")
            ref = model.network(x.to(model.network.fc1.weight.dtype))
            model.network.set_backend("auto")
        assert torch.allclose(fast, ref, atol=1e-5), (fast, ref)
        return fast

    first = agree()
    with torch.no_grad():
        model.network.fc2.bias.add_(1.0)  # in place: version bump
    assert not torch.equal(agree(), first)
    model.network.fc2.bias.data = torch.zeros(4)  # .data swapped: same object, new storage
    agree()
    model.network.fc2.weight = torch.nn.Parameter(torch.randn(4, 12))  # a replaced parameter
    agree()
    model.network.fold_batchnorm()  # replaced modules (BatchNorm -> Identity, a conv bias appears)
    agree()
    model.double()  # every tensor converted
    assert network_numba.weights(model.network).fc1.dtype == np.float64
    agree()



def predict_in_a_new_process(cache, recording) -> tuple[float, str, set[str]]:
    """``stc-zoo predict nmnist-t4 RECORDING`` in a fresh interpreter with ``cache`` as Numba's cache and the
    default policy (no STC_ZOO_COMPILE): its confidence, its latency line, and the cache's files after it."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("STC_ZOO_COMPILE", "NUMBA_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-m", "stc_zoo.cli", "predict", "nmnist-t4", str(recording)],
                          env={**clean, "NUMBA_CACHE_DIR": str(cache)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith(str(recording))).split()
    latency = next(line for line in done.stdout.splitlines() if line.startswith("latency:"))
    return float(row[4]), latency, {p.name for p in cache.rglob("*.nbc")}


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_a_cold_cache_predicts_on_the_reference_and_a_warmed_one_on_the_fast_path(tmp_path, warmed_numba_cache):
    """``stc-zoo predict`` (a one-shot command) in a process whose Numba cache lacks the kernels runs the PyTorch
    reference instead of compiling for ~15 s (a fresh install's first prediction, a container started without a
    warm-up) and says so; once ``stc-zoo warmup`` filled the cache, it loads the fast path and compiles nothing.
    Both print this process's fast-path confidence."""
    recording = SUBSET / "Train" / "7" / "00016.bin"
    model = StcSNN.from_pretrained("nmnist-t4").fuse_for_inference().set_backend("numba")
    from stc_zoo.data import read_event_file

    want = float(model.predict_proba(read_event_file(recording))[0].max())
    (tmp_path / "empty").mkdir()
    confidence, latency, compiled = predict_in_a_new_process(tmp_path / "empty", recording)
    assert "the PyTorch reference (the fast path is not compiled here yet: stc-zoo warmup)" in latency
    assert not any(name.startswith("snn_numba.network") for name in compiled), compiled  # nothing compiled
    assert confidence == pytest.approx(want, abs=1e-4)
    before = {p.name for p in warmed_numba_cache.rglob("*.nbc")}
    confidence, latency, after = predict_in_a_new_process(warmed_numba_cache, recording)
    assert ", the fast path," in latency and after == before  # loaded, nothing new compiled
    assert confidence == pytest.approx(want, abs=1e-4)
