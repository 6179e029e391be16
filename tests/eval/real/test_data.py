"""The cpu-real evaluation sets: cell labels from boxes, fixed crops, data checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optiml_plugin.eval.real import data


def test_cell_labels_mark_centres_and_small_boxes() -> None:
    # 7x7 grid on a 70x70 image: cell centres at 5, 15, ..., 65
    big = data.cell_labels(
        [[0, 0, 26, 16]], 70, 70, 7
    )  # covers centres x 5..25, y 5..15
    assert big.sum() == 6 and big[:2, :3].all()
    small = data.cell_labels([[46, 56, 3, 3]], 70, 70, 7)  # no cell centre inside
    assert small.sum() == 1 and small[5, 4] == 1
    assert data.cell_labels([], 70, 70, 7).sum() == 0


def test_fixed_crop_is_reproducible_and_inside() -> None:
    for i in range(20):
        top, left, h, w = data.fixed_crop(i, 300, 400)
        assert data.fixed_crop(i, 300, 400) == (top, left, h, w)
        assert 0 <= top and top + h <= 300 and 0 <= left and left + w <= 400
        assert 0.2 * 300 * 400 <= h * w <= 0.65 * 300 * 400
    assert data.fixed_crop(0, 300, 400) != data.fixed_crop(1, 300, 400)


def test_normalize_matches_the_evaluation_transform() -> None:
    from optiml_plugin.eval.transform import EvalTransform

    img = torch.randint(0, 256, (1, 1, 16, 16), dtype=torch.uint8)
    ref = EvalTransform(16)(img[0])
    assert torch.allclose(data.normalize(img)[0], ref, atol=1e-5)


def test_missing_folders_are_named(tmp_path: Path) -> None:
    (tmp_path / "mcsz_lungseg").mkdir()
    with pytest.raises(
        FileNotFoundError, match="nih_cxr_sample, tbx11k_tb_detection, cxr_pool"
    ):
        data.check_data_root(tmp_path)


def test_held_out_list_holds_only_test_splits(tmp_path: Path) -> None:
    for folder in ("mcsz_lungseg", "nih_cxr_sample"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "labels.csv").write_text(
            f"file_name,split\n{folder}_a.png,train\n{folder}_b.png,test\n"
        )
    path = data.write_held_out(tmp_path, tmp_path / "out" / "held.txt")
    assert path.read_text().split() == [
        "mcsz_lungseg/images/mcsz_lungseg_b.png",
        "nih_cxr_sample/images/nih_cxr_sample_b.png",
    ]
