"""Projection heads for OPTiML (global and dense), built on Lightly's ProjectionHead.

OPTiML [0] projects the encoder's pooled feature into a global embedding ``z`` and
the encoder's dense feature map into dense tokens ``u`` (one per spatial cell). Both
heads are Lightly ``ProjectionHead`` block lists, so they can replace a VICReg /
VICRegL head line for line.

- [0] Singh, Gorade, Mishra. OPTiML: Dense Semantic Invariance Using Optimal
  Transport for Self-Supervised Medical Image Representation. arXiv 2404.11868,
  2024 (WACV 2025 as OTCXR).
"""

from __future__ import annotations

from lightly.models.modules.heads import ProjectionHead
from torch import Tensor, nn


class OPTiMLProjectionHead(ProjectionHead):
    """Global projection head: the VICReg expander (Linear-BN-ReLU blocks, Linear).

    Args:
        input_dim: Dimension of the pooled backbone feature (2048 for ResNet-50).
        hidden_dim: Width of the hidden layers.
        output_dim: Dimension of the global embedding ``z``.
        num_layers: Number of linear layers (at least 2).
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 2048,
        output_dim: int = 2048,
        num_layers: int = 3,
    ) -> None:
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2, got {num_layers}.")
        blocks: list = [(input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU())]
        blocks += [
            (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU())
            for _ in range(num_layers - 2)
        ]
        blocks.append((hidden_dim, output_dim, None, None))
        super().__init__(blocks)


class OPTiMLDenseProjectionHead(ProjectionHead):
    """Dense projection head, applied to every cell of a feature map.

    Equivalent to a stack of 1x1 convolutions with batch norm: the batch-norm
    statistics are taken over all cells of all images. Accepts tokens of shape
    (batch, ..., input_dim), e.g. (B, H, W, C) or (B, N, C), and keeps the leading
    shape.

    Args:
        input_dim: Channels of the backbone's dense map (2048 for ResNet-50).
        hidden_dim: Width of the hidden layer.
        output_dim: Dimension of the dense tokens ``u``.
    """

    def __init__(
        self, input_dim: int = 2048, hidden_dim: int = 1024, output_dim: int = 512
    ) -> None:
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        """Projects every token of ``x`` (batch, ..., input_dim)."""
        lead = x.shape[:-1]
        out: Tensor = self.layers(x.reshape(-1, x.shape[-1]))
        return out.reshape(*lead, out.shape[-1])
