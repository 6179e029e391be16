"""Tests for the RSNA Pneumonia converter, on fixtures in the original format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optiml_plugin.data.converters import ConversionError
from optiml_plugin.data.converters.rsna import convert
from optiml_plugin.data.io import write_dicom
from optiml_plugin.data.prepare import main

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _fixture(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "stage_2_train_images"
    pix = (np.arange(40 * 48).reshape(40, 48) % 4096).astype(np.uint16)
    write_dicom(pix, images / "p1.dcm", bits_stored=12)
    write_dicom(pix, images / "p2.dcm", bits_stored=12, photometric="MONOCHROME1")
    write_dicom(pix, images / "p3.dcm", bits_stored=12)
    (images / "p4.dcm").write_bytes(b"corrupt")
    labels = tmp_path / "stage_2_train_labels.csv"
    labels.write_text(
        "patientId,x,y,width,height,Target\n"
        "p1,1.5,2,10,12,1\np1,20,3,8,9,1\np2,,,,,0\np3,0,0,4,4,1\n"
        "p4,,,,,0\np5,,,,,0\n"
    )
    return labels, images


def test_coco_negatives_and_report(tmp_path):
    labels, images = _fixture(tmp_path)
    out = tmp_path / "out"
    manifest = convert(labels, images, out, val_fraction=0.34, test_fraction=0.34)
    coco = json.loads((out / "annotations" / "all.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["opacity"]
    names = {im["id"]: im["file_name"] for im in coco["images"]}
    assert sorted(names.values()) == [f"images/p{i}.png" for i in (1, 2, 3)]
    boxes = sorted((names[a["image_id"]], a["bbox"]) for a in coco["annotations"])
    assert boxes == [
        ("images/p1.png", [1.5, 2.0, 10.0, 12.0]),
        ("images/p1.png", [20.0, 3.0, 8.0, 9.0]),
        ("images/p3.png", [0.0, 0.0, 4.0, 4.0]),
    ]
    skipped = {d["item"]: d["reason"] for d in manifest["skipped"]}
    assert "unreadable" in skipped["p4"] and "missing" in skipped["p5"]
    assert manifest["counts"]["negative"] == 1 and manifest["counts"]["boxes"] == 3
    splits = [
        set((out / "splits" / f"{s}.txt").read_text().split())
        for s in ("train", "val", "test")
    ]
    assert set.union(*splits) == {"p1", "p2", "p3"} and sum(map(len, splits)) == 3
    with (
        Image.open(out / "images" / "p2.png") as a,
        Image.open(out / "images" / "p1.png") as b,
    ):
        a16, b16 = np.asarray(a).astype(int), np.asarray(b).astype(int)
    assert np.abs(a16 + b16 - 65535).max() <= 1  # MONOCHROME1 inverted
    assert (out / "annotations" / "test.json").is_file()


def test_strict_cli_and_determinism(tmp_path):
    labels, images = _fixture(tmp_path)
    with pytest.raises(ConversionError, match="p4"):
        convert(labels, images, tmp_path / "s", strict=True)
    args = ["rsna", "--labels", str(labels), "--images", str(images), "--resize", "24"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert main([*args, "--out", str(tmp_path / "c"), "--strict"]) == 1
    files = sorted(
        p.relative_to(tmp_path / "a")
        for p in (tmp_path / "a").rglob("*")
        if p.is_file()
    )
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    coco = json.loads((tmp_path / "a" / "annotations" / "all.json").read_text())
    first = min(a["bbox"] for a in coco["annotations"])
    assert first == pytest.approx([0.0, 0.0, 2.0, 2.0])  # 48 px -> 24 px
    assert coco["images"][0]["width"] == 24 and coco["images"][0]["height"] == 20


def test_real_images(tmp_path):
    """RSNA-style CSV + DICOM copies of real TBX11K images; boxes and pixels survive."""
    data = SHARED / "tbx11k_tb_detection"
    if not data.is_dir():
        pytest.skip(f"shared test data not found at {data.resolve()}")
    source = json.loads((data / "instances.json").read_text())
    chosen = sorted(source["images"], key=lambda im: im["id"])[:4]
    rows, expected = ["patientId,x,y,width,height,Target\n"], {}
    for im in chosen:
        pid = Path(im["file_name"]).stem
        with Image.open(data / "images" / im["file_name"]) as f:
            pixels = np.asarray(f)
        write_dicom(pixels, tmp_path / "dcm" / f"{pid}.dcm")
        for ann in source["annotations"]:
            if ann["image_id"] == im["id"]:
                rows.append(f"{pid},{','.join(map(str, ann['bbox']))},1\n")
                expected.setdefault(pid, []).append(ann["bbox"])
    rows.append("negative,,,,,0\n")
    write_dicom(np.zeros((8, 8), np.uint8), tmp_path / "dcm" / "negative.dcm")
    (tmp_path / "labels.csv").write_text("".join(rows))
    out = tmp_path / "out"
    convert(tmp_path / "labels.csv", tmp_path / "dcm", out)
    coco = json.loads((out / "annotations" / "all.json").read_text())
    ids = {im["id"]: Path(im["file_name"]).stem for im in coco["images"]}
    got: dict[str, list] = {}
    for a in coco["annotations"]:
        got.setdefault(ids[a["image_id"]], []).append(a["bbox"])
    assert {k: sorted(v) for k, v in got.items()} == {
        k: sorted(v) for k, v in expected.items()
    }
    assert "negative" in ids.values()
    for im in chosen:
        with Image.open(data / "images" / im["file_name"]) as a:
            with Image.open(out / "images" / f"{Path(im['file_name']).stem}.png") as b:
                np.testing.assert_array_equal(
                    np.asarray(b), np.asarray(a).astype(np.uint16) * 257
                )
