"""Per-image Dice, the SIIM-ACR Pneumothorax way.

mmseg's ``IoUMetric`` pools pixels over the whole set. SIIM-ACR scores each image
and averages: an image with an empty ground truth scores 1 if the prediction is
empty too and 0 otherwise. ``PerImageDiceMetric`` reports that mean over all images
(``dice_all``), over the images with a positive ground truth (``dice_positive``)
and the number of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerImageDiceMetric(BaseMetric):
    """Mean per-image Dice of one foreground class.

    Args:
        class_index: The foreground class.
        ignore_index: Label excluded from both prediction and ground truth.
        collect_device: See :class:`mmengine.evaluator.BaseMetric`.
        prefix: See :class:`mmengine.evaluator.BaseMetric`.
    """

    default_prefix = "dice"

    def __init__(
        self,
        class_index: int = 1,
        ignore_index: int = 255,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_index = class_index
        self.ignore_index = ignore_index

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze()
            gt = sample["gt_sem_seg"]["data"].squeeze().to(pred.device)
            valid = gt != self.ignore_index
            p = (pred == self.class_index) & valid
            g = (gt == self.class_index) & valid
            self.results.append((int((p & g).sum()), int(p.sum()), int(g.sum())))

    def compute_metrics(self, results: list[tuple[int, int, int]]) -> dict[str, float]:
        inter, pred, gt = (
            np.array(v, dtype=np.float64) for v in zip(*results, strict=True)
        )
        total = pred + gt
        dice = np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
        positive = gt > 0
        return {
            "dice_all": float(dice.mean()),
            "dice_positive": float(dice[positive].mean())
            if positive.any()
            else float("nan"),
            "num_images": float(len(dice)),
            "num_positive": float(positive.sum()),
        }
