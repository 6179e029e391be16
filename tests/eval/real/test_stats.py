"""The cpu-real preset's statistics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from optiml_plugin.eval.real import stats


def test_auroc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 0.5 + rng.normal(size=300), 1)  # many ties
    assert stats.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(stats.auroc(scores, np.ones(300)))


def test_dice_pools_over_the_chosen_images() -> None:
    raw = {"inter": np.array([2.0, 0.0, 6.0]), "total": np.array([4.0, 2.0, 6.0])}
    assert stats.dice_metric(raw, np.array([0, 1, 2])) == pytest.approx(8 / 12)
    assert stats.dice_metric(raw, np.array([2, 2])) == pytest.approx(1.0)


def test_paired_difference_and_verdicts() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    metric = stats.draws_auroc_metric(labels)
    good = [labels[None] * 2.0 + rng.normal(size=(3, 200)) for _ in range(2)]
    bad = [rng.normal(size=(3, 200)) for _ in range(2)]
    boot = stats.resamples(200, 300)
    up = stats.paired(good, bad, metric, boot)
    assert up["verdict"] == "better" and up["low"] > 0
    assert stats.paired(bad, good, metric, boot)["verdict"] == "worse"
    same = stats.paired(good, good, metric, boot)
    assert same["diff"] == 0 and same["verdict"] == "not resolved"
    # the point estimate is the mean over seeds of the per-seed differences
    expect = np.mean([metric(g, np.arange(200)) - metric(b, np.arange(200)) for g, b in zip(good, bad, strict=True)])  # fmt: skip
    assert up["diff"] == pytest.approx(expect)
    with pytest.raises(ValueError, match="as many seeds"):
        stats.paired(good, bad[:1], metric, boot)


def test_paired_shares_the_resample_between_methods() -> None:
    """A constant gap on every image is resolved even though each method's own
    interval is wide: the two are resampled together."""
    rng = np.random.default_rng(2)
    inter = rng.uniform(0, 10, 50)
    a = {"inter": inter + 0.5, "total": np.full(50, 20.0)}
    b = {"inter": inter, "total": np.full(50, 20.0)}
    boot = stats.resamples(50, 200)
    p = stats.paired([a], [b], stats.dice_metric, boot)
    assert p["diff"] == pytest.approx(0.025)
    assert p["low"] == pytest.approx(0.025) and p["verdict"] == "better"
    s = stats.summarize([b], stats.dice_metric, boot)
    assert s["high"] - s["low"] > 0.05  # far wider than the gap


def test_cells_auroc_resamples_whole_images() -> None:
    labels = np.zeros((4, 2, 2), int)
    labels[:, 0, 0] = 1
    scores = np.zeros((4, 2, 2))
    scores[:, 0, 0] = 1.0
    scores[3] = 0.0  # image 3: the positive cell is missed
    metric = stats.cells_auroc_metric(labels)
    assert metric(scores, np.arange(3)) == 1.0
    assert metric(scores, np.array([3, 3])) == 0.5
