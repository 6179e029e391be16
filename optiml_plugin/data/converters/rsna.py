"""RSNA Pneumonia Detection Challenge -> COCO json (mmdet) and split files.

Input (original layout): ``stage_2_train_labels.csv`` (``patientId, x, y,
width, height, Target``; one row per box, ``Target`` 0 rows have no box),
optionally ``stage_2_detailed_class_info.csv`` (``patientId, class``), and the
DICOMs ``<patientId>.dcm`` anywhere under ``--images``.

Output in ``out``:

* ``images/<patientId>.png``: 16-bit PNG of each readable DICOM (see
  :mod:`optiml_plugin.data.io` for the scaling; lossless for 8-16 stored bits),
  down-scaled so the longest side is ``resize`` if given (boxes rescaled).
* ``annotations/{all,train,val,test}.json``: COCO with one category
  ``opacity`` (id 1); images without boxes are kept (no annotations) as
  negatives; each image has ``rsna_class`` when the class file is given.
* ``splits/{train,val,test}.txt``: patient ids, split patient-wise (seeded).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

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

CATEGORIES = ("opacity",)
SPLITS = ("train", "val", "test")


def read_labels(path: Path, report: Report) -> dict[str, list[list[float]]]:
    """Patient id -> list of [x, y, w, h] boxes (empty for ``Target`` 0)."""
    boxes: dict[str, list[list[float]]] = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            pid = (row.get("patientId") or "").strip()
            target = (row.get("Target") or "").strip()
            if not pid or target not in ("0", "1"):
                report.skip(f"{path.name}:{line}", f"bad row {row}")
                continue
            boxes.setdefault(pid, [])
            if target == "1":
                try:
                    box = [float(row[k]) for k in ("x", "y", "width", "height")]
                    if box[2] <= 0 or box[3] <= 0:
                        raise ValueError("non-positive size")
                except (TypeError, ValueError) as err:
                    report.skip(f"{path.name}:{line}", f"bad box for {pid}: {err}")
                    continue
                boxes[pid].append(box)
    return boxes


def read_class_info(path: Path) -> dict[str, str]:
    """Patient id -> class ("Lung Opacity", "No Lung Opacity / Not Normal", "Normal")."""
    with open(path, newline="") as f:
        return {
            row["patientId"].strip(): row["class"].strip() for row in csv.DictReader(f)
        }


def convert(
    labels: str | Path,
    images: str | Path,
    out: str | Path,
    class_info: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
    resize: int | None = None,
) -> dict[str, Any]:
    """Converts RSNA Pneumonia (see module notes); returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(strict=strict)
    boxes = read_labels(Path(labels), report)
    classes = read_class_info(Path(class_info)) if class_info else {}
    files = index_files(images, (".dcm",), exclude=out)
    coco_images, coco_boxes, outputs = [], {}, []
    for pid in sorted(boxes):
        image = load_image(report, pid, files.get(pid))
        if image is None:
            continue
        path = out / "images" / f"{pid}.png"
        width, height, sx, sy = save_copy(image, path, resize)
        outputs.append(path)
        entry = {"key": pid, "file_name": f"images/{pid}.png"}
        entry.update(width=width, height=height)
        if pid in classes:
            entry["rsna_class"] = classes[pid]
        coco_images.append(entry)
        coco_boxes[pid] = [
            {"bbox": scale_box(b, sx, sy), "category_id": 1} for b in boxes[pid]
        ]
        report.add("positive" if boxes[pid] else "negative")
    coco = build_coco(coco_images, coco_boxes, category_list(list(CATEGORIES)))
    report.add("images", len(coco["images"]))
    report.add("boxes", len(coco["annotations"]))
    outputs.append(write_json(coco, out / "annotations" / "all.json"))

    kept = [im["file_name"][len("images/") : -len(".png")] for im in coco["images"]]
    split = assign_splits(
        {p: p for p in kept}, {"val": val_fraction, "test": test_fraction}, seed
    )
    for name in SPLITS:
        ids = sorted(p for p in kept if split[p] == name)
        report.add(name, len(ids))
        outputs.append(write_lines(ids, out / "splits" / f"{name}.txt"))
        part = subset(coco, {f"images/{p}.png" for p in ids})
        outputs.append(write_json(part, out / "annotations" / f"{name}.json"))
    options = {
        "resize": resize,
        "seed": seed,
        "strict": strict,
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
    }
    return finish(out, "rsna", report, options, outputs)
