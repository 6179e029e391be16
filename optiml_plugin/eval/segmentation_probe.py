"""Frozen-backbone linear segmentation probe: a 1x1 convolution on the final
dense map, upsampled to the mask, trained with cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DenseLinearProbe(nn.Module):
    """Per-cell standardisation (training statistics per channel), a 1x1
    convolution to class logits, and bilinear upsampling.

    Args:
        mean: (C,) channel means of the training maps.
        std: (C,) channel standard deviations.
        num_classes: Number of classes, background included.
    """

    def __init__(self, mean: Tensor, std: Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).clone())
        self.register_buffer("std", std.clamp_min(1e-6).reshape(1, -1, 1, 1).clone())
        self.conv = nn.Conv2d(mean.shape[0], num_classes, kernel_size=1)

    def forward(self, dense: Tensor, size: tuple[int, int]) -> Tensor:
        """Returns (N, num_classes, *size) logits for (N, C, h, w) maps."""
        logits = self.conv((dense - self.mean) / self.std)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def class_weights(masks: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Inverse-frequency class weights normalised to mean 1 (absent classes: 0)."""
    valid = masks[masks != ignore_index]
    counts = torch.bincount(valid.flatten(), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / counts.clamp_min(1), 0.0)
    return weights * (counts > 0).sum() / weights.sum()


def train_segmentation_probe(
    dense: Tensor,
    masks: Tensor,
    num_classes: int,
    epochs: int = 60,
    lr: float = 1e-2,
    batch_size: int = 64,
    balanced: bool = True,
    ignore_index: int = 255,
    seed: int = 0,
    train_size: int | None = None,
) -> DenseLinearProbe:
    """Fits a :class:`DenseLinearProbe` on frozen maps with AdamW.

    Args:
        dense: (N, C, h, w) frozen final maps.
        masks: (N, H, W) int64 class indices (``ignore_index`` left out).
        num_classes: Number of classes, background included.
        epochs: Passes over the maps.
        lr: Learning rate.
        batch_size: Mini-batch size.
        balanced: Weight the classes by inverse pixel frequency (small lesions
            would otherwise never be predicted by a linear probe on a coarse map).
        ignore_index: Mask value of pixels to ignore.
        seed: Seed of the batch order (the weights start at zero).
        train_size: Side at which the loss is taken (masks subsampled by nearest
            neighbour); default 8 pixels per cell of the map, or the masks' own
            size if smaller. The probe is still a 1x1 convolution followed by
            bilinear upsampling; evaluate it at full resolution.
    """
    generator = torch.Generator().manual_seed(seed)
    dense = dense.float()
    std, mean = torch.std_mean(dense, dim=(0, 2, 3), correction=0)
    probe = DenseLinearProbe(mean, std, num_classes)
    with torch.no_grad():  # zero start, as the linear probe
        probe.conv.weight.zero_()
        probe.conv.bias.zero_()
    weight = class_weights(masks, num_classes, ignore_index) if balanced else None
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    if train_size is None:
        train_size = 8 * max(dense.shape[-2:])
    if train_size < max(masks.shape[-2:]):
        masks = F.interpolate(
            masks[:, None].float(), size=(train_size, train_size), mode="nearest-exact"
        )[:, 0].long()
    size = tuple(masks.shape[-2:])
    n = dense.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(
                probe(dense[idx], size),
                masks[idx],
                weight=weight,
                ignore_index=ignore_index,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return probe.eval()


def position_maps(n: int, grid: int) -> Tensor:
    """(n, grid * grid, grid, grid) one-hot cell index: content-free features."""
    eye = torch.eye(grid * grid).reshape(grid * grid, grid, grid)
    return eye[None].expand(n, -1, -1, -1).contiguous()


@torch.no_grad()
def predict_masks(
    probe: DenseLinearProbe, dense: Tensor, size: tuple[int, int], batch_size: int = 64
) -> Tensor:
    """Returns (N, *size) predicted class indices."""
    out = [
        probe(dense[i : i + batch_size].float(), size).argmax(dim=1)
        for i in range(0, dense.shape[0], batch_size)
    ]
    return torch.cat(out)
