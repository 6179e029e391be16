"""Metrics of the probes, computed with torchmetrics: multi-label AUROC and Dice."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.functional.segmentation import dice_score


def auroc_per_class(
    scores: Tensor, targets: Tensor, classes: Sequence[str]
) -> dict[str, float]:
    """Returns ``{"mean": ..., class: ...}``: AUROC per class and their mean
    (torchmetrics' ``binary_auroc`` on each label column, i.e. the per-class values
    of ``MultilabelAUROC``).

    A class whose test labels are all equal has no AUROC: it is NaN and left out
    of the mean (NaN when no class has one).

    Args:
        scores: (N, K) logits or probabilities.
        targets: (N, K) 0/1 labels.
        classes: The K class names.
    """
    targets = targets.int()
    if scores.shape != targets.shape or scores.shape[1] != len(classes):
        raise ValueError(
            f"scores {tuple(scores.shape)}, targets {tuple(targets.shape)} and "
            f"{len(classes)} classes do not match."
        )
    positives = targets.sum(dim=0)
    valid = ((positives > 0) & (positives < targets.shape[0])).tolist()
    out = dict.fromkeys(classes, math.nan)
    columns = [k for k, ok in enumerate(valid) if ok]
    for k in columns:
        out[classes[k]] = float(binary_auroc(scores[:, k].float(), targets[:, k]))
    good = [out[classes[k]] for k in columns]
    return {"mean": sum(good) / len(good) if good else math.nan, **out}


def dice_per_class(
    pred: Tensor,
    target: Tensor,
    classes: Sequence[str],
    ignore_index: int = 255,
) -> dict[str, float]:
    """Returns ``{"mean": ..., class: ...}``: Dice of every non-background class
    over the whole set (pixels pooled across images), and their mean.

    Args:
        pred: (N, H, W) predicted class indices.
        target: (N, H, W) true class indices; ``ignore_index`` pixels are left out.
        classes: Class names, background first.
        ignore_index: Label of pixels to ignore.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ."
        )
    ignore = target == ignore_index
    # Ignored pixels become background in both: no false positive or negative.
    target = torch.where(ignore, 0, target).long()
    pred = torch.where(ignore, 0, pred).long()
    values = dice_score(
        pred,
        target,
        num_classes=len(classes),
        include_background=False,
        average="none",
        input_format="index",
        aggregation_level="global",
    ).reshape(-1)
    out = {name: float(v) for name, v in zip(classes[1:], values, strict=True)}
    return {"mean": float(values.mean()), **out}
