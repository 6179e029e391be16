"""Paired bootstrap over test images for the ``cpu-real`` preset.

A method's figure is the mean over its seeds of a metric of the test outputs.
The paired difference of two methods resamples the test images (one resample
shared by both methods and all seeds) and takes, per resample, the mean over
seeds of (metric of A - metric of B) for the same seed; its 2.5 and 97.5
percentiles are the 95 % interval. The verdict is "better" when the interval
lies above 0, "worse" when below, "not resolved" otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

Metric = Callable[[Any, np.ndarray], float]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); NaN with one class."""
    scores, labels = np.asarray(scores, float).ravel(), np.asarray(labels).ravel() > 0
    pos, n = int(labels.sum()), labels.size
    if pos == 0 or pos == n:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * (n - pos)))


def dice_metric(raw: dict[str, np.ndarray], idx: np.ndarray) -> float:
    """Foreground Dice pooled over the images ``idx``."""
    return float(raw["inter"][idx].sum() / max(raw["total"][idx].sum(), 1e-12))


def draws_auroc_metric(labels: np.ndarray) -> Metric:
    """Mean over label-subset draws of the AUROC of (draws, N) scores on ``idx``."""

    def metric(scores: np.ndarray, idx: np.ndarray) -> float:
        return float(np.mean([auroc(s[idx], labels[idx]) for s in scores]))

    return metric


def cells_auroc_metric(labels: np.ndarray) -> Metric:
    """AUROC over all cells of the images ``idx`` ((N, g, g) scores and labels)."""

    def metric(scores: np.ndarray, idx: np.ndarray) -> float:
        return auroc(scores[idx], labels[idx])

    return metric


def resamples(n: int, reps: int, seed: int = 0) -> np.ndarray:
    """(reps, n) bootstrap indices of the test images."""
    return np.random.default_rng(seed).integers(0, n, size=(reps, n))


def verdict(low: float, high: float) -> str:
    """'better' / 'worse' / 'not resolved' from a difference's 95 % interval."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not resolved"


def summarize(outputs: Sequence[Any], metric: Metric, boot: np.ndarray) -> dict:
    """Mean over seeds and its bootstrap 95 % interval."""
    everything = np.arange(boot.shape[1])
    values = [metric(o, everything) for o in outputs]
    dist = np.array([np.mean([metric(o, idx) for o in outputs]) for idx in boot])
    low, high = np.nanpercentile(dist, [2.5, 97.5])
    return {
        "mean": float(np.mean(values)),
        "per_seed": [float(v) for v in values],
        "low": float(low),
        "high": float(high),
    }


def paired(
    a: Sequence[Any], b: Sequence[Any], metric: Metric, boot: np.ndarray
) -> dict:
    """A - B, paired by seed (``a[i]`` and ``b[i]`` share a seed) and by image."""
    if len(a) != len(b):
        raise ValueError(
            f"paired needs as many seeds on each side ({len(a)}, {len(b)})."
        )
    everything = np.arange(boot.shape[1])
    diff = float(
        np.mean(
            [
                metric(x, everything) - metric(y, everything)
                for x, y in zip(a, b, strict=True)
            ]
        )
    )
    dist = np.array(
        [np.mean([metric(x, idx) - metric(y, idx) for x, y in zip(a, b, strict=True)]) for idx in boot]
    )  # fmt: skip
    low, high = np.nanpercentile(dist, [2.5, 97.5])
    return {
        "diff": diff,
        "low": float(low),
        "high": float(high),
        "verdict": verdict(low, high),
    }
