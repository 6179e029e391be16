"""OPTiML ResNet backbones for MMEngine, mmdet and mmsegmentation.

One class serves both toolboxes: it is registered in MMEngine's root ``MODELS``
registry, which mmdet's and mmseg's registries fall back to, so ``type='OPTiMLResNet'``
works in either's configs. The network is torchvision's ResNet, the very module
OPTiML pretrains (Singh et al., arXiv 2404.11868), so the exported backbone
(:mod:`optiml_plugin.train.export`) loads with no renaming.

Pretrained weights are given the OpenMMLab way,
``init_cfg=dict(type='Pretrained', checkpoint='backbone.pth')``, but loaded strictly:
MMEngine's own ``Pretrained`` initialiser only logs a warning when keys do not match
and leaves the backbone random; here any missing or unexpected key raises
:class:`BackboneCheckpointError` naming them. Files are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from optiml_plugin.mm.checkpoint import load_tensors
from optiml_plugin.models.optiml import set_padding_mode
from optiml_plugin.train.export import backbone_sidecar

#: The statistics OPTiML pretraining and the configs normalise with (0..255 input).
IMAGENET_NORM = {"mean": (123.675, 116.28, 103.53), "std": (58.395, 57.12, 57.375)}

ARCHITECTURES = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
    152: torchvision.models.resnet152,
}


class BackboneCheckpointError(RuntimeError):
    """A pretrained backbone file that does not fit the backbone."""


def read_backbone_state(path: str | Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """Reads a tensor-only backbone state dict.

    Accepts our exported ``backbone.pth`` (a plain ``{name: tensor}`` dict) and
    checkpoints that wrap it as ``{'state_dict': ...}`` (e.g. Lightning's).

    Args:
        path: The file.
        prefix: Keep only keys starting with ``prefix`` and strip it (e.g.
            ``'model.backbone.'`` for one of our Lightning checkpoints).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        BackboneCheckpointError: If the file holds no tensors under ``prefix``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained backbone not found: {path}")
    data: Any = load_tensors(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise BackboneCheckpointError(
            f"{path}: expected a state dict, got {type(data)}"
        )
    state = {
        k[len(prefix) :]: v
        for k, v in data.items()
        if k.startswith(prefix) and isinstance(v, torch.Tensor)
    }
    if not state:
        raise BackboneCheckpointError(f"{path}: no tensors with prefix {prefix!r}")
    return state


def _norm_layer(norm_cfg: dict[str, Any]) -> type[nn.Module] | Any:
    kind = norm_cfg.get("type", "BN")
    if kind in ("BN", "BN2d"):
        return nn.BatchNorm2d
    if kind in ("SyncBN", "MMSyncBN"):
        return nn.SyncBatchNorm
    raise ValueError(f"OPTiMLResNet: norm_cfg type {kind!r} is not BN or SyncBN")


@MODELS.register_module()
class OPTiMLResNet(BaseModule):
    """torchvision ResNet returning multi-scale features for detection / segmentation.

    Args:
        depth: 18, 34, 50, 101 or 152.
        in_channels: 3 (grey replicated, as in OPTiML pretraining) or 1. With 1,
            the single normalised channel is mapped back to the three channels the
            pretrained stem expects, ``x_c = (s * x + m - mean_c) / std_c``, before
            the unchanged 3-channel stem: exact, borders included, for any
            per-channel statistics (summing the stem's kernels is exact only when
            all channels are normalised alike).
        grey_norm: With ``in_channels=1`` (required then):
            ``dict(mean=[m], std=[s])``, the one-channel ``data_preprocessor``'s
            statistics.
        stem_norm: ``dict(mean=[3 values], std=[3 values])``, the statistics the
            pretrained stem saw (default: ImageNet's, as in OPTiML pretraining and
            the configs); only used with ``in_channels=1``.
        out_indices: Stages (0..3 = ``layer1``..``layer4``) whose outputs to return.
        frozen_stages: Freeze the stem and stages ``<= frozen_stages`` (-1: none).
        norm_cfg: ``dict(type='BN' | 'SyncBN', requires_grad=...)``.
        norm_eval: Keep BatchNorm layers in eval mode while training.
        dilations: torchvision's ``replace_stride_with_dilation`` for ``layer2``..
            ``layer4``; ``(False, True, True)`` gives output stride 8 (FCN / DeepLab
            "-d8" heads). Parameter names do not change.
        zero_init_residual: torchvision's option, for random init.
        padding_mode: The convolutions' padding, ``"zeros"`` or ``"reflect"`` /
            ``"replicate"``: it must be the one the backbone was pretrained with.
            None (default) reads it from the ``Pretrained`` file's JSON sidecar
            (``"zeros"`` without one); a value that contradicts the sidecar raises.
        init_cfg: ``dict(type='Pretrained', checkpoint=..., prefix='')`` to load a
            backbone file strictly, alone or as one entry of a list; other
            MMEngine initialisers are passed on.
    """

    def __init__(
        self,
        depth: int = 50,
        in_channels: int = 3,
        grey_norm: dict[str, Sequence[float]] | None = None,
        stem_norm: dict[str, Sequence[float]] | None = None,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        norm_cfg: dict[str, Any] | None = None,
        norm_eval: bool = False,
        dilations: Sequence[bool] = (False, False, False),
        zero_init_residual: bool = False,
        padding_mode: str | None = None,
        init_cfg: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> None:
        pretrained, init_cfg = _split_pretrained(init_cfg)
        super().__init__(init_cfg=init_cfg)
        if depth not in ARCHITECTURES:
            raise ValueError(
                f"OPTiMLResNet: depth {depth} not in {sorted(ARCHITECTURES)}"
            )
        if in_channels not in (1, 3):
            raise ValueError(
                f"OPTiMLResNet: in_channels must be 1 or 3, got {in_channels}"
            )
        if not out_indices or not set(out_indices) <= {0, 1, 2, 3}:
            raise ValueError(f"OPTiMLResNet: out_indices {out_indices} not within 0..3")
        norm_cfg = dict(norm_cfg or {"type": "BN", "requires_grad": True})
        net = ARCHITECTURES[depth](
            norm_layer=_norm_layer(norm_cfg), zero_init_residual=zero_init_residual
        )
        _dilate(net, tuple(dilations))
        self.padding_mode = _padding_mode(padding_mode, pretrained)
        set_padding_mode(net, self.padding_mode)
        if in_channels == 1:
            scale, shift = _grey_to_stem(grey_norm, stem_norm or IMAGENET_NORM)
            self.register_buffer("grey_scale", scale, persistent=False)
            self.register_buffer("grey_shift", shift, persistent=False)
        self.depth = depth
        self.in_channels = in_channels
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.pretrained = pretrained
        self.conv1, self.bn1, self.relu, self.maxpool = (
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
        )
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        if not norm_cfg.get("requires_grad", True):
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.requires_grad_(False)
        self._freeze_stages()

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of each returned stage."""
        width = 64 if self.depth < 50 else 256
        return tuple(width * 2**i for i in self.out_indices)

    def init_weights(self) -> None:
        """Loads ``init_cfg``'s pretrained file strictly, or runs MMEngine's init."""
        if self.pretrained is None:
            super().init_weights()
            return
        self.load_pretrained(
            self.pretrained["checkpoint"], prefix=self.pretrained.get("prefix", "")
        )
        self._is_init = True

    def load_pretrained(self, path: str | Path, prefix: str = "") -> None:
        """Loads a backbone file; raises if any key is missing or unexpected.

        Raises:
            BackboneCheckpointError: Listing missing and unexpected keys, or a
                shape mismatch.
        """
        state = read_backbone_state(path, prefix)
        state.pop("fc.weight", None)
        state.pop("fc.bias", None)
        own = self.state_dict()
        for key in set(own) - set(state):
            if key.endswith(".num_batches_tracked"):  # torch's strict load allows it
                state[key] = own[key]
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise BackboneCheckpointError(
                f"{path} does not fit OPTiMLResNet(depth={self.depth}): "
                f"{len(missing)} missing keys {_preview(missing)}, "
                f"{len(unexpected)} unexpected keys {_preview(unexpected)}"
                + (f" (prefix {prefix!r})" if prefix else "")
            )
        wrong = [k for k in own if own[k].shape != state[k].shape]
        if wrong:
            raise BackboneCheckpointError(
                f"{path}: shape mismatch for {_preview(wrong)}, e.g. {wrong[0]} "
                f"{tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}"
            )
        self.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.in_channels == 1:
            if x.shape[1] != 1:
                raise ValueError(
                    f"OPTiMLResNet(in_channels=1) got {x.shape[1]} input channels"
                )
            x = x * self.grey_scale + self.grey_shift
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
            if i >= max(self.out_indices):
                break
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.conv1, self.bn1] + [
            getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)
        ]
        for module in modules:
            module.eval()
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> OPTiMLResNet:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def _split_pretrained(
    init_cfg: dict[str, Any] | list[dict[str, Any]] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | list[dict[str, Any]] | None]:
    """Separates the ``Pretrained`` entry (dict or list form) from other initialisers.

    Raises:
        ValueError: If there are several ``Pretrained`` entries or one without
            ``checkpoint``.
    """
    entries = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg or [])
    pretrained = [dict(c) for c in entries if c.get("type") == "Pretrained"]
    rest = [c for c in entries if c.get("type") != "Pretrained"]
    if len(pretrained) > 1:
        raise ValueError(
            f"OPTiMLResNet: init_cfg has {len(pretrained)} 'Pretrained' entries"
        )
    if pretrained and not pretrained[0].get("checkpoint"):
        raise ValueError("OPTiMLResNet: init_cfg 'Pretrained' entry has no checkpoint")
    if isinstance(init_cfg, dict):
        return (pretrained or [None])[0], None if pretrained else init_cfg
    return (pretrained or [None])[0], rest or None


def _padding_mode(requested: str | None, pretrained: dict[str, Any] | None) -> str:
    """The padding mode: the requested one, checked against the sidecar, or the sidecar's.

    Raises:
        ValueError: ``requested`` contradicts the pretrained file's sidecar.
    """
    recorded = None
    if pretrained is not None:
        recorded = backbone_sidecar(pretrained["checkpoint"]).get("padding_mode")
    if requested is not None and recorded is not None and requested != recorded:
        raise ValueError(
            f"OPTiMLResNet: padding_mode={requested!r}, but "
            f"{Path(pretrained['checkpoint']).with_suffix('.json')} records "
            f"{recorded!r}, the padding its weights were trained with"
        )
    return requested or recorded or "zeros"


def _grey_to_stem(
    grey_norm: dict[str, Sequence[float]] | None,
    stem_norm: dict[str, Sequence[float]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and shift mapping a normalised grey channel to the stem's 3 channels."""
    if grey_norm is None:
        raise ValueError(
            "OPTiMLResNet(in_channels=1) needs grey_norm=dict(mean=[m], std=[s]), "
            "the one-channel data_preprocessor's statistics"
        )
    m, s = (float(np.ravel(grey_norm[k])[0]) for k in ("mean", "std"))
    mean = torch.tensor([float(v) for v in stem_norm["mean"]], dtype=torch.float64)
    std = torch.tensor([float(v) for v in stem_norm["std"]], dtype=torch.float64)
    if mean.numel() != 3 or std.numel() != 3 or s <= 0 or (std <= 0).any():
        raise ValueError(
            f"OPTiMLResNet: stem_norm needs 3 means and 3 positive stds and "
            f"grey_norm a positive std, got {stem_norm} and {grey_norm}"
        )
    scale, shift = s / std, (m - mean) / std
    return scale.float().view(1, 3, 1, 1), shift.float().view(1, 3, 1, 1)


def _dilate(net: nn.Module, dilations: tuple[bool, ...]) -> None:
    """Trades ``layer2``..``layer4``'s strides for dilation, in place.

    torchvision's ``replace_stride_with_dilation`` does this for Bottleneck ResNets
    only; this does the same for both block types (the first block of a dilated
    stage keeps the previous dilation, as torchvision and mmseg do).
    """
    if len(dilations) != 3:
        raise ValueError(f"OPTiMLResNet: dilations needs 3 flags, got {dilations}")
    dilation = 1
    for layer, flag in zip(
        (net.layer2, net.layer3, net.layer4), dilations, strict=True
    ):
        if not flag:
            continue
        previous, dilation = dilation, dilation * 2
        for i, block in enumerate(layer):
            d = previous if i == 0 else dilation
            for conv in block.modules():
                if not isinstance(conv, nn.Conv2d):
                    continue
                conv.stride = (1, 1)
                if conv.kernel_size == (3, 3):
                    conv.dilation, conv.padding = (d, d), (d, d)


def _preview(keys: list[str], n: int = 8) -> str:
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}]"
