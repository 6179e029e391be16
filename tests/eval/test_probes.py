"""Linear and dense probes learn what is linearly present in frozen features."""

import math

import torch

from optiml_plugin.eval.linear_probe import train_linear_probe
from optiml_plugin.eval.metrics import auroc_per_class, dice_per_class
from optiml_plugin.eval.protocol import linear_probe_auroc, mean_std
from optiml_plugin.eval.segmentation_probe import (
    class_weights,
    predict_masks,
    train_segmentation_probe,
)


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, 2, generator=g) < 0.5).float()
    feats = torch.randn(n, 32, generator=g)
    feats[:, :2] += 3 * (2 * labels - 1)
    return feats * 1000.0 + 50.0, labels  # badly scaled: the probe standardises


def test_linear_probe_separates_separable_labels_and_not_noise() -> None:
    x, y = _separable(200, 0)
    xt, yt = _separable(200, 1)
    probe = train_linear_probe(x, y, epochs=50, seed=0)
    assert auroc_per_class(probe(xt).detach(), yt, ["a", "b"])["mean"] > 0.95
    noise = torch.randn(200, 32, generator=torch.Generator().manual_seed(2))
    probe = train_linear_probe(noise, y, epochs=50, seed=0)
    test_noise = torch.randn(200, 32, generator=torch.Generator().manual_seed(3))
    assert auroc_per_class(probe(test_noise).detach(), yt, ["a", "b"])["mean"] < 0.7


def test_fewer_labels_give_a_weaker_probe_here() -> None:
    x, y = _separable(400, 0)
    x[:, 2:] *= 3  # more noise dimensions to overfit with few labels
    xt, yt = _separable(200, 1)
    out = linear_probe_auroc(
        x, y, xt, yt, ["a", "b"], [0.01, 1.0], seed=0, epochs=30, min_labels=1
    )
    assert out["1%"]["num_train"] == 4 and out["100%"]["num_train"] == 400
    assert out["100%"]["mean"] > out["1%"]["mean"]


def test_a_fraction_with_too_few_labels_has_no_auroc() -> None:
    x, y = _separable(400, 0)
    xt, yt = _separable(200, 1)
    out = linear_probe_auroc(
        x, y, xt, yt, ["a", "b"], [0.01, 0.1, 1.0], seed=0, epochs=30
    )
    assert out["1%"]["too_few_labels"] == ["a", "b"]  # 4 images
    assert math.isnan(out["1%"]["mean"]) and math.isnan(out["1%"]["a"])
    assert out["10%"]["too_few_labels"] == [] and out["10%"]["mean"] > 0.9


def test_dense_probe_recovers_a_coarse_segmentation() -> None:
    g = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, 3, (40, 4, 4), generator=g)
    dense = torch.randn(40, 16, 4, 4, generator=g) * 0.1
    dense[:, :3] += torch.nn.functional.one_hot(coarse, 3).permute(0, 3, 1, 2)
    masks = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
    probe = train_segmentation_probe(dense[:30], masks[:30], 3, epochs=60, seed=0)
    pred = predict_masks(probe, dense[30:], (32, 32))
    dice = dice_per_class(pred, masks[30:], ["bg", "a", "b"])
    assert dice["a"] > 0.8 and dice["b"] > 0.8


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    masks = torch.tensor([[0, 0, 0, 1], [0, 0, 255, 255]])
    w = class_weights(masks, 3)
    assert w[2] == 0  # absent class
    assert torch.isclose(w[1] / w[0], torch.tensor(5.0))
    assert torch.isclose(w[:2].mean(), torch.tensor(1.0))


def test_mean_std_uses_the_sample_std_and_skips_nan() -> None:
    s = mean_std([1.0, 2.0, 3.0, float("nan")])
    assert s["n"] == 3 and s["mean"] == 2.0 and abs(s["std"] - 1.0) < 1e-12
    assert mean_std([0.5])["std"] == 0.0
    assert mean_std([])["n"] == 0
