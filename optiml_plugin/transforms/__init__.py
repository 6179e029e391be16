"""OPTiML transforms."""

from optiml_plugin.transforms.cvsim_transform import (
    CVSIMTransform,
    CVSIMViewTransform,
    RandomResizedCropRotateWithGrid,
    to_gray_tensor,
)

__all__ = [
    "CVSIMTransform",
    "CVSIMViewTransform",
    "RandomResizedCropRotateWithGrid",
    "to_gray_tensor",
]
