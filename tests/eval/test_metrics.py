"""AUROC and Dice against independent references (scikit-learn, hand counts)."""

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from optiml_plugin.eval.metrics import auroc_per_class, dice_per_class


def test_auroc_matches_scikit_learn_per_class() -> None:
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(80, 3, generator=g) < 0.4).int()
    scores = targets * 0.7 + torch.rand(80, 3, generator=g)
    out = auroc_per_class(scores, targets, ["a", "b", "c"])
    refs = [roc_auc_score(targets[:, k], scores[:, k]) for k in range(3)]
    for name, ref in zip("abc", refs, strict=True):
        assert out[name] == pytest.approx(ref, abs=1e-6)
    assert out["mean"] == pytest.approx(sum(refs) / 3, abs=1e-6)


def test_class_without_both_labels_is_nan_and_left_out_of_the_mean() -> None:
    targets = torch.tensor([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5], [0.1, 0.2]])
    out = auroc_per_class(scores, targets, ["a", "b"])
    assert out["a"] == pytest.approx(1.0)
    assert math.isnan(out["b"])
    assert out["mean"] == pytest.approx(1.0)


def test_auroc_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="do not match"):
        auroc_per_class(torch.rand(4, 2), torch.zeros(4, 2), ["a"])


def test_dice_against_hand_counts_and_ignored_pixels() -> None:
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2, :] = 1  # 8 pixels of class 1
    target[0, 3, 3] = 2  # 1 pixel of class 2
    pred = torch.zeros_like(target)
    pred[0, :1, :] = 1  # 4 of the 8
    pred[0, 2, :2] = 1  # 2 false positives
    out = dice_per_class(pred, target, ["bg", "one", "two"])
    assert out["one"] == pytest.approx(2 * 4 / (6 + 8))
    assert out["two"] == pytest.approx(0.0)
    # Ignoring the false positives' pixels removes them from the count.
    target[0, 2, :2] = 255
    out = dice_per_class(pred, target, ["bg", "one", "two"])
    assert out["one"] == pytest.approx(2 * 4 / (4 + 8))
    assert out["mean"] == pytest.approx((out["one"] + out["two"]) / 2)
