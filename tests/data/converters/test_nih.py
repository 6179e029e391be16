"""Tests for the NIH ChestX-ray14 converter, on fixtures in the original format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from optiml_plugin.data.classification import ChestXrayClassificationDataset
from optiml_plugin.data.converters import ConversionError
from optiml_plugin.data.converters.nih import FINDINGS, convert
from optiml_plugin.data.prepare import main

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
)


def _fixture(tmp_path: Path, n_patients: int = 40) -> dict[str, Path]:
    images = tmp_path / "images_001" / "images"
    images.mkdir(parents=True)
    rows, train_val, test = [], [], []
    for p in range(1, n_patients + 1):
        for k in range(2):
            name = f"{p:08d}_{k:03d}.png"
            labels = "No Finding"
            if p == 1 and k == 0:
                labels = "Cardiomegaly|Effusion|Hernia"
            elif p % 3 == 0:
                labels = "Infiltration"
            rows.append(
                f"{name},{labels},{k},{p},{50 + p},M,PA,2500,2048,0.143,0.143\n"
            )
            if p != 40 or k != 1:  # 00000040_001.png listed nowhere... except below
                (test if p > 30 else train_val).append(name)
            pixels = np.full((32, 32), p * 5 + k, np.uint8)
            Image.fromarray(pixels).save(images / name)
    (tmp_path / "Data_Entry_2017.csv").write_text(HEADER + "".join(rows))
    (tmp_path / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (tmp_path / "test_list.txt").write_text("\n".join(test) + "\n")
    (tmp_path / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        "00000001_000.png,Cardiomegaly,4.5,6.25,10,8\n"
        "00000001_000.png,Effusion,1,2,3,4\n"
        "00000003_001.png,Infiltrate,0,0,16,16\n"
    )
    return {
        "entries": tmp_path / "Data_Entry_2017.csv",
        "train_val_list": tmp_path / "train_val_list.txt",
        "test_list": tmp_path / "test_list.txt",
        "bbox": tmp_path / "BBox_List_2017.csv",
        "images": tmp_path / "images_001",
    }


def _table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tables_splits_and_boxes(tmp_path):
    inputs = _fixture(tmp_path)
    (inputs["images"] / "images" / "00000002_001.png").write_bytes(b"bad")
    (inputs["images"] / "images" / "00000005_000.png").unlink()
    out = tmp_path / "out"
    manifest = convert(**inputs, out=out, val_fraction=0.2)
    train, val, test = (_table(out / f"{s}.csv") for s in ("train", "val", "test"))
    assert len(train) + len(val) == 60 - 2 and len(test) == 19
    patients = [{r["patient"] for r in t} for t in (train, val, test)]
    assert not patients[0] & patients[1] and not patients[0] & patients[2]
    assert not patients[1] & patients[2] and len(patients[1]) == 6
    row = next(r for r in train + val if r["image"] == "00000001_000.png")
    hot = {k for k in FINDINGS if row[k] == "1"}
    assert hot == {"Cardiomegaly", "Effusion", "Hernia"}
    assert sum(int(row[k]) for r in test for k in FINDINGS) > 0
    skipped = {d["item"]: d["reason"] for d in manifest["skipped"]}
    assert "unreadable" in skipped["00000002_001.png"]
    assert "missing" in skipped["00000005_000.png"]
    assert "neither" in skipped["00000040_001.png"]
    # nested label fractions
    subsets = [
        set((out / "splits" / f"train_{p}pct.txt").read_text().split())
        for p in (1, 5, 10, 30, 100)
    ]
    assert [len(s) for s in subsets][0] == 1 and subsets[-1] == {
        r["image"] for r in train
    }
    assert all(a <= b for a, b in zip(subsets, subsets[1:], strict=False))
    # boxes
    coco = json.loads((out / "annotations" / "bbox.json").read_text())
    boxes = sorted((a["category_id"], a["bbox"]) for a in coco["annotations"])
    assert boxes == [
        (2, [4.5, 6.25, 10.0, 8.0]),
        (3, [1.0, 2.0, 3.0, 4.0]),
        (4, [0.0, 0.0, 16.0, 16.0]),
    ]
    assert {im["width"] for im in coco["images"]} == {32}
    # classification dataset over a table and a subset
    ds = ChestXrayClassificationDataset(out / "train.csv")
    image, labels = ds[0]
    assert (
        image.shape == (32, 32)
        and labels.shape == (14,)
        and labels.dtype == torch.float32
    )
    small = ChestXrayClassificationDataset(
        out / "train.csv", split_file=out / "splits" / "train_1pct.txt"
    )
    assert len(small) == 1


def test_overlap_is_detected(tmp_path):
    inputs = _fixture(tmp_path)
    with open(inputs["test_list"], "a") as f:
        f.write("00000002_000.png\n")  # image (and patient 2) also in train_val
    with pytest.raises(ConversionError, match="overlap"):
        convert(**inputs, out=tmp_path / "out")
    argv = [
        "nih",
        *[f"--{k.replace('_', '-')}={v}" for k, v in inputs.items()],
        f"--out={tmp_path / 'cli'}",
    ]
    assert main(argv) == 1
    manifest = convert(**inputs, out=tmp_path / "out", allow_overlap=True)
    assert manifest["overlap"] == {"images": ["00000002_000.png"], "patients": ["2"]}
    test = {r["image"] for r in _table(tmp_path / "out" / "test.csv")}
    train = {r["image"] for r in _table(tmp_path / "out" / "train.csv")}
    assert "00000002_000.png" in test and "00000002_000.png" not in train


def test_patient_only_overlap_and_strict(tmp_path):
    inputs = _fixture(tmp_path)
    lines = inputs["train_val_list"].read_text().split()
    lines.remove("00000007_001.png")
    inputs["train_val_list"].write_text("\n".join(lines) + "\n")
    with open(inputs["test_list"], "a") as f:
        f.write("00000007_001.png\n")
    with pytest.raises(ConversionError, match=r"1 patient\(s\) \['7'\]"):
        convert(**inputs, out=tmp_path / "out")
    inputs = _fixture(tmp_path / "b")
    (inputs["images"] / "images" / "00000003_000.png").unlink()
    with pytest.raises(ConversionError, match="00000003_000.png"):
        convert(**inputs, out=tmp_path / "strict", strict=True)


def test_deterministic_and_resize(tmp_path):
    inputs = _fixture(tmp_path)
    a = convert(**inputs, out=tmp_path / "a", resize=16)
    b = convert(**inputs, out=tmp_path / "b", resize=16)
    assert a["outputs"] == b["outputs"]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (
        tmp_path / "b" / "manifest.json"
    ).read_bytes()
    coco = json.loads((tmp_path / "a" / "annotations" / "bbox.json").read_text())
    first = next(x for x in coco["annotations"] if x["category_id"] == 2)
    assert first["bbox"] == [2.25, 3.125, 5.0, 4.0]
    with Image.open(tmp_path / "a" / "images_16" / "00000001_000.png") as im:
        assert im.size == (16, 16)


def test_real_images(tmp_path):
    """NIH-style CSVs over the real TBX11K PNGs: boxes must come out unchanged."""
    data = SHARED / "tbx11k_tb_detection"
    if not data.is_dir():
        pytest.skip(f"shared test data not found at {data.resolve()}")
    source = json.loads((data / "instances.json").read_text())
    images = sorted(source["images"], key=lambda im: im["id"])[:12]
    rows, boxes = [], []
    for i, im in enumerate(images):
        rows.append(
            f"{im['file_name']},Nodule|Mass,0,{i // 2},40,F,PA,512,512,0.1,0.1\n"
        )
        for ann in source["annotations"]:
            if ann["image_id"] == im["id"]:
                x, y, w, h = ann["bbox"]
                boxes.append((im["file_name"], x, y, w, h))
    (tmp_path / "e.csv").write_text(HEADER + "".join(rows))
    names = [im["file_name"] for im in images]
    (tmp_path / "tv.txt").write_text("\n".join(names[:8]) + "\n")
    (tmp_path / "t.txt").write_text("\n".join(names[8:]) + "\n")
    (tmp_path / "b.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        + "".join(f"{n},Nodule,{x},{y},{w},{h}\n" for n, x, y, w, h in boxes)
    )
    out = tmp_path / "out"
    convert(
        entries=tmp_path / "e.csv",
        images=data / "images",
        out=out,
        train_val_list=tmp_path / "tv.txt",
        test_list=tmp_path / "t.txt",
        bbox=tmp_path / "b.csv",
    )
    coco = json.loads((out / "annotations" / "bbox.json").read_text())
    by_id = {im["id"]: Path(im["file_name"]).name for im in coco["images"]}
    got = sorted((by_id[a["image_id"]], *a["bbox"]) for a in coco["annotations"])
    assert got == sorted(boxes)
    ds = ChestXrayClassificationDataset(out / "test.csv")
    image, labels = ds[0]
    with Image.open(data / "images" / names[8]) as im:
        np.testing.assert_allclose(image * 255, np.asarray(im), atol=1e-3)
    assert labels[FINDINGS.index("Mass")] == 1 and labels.sum() == 2
