"""COCO box AP at chosen IoU thresholds (RSNA: 0.40:0.05:0.75; VinDr-CXR: 0.4), and
the RSNA Pneumonia challenge's own per-image score.

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
from mmengine.evaluator import BaseMetric


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


@METRICS.register_module()
class RSNAPneumoniaMetric(BaseMetric):
    """The RSNA Pneumonia Detection Challenge's own score (not COCO AP).

    Per image and IoU threshold ``t``, the predictions above ``score_thr`` are
    matched in order of confidence, each to the unmatched ground-truth box of highest
    IoU ``> t``; the image scores ``TP / (TP + FP + FN)`` averaged over the
    thresholds. An image with neither boxes nor predictions is left out; one with
    predictions and no boxes scores 0. The result (``rsna_score/score``) is the mean
    over images. ``ThresholdCocoMetric`` with the same thresholds is the COCO-style
    proxy; this is the definition the challenge used.

    Args:
        ann_file: The COCO json of the evaluated split (ground truth).
        iou_thrs: The challenge's 0.40:0.05:0.75.
        score_thr: Predictions below it are not submitted.
        collect_device: See :class:`mmengine.evaluator.BaseMetric`.
        prefix: See :class:`mmengine.evaluator.BaseMetric`.
    """

    default_prefix = "rsna_score"

    def __init__(
        self,
        ann_file: str,
        iou_thrs: Sequence[float] = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75),
        score_thr: float = 0.5,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = ann_file
        self.iou_thrs = [float(t) for t in iou_thrs]
        self.score_thr = score_thr

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for sample in data_samples:
            pred = sample["pred_instances"]
            keep = pred["scores"] >= self.score_thr
            order = pred["scores"][keep].argsort(descending=True)
            boxes = pred["bboxes"][keep][order].cpu().numpy()
            self.results.append((sample["img_id"], boxes))

    def compute_metrics(
        self, results: list[tuple[int, np.ndarray]]
    ) -> dict[str, float]:
        truth = _boxes_by_image(self.ann_file)
        scores = [
            rsna_image_score(boxes, truth.get(img_id, np.zeros((0, 4))), self.iou_thrs)
            for img_id, boxes in results
        ]
        kept = [s for s in scores if s is not None]
        return {
            "score": float(np.mean(kept)) if kept else float("nan"),
            "num_images": float(len(kept)),
        }


def rsna_image_score(
    pred: np.ndarray, truth: np.ndarray, iou_thrs: Sequence[float]
) -> float | None:
    """One image's challenge score; ``pred`` sorted by confidence, boxes ``x1y1x2y2``.

    Returns:
        The mean over thresholds of ``TP / (TP + FP + FN)``, or ``None`` for an image
        with neither predictions nor ground truth (left out of the mean).
    """
    if len(pred) == 0 and len(truth) == 0:
        return None
    if len(truth) == 0 or len(pred) == 0:
        return 0.0
    iou = _iou(pred, truth)
    per_threshold = []
    for t in iou_thrs:
        matched = np.zeros(len(truth), dtype=bool)
        tp = 0
        for row in iou:
            candidates = np.where(~matched & (row > t), row, -1.0)
            best = int(candidates.argmax())
            if candidates[best] > t:
                matched[best] = True
                tp += 1
        fp, fn = len(pred) - tp, len(truth) - tp
        per_threshold.append(tp / (tp + fp + fn))
    return float(np.mean(per_threshold))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _boxes_by_image(ann_file: str) -> dict[int, np.ndarray]:
    """Ground-truth boxes (``x1y1x2y2``) per image id from a COCO json."""
    import json
    from pathlib import Path

    coco = json.loads(Path(ann_file).read_text())
    boxes: dict[int, list[list[float]]] = {im["id"]: [] for im in coco["images"]}
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("ignore", 0):
            continue
        x, y, w, h = ann["bbox"]
        boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in boxes.items()}
