"""Frozen evaluation of one backbone on the ``cpu-real`` sets.

Every probe keeps its per-image test outputs (scores, Dice numerators and
denominators) so that :mod:`optiml_plugin.eval.real.stats` can bootstrap paired
differences over test images. The position-only probes see only which map cell
a feature comes from (a one-hot cell index, the most a probe without image
content can use): they are the trivial baseline of the dense tasks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optiml_plugin import diagnostics as dg
from optiml_plugin.eval.linear_probe import train_linear_probe
from optiml_plugin.eval.real.data import normalize
from optiml_plugin.eval.segmentation_probe import (
    position_maps,
    predict_masks,
    train_segmentation_probe,
)
from optiml_plugin.loss.optiml_loss import OPTiMLLoss
from optiml_plugin.models.optiml import resnet_dense_features

SEG_SETS = ("mcsz", "mcsz_crop")
CLS_TASKS = {"tb": ("mcsz", "tb"), "pneumonia": ("nih", "pneumonia")}
FRACTIONS = (0.1, 1.0)


@torch.no_grad()
def dense_features(
    backbone: nn.Module, images: Tensor, batch_size: int = 32, bf16: bool = False
) -> Tensor:
    """(N, C, g, g) float32 final maps of a frozen ResNet (eval mode) on uint8
    images; ``bf16`` runs the convolutions under bfloat16 autocast."""
    backbone.eval()
    out = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, images.shape[0], batch_size):
            x = normalize(images[i : i + batch_size])
            out.append(resnet_dense_features(backbone, x).float())
    return torch.cat(out)


def dice_parts(pred: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, 2 |P & T| and |P| + |T| of the foreground (class 1)."""
    p, t = (pred == 1).flatten(1), (mask == 1).flatten(1)
    return 2.0 * (p & t).sum(1).double(), (p.sum(1) + t.sum(1)).double()


def segmentation(train: Tensor, train_mask: Tensor, test: Tensor, test_mask: Tensor,
                 seed: int, epochs: int) -> dict[str, Tensor]:  # fmt: skip
    """Lung probe (1x1 conv on the maps); per-test-image Dice parts."""
    probe = train_segmentation_probe(
        train, train_mask.long(), 2, epochs=epochs, seed=seed
    )
    pred = predict_masks(probe, test, tuple(test_mask.shape[-2:]))
    inter, total = dice_parts(pred, test_mask.long())
    return {"inter": inter, "total": total}


def subsets(
    n: int, labels: Tensor, fraction: float, draws: int, seed: int
) -> list[Tensor]:
    """Training-index subsets: all of them at fraction 1, else ``draws`` random
    ones of round(fraction n) images holding both classes."""
    if fraction >= 1.0:
        return [torch.arange(n)]
    k = max(2, round(fraction * n))
    out = []
    g = torch.Generator().manual_seed(seed * 1000 + round(fraction * 100))
    while len(out) < draws:
        idx = torch.randperm(n, generator=g)[:k]
        if 0 < int(labels[idx].sum()) < k:
            out.append(idx.sort().values)
    return out


def linear_scores(train: Tensor, y: Tensor, test: Tensor, fraction: float,
                  draws: int, seed: int) -> Tensor:  # fmt: skip
    """(draws, N_test) test logits of L-BFGS logistic probes on label subsets."""
    rows = []
    for idx in subsets(train.shape[0], y, fraction, draws, seed):
        probe = train_linear_probe(train[idx], y[idx, None].float())
        with torch.no_grad():
            rows.append(probe(test)[:, 0])
    return torch.stack(rows)


def cell_scores(train: Tensor, cells: Tensor, test: Tensor) -> Tensor:
    """(N_test, g, g) logits of a logistic probe on single cells' features."""
    c = train.shape[1]
    x = train.permute(0, 2, 3, 1).reshape(-1, c)
    probe = train_linear_probe(x, cells.reshape(-1, 1).float())
    with torch.no_grad():
        scores = probe(test.permute(0, 2, 3, 1).reshape(-1, c))[:, 0]
    return scores.reshape(test.shape[0], *test.shape[2:])


@torch.no_grad()
def backbone_diagnostics(
    backbone: nn.Module, pairs: dict[str, Tensor]
) -> dict[str, float]:
    """The positional-shortcut diagnostics on the backbone's own final maps.

    Same figures as :func:`optiml_plugin.diagnostics.diagnose` (position and
    view-mean shares, the plan from the default loss's feature cost for the same
    and for different images, plan accuracy against the same-index plan), but on
    frozen layer4 tokens, so that every method and random init are measured alike.
    """
    backbone.eval()
    ta = resnet_dense_features(backbone, pairs["view_a"]).flatten(2).transpose(1, 2)
    tb = resnet_dense_features(backbone, pairs["view_b"]).flatten(2).transpose(1, 2)
    criterion = OPTiMLLoss()
    plan_s, cost_s = criterion.transport_plan(ta, tb, features_only=True)
    plan_d, cost_d = criterion.transport_plan(ta, tb.roll(1, 0), features_only=True)
    from optiml_plugin import ot

    ot_s = ot.transport_cost(plan_s, cost_s).mean()
    ot_d = ot.transport_cost(plan_d, cost_d).mean()
    b, n = plan_s.shape[:2]
    position, view_mean, _ = dg.variance_shares(
        F.normalize(torch.cat([ta, tb]), dim=-1)
    )
    eye = torch.eye(n).expand(b, n, n)
    return {
        "position_share": position,
        "view_mean_share": view_mean,
        "same_index_rate_different": float(
            (plan_d.argmax(dim=2) == torch.arange(n)).float().mean()
        ),
        "ot_ratio": float(ot_s / ot_d.clamp(min=1e-12)),
        "plan_accuracy": float(dg.match_rates(plan_s, pairs["grid_a"], pairs["grid_b"]).nanmean()),
        "same_index_accuracy": float(dg.match_rates(eye, pairs["grid_a"], pairs["grid_b"]).nanmean()),
    }  # fmt: skip


def evaluate_backbone(
    backbone: nn.Module | None,
    data: dict[str, Any],
    seed: int,
    draws: int = 5,
    seg_epochs: int = 60,
    bf16: bool = False,
) -> dict[str, Any]:
    """All raw test outputs of one backbone, or of the position-only probes when
    ``backbone`` is None (classification and diagnostics are then skipped).
    ``bf16``: features under bfloat16 autocast (the diagnostics stay float32)."""
    torch.manual_seed(seed)
    out: dict[str, Any] = {"seg": {}, "cls": {}, "cells": None, "diagnostics": None}
    grid = data["tbx_train"]["cells"].shape[-1]

    def maps(name: str) -> Tensor:
        images = data[name]["images"]
        if backbone is None:
            return position_maps(images.shape[0], grid)
        return dense_features(backbone, images, bf16=bf16)

    cache: dict[str, Tensor] = {}
    for name in ("mcsz_train", "mcsz_test", "mcsz_crop_train", "mcsz_crop_test",
                 "nih_train", "nih_test", "tbx_train", "tbx_val"):  # fmt: skip
        if backbone is None and name.startswith("nih"):
            continue
        cache[name] = maps(name)
    for s in SEG_SETS:
        out["seg"][s] = segmentation(
            cache[f"{s}_train"], data[f"{s}_train"]["mask"],
            cache[f"{s}_test"], data[f"{s}_test"]["mask"], seed, seg_epochs,
        )  # fmt: skip
    out["cells"] = cell_scores(
        cache["tbx_train"], data["tbx_train"]["cells"], cache["tbx_val"]
    )
    if backbone is None:
        return out
    for task, (s, key) in CLS_TASKS.items():
        tr, te = (
            cache[f"{s}_train"].mean(dim=(2, 3)),
            cache[f"{s}_test"].mean(dim=(2, 3)),
        )
        y = data[f"{s}_train"][key]
        out["cls"][task] = {
            f"{f:g}": linear_scores(tr, y, te, f, draws, seed) for f in FRACTIONS
        }
    out["diagnostics"] = backbone_diagnostics(backbone, data["pairs"])
    return out


def finite(x: float) -> float | None:
    """JSON-safe float."""
    return x if math.isfinite(x) else None
