from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optiml_plugin.data.folder import ImageFolderDataset, ImageReadError, list_images


def _folder(tmp_path: Path) -> Path:
    for k in range(3):
        Image.fromarray(np.full((20, 30), 40 * (k + 1), dtype=np.uint8)).save(
            tmp_path / f"img{k}.png"
        )
    (tmp_path / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "notes.txt.bak").write_text("not an image")
    return tmp_path


def test_corrupt_image_is_reported_by_name_and_skipped(tmp_path: Path, caplog) -> None:
    ds = ImageFolderDataset(_folder(tmp_path))
    assert len(ds) == 3
    image, _ = ds[1]  # img1 is corrupt: img2 is served instead
    assert image.shape == (20, 30) and image.dtype == np.float32
    assert image[0, 0] == pytest.approx(120 / 255)
    assert list(ds.bad_files) == [str(tmp_path / "img1.png")]
    assert "img1.png" in caplog.text


def test_corrupt_image_raises_with_on_error_raise(tmp_path: Path) -> None:
    ds = ImageFolderDataset(_folder(tmp_path), on_error="raise")
    assert ds[0][0][0, 0] == pytest.approx(40 / 255)
    with pytest.raises(ImageReadError, match="img1.png"):
        ds[1]


def test_list_file_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    folder = _folder(tmp_path / "a")
    listing = tmp_path / "list.txt"
    listing.write_text("# train\na/img2.png\n\na/img0.png\n")
    assert list_images(listing) == [folder / "img2.png", folder / "img0.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found"):
        list_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="on_error"):
        ImageFolderDataset(folder, on_error="ignore")
