"""Tests for the VinDr-CXR converter and its box fusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from optiml_plugin.data.converters.vindr import convert, fuse_boxes
from optiml_plugin.data.io import write_dicom
from optiml_plugin.data.prepare import main

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"


def test_fuse_boxes_rule():
    boxes = [
        ("R1", [0, 0, 10, 10]),
        ("R2", [1, 1, 11, 11]),  # IoU 0.68 with R1
        ("R3", [2, 0, 12, 10]),
        ("R1", [50, 50, 60, 60]),  # alone
    ]
    fused = fuse_boxes(boxes, 0.4)
    assert fused[0] == ([1.0, 1 / 3, 11.0, 31 / 3], ["R1", "R2", "R3"])
    assert fused[1] == ([50.0, 50.0, 60.0, 60.0], ["R1"])
    assert len(fuse_boxes(boxes, 0.9)) == 4


def _fixture(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "train"
    pix = np.full((100, 80), 2000, np.uint16)
    for name in ("i1", "i2", "i3"):
        write_dicom(
            pix, images / f"{name}.dicom", bits_stored=12, photometric="MONOCHROME1"
        )
    labels = tmp_path / "train.csv"
    labels.write_text(
        HEADER + "i1,Cardiomegaly,3,R1,10,20,50,60\n"
        "i1,Cardiomegaly,3,R2,12,22,52,62\n"
        "i1,Nodule/Mass,8,R3,5,5,9,9\n"
        "i1,No finding,14,R4,,,,\n"
        "i2,No finding,14,R1,,,,\n"
        "i2,No finding,14,R2,,,,\n"
        "i2,No finding,14,R3,,,,\n"
        "i3,Aortic enlargement,0,R1,1,1,5,5\n"
        "i4,No finding,14,R1,,,,\n"
    )
    return labels, images


def test_convert_fuses_and_keeps_negatives(tmp_path):
    labels, images = _fixture(tmp_path)
    manifest = convert(labels, images, tmp_path / "out")
    coco = json.loads((tmp_path / "out" / "annotations" / "all.json").read_text())
    assert (
        len(coco["categories"]) == 14
        and coco["categories"][3]["name"] == "Cardiomegaly"
    )
    ids = {im["id"]: im["file_name"] for im in coco["images"]}
    assert sorted(ids.values()) == ["images/i1.png", "images/i2.png", "images/i3.png"]
    anns = sorted(
        (ids[a["image_id"]], a["category_id"], a["bbox"], a["readers"])
        for a in coco["annotations"]
    )
    assert anns == [
        ("images/i1.png", 4, [11.0, 21.0, 40.0, 40.0], 2),
        ("images/i1.png", 9, [5.0, 5.0, 4.0, 4.0], 1),
        ("images/i3.png", 1, [1.0, 1.0, 4.0, 4.0], 1),
    ]
    assert manifest["counts"]["negative"] == 1
    assert {d["item"] for d in manifest["skipped"]} == {"i4"}
    two = convert(labels, images, tmp_path / "two", min_readers=2)
    assert two["counts"]["boxes"] == 1 and two["counts"]["dropped_boxes"] == 2
    assert two["counts"]["negative"] == 2


def test_cli_strict_and_determinism(tmp_path):
    labels, images = _fixture(tmp_path)
    args = ["vindr", "--labels", str(labels), "--images", str(images)]
    assert main([*args, "--out", str(tmp_path / "s"), "--strict"]) == 1
    assert main([*args, "--out", str(tmp_path / "a"), "--resize", "50"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--resize", "50"]) == 0
    for f in ("manifest.json", "annotations/all.json", "images/i1.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    coco = json.loads((tmp_path / "a" / "annotations" / "all.json").read_text())
    assert min(a["bbox"] for a in coco["annotations"]) == [0.5, 0.5, 2.0, 2.0]


def test_real_images(tmp_path):
    """Three readers drawing each real TBX11K box: the fused box is the source box."""
    data = SHARED / "tbx11k_tb_detection"
    if not data.is_dir():
        pytest.skip(f"shared test data not found at {data.resolve()}")
    from PIL import Image

    source = json.loads((data / "instances.json").read_text())
    chosen = sorted(source["images"], key=lambda im: im["id"])[:3]
    rows, expected = [HEADER], []
    for im in chosen:
        stem = Path(im["file_name"]).stem
        with Image.open(data / "images" / im["file_name"]) as f:
            write_dicom(np.asarray(f), tmp_path / "dcm" / f"{stem}.dicom")
        for ann in source["annotations"]:
            if ann["image_id"] == im["id"]:
                x, y, w, h = ann["bbox"]
                for rad in ("R8", "R9", "R10"):
                    rows.append(
                        f"{stem},Lung Opacity,7,{rad},{x},{y},{x + w},{y + h}\n"
                    )
                expected.append((stem, x, y, w, h))
    (tmp_path / "train.csv").write_text("".join(rows))
    convert(tmp_path / "train.csv", tmp_path / "dcm", tmp_path / "out")
    coco = json.loads((tmp_path / "out" / "annotations" / "all.json").read_text())
    ids = {im["id"]: Path(im["file_name"]).stem for im in coco["images"]}
    got = sorted((ids[a["image_id"]], *a["bbox"]) for a in coco["annotations"])
    np.testing.assert_allclose(
        [g[1:] for g in got], [e[1:] for e in sorted(expected)], atol=1e-9
    )
    assert [g[0] for g in got] == [e[0] for e in sorted(expected)]
    assert {a["readers"] for a in coco["annotations"]} == {3}
