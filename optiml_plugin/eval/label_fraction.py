"""Label-fraction subsets for the low-label transfer protocol."""

from __future__ import annotations

import torch
from torch import Tensor


def label_fraction_indices(
    num_samples: int, fraction: float, seed: int, min_samples: int = 2
) -> Tensor:
    """Returns the indices of a random ``fraction`` of ``num_samples`` items.

    One random permutation per seed is cut at ``round(fraction * num_samples)``
    (at least ``min_samples``), so the subsets of one seed are nested: the 1 %
    subset lies inside the 10 % subset, which lies inside 100 %.

    Args:
        num_samples: Size of the full training set.
        fraction: Share of it to keep, in (0, 1].
        seed: Seed of the permutation.
        min_samples: Smallest subset size (capped at ``num_samples``).

    Raises:
        ValueError: For a fraction outside (0, 1] or an empty set.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_samples, generator=generator)
    keep = min(num_samples, max(min_samples, round(fraction * num_samples)))
    return order[:keep].sort().values
