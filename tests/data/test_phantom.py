"""Tests for the synthetic chest radiograph generator (optiml_plugin.data.phantom)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from optiml_plugin.data.phantom import (
    LESION_CLASSES,
    Phantom,
    PhantomDataset,
    generate_phantom,
)

SIZE = 128
SEEDS = range(8)


def _pair(seed: int) -> tuple[Phantom, Phantom]:
    """The same phantom with lesions (lesion_prob=1) and without (lesion_prob=0)."""
    with_lesions = generate_phantom(seed, size=SIZE, lesion_prob=1.0, max_lesions=3)
    without = generate_phantom(seed, size=SIZE, lesion_prob=0.0)
    return with_lesions, without


def _assert_same(a: Phantom, b: Phantom) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.lung_mask, b.lung_mask)
    np.testing.assert_array_equal(a.lesion_mask, b.lesion_mask)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.box_labels, b.box_labels)
    np.testing.assert_array_equal(a.image_labels, b.image_labels)
    np.testing.assert_array_equal(a.lesion_instance_masks, b.lesion_instance_masks)


def test_same_seed_is_bit_identical() -> None:
    _assert_same(
        generate_phantom(7, size=SIZE, lesion_prob=1.0),
        generate_phantom(7, size=SIZE, lesion_prob=1.0),
    )


def test_different_seeds_give_different_images() -> None:
    images = [generate_phantom(seed, size=SIZE).image for seed in range(4)]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.mean(images[i] != images[j]) > 0.5


@pytest.mark.parametrize("lesion_prob", [0.0, 1.0])
@pytest.mark.parametrize("size", [64, 96])
def test_shapes_and_dtypes(size: int, lesion_prob: float) -> None:
    p = generate_phantom(3, size=size, lesion_prob=lesion_prob)
    assert p.image.shape == (size, size) and p.image.dtype == np.uint8
    assert p.lung_mask.shape == (size, size) and p.lung_mask.dtype == np.uint8
    assert p.lesion_mask.shape == (size, size) and p.lesion_mask.dtype == np.uint8
    k = len(p.box_labels)
    assert p.boxes.shape == (k, 4) and p.boxes.dtype == np.float32
    assert p.box_labels.dtype == np.int64
    assert p.image_labels.shape == (len(LESION_CLASSES),)
    assert p.image_labels.dtype == np.float32
    assert p.lesion_instance_masks.shape == (k, size, size)
    assert p.lesion_instance_masks.dtype == bool
    assert p.seed == 3
    assert set(np.unique(p.lung_mask)) == {0, 1, 2}
    assert p.lesion_mask.max() <= len(LESION_CLASSES)
    assert p.image.min() < 30 and p.image.max() > 150  # uses the dynamic range


@pytest.mark.parametrize("seed", SEEDS)
def test_lungs_are_two_fields_right_lung_on_image_left(seed: int) -> None:
    p = generate_phantom(seed, size=SIZE, lesion_prob=0.0)
    centroids = []
    for label in (1, 2):
        lung = p.lung_mask == label
        assert ndimage.label(lung)[1] == 1
        assert 0.05 < lung.mean() < 0.25
        centroids.append(np.nonzero(lung)[1].mean())
    assert centroids[0] < SIZE / 2 < centroids[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_lungs_darker_than_mediastinum_and_body_brighter_than_background(
    seed: int,
) -> None:
    p = generate_phantom(seed, size=SIZE, lesion_prob=0.0)
    image = p.image.astype(np.float64)
    rows = np.flatnonzero((p.lung_mask > 0).any(axis=1))
    center = SIZE // 2
    mediastinum = image[rows[0] : rows[-1] + 1, center - 4 : center + 4]
    assert image[p.lung_mask > 0].mean() + 40 < mediastinum.mean()
    corner = SIZE // 12
    background = np.concatenate(
        [image[:corner, :corner].ravel(), image[:corner, -corner:].ravel()]
    )
    abdomen = image[
        int(0.85 * SIZE) : int(0.95 * SIZE), int(0.4 * SIZE) : int(0.6 * SIZE)
    ]
    assert background.mean() + 80 < abdomen.mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_boxes_are_tight_boxes_of_instance_masks(seed: int) -> None:
    p = generate_phantom(seed, size=SIZE, lesion_prob=1.0)
    assert len(p.boxes) >= 1
    for box, mask in zip(p.boxes, p.lesion_instance_masks, strict=True):
        rows, cols = np.nonzero(mask)
        assert rows.size > 0
        expected = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        np.testing.assert_array_equal(box, np.asarray(expected, dtype=np.float32))


@pytest.mark.parametrize("seed", SEEDS)
def test_lesion_mask_matches_instances_with_last_on_top(seed: int) -> None:
    p = generate_phantom(seed, size=SIZE, lesion_prob=1.0)
    masks = p.lesion_instance_masks
    np.testing.assert_array_equal(p.lesion_mask > 0, masks.any(axis=0))
    expected = np.zeros_like(p.lesion_mask)
    for label, mask in zip(p.box_labels, masks, strict=True):
        expected[mask] = label + 1
    np.testing.assert_array_equal(p.lesion_mask, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_lesions_brighten_exactly_their_own_pixels(seed: int) -> None:
    with_lesions, without = _pair(seed)
    np.testing.assert_array_equal(with_lesions.lung_mask, without.lung_mask)
    union = with_lesions.lesion_instance_masks.any(axis=0)
    np.testing.assert_array_equal(with_lesions.image[~union], without.image[~union])
    diff = with_lesions.image.astype(np.int16) - without.image.astype(np.int16)
    assert diff.min() >= 0
    for mask in with_lesions.lesion_instance_masks:
        assert diff[mask].mean() > 3.0


@pytest.mark.parametrize("seed", SEEDS)
def test_lesions_lie_inside_the_lungs(seed: int) -> None:
    p = generate_phantom(seed, size=SIZE, lesion_prob=1.0)
    for mask in p.lesion_instance_masks:
        assert np.mean(p.lung_mask[mask] > 0) >= 0.9


def test_all_lesion_classes_occur_and_labels_are_consistent() -> None:
    seen = np.zeros(len(LESION_CLASSES))
    for seed in range(12):
        p = generate_phantom(seed, size=SIZE, lesion_prob=1.0, max_lesions=3)
        assert 1 <= len(p.box_labels) <= 3
        expected = np.zeros(len(LESION_CLASSES), dtype=np.float32)
        expected[p.box_labels] = 1.0
        np.testing.assert_array_equal(p.image_labels, expected)
        seen += expected
    assert (seen > 0).all()


def test_max_lesions_one_gives_one_lesion() -> None:
    for seed in range(4):
        p = generate_phantom(seed, size=SIZE, lesion_prob=1.0, max_lesions=1)
        assert len(p.boxes) == 1


def test_lesion_prob_zero_gives_no_lesions() -> None:
    for seed in range(4):
        p = generate_phantom(seed, size=SIZE, lesion_prob=0.0)
        assert p.boxes.shape == (0, 4)
        assert p.box_labels.shape == (0,)
        assert not p.image_labels.any()
        assert not p.lesion_mask.any()


def test_lesion_prob_half_gives_a_mix() -> None:
    has = [generate_phantom(s, size=64).image_labels.any() for s in range(16)]
    assert 0 < sum(has) < 16


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 63},
        {"lesion_prob": -0.1},
        {"lesion_prob": 1.5},
        {"max_lesions": 0},
        {"seed": -1},
    ],
)
def test_generate_phantom_rejects_bad_arguments(kwargs: dict) -> None:
    args = {"seed": 0, "size": 64} | kwargs
    with pytest.raises(ValueError):
        generate_phantom(**args)


def test_dataset_length_items_and_determinism() -> None:
    dataset = PhantomDataset(num_images=3, size=64, seed=5, lesion_prob=1.0)
    assert len(dataset) == 3
    image, labels = dataset[1]
    assert isinstance(image, Image.Image) and image.mode == "L"
    assert image.size == (64, 64)
    phantom = dataset.phantom(1)
    np.testing.assert_array_equal(np.asarray(image), phantom.image)
    assert labels.dtype == torch.float32
    assert torch.equal(labels, torch.from_numpy(phantom.image_labels))
    assert labels.sum() >= 1
    _assert_same(phantom, PhantomDataset(num_images=3, size=64, seed=5).phantom(1))
    assert not np.array_equal(dataset.phantom(0).image, phantom.image)
    other = PhantomDataset(num_images=3, size=64, seed=6, lesion_prob=1.0)
    assert not np.array_equal(other.phantom(1).image, phantom.image)
    np.testing.assert_array_equal(np.asarray(dataset[-1][0]), dataset.phantom(2).image)


def test_dataset_raises_index_error_out_of_range() -> None:
    dataset = PhantomDataset(num_images=2, size=64)
    with pytest.raises(IndexError):
        dataset[2]
    with pytest.raises(IndexError):
        dataset[-3]
    with pytest.raises(IndexError):
        dataset.phantom(5)


def test_dataset_applies_transform() -> None:
    calls = []

    def transform(image: Image.Image) -> torch.Tensor:
        calls.append(image.mode)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]

    dataset = PhantomDataset(num_images=2, size=64, transform=transform)
    sample, labels = dataset[0]
    assert calls == ["L"]
    assert sample.shape == (1, 64, 64) and sample.dtype == torch.float32
    assert torch.allclose(
        sample[0] * 255.0, torch.from_numpy(dataset.phantom(0).image.astype(np.float32))
    )
    assert labels.shape == (len(LESION_CLASSES),)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_images": 0},
        {"size": 32},
        {"lesion_prob": 2.0},
        {"lesion_prob": -0.5},
        {"max_lesions": 0},
        {"seed": -1},
    ],
)
def test_dataset_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PhantomDataset(**kwargs)
