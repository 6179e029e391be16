"""COCO box AP at chosen IoU thresholds (RSNA: 0.40:0.05:0.75; VinDr-CXR: 0.4).

mmdet's ``CocoMetric(iou_thrs=[...])`` hands the Python list to pycocotools, whose
``summarize`` looks a threshold up with ``np.where(iouThr == p.iouThrs)``: with a
list that compares to one ``False`` and numpy 2 refuses ``np.where`` on a 0-d
value (``ValueError: Calling nonzero on 0d arrays``; seen with mmdet 3.3.0,
pycocotools 2.0.11, numpy 2.4.6). This subclass passes an array instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class ThresholdCocoMetric(CocoMetric):
    """:class:`mmdet.evaluation.CocoMetric` averaging AP over ``iou_thrs``.

    ``bbox_mAP`` is the mean over the given thresholds; ``bbox_mAP_50`` /
    ``bbox_mAP_75`` are reported when 0.5 / 0.75 are among them (else -1).
    """

    def __init__(self, iou_thrs: Sequence[float], **kwargs: Any) -> None:
        if not len(iou_thrs) or not all(0 < t < 1 for t in iou_thrs):
            raise ValueError(
                f"ThresholdCocoMetric: iou_thrs must be in (0, 1), got {iou_thrs}"
            )
        super().__init__(iou_thrs=None, **kwargs)
        self.iou_thrs = np.asarray(sorted(iou_thrs), dtype=np.float64)
