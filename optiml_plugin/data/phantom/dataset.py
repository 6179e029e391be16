"""A fixed, deterministic set of phantoms as a torch ``Dataset``."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from optiml_plugin.data.phantom.generate import Phantom, generate_phantom
from optiml_plugin.data.phantom.geometry import _check_args
from optiml_plugin.data.phantom.params import _SEED_STRIDE


class PhantomDataset(Dataset):
    """A fixed, deterministic set of synthetic chest radiographs.

    Image ``i`` is ``generate_phantom(seed * 1_000_003 + i, ...)``; phantoms are
    generated on the fly (nothing is cached).

    Args:
        num_images: Number of images (>= 1).
        size: Side of the square images in pixels (>= 64).
        seed: Non-negative dataset seed.
        transform: Applied to each PIL image (mode ``L``).
        lesion_prob: Probability that an image has any lesion.
        max_lesions: Maximum number of lesions per image.
        lesion_scale: Size factor of nodules and opacities (see
            :func:`generate_phantom`).

    Returns from ``__getitem__``: ``(transform(image) or image, image_labels)``
    with ``image_labels`` a float32 multi-hot tensor over :data:`LESION_CLASSES`.
    """

    def __init__(
        self,
        num_images: int = 256,
        size: int = 256,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        lesion_prob: float = 0.5,
        max_lesions: int = 3,
        lesion_scale: float = 1.0,
    ) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}.")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        _check_args(size, lesion_prob, max_lesions)
        self.num_images = int(num_images)
        self.size = int(size)
        self.seed = int(seed)
        self.transform = transform
        self.lesion_prob = float(lesion_prob)
        self.max_lesions = int(max_lesions)
        self.lesion_scale = float(lesion_scale)

    def __len__(self) -> int:
        return self.num_images

    def _checked_index(self, index: int) -> int:
        """Returns ``index`` as a non-negative int, or raises ``IndexError``."""
        index = operator.index(index)
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(
                f"index out of range for PhantomDataset of {self.num_images} images."
            )
        return index

    def phantom(self, index: int) -> Phantom:
        """Returns the full phantom (image, masks, boxes) of image ``index``."""
        index = self._checked_index(index)
        return generate_phantom(
            self.seed * _SEED_STRIDE + index,
            size=self.size,
            lesion_prob=self.lesion_prob,
            max_lesions=self.max_lesions,
            lesion_scale=self.lesion_scale,
        )

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        phantom = self.phantom(index)
        image = phantom.to_pil()
        sample = self.transform(image) if self.transform else image
        return sample, torch.tensor(phantom.image_labels)
