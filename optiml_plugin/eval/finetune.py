"""Full fine-tuning of a pretrained backbone with a linear multi-label head."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from optiml_plugin.models.optiml import resnet_dense_features


class ResNetClassifier(nn.Module):
    """A torchvision ResNet (``fc`` an identity) with a new linear head on the
    pooled final map.

    Args:
        backbone: The ResNet.
        feature_dim: Channels of its final map.
        num_classes: Number of labels.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Returns (N, num_classes) logits."""
        return self.head(resnet_dense_features(self.backbone, x).mean(dim=(2, 3)))


def finetune_classifier(
    backbone: nn.Module,
    train_set: Dataset,
    num_classes: int,
    epochs: int = 10,
    lr: float = 3e-4,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ResNetClassifier:
    """Fine-tunes a copy of ``backbone`` and a linear head end to end.

    AdamW at lr 3e-4 (the authors' earlier fine-tuning protocol), binary
    cross-entropy, cosine decay; batch-norm statistics are updated. The caller's
    backbone is not modified.

    Args:
        backbone: A torchvision ResNet with ``fc`` an identity.
        train_set: Items ``(image, labels, ...)``.
        num_classes: Number of labels.
        epochs: Passes over ``train_set``.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Mini-batch size (batches of one image are dropped: batch norm).
        seed: Seed of the head's initialisation and of the batch order.
        device: Where to train.
    """
    torch.manual_seed(seed)
    backbone = copy.deepcopy(backbone)
    feature_dim = backbone.layer4[-1].conv1.in_channels
    model = ResNetClassifier(backbone, feature_dim, num_classes).to(device)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        train_set,
        batch_size=min(batch_size, len(train_set)),
        shuffle=True,
        drop_last=len(train_set) % batch_size == 1,
        generator=generator,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    model.train()
    for _ in range(epochs):
        for batch in loader:
            logits = model(batch[0].to(device))
            loss = F.binary_cross_entropy_with_logits(
                logits, batch[1].float().to(device)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


@torch.no_grad()
def predict_scores(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """Returns (N, K) logits and (N, K) labels of ``dataset`` (``(image, labels,
    ...)`` items) in eval mode."""
    model.eval()
    scores, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        scores.append(model(batch[0].to(device)).float().cpu())
        labels.append(batch[1])
    return torch.cat(scores), torch.cat(labels)
