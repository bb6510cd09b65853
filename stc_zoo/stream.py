"""Streaming inference: a model's decisions while the events arrive.

``session = model.stream()`` (a duration-binned model: its steps are ``step_us`` long, counted
from the session's origin, the first event unless given). ``session.push(packet)`` takes events
in packets of any size, in time order, and returns one ``StepOutput`` per step the packet
completed: a step ``[start, end)`` is complete once an event at or after ``end`` has arrived (or
``push(..., now_us=end)`` says the stream has reached it). The session keeps every layer's
membrane and the temporal mixing's past inputs between calls, so the per-step logits are
bit-identical to the offline ``network.forward_steps`` on the same recording binned the same way
(tests check it on the reference and the Numba paths).

Time and memory stay bounded whatever the timestamps say: completed steps run through the network
``CHUNK_STEPS`` at a time, and a push that moves the stream more than ``max_gap_us`` ahead of
where it was (a glitched timestamp, a clock that jumped) is refused whole with an
EventFormatError, leaving the session as it was; a live source that really pauses says so by
pushing ``now_us`` as time passes (each push a small step), or starts a new session.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data.events import EVENT_DTYPE, check_events, check_layout
from .errors import EventFormatError, InputError
from .kernels import ops
from .transforms import SpatioTemporalCompression

if TYPE_CHECKING:
    from .model import StcSNN

# Steps compressed and run in one batch (bounds the memory of a push that completes many steps).
CHUNK_STEPS = 64
# How far one push may move the stream ahead, by default: 60 s of recording (3,000 steps of 20 ms).
MAX_GAP_US = 60_000_000

if ops.HAS_NUMBA:
    from .kernels import compress_numba
else:  # pragma: no cover - numba is a dependency; a broken install still streams
    compress_numba = None


@dataclass(frozen=True)
class StepOutput:
    """What one completed step gives."""

    step: int  # index of the step, 0 = the one starting at the origin
    end_us: int  # its end, in microseconds after the origin (the recording time seen so far)
    logits: torch.Tensor  # [num_classes] this step's logits
    probs: torch.Tensor  # [num_classes] softmax of the mean logits of steps 0..step (predict_proba's rule)
    label: int  # argmax of probs
    confidence: float  # max of probs
    compute_ms: float  # compression + network time spent on this step (the push's time / its steps)
    spikes: dict[str, int] | None = None  # spikes each spiking layer emitted in this step, when recorded


@dataclass(frozen=True)
class Decision:
    """The first step at which the decision rule held."""

    step: int
    end_us: int  # microseconds of recording seen when it was made
    label: int
    name: str
    confidence: float


class StreamSession:
    """A stateful stream of events through one model (one stream; open one session per camera).

    Args:
        model: an ``StcSNN`` whose input bins by duration (``config.input.split_by == "duration"``).
        threshold: decide at the first step whose running confidence reaches it; None decides at
            step ``T`` (the window the model was trained on), as the offline prediction does.
        min_steps: never decide before this many steps.
        max_steps: decide at this step at the latest (a deadline: the running prediction then, however
            confident), when the threshold has not held before; None: no deadline.
        record_spikes: report each step's spike count per spiking layer.
        origin_us: where step 0 starts; the first event's timestamp when None.
        max_gap_us: the furthest one push may move the stream ahead (events or ``now_us``), in
            microseconds; beyond it the push is an EventFormatError and changes nothing.
    """

    def __init__(self, model: StcSNN, threshold: float | None = None, min_steps: int = 1, record_spikes: bool = False,
                 origin_us: int | None = None, max_gap_us: int = MAX_GAP_US, max_steps: int | None = None):
        config = model.config.input
        if not config.streamable:
            raise InputError(
                f"this model bins events by {config.split_by}, which needs the whole recording; streaming needs "
                "a duration-binned model (split_by 'duration', e.g. zoo model nmnist-stream-20ms)")
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
        if not isinstance(min_steps, int) or min_steps < 1:
            raise InputError(f"min_steps must be an integer >= 1, got {min_steps!r}")
        if max_steps is not None and (not isinstance(max_steps, int) or isinstance(max_steps, bool)
                                      or max_steps < min_steps):
            raise InputError(f"max_steps must be an integer >= min_steps ({min_steps}) or None, got {max_steps!r}")
        if not isinstance(max_gap_us, int) or isinstance(max_gap_us, bool) or max_gap_us < config.step_us:
            raise InputError(f"max_gap_us must be an integer >= one step ({config.step_us} us), got {max_gap_us!r}")
        self.model, self.threshold, self.min_steps, self.record_spikes = model, threshold, min_steps, record_spikes
        self.max_steps = max_steps
        self.max_gap_us = max_gap_us
        self.step_us = config.step_us
        # One step per sample: each completed step is compressed as its own window.
        self._one_step = SpatioTemporalCompression.from_config(dataclasses.replace(config, T=1), model.backend)
        # On the Numba path a push goes straight to the kernels: its events were checked as they came in
        # (_checked), so the compression needs no second check and the network no per-call set-up.
        self._direct_backend = (model.network.backend if compress_numba is not None and not config.fit
                                and model.device.type == "cpu"
                                and ops.resolve_backend(model.backend, model.device) == "numba" else None)
        self._fixed_origin = origin_us
        self.reset()

    def reset(self) -> None:
        """Start over: every layer at rest, no events pending, no decision."""
        self.origin_us: int | None = self._fixed_origin
        self.steps = 0  # completed steps
        self.decision: Decision | None = None
        self._state, self._native, self._pending, self._last_t, self._horizon = None, None, [], None, None
        self._logit_sum = None

    # ------------------------------------------------------------------ input
    def _checked(self, events: np.ndarray) -> np.ndarray:
        """The packet, checked against the sensor and the stream so far (nothing is changed yet)."""
        sensor = self.model.config.input.camera_size
        events = check_layout(events, "packet")
        if not len(events):
            return events
        # One pass (a Numba kernel when installed); the checker's own message when something is wrong.
        if compress_numba is None or compress_numba.check(events, sensor)[0] != compress_numba.OK:
            events = check_events(events, sensor, "packet")
        first = int(events["t"][0])
        if self._last_t is not None and first < self._last_t:
            raise EventFormatError(f"packet: starts at t={first} us, before the previous packet's last event "
                                   f"(t={self._last_t} us); push events in time order")
        if self.origin_us is not None and first < self.origin_us:
            raise EventFormatError(f"packet: event at t={first} us is before the session's origin ({self.origin_us} us)")
        return events

    def _check_gap(self, origin: int, horizon: int) -> None:
        """EventFormatError when ``horizon`` lies more than ``max_gap_us`` beyond the time reached so far."""
        reached = max(origin, self._horizon if self._horizon is not None else origin)
        if horizon - reached > self.max_gap_us:
            raise EventFormatError(
                f"packet: moves the stream from t={reached} us to t={horizon} us, {(horizon - reached) / 1e6:,.3f} s "
                f"ahead in one push, beyond max_gap_us={self.max_gap_us:,} (a glitched timestamp?); nothing was "
                "taken. A source that pauses pushes now_us as time passes; or reset() / a new session")

    def push(self, events: np.ndarray | None = None, now_us: int | None = None) -> list[StepOutput]:
        """Add a packet of events (any size, possibly empty; time-ordered, after every earlier packet)
        and return the outputs of the steps it completed. ``now_us``: the stream has reached this time
        (no event before it is still to come), which completes steps in silent stretches too. A push
        that would move the stream more than ``max_gap_us`` ahead is refused whole (EventFormatError)."""
        start = time.perf_counter()
        if now_us is not None and (not isinstance(now_us, (int, np.integer)) or isinstance(now_us, bool) or now_us < 0):
            raise InputError(f"now_us must be a non-negative integer (microseconds), got {now_us!r}")
        events = self._checked(events) if events is not None else None
        fresh = events is not None and len(events) > 0
        origin = self.origin_us if self.origin_us is not None else (int(events["t"][0]) if fresh else None)
        if origin is None:
            return []
        last = int(events["t"][-1]) if fresh else self._last_t
        horizon = max(last if last is not None else origin, int(now_us or 0))
        self._check_gap(origin, horizon)
        self.origin_us, self._horizon = origin, max(horizon, self._horizon or 0)
        if fresh:
            self._pending.append(events)
            self._last_t = last
        done = (horizon - self.origin_us) // self.step_us - self.steps  # steps whose end <= horizon
        outputs = []
        while done > 0:  # in chunks: a long silent stretch costs CHUNK_STEPS steps of memory at a time
            n = min(done, CHUNK_STEPS)
            x, starts = self._compress_completed(n)
            rows, spikes = self._forward(x)  # rows: [n, 1, classes] numpy (the steps' arithmetic runs in numpy)
            per_step = 1e3 * (time.perf_counter() - start) / n
            outputs += [self._step_output(i, rows, spikes, starts[i], per_step) for i in range(n)]
            done -= n
            start = time.perf_counter()
        return outputs

    @property
    def _direct(self) -> bool:
        """Whether this push takes the direct Numba path (the backend the session started on, still set)."""
        return self._direct_backend is not None and self.model.network.backend == self._direct_backend

    def _forward(self, x: torch.Tensor | np.ndarray) -> tuple[np.ndarray, dict | None]:
        """Per-step logits ``[steps, 1, classes]`` as a numpy array (and spikes) of ``x``, carrying the
        state. The Numba path keeps its state in the kernels' own layout (no conversion per step); on
        the direct path ``x`` is the compression's numpy array and no tensor is made at all."""
        network = self.model.network
        if isinstance(x, np.ndarray):  # the direct path (_compress_completed checked it)
            from . import network_numba

            w = network_numba.weights(network)
            if self._native is None:
                self._native = network_numba.rest_state(network, 1, None, w)
            logits, _ = network_numba.run(network, x, self._native, False, w)
            return logits.reshape(x.shape[0], 1, -1), None
        logits, spikes = self._forward_tensor(x)
        return logits.detach().cpu().numpy(), spikes

    def _forward_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, dict | None]:
        """``_forward`` for a tensor: the reference path, or the Numba path through the checks."""
        network = self.model.network
        with torch.no_grad():
            native = network.uses_numba(x)
            if (self._native is not None and not native) or (self._state is not None and native):
                raise InputError("the model's backend changed during this stream; call session.reset() first")
            if native:
                from . import network_numba

                network.check_input(x, finite=False)
                if self._native is None:
                    self._native = network_numba.rest_state(network, 1)
                logits, spikes = network_numba.run(network, x.numpy(), self._native, self.record_spikes)
                return torch.from_numpy(logits).view(x.shape[0], 1, -1), spikes
            out = network.forward_steps(x, self._state, record=self.record_spikes)
            self._state = out.state
            return out.logits, out.spikes

    def _compress_completed(self, done: int) -> tuple[torch.Tensor | np.ndarray, list[int]]:
        """``[done, 1, 2, H', W']`` current of the next ``done`` steps; their events leave the buffer. A
        numpy array when the push takes the direct path (the network runs on it as it is), else a tensor."""
        pending = np.concatenate(self._pending) if len(self._pending) > 1 else (
            self._pending[0] if self._pending else np.empty(0, EVENT_DTYPE))
        starts = [self.origin_us + (self.steps + i) * self.step_us for i in range(done + 1)]
        cuts = np.searchsorted(pending["t"], starts, side="left")
        self._step_events = np.diff(cuts)  # events in each of these steps (continuous mode counts them)
        rest = pending[cuts[-1]:]
        self._pending = [rest] if len(rest) else []
        network = self.model.network
        if self._direct and not network.training and not self.record_spikes and self._state is None:
            # The windows are consecutive slices: one kernel call over their span.
            c = self._one_step.config
            span = pending[cuts[0]:cuts[-1]]
            frames, (code, _) = compress_numba.compress_events(
                span["x"], span["y"], span["p"], span["t"], (cuts - cuts[0]).astype(np.int64), c.sensor_size, 1,
                c.ratio, c.split_by, c.spatial, c.decay, c.step_us, np.asarray(starts[:-1], dtype=np.int64))
            if code == compress_numba.OK:
                return frames.transpose(1, 0, 2, 3, 4), starts[:-1]
        windows = [pending[cuts[i]:cuts[i + 1]] for i in range(done)]
        frames = self._one_step.batch(windows, device=self.model.device, origins_us=starts[:-1])
        return frames.transpose(0, 1), starts[:-1]  # [1, done, ...] -> [done, 1, ...]

    def _step_output(self, i: int, rows: np.ndarray, step_spikes: dict | None, start_us: int,
                     compute_ms: float) -> StepOutput:
        logits = torch.from_numpy(rows[i, 0])
        # Running mean of the step logits in float64 (numpy: small tensors cost more in torch), so a
        # long stream does not drift.
        if self._logit_sum is None:
            self._logit_sum = rows[i, 0].astype(np.float64)
        else:
            np.add(self._logit_sum, rows[i, 0], out=self._logit_sum)
        self.steps += 1
        probs = running_probs(self._logit_sum, self.steps)
        label = int(probs.argmax())
        spikes = {name: int(s[i].sum()) for name, s in step_spikes.items()} if step_spikes else None
        step = StepOutput(self.steps - 1, start_us + self.step_us - self.origin_us, logits, torch.from_numpy(probs),
                          label, float(probs[label]), compute_ms, spikes)
        if self.decision is None and self._decides(step):
            self.decision = Decision(step.step, step.end_us, step.label, self.model.config.labels[step.label],
                                     step.confidence)
        return step

    def _decides(self, step: StepOutput) -> bool:
        return decides(self.steps, step.confidence, self.threshold, self.min_steps, self.model.config.input.T,
                       self.max_steps)



@dataclass(frozen=True)
class WindowDecision:
    """A continuous stream's decision over one window of the model's ``T`` steps."""

    window: int  # window w covers steps [w * hop, w * hop + T) of the stream
    start_us: int  # its start and end, in microseconds after the stream's origin
    end_us: int
    events: int  # events that fell in it (a silent window decides too: on no evidence)
    logits: torch.Tensor  # [T, num_classes] its steps' logits
    probs: torch.Tensor  # [num_classes] softmax of the window's mean step logits (predict_proba's rule)
    label: int
    name: str
    confidence: float
    compute_ms: float  # compression + network time spent on the window's T steps


class ContinuousSession:
    """Decisions on an endless stream: every ``hop`` steps, one decision over the last ``T`` steps.

    Window w covers ``[origin + w * hop * step_us, + T * step_us)`` and runs from rest, so its decision
    is the offline prediction on that window's events binned from its start, bit for bit (tests, both
    CPU paths). ``hop = T`` (the default) cuts the stream into consecutive windows (a reset every T
    steps); a smaller hop decides more often over overlapping windows at ``T / hop`` times the network's
    compute (that many windows run side by side). The events are checked, buffered and compressed once
    per step whatever the hop.

    Args:
        model: a duration-binned ``StcSNN``.
        hop: steps between decisions, 1..T (default T).
        origin_us: where window 0 starts; the first event's timestamp when None.
        max_gap_us: the furthest one push may move the stream ahead, as for ``StreamSession``.
    """

    def __init__(self, model: StcSNN, hop: int | None = None, origin_us: int | None = None, max_gap_us: int = MAX_GAP_US):
        T = model.config.input.T
        hop = T if hop is None else hop
        if not isinstance(hop, int) or isinstance(hop, bool) or not 1 <= hop <= T:
            raise InputError(f"hop must be an integer in 1..T ({T} steps), got {hop!r}")
        self.hop = hop
        self._windows = _Windows(model, hop, origin_us, max_gap_us)
        self.windows = 0  # windows decided

    @property
    def origin_us(self) -> int | None:
        return self._windows.origin_us

    @property
    def max_gap_us(self) -> int:
        return self._windows.max_gap_us

    def reset(self) -> None:
        """Start over: no window open, no events seen."""
        self._windows.reset()
        self.windows = 0

    def push(self, events: np.ndarray | None = None, now_us: int | None = None) -> list[WindowDecision]:
        """Add a packet (as ``StreamSession.push``); the decisions of the windows it completed, oldest first.
        A push that would move the stream more than ``max_gap_us`` ahead is refused whole (EventFormatError)."""
        decisions = [d for d in self._windows.push(events, now_us) if d is not None]
        self.windows += len(decisions)
        return decisions


@dataclass
class _Window:
    """An open window of a continuous stream: what it has taken so far."""

    index: int
    start_us: int  # absolute
    events: int = 0
    compute_ms: float = 0.0
    logits: list = dataclasses.field(default_factory=list)  # its steps' logits so far


class _Windows(StreamSession):
    """A continuous stream's windows: the events are checked, buffered and compressed once per step (this
    session's own machinery) and every window has a slot of network state (window w in slot
    ``w % slots``, put at rest when its window opens). On the Numba path the slots run as one batch of
    the kernels (their sums do not depend on the batch); on the reference each slot runs alone, at batch
    1, as a session of its own would. ``push`` returns a ``WindowDecision`` for each step that closes a
    window, else None."""

    def __init__(self, model, hop: int, origin_us: int | None, max_gap_us: int):
        self.T, self.hop = model.config.input.T, hop
        self.slots = -(-self.T // hop)  # windows open at once, at most
        super().__init__(model, origin_us=origin_us, max_gap_us=max_gap_us)

    def reset(self) -> None:
        super().reset()
        self._windows: dict[int, _Window] = {}
        self._slot_states: list = [None] * self.slots  # the reference path's state, per slot

    def _forward(self, x) -> tuple[np.ndarray, None]:
        """Rows ``[n, slots, classes]`` of the next ``n`` steps for every slot; a window opening at one of
        them starts its slot from rest first."""
        with torch.no_grad():
            native = isinstance(x, np.ndarray) or self.model.network.uses_numba(x)
        rows, k, n, i = [], self.steps, x.shape[0], 0
        while i < n:  # runs of steps between window openings
            if (k + i) % self.hop == 0:
                self._rest(((k + i) // self.hop) % self.slots, native)
            j = min(n, i + self.hop - (k + i) % self.hop)
            rows.append(self._run_native(x[i:j]) if native else self._run_reference(x[i:j]))
            i = j
        return np.concatenate(rows), None

    def _rest(self, slot: int, native: bool) -> None:
        if native and self._native is not None:
            for v, past in self._native.values():
                v[slot] = 0
                past[:, slot] = 0
        else:
            self._slot_states[slot] = None

    def _run_native(self, x) -> np.ndarray:
        from . import network_numba

        x = x if isinstance(x, np.ndarray) else x.numpy()
        network = self.model.network
        w = network_numba.weights(network)
        if self._native is None:
            self._native = network_numba.rest_state(network, self.slots, None, w)
        batch = np.ascontiguousarray(np.broadcast_to(x, (x.shape[0], self.slots, *x.shape[2:])))
        logits, _ = network_numba.run(network, batch, self._native, False, w)
        return logits.reshape(x.shape[0], self.slots, -1)

    def _run_reference(self, x: torch.Tensor) -> np.ndarray:
        columns = []
        with torch.no_grad():
            for slot in range(self.slots):
                out = self.model.network.forward_steps(x, self._slot_states[slot])
                self._slot_states[slot] = out.state
                columns.append(out.logits[:, 0].cpu().numpy())
        return np.stack(columns, axis=1)

    def _step_output(self, i: int, rows: np.ndarray, step_spikes, start_us: int, compute_ms: float):
        k = self.steps
        self.steps += 1
        if k % self.hop == 0:  # a window opens at this step
            self._windows[k // self.hop] = _Window(k // self.hop, start_us)
        closed = None
        for index, window in self._windows.items():
            window.logits.append(rows[i, index % self.slots])
            window.events += int(self._step_events[i])
            window.compute_ms += compute_ms
            if len(window.logits) == self.T:
                closed = window
        if closed is None:
            return None
        del self._windows[closed.index]
        total = closed.logits[0].astype(np.float64)  # the order StreamSession sums them in
        for row in closed.logits[1:]:
            np.add(total, row, out=total)
        probs = running_probs(total, self.T)
        label = int(probs.argmax())
        start = closed.start_us - self.origin_us
        return WindowDecision(closed.index, start, start + self.T * self.step_us, closed.events,
                              torch.from_numpy(np.stack(closed.logits)), torch.from_numpy(probs), label,
                              self.model.config.labels[label], float(probs[label]), closed.compute_ms)


def running_probs(logit_sum: np.ndarray, steps: int) -> np.ndarray:
    """The running prediction after ``steps`` steps: softmax of the mean step logits (float32), from their
    float64 sum ``[..., classes]`` (a long stream does not drift)."""
    mean = (logit_sum / steps).astype(np.float32)
    probs = np.exp(mean - mean.max(-1, keepdims=True))
    return probs / probs.sum(-1, keepdims=True)


def decides(steps: int, confidence: float, threshold: float | None, min_steps: int, T: int,
            max_steps: int | None = None) -> bool:
    """The decision rule: after ``steps`` steps at running ``confidence``, decide? At the first step with
    ``confidence >= threshold`` once ``min_steps`` are seen; with no threshold, at step ``T``; at step
    ``max_steps`` at the latest (a deadline), when given."""
    if steps < min_steps:
        return False
    if max_steps is not None and steps >= max_steps:
        return True
    return steps >= T if threshold is None else confidence >= threshold
