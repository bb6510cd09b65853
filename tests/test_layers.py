"""MT-LIF, temporal mixing and the SCB: exact gradients for the chosen surrogate, PLIF at K = 1."""

import itertools

import pytest
import torch

from stc_zoo.kernels import surrogate as sg
from stc_zoo.kernels.scb_tail_ref import mtlif_ref, scb_tail_ref, temporal_mix_ref
from stc_zoo.layers import MultiThresholdLIF, SynapticConvBlock, TemporalMix


@pytest.fixture(autouse=True)
def _float64_and_seed():
    """float64 for exact gradient checks, restored after each test so other modules keep float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("name", sg.SURROGATES)
@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_each_window_is_the_derivative_of_its_smooth_step(name, alpha):
    u = (torch.rand(2000) * 6 - 3).requires_grad_()
    (grad,) = torch.autograd.grad(sg.smooth_step(u, name, alpha).sum(), u)
    torch.testing.assert_close(grad, sg.window(u.detach(), name, alpha))
    # unit integral: the smooth step climbs from 0 to 1
    far = torch.tensor([-50.0, 50.0])
    assert sg.smooth_step(far, name, alpha).tolist() == pytest.approx([0.0, 1.0], abs=0.01)


def test_spike_counts_are_the_clamped_floor():
    h = torch.tensor([-3.0, 0.0, 0.99, 1.0, 2.5, 3.99, 4.0, 9.0])
    assert sg.multi_threshold_spike(h, 1.0, 4).tolist() == [0, 0, 0, 1, 2, 3, 4, 4]
    assert sg.multi_threshold_spike(h * 0.5, 0.5, 2).tolist() == [0, 0, 0, 1, 2, 2, 2, 2]


class SmoothSpike(torch.autograd.Function):
    """The smooth staircase forward with the library's hand-written backward: gradcheck then
    verifies that backward, and every gradient path of the recurrent neuron, exactly."""

    @staticmethod
    def forward(ctx, h, v_th, K, name, alpha):
        ctx.save_for_backward(h)
        ctx.args = (v_th, K, name, alpha)
        return sum(sg.smooth_step(h / v_th - k, name, alpha) for k in range(1, K + 1))

    @staticmethod
    def backward(ctx, grad):
        (h,) = ctx.saved_tensors
        return grad * sg.spike_grad(h, *ctx.args), None, None, None, None


@pytest.mark.parametrize("name,K,reset", list(itertools.product(sg.SURROGATES, [1, 2, 4], ["soft", "hard"])))
def test_mtlif_gradcheck_on_the_smooth_staircase(monkeypatch, name, K, reset):
    monkeypatch.setattr(sg, "multi_threshold_spike", SmoothSpike.apply)
    T, B, C = 4, 2, 3
    x = (torch.randn(T, B, C, 2) * 1.5 + 1.2 * K / 2).requires_grad_()
    beta = (torch.rand(C) * 0.6 + 0.2).requires_grad_()
    v0 = torch.randn(B, C, 2).requires_grad_()
    w = torch.randn(C, 2).requires_grad_()

    def f(x, beta, v0, w):
        s, v = mtlif_ref(temporal_mix_ref(x, w), beta, 0.7, K, reset, False, name, 1.3, v0=v0, return_v=True)
        return s, v

    assert torch.autograd.gradcheck(f, (x, beta, v0, w))


def test_temporal_mix_is_causal_identity_at_init_and_gradchecks():
    T, B, C = 5, 2, 3
    y = torch.randn(T, B, C, 4, 3, requires_grad=True)
    assert torch.equal(TemporalMix(C, 3)(y), y)
    w = torch.randn(C, 3, requires_grad=True)
    out = temporal_mix_ref(y, w)
    c, t = 1, 3  # written out for one channel and step
    want = w[c, 0] * y[t, :, c] + w[c, 1] * y[t - 1, :, c] + w[c, 2] * y[t - 2, :, c]
    torch.testing.assert_close(out[t, :, c], want)
    torch.testing.assert_close(out[0, :, c], w[c, 0] * y[0, :, c])
    assert torch.autograd.gradcheck(temporal_mix_ref, (y, w))
    assert torch.autograd.gradcheck(temporal_mix_ref, (y[:1], w))  # k_t > T


def plif_loop(x, a, v_th, reset, detach_reset):
    """SpikingJelly-style multi-step PLIF, written out independently: decay_input, v_reset 0 for
    hard reset, Heaviside spike with a rectangular surrogate of width v_th (straight-through)."""
    tau_inv = torch.sigmoid(a).view(-1, 1, 1)
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) * tau_inv
        ramp = torch.clamp((h - v_th) / v_th + 0.5, 0, 1)  # slope 1/v_th on |h - v_th| < v_th/2
        spike = (h >= v_th).to(h.dtype) + ramp - ramp.detach()
        r = spike.detach() if detach_reset else spike
        v = h - r * v_th if reset == "soft" else h * (1 - r)
        out.append(spike)
    return torch.stack(out)


@pytest.mark.parametrize("reset,detach", list(itertools.product(["soft", "hard"], [False, True])))
@pytest.mark.parametrize("T", [1, 3, 8])
def test_k1_is_plif(reset, detach, T):
    C = 5
    x = (torch.randn(T, 3, C, 4, 2) + 1.0).requires_grad_()
    lif = MultiThresholdLIF(C, K=1, v_th=0.8, tau_init=2.0, reset=reset, detach_reset=detach)
    with torch.no_grad():
        lif.a.copy_(torch.randn(C))
    a_ref = lif.a.detach().clone().requires_grad_()
    ours, ref = lif(x), plif_loop(x, a_ref, 0.8, reset, detach)
    # the oracle's straight-through sum may differ from an integer in the last bit
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    assert 0 < ours.sum() < ours.numel()
    g = torch.randn_like(ours)
    gx, ga = torch.autograd.grad((ours * g).sum(), (x, lif.a))
    gx_ref, ga_ref = torch.autograd.grad((ref * g).sum(), (x, a_ref))
    torch.testing.assert_close(gx, gx_ref)
    torch.testing.assert_close(ga, ga_ref)


def test_multi_threshold_emits_counts_and_soft_reset_keeps_the_remainder():
    beta = torch.tensor([1.0 - 1e-12])  # tau ~ 1: H = I
    x = torch.tensor([3.5, 0.0, 9.0]).view(3, 1, 1)
    s, v = mtlif_ref(x, beta, 1.0, 4, "soft", return_v=True)
    # 3.5 -> 3 spikes, V = 0.5; then H = 0 (tau ~ 1); then 9 -> clamped at K = 4, V = 5
    assert s.flatten().tolist() == [3, 0, 4]
    assert v.item() == pytest.approx(5.0)
    s, v = mtlif_ref(x, beta, 1.0, 4, "hard", return_v=True)
    assert s.flatten().tolist() == [3, 0, 4] and v.item() == 0.0


def test_detach_reset_changes_only_the_reset_path():
    x = (torch.randn(6, 2, 3) + 2).requires_grad_()
    beta = torch.full((3,), 0.5)
    s1 = mtlif_ref(x, beta, 1.0, 4, "soft", False)
    s2 = mtlif_ref(x, beta, 1.0, 4, "soft", True)
    assert torch.equal(s1, s2)
    g1, = torch.autograd.grad(s1.sum(), x)
    g2, = torch.autograd.grad(s2.sum(), x)
    assert not torch.allclose(g1, g2)


def test_tau_is_learnable_per_channel_and_initialised():
    lif = MultiThresholdLIF(7, tau_init=2.0)
    torch.testing.assert_close(lif.tau, torch.full((7,), 2.0))
    x = torch.randn(4, 2, 7, 3, 3) + 1
    lif(x).sum().backward()
    assert lif.a.grad is not None and (lif.a.grad != 0).all()


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_scb_fold_batchnorm_gives_the_same_spikes(reset):
    block = SynapticConvBlock(2, 6, 3, k_t=2, K=3, reset=reset)
    with torch.no_grad():
        block.bn.running_mean.copy_(torch.randn(6) * 0.3)
        block.bn.running_var.copy_(torch.rand(6) + 0.5)
        block.bn.weight.copy_(torch.rand(6) + 0.5)
        block.bn.bias.copy_(torch.randn(6) * 0.2)
        block.mix.weight.copy_(torch.randn(6, 2))
    block.eval()
    x = torch.rand(4, 2, 2, 9, 7) * 3
    before = block(x)
    block.fold_batchnorm()
    assert isinstance(block.bn, torch.nn.Identity) and block.conv.bias is not None
    assert torch.equal(block(x), before) and before.sum() > 0
    assert before.shape == (4, 2, 6, 9, 7)


def test_scb_tail_ref_composes_mix_and_lif():
    y, w, beta = torch.randn(3, 2, 4, 5) + 1, torch.randn(4, 2), torch.rand(4)
    torch.testing.assert_close(scb_tail_ref(y, w, beta, K=2), mtlif_ref(temporal_mix_ref(y, w), beta, K=2))
