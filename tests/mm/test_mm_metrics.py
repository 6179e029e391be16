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


def test_rsna_challenge_score_by_hand(tmp_path) -> None:
    import json

    from optiml_plugin.mm.det.metrics import RSNAPneumoniaMetric

    coco = {
        "images": [{"id": i, "width": 100, "height": 100} for i in (1, 2, 3, 4)],
        "annotations": [
            {"id": 1, "image_id": 1, "bbox": [10, 10, 20, 20], "category_id": 1},
            {"id": 2, "image_id": 4, "bbox": [0, 0, 10, 10], "category_id": 1},
            {"id": 3, "image_id": 4, "bbox": [50, 50, 10, 10], "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "opacity"}],
    }
    ann = tmp_path / "val.json"
    ann.write_text(json.dumps(coco))

    def sample(img_id: int, boxes: list, scores: list) -> dict:
        return {
            "img_id": img_id,
            "pred_instances": {
                "bboxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor(scores, dtype=torch.float32),
            },
        }

    metric = RSNAPneumoniaMetric(ann_file=str(ann))
    metric.dataset_meta = {"classes": ("opacity",)}
    metric.process(
        {},
        [
            sample(1, [[10, 10, 30, 30]], [0.9]),  # exact hit: 1
            sample(2, [[0, 0, 5, 5]], [0.8]),  # a box on a negative image: 0
            sample(3, [[0, 0, 5, 5]], [0.1]),  # below score_thr, no truth: left out
            # IoU 0.5 with the first box: TP at t = 0.40, 0.45 (IoU > t), else FP;
            # the second box is always missed.
            sample(4, [[0, 0, 10, 5]], [0.7]),
        ],
    )
    out = metric.evaluate(4)
    image4 = (2 * (1 / 2) + 6 * 0) / 8
    assert math.isclose(out["rsna_score/score"], (1 + 0 + image4) / 3)
    assert out["rsna_score/num_images"] == 3
