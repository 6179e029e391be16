from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optiml_plugin.data.phantom import LESION_CLASSES, generate_phantom
from optiml_plugin.data.phantom_export import (
    ensure_phantom_dataset,
    write_phantom_dataset,
)


def test_layout_boxes_and_masks_match_the_generator(tmp_path: Path) -> None:
    root = write_phantom_dataset(
        tmp_path / "p", num_images=4, size=128, seed=7, val_fraction=0.25
    )
    train = (root / "splits" / "train.txt").read_text().split()
    val = (root / "splits" / "val.txt").read_text().split()
    assert train == ["phantom_000007", "phantom_000008", "phantom_000009"]
    assert val == ["phantom_000010"]
    coco = json.loads((root / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(LESION_CLASSES)
    assert [im["file_name"] for im in coco["images"]] == [
        f"images/{n}.png" for n in train
    ]
    ph = generate_phantom(8, size=128, lesion_prob=0.9)
    image_id = next(im["id"] for im in coco["images"] if "000008" in im["file_name"])
    anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
    got = sorted((a["category_id"] - 1, *a["bbox"]) for a in anns)
    want = sorted(
        (int(c), float(x1), float(y1), float(x2 - x1), float(y2 - y1))
        for (x1, y1, x2, y2), c in zip(ph.boxes, ph.box_labels, strict=True)
    )
    assert got == want and got  # integer pixel boxes, exactly
    np.testing.assert_array_equal(
        np.array(Image.open(root / "images" / "phantom_000008.png")), ph.image
    )
    lung = np.array(Image.open(root / "lungs" / "phantom_000008.png"))
    np.testing.assert_array_equal(lung, (ph.lung_mask > 0).astype(np.uint8))
    lesion = np.array(Image.open(root / "lesions" / "phantom_000008.png"))
    np.testing.assert_array_equal(lesion, (ph.lesion_mask > 0).astype(np.uint8))


def test_matching_manifest_is_reused_and_other_settings_rewrite(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path, num_images=2, size=128, val_fraction=0.5)
    stamp = (root / "images" / "phantom_000000.png").stat().st_mtime_ns
    write_phantom_dataset(tmp_path, num_images=2, size=128, val_fraction=0.5)
    ensure_phantom_dataset(tmp_path)  # None keeps whatever is there
    assert (root / "images" / "phantom_000000.png").stat().st_mtime_ns == stamp
    write_phantom_dataset(tmp_path, num_images=2, size=96, val_fraction=0.5)
    assert Image.open(root / "images" / "phantom_000000.png").size == (96, 96)


def test_empty_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leaves a split empty"):
        write_phantom_dataset(tmp_path, num_images=3, val_fraction=0.0)
