"""Lightly's VICReg, VICRegL and Barlow Twins models on the same backbone as OPTiML.

The baselines use Lightly's own projection heads on a torchvision ResNet kept
under torchvision's parameter names (the backbone of :class:`OPTiML`), so that a
baseline's exported backbone is interchangeable with OPTiML's and a comparison
differs only in heads and loss.

- [0] Bardes, Ponce, LeCun. VICReg. ICLR 2022.
- [1] Bardes, Ponce, LeCun. VICRegL. NeurIPS 2022.
- [2] Zbontar et al. Barlow Twins. ICML 2021.
"""

from __future__ import annotations

from lightly.models.modules.heads import (
    BarlowTwinsProjectionHead,
    VicRegLLocalProjectionHead,
    VICRegProjectionHead,
)
from torch import Tensor, nn

from optiml_plugin.models.optiml import resnet_backbone, resnet_dense_features

BASELINE_METHODS = ("vicreg", "vicregl", "barlowtwins")


class LightlyBaselineModel(nn.Module):
    """A ResNet backbone with the projection heads of a Lightly method.

    Args:
        method: ``"vicreg"``, ``"vicregl"`` or ``"barlowtwins"``.
        backbone: A torchvision ResNet name.
        global_dim: Output dimension of the global head.
        global_hidden_dim: Hidden width of the global head.
        dense_dim: Output dimension of VICRegL's local head.
        dense_hidden_dim: Hidden width of VICRegL's local head.
        padding_mode: Padding of the backbone's convolutions, as for OPTiML.

    ``forward(x)`` returns the global embedding (B, global_dim) and, for VICRegL,
    the local embeddings (B, H, W, dense_dim) (else None).
    """

    def __init__(
        self,
        method: str = "vicreg",
        backbone: str = "resnet50",
        global_dim: int = 2048,
        global_hidden_dim: int = 2048,
        dense_dim: int = 512,
        dense_hidden_dim: int = 1024,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if method not in BASELINE_METHODS:
            raise ValueError(
                f"method must be one of {BASELINE_METHODS}, got {method!r}."
            )
        self.method = method
        self.backbone, width = resnet_backbone(backbone, padding_mode)
        self.padding_mode = padding_mode
        self.backbone_name = backbone
        self.feature_dim = width
        if method == "barlowtwins":
            self.global_head: nn.Module = BarlowTwinsProjectionHead(
                width, global_hidden_dim, global_dim
            )
        else:
            self.global_head = VICRegProjectionHead(
                width, global_hidden_dim, global_dim, num_layers=3
            )
        self.local_head = (
            VicRegLLocalProjectionHead(width, dense_hidden_dim, dense_dim)
            if method == "vicregl"
            else None
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Returns the global embedding and (VICRegL only) the local embeddings."""
        fmap = resnet_dense_features(self.backbone, x)
        z = self.global_head(fmap.mean(dim=(2, 3)))
        if self.local_head is None:
            return z, None
        return z, self.local_head(fmap.permute(0, 2, 3, 1))
