"""Tests for the SIIM-ACR Pneumothorax converter, on fixtures in the original format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from optiml_plugin.data.converters.siim import convert, read_rle_csv, write_rle_csv
from optiml_plugin.data.io import write_dicom
from optiml_plugin.data.prepare import main
from optiml_plugin.data.rle import decode

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def competition_mask2rle(img: np.ndarray, width: int, height: int) -> str:
    """The competition's mask_functions.mask2rle (loop), called on mask.T * 255."""
    rle, last, current, start, length = [], 0, 0, -1, 0
    for x in range(width):
        for y in range(height):
            color = img[x][y]
            if color != last:
                if color == 255:
                    start, length = current, 1
                else:
                    rle += [str(start), str(length)]
                    start, length, current = -1, 0, 0
            elif start > -1:
                length += 1
            last = color
            current += 1
    return " ".join(rle)


def _fixture(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "dicom-images-train"
    pix = np.full((12, 10), 100, np.uint16)
    for name, patient in (("a", "P1"), ("b", "P1"), ("c", "P2"), ("d", "P3")):
        write_dicom(
            pix, images / "1.2" / f"1.3.{name}" / f"{name}.dcm", patient_id=patient
        )
    write_dicom(pix, images / "x" / "e.dcm", photometric="MONOCHROME1")
    (images / "x" / "bad.dcm").write_bytes(b"\x00" * 200)
    rle = tmp_path / "train-rle.csv"
    rle.write_text(
        "ImageId, EncodedPixels\n"
        "a, 13 3\n"
        "a, 30 2 5 1\n"  # second region of a: merged
        "b, -1\n"
        "c, 0 24\n"  # columns 0 and 1
        "d, -1\n"
        "e, 118 2\n"
        "bad, -1\n"
        "missing, -1\n"
    )
    return rle, images


def test_masks_merge_and_round_trip(tmp_path):
    rle, images = _fixture(tmp_path)
    out = tmp_path / "out"
    manifest = convert(rle, images, out)
    mask_a = np.asarray(Image.open(out / "masks" / "a.png"))
    expected = np.zeros(120, np.uint8)
    expected[[13, 14, 15, 30, 31, 37]] = 1
    np.testing.assert_array_equal(mask_a, expected.reshape(10, 12).T)
    assert mask_a.dtype == np.uint8 and set(np.unique(mask_a)) == {0, 1}
    assert not np.asarray(Image.open(out / "masks" / "b.png")).any()
    assert manifest["counts"]["positive"] == 3 and manifest["counts"]["negative"] == 2
    assert manifest["counts"]["rle_rows"] == 6
    skipped = {d["item"]: d["reason"] for d in manifest["skipped"]}
    assert "unreadable" in skipped["bad"] and "missing" in skipped["missing"]
    splits = {
        s: (out / "splits" / f"{s}.txt").read_text().split()
        for s in ("train", "val", "test")
    }
    side = {i: s for s, ids in splits.items() for i in ids}
    assert side["a"] == side["b"]  # same patient
    # back to the competition CSV: one row per image, exact round trip
    assert (
        main(
            [
                "siim-rle",
                "--masks",
                str(out / "masks"),
                "--out",
                str(tmp_path / "rt.csv"),
            ]
        )
        == 0
    )
    rows = read_rle_csv(tmp_path / "rt.csv")
    assert rows["a"] == ["13 3 14 2 5 1"] and rows["b"] == ["-1"] and len(rows) == 5
    np.testing.assert_array_equal(decode(rows["a"][0], 12, 10), mask_a)
    assert (
        (tmp_path / "rt.csv")
        .read_text()
        .startswith("ImageId, EncodedPixels\na, 13 3 14 2")
    )


def test_determinism_strict_and_resize(tmp_path):
    rle, images = _fixture(tmp_path)
    a, b = convert(rle, images, tmp_path / "a"), convert(rle, images, tmp_path / "b")
    assert a == b
    assert (
        main(
            [
                "siim",
                "--rle",
                str(rle),
                "--images",
                str(images),
                "--out",
                str(tmp_path / "s"),
                "--strict",
            ]
        )
        == 1
    )
    convert(rle, images, tmp_path / "r", resize=6)
    small = np.asarray(Image.open(tmp_path / "r" / "masks" / "c.png"))
    assert small.shape == (6, 5) and small[:, 0].all() and small.sum() == 6


def test_real_masks(tmp_path):
    """SIIM-style CSV (two rows per image: one per lung) from real lung masks."""
    data = SHARED / "covid_cxr_lungseg"
    if not data.is_dir():
        pytest.skip(f"shared test data not found at {data.resolve()}")
    names = sorted(p.name for p in (data / "masks").glob("*.png"))[:3]
    names.append(
        sorted(
            {p.name for p in (data / "images").glob("*.png")}
            - set(names)
            - {p.name for p in (data / "masks").glob("*.png")}
        )[0]
    )
    lines, truth = ["ImageId, EncodedPixels"], {}
    for name in names:
        stem = name[:-4]
        with Image.open(data / "images" / name) as im:
            pixels = np.asarray(im)
        write_dicom(pixels, tmp_path / "dcm" / f"{stem}.dcm")
        mask = np.zeros(pixels.shape, np.uint8)
        if (data / "masks" / name).is_file():
            mask = (np.asarray(Image.open(data / "masks" / name)) == 1).astype(np.uint8)
        truth[stem] = mask
        regions, n = ndimage.label(mask)
        h, w = mask.shape
        for k in range(1, n + 1):
            part = (regions == k).astype(np.uint8) * 255
            lines.append(f"{stem}, {competition_mask2rle(part.T, w, h)}")
        if n == 0:
            lines.append(f"{stem}, -1")
    (tmp_path / "train-rle.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    manifest = convert(tmp_path / "train-rle.csv", tmp_path / "dcm", out)
    assert manifest["counts"]["rle_rows"] >= 7 and manifest["counts"]["negative"] == 1
    for stem, mask in truth.items():
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / "masks" / f"{stem}.png")), mask
        )
    write_rle_csv(out / "masks", tmp_path / "rt.csv")
    for stem, (text,) in read_rle_csv(tmp_path / "rt.csv").items():
        np.testing.assert_array_equal(decode(text, *truth[stem].shape), truth[stem])
