"""The OPTiML model: a dense encoder, global and dense heads, and CV-SIM [0].

The backbone is a torchvision ResNet kept under torchvision's own parameter names
(``backbone.conv1.weight``, ``backbone.layer4.2.bn3.bias``, ...) with ``fc``
replaced by an identity, so that ``model.backbone.state_dict()`` loads into
``torchvision.models.resnet50()`` (all but ``fc``) and into OpenMMLab ResNets.

- [0] Singh, Gorade, Mishra. OPTiML. arXiv 2404.11868, 2024.
"""

from __future__ import annotations

from typing import NamedTuple

import torchvision
from torch import Tensor, nn

from optiml_plugin.models.cvsim import CVSIM
from optiml_plugin.models.heads import OPTiMLDenseProjectionHead, OPTiMLProjectionHead

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class OPTiMLOutput(NamedTuple):
    """Embeddings of two views: global (B, D') and dense after CV-SIM (B, H, W, D)."""

    global_a: Tensor
    global_b: Tensor
    dense_a: Tensor
    dense_b: Tensor


def set_padding_mode(module: nn.Module, padding_mode: str) -> nn.Module:
    """Sets ``padding_mode`` of every padded ``Conv2d`` in ``module``, in place.

    Zero padding lets a ResNet's final map encode where a cell sits: the border
    cells see zeros, and the stack of 3 x 3 convolutions spreads that inwards, so
    even a randomly initialised ``layer4`` decodes position (issue 9, cause 3).
    ``"reflect"`` (or ``"replicate"``) pads with image content instead: a constant
    image then gives a spatially constant map (training can still learn a code of
    position from the borders, more slowly). The mode changes no parameter, so
    weights load across modes; fine-tune with the mode the backbone was
    pretrained with.

    Raises:
        ValueError: ``padding_mode`` is not one of :data:`PADDING_MODES`.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}."
        )
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and tuple(m.padding) != (0, 0):
            m.padding_mode = padding_mode
    return module


def resnet_backbone(
    name: str = "resnet50", padding_mode: str = "zeros"
) -> tuple[nn.Module, int]:
    """Returns a randomly initialised torchvision ResNet without ``fc``, and its width.

    No weights are downloaded: pretraining starts from scratch, and pretrained
    weights are loaded explicitly by the caller.

    Args:
        name: A torchvision ResNet name (see :data:`RESNETS`).
        padding_mode: Padding of the convolutions (see :func:`set_padding_mode`).
    """
    if name not in RESNETS:
        raise ValueError(f"backbone must be one of {RESNETS}, got {name!r}.")
    resnet = getattr(torchvision.models, name)(weights=None)
    width = resnet.fc.in_features
    resnet.fc = nn.Identity()
    return set_padding_mode(resnet, padding_mode), width


def resnet_dense_features(resnet: nn.Module, x: Tensor) -> Tensor:
    """Runs a torchvision ResNet up to ``layer4``; returns the map (B, C, H, W)."""
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    x = resnet.layer2(resnet.layer1(x))
    return resnet.layer4(resnet.layer3(x))


class OPTiML(nn.Module):
    """Backbone + global head + dense head + CV-SIM.

    Args:
        backbone: A torchvision ResNet name, or a module mapping images to a dense
            map (B, C, H, W) (then give ``feature_dim``).
        feature_dim: Channels of a custom backbone's dense map.
        global_dim: Dimension of the global embedding ``z``.
        global_hidden_dim: Hidden width of the global head.
        dense_dim: Dimension of the dense tokens.
        dense_hidden_dim: Hidden width of the dense head.
        cvsim_mode: ``"global"`` (default), ``"pointwise"``, ``"cross"`` or
            ``"none"`` (see :class:`CVSIM`).
        cvsim_heads: Attention heads of CV-SIM.
        padding_mode: Padding of a ResNet backbone's convolutions, ``"zeros"``
            (torchvision's) or ``"reflect"`` / ``"replicate"``, which give the
            untrained map no code of the cell's position; training can still
            build one (README, screen 10; see :func:`set_padding_mode`).

    Examples:
        >>> model = OPTiML("resnet18", global_dim=512, dense_dim=128)
        >>> out = model(view_a, view_b)
        >>> loss = OPTiMLLoss()(out.dense_a, out.dense_b, out.global_a, out.global_b,
        ...                    grid_a=grid_a, grid_b=grid_b)
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        feature_dim: int | None = None,
        global_dim: int = 2048,
        global_hidden_dim: int = 2048,
        dense_dim: int = 512,
        dense_hidden_dim: int = 1024,
        cvsim_mode: str = "global",
        cvsim_heads: int = 8,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.padding_mode = padding_mode
        if isinstance(backbone, str):
            self.backbone, width = resnet_backbone(backbone, padding_mode)
            self.backbone_name = backbone
        else:
            if feature_dim is None:
                raise ValueError("A custom backbone needs feature_dim.")
            self.backbone, width = backbone, feature_dim
            if padding_mode != "zeros":
                set_padding_mode(backbone, padding_mode)
            self.backbone_name = type(backbone).__name__
        self.feature_dim = width
        self.global_head = OPTiMLProjectionHead(width, global_hidden_dim, global_dim)
        self.dense_head = OPTiMLDenseProjectionHead(width, dense_hidden_dim, dense_dim)
        self.cvsim = CVSIM(
            dense_dim, global_dim, num_heads=cvsim_heads, mode=cvsim_mode
        )

    def dense_features(self, x: Tensor) -> Tensor:
        """Returns the backbone's dense map (B, C, H, W)."""
        if isinstance(self.backbone, torchvision.models.ResNet):
            return resnet_dense_features(self.backbone, x)
        return self.backbone(x)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the global embedding (B, D') and dense tokens (B, H, W, D)."""
        fmap = self.dense_features(x)
        z = self.global_head(fmap.mean(dim=(2, 3)))
        u = self.dense_head(fmap.permute(0, 2, 3, 1))
        return z, u

    def infuse(
        self, z_a: Tensor, u_a: Tensor, z_b: Tensor, u_b: Tensor
    ) -> OPTiMLOutput:
        """Applies CV-SIM to a pair of embedded views (see :meth:`embed`)."""
        q_a = self.cvsim(u_a, other_global=z_b, other_tokens=u_b)
        q_b = self.cvsim(u_b, other_global=z_a, other_tokens=u_a)
        return OPTiMLOutput(z_a, z_b, q_a, q_b)

    def forward(self, x_a: Tensor, x_b: Tensor) -> OPTiMLOutput:
        """Embeds two views and infuses each one's dense tokens with the other's."""
        return self.infuse(*self.embed(x_a), *self.embed(x_b))
