"""Deterministic COCO json for detection (mmdet) outputs.

Images and annotations get consecutive ids (from 1) in a sorted order, and the
file is written with sorted keys, fixed indentation and a final newline, so the
same input always gives byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def category_list(names: list[str]) -> list[dict[str, Any]]:
    """COCO categories with ids 1..len(names), in the given order."""
    return [
        {"id": i, "name": name, "supercategory": "finding"}
        for i, name in enumerate(names, start=1)
    ]


def build_coco(
    images: list[dict[str, Any]],
    boxes: dict[str, list[dict[str, Any]]],
    categories: list[dict[str, Any]],
) -> dict[str, Any]:
    """Builds a COCO detection dict.

    Args:
        images: One dict per image with ``key`` (a unique name used for
            sorting and to look up ``boxes``), ``file_name``, ``width``,
            ``height`` and any extra keys to keep.
        boxes: Image key -> list of dicts with ``bbox`` ([x, y, w, h], pixels),
            ``category_id`` and optional extra keys (e.g. ``readers``).
        categories: From :func:`category_list`.

    Returns:
        The dict: images sorted by key, ids from 1; annotations sorted by
        (image id, category, bbox), ids from 1; ``area = w * h``; ``iscrowd = 0``.
    """
    out_images, annotations = [], []
    for image_id, image in enumerate(sorted(images, key=lambda d: d["key"]), start=1):
        entry = {k: v for k, v in image.items() if k != "key"}
        entry["id"] = image_id
        out_images.append(entry)
        items = sorted(
            boxes.get(image["key"], []),
            key=lambda b: (b["category_id"], [float(v) for v in b["bbox"]]),
        )
        for box in items:
            x, y, w, h = (float(v) for v in box["bbox"])
            ann = {k: v for k, v in box.items() if k not in ("bbox", "category_id")}
            ann.update(
                image_id=image_id,
                category_id=int(box["category_id"]),
                bbox=[x, y, w, h],
                area=w * h,
                iscrowd=0,
                segmentation=[],
            )
            annotations.append(ann)
    for ann_id, ann in enumerate(annotations, start=1):
        ann["id"] = ann_id
    return {
        "images": out_images,
        "annotations": annotations,
        "categories": categories,
        "info": {"description": "written by optiml_plugin.data.prepare"},
        "licenses": [],
    }


def subset(coco: dict[str, Any], file_names: set[str]) -> dict[str, Any]:
    """The images (and their annotations) of ``coco`` whose ``file_name`` is listed.

    Ids are kept as in ``coco`` so subsets of one file stay comparable.
    """
    images = [im for im in coco["images"] if im["file_name"] in file_names]
    ids = {im["id"] for im in images}
    annotations = [a for a in coco["annotations"] if a["image_id"] in ids]
    return {**coco, "images": images, "annotations": annotations}


def dumps(data: Any) -> str:
    """Deterministic json text: sorted keys, indent 1, final newline."""
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def write_json(data: Any, path: str | Path) -> Path:
    """Writes :func:`dumps` of ``data`` to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(data))
    return path
