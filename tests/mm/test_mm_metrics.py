from __future__ import annotations

import math

import torch

from optiml_plugin.mm.seg.metrics import PerImageDiceMetric


def _sample(pred: list[list[int]], gt: list[list[int]]) -> dict:
    return {
        "pred_sem_seg": {"data": torch.tensor([pred])},
        "gt_sem_seg": {"data": torch.tensor([gt])},
    }


def test_per_image_dice_by_hand() -> None:
    metric = PerImageDiceMetric()
    metric.dataset_meta = {"classes": ("background", "pneumothorax")}
    samples = [
        _sample([[1, 1], [0, 0]], [[1, 0], [0, 0]]),  # 2*1/(2+1) = 2/3
        _sample([[0, 0], [0, 0]], [[0, 0], [0, 0]]),  # empty, empty -> 1
        _sample([[1, 0], [0, 0]], [[0, 0], [0, 0]]),  # false positive -> 0
        _sample([[1, 1], [1, 0]], [[1, 255], [1, 1]]),  # ignore: 2*2/(2+3) = 4/5
    ]
    metric.process({}, samples)
    out = metric.evaluate(len(samples))
    assert math.isclose(out["dice/dice_all"], (2 / 3 + 1 + 0 + 4 / 5) / 4)
    assert math.isclose(out["dice/dice_positive"], (2 / 3 + 4 / 5) / 2)
    assert out["dice/num_positive"] == 2 and out["dice/num_images"] == 4
