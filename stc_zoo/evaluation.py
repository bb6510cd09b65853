"""The accuracy loop: one pass of a network over compressed samples, without gradients.

Training's validation, ``stc-zoo evaluate`` and the card verification all count through here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@torch.no_grad()
def evaluate(network: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 128,
             desc: str | None = None) -> tuple[float, int]:
    """``(summed cross-entropy, number correct)`` of ``network`` on ``X [N, T, 2, H, W]``, ``y [N]``.

    Sums, not means, so that shards (DDP ranks) add up. Runs in eval mode and restores the mode.
    ``desc`` names a progress bar (none when None).
    """
    was_training = network.training
    network.eval()
    device = next(network.parameters()).device
    loss, correct = 0.0, 0
    try:
        for start in tqdm(range(0, len(X), batch_size), desc=desc, unit="batch", leave=False, disable=desc is None):
            xb = X[start:start + batch_size].transpose(0, 1).to(device)
            yb = y[start:start + batch_size].to(device)
            logits = network(xb).float()
            loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(-1) == yb).sum())
    finally:
        network.train(was_training)
    return loss, correct


def accuracy(network: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 128,
             desc: str | None = None) -> float:
    """Fraction of ``X [N, T, 2, H, W]`` that ``network`` classifies as ``y [N]`` (0 for no samples)."""
    return evaluate(network, X, y, batch_size, desc)[1] / max(len(X), 1)
