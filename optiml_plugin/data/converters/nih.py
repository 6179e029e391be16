"""NIH ChestX-ray14 -> multi-label tables, split files and a COCO box file.

Input (original layout): ``Data_Entry_2017.csv``, ``train_val_list.txt``,
``test_list.txt``, optionally ``BBox_List_2017.csv``, and the PNGs anywhere
under ``--images`` (the download spreads them over ``images_001/images`` ...
``images_012/images``; they are found by file name).

Output in ``out``:

* ``train.csv``, ``val.csv``, ``test.csv``: ``image, path, patient`` and the 14
  findings as 0/1 columns (``path`` relative to ``out``), rows sorted by image.
  ``val`` is a patient-wise split of the official train_val list
  (``val_fraction`` of its patients, seeded); ``test`` is the official test list.
* ``splits/{train,val,test}.txt`` and ``splits/train_{1,5,10,30,100}pct.txt``:
  image names; the label-fraction subsets are nested (1 % inside 5 % ...).
* ``annotations/bbox.json`` (with ``bbox``): COCO boxes, 14 categories in the
  order of :data:`FINDINGS` (ids 1..14; the list's "Infiltrate" is
  "Infiltration"), only images that have boxes.
* ``images_<N>/`` with ``resize=N``: 8-bit PNG copies (longest side N), used by
  the tables and the COCO file instead of the originals; boxes are rescaled.

An image or a patient in both official lists is an error (the lists are meant
to be patient-disjoint) unless ``allow_overlap``; then such images are kept in
test only, and the overlap is listed in the manifest.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from optiml_plugin.data.coco import build_coco, category_list, write_json
from optiml_plugin.data.converters import (
    ConversionError,
    Report,
    assign_splits,
    finish,
    index_files,
    load_image,
    nested_subsets,
    relative,
    save_copy,
    scale_box,
    write_lines,
)

FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
ALIASES = {"Infiltrate": "Infiltration"}
PERCENTS = (1, 5, 10, 30, 100)


def parse_labels(text: str) -> list[str]:
    """Splits a ``Finding Labels`` string ('|'-joined; "No Finding" = none).

    Raises:
        ValueError: A label is not one of the 14 findings.
    """
    labels = [ALIASES.get(s.strip(), s.strip()) for s in text.split("|") if s.strip()]
    labels = [s for s in labels if s != NO_FINDING]
    unknown = [s for s in labels if s not in FINDINGS]
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}")
    return sorted(set(labels), key=FINDINGS.index)


def read_list(path: str | Path) -> list[str]:
    """Image names of an official split list (blank lines ignored)."""
    return [s.strip() for s in Path(path).read_text().splitlines() if s.strip()]


def _read_entries(path: Path, report: Report) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            name = (row.get("Image Index") or "").strip()
            try:
                labels = parse_labels(row["Finding Labels"] or "")
                patient = str(row["Patient ID"]).strip()
            except (KeyError, ValueError, TypeError) as err:
                report.skip(f"{path.name}:{line}", f"bad row for {name!r}: {err}")
                continue
            if not name or name in entries:
                report.skip(f"{path.name}:{line}", f"missing or duplicate {name!r}")
                continue
            entries[name] = {"labels": labels, "patient": patient}
    if not entries:
        raise ConversionError(f"{path}: no entries (is it Data_Entry_2017.csv?)")
    return entries


def _read_bboxes(path: Path, report: Report) -> dict[str, list[dict[str, Any]]]:
    boxes: dict[str, list[dict[str, Any]]] = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        next(rows, None)  # "Image Index,Finding Label,Bbox [x,y,w,h],,,"
        for line, row in enumerate(rows, start=2):
            if not any(s.strip() for s in row):
                continue
            try:
                name = row[0].strip()
                (label,) = parse_labels(row[1])
                bbox = [float(v) for v in row[2:6]]
                if len(bbox) != 4 or bbox[2] <= 0 or bbox[3] <= 0:
                    raise ValueError(f"bad box {row[2:6]}")
            except (IndexError, ValueError) as err:
                report.skip(f"{path.name}:{line}", f"bad box row: {err}")
                continue
            boxes.setdefault(name, []).append(
                {"bbox": bbox, "category_id": FINDINGS.index(label) + 1}
            )
    return boxes


def convert(
    entries: str | Path,
    images: str | Path,
    out: str | Path,
    train_val_list: str | Path,
    test_list: str | Path,
    bbox: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    allow_overlap: bool = False,
    strict: bool = False,
    resize: int | None = None,
) -> dict[str, Any]:
    """Converts NIH ChestX-ray14 (see module notes); returns the manifest.

    Raises:
        ConversionError: Overlapping official lists (without ``allow_overlap``),
            unreadable inputs, or with ``strict`` any missing/corrupt image.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(strict=strict)
    table = _read_entries(Path(entries), report)
    train_val, test = read_list(train_val_list), read_list(test_list)

    both_images = sorted(set(train_val) & set(test))
    patients_tv = {table[n]["patient"] for n in train_val if n in table}
    patients_test = {table[n]["patient"] for n in test if n in table}
    both_patients = sorted(patients_tv & patients_test)
    if (both_images or both_patients) and not allow_overlap:
        raise ConversionError(
            f"official lists overlap: {len(both_images)} image(s) "
            f"{both_images[:5]} and {len(both_patients)} patient(s) "
            f"{both_patients[:5]} are in both {train_val_list} and {test_list} "
            "(use --allow-overlap to keep them in test only)"
        )
    official = {n: "train_val" for n in train_val}
    official.update({n: "test" for n in test})

    files = index_files(images, (".png",), by="name", exclude=out)
    for name in sorted(set(table) - set(official)):
        report.skip(name, "in Data_Entry but in neither split list", strict=False)
    kept: dict[str, dict[str, Any]] = {}
    outputs: list[Path] = []
    for name in sorted(official):
        if name not in table:
            report.skip(name, "in a split list but not in Data_Entry")
            continue
        image = load_image(report, name, files.get(name))
        if image is None:
            continue
        path = files[name]
        height, width = image.shape
        sx = sy = 1.0
        if resize:
            path = out / f"images_{resize}" / name
            width, height, sx, sy = save_copy(image, path, resize, bits=8)
            outputs.append(path)
        kept[name] = {
            **table[name],
            "path": relative(path, out),
            "size": (width, height),
            "scale": (sx, sy),
        }
    report.add("images", len(kept))

    groups = {n: kept[n]["patient"] for n in kept if official[n] == "train_val"}
    split = assign_splits(groups, {"val": val_fraction}, seed)
    split.update({n: "test" for n in kept if official[n] == "test"})
    header = ["image", "path", "patient", *FINDINGS]
    for name in ("train", "val", "test"):
        names = sorted(n for n in kept if split[n] == name)
        report.add(name, len(names))
        path = out / f"{name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for n in names:
                hot = [int(k in kept[n]["labels"]) for k in FINDINGS]
                writer.writerow([n, kept[n]["path"], kept[n]["patient"], *hot])
        outputs += [path, write_lines(names, out / "splits" / f"{name}.txt")]
    train = [n for n in kept if split[n] == "train"]
    for percent, names in nested_subsets(train, PERCENTS, seed).items():
        outputs.append(write_lines(names, out / "splits" / f"train_{percent}pct.txt"))

    if bbox is not None:
        boxes = _read_bboxes(Path(bbox), report)
        coco_images, coco_boxes = [], {}
        for name in sorted(boxes):
            if name not in kept:
                report.skip(name, "has boxes in the BBox list but no usable image")
                continue
            (width, height), (sx, sy) = kept[name]["size"], kept[name]["scale"]
            coco_images.append(
                {
                    "key": name,
                    "file_name": kept[name]["path"],
                    "width": width,
                    "height": height,
                }
            )
            coco_boxes[name] = [
                {**b, "bbox": scale_box(b["bbox"], sx, sy)} for b in boxes[name]
            ]
        coco = build_coco(coco_images, coco_boxes, category_list(list(FINDINGS)))
        report.add("boxes", len(coco["annotations"]))
        report.add("box_images", len(coco["images"]))
        outputs.append(write_json(coco, out / "annotations" / "bbox.json"))

    options = {
        "allow_overlap": allow_overlap,
        "resize": resize,
        "seed": seed,
        "strict": strict,
        "val_fraction": val_fraction,
    }
    overlap = {"images": both_images, "patients": both_patients}
    return finish(out, "nih", report, options, outputs, {"overlap": overlap})
