"""The training loop's pieces: one epoch over this rank's share, the loss of a batch (per-step or on
the mean logits, ghost batches), validation, and the EMA of the weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..augment import AugmentedEvents
from ..evaluation import evaluate
from ..model import StcSNN
from .config import TrainConfig
from .data import drop_events, random_shift
from .distributed import reduce_sum


def run_epoch(model, X, y, train: TrainConfig, device, optimizer, epoch=0, rank=0, world=1, after_step=None):
    """One training pass over this rank's share. Returns (mean loss, accuracy) over that share.

    ``model`` returns ``[B, classes]`` logits, or ``[T, B, classes]`` per-step logits (``StepLogits``,
    for the per-step loss); ``after_step()`` runs after every optimiser step (the EMA's update)."""
    model.train()
    gen = torch.Generator().manual_seed(train.seed * 100_003 + epoch)  # same order on resume
    order = torch.randperm(len(X), generator=gen)
    order = order[: len(order) - len(order) % world]  # equal shards, or DDP ranks wait on missing batches
    order = order[rank::world]
    amp = train.amp and device.type == "cuda"
    total_loss, correct = 0.0, 0
    bar = tqdm(range(0, len(order), train.batch_size), desc=f"epoch {epoch} train", leave=False, disable=rank != 0)
    for start in bar:
        idx = order[start:start + train.batch_size]
        if isinstance(X, AugmentedEvents):  # shift and dropout applied to the events too
            xb, yb = X.batch(idx, gen), y[idx]
        else:
            xb, yb = drop_events(random_shift(X[idx], train.shift, gen), train.event_drop, gen), y[idx]
        xb, yb = xb.transpose(0, 1).to(device, non_blocking=True), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss, correct_here = 0.0, 0
        g = min(train.ghost_batches, len(idx))
        for j in range(g):  # ghost batches: every g-th sample from j, BatchNorm statistics of its own
            part_loss, part_correct = batch_loss(model, xb[:, j::g], yb[j::g], train, amp)
            (part_loss / g).backward()
            loss, correct_here = loss + part_loss.item() / g, correct_here + part_correct
        optimizer.step()
        if after_step is not None:
            after_step()
        total_loss += loss * len(idx)
        correct += correct_here
        bar.set_postfix(loss=f"{loss:.3f}")
    return total_loss / max(len(order), 1), correct / max(len(order), 1)


def batch_loss(model, xb: torch.Tensor, yb: torch.Tensor, train: TrainConfig, amp: bool) -> tuple[torch.Tensor, int]:
    """The training loss of one batch ``xb [T, B, 2, H, W]`` and how many of it ``model`` got right."""
    with torch.autocast(xb.device.type, torch.bfloat16, enabled=amp):
        out = model(xb).float()
        if out.ndim == 3:  # every step's logits: each step is trained to classify on its own
            loss = F.cross_entropy(out.flatten(0, 1), yb.repeat(out.shape[0]), label_smoothing=train.label_smoothing)
            out = out.mean(0)
        else:
            loss = F.cross_entropy(out, yb, label_smoothing=train.label_smoothing)
    return loss, int((out.argmax(-1) == yb).sum())


class StepLogits(torch.nn.Module):
    """``[T, B, 2, H, W]`` -> every step's logits ``[T, B, classes]`` (for the per-step loss; DDP wraps this)."""

    def __init__(self, model: StcSNN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.network.forward_steps(x, return_state=False).logits


def make_ema(network: torch.nn.Module, decay: float):
    """An exponential moving average of ``network``'s weights and BatchNorm statistics (None when decay is 0)."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def validate(model, X, y, train: TrainConfig, rank=0, world=1) -> tuple[float, float]:
    """Mean loss and accuracy on the validation set, each rank counting its share, summed over ranks."""
    loss, correct = evaluate(model, X[rank::world], y[rank::world], train.batch_size)
    loss, correct, n = reduce_sum([loss, correct, len(X[rank::world])], next(model.parameters()).device)
    return loss / max(n, 1), correct / max(n, 1)
