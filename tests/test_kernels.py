"""Triton kernels against their PyTorch references (Triton's interpreter on CPU; see conftest.py).

Stated tolerances:
- spike counts: equal, element for element, to the reference on the input upcast to the
  kernel's compute dtype (fp64 for fp64 input, fp32 otherwise);
- gradients, fp64: within 1e-10 of the largest reference gradient (autograd through the reference);
- gradients, fp32: within 1e-4 of it (same spikes and surrogate values; only summation order differs);
- gradients wrt an fp16/bf16 input: within 2 * eps(dtype) of it, those wrt fp32 taps and 1/tau 1e-4;
- compression: equal (both accumulate in float64).
Outputs are poisoned (NaN, or 127 for int8) before each launch, so an unwritten element fails.
"""

import itertools
import os

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from stc_zoo import StcConfig, StcSNN  # noqa: E402
from stc_zoo.kernels import compress_triton, ops, scb_tail_triton  # noqa: E402
from stc_zoo.kernels.compress_ref import compress_events_ref  # noqa: E402
from stc_zoo.kernels.scb_tail_ref import mtlif_ref, temporal_mix_ref  # noqa: E402
from stc_zoo.kernels.surrogate import SURROGATES  # noqa: E402

DEVICE = "cuda" if os.environ.get("STC_TEST_CUDA") == "1" else "cpu"
GRAD_TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    """Every buffer the launchers allocate starts as NaN (float) or 127 (int8, never a spike count)."""
    def alloc(shape, dtype, device):
        return torch.full(shape, 127 if dtype == torch.int8 else float("nan"), dtype=dtype, device=device)
    monkeypatch.setattr(scb_tail_triton, "alloc", alloc)


# Shapes [T, B, C, ...] are given without T: odd sizes, S = 1 (linear features), S above one
# tile (1024) so a row spans two column tiles, and more rows than one tile holds.
SHAPES = [(2, 3, 5, 7), (3, 5), (1, 4, 33), (2, 2, 1100), (1, 1, 1, 1), (3, 700, 1), (2, 3, 3, 3, 2)]


def tail_cases():
    """T 1..8 x reset x surrogate, with K 1..4, k_t 1..4, shape, detach and v0 cycling along."""
    for i, (T, reset, surrogate) in enumerate(itertools.product(range(1, 9), ("soft", "hard"), SURROGATES)):
        yield pytest.param(T, 1 + i % 4, 1 + (i // 4) % 4, reset, surrogate, bool(i % 5 % 2), i % 3 == 0,
                           SHAPES[i % len(SHAPES)], id=f"T{T}-{reset}-{surrogate}-{i}")


def random_tail_inputs(T, shape, k_t, dtype, seed, v0=False):
    g = torch.Generator().manual_seed(seed)
    C = shape[1]
    y = torch.randn(T, *shape, generator=g, dtype=torch.float64) * 4

    def leaf(t):
        return t.to(DEVICE, dtype).requires_grad_()

    w = (torch.randn(C, k_t, generator=g, dtype=torch.float64) * 0.7).to(DEVICE).requires_grad_()
    beta = (torch.rand(C, generator=g, dtype=torch.float64) * 0.6 + 0.35).to(DEVICE).requires_grad_()
    v0 = leaf(torch.randn(*shape, generator=g, dtype=torch.float64)) if v0 else None
    return leaf(y), w, beta, v0


def reference(y, w, beta, v0, **kw):
    return mtlif_ref(temporal_mix_ref(y, w), beta, v0=v0, **kw)


def grads(out, inputs, g):
    inputs = [t for t in inputs if t is not None]
    return torch.autograd.grad(out, inputs, g)


def assert_close_to(got, want, tol, what):
    scale = want.abs().max().clamp(min=1e-30)
    err = (got.double() - want.double()).abs().max() / scale
    assert err <= tol, f"{what}: max error {err:.2e} of the largest gradient, tolerance {tol:.0e}"


@pytest.mark.parametrize("T, K, k_t, reset, surrogate, detach, with_v0, shape", list(tail_cases()))
def test_scb_tail_matches_reference_in_float64(T, K, k_t, reset, surrogate, detach, with_v0, shape):
    y, w, beta, v0 = random_tail_inputs(T, shape, k_t, torch.float64, seed=T * 31 + K, v0=with_v0)
    kw = dict(v_th=0.8, K=K, reset=reset, detach_reset=detach, surrogate=surrogate, alpha=1.3)
    want = reference(y, w, beta, v0, **kw)
    got = ops.scb_tail(y, w, beta, v0=v0, backend="triton", **kw)
    assert got.dtype == torch.float64
    assert torch.equal(got, want)
    if want[0].numel() >= 8:
        assert 0 < want.count_nonzero() < want.numel()  # both spikes and silence occur
    g = torch.randn_like(want)
    for name, a, b in zip(("dy", "dw", "dbeta", "dv0"), grads(got, (y, w, beta, v0), g),
                          grads(want, (y, w, beta, v0), g)):
        assert_close_to(a, b, GRAD_TOL[torch.float64], name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("shape", [(3, 6, 5, 3), (4, 9)], ids=["conv", "linear"])
def test_scb_tail_low_precision(dtype, reset, shape):
    T, k_t, K = 5, 2, 3
    y, w, beta, _ = random_tail_inputs(T, shape, k_t, dtype, seed=7)
    w32, beta32 = (w.detach().float().requires_grad_(), beta.detach().float().requires_grad_())
    kw = dict(v_th=1.0, K=K, reset=reset, surrogate="triangular", alpha=1.0)
    got = ops.scb_tail(y, w32, beta32, backend="triton", **kw)
    y32 = y.detach().float().requires_grad_()
    want = reference(y32, w32, beta32, None, **kw)
    assert got.dtype == dtype
    assert torch.equal(got.float(), want)  # counts 0..K are exact in every dtype
    g = torch.randn(want.shape, dtype=torch.float32, device=DEVICE)
    got_g = grads(got, (y, w32, beta32), g.to(dtype))
    want_g = grads(want, (y32, w32, beta32), g.to(dtype).float())
    input_tol = 1e-4 if dtype == torch.float32 else 2 * torch.finfo(dtype).eps
    assert got_g[0].dtype == dtype
    assert_close_to(got_g[0], want_g[0], input_tol, "dy")
    assert_close_to(got_g[1], want_g[1], 1e-4, "dw")
    assert_close_to(got_g[2], want_g[2], 1e-4, "dbeta")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_scb_tail_int8_inference_output(dtype):
    y, w, beta, _ = random_tail_inputs(4, (3, 7, 5), 3, dtype, seed=3)
    with torch.no_grad():
        got = ops.scb_tail(y, w, beta, K=4, out_dtype=torch.int8, backend="triton")
        want = reference(y.float(), w, beta, None, K=4)
    assert got.dtype == torch.int8
    assert torch.equal(got, want.to(torch.int8))


def test_scb_tail_without_mixing_is_mtlif():
    y, _, beta, v0 = random_tail_inputs(6, (4, 11), 1, torch.float64, seed=5, v0=True)
    got = ops.scb_tail(y, None, beta, K=2, v0=v0, backend="triton")
    assert torch.equal(got, mtlif_ref(y, beta, K=2, v0=v0))


def test_int8_output_refuses_gradients():
    y, w, beta, _ = random_tail_inputs(2, (2, 3), 1, torch.float32, seed=0)
    with pytest.raises(ValueError, match="cannot carry a gradient"):
        ops.scb_tail(y, w, beta, out_dtype=torch.int8, backend="triton")


@pytest.mark.parametrize("with_v0", [False, True])
def test_scb_tail_op_registration(with_v0):
    """Schema, fake (meta) implementation, autograd registration and AOT dispatch of the custom op."""
    y, w, beta, v0 = random_tail_inputs(3, (2, 4, 5), 2, torch.float64, seed=1, v0=with_v0)
    args = (y, w, beta, v0, 0.7, 2, "hard", False, "arctan", 1.0, torch.float64, True)
    torch.library.opcheck(torch.ops.stc_zoo.scb_tail.default, args)


# ---------------------------------------------------------------------------------- compression
def random_batch(seed, counts, W, H, t_max):
    g = torch.Generator().manual_seed(seed)
    n = sum(counts)
    x, y = torch.randint(0, W, (n,), generator=g), torch.randint(0, H, (n,), generator=g)
    p = torch.randint(0, 2, (n,), generator=g)
    t = torch.cat([torch.sort(torch.randint(0, t_max, (c,), generator=g)).values for c in counts])
    offsets = torch.tensor([0, *itertools.accumulate(counts)])
    return [v.to(DEVICE) for v in (x, y, p, t, offsets)]


BATCHES = [
    # (seed, events per sample, W, H, t_max): empty samples, samples too short to bin, ties in
    # time, one sample spanning several 1024-event chunks, odd sensors
    (0, [300, 0, 57, 2500], 34, 34, 100_000),
    (1, [5, 3000], 17, 23, 40),
    (2, [1], 128, 128, 10),
    (3, [0, 0], 8, 8, 10),
    (4, [4000], 31, 9, 6_000_000),
]


@pytest.mark.parametrize("backend", ["triton", "numba"])
@pytest.mark.parametrize("split_by", ["number", "time", "duration"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("T, ratio, spatial, decay", [(1, 1, 1, 1.0), (4, 3, 2, 0.8), (8, 2, 3, 0.5), (3, 5, 4, 0.9)])
def test_compression_matches_reference(batch, split_by, T, ratio, spatial, decay, backend):
    if backend == "numba" and DEVICE != "cpu":
        pytest.skip("the Numba kernels run on the CPU")
    seed, counts, W, H, t_max = batch
    x, y, p, t, offsets = random_batch(seed, counts, W, H, t_max)
    # A step of about a tenth of the recording, so some events fall after the last step.
    step_us = ratio * max(1, t_max // (10 * ratio)) if split_by == "duration" else 0
    args = (x, y, p, t, offsets, (W, H), T, ratio, split_by, spatial, decay, step_us)
    got = ops.compress_events(*args, backend=backend)
    want = compress_events_ref(*args)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(got, want)


def test_compression_drops_events_outside_the_sensor_instead_of_writing_out_of_bounds():
    x, y, p, t, offsets = random_batch(0, [200], 10, 10, 1000)
    x[0], y[1], p[2] = 10, -1, 2  # the transform refuses these; the kernel must still stay in bounds
    got = compress_triton.compress_events(x, y, p, t, offsets, (10, 10), 2)
    assert got.sum() == 197  # 100 events per bin, all binned, the 3 bad ones dropped
    assert got.shape == (2, 1, 2, 10, 10)


def test_compression_op_registration():
    x, y, p, t, offsets = random_batch(1, [40, 0, 90], 9, 7, 500)
    torch.library.opcheck(torch.ops.stc_zoo.compress_events.default,
                          (x, y, p, t, offsets, 9, 7, 3, 2, "time", 2, 0.8, 0))


# ---------------------------------------------------------------------------------- 64-bit offsets
@triton.jit
def _offsets_probe(out_ptr, pid_r, pid_s, R, S, t, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    rows, cols, offs = scb_tail_triton.tile_offsets(pid_r, pid_s, S, BLOCK_R, BLOCK_S)
    at = t * scb_tail_triton.step_size(R, S) + offs
    i = tl.arange(0, BLOCK_R)[:, None] * BLOCK_S + tl.arange(0, BLOCK_S)[None, :]
    tl.store(out_ptr + i, at)


def test_kernel_offsets_do_not_overflow_32_bits():
    """The kernels' index arithmetic on a tile whose offsets pass 2**31 (no tensor that big needed)."""
    R, S, t, block_r, block_s = 3_000_000, 1024, 7, 2, 4
    pid_r, pid_s = R // block_r - 1, S // block_s - 1
    out = torch.empty(block_r * block_s, dtype=torch.int64, device=DEVICE)
    _offsets_probe[(1,)](out, pid_r, pid_s, R, S, t, BLOCK_R=block_r, BLOCK_S=block_s)
    want = [t * R * S + (pid_r * block_r + i) * S + pid_s * block_s + j
            for i in range(block_r) for j in range(block_s)]
    assert max(want) > 2**34
    assert out.tolist() == want


# ---------------------------------------------------------------------------------- the model
def tiny_config(**changes):
    return StcConfig().replace(sensor_size=(16, 12), num_classes=5, T=3, ratio=2, channels=(4, 6), hidden=10,
                     k_t=2, K=3, **changes)


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_model_logits_and_gradients_equal_across_backends(reset):
    torch.manual_seed(0)
    model = StcSNN(tiny_config(reset=reset)).to(DEVICE).double()
    with torch.no_grad():  # make every layer spike
        for block in model.network.blocks:
            block.conv.weight.mul_(3)
    x = (torch.rand(3, 2, 2, 12, 16, dtype=torch.float64) * 2).to(DEVICE)
    outs = {}
    for backend in ("torch", "triton"):
        model.set_backend(backend).zero_grad()
        logits = model(x)
        logits.square().sum().backward()
        outs[backend] = logits, {n: p.grad.clone() for n, p in model.named_parameters()}
    assert torch.equal(outs["torch"][0], outs["triton"][0])
    for name, g in outs["torch"][1].items():
        assert_close_to(outs["triton"][1][name], g, 1e-9, name)


def test_trained_model_same_logits_across_backends():
    model = StcSNN.from_pretrained("nmnist-t4", backend="triton")
    x = torch.rand(4, 2, 2, 34, 34) * 3
    with torch.no_grad():
        got = model(x)
        want = model.set_backend("torch")(x)
    assert torch.equal(got, want)


def test_model_traces_under_torch_compile():
    model = StcSNN(tiny_config(), backend="triton").to(DEVICE).eval()
    x = (torch.rand(3, 2, 2, 12, 16) * 2).to(DEVICE)
    with torch.no_grad():
        want = model(x)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        assert torch.equal(compiled(x), want)


# ---------------------------------------------------------------------------------- the switch
def test_backend_switch_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend"):
        ops.resolve_backend("cuda", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown backend"):
        StcSNN(tiny_config(), backend="fast")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    # CPU: the Numba kernels for inference, the reference when a gradient is needed.
    assert ops.resolve_backend("auto", torch.device("cpu")) == ("numba" if ops.HAS_NUMBA else "torch")
    assert ops.resolve_backend("auto", torch.device("cpu"), needs_grad=True) == "torch"
    assert ops.resolve_backend("numba", torch.device("cpu"), needs_grad=True) == "torch"
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        ops.resolve_backend("triton", torch.device("cpu"))


def test_scb_tail_argument_errors():
    y = torch.zeros(2, 1, 3, 4)
    with pytest.raises(ValueError, match=r"taps w \[C=3"):
        ops.scb_tail(y, torch.ones(4, 2), torch.ones(3), backend="triton")
    with pytest.raises(ValueError, match=r"beta \[C=3\]"):
        ops.scb_tail(y, None, torch.ones(2), backend="triton")
    with pytest.raises(ValueError, match="reset"):
        ops.scb_tail(y, None, torch.ones(3), reset="zero", backend="triton")


# ---------------------------------------------------------------------------------- the benchmark
def test_bench_script_prints_its_table(capsys):
    """kernels/bench.py runs end to end (tiny settings; it measures nothing here)."""
    from stc_zoo.kernels import bench
    bench.main(["--device", "cpu", "--T", "1", "--batch", "1", "--reps", "1", "--no-compile"])
    out = capsys.readouterr().out
    assert "Measured copy bandwidth" in out and "No GPU here" in out
    rows = [line for line in out.splitlines() if line.startswith("| fwd") or line.startswith("| compression")]
    assert len(rows) >= 4 and all(" - |" in r for r in rows)  # our column is empty without a GPU


def test_kernels_compile_for_a_gpu_target():
    """The real Triton compiler (not the interpreter) builds every kernel for sm_90, no GPU needed."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "stc_zoo.kernels.compile_check"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "11 kernel variants compiled for sm_90" in done.stdout
    assert "no fma instruction in any kernel's PTX" in done.stdout
    # The PTX check can fail: with Triton's default (FP fusion on) the same kernels hold fused multiply-adds.
    fused = subprocess.run([sys.executable, "-m", "stc_zoo.kernels.compile_check", "--fp-fusion"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert fused.returncode == 1 and "fused multiply-adds in the PTX" in fused.stderr, fused.stderr[-2000:]
    assert "scb_tail_fwd fp64 k_t=4 v0 store_h (the H100 case)" in fused.stderr


def test_the_model_runs_the_triton_tail_when_no_state_is_kept(monkeypatch):
    """forward() and training go through the fused kernel under backend="triton" (a stateful call, which the
    kernel cannot serve, runs the reference): the spikes of the whole network equal the reference's."""
    from stc_zoo import StcConfig, StcSNN
    from stc_zoo.kernels import scb_tail_triton
    from stc_zoo.network import record_spikes

    calls = []
    real = scb_tail_triton.scb_tail_forward
    monkeypatch.setattr(scb_tail_triton, "scb_tail_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    config = StcConfig().replace(sensor_size=(12, 10), num_classes=3, T=3, ratio=2, channels=(4,), hidden=6)
    model = StcSNN(config, backend="triton").to(DEVICE).eval()
    x = torch.rand(3, 2, 2, 10, 12, device=DEVICE) * 4
    got, got_spikes = record_spikes(model.network, x)
    assert len(calls) == 2  # the block's tail and the classifier's neuron
    model.set_backend("torch")
    want, want_spikes = record_spikes(model.network, x)
    assert all(torch.equal(a.cpu(), b.cpu()) for (_, a), (_, b) in zip(got_spikes, want_spikes))
    assert torch.allclose(got, want, atol=1e-5)
    model.set_backend("triton").train()
    calls.clear()
    model(x).sum().backward()  # training: the kernel forward (and its backward)
    assert len(calls) == 2 and model.network.blocks[0].lif.a.grad is not None
