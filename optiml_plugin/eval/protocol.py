"""The evaluation protocols on frozen features: linear-probe AUROC at label
fractions, dense-probe Dice, and mean +- std over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from torch import Tensor

from optiml_plugin.eval.label_fraction import label_fraction_indices
from optiml_plugin.eval.linear_probe import train_linear_probe
from optiml_plugin.eval.metrics import auroc_per_class, dice_per_class
from optiml_plugin.eval.segmentation_probe import (
    predict_masks,
    train_segmentation_probe,
)


def fraction_key(fraction: float) -> str:
    """The JSON key of a label fraction: ``"1%"``, ``"10%"``, ``"100%"``."""
    return f"{fraction * 100:g}%"


def linear_probe_auroc(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    classes: Sequence[str],
    fractions: Iterable[float],
    seed: int,
    epochs: int = 100,
    lr: float = 3e-3,
    optimizer: str = "lbfgs",
    min_labels: int = 5,
) -> dict[str, dict[str, float]]:
    """AUROC (mean and per class) of a linear probe trained on each label fraction.

    The subsets come from :func:`label_fraction_indices` with ``seed`` (nested).
    A class with fewer than ``min_labels`` positives or negatives in a subset
    has no AUROC at that fraction (NaN, left out of the mean, listed under
    ``"too_few_labels"``): a probe fitted on one or two positives measures the
    draw, not the features.

    Returns:
        ``{fraction_key: {"mean": ..., class: ..., "num_train": n,
        "too_few_labels": [...]}}``.
    """
    out = {}
    for fraction in fractions:
        idx = label_fraction_indices(train_features.shape[0], fraction, seed)
        probe = train_linear_probe(
            train_features[idx],
            train_labels[idx],
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            seed=seed,
        )
        scores = probe(test_features).detach()
        result = auroc_per_class(scores, test_labels, classes)
        positives = train_labels[idx].sum(dim=0)
        few = [
            c
            for c, p in zip(classes, positives.tolist(), strict=True)
            if min(p, len(idx) - p) < min_labels
        ]
        for c in few:
            result[c] = math.nan
        kept = [result[c] for c in classes if math.isfinite(result[c])]
        result["mean"] = sum(kept) / len(kept) if kept else math.nan
        out[fraction_key(fraction)] = {
            **result,
            "num_train": len(idx),
            "too_few_labels": few,
        }
    return out


def dense_probe_dice(
    train_dense: Tensor,
    train_masks: Tensor,
    test_dense: Tensor,
    test_masks: Tensor,
    classes: Sequence[str],
    seed: int,
    epochs: int = 60,
    ignore_index: int = 255,
) -> dict[str, float]:
    """Dice (mean over non-background classes, and per class) of a linear
    segmentation probe on frozen dense maps."""
    probe = train_segmentation_probe(
        train_dense,
        train_masks,
        len(classes),
        epochs=epochs,
        ignore_index=ignore_index,
        seed=seed,
    )
    pred = predict_masks(probe, test_dense, tuple(test_masks.shape[-2:]))
    return dice_per_class(pred, test_masks, classes, ignore_index)


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """``{"mean", "std", "min", "max", "n"}`` of the finite values (sample std;
    0 for one value; NaN fields when there is none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        nan = math.nan
        return {"mean": nan, "std": nan, "min": nan, "max": nan, "n": 0}
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {
        "mean": statistics.fmean(finite),
        "std": std,
        "min": min(finite),
        "max": max(finite),
        "n": len(finite),
    }
