"""Tests for reading radiographs (optiml_plugin.data.io) and the folder dataset."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.uid import JPEGLSLossless

from optiml_plugin.data import folder
from optiml_plugin.data.io import (
    ImageReadError,
    MissingDecoderError,
    read_image,
    write_dicom,
)
from optiml_plugin.transforms import CVSIMTransform

RAMP12 = (np.arange(48).reshape(6, 8) * 85).astype(np.uint16)  # 0 .. 3995


def test_png_8_and_16_bit(tmp_path):
    a8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    a16 = (np.arange(256, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)
    a16[0, 0] = 65535
    Image.fromarray(a8).save(tmp_path / "a8.png")
    Image.fromarray(a16).save(tmp_path / "a16.png")
    out8, out16 = read_image(tmp_path / "a8.png"), read_image(tmp_path / "a16.png")
    assert out8.dtype == out16.dtype == np.float32
    np.testing.assert_allclose(out8, a8 / 255.0, atol=1e-7)
    np.testing.assert_allclose(out16, a16 / 65535.0, atol=1e-7)
    assert out16[0, 0] == 1.0


def test_dicom_stored_range_and_monochrome1(tmp_path):
    m2 = read_image(write_dicom(RAMP12, tmp_path / "m2.dcm", bits_stored=12))
    m1 = read_image(
        write_dicom(
            RAMP12, tmp_path / "m1.dcm", bits_stored=12, photometric="MONOCHROME1"
        )
    )
    np.testing.assert_allclose(m2, RAMP12 / 4095.0, atol=1e-6)
    np.testing.assert_allclose(m1, 1.0 - RAMP12 / 4095.0, atol=1e-6)
    a8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_allclose(
        read_image(write_dicom(a8, tmp_path / "u8.dicom")), a8 / 255.0, atol=1e-7
    )


def test_dicom_rescale_and_window(tmp_path):
    flipped = write_dicom(
        RAMP12,
        tmp_path / "rescale.dcm",
        bits_stored=12,
        RescaleSlope=-1.0,
        RescaleIntercept=4095.0,
    )
    np.testing.assert_allclose(read_image(flipped), (4095 - RAMP12) / 4095, atol=1e-6)
    windowed = read_image(
        write_dicom(
            RAMP12,
            tmp_path / "w.dcm",
            bits_stored=12,
            WindowCenter=2000,
            WindowWidth=1001,
        )
    )
    assert windowed[RAMP12 < 1400].max() == 0.0
    assert windowed[RAMP12 > 2600].min() == 1.0
    inside = (RAMP12 > 1600) & (RAMP12 < 2400)
    assert np.all(np.diff(windowed[inside]) > 0)
    expected = (RAMP12[inside] - 1500.0) / 1000.0  # pydicom's LINEAR window
    np.testing.assert_allclose(windowed[inside], expected, atol=2e-3)


def test_compressed_dicom_without_decoder_names_it(tmp_path):
    path = write_dicom(RAMP12, tmp_path / "jls.dcm", bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8not-really-jpeg-ls\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MissingDecoderError, match="JPEG-LS") as info:
        read_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "kind", ["garbage.png", "empty.dcm", "truncated.png", "cut.dcm"]
)
def test_bad_files_raise_naming_the_file(tmp_path, kind):
    path = tmp_path / kind
    good = tmp_path / "good.png"
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(good)
    if kind == "garbage.png":
        path.write_bytes(b"this is not a png" * 10)
    elif kind == "empty.dcm":
        path.write_bytes(b"")
    elif kind == "truncated.png":
        path.write_bytes(good.read_bytes()[:60])
    else:
        full = write_dicom(RAMP12, tmp_path / "full.dcm", bits_stored=12).read_bytes()
        path.write_bytes(full[: len(full) - 40])
    with pytest.raises(ImageReadError, match=kind):
        read_image(path)
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "missing.png")


def test_folder_dataset_reads_dicom_and_16_bit_png(tmp_path):
    assert folder.ImageReadError is ImageReadError
    assert ".dcm" in folder.IMAGE_EXTENSIONS and ".dicom" in folder.IMAGE_EXTENSIONS
    a16 = np.full((64, 64), 65535 // 4, np.uint16)
    Image.fromarray(a16).save(tmp_path / "a.png")
    write_dicom(np.full((64, 64), 4095, np.uint16), tmp_path / "b.dcm", bits_stored=12)
    write_dicom(
        np.full((64, 64), 4095, np.uint16),
        tmp_path / "c.dicom",
        bits_stored=12,
        photometric="MONOCHROME1",
    )
    (tmp_path / "d.dcm").write_bytes(b"corrupt")
    raw = folder.ImageFolderDataset(tmp_path)
    assert len(raw) == 4
    means = [float(raw[i][0].mean()) for i in range(3)]
    np.testing.assert_allclose(means, [(65535 // 4) / 65535, 1.0, 0.0], atol=1e-6)
    assert float(raw[3][0].mean()) == pytest.approx(means[0])  # d.dcm skipped
    assert any("d.dcm" in v for v in raw.bad_files.values())
    ds = folder.ImageFolderDataset(tmp_path, transform=CVSIMTransform(size=32))
    views, _ = ds[1]
    assert all(isinstance(v, torch.Tensor) for v in views)
    strict = folder.ImageFolderDataset(tmp_path, on_error="raise")
    with pytest.raises(ImageReadError, match="d.dcm"):
        strict[3]
