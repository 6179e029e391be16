"""Loading an exported backbone and reading its frozen features."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from optiml_plugin.models.optiml import resnet_backbone, resnet_dense_features
from optiml_plugin.train.export import backbone_sidecar


def load_backbone(
    path: str | Path | None = None,
    architecture: str | None = None,
    padding_mode: str | None = None,
) -> nn.Module:
    """Returns a torchvision ResNet (``fc`` an identity) with exported weights.

    Args:
        path: A ``backbone.pth`` written by pretraining or ``optiml-export-backbone``;
            None gives a randomly initialised backbone (the random-init baseline;
            seed torch first for a reproducible one).
        architecture: The torchvision name (``resnet18``, ``resnet50``, ...); read
            from the JSON sidecar beside ``path`` when not given.
        padding_mode: The convolutions' padding; read from the sidecar when not
            given (``"zeros"`` without one).

    Raises:
        ValueError: Neither an architecture nor a sidecar naming one, or weights
            that do not fit the architecture.
    """
    meta = backbone_sidecar(path) if path is not None else {}
    architecture = architecture or meta.get("architecture")
    padding_mode = padding_mode or meta.get("padding_mode", "zeros")
    if architecture is None:
        raise ValueError(
            f"{path}: give the architecture (no sidecar naming it was found)."
        )
    resnet, _ = resnet_backbone(architecture, padding_mode)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            resnet.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: not a {architecture} backbone: {err}") from err
    return resnet


def add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--backbone PATH`` / ``--random ARCH`` (one required) and ``--arch``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--backbone", type=Path, help="an exported backbone.pth")
    src.add_argument("--random", metavar="ARCH", help="a randomly initialised ARCH")
    parser.add_argument("--arch", help="architecture, when the backbone has no sidecar")


def backbone_from_arguments(args: argparse.Namespace) -> nn.Module:
    """The backbone named by :func:`add_backbone_arguments`' options."""
    if args.backbone is not None:
        return load_backbone(args.backbone, args.arch)
    return load_backbone(None, args.random)


class Features(NamedTuple):
    """Frozen features of a dataset and its targets, in dataset order.

    Attributes:
        pooled: (N, C) global-average-pooled final maps.
        dense: (N, C, h, w) final maps, or None when not kept.
        targets: The dataset's further items (labels, masks), each stacked.
    """

    pooled: Tensor
    dense: Tensor | None
    targets: tuple[Tensor, ...]


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    keep_dense: bool = True,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> Features:
    """Runs a frozen ResNet (eval mode) over ``dataset`` of ``(image, *targets)``."""
    was_training = backbone.training
    backbone.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    pooled, dense, targets = [], [], []
    for batch in loader:
        fmap = resnet_dense_features(backbone, batch[0].to(device)).float().cpu()
        pooled.append(fmap.mean(dim=(2, 3)))
        if keep_dense:
            dense.append(fmap)
        targets.append(batch[1:])
    backbone.train(was_training)
    stacked = tuple(torch.cat(items) for items in zip(*targets, strict=True))
    return Features(
        torch.cat(pooled), torch.cat(dense) if keep_dense else None, stacked
    )
