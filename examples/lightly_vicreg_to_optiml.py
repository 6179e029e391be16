"""Lightly's VICReg example turned into OPTiML by changing only the transform, the
heads and the loss.

The starting point is Lightly's ``examples/pytorch/vicreg.py`` (ResNet-18,
``BarlowTwinsProjectionHead(512, 2048, 2048)``, ``VICRegTransform``, ``VICRegLoss``,
SGD, a plain PyTorch loop). Every line that differs from it is marked ``# OPTiML``
with the VICReg original in the comment. The data is the embedded phantom generator
instead of CIFAR-10, so the script runs with no download::

    python examples/lightly_vicreg_to_optiml.py --steps 20
"""

# fmt: off
from __future__ import annotations

import argparse

import torch
import torchvision
from torch import nn

from optiml_plugin import (  # OPTiML: was lightly's heads, VICRegTransform, VICRegLoss
    CVSIM,
    CVSIMTransform,
    OPTiMLDenseProjectionHead,
    OPTiMLLoss,
    OPTiMLProjectionHead,
)
from optiml_plugin.data.phantom import (
    PhantomDataset,  # was torchvision.datasets.CIFAR10
)


class OPTiMLExample(nn.Module):  # was: class VICReg(nn.Module)
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = OPTiMLProjectionHead(512, 1024, 1024)  # OPTiML: was BarlowTwinsProjectionHead(512, 2048, 2048)
        self.dense_head = OPTiMLDenseProjectionHead(512, 512, 128)  # OPTiML: new
        self.cvsim = CVSIM(128, global_dim=1024, num_heads=4)  # OPTiML: new

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.backbone(x)  # OPTiML: dense map (B, 512, h, w); was self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(fmap.mean(dim=(2, 3)))  # OPTiML: pool here; was self.projection_head(x)
        u = self.dense_head(fmap.permute(0, 2, 3, 1))  # OPTiML: new
        return z, u  # OPTiML: was `return z`


def main(steps: int = 20, batch_size: int = 16, image_size: int = 96) -> list[float]:
    """Trains for ``steps`` steps and returns the losses."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    backbone = nn.Sequential(*list(resnet.children())[:-2])  # OPTiML: was [:-1] (keep the dense map)
    model = OPTiMLExample(backbone)

    transform = CVSIMTransform(size=image_size)  # OPTiML: was VICRegTransform(input_size=32)
    dataset = PhantomDataset(num_images=steps * batch_size, size=128, transform=transform)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)

    criterion = OPTiMLLoss()  # OPTiML: was VICRegLoss()
    # Lightly's example uses lr=0.06 at batch 256; scaled linearly to this batch.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06 * batch_size / 256)

    losses = []
    for step, batch in enumerate(dataloader):
        x0, x1, g0, g1 = batch[0]  # OPTiML: was `x0, x1 = batch[0]` (+ the cells' grids)
        z0, u0 = model(x0)  # OPTiML: was z0 = model(x0)
        z1, u1 = model(x1)  # OPTiML: was z1 = model(x1)
        q0 = model.cvsim(u0, other_global=z1)  # OPTiML: new (CV-SIM)
        q1 = model.cvsim(u1, other_global=z0)  # OPTiML: new (CV-SIM)
        loss = criterion(q0, q1, z0, z1, grid_a=g0, grid_b=g1)  # OPTiML: was criterion(z0, z1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        print(f"step {step:3d}  loss {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Lightly's VICReg example, as OPTiML.")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    main(args.steps, args.batch_size)
# fmt: on
