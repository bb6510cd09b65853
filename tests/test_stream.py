"""Streaming: sessions, fixed-duration binning, layer state and step modes.

The central promise: pushing a recording in packets of any size gives bit-identical per-step
logits to the offline forward of the same recording binned the same way, on every path.
"""

import dataclasses

import numpy as np
import pytest
import torch

from eventfiles import SUBSET
from stc_zoo import InputError, StcConfig, StcSNN
from stc_zoo.data import synthetic_events
from stc_zoo.errors import EventFormatError
from stc_zoo.kernels import ops
from stc_zoo.layers import MultiThresholdLIF, SynapticConvBlock, set_step_mode
from stc_zoo.transforms import SpatioTemporalCompression

BACKENDS = ["torch"] + (["numba"] if ops.HAS_NUMBA else [])
STEP_US = 8_000


def streaming_model(backend: str, seed: int = 0, sensor_size=(16, 12), step_us=STEP_US) -> StcSNN:
    """A small duration-binned model whose every layer spikes on random events."""
    config = StcConfig().replace(sensor_size=sensor_size, num_classes=4, T=5, ratio=4, split_by="duration",
                                 step_us=step_us, channels=(4, 6), hidden=10, k_t=2, K=3)
    torch.manual_seed(seed)
    return lively(StcSNN(config, backend=backend).eval())


@torch.no_grad()
def lively(model: StcSNN, bn_bias: tuple[float, float] = (0.0, 1.0)) -> StcSNN:
    """``model`` with weights that make every layer spike on random events (random weights are quiet)."""
    for block in model.network.blocks:
        block.conv.weight.mul_(3)
        block.bn.bias.uniform_(*bn_bias)
    model.network.fc1.weight.mul_(4)
    model.network.fc1.bias.uniform_(0.5, 2.0)
    return model


def offline_steps(model: StcSNN, events: np.ndarray, steps: int, origin_us=None) -> torch.Tensor:
    """Per-step logits ``[steps, num_classes]`` of the offline forward over ``steps`` steps."""
    pipe = SpatioTemporalCompression.from_config(dataclasses.replace(model.config.input, T=steps), model.backend)
    x = pipe.batch([events], origins_us=None if origin_us is None else [origin_us])
    with torch.no_grad():
        out = model.network.forward_steps(x, record=True)
    for name, s in out.spikes.items():
        assert s.sum() > 0, f"{name} never spiked: the comparison would test nothing"
    return out.logits[:, 0]


def push_in_packets(session, events, rng, now_us=None):
    outputs, i = [], 0
    while i < len(events):
        n = int(rng.choice([0, 1, 7, 50, 333, 1200]))  # empty packets, single events, packets crossing steps
        outputs += session.push(events[i:i + n])
        i += n
    if now_us is not None:
        outputs += session.push(now_us=now_us)
    return outputs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed, record", [(0, True), (1, False), (2, True), (3, False)])
def test_streaming_equals_offline_bit_for_bit(backend, seed, record):
    model = streaming_model(backend, seed)
    events = synthetic_events((16, 12), 4000, seed=seed, duration_us=7 * STEP_US + 3_000)
    session = model.stream(record_spikes=record)
    outputs = push_in_packets(session, events, np.random.default_rng(seed))
    t0, t_last = int(events["t"][0]), int(events["t"][-1])
    assert len(outputs) == (t_last - t0) // STEP_US  # a step completes only when an event reaches its end
    outputs += session.push(now_us=t0 + 8 * STEP_US)  # the stream reached the end of step 7
    assert [o.step for o in outputs] == list(range(8))
    assert [o.end_us for o in outputs] == [(k + 1) * STEP_US for k in range(8)]
    want = offline_steps(model, events, 8)
    got = torch.stack([o.logits for o in outputs])
    assert torch.equal(got, want)
    # The running probabilities are predict_proba's rule on the steps so far.
    torch.testing.assert_close(outputs[4].probs, torch.softmax(want[:5].mean(0), -1), rtol=0, atol=1e-6)
    assert outputs[4].label == int(outputs[4].probs.argmax())
    if record:
        assert all(set(o.spikes) == {"blocks.0.lif", "blocks.1.lif", "lif"} for o in outputs)
    else:
        assert all(o.spikes is None for o in outputs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_given_origin_and_silent_stretches(backend):
    model = streaming_model(backend)
    events = synthetic_events((16, 12), 2000, seed=5, duration_us=3 * STEP_US)
    events["t"] += 2 * STEP_US + 500  # the stream starts 2.06 steps after the origin
    session = model.stream(origin_us=0)
    outputs = session.push(events[:1000]) + session.push(now_us=9 * STEP_US)
    assert [o.step for o in outputs] == list(range(9))
    assert torch.equal(torch.stack([o.logits for o in outputs]), offline_steps(model, events[:1000], 9, origin_us=0))


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_equals_offline_on_a_real_recording(backend):
    from stc_zoo.data.nmnist import read_nmnist_file

    model = streaming_model(backend, sensor_size=(34, 34), step_us=20_000)
    events = read_nmnist_file(sorted(SUBSET.glob("Train/5/*.bin"))[0])
    outputs = push_in_packets(model.stream(), events, np.random.default_rng(0), now_us=int(events["t"][-1]) + 1)
    steps = len(outputs)
    assert steps == (int(events["t"][-1]) + 1 - int(events["t"][0])) // 20_000
    assert torch.equal(torch.stack([o.logits for o in outputs]), offline_steps(model, events, steps))


def test_decision_rule():
    model = streaming_model("torch")
    events = synthetic_events((16, 12), 3000, seed=3, duration_us=9 * STEP_US)
    at_T = model.stream()
    outputs = at_T.push(events)
    assert at_T.decision is not None and at_T.decision.step == model.config.input.T - 1
    assert at_T.decision.label == outputs[model.config.input.T - 1].label
    eager = model.stream(threshold=1e-9, min_steps=3)  # any confidence will do: decides at min_steps
    eager.push(events)
    assert eager.decision.step == 2 and eager.decision.end_us == 3 * STEP_US
    never = model.stream(threshold=1.0)
    never.push(events)
    assert never.decision is None or never.decision.confidence == 1.0
    eager.reset()
    assert eager.decision is None and eager.steps == 0


def test_stream_errors():
    with pytest.raises(InputError, match="duration-binned"):
        StcSNN(StcConfig()).stream()
    model = streaming_model("torch")
    with pytest.raises(ValueError, match="threshold"):
        model.stream(threshold=1.5)
    session = model.stream()
    events = synthetic_events((16, 12), 100, seed=0)
    session.push(events[50:])
    with pytest.raises(EventFormatError, match="time order"):
        session.push(events[:50])
    with pytest.raises(EventFormatError, match="field 'x'"):
        bad = events[-5:].copy()
        bad["x"][0] = 99
        session.push(bad)


def test_duration_config_rules():
    with pytest.raises(ValueError, match="step_us"):
        StcConfig().replace(split_by="duration")
    with pytest.raises(ValueError, match="multiple of ratio"):
        StcConfig().replace(split_by="duration", ratio=3, step_us=1000)
    with pytest.raises(ValueError, match="only for split_by 'duration'"):
        StcConfig().replace(step_us=1000)


# ---------------------------------------------------------------------------------- layers
def test_single_step_mode_equals_multi_step():
    torch.manual_seed(0)
    lif = MultiThresholdLIF(5, K=3)
    x = torch.rand(6, 2, 5, 3) * 3
    mix = torch.rand(5, 2)
    whole, state = lif.run(x, mix)
    set_step_mode(lif, "s")
    steps = torch.stack([lif(x[t], mix) for t in range(6)])
    assert torch.equal(steps, whole) and torch.equal(lif.v, state.v) and torch.equal(lif.state.past, state.past)
    lif.reset_state()
    assert lif.v is None and torch.equal(lif(x[0], mix), whole[0])


def test_block_and_network_step_modes():
    torch.manual_seed(1)
    block = SynapticConvBlock(2, 3, k_t=2).eval()
    x = torch.rand(4, 1, 2, 6, 6) * 3
    with torch.no_grad():
        whole, _ = block.run(x, per_step=True)
        set_step_mode(block, "s")
        assert torch.equal(torch.stack([block(x[t]) for t in range(4)]), whole)
    model = streaming_model("torch")
    x = torch.rand(5, 1, 2, 12, 16) * 2
    with torch.no_grad():
        per_step = model.network.forward_steps(x).logits
        model.network.set_step_mode("s")
        stepped = torch.stack([model.network(x[t]) for t in range(5)])
        model.network.reset_state()
        assert torch.equal(model.network(x[0]), per_step[0])
    assert torch.equal(stepped, per_step)
    with pytest.raises(InputError, match="one step"):
        model.network(x)


@pytest.mark.parametrize("how", ["function", "method"])
def test_a_fixed_t_network_runs_step_by_step_whichever_way_the_mode_is_set(how):
    """stc_zoo.layers.set_step_mode on the network puts the network itself in step mode too, and a count-binned
    model (T fixed at 4) takes one step per call: the caller drives the steps."""
    model = StcSNN.from_pretrained("nmnist-t4")
    x = model.compress(synthetic_events((34, 34), 2000, seed=4))
    with torch.no_grad():
        whole = model.network.forward_steps(x).logits
        set_step_mode(model.network, "s") if how == "function" else model.network.set_step_mode("s")
        assert model.network.step_mode == "s"
        stepped = torch.stack([model.network(x[t]) for t in range(4)])
    assert torch.equal(stepped, whole)


def test_tracing_or_exporting_a_step_mode_network_is_refused():
    """The state of step mode 's' lives in Python between calls: a traced graph would freeze it at rest (right at
    step 0, wrong at every later step), so the network refuses rather than give such a graph."""
    model = StcSNN.from_pretrained("nmnist-t4", backend="torch")
    model.network.set_step_mode("s")
    x = model.compress(synthetic_events((34, 34), 2000, seed=4))
    with pytest.raises(InputError, match="would freeze at rest"):
        torch.jit.trace(model.network, (x[0],))


# ------------------------------------------------------------------ bounded time and memory (issue 21)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_time_jump_beyond_max_gap_is_refused_whole_and_changes_nothing(backend):
    model = streaming_model(backend)
    events = synthetic_events((16, 12), 100, seed=3, duration_us=30_000)
    session = model.stream(max_gap_us=10 * STEP_US)
    before = session.push(events)
    state = (session.steps, session._last_t, len(session._pending))
    with pytest.raises(EventFormatError, match=r"ahead in one push, beyond max_gap_us=80,000"):
        session.push(now_us=int(events["t"][-1]) + 1000 * 10**6)  # the probe's push(now_us=t + 1000 s)
    glitch = events[-1:].copy()
    glitch["t"] += 10**11
    with pytest.raises(EventFormatError, match=r"beyond max_gap_us"):
        session.push(glitch)
    assert (session.steps, session._last_t, len(session._pending)) == state
    # A stream that advances by pushes within the limit goes on, and matches the offline forward.
    after = session.push(now_us=int(events["t"][0]) + 9 * STEP_US)
    expected = offline_steps(model, events, 9, origin_us=int(events["t"][0]))
    got = torch.stack([o.logits for o in before + after])
    assert torch.equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_steps_in_one_push_run_in_bounded_chunks(backend, monkeypatch):
    from stc_zoo import stream

    model = streaming_model(backend)
    events = synthetic_events((16, 12), 2000, seed=4, duration_us=40 * STEP_US)
    sizes = []
    compress = stream.StreamSession._compress_completed
    monkeypatch.setattr(stream, "CHUNK_STEPS", 16)
    monkeypatch.setattr(stream.StreamSession, "_compress_completed",
                        lambda self, done: sizes.append(done) or compress(self, done))
    session = model.stream()
    outputs = session.push(events, now_us=int(events["t"][0]) + 40 * STEP_US)
    assert len(outputs) == 40 and max(sizes) == 16 and sum(sizes) == 40
    expected = offline_steps(model, events, 40, origin_us=int(events["t"][0]))
    assert torch.equal(torch.stack([o.logits for o in outputs]), expected)


def test_bad_now_us_and_max_gap_are_input_errors():
    model = streaming_model("torch")
    with pytest.raises(InputError, match="max_gap_us must be an integer >= one step"):
        model.stream(max_gap_us=10)
    with pytest.raises(InputError, match="now_us must be a non-negative integer"):
        model.stream().push(now_us=1.5)


# ------------------------------------------------------------------ continuous mode
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hop", [1, 2, 5])
def test_continuous_windows_equal_the_offline_forward_of_each_window(backend, hop):
    model = streaming_model(backend, seed=hop)
    T = model.config.input.T
    events = synthetic_events((16, 12), 6000, seed=hop, duration_us=13 * STEP_US + 2_500)
    session = model.stream_continuous(hop=hop)
    assert session._windows._direct == (backend == "numba")  # the Numba path runs the windows as one batch
    decisions = push_in_packets(session, events, np.random.default_rng(hop))
    t0 = int(events["t"][0])
    decisions += session.push(now_us=t0 + 14 * STEP_US)  # the stream reached the end of step 13
    windows = (14 - T) // hop + 1  # windows [w * hop, w * hop + T) that end by step 14
    assert [d.window for d in decisions] == list(range(windows)) and session.windows == windows
    for d in decisions:
        start = t0 + d.window * hop * STEP_US
        assert (d.start_us, d.end_us) == (start - t0, start - t0 + T * STEP_US)
        inside = events[(events["t"] >= start) & (events["t"] < start + T * STEP_US)]
        assert d.events == len(inside)
        want = offline_steps(model, inside, T, origin_us=start)  # from rest at the window's start
        assert torch.equal(d.logits, want), f"window {d.window}"
        offline = model.network(SpatioTemporalCompression.from_config(model.config.input, model.backend).batch(
            [inside], origins_us=[start]))
        assert d.label == int(offline.argmax()) and d.name == model.config.labels[d.label]
        torch.testing.assert_close(d.probs, torch.softmax(offline[0], -1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_silent_windows_decide_on_no_events(backend):
    model = streaming_model(backend)
    T = model.config.input.T
    events = synthetic_events((16, 12), 1000, seed=4, duration_us=2 * STEP_US)
    session = model.stream_continuous()  # hop = T: consecutive windows
    decisions = session.push(events) + session.push(now_us=int(events["t"][0]) + 3 * T * STEP_US)
    assert [d.window for d in decisions] == [0, 1, 2]
    assert decisions[0].events == len(events) and decisions[1].events == decisions[2].events == 0
    pipe = SpatioTemporalCompression.from_config(model.config.input, model.backend)
    with torch.no_grad():  # the offline forward of a window without events: zero current from rest
        nothing = model.network.forward_steps(pipe.batch([events[:0]], origins_us=[0])).logits[:, 0]
    assert torch.equal(decisions[1].logits, nothing) and torch.equal(decisions[2].logits, nothing)


def test_continuous_errors_and_gaps():
    model = streaming_model("torch")
    for hop in (0, 6, 2.0, True):
        with pytest.raises(InputError, match="hop"):
            model.stream_continuous(hop=hop)
    with pytest.raises(InputError, match="duration-binned"):
        StcSNN(StcConfig()).stream_continuous()
    session = model.stream_continuous(hop=1, max_gap_us=10 * STEP_US)
    events = synthetic_events((16, 12), 500, seed=1, duration_us=3 * STEP_US)
    session.push(events)
    before = (session.windows, len(session._windows._windows), session._windows._horizon)
    with pytest.raises(EventFormatError, match="max_gap_us"):
        session.push(now_us=int(events["t"][-1]) + 11 * STEP_US)
    assert (session.windows, len(session._windows._windows), session._windows._horizon) == before  # refused whole
    with pytest.raises(EventFormatError, match="time order"):
        session.push(events[:5])
    with pytest.raises(InputError, match="now_us"):
        session.push(now_us=-1)


def test_a_deadline_decides_at_max_steps_when_the_threshold_never_holds():
    model = streaming_model("torch")
    events = synthetic_events((16, 12), 3000, seed=3, duration_us=9 * STEP_US)
    never = model.stream(threshold=1.0, max_steps=4)  # a confidence of 1.0 never comes: the deadline decides
    outputs = never.push(events)
    assert never.decision.step == 3 and never.decision.end_us == 4 * STEP_US
    assert never.decision.label == outputs[3].label
    early = model.stream(threshold=1e-9, min_steps=2, max_steps=4)  # the threshold holds first
    early.push(events)
    assert early.decision.step == 1
    deadline_only = model.stream(max_steps=2)  # no threshold: the deadline comes before step T
    deadline_only.push(events)
    assert deadline_only.decision.step == 1 < model.config.input.T - 1
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="max_steps"):
            model.stream(min_steps=1, max_steps=bad)
    with pytest.raises(InputError, match="max_steps"):
        model.stream(min_steps=3, max_steps=2)
