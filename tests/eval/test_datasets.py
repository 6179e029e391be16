"""Evaluation datasets: phantoms (labels and masks agree) and the real data in
../shared/data (skipped, with a message, when absent)."""

from pathlib import Path

import pytest
import torch

from optiml_plugin.data.phantom import PhantomDataset
from optiml_plugin.eval.datasets import (
    LungSegmentationDataset,
    PhantomEvalDataset,
    TBClassificationDataset,
    build_eval_data,
    materialize,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _shared(name: str) -> Path:
    root = SHARED / name
    if not root.is_dir():
        pytest.skip(f"shared test data not found at {root.resolve()}")
    return root


def test_phantom_items_agree_with_the_generator() -> None:
    ds = PhantomEvalDataset(6, size=96, image_size=48, seed=5)
    ref = PhantomDataset(6, size=96, seed=5)
    for i in range(6):
        image, labels, mask = ds[i]
        assert image.shape == (3, 48, 48) and mask.shape == (48, 48)
        assert torch.equal(labels, ref[i][1])
        assert set(mask.unique().tolist()) <= {0, 1, 2}
        assert (mask == 1).any()  # lungs are always there
        if labels.sum() == 0:
            assert not (mask == 2).any()


def test_materialize_keeps_every_item() -> None:
    ds = PhantomEvalDataset(3, size=96, image_size=32, seed=1)
    mem = materialize(ds)
    assert len(mem) == 3
    for i in range(3):
        for a, b in zip(mem[i], ds[i], strict=True):
            assert torch.equal(a, b)


def test_unknown_source_and_missing_folder_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown evaluation data"):
        build_eval_data("imagenet")
    with pytest.raises(ValueError, match="give the folder"):
        build_eval_data("covid")


def test_lung_masks_split_by_patient() -> None:
    root = _shared("covid_cxr_lungseg")
    train = LungSegmentationDataset(root, "train", image_size=64)
    test = LungSegmentationDataset(root, "test", image_size=64)
    assert len(train) + len(test) == len(LungSegmentationDataset(root, "all")) == 90
    assert not {p for p, _ in train.files} & {p for p, _ in test.files}
    image, mask = test[0]
    assert image.shape == (3, 64, 64)
    assert set(mask.unique().tolist()) <= {0, 1, 255} and (mask == 1).any()


def test_tb_labels_follow_the_label_column() -> None:
    root = _shared("tbx11k_tb_detection")
    train = TBClassificationDataset(root, "train", image_size=32)
    test = TBClassificationDataset(root, "test", image_size=32)
    assert (len(train), len(test)) == (296, 104)
    labels = torch.stack(
        [lab for _, lab in test.samples] + [lab for _, lab in train.samples]
    )
    # 316 active only, 64 latent only, 20 both (the data set's README)
    assert labels.sum(0).tolist() == [336.0, 84.0]
    assert (labels.sum(1) == 2).sum() == 20
    data = build_eval_data(f"shared:{SHARED}", image_size=32)
    assert data.classes == ("active_tb", "latent_tb") and len(data.seg_test) > 0
