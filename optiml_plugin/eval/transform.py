"""The deterministic evaluation transform: the whole radiograph, resized."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from lightly.transforms.utils import IMAGENET_NORMALIZE
from PIL import Image
from torch import Tensor

from optiml_plugin.transforms.cvsim_transform import to_gray_tensor


class EvalTransform:
    """Resizes a radiograph to ``size x size`` (no crop: findings may lie at the
    border) and normalises it like the pretraining views (grey replicated to three
    channels, ImageNet statistics).

    Args:
        size: Output side in pixels.
        num_channels: 3 (torchvision backbones) or 1.
    """

    def __init__(self, size: int = 224, num_channels: int = 3) -> None:
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels}.")
        self.size = size
        self.num_channels = num_channels
        mean = sum(IMAGENET_NORMALIZE["mean"]) / 3
        std = sum(IMAGENET_NORMALIZE["std"]) / 3
        if num_channels == 3:
            self.mean = torch.tensor(IMAGENET_NORMALIZE["mean"])[:, None, None]
            self.std = torch.tensor(IMAGENET_NORMALIZE["std"])[:, None, None]
        else:
            self.mean, self.std = torch.tensor([[[mean]]]), torch.tensor([[[std]]])

    def __call__(self, image: Image.Image | np.ndarray | Tensor) -> Tensor:
        """Returns a (num_channels, size, size) float32 tensor."""
        x = to_gray_tensor(image)
        x = F.interpolate(
            x[None], size=(self.size, self.size), mode="bilinear", antialias=True
        )[0].clamp(0, 1)
        return (x.expand(self.num_channels, -1, -1) - self.mean) / self.std


def resize_mask(mask: np.ndarray | Tensor, size: int) -> Tensor:
    """Resizes an integer label map (H, W) to (size, size) by nearest neighbour."""
    m = torch.from_numpy(np.array(mask, dtype=np.float32))[None, None]
    return F.interpolate(m, size=(size, size), mode="nearest-exact")[0, 0].long()
