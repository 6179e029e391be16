"""SIIM-ACR Pneumothorax -> PNG images and label maps (mmseg), and back to RLE.

Input (original layout): ``train-rle.csv`` (header ``ImageId, EncodedPixels``;
``-1`` = no pneumothorax; several rows for an image with several regions) and
the DICOMs ``<ImageId>.dcm`` anywhere under ``--images`` (the download nests
them as ``<study>/<series>/<ImageId>.dcm``). The RLE is the competition's, see
:mod:`optiml_plugin.data.rle`.

Output in ``out``:

* ``images/<ImageId>.png``: 16-bit PNG of each readable DICOM.
* ``masks/<ImageId>.png``: 8-bit label map of class indices, ``0`` background
  and ``1`` pneumothorax (what mmseg reads; not 0/255), written for every image
  including negatives; several rows of one image are merged (OR).
* ``splits/{train,val,test}.txt``: image ids (mmseg ``ann_file`` style), split
  by the DICOM ``PatientID`` (the image id when absent), seeded.

With ``resize`` both are down-scaled (longest side ``resize``; masks nearest
neighbour). :func:`write_rle_csv` writes masks back to the competition's CSV:
one row per image, ``decode`` of it equals the mask exactly.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from optiml_plugin.data.converters import (
    ConversionError,
    Report,
    assign_splits,
    finish,
    index_files,
    load_image,
    save_copy,
    write_lines,
)
from optiml_plugin.data.io import resize_mask
from optiml_plugin.data.rle import RLEError, encode, merge_rles

SPLITS = ("train", "val", "test")
HEADER = "ImageId, EncodedPixels"


def read_rle_csv(path: str | Path) -> dict[str, list[str]]:
    """Image id -> its RLE strings, in file order (header names are stripped)."""
    rows: dict[str, list[str]] = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [s.strip() for s in next(reader, [])]
        if header[:2] != ["ImageId", "EncodedPixels"]:
            raise ConversionError(
                f"{path}: header {header} is not ImageId, EncodedPixels"
            )
        for row in reader:
            if row and row[0].strip():
                rows.setdefault(row[0].strip(), []).append(
                    row[1].strip() if len(row) > 1 else ""
                )
    return rows


def write_rle_csv(masks: str | Path, out_csv: str | Path) -> int:
    """Writes the label maps of a folder (``<ImageId>.png``) as ``train-rle.csv``.

    Non-zero pixels are foreground; one row per image (``-1`` when empty),
    sorted by image id. Returns the number of rows.
    """
    paths = sorted(Path(masks).glob("*.png"))
    lines = [HEADER]
    for path in paths:
        with Image.open(path) as im:
            mask = np.asarray(im)
        lines.append(f"{path.stem}, {encode(mask)}")
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    Path(out_csv).write_text("\n".join(lines) + "\n")
    return len(paths)


def _patient_id(path: Path, default: str) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - the pixels were readable; fall back
        return default
    return str(ds.get("PatientID", "") or default)


def convert(
    rle: str | Path,
    images: str | Path,
    out: str | Path,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
    resize: int | None = None,
) -> dict[str, Any]:
    """Converts SIIM-ACR Pneumothorax (see module notes); returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(strict=strict)
    rows = read_rle_csv(rle)
    files = index_files(images, (".dcm",), exclude=out)
    outputs, patients = [], {}
    for image_id in sorted(rows):
        image = load_image(report, image_id, files.get(image_id))
        if image is None:
            continue
        height, width = image.shape
        try:
            mask = merge_rles(rows[image_id], height, width)
        except RLEError as err:
            report.skip(image_id, f"bad RLE: {err}")
            continue
        report.add("rle_rows", len(rows[image_id]))
        image_path = out / "images" / f"{image_id}.png"
        new_w, new_h, _, _ = save_copy(image, image_path, resize)
        if (new_w, new_h) != (width, height):
            mask = resize_mask(mask, (new_w, new_h))
        mask_path = out / "masks" / f"{image_id}.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mask_path, format="PNG")
        outputs += [image_path, mask_path]
        report.add("positive" if mask.any() else "negative")
        patients[image_id] = _patient_id(files[image_id], image_id)
    report.add("images", len(patients))
    report.add("masks", len(patients))
    split = assign_splits(patients, {"val": val_fraction, "test": test_fraction}, seed)
    for name in SPLITS:
        ids = sorted(i for i in patients if split[i] == name)
        report.add(name, len(ids))
        outputs.append(write_lines(ids, out / "splits" / f"{name}.txt"))
    options = {
        "resize": resize,
        "seed": seed,
        "strict": strict,
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
    }
    return finish(out, "siim", report, options, outputs)
