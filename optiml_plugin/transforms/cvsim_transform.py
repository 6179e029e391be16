"""Two-view transform for OPTiML with the original-image position of every cell.

Each view is a random resized crop, optionally rotated by a small angle and
flipped, then photometric augmentations suited to radiographs (brightness,
contrast, gamma, blur; no hue or saturation). Like Lightly's VICRegL transform, it
also returns, for every cell of the view's ``grid_size x grid_size`` dense grid,
where the cell's centre lies in the original image, so that a loss can relate the
cells of two views (OPTiML's optional spatial cost term) and a figure can draw
them over the radiograph.

The crop, rotation and flip are applied as one sampling grid (``grid_sample``), so
the recorded positions follow from the same mapping that produced the pixels.

Output (Lightly's ``ImageGridTransform`` order): ``[view_1, ..., view_n, grid_1,
..., grid_n]`` with views (C, size, size) and grids (grid_size, grid_size, 2)
holding (x / width, y / height) of the cell centres in the original image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from lightly.transforms.image_grid_transform import ImageGridTransform
from lightly.transforms.utils import IMAGENET_NORMALIZE
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

GRAY_NORMALIZE = {
    "mean": [sum(IMAGENET_NORMALIZE["mean"]) / 3],
    "std": [sum(IMAGENET_NORMALIZE["std"]) / 3],
}


def to_gray_tensor(image: Image.Image | np.ndarray | Tensor) -> Tensor:
    """Returns a (1, H, W) float32 tensor in [0, 1] from a PIL image, array or tensor.

    Colour input is converted to luminance; integer arrays are scaled by their
    dtype's maximum (8- and 16-bit radiographs); float input is kept as is.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float32) / 65535.0
            return torch.from_numpy(np.clip(array, 0, 1))[None]
        image = np.asarray(image.convert("L"))
    if isinstance(image, np.ndarray):
        if np.issubdtype(image.dtype, np.integer):
            scale = float(np.iinfo(image.dtype).max)
            image = torch.from_numpy(image.astype(np.float32) / scale)
        else:
            image = torch.from_numpy(image.astype(np.float32))
    x = image.float() if image.dtype != torch.uint8 else image.float() / 255.0
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ValueError(f"expected an image (H, W) or (C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 3:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    elif x.shape[0] != 1:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[0]}")
    return x


class RandomResizedCropRotateWithGrid:
    """Random resized crop + rotation + optional flips, with the cell grid.

    Args:
        size: Output side in pixels.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio.
        degrees: Maximum absolute rotation in degrees (uniform in [-d, d]).
        hf_prob: Probability of a horizontal flip (off by default: laterality
            matters in chest radiographs).
        grid_size: Cells per side of the recorded grid (the backbone's dense map:
            ``size // 32`` for a ResNet).
    """

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        degrees: float = 180.0,
        hf_prob: float = 0.0,
        grid_size: int = 7,
    ) -> None:
        self.size = size
        self.scale = scale
        self.ratio = ratio
        self.degrees = degrees
        self.hf_prob = hf_prob
        self.grid_size = grid_size

    def sample_params(self, height: int, width: int) -> dict[str, float]:
        """Draws crop (top, left, h, w), angle and flip with torch's RNG."""
        dummy = torch.empty(1, height, width)
        top, left, h, w = T.RandomResizedCrop.get_params(dummy, self.scale, self.ratio)
        angle = float((torch.rand(1) * 2 - 1) * self.degrees)
        flip = bool(torch.rand(1) < self.hf_prob)
        return {
            "top": top,
            "left": left,
            "height": h,
            "width": w,
            "angle": angle,
            "flip": flip,
        }

    def positions(self, params: dict[str, float], u: Tensor, v: Tensor) -> Tensor:
        """Maps view coordinates u, v in [0, 1] to original pixel (x, y), (..., 2).

        A view point (u, v) sits at (u - 1/2) * width, (v - 1/2) * height from the
        crop centre in the crop's frame, which is turned by ``angle`` degrees
        against the image's axes (u is mirrored first when flipped).
        """
        if params["flip"]:
            u = 1.0 - u
        dx = (u - 0.5) * params["width"]
        dy = (v - 0.5) * params["height"]
        theta = math.radians(params["angle"])
        cos, sin = math.cos(theta), math.sin(theta)
        cx = params["left"] + params["width"] / 2
        cy = params["top"] + params["height"] / 2
        x = cx + cos * dx + sin * dy
        y = cy - sin * dx + cos * dy
        return torch.stack([x, y], dim=-1)

    def __call__(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the view (1, size, size) and grid (grid_size, grid_size, 2)."""
        _, height, width = image.shape
        params = self.sample_params(height, width)
        # Shrink the source first (with antialiasing) when the crop is much larger
        # than the output, so that bilinear sampling does not alias.
        factor = min(1.0, 1.5 * self.size / min(params["height"], params["width"]))
        source = image
        if factor < 1.0:
            new = (max(1, round(height * factor)), max(1, round(width * factor)))
            source = TF.resize(image, list(new), antialias=True)
        centers = (torch.arange(self.size, dtype=torch.float32) + 0.5) / self.size
        vv, uu = torch.meshgrid(centers, centers, indexing="ij")
        pix = self.positions(params, uu, vv)
        # grid_sample wants coordinates in [-1, 1] over the (resized) source.
        norm = torch.stack(
            [pix[..., 0] / width * 2 - 1, pix[..., 1] / height * 2 - 1], -1
        )
        view = F.grid_sample(
            source[None],
            norm[None],
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )[0]
        cells = (
            torch.arange(self.grid_size, dtype=torch.float32) + 0.5
        ) / self.grid_size
        gv, gu = torch.meshgrid(cells, cells, indexing="ij")
        grid = self.positions(params, gu, gv)
        grid = grid / torch.tensor([width, height], dtype=torch.float32)
        return view, grid


class CVSIMViewTransform:
    """Photometric augmentations for one radiograph view, then normalisation.

    Args:
        brightness: Brightness jitter strength.
        contrast: Contrast jitter strength.
        jitter_prob: Probability of the brightness/contrast jitter.
        gamma: Range of the random gamma.
        gamma_prob: Probability of the gamma change.
        blur_prob: Probability of a Gaussian blur.
        blur_sigmas: Range of the blur's sigma in pixels.
        num_channels: 3 replicates the grey channel (torchvision / OpenMMLab
            backbones); 1 keeps one channel.
        normalize: Mean and std per output channel, or None.
    """

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        jitter_prob: float = 0.8,
        gamma: tuple[float, float] = (0.7, 1.4),
        gamma_prob: float = 0.5,
        blur_prob: float = 0.5,
        blur_sigmas: tuple[float, float] = (0.1, 2.0),
        num_channels: int = 3,
        normalize: dict[str, list[float]] | None = None,
    ) -> None:
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels}.")
        self.jitter = T.RandomApply(
            [T.ColorJitter(brightness=brightness, contrast=contrast)], p=jitter_prob
        )
        self.gamma = gamma
        self.gamma_prob = gamma_prob
        self.blur = T.RandomApply([T.GaussianBlur(9, sigma=blur_sigmas)], p=blur_prob)
        self.num_channels = num_channels
        if normalize is None:
            normalize = IMAGENET_NORMALIZE if num_channels == 3 else GRAY_NORMALIZE
        self.normalize = T.Normalize(mean=normalize["mean"], std=normalize["std"])

    def __call__(self, view: Tensor) -> Tensor:
        """Augments a (1, H, W) view in [0, 1]; returns (num_channels, H, W)."""
        view = self.jitter(view)
        if torch.rand(1) < self.gamma_prob:
            lo, hi = self.gamma
            view = TF.adjust_gamma(
                view.clamp(0, 1), float(torch.empty(1).uniform_(lo, hi))
            )
        view = self.blur(view).clamp(0, 1)
        if self.num_channels == 3:
            view = view.expand(3, -1, -1)
        return self.normalize(view)


class CVSIMTransform(ImageGridTransform):
    """Views and cell grids for OPTiML's cross-view OT alignment [0].

    Input: a PIL image, a (H, W) / (C, H, W) array or tensor. Output: ``[views...,
    grids...]`` (see the module docstring): ``n_global_views`` global views, then
    ``n_local_views`` smaller ones, then their grids in the same order.

    Args:
        size: Side of the global views.
        local_size: Side of the local views.
        n_global_views: Number of global views (2 for OPTiML).
        n_local_views: Number of local views (0 by default).
        global_scale: Crop area range of the global views.
        local_scale: Crop area range of the local views.
        degrees: Maximum rotation of each view, drawn independently (180 by
            default: under small rotations the cell index predicts the matching
            cell, and the dense features learn a code of the index; see the
            README, "Rotations and plan contrast"; 10 keeps the views upright).
        hf_prob: Horizontal flip probability of each view, drawn independently
            (0.5 by default, so that cell i of one view is often not the same
            anatomy as cell i of the other and a code of the cell's position
            cannot align the views; 0 keeps laterality).
        grid_size: Grid cells per side of a global view (``size // 32`` if None).
        num_channels: Output channels (3 replicated grey, or 1).
        blur_probs: Blur probability of the first and the other views (asymmetric,
            as in VICReg).
        normalize: Mean and std, or None for ImageNet statistics.

    - [0] Singh, Gorade, Mishra. OPTiML. arXiv 2404.11868, 2024.
    """

    def __init__(
        self,
        size: int = 224,
        local_size: int = 96,
        n_global_views: int = 2,
        n_local_views: int = 0,
        global_scale: tuple[float, float] = (0.3, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.3),
        degrees: float = 180.0,
        hf_prob: float = 0.5,
        grid_size: int | None = None,
        num_channels: int = 3,
        blur_probs: tuple[float, float] = (0.8, 0.2),
        normalize: dict[str, list[float]] | None = None,
    ) -> None:
        grid = grid_size or max(1, size // 32)
        local_grid = max(1, round(grid * local_size / size))
        transforms: list[Sequence] = []
        for k in range(n_global_views):
            geom = RandomResizedCropRotateWithGrid(
                size, global_scale, degrees=degrees, hf_prob=hf_prob, grid_size=grid
            )
            view = CVSIMViewTransform(
                blur_prob=blur_probs[0] if k == 0 else blur_probs[1],
                num_channels=num_channels,
                normalize=normalize,
            )
            transforms.append((geom, view))
        for _ in range(n_local_views):
            geom = RandomResizedCropRotateWithGrid(
                local_size,
                local_scale,
                degrees=degrees,
                hf_prob=hf_prob,
                grid_size=local_grid,
            )
            view = CVSIMViewTransform(
                blur_prob=blur_probs[1], num_channels=num_channels, normalize=normalize
            )
            transforms.append((geom, view))
        super().__init__(transforms=transforms)
        self.n_views = n_global_views + n_local_views

    def __call__(self, image: Image.Image | np.ndarray | Tensor) -> list[Tensor]:
        """Returns ``[views..., grids...]`` for one image."""
        return super().__call__(to_gray_tensor(image))
