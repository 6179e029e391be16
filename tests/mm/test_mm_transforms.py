from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optiml_plugin.data.io import ImageReadError, write_dicom
from optiml_plugin.mm.transforms import LoadChestXray


def test_sixteen_bit_png_keeps_its_range(tmp_path: Path) -> None:
    pixels = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    out = LoadChestXray(to_float32=True)({"img_path": str(tmp_path / "x.png")})
    img = out["img"]
    assert img.shape == (2, 2, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[..., 0], pixels / 65535 * 255, rtol=1e-5)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert out["ori_shape"] == (2, 2)


def test_monochrome1_dicom_is_inverted_and_one_channel(tmp_path: Path) -> None:
    pixels = np.array([[0, 255], [100, 200]], dtype=np.uint8)
    path = write_dicom(pixels, tmp_path / "a.dcm", photometric="MONOCHROME1")
    img = LoadChestXray(channels=1)({"img_path": str(path)})["img"]
    assert img.shape == (2, 2, 1) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], 255 - pixels)


def test_corrupt_image_is_skipped_by_name_or_raises(tmp_path: Path, caplog) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level(logging.WARNING):
        assert LoadChestXray()({"img_path": str(bad)}) is None
    with pytest.raises(ImageReadError, match="broken.png"):
        LoadChestXray(on_error="raise")({"img_path": str(bad)})


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="channels"):
        LoadChestXray(channels=2)
    with pytest.raises(ValueError, match="on_error"):
        LoadChestXray(on_error="ignore")
