"""Linear probe on frozen features for multi-label classification."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROBE_OPTIMIZERS = ("lbfgs", "adamw")


class LinearProbe(nn.Module):
    """Standardises frozen features with training-set statistics, then a linear
    layer (one logit per class).

    Args:
        mean: (C,) feature means of the training set.
        std: (C,) feature standard deviations of the training set.
        num_classes: Number of labels.
    """

    def __init__(self, mean: Tensor, std: Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clamp_min(1e-6).clone())
        self.linear = nn.Linear(mean.shape[0], num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """Returns (N, num_classes) logits for (N, C) features."""
        return self.linear((features - self.mean) / self.std)


def train_linear_probe(
    features: Tensor,
    targets: Tensor,
    epochs: int = 100,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    optimizer: str = "lbfgs",
    batch_size: int = 256,
    seed: int = 0,
) -> LinearProbe:
    """Fits a :class:`LinearProbe` by binary cross-entropy with an L2 penalty.

    ``optimizer="lbfgs"`` (default) solves the regularised logistic regression
    on the full set (``epochs`` L-BFGS iterations): deterministic and converged,
    as scikit-learn's ``LogisticRegression`` would be; with a handful of labelled
    images a few hundred Adam steps leave the result depending on the noise
    directions. ``"adamw"`` (lr 3e-3, the authors' earlier protocol) trains in
    mini-batches for ``epochs`` passes.

    Args:
        features: (N, C) frozen features of the labelled training subset.
        targets: (N, K) 0/1 labels.
        epochs: L-BFGS iterations, or AdamW passes over the features.
        lr: AdamW learning rate (L-BFGS uses 1 with a line search).
        weight_decay: L2 penalty on the weights (mean over the weights' squares
            scaled by this), or AdamW's decoupled weight decay.
        optimizer: ``"lbfgs"`` or ``"adamw"``.
        batch_size: AdamW mini-batch size.
        seed: Seed of AdamW's batch order (the weights start at zero).
    """
    if optimizer not in PROBE_OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {PROBE_OPTIMIZERS}, got {optimizer!r}."
        )
    features, targets = features.float(), targets.float()
    std, mean = torch.std_mean(features, dim=0, correction=0)
    probe = LinearProbe(mean, std, targets.shape[1])
    with torch.no_grad():  # zero start: no random initial direction to unlearn
        probe.linear.weight.zero_()
        probe.linear.bias.zero_()
    if optimizer == "lbfgs":
        x = (features - probe.mean) / probe.std
        opt = torch.optim.LBFGS(
            probe.linear.parameters(),
            lr=1.0,
            max_iter=epochs,
            history_size=10,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Tensor:
            opt.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(probe.linear(x), targets)
            loss = loss + weight_decay * probe.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return probe.eval()
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    n = features.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.binary_cross_entropy_with_logits(
                probe(features[idx]), targets[idx]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()
