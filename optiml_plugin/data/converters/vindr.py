"""VinDr-CXR -> COCO json (mmdet) with the radiologists' boxes fused.

Input (original layout): ``train.csv`` (``image_id, class_name, class_id,
rad_id, x_min, y_min, x_max, y_max``; class 14 "No finding" rows have empty
coordinates) and the DICOMs ``<image_id>.dicom`` anywhere under ``--images``.

Fusion rule (:func:`fuse_boxes`), per image and per class: boxes of all readers
are clustered by single linkage, two boxes joining the same cluster when their
IoU is >= ``iou_threshold`` (0.4); each cluster becomes one box whose corners
are the coordinate-wise mean of its boxes, with ``readers`` = the number of
distinct ``rad_id`` in it (and ``rad_ids``). Clusters with fewer than
``min_readers`` readers are dropped. Images whose rows are all "No finding"
(or whose clusters were all dropped) are kept as negatives, with no boxes.

Output in ``out``: ``images/<image_id>.png`` (16-bit; longest side ``resize``
if given, boxes rescaled), ``annotations/{all,train,val}.json`` (14
categories, ids 1..14 = class_id + 1) and ``splits/{train,val}.txt``
(image-wise: VinDr has no patient ids).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from optiml_plugin.data.coco import build_coco, category_list, subset, write_json
from optiml_plugin.data.converters import (
    Report,
    assign_splits,
    finish,
    index_files,
    load_image,
    save_copy,
    scale_box,
    write_lines,
)

CLASSES = (
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
)
NO_FINDING_ID = 14
SPLITS = ("train", "val")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two [x_min, y_min, x_max, y_max] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def fuse_boxes(
    boxes: list[tuple[str, list[float]]], iou_threshold: float = 0.4
) -> list[tuple[list[float], list[str]]]:
    """Fuses the boxes of one class on one image (see module notes).

    Args:
        boxes: (rad_id, [x_min, y_min, x_max, y_max]) per reader box.
        iou_threshold: Boxes with IoU >= this are linked into one cluster.

    Returns:
        (mean box, sorted distinct rad_ids) per cluster, sorted by box.
    """
    order = sorted(boxes, key=lambda b: (b[1], b[0]))
    coords = [np.asarray(b, dtype=np.float64) for _, b in order]
    parent = list(range(len(order)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(order)):
        for j in range(i + 1, len(order)):
            if iou(coords[i], coords[j]) >= iou_threshold:
                parent[root(j)] = root(i)
    clusters: dict[int, list[int]] = {}
    for i in range(len(order)):
        clusters.setdefault(root(i), []).append(i)
    fused = [
        (
            np.mean([coords[i] for i in members], axis=0).tolist(),
            sorted({order[i][0] for i in members}),
        )
        for members in clusters.values()
    ]
    return sorted(fused)


def read_labels(path: Path, report: Report) -> dict[str, dict[int, list]]:
    """Image id -> class id -> [(rad_id, [x_min, y_min, x_max, y_max]), ...]."""
    rows: dict[str, dict[int, list]] = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            image_id = (row.get("image_id") or "").strip()
            try:
                class_id = int(row["class_id"])
                if not 0 <= class_id <= NO_FINDING_ID or not image_id:
                    raise ValueError(f"class_id {class_id} or image_id {image_id!r}")
                per_image = rows.setdefault(image_id, {})
                if class_id == NO_FINDING_ID:
                    continue
                box = [float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max")]
                if box[2] <= box[0] or box[3] <= box[1]:
                    raise ValueError(f"empty box {box}")
            except (KeyError, TypeError, ValueError) as err:
                report.skip(f"{path.name}:{line}", f"bad row: {err}")
                continue
            per_image.setdefault(class_id, []).append((row["rad_id"].strip(), box))
    return rows


def convert(
    labels: str | Path,
    images: str | Path,
    out: str | Path,
    iou_threshold: float = 0.4,
    min_readers: int = 1,
    val_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
    resize: int | None = None,
) -> dict[str, Any]:
    """Converts VinDr-CXR (see module notes); returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(strict=strict)
    rows = read_labels(Path(labels), report)
    files = index_files(images, (".dicom", ".dcm"), exclude=out)
    coco_images, coco_boxes, outputs = [], {}, []
    for image_id in sorted(rows):
        image = load_image(report, image_id, files.get(image_id))
        if image is None:
            continue
        path = out / "images" / f"{image_id}.png"
        width, height, sx, sy = save_copy(image, path, resize)
        outputs.append(path)
        coco_images.append(
            {
                "key": image_id,
                "file_name": f"images/{image_id}.png",
                "width": width,
                "height": height,
            }
        )
        fused = []
        for class_id, boxes in sorted(rows[image_id].items()):
            report.add("reader_boxes", len(boxes))
            for (x0, y0, x1, y1), readers in fuse_boxes(boxes, iou_threshold):
                if len(readers) < min_readers:
                    report.add("dropped_boxes")
                    continue
                fused.append(
                    {
                        "bbox": scale_box([x0, y0, x1 - x0, y1 - y0], sx, sy),
                        "category_id": class_id + 1,
                        "readers": len(readers),
                        "rad_ids": readers,
                    }
                )
        coco_boxes[image_id] = fused
        report.add("positive" if fused else "negative")
    coco = build_coco(coco_images, coco_boxes, category_list(list(CLASSES)))
    report.add("images", len(coco["images"]))
    report.add("boxes", len(coco["annotations"]))
    outputs.append(write_json(coco, out / "annotations" / "all.json"))
    kept = sorted(im["key"] for im in coco_images)
    split = assign_splits({i: i for i in kept}, {"val": val_fraction}, seed)
    for name in SPLITS:
        ids = sorted(i for i in kept if split[i] == name)
        report.add(name, len(ids))
        outputs.append(write_lines(ids, out / "splits" / f"{name}.txt"))
        part = subset(coco, {f"images/{i}.png" for i in ids})
        outputs.append(write_json(part, out / "annotations" / f"{name}.json"))
    options = {
        "iou_threshold": iou_threshold,
        "min_readers": min_readers,
        "resize": resize,
        "seed": seed,
        "strict": strict,
        "val_fraction": val_fraction,
    }
    return finish(out, "vindr", report, options, outputs)
